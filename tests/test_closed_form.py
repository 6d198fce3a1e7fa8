"""The fast closed-form path (counts from three sums, slope kept from the forward pass, custom autograd Function,
TorchScript's autograd through the formula) against autograd through a plain eager formulation of the same loss, in float64."""

import io
import warnings

import pytest
import torch

from losses import namespace_and_module
from metricc.runtime.approximate import Approximation
from metricc.runtime.counts import soft_counts
from oracles import anyloss_approximation, plain_soft_counts, soft_count_loss

CUSTOM = "(TP/(TP+FN) + TN/(TN+FP))/2 - FP/(FP+TN)/10 + (TP*TN - FP*FN)/(TP+FP+FN+TN)^2 + 2*TP/(2*TP+FP+FN)"
CONFIGS = [
    dict(),
    dict(from_logits=True),
    dict(approximation="identity"),
    dict(approximation="linear", from_logits=True),
    dict(ignore_index=-1),
    dict(task="multilabel", average="macro"),
    dict(task="multiclass", average="macro"),
    dict(task="multiclass", average="weighted", from_logits=True),
    dict(task="multiclass", average="macro", multidim_average="samplewise", include_background=False),
    dict(task="multiclass", average="micro", ignore_index=2),
]


def module_for(metric, **options):
    return namespace_and_module(metric, direction="maximize", **options)


def inputs(options, n=300, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    task = options.get("task", "binary")
    if task == "binary":
        scores = torch.randn(n, generator=g, dtype=torch.float64) * 2
        target = (torch.rand(n, generator=g) > 0.5).double()
    elif task == "multilabel":
        scores = torch.randn(n // classes, classes, generator=g, dtype=torch.float64) * 2
        target = (torch.rand(n // classes, classes, generator=g) > 0.5).double()
    elif options.get("multidim_average") == "samplewise":
        side = max(2, int((n / 3 / classes) ** 0.5))
        scores = torch.randn(3, classes, side, side + 1, generator=g, dtype=torch.float64) * 2
        target = torch.randint(0, classes, (3, side, side + 1), generator=g)
    else:
        scores = torch.randn(n // classes, classes, generator=g, dtype=torch.float64) * 2
        target = torch.randint(0, classes, (n // classes,), generator=g)
    if "ignore_index" in options:
        target = target.clone()
        target.view(-1)[::7] = options["ignore_index"]
    if not options.get("from_logits"):
        scores = torch.softmax(scores, 1) if task == "multiclass" else torch.sigmoid(scores)
    return scores.requires_grad_(True), target


@pytest.mark.parametrize("options", CONFIGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
@pytest.mark.parametrize("metric", ["f1", "mcc_ovr", CUSTOM], ids=["f1", "mcc_ovr", "custom"])
@pytest.mark.parametrize("n", [300, 100_000, 300_000], ids=["small", "function", "function-blocked"])
def test_gradient_matches_autograd(metric, options, n):
    """Every eager input takes a custom autograd Function (small binary ones with the formula on Python floats);
    on the CPU inputs over 2^17 elements are counted in blocks (of positions, or of rows for (N, C) inputs)."""
    namespace, loss = module_for(metric, **options)
    preds, target = inputs(options, n=n)
    value = loss(preds, target)
    (grad,) = torch.autograd.grad(value, preds)
    expected_value = soft_count_loss(namespace, loss, preds, target)
    (expected,) = torch.autograd.grad(expected_value, preds)
    torch.testing.assert_close(value, expected_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12 * float(expected.abs().max()))


def test_uneven_last_block_matches_autograd():
    namespace, loss = module_for("mcc_ovr")
    preds, target = inputs({}, n=3 * 131_072 + 5)
    (grad,) = torch.autograd.grad(loss(preds, target), preds)
    (expected,) = torch.autograd.grad(soft_count_loss(namespace, loss, preds, target), preds)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12 * float(expected.abs().max()))


def test_counts_are_accurate_in_float32_at_large_n():
    """Each count is summed directly (no count is the difference of two others), in blocks on the CPU: accurate
    relative to its own size, so a count made only of saturated tails is not lost."""
    namespace, _ = module_for("f1")
    g = torch.Generator().manual_seed(1)
    n = 2_000_000
    target = (torch.rand(n, generator=g) > 0.5).float()
    for spread in (0.5, 0.3):  # some errors; then none, so FP and FN are tails below float32 resolution of 1
        probs = (target + (0.5 - target) * 2 * spread * torch.rand(n, generator=g)).clamp(0, 1)
        counts, _, _ = soft_counts(probs.reshape(n, 1, 1), target.reshape(n, 1, 1), None, [0, 1, 2], False, Approximation("anyloss", 73.0, 0.5, 0.2), False)
        exact = plain_soft_counts(anyloss_approximation(probs.double()), target.double())
        for count, truth in zip(counts[0], exact):
            assert abs(float(count) - float(truth)) <= 1e-5 * float(truth) + 1e-12


def test_torchscript_and_saved_module_match_eager():
    warnings.simplefilter("ignore")
    for options in (dict(), dict(task="multiclass", average="macro", from_logits=True)):
        _, loss = module_for("mcc_ovr", **options)
        preds, target = inputs(options)
        (eager,) = torch.autograd.grad(loss(preds, target), preds)
        scripted = torch.jit.script(loss)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        buffer.seek(0)
        for module in (scripted, torch.jit.load(buffer)):
            (grad,) = torch.autograd.grad(module(preds, target), preds)
            torch.testing.assert_close(grad, eager, rtol=1e-12, atol=0.0)


def test_gradcheck_float64():
    _, loss = module_for("mcc_ovr", from_logits=True)
    preds, target = inputs(dict(from_logits=True), n=40)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (preds,))


def test_at_most_one_preds_sized_tensor_kept_for_backward():
    """Between forward and backward the loss keeps one tensor the size of preds (the slope) beyond its inputs."""
    _, loss = module_for("f1")
    preds = torch.rand(5000, requires_grad=True)
    target = (torch.rand(5000) > 0.5).float()
    inputs_storage = {preds.untyped_storage().data_ptr(), target.untyped_storage().data_ptr()}
    kept = set()

    def pack(tensor):
        if tensor.numel() >= preds.numel() and tensor.untyped_storage().data_ptr() not in inputs_storage:
            kept.add(tensor.untyped_storage().data_ptr())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        value = loss(preds, target)
    value.backward()
    assert len(kept) == 1


def test_no_gradient_work_without_grad():
    _, loss = module_for("f1")
    preds, target = torch.rand(100), (torch.rand(100) > 0.5).float()
    with torch.no_grad():
        assert not loss(preds.requires_grad_(True), target).requires_grad
    assert not loss(preds.detach(), target).requires_grad


def test_half_precision_gradient_has_preds_dtype():
    _, loss = module_for("f1")
    preds = torch.rand(64).half().requires_grad_(True)
    target = (torch.rand(64) > 0.5).half()
    loss(preds, target).backward()
    assert preds.grad.dtype == torch.float16 and torch.isfinite(preds.grad).all()


@pytest.mark.parametrize(
    "target, message",
    [
        (torch.tensor([0.0, 0.5, 1.0]), "only 0 and 1"),
        (torch.tensor([0.0, float("nan"), 1.0]), "only 0 and 1"),
        (torch.tensor([0.0, float("inf"), 1.0]), "only 0 and 1"),
        (torch.tensor([0, 2, 1]), "only 0 and 1"),
    ],
)
def test_cheap_validation_rejects_non_binary_targets(target, message):
    _, loss = module_for("f1")
    with pytest.raises(ValueError, match=message):
        loss(torch.tensor([0.2, 0.4, 0.9]), target)


@pytest.mark.parametrize("preds", [torch.tensor([0.2, float("nan"), 0.9]), torch.tensor([0.2, float("inf"), 0.9])])
def test_cheap_validation_rejects_non_finite_preds(preds):
    _, loss = module_for("f1")
    with pytest.raises(ValueError, match="NaN or infinite"):
        loss(preds, torch.tensor([0.0, 1.0, 1.0]))


def test_cheap_validation_rejects_preds_outside_unit_interval():
    _, loss = module_for("f1")
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        loss(torch.tensor([0.2, 1.5]), torch.tensor([0.0, 1.0]))


def _large_binary_batch(seed):
    g = torch.Generator().manual_seed(seed)
    n = 150_000  # above the block size: the CPU path that keeps a slope tensor
    return torch.rand(n, generator=g, dtype=torch.float64), (torch.rand(n, generator=g) > 0.5).double()


def _gradient(loss, preds, target):
    leaf = preds.clone().requires_grad_(True)
    loss(leaf, target).backward()
    return leaf.grad


def test_slope_tensor_is_reused_once_its_backward_has_run():
    namespace, loss = module_for("mcc_ovr")
    (preds, target), (other_preds, other_target) = _large_binary_batch(0), _large_binary_batch(1)
    expected = _gradient(loss, other_preds, other_target)
    (first,) = loss.spare_slopes
    torch.testing.assert_close(_gradient(loss, preds, target), _gradient(module_for("mcc_ovr")[1], preds, target))
    torch.testing.assert_close(_gradient(loss, other_preds, other_target), expected)
    assert len(loss.spare_slopes) == 1 and loss.spare_slopes[0] is first


def test_spare_slopes_belong_to_their_module():
    """Two losses of the same file keep their own spare slope tensors: no module-level state."""
    _, first = module_for("mcc_ovr")
    _, second = module_for("mcc_ovr")
    first.spare_slopes.clear()
    preds, target = _large_binary_batch(6)
    _gradient(first, preds, target)
    assert len(first.spare_slopes) == 1 and second.spare_slopes == []


def test_pending_graphs_keep_their_own_slope():
    """Two forward passes before either backward: the second may not write over the first one's slope."""
    _, loss = module_for("mcc_ovr")
    (preds, target), (other_preds, other_target) = _large_binary_batch(2), _large_binary_batch(3)
    expected = _gradient(loss, preds, target), _gradient(loss, other_preds, other_target)
    leaves = preds.clone().requires_grad_(True), other_preds.clone().requires_grad_(True)
    (loss(leaves[0], target) + loss(leaves[1], other_target)).backward()
    for leaf, gradient in zip(leaves, expected):
        torch.testing.assert_close(leaf.grad, gradient)


def test_retained_graph_backward_twice_or_raises_after_reuse():
    _, loss = module_for("mcc_ovr")
    (preds, target), (other_preds, other_target) = _large_binary_batch(4), _large_binary_batch(5)
    leaf = preds.clone().requires_grad_(True)
    value = loss(leaf, target)
    (once,) = torch.autograd.grad(value, leaf, retain_graph=True)
    (twice,) = torch.autograd.grad(value, leaf, retain_graph=True)
    torch.testing.assert_close(once, twice)
    _gradient(loss, other_preds, other_target)  # a new step writes its slope over the released one
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(value, leaf)


def test_only_block_path_slopes_are_kept_for_reuse():
    """A slope that slope_buffer did not hand out (inputs too small for blocks) is not held between steps."""
    _, loss = module_for("mcc_ovr")
    loss.spare_slopes.clear()
    preds, target = inputs({}, n=100_000)
    torch.autograd.grad(loss(preds, target), preds)
    assert loss.spare_slopes == []
