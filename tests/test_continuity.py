"""Losses are continuous in the predictions: no averaging weight, zero_division mask or branch moves as the
predictions move inside (0, 1), and only exact 0/1 predictions meet torchmetrics' rule for absent classes.

A sweep moves one class's logits (its soft mass, from about 1e-12 to many samples) in even steps, and halves
every interval whose increment stands out until it vanishes, as a continuous curve's does, or stays, as a jump
does. tests/test_dense.py holds the continuous oracle of the README's segmentation loss, MONAI's DiceLoss,
along the same sweep.
"""

import pytest
import torch
import torchmetrics.classification as tmc

import metricc
from tests.losses import compiled


def largest_jump(curve, low=-30.0, high=4.0, points=80, levels=20, settled=1e-4):
    """The largest increment of curve(shift) that survives halving: the suspect intervals of an even grid (the
    three largest increments, the three largest against both neighbours', the three least like their neighbours'
    mean) are each halved towards their larger half, up to `levels` times or until the increment is below
    `settled`. A jump keeps its size there; a continuous curve's increment shrinks with the interval."""
    shifts = torch.linspace(low, high, points, dtype=torch.float64).tolist()
    values = [float(curve(shift)) for shift in shifts]
    steps = torch.tensor(values).diff()
    size = steps.abs()
    against_neighbours = size[1:-1] / (torch.maximum(size[:-2], size[2:]) + 1e-13)
    unlike_neighbours = (steps[1:-1] - (steps[:-2] + steps[2:]) / 2).abs()
    suspects = set(size.topk(3).indices.tolist())
    for score in (against_neighbours, unlike_neighbours):
        suspects |= set((score.topk(3).indices + 1).tolist())
    largest = 0.0
    for index in suspects:
        (a, b), (value_a, value_b) = shifts[index:index + 2], values[index:index + 2]
        for _ in range(levels):
            if abs(value_b - value_a) < settled:
                break
            middle = (a + b) / 2
            value = float(curve(middle))
            if abs(value - value_a) > abs(value_b - value):
                b, value_b = middle, value
            else:
                a, value_a = middle, value
        largest = max(largest, abs(value_b - value_a))
    return largest


def dense_inputs(task, in_first_image, seed=0, batch=3, classes=4, size=(5, 4)):
    """Logits and targets in which the last class (the only one for binary) has no target, or only in image 0."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, *size, generator=generator, dtype=torch.float64)
    if task == "multiclass":
        target = torch.randint(0, classes - 1, (batch, *size), generator=generator)
        target[0, 0, :2] = classes - 1 if in_first_image else 0
    elif task == "multilabel":
        target = (torch.rand(batch, classes, *size, generator=generator) < 0.4).long()
        target[1 if in_first_image else 0:, -1] = 0
    else:
        logits, target = logits[:, :1], (torch.rand(batch, *size, generator=generator) < 0.3).long()
        target[1 if in_first_image else 0:] = 0
    return logits, target


def swept(loss, logits, target, use_metric, where=(slice(None), -1)):
    """The loss (along its gradient path) or the metric, summed, as a function of a shift of logits[where]."""
    def curve(shift):
        moved = logits.clone()
        moved[where] += shift
        if use_metric:
            return loss.metric(moved, target).sum()
        return loss(moved.requires_grad_(True), target).detach().sum()
    return curve


JUMP = 1e-3  # far above what is left of a continuous curve's increment, far below the old rule's steps
CONFIGURATIONS = [
    dict(task="multiclass", average="macro"),
    dict(task="multiclass", average="macro", multidim_average="samplewise"),
    dict(task="multiclass", average="macro", zero_division=1.0),
    dict(task="multiclass", average="macro", multidim_average="samplewise", zero_division=1.0, include_background=False),
    dict(task="multiclass", average="weighted", zero_division=1.0),
    dict(task="multiclass", average="none", zero_division=0.5),
    dict(task="multilabel", average="macro", zero_division=1.0),
    dict(task="multilabel", average="macro", multidim_average="samplewise", zero_division=1.0),
    dict(task="binary", zero_division=1.0),
    dict(task="binary", multidim_average="samplewise", zero_division=1.0),
]
# every configuration with A(p) = p; anyloss (never exactly 0) and linear (0 below tau - width/2) on some of each task
CASES = [(options, "identity") for options in CONFIGURATIONS] + [
    (CONFIGURATIONS[index], approximation) for index in (0, 3, 7, 8) for approximation in ("anyloss", "linear")
]


def case_id(case):
    return "-".join(f"{value}" for value in case.values()) if isinstance(case, dict) else case


@pytest.mark.parametrize("options,approximation", CASES, ids=case_id)
def test_loss_and_metric_have_no_jump_as_one_class_mass_moves(options, approximation):
    """The mass of the last class (no target in the rows that matter) from about 1e-12 past the old 0.5 boundary."""
    loss = compiled("f1", from_logits=True, approximation=approximation, **options)
    logits, target = dense_inputs(options["task"], options.get("multidim_average") == "samplewise")
    for use_metric in (False, True):
        assert largest_jump(swept(loss, logits, target, use_metric)) < JUMP, use_metric


def test_samples_average_has_no_jump_as_an_empty_sample_mass_moves():
    loss = compiled("f1", task="multilabel", from_logits=True, approximation="identity", average="samples", zero_division=1.0)
    logits, target = dense_inputs("multilabel", False, size=())
    target[1] = 0  # sample 1 has no label: zero_division is its metric only where every prediction is exactly 0
    for use_metric in (False, True):
        assert largest_jump(swept(loss, logits, target, use_metric, where=(1,))) < JUMP


def test_matrix_loss_has_no_jump_as_one_class_mass_moves():
    """Matrix metrics leave out only matrices without a kept target position, which predictions do not move."""
    loss = compiled("mcc", task="multiclass", from_logits=True, multidim_average="samplewise")
    logits, target = dense_inputs("multiclass", True)
    for use_metric in (False, True):
        assert largest_jump(swept(loss, logits, target, use_metric)) < JUMP


def test_the_check_finds_a_step_and_passes_a_steep_curve():
    """The check itself: a weight that becomes 1 once the soft mass passes 0.5 is reported; a steep sigmoid is not."""
    def mass(shift):
        return 3.0 * torch.sigmoid(torch.tensor(shift, dtype=torch.float64))
    assert largest_jump(lambda shift: 0.3 + 0.01 * mass(shift) + 0.02 * float(mass(shift) >= 0.5)) > 0.01
    assert largest_jump(lambda shift: torch.sigmoid(torch.tensor(73.0 * (shift + 1.3), dtype=torch.float64))) < JUMP


# ---- hard predictions keep torchmetrics' rule, whatever the approximation ----------------------------------------


def hard_predictions(seed=0, samples=40, classes=5):
    """One-hot predictions and labels in which class 4 is absent from both and class 3 only predicted."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 3, (samples,), generator=generator)
    predicted = torch.where(torch.rand(samples, generator=generator) < 0.6, target, torch.randint(0, 4, (samples,), generator=generator))
    assert (predicted == 3).any() and not (predicted == 4).any()
    return torch.nn.functional.one_hot(predicted, classes).double(), predicted, target


@pytest.mark.parametrize("approximation", ["identity", "anyloss", "linear"])
@pytest.mark.parametrize("average", ["macro", "none"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_hard_predictions_equal_torchmetrics_with_every_approximation(approximation, average, zero_division):
    preds, predicted, target = hard_predictions()
    loss = compiled("f1", task="multiclass", approximation=approximation, average=average, zero_division=zero_division)
    expected = tmc.MulticlassF1Score(num_classes=5, average=average, zero_division=zero_division)(predicted, target)
    torch.testing.assert_close(loss.metric(preds, target), expected.double(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("approximation", ["identity", "anyloss", "linear"])
def test_binary_batch_without_positives_takes_zero_division_only_at_exact_zeros(approximation):
    loss = compiled("f1", approximation=approximation, zero_division=1.0)
    target = torch.zeros(8, dtype=torch.long)
    hard = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    assert float(loss(hard, target).detach()) == 0.0  # the float path of one count: 1 - zero_division
    assert float(loss.metric(hard, target)) == float(tmc.BinaryF1Score(zero_division=1.0)(hard.detach(), target))
    soft = torch.full((8,), 1e-9, dtype=torch.float64, requires_grad=True)
    assert float(loss.metric(soft, target)) == pytest.approx(0.0, abs=1e-12)  # present: F1 = 0, as just above 0


def test_running_counts_decide_absence_alike_for_every_approximation():
    """With count_momentum, a class with no target in the pooled counts is absent exactly when this batch puts no
    probability on it, whatever the approximation (identity's pooled FP would remember earlier steps)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (40,), generator=g)  # class 2 is never a target
    first = torch.softmax(torch.randn(40, 3, generator=g, dtype=torch.float64), 1)
    second = torch.softmax(torch.randn(40, 3, generator=g, dtype=torch.float64), 1)
    second[:, 2] = 0.0
    second = second / second.sum(1, keepdim=True)
    for approximation in ("identity", "anyloss", "linear"):
        loss = metricc.loss("f1", task="multiclass", average="macro", approximation=approximation, count_momentum=0.5).train()
        loss(first, labels)
        value = loss(second, labels)
        pooled = loss.running_counts[:, 0, :, 0]
        f1 = 2 * pooled[0] / (2 * pooled[0] + pooled[1] + pooled[2])
        assert float(pooled[0, 2] + pooled[2, 2]) == 0.0
        torch.testing.assert_close(value, 1 - f1[:2].mean(), rtol=1e-12, atol=1e-12, msg=approximation)
