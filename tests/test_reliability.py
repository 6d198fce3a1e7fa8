"""Adversarial input, numerics under stress, and training that never silently breaks."""

import ast
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import metricc
from losses import compiled
from metricc import MetricError
from metricc.library import default_library
from metricc.parse import parse
from oracles import batch_with_counts

# No injection: nothing a user writes becomes code in the emitted file.


@pytest.mark.parametrize("name", ['x"""; import os #', "a\nb", "f1\x00", "import", "torch.nn", "ｆ1", "__init__"])
def test_unsafe_module_names_are_rejected(name):
    with pytest.raises(metricc.OptionError):
        metricc.emit("f1", name=name)


@pytest.mark.parametrize(
    "formula",
    [
        "__import__('os').system('true')",
        "TP; import os",
        'TP + """',
        "TP\x00 + FP",
        "ТP + FP",  # Cyrillic 'Т'
        "exec(TP)",
        "param lambda = 1; TP * lambda",
        "param eps = 1; TP * eps",
    ],
)
def test_hostile_formulas_are_rejected_with_a_metric_error(formula):
    with pytest.raises(MetricError):
        metricc.emit(formula, name="m")


def test_a_binding_named_torch_never_reaches_the_code():
    source = metricc.emit("torch = TP / (TP + FP); os = torch * 2; os", name="m", direction="maximize")
    tree = ast.parse(source)
    assigned = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for target in node.targets if isinstance(target, ast.Name)}
    assert "os" not in assigned and "torch" not in assigned
    assert "import os" not in source


def test_docstring_cannot_be_closed_from_user_text():
    source = metricc.emit("param beta = 1 in (0, inf); # \"\"\" evil\nTP*beta", name="m", direction="maximize")
    assert ast.get_docstring(ast.parse(source)).count('"""') == 0
    assert "evil" not in source


# Parser fuzzing: every input parses or raises a MetricError, quickly.

FUZZ_CASES = {"random text": 0, "token sequences": 0}


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_fuzz_random_unicode(text):
    FUZZ_CASES["random text"] += 1
    start = time.perf_counter()
    try:
        parse(text, library=default_library())
    except MetricError:
        pass
    assert time.perf_counter() - start < 5.0


_TOKENS = ["TP", "FP", "FN", "TN", "P", "TOTAL", "+", "-", "*", "/", "^", "**", "(", ")", "1", "0", "0.5", "1e3", ",", ";", "=",
           "sqrt(", "log(", "min(", "f1", "fbeta(", "beta", "param", "in", "inf", "[", "]", "x", "#", "\n"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40))
def test_fuzz_token_sequences(tokens):
    FUZZ_CASES["token sequences"] += 1
    start = time.perf_counter()
    try:
        parse(" ".join(tokens), library=default_library())
    except MetricError:
        pass
    assert time.perf_counter() - start < 5.0


def test_fuzz_case_counts_are_reported(capsys):
    with capsys.disabled():
        print(f"\nparser fuzzing tried: {FUZZ_CASES}")


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000 + "TP" + ")" * 10_000,
        "-" * 10_000 + "TP",
        "+".join(["TP"] * 100_000),
        "TP*" * 5_000 + "FP",
        "TP+" * 350_000 + "TP",
        "2^" * 2_000 + "TP",
    ],
)
def test_pathological_sizes_end_quickly(text):
    start = time.perf_counter()
    try:
        parse(text)
    except MetricError as error:
        assert "at most" in str(error) or "nests" in str(error) or "operations" in str(error)
    assert time.perf_counter() - start < 10.0


# Numerics.

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_low_precision_predictions_count_in_float32(dtype):
    generator = torch.Generator().manual_seed(0)
    preds64 = torch.rand(1000, generator=generator, dtype=torch.float64)
    target = (torch.rand(1000, generator=generator) < 0.3).double()
    preds = preds64.to(dtype).requires_grad_(True)
    loss = compiled("mcc", approximation="identity")(preds, target)
    loss.backward()
    reference = compiled("mcc", approximation="identity")(preds.detach().double(), target)
    assert loss.dtype == torch.promote_types(dtype, torch.float32)
    assert preds.grad.dtype == dtype and torch.isfinite(preds.grad.float()).all()
    assert loss.item() == pytest.approx(reference.item(), abs=1e-5)


def test_non_contiguous_and_integer_or_bool_targets():
    generator = torch.Generator().manual_seed(1)
    preds = torch.rand(20, 2, generator=generator, dtype=torch.float64)[:, 0]
    target = torch.rand(20, generator=generator) < 0.5
    assert not preds.is_contiguous()
    expected = compiled("f1")(preds.contiguous(), target.double())
    for variant in (target, target.long(), target.int(), target.float()):
        assert compiled("f1")(preds, variant).item() == pytest.approx(expected.item())


def test_zero_size_tensors():
    for shape in [(0,), (0, 1), (2, 1, 0, 3)]:
        preds = torch.zeros(shape, requires_grad=True)
        loss = compiled("f1")(preds, torch.zeros(shape))
        loss.backward()
        assert torch.isfinite(loss)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("from_logits", [False, True])
def test_non_finite_predictions_raise(bad, from_logits):
    with pytest.raises(ValueError, match="NaN or infinite"):
        compiled("f1", from_logits=from_logits)(torch.tensor([0.5, bad]), torch.tensor([1.0, 0.0]))


def test_requires_grad_on_target_does_not_differentiate_the_target():
    preds = torch.rand(10, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(10) < 0.5).double().requires_grad_(True)
    loss = compiled("f1")(preds, target)
    loss.backward()
    assert target.grad is None and torch.isfinite(preds.grad).all()


@given(
    st.sampled_from(default_library().names()),
    st.tuples(*[st.integers(0, 6)] * 4),
)
@settings(max_examples=120)
def test_every_library_metric_is_finite_on_degenerate_confusion_matrices(name, counts):
    tp, fp, fn, tn = counts
    preds, target = batch_with_counts(tp, fp, fn, tn)
    preds.requires_grad_(True)
    for approximation in ("identity", "anyloss"):
        loss = compiled(name, approximation=approximation)(preds, target)
        (gradient,) = torch.autograd.grad(loss, preds)
        assert torch.isfinite(loss), (name, counts, approximation)
        assert torch.isfinite(gradient).all(), (name, counts, approximation)


def test_equivalent_formulas_give_equal_values():
    generator = torch.Generator().manual_seed(2)
    preds = torch.rand(200, generator=generator, dtype=torch.float64)
    target = (torch.rand(200, generator=generator) < 0.4).double()
    pairs = [
        ("TP/(TP+FP)", "1/(1+FP/TP)"),
        ("2*TP/(2*TP+FP+FN)", "prec = TP/PP; rec = TP/P; 2*prec*rec/(prec+rec)"),
        ("(TP+TN)/TOTAL", "1 - (FP+FN)/(TP+FP+FN+TN)"),
    ]
    for first, second in pairs:
        a = compiled(first, direction="maximize").metric(preds, target)
        b = compiled(second, direction="maximize").metric(preds, target)
        assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_training_with_batches_without_positives_stays_finite():
    torch.manual_seed(0)
    features = torch.randn(512, 8)
    target = (features[:, 0] > 1.2).float()
    batches = [torch.arange(i, i + 32) for i in range(0, 512, 32)]
    batches += [torch.nonzero(target == 0).squeeze(1)[:32]] * 4
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for name in ("f1", "mcc", "balanced_accuracy"):
        loss_fn = compiled(name, from_logits=True)
        for step in range(100):
            batch = batches[step % len(batches)]
            optimizer.zero_grad()
            loss = loss_fn(model(features[batch]).squeeze(1), target[batch])
            assert torch.isfinite(loss), (name, step)
            loss.backward()
            optimizer.step()
            assert all(torch.isfinite(p).all() for p in model.parameters()), (name, step)
