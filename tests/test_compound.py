"""Compound losses: ce_weight adds BCE or CE to the metric loss, checked against torch.nn.functional and autograd."""

import pytest
import torch
import torch.nn.functional as F

import metricc
from metricc.cli import main
from metricc.compiler import compile_metric
from metricc.errors import OptionError
from oracles import f1, plain_soft_counts

LAMBDA = 0.7


def _binary(shape, seed, from_logits):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(shape, generator=generator, dtype=torch.float64)
    preds = scores if from_logits else torch.sigmoid(scores)
    target = (torch.rand(shape, generator=generator, dtype=torch.float64) < 0.3).to(torch.float64)
    return preds, target


def _multiclass(shape, seed, from_logits):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(shape, generator=generator, dtype=torch.float64)
    preds = scores if from_logits else torch.softmax(scores, dim=1)
    labels = torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]), generator=generator)
    return preds, labels


def _reference_ce(preds, target, task, from_logits, ignore_index=None):
    """The eager torch.nn.functional term the compound loss must add."""
    if task == "multiclass":
        log_probs = F.log_softmax(preds, dim=1) if from_logits else torch.log(preds)
        index = -100 if ignore_index is None else ignore_index
        return F.nll_loss(log_probs, target, ignore_index=index)
    if from_logits:
        return F.binary_cross_entropy_with_logits(preds, target)
    return F.binary_cross_entropy(preds, target)


CASES = [
    # (metric, options, make inputs, shape)
    ("f1", dict(task="binary"), _binary, (32,)),
    ("mcc", dict(task="binary", approximation="identity"), _binary, (32, 1)),
    ("dice", dict(task="binary", multidim_average="samplewise"), _binary, (3, 1, 6, 5)),
    ("f1", dict(task="multilabel", average="macro"), _binary, (16, 4)),
    ("f1", dict(task="multiclass", average="macro"), _multiclass, (24, 5)),
    ("tversky", dict(task="multiclass", average="macro", multidim_average="samplewise"), _multiclass, (2, 3, 7, 6)),
]


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("metric, options, make, shape", CASES)
def test_compound_equals_metric_loss_plus_weighted_cross_entropy(metric, options, make, shape, from_logits):
    preds, target = make(shape, seed=len(shape), from_logits=from_logits)
    plain = metricc.loss(metric, from_logits=from_logits, **options).double()
    compound = metricc.loss(metric, from_logits=from_logits, ce_weight=LAMBDA, **options).double()

    leaf = preds.clone().requires_grad_(True)
    value = compound(leaf, target)
    value.backward()

    eager = preds.clone().requires_grad_(True)
    expected = plain(eager, target) + LAMBDA * _reference_ce(eager, target, options["task"], from_logits)
    expected.backward()

    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(leaf.grad, eager.grad, rtol=1e-10, atol=1e-12)


def test_cross_entropy_gradient_matches_autograd_of_the_eager_sum():
    """The metric part's closed-form gradient plus autograd of CE equals autograd of the whole eager sum."""
    preds, target = _binary((40,), seed=3, from_logits=True)
    compound = metricc.loss("2*TP/(2*TP+FP+FN)", name="f1", from_logits=True, approximation="identity", ce_weight=LAMBDA).double()
    leaf = preds.clone().requires_grad_(True)
    compound(leaf, target).backward()

    eager = preds.clone().requires_grad_(True)
    probs = torch.sigmoid(eager)
    reference = 1 - f1(*plain_soft_counts(probs, target)) + LAMBDA * F.binary_cross_entropy_with_logits(eager, target)
    reference.backward()
    torch.testing.assert_close(leaf.grad, eager.grad, rtol=1e-10, atol=1e-12)


def test_one_hot_multiclass_targets_match_cross_entropy_with_probability_targets():
    preds, labels = _multiclass((10, 4), seed=4, from_logits=True)
    one_hot = F.one_hot(labels, 4).to(torch.float64)
    plain = metricc.loss("f1", task="multiclass", average="macro", from_logits=True).double()
    compound = metricc.loss("f1", task="multiclass", average="macro", from_logits=True, ce_weight=LAMBDA).double()
    expected = plain(preds, one_hot) + LAMBDA * F.cross_entropy(preds, one_hot)
    torch.testing.assert_close(compound(preds, one_hot), expected, rtol=1e-12, atol=1e-12)


def test_ignored_positions_leave_the_cross_entropy_term():
    preds, labels = _multiclass((2, 4, 5, 5), seed=5, from_logits=True)
    labels[0, :2] = 255
    plain = metricc.loss("dice", task="multiclass", average="macro", from_logits=True, ignore_index=255).double()
    compound = metricc.loss("dice", task="multiclass", average="macro", from_logits=True, ignore_index=255, ce_weight=LAMBDA).double()
    expected = plain(preds, labels) + LAMBDA * _reference_ce(preds, labels, "multiclass", True, ignore_index=255)
    torch.testing.assert_close(compound(preds, labels), expected, rtol=1e-12, atol=1e-12)


def test_zero_weight_is_the_plain_loss_and_the_default():
    preds, target = _binary((20,), seed=7, from_logits=True)
    plain = metricc.loss("f1", from_logits=True).double()
    assert plain.ce_weight == 0.0
    torch.testing.assert_close(metricc.loss("f1", from_logits=True, ce_weight=0.0).double()(preds, target), plain(preds, target))


def test_constructor_argument_overrides_the_compiled_default():
    preds, target = _binary((20,), seed=8, from_logits=True)
    compiled = metricc.loss("f1", from_logits=True, ce_weight=0.5).double()
    rebuilt = type(compiled)(ce_weight=0.5).double()
    torch.testing.assert_close(rebuilt(preds, target), compiled(preds, target))
    assert '"ce_weight": 0.5' in compile_metric("f1", from_logits=True, ce_weight=0.5).source


@pytest.mark.parametrize("bad", [-0.1, float("inf"), float("nan"), True, "1"])
def test_bad_weights_are_refused_by_name(bad):
    with pytest.raises(OptionError, match="ce_weight"):
        metricc.loss("f1", ce_weight=bad)


def test_per_class_losses_refuse_a_cross_entropy_term():
    with pytest.raises(OptionError, match="average='none'"):
        metricc.loss("f1", task="multilabel", average="none", ce_weight=1.0)
    module = type(metricc.loss("f1", task="multilabel", average="none"))
    with pytest.raises(ValueError, match="ce_weight"):
        module(ce_weight=1.0)


@pytest.mark.parametrize("ignore_index", [None, -1])
def test_compound_loss_scripts_compiles_and_exports(ignore_index):
    loss = metricc.loss("f1", task="multiclass", average="macro", from_logits=True, ce_weight=LAMBDA, ignore_index=ignore_index)
    preds, labels = _multiclass((12, 3), seed=9, from_logits=True)
    preds = preds.float()
    if ignore_index is not None:
        labels[0] = ignore_index
        loss.validate_args = False  # the value checks of an ignore_index are data-dependent under compile/export
    expected = loss(preds, labels)
    torch.testing.assert_close(torch.jit.script(loss)(preds, labels), expected)
    compiled = torch.compile(loss, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(preds, labels), expected)
    exported = torch.export.export(loss, (preds, labels))
    torch.testing.assert_close(exported.module()(preds, labels), expected)


def test_cli_writes_the_weight_into_the_emitted_file(tmp_path, capsys):
    output = tmp_path / "f1.py"
    assert main(["compile", "f1", "--from-logits", "--ce-weight", "0.25", "-o", str(output)]) == 0
    assert '"ce_weight": 0.25' in output.read_text()
