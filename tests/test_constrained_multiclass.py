"""Training under constraints with task='multiclass': the Lagrangian's value and gradient against float64 autograd
through hand-written per-class soft counts and a hand-written soft confusion matrix, and the multipliers' dual
ascent against sklearn's rates of the arg-max predictions (ignore_index left out)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score, precision_score, recall_score

import metricc

CLASSES, IGNORED = 3, -1

#: Per-class rates as a user writes them, and the matrix metrics of a soft confusion matrix M (rows: true class).
COUNT_FORMULAS = {
    "recall": lambda tp, fp, fn, tn: tp / (tp + fn),
    "precision": lambda tp, fp, fn, tn: tp / (tp + fp),
    "f1": lambda tp, fp, fn, tn: 2 * tp / (2 * tp + fp + fn),
}


def kappa(matrix):
    total = matrix.sum()
    observed, expected = matrix.trace() / total, (matrix.sum(1) @ matrix.sum(0)) / total**2
    return (observed - expected) / (1 - expected)


MATRIX_FORMULAS = {"TRACE / SUM": lambda matrix: matrix.trace() / matrix.sum(), "cohen_kappa": kappa}


def averaged(formula, probs, one_hot, keep, average):
    """A per-class rate of the soft counts sum p y, sum p (1 - y), ... over kept positions, averaged as sklearn does."""
    p, y, k = probs, one_hot, keep[:, None]
    tp, fp, fn, tn = (p * y * k).sum(0), (p * (1 - y) * k).sum(0), ((1 - p) * y * k).sum(0), ((1 - p) * (1 - y) * k).sum(0)
    if average == "micro":
        return formula(tp.sum(), fp.sum(), fn.sum(), tn.sum())
    per_class = formula(tp, fp, fn, tn)
    if average == "macro":
        return per_class.mean()
    support = (y * k).sum(0)  # weighted: by each class's number of kept targets
    return (per_class * support).sum() / support.sum()


def oracle_lagrangian(objective, constraints, multipliers, preds, labels, from_logits, average):
    """(1 - objective) + torch's cross-entropy (a constrained loss's default ce_weight=1.0) + sum_k lambda_k *
    violation_k, with A(p) = p (the multi-class default)."""
    keep = (labels != IGNORED).to(preds.dtype)
    safe_labels = torch.where(labels == IGNORED, 0, labels)
    one_hot = torch.nn.functional.one_hot(safe_labels, CLASSES).to(preds.dtype)
    probs = torch.softmax(preds, 1) if from_logits else preds
    log_probs = torch.log_softmax(preds, 1) if from_logits else torch.log(preds)
    total = 1 - averaged(COUNT_FORMULAS[objective], probs, one_hot, keep, average)
    total = total + torch.nn.functional.nll_loss(log_probs, labels, ignore_index=IGNORED)
    matrix = (one_hot * keep[:, None]).t() @ probs
    for (metric, comparison, bound), multiplier in zip(constraints, multipliers):
        if metric in MATRIX_FORMULAS:
            rate = MATRIX_FORMULAS[metric](matrix)
        else:
            rate = averaged(COUNT_FORMULAS[metric], probs, one_hot, keep, average)
        total = total + multiplier * ((bound - rate) if comparison == ">=" else (rate - bound))
    return total


def inputs(seed, from_logits, with_ignored):
    """float64 predictions (N = 15, C = 3), every class among the kept targets; some targets ignore_index."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (15,), generator=g)
    labels[:CLASSES] = torch.arange(CLASSES)
    if with_ignored:
        labels[-3:] = IGNORED
    logits = torch.randn(15, CLASSES, generator=g, dtype=torch.float64)
    return (logits if from_logits else torch.softmax(logits, 1)), labels


CASES = [
    ("recall", [("precision", ">=", 0.8)], "macro", False),
    ("recall", [("precision", ">=", 0.8), ("TRACE / SUM", ">=", 0.7)], "weighted", True),
    ("f1", [("cohen_kappa", ">=", 0.4), ("recall", "<=", 0.95)], "micro", False),
    ("precision", [("f1", ">=", 0.6), ("cohen_kappa", ">=", 0.3)], "macro", True),
]


@pytest.mark.parametrize("from_logits", [False, True], ids=["probabilities", "logits"])
@pytest.mark.parametrize("objective, constraints, average, with_ignored", CASES, ids=lambda case: str(case))
def test_the_multiclass_lagrangian_and_its_gradient_are_autograd_through_hand_written_counts_and_matrix(
    objective, constraints, average, with_ignored, from_logits
):
    texts = [f"{metric} {comparison} {bound}" for metric, comparison, bound in constraints]
    loss = metricc.loss(objective, constraints=texts, task="multiclass", average=average, from_logits=from_logits, ignore_index=IGNORED)
    multipliers = torch.tensor([0.7, 1.3][: len(texts)], dtype=torch.float64)
    loss.lagrange_multipliers = multipliers.clone()
    loss.eval()
    for seed in range(3):
        preds, labels = inputs(seed, from_logits, with_ignored)
        leaf = preds.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(loss(leaf, labels), leaf)
        reference = preds.clone().requires_grad_(True)
        expected = oracle_lagrangian(objective, constraints, multipliers, reference, labels, from_logits, average)
        (expected_gradient,) = torch.autograd.grad(expected, reference)
        torch.testing.assert_close(loss(preds, labels), expected.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gradient, expected_gradient, rtol=1e-9, atol=1e-12)
        assert gradient.abs().max() > 1e-3
        assert torch.equal(loss.lagrange_multipliers, multipliers)


# ---- the multipliers --------------------------------------------------------------------------------------------


def sklearn_rates(logits, labels):
    """sklearn's macro precision and accuracy of the arg-max predictions at the kept positions."""
    kept = labels.numpy() != IGNORED
    y, predicted = labels.numpy()[kept], logits.argmax(1).numpy()[kept]
    return np.array([precision_score(y, predicted, average="macro", zero_division=0), accuracy_score(y, predicted)])


def test_multiclass_multipliers_rise_on_sklearns_arg_max_rates_while_violated_and_fall_to_exactly_zero_when_slack():
    step, bounds = 0.25, np.array([0.9, 0.8])
    loss = metricc.loss("recall", constraints=["precision >= 0.9", "TRACE / SUM >= 0.8"], task="multiclass", average="macro",
                        from_logits=True, ignore_index=IGNORED, multiplier_step=step).train()
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, IGNORED, IGNORED])
    violating = torch.nn.functional.one_hot(torch.tensor([0, 0, 1, 0, 1, 0, 0, 1, 0, 2, 2]), CLASSES).double() * 4
    right = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1]), CLASSES).double() * 4
    right[-2:] = torch.tensor([[0.0, 0.0, 4.0], [4.0, 0.0, 0.0]])  # wrong where the target is ignored: left out
    violated, slack = sklearn_rates(violating, labels), sklearn_rates(right, labels)
    assert (violated < bounds).all() and (slack > bounds).all()  # class 2 is never predicted: its precision counts 0
    expected, history = np.zeros(2), []
    for _ in range(5):
        loss(violating.clone().requires_grad_(True), labels)
        expected = np.maximum(0.0, expected + step * (bounds - violated))
        history.append(list(loss.multipliers.values()))
        np.testing.assert_allclose(history[-1], expected, rtol=1e-6)
    assert (np.diff(np.array(history), axis=0) > 0).all()
    np.testing.assert_allclose(list(loss.rates.values()), violated, rtol=1e-6)
    for _ in range(40):
        loss(right.clone().requires_grad_(True), labels)
        expected = np.maximum(0.0, expected + step * (bounds - slack))
        np.testing.assert_allclose(list(loss.multipliers.values()), expected, rtol=1e-6, atol=1e-12)
    assert list(loss.multipliers.values()) == [0.0, 0.0]
    np.testing.assert_allclose(list(loss.rates.values()), slack, rtol=1e-6)


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
def test_the_hard_rates_of_images_are_sklearns_of_the_arg_max_at_every_kept_pixel(average):
    """(N, C, H, W) probabilities and (N, H, W) labels with ignored pixels: recall and Cohen's kappa of the
    per-pixel arg-max, as sklearn gives them on the flattened kept pixels."""
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(2, CLASSES, 4, 5, generator=g), 1)
    labels = torch.randint(0, CLASSES, (2, 4, 5), generator=g)
    labels[0, 0] = IGNORED
    loss = metricc.loss("f1", constraints=["recall >= 0.99", "cohen_kappa >= 0.99"], task="multiclass", average=average,
                        ignore_index=IGNORED, multiplier_step=1.0).train()
    loss(probs, labels)
    kept = labels.reshape(-1).numpy() != IGNORED
    y, predicted = labels.reshape(-1).numpy()[kept], probs.argmax(1).reshape(-1).numpy()[kept]
    expected = [recall_score(y, predicted, average=average, zero_division=0), cohen_kappa_score(y, predicted)]
    np.testing.assert_allclose(list(loss.rates.values()), expected, rtol=1e-6)
    np.testing.assert_allclose(list(loss.multipliers.values()), np.maximum(0.0, 0.99 - np.array(expected)), rtol=1e-6)


def test_a_matrix_constraint_leaves_the_per_class_options_to_the_objective():
    loss = metricc.loss("recall", constraints=["cohen_kappa >= 0.5"], task="multiclass", average="macro", include_background=False)
    assert (loss.objective.average, loss.objective.include_background) == ("macro", False)
    assert (loss.soft_rates[0].average, loss.soft_rates[0].include_background) == ("micro", True)


def test_average_none_is_refused_for_multiclass_as_for_the_other_tasks():
    with pytest.raises(metricc.OptionError, match="average='none' gives one loss per class"):
        metricc.loss("recall", constraints=["precision >= 0.9"], task="multiclass", average="none")
