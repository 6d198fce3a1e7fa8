"""Binary losses against oracles: sklearn for values, torch.autograd and gradcheck for gradients."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm

import metricc
from losses import compiled
from oracles import anyloss_approximation, batch_with_counts, f1, mcc, plain_soft_counts

SKLEARN = {
    "f1": skm.f1_score,
    "precision": skm.precision_score,
    "recall": skm.recall_score,
    "accuracy": skm.accuracy_score,
    "balanced_accuracy": skm.balanced_accuracy_score,
    "mcc": skm.matthews_corrcoef,
    "jaccard": skm.jaccard_score,
}

confusion_matrices = st.tuples(*[st.integers(0, 40)] * 4).filter(lambda c: c[0] + c[2] > 0 and c[0] + c[1] > 0 and c[1] + c[3] > 0 and c[2] + c[3] > 0)


@given(confusion_matrices, st.sampled_from(sorted(SKLEARN)))
def test_hard_predictions_match_sklearn(counts, name):
    preds, target = batch_with_counts(*counts)
    module = compiled(name, approximation="identity")
    value = module.metric(preds, target).item()
    assert value == pytest.approx(SKLEARN[name](target.numpy(), preds.numpy()), abs=1e-6)


@given(confusion_matrices)
def test_soft_counts_of_hard_predictions_equal_sklearn_confusion_matrix(counts):
    preds, target = batch_with_counts(*counts)
    for approximation in ("identity", "anyloss"):
        tp = compiled("TP", approximation=approximation, direction="maximize").metric(preds, target)
        fp = compiled("FP", approximation=approximation, direction="minimize").metric(preds, target)
        fn = compiled("FN", approximation=approximation, direction="minimize").metric(preds, target)
        tn = compiled("TN", approximation=approximation, direction="maximize").metric(preds, target)
        (sk_tn, sk_fp), (sk_fn, sk_tp) = skm.confusion_matrix(target.numpy(), preds.numpy(), labels=[0, 1])
        tolerance = 1e-6 * max(sum(counts), 1)
        assert [tp.item(), fp.item(), fn.item(), tn.item()] == pytest.approx([sk_tp, sk_fp, sk_fn, sk_tn], abs=tolerance)


EAGER = {
    "f1": lambda *counts: 1 - f1(*counts),
    "mcc": lambda *counts: 1 - mcc(*counts),
    "balanced_accuracy": lambda tp, fp, fn, tn: 1 - (tp / (tp + fn) + tn / (tn + fp)) / 2,
    "precision": lambda tp, fp, fn, tn: 1 - tp / (tp + fp),
    "error_rate": lambda tp, fp, fn, tn: (fp + fn) / (tp + fp + fn + tn),
}


def random_batch(n, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    preds = torch.rand(n, generator=generator, dtype=dtype)
    target = (torch.rand(n, generator=generator) < 0.3).to(dtype)
    target[0], target[1] = 1.0, 0.0
    return preds, target


@pytest.mark.parametrize("name", sorted(EAGER))
@pytest.mark.parametrize("steepness", [73.0, 5.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_closed_form_gradient_equals_autograd(name, steepness, seed):
    preds, target = random_batch(200, seed)
    preds.requires_grad_(True)
    module = compiled(name, steepness=steepness)
    loss = module(preds, target)
    (gradient,) = torch.autograd.grad(loss, preds)
    reference = EAGER[name](*plain_soft_counts(anyloss_approximation(preds, steepness), target))
    (expected,) = torch.autograd.grad(reference, preds)
    assert loss.item() == pytest.approx(reference.item(), abs=1e-12)
    torch.testing.assert_close(gradient, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["f1", "mcc", "balanced_accuracy", "cohen_kappa"])
@pytest.mark.parametrize("approximation", ["anyloss", "identity", "linear"])
def test_gradcheck(name, approximation):
    preds, target = random_batch(24, 3)
    module = compiled(name, approximation=approximation, steepness=4.0, width=0.5)
    if approximation == "linear":
        preds = 0.4 + 0.2 * preds
    preds.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: module(p, target), (preds,))


@pytest.mark.parametrize("approximation", ["anyloss", "identity"])
def test_logits_gradient_equals_autograd(approximation):
    logits = torch.randn(100, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 3
    _, target = random_batch(100, 5)
    logits.requires_grad_(True)
    module = compiled("f1", from_logits=True, approximation=approximation)
    (gradient,) = torch.autograd.grad(module(logits, target), logits)
    probs = torch.sigmoid(logits)
    counts = plain_soft_counts(anyloss_approximation(probs) if approximation == "anyloss" else probs, target)
    (expected,) = torch.autograd.grad(EAGER["f1"](*counts), logits)
    torch.testing.assert_close(gradient, expected, rtol=0, atol=1e-9)


def test_minimised_metric_loss_is_the_metric():
    preds, target = random_batch(50, 7)
    module = compiled("error_rate")
    assert module(preds, target).item() == pytest.approx(module.metric(preds, target).item())


def test_direction_can_be_overridden():
    preds, target = random_batch(50, 8)
    maximised = compiled("f1")(preds, target)
    minimised = compiled("f1", direction="minimize")(preds, target)
    assert minimised.item() == pytest.approx(1 - maximised.item())


def test_auto_direction_fails_clearly_for_a_non_monotone_metric():
    with pytest.raises(metricc.DirectionError, match="direction="):
        metricc.loss("TP - TN")


@pytest.mark.parametrize("shape", [(16,), (16, 1), (4, 1, 2, 2)])
def test_binary_shapes(shape):
    preds, target = random_batch(16, 9)
    module = compiled("f1")
    flat = module(preds, target)
    target_shape = shape if len(shape) < 3 else (4, 2, 2)
    assert module(preds.reshape(shape), target.reshape(target_shape)).item() == pytest.approx(flat.item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_preserved_in_gradient(dtype):
    preds, target = random_batch(32, 10, dtype)
    preds.requires_grad_(True)
    compiled("mcc")(preds, target).backward()
    assert preds.grad.dtype == dtype and torch.isfinite(preds.grad).all()


def test_empty_batch_and_batches_without_positives_are_finite():
    for name in ("f1", "mcc", "recall", "balanced_accuracy", "precision"):
        module = compiled(name)
        for preds, target in [
            (torch.zeros(0), torch.zeros(0)),
            (torch.rand(10), torch.zeros(10)),
            (torch.rand(10), torch.ones(10)),
            (torch.zeros(10), torch.zeros(10)),
        ]:
            preds.requires_grad_(True)
            loss = module(preds, target)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(preds.grad).all(), name


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\[3\].*\[4\]"):
        compiled("f1")(torch.rand(4), torch.ones(3))


def test_targets_outside_zero_one_are_rejected():
    with pytest.raises(ValueError, match="only 0 and 1"):
        compiled("f1")(torch.rand(4), torch.tensor([0.0, 1.0, 2.0, 1.0]))


def test_nan_predictions_are_an_error_not_a_number():
    with pytest.raises(ValueError, match="NaN"):
        compiled("f1")(torch.tensor([0.5, float("nan")]), torch.tensor([1.0, 0.0]))


def test_nan_predictions_without_validation_give_a_nan_loss():
    loss = compiled("f1", validate_args=False)(torch.tensor([0.5, float("nan")]), torch.tensor([1.0, 0.0]))
    assert torch.isnan(loss)


def test_probabilities_outside_unit_interval_point_to_from_logits():
    with pytest.raises(ValueError, match="from_logits=True"):
        compiled("f1")(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]))


def test_anyloss_complement_does_not_saturate_in_float32():
    preds = torch.tensor([1.0, 0.0, 0.9], dtype=torch.float32)
    target = torch.tensor([1.0, 0.0, 1.0])
    fn = compiled("FN", direction="minimize").metric(preds, target)
    assert fn.item() > 0.0
