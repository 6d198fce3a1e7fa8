"""Dense (segmentation) losses: MONAI's Dice and Tversky losses as metricc formulas, and torchmetrics per image.

MONAI computes soft counts from probabilities (our approximation='identity') with smoothing constants in the
formula and averages per image and class (batch=False), which is multidim_average='samplewise' with a macro
average. Its loss, and autograd through it, are the oracles for values and gradients.
"""

import pytest
import torch
import torchmetrics.classification as tmc
from monai.losses import DiceLoss, TverskyLoss

import metricc

MONAI_DICE = "(2*TP + 1e-5) / (2*TP + FP + FN + 1e-5)"
MONAI_TVERSKY = "(TP + 1e-5) / (TP + 0.3*FP + 0.7*FN + 1e-5)"


def segmentation(seed, batch=3, classes=4, size=(8, 7), scale=2.0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, *size, generator=generator, dtype=torch.float64) * scale
    labels = torch.randint(0, classes, (batch, *size), generator=generator)
    return logits.requires_grad_(True), labels


def ours_and_monai(ours, monai, logits, ours_target, monai_target):
    value = ours(logits, ours_target)
    (grad,) = torch.autograd.grad(value, logits)
    expected = monai(logits, monai_target)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(value, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_softmax_dice_equals_monai(include_background, batch):
    logits, labels = segmentation(0)
    ours = metricc.loss(
        MONAI_DICE, task="multiclass", from_logits=True, approximation="identity", average="macro",
        multidim_average="global" if batch else "samplewise", include_background=include_background,
    )
    monai = DiceLoss(softmax=True, to_onehot_y=True, include_background=include_background, batch=batch)
    ours_and_monai(ours, monai, logits, labels, labels[:, None])


def test_sigmoid_dice_on_one_hot_targets_equals_monai():
    logits, labels = segmentation(1)
    one_hot = torch.nn.functional.one_hot(labels, 4).movedim(-1, 1).double()
    ours = metricc.loss(MONAI_DICE, task="multilabel", from_logits=True, approximation="identity", average="macro",
                        multidim_average="samplewise")
    ours_and_monai(ours, DiceLoss(sigmoid=True), logits, one_hot, one_hot)


def test_tversky_equals_monai():
    logits, labels = segmentation(2)
    ours = metricc.loss(MONAI_TVERSKY, task="multiclass", from_logits=True, approximation="identity", average="macro",
                        multidim_average="samplewise", include_background=False)
    monai = TverskyLoss(softmax=True, to_onehot_y=True, include_background=False, alpha=0.3, beta=0.7)
    ours_and_monai(ours, monai, logits, labels, labels[:, None])


def test_library_tversky_with_parameters_equals_monai_without_smoothing():
    logits, labels = segmentation(3)
    loss_class = type(metricc.loss("tversky"))
    ours = loss_class(task="multiclass", from_logits=True, approximation="identity", average="macro",
                      multidim_average="samplewise", alpha=0.3, beta=0.7)
    monai = TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7, smooth_nr=0.0, smooth_dr=0.0)
    ours_and_monai(ours, monai, logits, labels, labels[:, None])


def test_class_weights_and_ignore_index_equal_monai():
    logits, labels = segmentation(4)
    labels[:, :2] = 255
    # MONAI multiplies each class's loss by its weight and takes the plain mean; with weights summing to the number
    # of classes that is our weighted mean
    weights = [0.5, 1.0, 1.5]
    ours = metricc.loss(MONAI_DICE, task="multiclass", from_logits=True, approximation="identity", average="macro",
                        multidim_average="samplewise", include_background=False, class_weights=weights, ignore_index=255)
    monai = DiceLoss(softmax=True, to_onehot_y=True, include_background=False, weight=weights, ignore_index=255)
    ours_and_monai(ours, monai, logits, labels, labels[:, None])


def test_binary_segmentation_layouts_equal_monai():
    logits, labels = segmentation(5, classes=1)
    mask = (labels > -1).long() * (torch.rand(labels.shape, generator=torch.Generator().manual_seed(0)) < 0.3)
    ours = metricc.loss(MONAI_DICE, from_logits=True, approximation="identity", multidim_average="samplewise")
    monai = DiceLoss(sigmoid=True)
    ours_and_monai(ours, monai, logits, mask, mask[:, None])  # (B, H, W) target beside (B, 1, H, W) logits
    ours_and_monai(ours, monai, logits, mask[:, None], mask[:, None])


README_DICE = dict(task="multiclass", from_logits=True, approximation="identity", average="macro",
                   multidim_average="samplewise", include_background=False, ignore_index=255)


@pytest.mark.parametrize("ignored", [False, True])
def test_readme_dice_equals_monai_where_a_class_is_absent_from_images(ignored):
    """The README's configuration exactly. Class 3 has targets in image 0 only; its logits sweep its soft mass in
    the other images from about 1e-12 past 0.5, where the old rule (soft TP + FP + FN < 0.5) left it out."""
    logits, labels = segmentation(7)
    labels[labels == 3] = 1
    labels[0, 0, :3] = 3
    if ignored:
        labels[:, -1] = 255
    ours = metricc.loss(MONAI_DICE, **README_DICE)
    monai = DiceLoss(softmax=True, to_onehot_y=True, include_background=False, ignore_index=255 if ignored else None)
    for shift in torch.linspace(-30.0, 4.0, 18, dtype=torch.float64):
        moved = logits.detach().clone()
        moved[:, 3] += shift
        ours_and_monai(ours, monai, moved.requires_grad_(True), labels, labels[:, None])


def test_readme_dice_equals_monai_on_an_image_of_background_only():
    """Every foreground class is absent from image 1's target and has little soft mass there."""
    logits, labels = segmentation(8)
    labels[1] = 0
    with torch.no_grad():
        logits[1, 1:] -= 8.0
    ours = metricc.loss(MONAI_DICE, **README_DICE)
    ours_and_monai(ours, DiceLoss(softmax=True, to_onehot_y=True, include_background=False), logits, labels, labels[:, None])


# ---- hard dense predictions: torchmetrics per image and pooled -------------------------------------------------


def hard_segmentation(seed, batch=4, classes=4, size=(6, 5)):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, classes, (batch, *size), generator=generator)
    noise = torch.randint(0, classes, (batch, *size), generator=generator)
    predicted = torch.where(torch.rand(target.shape, generator=generator) < 0.6, target, noise)
    return predicted, target


DENSE_METRICS = [("jaccard", tmc.MulticlassJaccardIndex, "global")] + [
    (name, metric, multidim_average)  # torchmetrics' Jaccard index has no samplewise mode
    for name, metric in (("f1", tmc.MulticlassF1Score), ("precision", tmc.MulticlassPrecision), ("recall", tmc.MulticlassRecall))
    for multidim_average in ("global", "samplewise")
]


@pytest.mark.parametrize("name,metric,multidim_average", DENSE_METRICS)
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "none"])
def test_dense_multiclass_hard_equals_torchmetrics(name, metric, average, multidim_average):
    predicted, target = hard_segmentation(0)
    target[0, 0] = -1
    preds = torch.nn.functional.one_hot(predicted, 4).movedim(-1, 1).double()
    loss = type(metricc.loss(name))(task="multiclass", approximation="identity", average=average,
                                    multidim_average=multidim_average, ignore_index=-1)
    options = dict(num_classes=4, average=average, ignore_index=-1)
    if multidim_average == "samplewise":
        options["multidim_average"] = "samplewise"
    expected = metric(**options)(predicted, target).double()
    if multidim_average == "samplewise":
        expected = expected.mean(0)
    torch.testing.assert_close(loss.metric(preds, target), expected, rtol=1e-6, atol=1e-6)  # torchmetrics: float32


@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_dense_multilabel_and_binary_samplewise_equal_torchmetrics(average):
    predicted, target = hard_segmentation(1, classes=2)
    labels_pred = torch.stack([predicted, 1 - predicted, predicted], 1)
    labels_true = torch.stack([target, target, 1 - target], 1)
    loss = type(metricc.loss("f1"))(task="multilabel", approximation="identity", average=average, multidim_average="samplewise")
    expected = tmc.MultilabelF1Score(num_labels=3, average=average, multidim_average="samplewise")(labels_pred, labels_true)
    torch.testing.assert_close(loss.metric(labels_pred.double(), labels_true), expected.double().mean(0), rtol=1e-6, atol=1e-6)
    binary = type(metricc.loss("f1"))(approximation="identity", multidim_average="samplewise")
    expected = tmc.BinaryF1Score(multidim_average="samplewise")(predicted, target).double().mean()
    torch.testing.assert_close(binary.metric(predicted[:, None].double(), target), expected, rtol=1e-6, atol=1e-6)


def test_include_background_drops_class_zero_like_torchmetrics_per_class():
    predicted, target = hard_segmentation(2)
    preds = torch.nn.functional.one_hot(predicted, 4).movedim(-1, 1).double()
    per_class = tmc.MulticlassF1Score(num_classes=4, average="none")(predicted, target).double()
    loss_class = type(metricc.loss("f1"))
    without = loss_class(task="multiclass", approximation="identity", average="none", include_background=False)
    torch.testing.assert_close(without.metric(preds, target), per_class[1:], rtol=1e-6, atol=1e-6)
    macro = loss_class(task="multiclass", approximation="identity", average="macro", include_background=False)
    torch.testing.assert_close(macro.metric(preds, target), per_class[1:].mean(), rtol=1e-6, atol=1e-6)


def test_image_with_no_foreground_is_left_out_of_the_mean_over_images():
    predicted, target = hard_segmentation(3)
    predicted[0], target[0] = 0, 0  # image 0 is all background: no foreground class is present in it
    preds = torch.nn.functional.one_hot(predicted, 4).movedim(-1, 1).double()
    loss = type(metricc.loss("f1"))(task="multiclass", approximation="identity", average="macro",
                                    multidim_average="samplewise", include_background=False)
    per_image = tmc.MulticlassF1Score(num_classes=4, average="none", multidim_average="samplewise")(predicted, target)
    present = tmc.MulticlassStatScores(num_classes=4, average="none", multidim_average="samplewise")(predicted, target)
    tp, fp, fn = present[..., 0], present[..., 1], present[..., 3]
    counted = (tp + fp + fn)[:, 1:] > 0
    expected = [(per_image[i, 1:][counted[i]]).mean() for i in range(1, 4)]
    assert float(loss.metric(preds, target)) == pytest.approx(float(torch.stack(expected).mean()), abs=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_with_the_module_left_on_the_cpu_match_the_cpu():
    logits, labels = segmentation(6, batch=2, size=(32, 32))
    labels[:, :3] = 255
    loss = metricc.loss("f1", task="multiclass", from_logits=True, average="macro", multidim_average="global",
                        include_background=False, class_weights=[1.0, 2.0, 0.5], ignore_index=255, count_momentum=0.5)
    results = []
    for device in ("cpu", "cuda"):
        loss.reset_running_counts()
        steps = []
        for step in range(2):
            leaf = (logits.detach() * (step + 1)).to(device).requires_grad_(True)
            value = loss(leaf, labels.to(device))  # the class_weights and running-count buffers stay where they are
            (grad,) = torch.autograd.grad(value, leaf)
            steps.append((value.cpu(), grad.cpu()))
        results.append(steps)
    for (cpu_value, cpu_grad), (cuda_value, cuda_grad) in zip(*results):
        torch.testing.assert_close(cuda_value, cpu_value, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(cuda_grad, cpu_grad, rtol=1e-9, atol=1e-12)
