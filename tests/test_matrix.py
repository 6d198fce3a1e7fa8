"""Metrics of the whole C x C confusion matrix: values against sklearn and torchmetrics, the closed-form gradient
against autograd through a plain torch soft matrix, the two-class forms, guards, options and runtimes."""

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
import torchmetrics.classification as tmc
from hypothesis import given, settings
from hypothesis import strategies as st

import metricc
from metricc.cli import main
from metricc.runtime.matrix import AGGREGATE_NAMES, matrix_aggregates, matrix_gradient
from oracles import matrix_aggregates_by_definition, soft_matrix_loss

def _kappa(weights):
    """sklearn's kappa over classes 0..C-1 given C (by default it takes the classes present, whose distances differ)."""
    return lambda y, p, classes=None: skm.cohen_kappa_score(y, p, weights=weights, labels=None if classes is None else list(range(classes)))


SKLEARN = {
    "accuracy": skm.accuracy_score,
    "mcc": skm.matthews_corrcoef,
    "cohen_kappa": _kappa(None),
    "linear_kappa": _kappa("linear"),
    "quadratic_kappa": _kappa("quadratic"),
}
TORCHMETRICS = {
    "accuracy": lambda c: tmc.MulticlassAccuracy(c, average="micro"),
    "mcc": lambda c: tmc.MulticlassMatthewsCorrCoef(c),
    "cohen_kappa": lambda c: tmc.MulticlassCohenKappa(c),
    "linear_kappa": lambda c: tmc.MulticlassCohenKappa(c, weights="linear"),
    "quadratic_kappa": lambda c: tmc.MulticlassCohenKappa(c, weights="quadratic"),
}
CUSTOM = "param w = 0.5 in [0, 1]; w * TRACE / SUM + (1 - w) * (1 - OBSERVED_LINEAR / SUM) - SUM_RR / SUM^2 / 10 + SUM_CC / SUM^2 / 10"


def loss_of(name, **options):
    return metricc.loss(name, task="multiclass", **options)


def hard_batch(classes, samples, seed):
    """Labels and predictions that agree most of the time, and the predictions one-hot."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (samples,), generator=g)
    guessed = torch.randint(0, classes, (samples,), generator=g)
    predicted = torch.where(torch.rand(samples, generator=g) < 0.6, labels, guessed)
    return labels, predicted, torch.nn.functional.one_hot(predicted, classes).double()


@pytest.mark.parametrize("name", sorted(SKLEARN))
@settings(max_examples=15)
@given(classes=st.integers(2, 7), samples=st.integers(8, 120), seed=st.integers(0, 10_000))
def test_values_equal_sklearn_and_torchmetrics_on_hard_predictions(name, classes, samples, seed):
    labels, predicted, one_hot = hard_batch(classes, samples, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = SKLEARN[name](labels.numpy(), predicted.numpy(), **({"classes": classes} if name.endswith("kappa") else {}))
        reference = float(TORCHMETRICS[name](classes)(predicted, labels))
    value = float(loss_of(name, validate_args=True).metric(one_hot, labels))
    if np.isfinite(expected) and not (name == "mcc" and expected == 0.0 and len(set(predicted.tolist())) == 1):
        assert value == pytest.approx(expected, abs=1e-9)
        assert value == pytest.approx(reference, abs=1e-5)
    assert np.isfinite(value)


@pytest.mark.parametrize("name", sorted(SKLEARN))
def test_two_class_forms_agree_with_the_matrix(name):
    """task='binary' compiles the 2 x 2 form over TP, FP, FN, TN: the same number as the matrix of two classes."""
    labels, predicted, one_hot = hard_batch(2, 60, 3)
    binary = float(metricc.loss(name, approximation="identity").metric(predicted.double(), labels.double()))
    assert binary == pytest.approx(float(loss_of(name).metric(one_hot, labels)), abs=1e-12)
    assert binary == pytest.approx(SKLEARN[name](labels.numpy(), predicted.numpy()), abs=1e-12)


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_each_aggregate_of_the_runtime_is_its_definition(classes):
    matrices = torch.rand(3, classes, classes, dtype=torch.float64, generator=torch.Generator().manual_seed(classes))
    found = matrix_aggregates(matrices, list(AGGREGATE_NAMES))
    for row, matrix in enumerate(matrices):
        defined = matrix_aggregates_by_definition(matrix)
        assert set(defined) == set(AGGREGATE_NAMES)
        for name in AGGREGATE_NAMES:
            torch.testing.assert_close(found[name][row], defined[name], rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("names", [[name] for name in AGGREGATE_NAMES] + [list(AGGREGATE_NAMES)], ids=list(AGGREGATE_NAMES) + ["all"])
@pytest.mark.parametrize("classes", [2, 3, 4, 5])
def test_each_aggregates_derivative_by_the_matrix_is_autograd_of_its_value(names, classes):
    """The runtime's table gives each aggregate's d / dM beside its value; G adds them, each matrix's weighed by its
    partial: autograd of sum over aggregates A of partial_A[r] A[r]."""
    g = torch.Generator().manual_seed(classes)
    matrices = torch.rand(3, classes, classes, dtype=torch.float64, generator=g).requires_grad_(True)
    partials = {name: torch.randn(3, dtype=torch.float64, generator=g) for name in names}
    values = matrix_aggregates(matrices, names)
    (expected,) = torch.autograd.grad(sum((values[name] * partials[name]).sum() for name in names), matrices)
    torch.testing.assert_close(matrix_gradient(matrices.detach(), partials), expected, rtol=1e-12, atol=1e-12)


def test_an_unknown_aggregate_is_an_error_naming_it():
    with pytest.raises(ValueError, match="SUM_XY"):
        matrix_aggregates(torch.eye(3).unsqueeze(0), ["SUM_XY"])


def inputs(classes, samples, seed, dense=False, ignore=False):
    g = torch.Generator().manual_seed(seed)
    shape = (samples, classes, 3, 2) if dense else (samples, classes)
    logits = torch.randn(shape, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (samples, 3, 2) if dense else (samples,), generator=g)
    labels.view(-1)[: classes] = torch.arange(classes)  # every class present: no guard is reached
    if ignore:
        labels.view(-1)[classes::5] = -100
    return logits, labels


@pytest.mark.parametrize("name", sorted(SKLEARN) + [CUSTOM])
@settings(max_examples=8)
@given(
    classes=st.integers(3, 6), samples=st.integers(12, 60), seed=st.integers(0, 10_000), from_logits=st.booleans(),
    dense=st.booleans(), samplewise=st.booleans(), ignore=st.booleans(),
)
def test_gradient_equals_autograd_through_a_plain_soft_matrix(name, classes, samples, seed, from_logits, dense, samplewise, ignore):
    logits, labels = inputs(classes, samples, seed, dense, ignore)
    per_row = samplewise and dense
    options = dict(from_logits=from_logits, multidim_average="samplewise" if per_row else "global", ignore_index=-100 if ignore else None)
    loss = metricc.loss(name, name="custom" if name == CUSTOM else None, task="multiclass", direction="maximize", **options)
    preds = logits if from_logits else torch.softmax(logits, 1)
    leaf = preds.clone().requires_grad_(True)
    value = loss(leaf, labels)
    (gradient,) = torch.autograd.grad(value, leaf)

    reference = preds.clone().requires_grad_(True)
    probs = torch.softmax(reference, 1) if from_logits else reference
    kept = labels != -100
    one_hot = torch.nn.functional.one_hot(torch.where(kept, labels, 0), classes).double()
    flat_probs = probs.movedim(1, -1).reshape(samples, -1, classes)
    expected_value = soft_matrix_loss(name, flat_probs, one_hot.reshape(samples, -1, classes), kept.reshape(samples, -1, 1).double(), per_row, -1)
    (expected,) = torch.autograd.grad(expected_value, reference)
    torch.testing.assert_close(value, expected_value, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gradient, expected, rtol=1e-9, atol=1e-9 * float(expected.abs().max()) + 1e-15)


def test_class_index_and_one_hot_targets_agree():
    logits, labels = inputs(4, 40, 1)
    loss = loss_of("qwk", from_logits=True)
    one_hot = torch.nn.functional.one_hot(labels, 4).double()
    for target in (labels, one_hot):
        leaf = logits.clone().requires_grad_(True)
        loss(leaf, target).backward()
        target_gradient = leaf.grad
        if target is labels:
            first = target_gradient
    torch.testing.assert_close(first, target_gradient)


@pytest.mark.parametrize("name", sorted(SKLEARN))
def test_a_batch_of_one_class_gives_a_finite_loss_and_gradient(name):
    """Kappa's and mcc's denominators vanish when every sample has one class: the guards keep both finite."""
    loss = loss_of(name, from_logits=True)
    for logits in (torch.randn(10, 4, dtype=torch.float64), torch.full((10, 4), -30.0, dtype=torch.float64).index_fill_(1, torch.tensor([0]), 30.0)):
        leaf = logits.requires_grad_(True)
        value = loss(leaf, torch.zeros(10, dtype=torch.long))
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize("option", [dict(average="macro"), dict(zero_division=0.0), dict(include_background=False), dict(class_weights=[1, 2, 3])])
def test_options_that_do_not_apply_to_a_matrix_metric_are_refused_with_the_reason(option):
    reason = "whole C x C confusion matrix|class_weights weigh classes in average='macro'"
    with pytest.raises(metricc.OptionError, match=reason):
        loss_of("qwk", **option)
    with pytest.raises(ValueError, match=reason):
        type(loss_of("qwk"))(**option)


def test_the_one_vs_rest_reading_stays_reachable():
    labels, predicted, one_hot = hard_batch(4, 80, 5)
    per_class = metricc.loss("mcc_ovr", task="multiclass", average="none", approximation="identity").metric(one_hot, labels)
    for k in range(4):
        expected = skm.matthews_corrcoef((labels == k).numpy(), (predicted == k).numpy())
        assert float(per_class[k]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    "formula, oracle",
    [
        ("1 - (1 - qwk)", lambda y, p: SKLEARN["quadratic_kappa"](y, p)),
        ("2 * accuracy - 1", lambda y, p: 2 * skm.accuracy_score(y, p) - 1),
        ("(mcc + cohen_kappa) / 2", lambda y, p: (skm.matthews_corrcoef(y, p) + skm.cohen_kappa_score(y, p)) / 2),
    ],
)
def test_a_formula_of_matrix_metrics_is_a_metric_of_the_whole_matrix(formula, oracle):
    """With task='multiclass' a library name in a formula is what it is alone: qwk * 1 is the whole-matrix kappa."""
    labels, predicted, one_hot = hard_batch(4, 80, 6)
    value = loss_of(formula, approximation="identity").metric(one_hot, labels)
    assert float(value) == pytest.approx(oracle(labels.numpy(), predicted.numpy()), abs=1e-9)


def test_a_formula_that_also_names_a_per_class_metric_reads_every_name_per_class():
    labels, predicted, one_hot = hard_batch(4, 80, 7)
    value = loss_of("accuracy + f1", average="macro", approximation="identity").metric(one_hot, labels)
    scores = [
        skm.accuracy_score(labels == k, predicted == k) + skm.f1_score(labels == k, predicted == k) for k in range(4)
    ]
    assert float(value) == pytest.approx(np.mean(scores), abs=1e-9)


def test_mixing_counts_and_aggregates_is_an_error():
    with pytest.raises(metricc.InvalidMetricError, match="mixes per-class counts"):
        metricc.emit("TRACE / SUM + TP / P", task="multiclass")


def test_direction_of_a_formula_is_found_by_sampling():
    assert metricc.loss("TRACE / SUM", name="agreement", task="multiclass").maximize is True
    assert metricc.loss("OBSERVED_QUADRATIC / SUM", name="cost", task="multiclass").maximize is False
    with pytest.raises(metricc.DirectionError):
        metricc.emit("(TRACE / SUM - 0.5)^2", name="odd", task="multiclass")


def test_compound_loss_adds_cross_entropy():
    logits, labels = inputs(5, 30, 2)
    plain, compound = loss_of("qwk", from_logits=True), loss_of("qwk", from_logits=True, ce_weight=0.7)
    expected = plain(logits, labels) + 0.7 * torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(compound(logits, labels), expected)


def test_running_matrix_mixes_history_and_batch():
    first, second = inputs(4, 30, 3), inputs(4, 30, 4)
    loss = loss_of("qwk", from_logits=True, count_momentum=0.25).train()
    loss(*first)
    running = loss(*second)
    matrix = 0.75 * loss_of("qwk", from_logits=True).confusion_matrix(*first) + 0.25 * loss_of("qwk", from_logits=True).confusion_matrix(*second)
    aggregates = matrix_aggregates_by_definition(matrix)
    kappa = 1 - aggregates["SUM"] * aggregates["OBSERVED_QUADRATIC"] / aggregates["EXPECTED_QUADRATIC"]
    assert float(running) == pytest.approx(1 - float(kappa), abs=1e-12)


def test_scripted_compiled_and_exported_modules_agree():
    logits, labels = inputs(5, 40, 6)
    loss = loss_of("qwk", from_logits=True)
    expected = loss(logits, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(loss)
    torch._dynamo.reset()
    for module in (scripted, torch.compile(loss, fullgraph=True), torch.export.export(loss, (logits, labels)).module()):
        torch.testing.assert_close(module(logits, labels), expected)
    leaf = logits.clone().requires_grad_(True)
    scripted(leaf, labels).backward()
    other = logits.clone().requires_grad_(True)
    loss(other, labels).backward()
    torch.testing.assert_close(leaf.grad, other.grad)


def test_grad_shows_partials_per_aggregate_and_the_matrix_gradient(capsys):
    assert main(["grad", "qwk"]) == 0
    out = capsys.readouterr().out
    assert "d quadratic_kappa / d EXPECTED_QUADRATIC" in out and "G[i, j]" in out
    assert main(["explain", "qwk"]) == 0
    assert "G[i, j]" in capsys.readouterr().out


@pytest.mark.parametrize("dense", [False, True], ids=["rows", "dense"])
def test_large_inputs_keep_nothing_prediction_sized_and_match_the_scripted_module(dense):
    """Above 65536 elements a custom autograd Function keeps G, the labels and the mask: no N x C tensor (identity
    approximation, probabilities); its gradient equals TorchScript's, autograd through the formula."""
    shape, labels_shape = ((3, 5, 120, 120), (3, 120, 120)) if dense else ((20_000, 5), (20_000,))
    g = torch.Generator().manual_seed(7)
    probs = torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64), 1)
    labels = torch.randint(0, 5, labels_shape, generator=g)
    loss = loss_of("qwk")
    kept = []

    def pack(tensor):
        kept.append(tensor.numel())
        return tensor

    leaf = probs.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        value = loss(leaf, labels)
    value.backward()
    assert max(kept) < probs.numel() / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(loss_of("qwk"))
    other = probs.clone().requires_grad_(True)
    scripted(other, labels).backward()
    torch.testing.assert_close(leaf.grad, other.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("samplewise", [False, True], ids=["global", "samplewise"])
def test_empty_batches_and_fully_ignored_images_are_left_out(samplewise):
    """An image with no kept position does not count in the mean, as for the per-class metrics; with nothing kept
    at all the metric is 0 (loss 1), never an error or NaN."""
    options = dict(multidim_average="samplewise" if samplewise else "global", ignore_index=255, from_logits=True)
    loss = loss_of("qwk", **options)
    empty = torch.empty(0, 4, 3, 3, requires_grad=True)
    value = loss(empty, torch.empty(0, 3, 3, dtype=torch.long))
    value.backward()
    assert float(value.detach()) == 1.0 and empty.grad.shape == empty.shape
    logits, labels = inputs(4, 2, 8, dense=True)
    assert float(loss(logits, torch.full_like(labels, 255))) == 1.0
    if samplewise:
        ignored = labels.clone()
        ignored[1] = 255
        torch.testing.assert_close(loss(logits, ignored), loss(logits[:1], labels[:1]))


def test_the_compilers_description_of_each_aggregate_is_the_runtimes():
    """language.py names each aggregate and its two-class value once; the runtime computes it: the same names, and
    on a 2 x 2 matrix [[TN, FP], [FN, TP]] the same values."""
    from metricc.language import COUNTS, MATRIX_FORM

    assert MATRIX_FORM.names == AGGREGATE_NAMES
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        tp, fp, fn, tn = (torch.rand(4, generator=g, dtype=torch.float64) * 50).tolist()
        values = matrix_aggregates(torch.tensor([[[tn, fp], [fn, tp]]], dtype=torch.float64), list(AGGREGATE_NAMES))
        for variable in MATRIX_FORM.variables:
            expected = float(variable.two_class.subs(dict(zip(COUNTS, (tp, fp, fn, tn)))))
            assert float(values[variable.name]) == pytest.approx(expected, rel=1e-12), variable.name
