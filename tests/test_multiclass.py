"""Multi-class and multi-label losses: values against torchmetrics and sklearn, gradients against autograd.

Hard predictions (0/1 probabilities with approximation='identity') make the soft counts the ordinary counts,
so the metric must equal the reference libraries'. Soft inputs check the closed-form backward against
torch.autograd through a plain eager formula, for every averaging mode.
"""

import numpy as np
import pytest
import sklearn.metrics
import torch
import torchmetrics.classification as tmc
from hypothesis import given, settings
from hypothesis import strategies as st

import metricc
from metricc import cli
from metricc.compiler import compile_metric
from metricc.errors import OptionError
from metricc.load import load_file
from oracles import anyloss_approximation, f1, plain_soft_counts


def loss_class(name):
    """The emitted module's loss class, so each test can pass constructor options directly."""
    return type(metricc.loss(name))


# ---- hard predictions: values equal torchmetrics and sklearn -------------------------------------------------

TORCHMETRICS_MULTICLASS = {
    "f1": tmc.MulticlassF1Score,
    "precision": tmc.MulticlassPrecision,
    "recall": tmc.MulticlassRecall,
    "jaccard": tmc.MulticlassJaccardIndex,
    "specificity": tmc.MulticlassSpecificity,
}
TORCHMETRICS_MULTILABEL = {
    "f1": tmc.MultilabelF1Score,
    "precision": tmc.MultilabelPrecision,
    "recall": tmc.MultilabelRecall,
    "jaccard": tmc.MultilabelJaccardIndex,
    "specificity": tmc.MultilabelSpecificity,
}
SKLEARN = {
    "f1": sklearn.metrics.f1_score,
    "precision": sklearn.metrics.precision_score,
    "recall": sklearn.metrics.recall_score,
    "jaccard": sklearn.metrics.jaccard_score,
}


def hard_multiclass(seed, n=60, classes=5, used=None):
    """Labels and predicted labels that agree about half the time; `used` classes only (others are absent)."""
    generator = torch.Generator().manual_seed(seed)
    used = classes if used is None else used
    target = torch.randint(0, used, (n,), generator=generator)
    guess = torch.randint(0, used, (n,), generator=generator)
    predicted = torch.where(torch.rand(n, generator=generator) < 0.5, target, guess)
    return predicted, target


def hard_multilabel(seed, n=40, labels=4):
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, labels, generator=generator) < 0.4).long()
    flip = torch.rand(n, labels, generator=generator) < 0.3
    return torch.where(flip, 1 - target, target), target


@pytest.mark.parametrize("name", sorted(TORCHMETRICS_MULTICLASS))
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "none"])
@pytest.mark.parametrize("used", [5, 3])
def test_multiclass_hard_equals_torchmetrics_and_sklearn(name, average, used):
    predicted, target = hard_multiclass(seed=used, used=used)
    preds = torch.nn.functional.one_hot(predicted, 5).double()
    loss = loss_class(name)(task="multiclass", approximation="identity", average=average)
    ours = loss.metric(preds, target)
    expected = TORCHMETRICS_MULTICLASS[name](num_classes=5, average=average)(predicted, target).double()
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loss(preds, target), 1 - expected, rtol=1e-6, atol=1e-6)
    if name in SKLEARN:
        labels = None if average == "macro" else list(range(5))  # sklearn's macro leaves out absent classes by default
        reference = SKLEARN[name](target.numpy(), predicted.numpy(), average=None if average == "none" else average, labels=labels, zero_division=0)
        np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(TORCHMETRICS_MULTILABEL))
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "none"])
def test_multilabel_hard_equals_torchmetrics_and_sklearn(name, average):
    predicted, target = hard_multilabel(seed=1)
    loss = loss_class(name)(task="multilabel", approximation="identity", average=average)
    ours = loss.metric(predicted.double(), target)
    expected = TORCHMETRICS_MULTILABEL[name](num_labels=4, average=average)(predicted, target).double()
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
    if name in SKLEARN:
        reference = SKLEARN[name](target.numpy(), predicted.numpy(), average=None if average == "none" else average, zero_division=0)
        np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-6, atol=1e-6)


# zero_division here is the value of an absent class (or an empty sample); sklearn's also covers precision with
# nothing predicted and recall with nothing present, so they agree for any zero_division only for f1 and jaccard
@pytest.mark.parametrize(
    "name,zero_division", [(name, 0.0) for name in sorted(SKLEARN)] + [("f1", 1.0), ("jaccard", 1.0)]
)
def test_multilabel_samples_average_equals_sklearn(name, zero_division):
    predicted, target = hard_multilabel(seed=2, n=30)
    predicted[:3], target[:3] = 0, 0  # empty samples take zero_division
    loss = loss_class(name)(task="multilabel", approximation="identity", average="samples", zero_division=zero_division)
    ours = loss.metric(predicted.double(), target)
    reference = SKLEARN[name](target.numpy(), predicted.numpy(), average="samples", zero_division=zero_division)
    assert float(ours) == pytest.approx(reference, abs=1e-9)


def test_mcc_micro_multilabel_and_per_class_binary_equal_torchmetrics():
    predicted, target = hard_multilabel(seed=3, n=80)
    micro = loss_class("mcc")(task="multilabel", approximation="identity", average="micro").metric(predicted.double(), target)
    torch.testing.assert_close(micro, tmc.MultilabelMatthewsCorrCoef(num_labels=4)(predicted, target).double(), rtol=1e-6, atol=1e-6)
    per_class = loss_class("mcc")(task="multilabel", approximation="identity", average="none").metric(predicted.double(), target)
    for label in range(4):
        expected = sklearn.metrics.matthews_corrcoef(target[:, label].numpy(), predicted[:, label].numpy())
        assert float(per_class[label]) == pytest.approx(expected, abs=1e-9)
        binary = loss_class("mcc")(approximation="identity").metric(predicted[:, label].double(), target[:, label])
        assert float(binary) == pytest.approx(float(tmc.BinaryMatthewsCorrCoef()(predicted[:, label], target[:, label])), abs=1e-6)


def test_multilabel_zero_division_equals_torchmetrics():
    predicted, target = hard_multilabel(seed=4)
    predicted[:, 2], target[:, 2] = 0, 0  # label 2 is absent from targets and predictions
    for zero_division in (0.0, 1.0):
        loss = loss_class("f1")(task="multilabel", approximation="identity", average="macro", zero_division=zero_division)
        expected = tmc.MultilabelF1Score(num_labels=4, average="macro", zero_division=zero_division)(predicted, target)
        assert float(loss.metric(predicted.double(), target)) == pytest.approx(float(expected), abs=1e-6)


def test_ignore_index_equals_torchmetrics():
    predicted, target = hard_multiclass(seed=5)
    target[::7] = -100
    preds = torch.nn.functional.one_hot(predicted, 5).double()
    for average in ("micro", "macro", "weighted"):
        loss = loss_class("f1")(task="multiclass", approximation="identity", average=average, ignore_index=-100)
        expected = tmc.MulticlassF1Score(num_classes=5, average=average, ignore_index=-100)(predicted, target)
        assert float(loss.metric(preds, target)) == pytest.approx(float(expected), abs=1e-6)


def test_one_hot_and_index_targets_agree_and_binary_layouts_agree():
    predicted, target = hard_multiclass(seed=6)
    preds = torch.nn.functional.one_hot(predicted, 5).double()
    loss = loss_class("f1")(task="multiclass", approximation="identity", average="macro")
    one_hot = torch.nn.functional.one_hot(target, 5)
    assert float(loss.metric(preds, one_hot)) == pytest.approx(float(loss.metric(preds, target)))
    assert float(loss.metric(preds, target[:, None])) == pytest.approx(float(loss.metric(preds, target)))
    binary = loss_class("f1")(approximation="identity")
    p, y = preds[:, 1], one_hot[:, 1]
    values = [binary.metric(p, y), binary.metric(p[:, None], y), binary.metric(p[:, None], y[:, None])]
    assert float(values[0]) == pytest.approx(float(tmc.BinaryF1Score()(p, y)))
    assert all(float(v) == float(values[0]) for v in values)


# ---- soft inputs: the closed-form backward equals autograd through a plain formula ----------------------------

# The compiler guards each denominator that can vanish with max(x, eps) and guards the partials the same way,
# which is not the derivative of the guarded value where a guard is active; a tiny eps keeps the guards to
# exact zeros, where both agree, so the gradient comparison sees the formula itself.
EPS = 1e-30


def guard(x):
    return torch.clamp(x, min=EPS)


EAGER = {
    "f1": lambda tp, fp, fn, tn: 2 * tp / guard(2 * tp + fp + fn),
    "mcc": lambda tp, fp, fn, tn: (tp * tn - fp * fn)
    / torch.sqrt(guard(tp + fp)) / torch.sqrt(guard(tp + fn)) / torch.sqrt(guard(tn + fp)) / torch.sqrt(guard(tn + fn)),
    "tversky": lambda tp, fp, fn, tn: tp / guard(tp + 0.5 * fp + 0.5 * fn),
    "accuracy": lambda tp, fp, fn, tn: (tp + tn) / guard(tp + fp + fn + tn),
}


def eager_loss(name, preds, target, task, average, multidim_average="global", from_logits=True, ignore_index=None,
               include_background=True, zero_division=None, class_weights=None, steepness=73.0, threshold=0.5):
    """The documented loss written out directly: autograd differentiates it end to end."""
    probs = preds
    if from_logits:
        probs = torch.softmax(preds, 1) if task == "multiclass" else torch.sigmoid(preds)
    if task == "binary":
        probs, target = probs.reshape(len(probs), 1, -1), target.reshape(len(target), 1, -1)
    keep = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        keep = target != ignore_index
    if task == "multiclass" and target.dim() == preds.dim() - 1:
        target = torch.nn.functional.one_hot(torch.where(keep, target, 0), preds.shape[1]).movedim(-1, 1)
        keep = keep.unsqueeze(1).expand_as(target)
    target, keep = target.double() * keep, keep.double()
    if not include_background:
        probs, target, keep = probs[:, 1:], target[:, 1:], keep[:, 1:]
    a = anyloss_approximation(probs, steepness, threshold)
    batch, classes = a.shape[:2]
    a, y, keep, probs = (t.reshape(batch, classes, -1) for t in (a, target, keep, probs))
    per_row = multidim_average == "samplewise" or average == "samples"
    pooled_classes = average in ("micro", "samples") or task == "binary"
    rows = [slice(b, b + 1) for b in range(batch)] if per_row else [slice(None)]
    columns = [slice(None)] if pooled_classes else [slice(c, c + 1) for c in range(classes)]
    counts = torch.stack([
        torch.stack([torch.stack(plain_soft_counts(a[r, c], y[r, c], mask=keep[r, c])) for c in columns])
        for r in rows
    ])  # (rows, columns, 4)
    tp, fp, fn, tn = counts.unbind(-1)
    metric = EAGER[name](tp, fp, fn, tn)
    # absent: no target and no probability at any kept position (exact zeros, never a soft threshold)
    mass = torch.stack([torch.stack([(probs * keep)[r, c].sum() for c in columns]) for r in rows])
    absent = ((tp + fn == 0) & (mass == 0)).detach()
    if zero_division is not None:
        metric = torch.where(absent, torch.full_like(metric, zero_division), metric)
    if average == "none":
        return 1 - metric.mean(0)
    with torch.no_grad():
        weights = torch.ones_like(metric)
        if average == "weighted":
            weights = tp + fn
        elif average == "macro" and task == "multiclass":
            weights = (~absent).double()
        if class_weights is not None:
            weights = weights * torch.tensor(class_weights, dtype=torch.float64)
        row_total = weights.sum(1, keepdim=True)
        counted = row_total[:, 0] > 0
    row_metric = (weights * metric).sum(1)[counted] / row_total[counted, 0]
    return 1 - row_metric.mean()


def soft_inputs(task, seed, batch=12, classes=3, spatial=(), ignore_index=None):
    generator = torch.Generator().manual_seed(seed)
    channels = 1 if task == "binary" else classes
    preds = torch.randn(batch, channels, *spatial, generator=generator, dtype=torch.float64) * 0.3
    if task == "multiclass":
        target = torch.randint(0, classes, (batch, *spatial), generator=generator)
    else:
        target = (torch.rand(batch, channels, *spatial, generator=generator) < 0.5).long()
    if ignore_index is not None:
        target = torch.where(torch.rand(target.shape, generator=generator) < 0.15, ignore_index, target)
    if task == "binary" and not spatial:
        preds, target = preds[:, 0], target[:, 0]
    return preds.requires_grad_(True), target


def assert_gradient_matches(name, task, average, seed=0, spatial=(), **options):
    preds, target = soft_inputs(task, seed, spatial=spatial, ignore_index=options.get("ignore_index"))
    loss = loss_class(name)(task=task, average=average, from_logits=True, eps=EPS, **options)
    value = loss(preds, target)
    (grad,) = torch.autograd.grad(value.sum(), preds)
    expected_value = eager_loss(name, preds, target, task, average, **options)
    (expected_grad,) = torch.autograd.grad(expected_value.sum(), preds)
    torch.testing.assert_close(value, expected_value, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)
    assert grad.abs().max() > 0


@pytest.mark.parametrize("name", sorted(EAGER))
@pytest.mark.parametrize(
    "task,average",
    [("binary", "micro"), ("multiclass", "micro"), ("multiclass", "macro"), ("multiclass", "weighted"), ("multiclass", "none"),
     ("multilabel", "micro"), ("multilabel", "macro"), ("multilabel", "weighted"), ("multilabel", "none"), ("multilabel", "samples")],
)
def test_gradient_matches_autograd_for_every_average(name, task, average):
    assert_gradient_matches(name, task, average)


@pytest.mark.parametrize(
    "task,average",
    [("binary", "micro")] + [(task, average) for task in ("multiclass", "multilabel") for average in ("micro", "macro", "weighted", "none")],
)
def test_gradient_matches_autograd_samplewise_dense(task, average):
    assert_gradient_matches("f1", task, average, spatial=(4, 5), multidim_average="samplewise")


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(EAGER)),
    task=st.sampled_from(["multiclass", "multilabel"]),
    average=st.sampled_from(["micro", "macro", "weighted", "none"]),
    multidim_average=st.sampled_from(["global", "samplewise"]),
    ignore_index=st.sampled_from([None, -1]),
    include_background=st.booleans(),
    zero_division=st.sampled_from([None, 0.0, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_gradient_matches_autograd_with_options(name, task, average, multidim_average, ignore_index, include_background, zero_division, seed):
    assert_gradient_matches(
        name, task, average, seed=seed, spatial=(3,), multidim_average=multidim_average, ignore_index=ignore_index,
        include_background=include_background, zero_division=zero_division,
    )


def test_gradient_matches_autograd_with_class_weights():
    assert_gradient_matches("f1", "multiclass", "macro", class_weights=[1.0, 2.0, 0.5])
    assert_gradient_matches("mcc", "multilabel", "weighted", class_weights=[3.0, 1.0], include_background=False)


def test_gradient_from_probabilities_matches_autograd():
    generator = torch.Generator().manual_seed(7)
    probs = torch.softmax(torch.randn(8, 3, generator=generator, dtype=torch.float64), 1).requires_grad_(True)
    target = torch.randint(0, 3, (8,), generator=generator)
    value = loss_class("f1")(task="multiclass", average="macro", eps=EPS)(probs, target)
    expected = eager_loss("f1", probs, target, "multiclass", "macro", from_logits=False)
    torch.testing.assert_close(torch.autograd.grad(value, probs)[0], torch.autograd.grad(expected, probs)[0], rtol=1e-9, atol=1e-12)


# ---- zero_division and absent classes -----------------------------------------------------------------------


def test_absent_class_is_never_nan_and_takes_zero_division():
    preds = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1])
    for name in ("f1", "mcc", "precision", "jaccard"):
        per_class = loss_class(name)(task="multiclass", average="none", approximation="identity")
        assert torch.isfinite(per_class(preds, target)).all()
        filled = loss_class(name)(task="multiclass", average="none", approximation="identity", zero_division=0.25)
        assert float(filled.metric(preds, target)[2]) == 0.25
        value = filled(preds, target).sum()
        value.backward()
        assert torch.isfinite(preds.grad).all()
        preds.grad = None
    all_ignored = loss_class("f1")(task="multiclass", average="macro", ignore_index=-1, zero_division=0.5)
    assert float(all_ignored.metric(preds, torch.tensor([-1, -1]))) == 0.5


# ---- running counts -----------------------------------------------------------------------------------------


def test_running_counts_mix_history_and_batch_like_batchnorm():
    first_preds, first_target = soft_inputs("multiclass", 1)
    preds, target = soft_inputs("multiclass", 2)
    plain = loss_class("f1")(task="multiclass", average="macro", from_logits=True)
    running = loss_class("f1")(task="multiclass", average="macro", from_logits=True, count_momentum=0.25)
    assert running(first_preds, first_target).item() == pytest.approx(plain(first_preds, first_target).item())
    # the second step sees 0.75 * first counts + 0.25 * second counts: the same as a batch weighting them so
    history = running.running_counts.clone()
    value = running(preds, target)
    (grad,) = torch.autograd.grad(value, preds)

    def mixed(p):
        probs = torch.softmax(p, 1)
        y = torch.nn.functional.one_hot(target, 3).double()
        batch = torch.stack(plain_soft_counts(anyloss_approximation(probs), y, dims=0))
        tp, fp, fn, tn = 0.75 * history.reshape(4, 3) + 0.25 * batch
        return 1 - f1(tp, fp, fn, tn).mean()

    expected = mixed(preds)
    torch.testing.assert_close(value, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, torch.autograd.grad(expected, preds)[0], rtol=1e-9, atol=1e-12)
    running.eval()
    assert running(preds, target).item() == pytest.approx(plain(preds, target).item())  # eval: the batch alone
    running.train()
    running.reset_running_counts()
    assert running(preds, target).item() == pytest.approx(plain(preds, target).item())


# ---- bad input ----------------------------------------------------------------------------------------------


def test_class_index_out_of_range_names_the_value():
    loss = loss_class("f1")(task="multiclass", average="macro", from_logits=True)
    preds = torch.randn(4, 3)
    with pytest.raises(ValueError, match="class index 3"):
        loss(preds, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="class index -2"):
        loss(preds, torch.tensor([0, -2, 2, 1]))
    ignoring = loss_class("f1")(task="multiclass", average="macro", from_logits=True, ignore_index=-2)
    assert torch.isfinite(ignoring(preds, torch.tensor([0, -2, 2, 1])))
    with pytest.raises(ValueError, match="class index 7"):
        ignoring(preds, torch.tensor([0, -2, 7, 1]))


def test_mismatched_class_counts_name_both_shapes():
    loss = loss_class("f1")(task="multiclass", average="macro", from_logits=True)
    with pytest.raises(ValueError, match=r"target of shape \[4, 5\] does not match preds of shape \[4, 3\].*3 classes in preds, 5"):
        loss(torch.randn(4, 3), torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 4]), 5))
    multilabel = loss_class("f1")(task="multilabel", average="macro")
    with pytest.raises(ValueError, match=r"\[2, 4\].*\[2, 3\]"):
        multilabel(torch.rand(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"class-index target of shape \[3\] does not match preds of shape \[4, 3\]"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2]))
    weighted = loss_class("f1")(task="multiclass", average="macro", class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="class_weights has 2 entries for 3 scored classes"):
        weighted(torch.softmax(torch.randn(4, 3), 1), torch.tensor([0, 1, 2, 1]))


def test_softmax_over_one_channel_is_an_error():
    loss = loss_class("f1")(task="multiclass", from_logits=True)
    with pytest.raises(ValueError, match="softmax over a single channel"):
        loss(torch.randn(4, 1), torch.zeros(4, dtype=torch.long))


def test_option_conflicts_are_errors_in_python_and_emitted_constructor():
    for options in (
        dict(task="multiclass", average="samples"),
        dict(task="binary", include_background=False),
        dict(task="multiclass", average="micro", class_weights=(1.0, 2.0)),
        dict(task="multiclass", average="macro", multidim_average="samplewise", count_momentum=0.1),
        dict(count_momentum=0.0),
        dict(sync="nccl"),
        dict(zero_division=float("nan")),
    ):
        with pytest.raises(OptionError):
            metricc.loss("f1", **options)
        constructor = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
        with pytest.raises(ValueError):
            loss_class("f1")(**constructor)


# ---- the options from every entry point -----------------------------------------------------------------------


OPTIONS = dict(task="multiclass", average="weighted", ignore_index=255, include_background=False, class_weights=(1.0, 3.0),
               zero_division=1.0, count_momentum=0.5, from_logits=True, approximation="anyloss")
CLI_FLAGS = ["--task", "multiclass", "--average", "weighted", "--ignore-index", "255", "--no-include-background",
             "--class-weights", "1,3", "--zero-division", "1", "--count-momentum", "0.5", "--from-logits", "--approximation", "anyloss"]


def test_options_reach_the_module_from_loss_emit_and_cli(tmp_path):
    from_api = metricc.loss("f1", **OPTIONS)
    output = tmp_path / "f1_weighted.py"
    assert cli.main(["compile", "f1", "-o", str(output), *CLI_FLAGS]) == 0
    from_cli = getattr(load_file(output), "F1Loss")()
    assert output.read_text() == compile_metric("f1", **OPTIONS).source
    preds, target = soft_inputs("multiclass", 3, batch=8)
    target[0] = 255
    for module in (from_api, from_cli):
        assert module.include_background is False and module.zero_division == 1.0 and module.count_momentum == 0.5
        assert module.class_weights.tolist() == [1.0, 3.0] and module.ignore_index == 255
    assert from_api(preds, target).item() == from_cli(preds, target).item()
    expected = eager_loss("f1", preds, target, "multiclass", "weighted", ignore_index=255, include_background=False,
                          class_weights=[1.0, 3.0], zero_division=1.0)
    torch.testing.assert_close(from_api.metric(preds, target), 1 - expected.detach(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("options", [dict(task="multiclass", average="macro", ignore_index=-1, zero_division=0.0),
                                     dict(task="multilabel", average="samples"),
                                     dict(task="multiclass", average="weighted", multidim_average="samplewise", include_background=False),
                                     dict(task="multiclass", average="macro", count_momentum=0.2)])
def test_scripted_compiled_and_exported_modules_agree(options):
    loss = metricc.loss("f1", from_logits=True, **options)
    preds, target = soft_inputs(options["task"], 4, spatial=(2, 3), ignore_index=options.get("ignore_index"))
    preds = preds.detach().float()
    expected = loss(preds, target)
    if loss.count_momentum is not None:
        loss.eval()  # equal inputs must give equal losses: no running history
        expected = loss(preds, target)
    scripted = torch.jit.script(loss)
    torch.testing.assert_close(scripted(preds, target), expected)
    torch.testing.assert_close(torch.compile(loss, fullgraph=True)(preds, target), expected)
    torch.testing.assert_close(torch.export.export(loss, (preds, target)).module()(preds, target), expected)


def test_running_counts_under_script_and_compile_follow_eager():
    loss = metricc.loss("f1", task="multiclass", average="macro", from_logits=True, count_momentum=0.5)
    batches = [soft_inputs("multiclass", seed) for seed in range(3)]
    batches = [(preds.detach().float(), target) for preds, target in batches]
    expected = [loss(*b) for b in batches]
    for wrap in (torch.jit.script, lambda module: torch.compile(module, fullgraph=True)):
        loss.reset_running_counts()
        wrapped = wrap(loss)  # a scripted module holds its own copy of the running counts
        for b, value in zip(batches, expected):
            torch.testing.assert_close(wrapped(*b), value)
