"""CohenKappaLoss: cohen_kappa as a loss, compiled by metricc 0.1.0.

Metric (maximized; the loss is 1 - cohen_kappa):

    cohen_kappa = 2*(-FN*FP + TN*TP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP))

Partial derivatives:

    d cohen_kappa / d TP = 2*(FN + FP)*(FN + TN)*(FP + TN)/(FN**2 + FN*TN + FN*TP + FP**2 + FP*TN +
        FP*TP + 2*TN*TP)**2
    d cohen_kappa / d FP = -2*FN/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP)) + 2*(-FN*FP +
        TN*TP)*(-2*FP - TN - TP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP))**2
    d cohen_kappa / d FN = -2*FP/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP)) + 2*(-FN*FP +
        TN*TP)*(-2*FN - TN - TP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP))**2
    d cohen_kappa / d TN = 2*(FN + FP)*(FN + TP)*(FP + TP)/(FN**2 + FN*TN + FN*TP + FP**2 + FP*TN +
        FP*TP + 2*TN*TP)**2

Per-sample weights d cohen_kappa / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = 2*(FN + FP + TN + TP)*(FN*TN + FP**2 + FP*TN + TN*TP)/(FN**2 +
        FN*TN + FN*TP + FP**2 + FP*TN + FP*TP + 2*TN*TP)**2
    negative, y_i = 0: dFP - dTN = -2*(FN + FP + TN + TP)*(FN**2 + FN*TP + FP*TP + TN*TP)/(FN**2 +
        FN*TN + FN*TP + FP**2 + FP*TN + FP*TP + 2*TN*TP)**2

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator (FN + TN)*(FN + TP) + (FP + TN)*(FP + TP) vanishes (there are no negatives
        and nothing is predicted negative or there are no positives and nothing is predicted
        positive); guarded by max(x, eps)

Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).
ce_weight > 0 adds ce_weight * BCE (binary, multilabel) or CE (multiclass) of the same inputs (autograd).
This file imports only torch (and Python's math) and is generated: edit the metric, not this file.
"""

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor


def class_index_target(preds: Tensor, target: Tensor, task: str) -> bool:
    """Multiclass targets given as class indices, (N, *spatial) or MONAI's (N, 1, *spatial), beside preds (N, C, *spatial)."""
    if task != "multiclass" or preds.dim() < 2:
        return False
    if target.dim() == preds.dim() - 1:
        return True
    return target.dim() == preds.dim() and preds.shape[1] > 1 and target.shape[1] == 1 and not target.is_floating_point()


def canonical_layout(
    preds: Tensor, target: Tensor, task: str, ignore_index: Optional[int]
) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """Reshape to (batch, classes, positions): preds, a one-hot target in the counting dtype, a 0/1 mask of kept
    positions (None when nothing is ignored), and class-index targets as (batch, 1, positions) labels (else None)."""
    dtype = torch.promote_types(preds.dtype, torch.float32)
    target = target.detach()
    # rows are images: a binary (N,) or (N, 1) input is one row of N positions; sizes are explicit for empty inputs
    rows = preds.shape[0] if task != "binary" or preds.dim() > 2 else 1
    classes = 1 if task == "binary" else preds.shape[1]
    shape = [rows, classes, preds.numel() // max(rows * classes, 1)]
    mask: Optional[Tensor] = None
    labels: Optional[Tensor] = None
    if class_index_target(preds, target, task):
        labels = target.reshape(rows, 1, shape[2]).long()
        if ignore_index is not None:
            keep = labels != ignore_index
            labels = torch.where(keep, labels, torch.zeros_like(labels))
            mask = keep.to(dtype)
        one_hot = one_hot_labels(labels, classes, 0, dtype)
    else:
        one_hot = target.reshape(shape)
        if ignore_index is not None:
            keep = one_hot != ignore_index
            one_hot = torch.where(keep, one_hot, torch.zeros_like(one_hot))
            mask = keep.to(dtype)
    return preds.reshape(shape), one_hot.to(dtype), mask, labels


def one_hot_labels(labels: Tensor, classes: int, first_class: int, dtype: torch.dtype) -> Tensor:
    """(batch, 1, positions) class indices as 0/1 over classes first_class .. classes - 1, on axis 1.

    Eagerly a scatter into zeros, the fastest way; under torch.compile a comparison, which fuses into the
    kernels that read it instead of being written out.
    """
    if fused_kernels():
        scored = torch.arange(first_class, classes, device=labels.device).reshape(1, -1, 1)
        return (labels == scored).to(dtype)
    shape = [labels.shape[0], classes, labels.shape[2]]
    one_hot = torch.zeros(shape, dtype=dtype, device=labels.device).scatter_(1, labels, 1.0)
    return one_hot[:, first_class:]


@torch.jit.unused
def _compiling() -> bool:
    return torch.compiler.is_compiling()


def value_checks_enabled() -> bool:
    """Checks of tensor values need the data; torch.compile and torch.export trace without it and skip them."""
    if torch.jit.is_scripting():
        return True
    return not _compiling()


def validate_inputs(
    preds: Tensor, target: Tensor, task: str, from_logits: bool, ignore_index: Optional[int], include_background: bool
) -> None:
    """Raise ValueError naming the offending input; never let bad data become a silent number."""
    preds = preds.detach()
    if task != "binary":
        if preds.dim() < 2:
            raise ValueError(f"{task} preds must have shape (N, C, ...) with classes on axis 1, got {list(preds.shape)}")
        classes = preds.shape[1]
        if task == "multiclass" and from_logits and classes < 2:
            raise ValueError(
                f"softmax over a single channel is constant (1 everywhere), got preds of shape {list(preds.shape)}: "
                "use task='binary' (sigmoid) for one channel"
            )
        if not include_background and classes < 2:
            raise ValueError(f"include_background=False drops class 0 and leaves no class of preds of shape {list(preds.shape)}")
    class_indices = class_index_target(preds, target, task)
    if class_indices:
        _check_class_index_shape(preds, target)
    elif not (target.shape == preds.shape or (task == "binary" and _channel_dropped(preds, target))):
        classes_differ = task != "binary" and target.dim() == preds.dim() and target.dim() > 1 and target.shape[1] != preds.shape[1]
        hint = f" ({preds.shape[1]} classes in preds, {target.shape[1]} in target)" if classes_differ else ""
        raise ValueError(f"target of shape {list(target.shape)} does not match preds of shape {list(preds.shape)}{hint}")
    if value_checks_enabled():
        _check_values(preds, target.detach(), class_indices, from_logits, ignore_index)


def _check_values(preds: Tensor, target: Tensor, class_indices: bool, from_logits: bool, ignore_index: Optional[int]) -> None:
    """The values of target and preds, decided from a few bounds fetched in one transfer (a GPU waits once).

    Class indices and integer 0/1 targets by their range; a float 0/1 target by t - t * t, which is exactly
    zero at 0 and 1, nonzero elsewhere and NaN at NaN or inf (no comparisons, which are slow); preds by their
    range, which aminmax gives in one pass, NaN propagating and an infinity being its own bound.
    """
    kept = target if ignore_index is None else target[target != ignore_index]
    checks: List[Tensor] = []
    check_target = kept.numel() > 0 and kept.dtype != torch.bool
    if check_target:
        if class_indices or not kept.is_floating_point():
            checks += list(torch.aminmax(kept))
        elif kept.numel() <= 1 << 17:
            checks.append(torch.addcmul(kept, kept, kept, value=-1.0).abs().amax())
        else:
            # in blocks through one scratch buffer: a fresh temporary the size of the target costs more in page
            # faults than the check itself
            flat = kept.reshape(-1)
            scratch = torch.empty_like(flat[: 1 << 17])
            residual = [torch.addcmul(b, b, b, value=-1.0, out=scratch[: b.numel()]).abs_().amax() for b in flat.split(1 << 17)]
            checks.append(torch.stack(residual).amax())
    if preds.numel() > 0:
        checks += list(torch.aminmax(preds))
    if len(checks) == 0:
        return
    if any(check.dtype != checks[0].dtype for check in checks):
        checks = [check.double() for check in checks]  # exact for class indices beside float16 preds
    found: List[float] = torch.stack(checks).tolist()  # one transfer: a GPU waits once
    if check_target:
        if class_indices:
            classes = preds.shape[1]
            if found[0] < 0 or found[1] >= classes:
                outside = kept[(kept < 0) | (kept >= classes)]
                raise ValueError(
                    f"target contains class index {int(outside[0])}, outside [0, {classes - 1}] for preds with {classes} classes"
                    + ("" if ignore_index is None else f" (ignore_index={ignore_index})")
                )
            found = found[2:]
        else:
            binary = found[0] == 0.0 if kept.is_floating_point() else found[0] >= 0 and found[1] <= 1
            if not binary:
                bad = kept[(kept != 0) & (kept != 1)][0]
                raise ValueError(f"target must contain only 0 and 1 (or ignore_index), found {float(bad)}")
            found = found[1:] if kept.is_floating_point() else found[2:]
    if preds.numel() > 0:
        low_p, high_p = found[0], found[1]
        if not (abs(low_p) < float("inf") and abs(high_p) < float("inf")):
            raise ValueError("preds contain NaN or infinite values; check the model's outputs (a loss cannot be computed from them)")
        if not from_logits and (low_p < 0.0 or high_p > 1.0):
            raise ValueError(f"preds lie in [{low_p}, {high_p}], outside [0, 1]; pass from_logits=True for raw scores")


def _channel_dropped(preds: Tensor, target: Tensor) -> bool:
    """preds with a channel axis of one that target leaves out: (N, 1) beside (N,), (B, 1, H, W) beside (B, H, W)."""
    return (
        preds.dim() == target.dim() + 1
        and preds.shape[1] == 1
        and preds.shape[0] == target.shape[0]
        and preds.shape[2:] == target.shape[1:]
    )


def _check_class_index_shape(preds: Tensor, target: Tensor) -> None:
    spatial = target.shape[1:] if target.dim() == preds.dim() - 1 else target.shape[2:]
    if target.shape[0] != preds.shape[0] or spatial != preds.shape[2:]:
        raise ValueError(
            f"class-index target of shape {list(target.shape)} does not match preds of shape {list(preds.shape)}: "
            f"expected {[preds.shape[0]] + list(preds.shape[2:])} (or with a channel of 1 after the batch axis)"
        )
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"class-index targets must be integers, got dtype {target.dtype}; a one-hot target has the shape of preds")


def probabilities(preds: Tensor, task: str, from_logits: bool) -> Tensor:
    """Logits become probabilities by sigmoid, or by softmax over classes for multiclass."""
    if not from_logits:
        return preds
    if task == "multiclass":
        return torch.softmax(preds, dim=1)
    return torch.sigmoid(preds)


def approximate(
    probs: Tensor, approximation: str, steepness: float, threshold: float, width: float, out: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor]:
    """A(p) and 1 - A(p), the latter computed without cancellation; written into out[1] and out[0] when given.

    anyloss: A(p) = sigmoid(L (p - tau)); in float32 it saturates to exactly 0 or 1 once L (1 - tau) exceeds
    about 16.6 (L above ~33 at tau = 0.5), so 1 - A is taken as sigmoid(-L (p - tau)), which does not.
    identity: A(p) = p, the soft-set counts of soft Dice. linear: a ramp of the given width around tau.
    """
    # with out, one pass each: a 0-dim tensor operand broadcasts, where an in-place second operation is another pass
    if approximation == "anyloss":
        offset = probs.new_full((), -steepness * threshold)
        if out is None:
            return sigmoid_pair(torch.add(offset, probs, alpha=steepness))
        return sigmoid_pair(torch.add(offset, probs, alpha=steepness, out=out[0]), out[1])
    if approximation == "identity":
        hard = probs
    elif out is None:
        hard = torch.sub(probs, threshold).div_(width).add_(0.5).clamp_(0.0, 1.0)
    else:
        hard = torch.sub(probs, threshold, out=out[1]).div_(width).add_(0.5).clamp_(0.0, 1.0)
    if out is None:
        return hard, torch.rsub(hard, 1.0)
    return hard, torch.sub(hard.new_ones(()), hard, out=out[0])


def sigmoid_pair(x: Tensor, out: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """sigmoid(x) and sigmoid(-x) = 1 - sigmoid(x), each without cancellation; x is a temporary (it becomes the
    second), the first goes to `out` when given.

    Under torch.compile both come from one exponential, u = exp(-|x|): they are 1 / (1 + u) and u / (1 + u),
    in the order the sign of x gives. Eagerly two sigmoids are fewer kernels than that.
    """
    if fused_kernels():
        u = torch.exp(-x.abs())
        near = 1.0 / (1.0 + u)
        far = u * near
        nonnegative = x >= 0.0
        return torch.where(nonnegative, near, far), torch.where(nonnegative, far, near)
    first = torch.sigmoid(x) if out is None else torch.sigmoid(x, out=out)
    return first, x.neg_().sigmoid_()


def approximation_scale(approximation: str, steepness: float, width: float) -> float:
    """The constant factor of A'(p): L for anyloss, 1 / width for linear, 1 for identity."""
    if approximation == "anyloss":
        return steepness
    if approximation == "linear":
        return 1.0 / width
    return 1.0


def _soft_block(
    values: Tensor,
    sigmoid_logits: bool,
    approximation: str,
    steepness: float,
    threshold: float,
    width: float,
    with_slope: bool,
    slope_out: Optional[Tensor],
    scratch: Optional[Tensor],
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """a = A(p), 1 - a and A'(p) / scale (None where it is 1, else in slope_out when given), with p = sigmoid(values)
    for sigmoid logits.

    A' / scale is a (1 - a) for anyloss and 1 inside the ramp for linear; sigmoid logits add p (1 - p). Each
    product is of two values computed without cancellation, so the slope is as exact as autograd's. scratch:
    buffers the shape of values to compute in (see soft_counts), or None to allocate.
    """
    probs, probs_complement = values, values
    if sigmoid_logits:
        if scratch is None:
            probs, probs_complement = sigmoid_pair(values.clone())
        else:
            probs, probs_complement = sigmoid_pair(scratch[5].copy_(values), scratch[4])
    hard, complement = approximate(probs, approximation, steepness, threshold, width, None if scratch is None else scratch[:2])
    slope: Optional[Tensor] = None
    in_place = False
    if with_slope:
        if approximation == "anyloss":
            in_place = slope_out is not None
            slope = hard * complement if slope_out is None else torch.mul(hard, complement, out=slope_out)
        elif approximation == "linear":
            slope = ((hard > 0.0) & (hard < 1.0)).to(hard.dtype)
        if sigmoid_logits:
            sigmoid_slope = probs * probs_complement
            slope = sigmoid_slope if slope is None else slope.mul_(sigmoid_slope)
        if slope is not None and slope_out is not None and not in_place:
            slope = slope_out.copy_(slope)
    return hard, complement, slope


def _product_sums(
    hard: Tensor, complement: Tensor, target: Tensor, negative: Tensor, dims: List[int], scratch: Optional[Tensor]
) -> Tensor:
    """TP, FP, FN, TN: sums over dims of a y, a (1 - y), (1 - a) y and (1 - a)(1 - y), stacked on a new axis 0.
    A sum over every axis is a dot product; otherwise each product goes through `scratch` when given."""
    if len(dims) == 3:
        a, c, y, n = hard.reshape(-1), complement.reshape(-1), target.reshape(-1), negative.reshape(-1)
        return torch.stack([torch.dot(a, y), torch.dot(a, n), torch.dot(c, y), torch.dot(c, n)]).reshape(4, 1, 1, 1)
    sums: List[Tensor] = []
    for x, y in ((hard, target), (hard, negative), (complement, target), (complement, negative)):
        product = x * y if scratch is None else torch.mul(x, y, out=scratch)
        sums.append(product.sum(dims, keepdim=True))
    return torch.stack(sums)


def fused_kernels() -> bool:
    """True while torch.compile or torch.export traces: there elementwise work fuses and temporaries are free."""
    if torch.jit.is_scripting():
        return False
    return _compiling()


def soft_counts(
    values: Tensor,
    target: Tensor,
    mask: Optional[Tensor],
    dims: List[int],
    sigmoid_logits: bool,
    approximation: str,
    steepness: float,
    threshold: float,
    width: float,
    with_slope: bool,
) -> Tuple[Tensor, Optional[Tensor], float]:
    """TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y) over kept positions, stacked
    on a new axis 0, and A'(p) as (slope tensor or None for a constant, constant factor) for the backward pass.

    A large CPU input goes through in blocks of about 2^17 elements: each block's temporaries stay in cache and
    are reused by the allocator, and the slope is the only tensor of the size of the input written (a fresh
    tensor of 1e7 floats costs more in page faults than a pass over it). Elsewhere, and under torch.compile,
    which fuses the same expressions into one kernel, the whole tensor is one block.
    """
    scale = approximation_scale(approximation, steepness, width)
    if not counted_in_blocks(values):
        counts, slope = _soft_counts_block(values, target, mask, dims, sigmoid_logits, approximation, steepness, threshold, width, with_slope, None, None)
        return counts, slope, scale
    # blocks along the positions, or along the rows when there is one position per row (multiclass (N, C))
    axis = 2 if values.shape[2] > 1 else 0
    step = max(1, block_size() * values.shape[axis] // values.numel())
    slope: Optional[Tensor] = None
    if with_slope and (approximation != "identity" or sigmoid_logits):
        slope = slope_buffer(values)
    # buffers of one block, reused by every block (fresh pages cost more than the arithmetic): A and 1 - A,
    # 1 - y, a product, and for sigmoid logits p and 1 - p
    scratch = values.new_empty([6 if sigmoid_logits else 4] + list(values.narrow(axis, 0, step).shape))
    parts: List[Tensor] = []
    for start in range(0, values.shape[axis], step):
        length = min(step, values.shape[axis] - start)
        mask_block: Optional[Tensor] = None
        if mask is not None:
            mask_block = mask.narrow(axis, start, length) if mask.shape[axis] > 1 else mask
        slope_block = None if slope is None else slope.narrow(axis, start, length)
        counts_block, _ = _soft_counts_block(
            values.narrow(axis, start, length), target.narrow(axis, start, length), mask_block, dims,
            sigmoid_logits, approximation, steepness, threshold, width, with_slope, slope_block, scratch.narrow(axis + 1, 0, length),
        )
        parts.append(counts_block)
    counts = torch.stack(parts).sum(0) if axis == 2 or 0 in dims else torch.cat(parts, 1)
    return counts, slope, scale


def block_size() -> int:
    """Elements in one block of soft_counts: its temporaries, a few of this size, stay in the CPU's cache."""
    return 1 << 17


def counted_in_blocks(values: Tensor) -> bool:
    """Whether soft_counts goes through values in blocks (eagerly, on the CPU, above block_size() elements), and
    so takes its slope tensor from slope_buffer."""
    return values.numel() > block_size() and values.device.type == "cpu" and not fused_kernels()


def slope_buffer(like: Tensor) -> Tensor:
    """A tensor for the slope, kept for backward. Eagerly, the one of the last step whose backward pass has run,
    if it has the same shape: a fresh tensor of this size costs more in page faults than what is written to it.

    Reuse is safe: a graph that would read the old slope again (retain_graph=True) finds it overwritten, and
    autograd's check of saved tensors raises instead of computing with it.
    """
    if torch.jit.is_scripting():
        return torch.empty_like(like)
    return _reused_slope(like)


# A slope tensor whose backward pass has run, for the next eager forward pass: one per emitted module. A list
# whose pop and append are single, atomic operations, so two threads never take the same tensor.
_spare_slope: List[Tensor] = []


@torch.jit.unused
def _reused_slope(like: Tensor) -> Tensor:
    try:
        spare = _spare_slope.pop()
    except IndexError:
        return torch.empty_like(like)
    if spare.shape != like.shape or spare.dtype != like.dtype or spare.device != like.device:
        return torch.empty_like(like)
    return spare


@torch.jit.unused
def release_slope(slope: Tensor) -> None:
    """The backward pass has read the slope: the next forward pass may write over it."""
    _spare_slope.append(slope)
    del _spare_slope[:-1]


def _soft_counts_block(
    values: Tensor,
    target: Tensor,
    mask: Optional[Tensor],
    dims: List[int],
    sigmoid_logits: bool,
    approximation: str,
    steepness: float,
    threshold: float,
    width: float,
    with_slope: bool,
    slope_out: Optional[Tensor],
    scratch: Optional[Tensor],
) -> Tuple[Tensor, Optional[Tensor]]:
    hard, complement, slope = _soft_block(values, sigmoid_logits, approximation, steepness, threshold, width, with_slope, slope_out, scratch)
    negative = torch.rsub(target, 1.0) if scratch is None else torch.sub(target.new_ones(()), target, out=scratch[2])
    if mask is not None:
        target, negative = target * mask, negative * mask
    return _product_sums(hard, complement, target, negative, dims, None if scratch is None else scratch[3]), slope


def count_dims(task: str, average: str, multidim_average: str) -> List[int]:
    """The (batch, classes, positions) axes that one count sums over; the axes it keeps are rows (batch) and classes."""
    if average == "samples":
        return [1, 2]
    if multidim_average == "samplewise":
        return [1, 2] if average == "micro" or task == "binary" else [2]
    if average == "micro" or task == "binary":
        return [0, 1, 2]
    return [0, 2]


def check_averaging(
    task: str,
    average: str,
    multidim_average: str,
    include_background: bool,
    class_weights: Optional[List[float]],
    zero_division: Optional[float],
    sync: Optional[str],
    count_momentum: Optional[float],
) -> None:
    """The constructor's checks of the layout and averaging options (metricc.options makes the same ones)."""
    if average == "samples" and task != "multilabel":
        raise ValueError(f"average='samples' needs task='multilabel', got task={task!r}")
    if not include_background and task == "binary":
        raise ValueError("include_background=False needs task='multiclass' or 'multilabel': a binary input has one class")
    if class_weights is not None:
        if task == "binary" or average not in ("macro", "weighted"):
            raise ValueError(f"class_weights weigh classes in average='macro' or 'weighted', not average={average!r} with task={task!r}")
        if len(class_weights) == 0 or min(class_weights) <= 0:
            raise ValueError(f"class_weights={class_weights} must be positive numbers, one per scored class")
    if zero_division is not None and not abs(float(zero_division)) < float("inf"):
        raise ValueError(f"zero_division={zero_division} must be a finite number or None")
    if sync is not None and sync != "ddp":
        raise ValueError(f"sync={sync!r} is not None or 'ddp'")
    if count_momentum is not None:
        if not 0 < count_momentum <= 1:
            raise ValueError(f"count_momentum={count_momentum} must lie in (0, 1]")
        if multidim_average != "global" or average == "samples":
            raise ValueError("count_momentum needs counts pooled over the batch: multidim_average='global', average other than 'samples'")


def absent_counts(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
    """Counts of a class absent from both targets and predictions: TP + FP + FN below half a sample."""
    return tp + fp + fn < 0.5


def fill_absent(
    value: Tensor, positive: Tensor, negative: Tensor, tp: Tensor, fp: Tensor, fn: Tensor, zero_division: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """zero_division as the value of absent counts; there the value no longer depends on the predictions."""
    gone = absent_counts(tp, fp, fn)
    return value.masked_fill(gone, zero_division), positive.masked_fill(gone, 0.0), negative.masked_fill(gone, 0.0)


def average_weights(tp: Tensor, fp: Tensor, fn: Tensor, task: str, average: str, class_weights: Optional[Tensor]) -> Tensor:
    """Each count's weight within its row (an image or sample, or the one row of counts pooled over the batch).

    Weights of a row sum to one, or to zero when nothing in it counts: multiclass macro averaging leaves out
    absent classes as torchmetrics does, weighted averaging weighs by support (TP + FN).
    """
    if average == "none":
        return torch.ones_like(tp)
    if average == "weighted":
        weights = tp + fn
    elif average == "macro" and task == "multiclass":
        weights = (~absent_counts(tp, fp, fn)).to(tp.dtype)
    else:
        weights = torch.ones_like(tp)
    if class_weights is not None:
        weights = weights * class_weights.to(tp).reshape(1, -1, 1)
    return weights / torch.clamp(weights.sum(1, keepdim=True), min=1e-12)


def row_sums(value: Tensor, weights: Tensor, average: str) -> Tuple[Tensor, Tensor]:
    """The weighted values summed over rows, and the number of rows that count: their quotient is the average.

    average='none' keeps the classes: one sum per class, over all rows.
    """
    if average == "none":
        total = value.sum([0, 2])
        return total, torch.full_like(total, float(value.shape[0]))
    kept = (weights.sum([1, 2]) > 0.5).to(value.dtype)
    return (weights * value).sum(), kept.sum()


def mean_over_rows(total: Tensor, rows: Tensor, fallback: float) -> Tensor:
    """total / rows, or `fallback` when no row counts (every class absent, every position ignored)."""
    return total / torch.clamp(rows, min=1.0) + (rows < 0.5).to(total.dtype) * fallback


@torch.jit.unused
def _all_reduce(tensor: Tensor) -> Tensor:
    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized()):
        raise RuntimeError(
            "sync='ddp' needs an initialised torch.distributed process group: call "
            "torch.distributed.init_process_group(...) before the first loss, or construct the loss with sync=None"
        )
    total = tensor.detach().clone()
    distributed.all_reduce(total)
    return total


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The detached sum of `tensor` over all torch.distributed ranks (sync='ddp').

    Counts enter the backward pass only through the partials, as constants, so no gradient has to cross ranks:
    each rank's closed-form gradient for its own samples, taken at the global counts, is already the gradient
    of the global loss.
    """
    if torch.jit.is_scripting():
        raise RuntimeError("sync='ddp' does not work in TorchScript, which cannot call torch.distributed; script the loss with sync=None")
    return _all_reduce(tensor)


def running_counts(batch: Tensor, history: Tensor, momentum: float) -> Tuple[Tensor, float]:
    """(1 - momentum) history + momentum batch, as BatchNorm's running statistics, and d(result) / d(batch).

    Without a history of the same shape (the first step, or another number of classes) the batch alone.
    """
    if history.shape != batch.shape:
        return batch, 1.0
    return (1.0 - momentum) * history.to(batch) + momentum * batch, momentum


def closed_form_gradient(
    grad: Tensor, positive: Tensor, negative: Tensor, target: Tensor, slope: Optional[Tensor], mask: Optional[Tensor]
) -> Tensor:
    """d value / d p_i = grad (y_i positive + (1 - y_i) negative) A'(p_i), zero at ignored positions.

    positive = dTP - dFN and negative = dFP - dTN are the per-sample weights of the count the sample belongs
    to; grad is the upstream gradient of that count's value times the constant factor of A'.
    """
    weights = torch.mul(target, (positive - negative) * grad).add_(negative * grad)
    if slope is not None:
        weights.mul_(slope)
    if mask is not None:
        weights.mul_(mask)
    return weights


class ClosedFormGradient(torch.autograd.Function):
    """Identity on the detached per-count values; the backward pass is the closed form, not autograd.

    Class-index targets are kept as their labels, a tensor 1 / classes the size of the one-hot target (of the
    classes from first_class on), which the backward pass rebuilds.
    """

    @staticmethod
    def forward(ctx, per_count, leaf, positive, negative, target, labels, first_class: int, slope, mask, scale: float):
        ctx.scale = scale
        ctx.leaf_dtype = leaf.dtype
        ctx.target_dtype = target.dtype
        ctx.from_labels = labels is not None
        ctx.first_class = first_class
        ctx.classes = first_class + target.shape[1]
        ctx.save_for_backward(positive, negative, target if labels is None else labels, slope, mask)
        return per_count.clone()

    @staticmethod
    def backward(ctx, grad):
        positive, negative, target, slope, mask = ctx.saved_tensors
        if ctx.from_labels:
            target = one_hot_labels(target, ctx.classes, ctx.first_class, ctx.target_dtype)
        leaf_grad = closed_form_gradient(grad * ctx.scale, positive, negative, target, slope, mask)
        if slope is not None and counted_in_blocks(slope):
            release_slope(slope)
        return None, leaf_grad.to(ctx.leaf_dtype), None, None, None, None, None, None, None, None


@torch.jit.unused
def _closed_form_function(
    per_count: Tensor, leaf: Tensor, positive: Tensor, negative: Tensor, target: Tensor, labels: Optional[Tensor],
    first_class: int, slope: Optional[Tensor], mask: Optional[Tensor], scale: float,
) -> Tensor:
    return ClosedFormGradient.apply(per_count, leaf, positive, negative, target, labels, first_class, slope, mask, scale)


def attach_gradient(
    per_count: Tensor,
    positive: Tensor,
    negative: Tensor,
    target: Tensor,
    labels: Optional[Tensor],
    first_class: int,
    slope: Optional[Tensor],
    scale: float,
    mask: Optional[Tensor],
    leaf: Tensor,
    dims: List[int],
) -> Tensor:
    """Give the detached per-count metric values the closed-form gradient with respect to `leaf`.

    Per sample, d loss / d a_i = y_i (dTP - dFN) + (1 - y_i)(dFP - dTN); times A'(p_i) = scale * slope_i it
    is the gradient. For large inputs, eagerly and under torch.compile, a custom autograd Function computes it
    in the backward pass from what the forward pass kept (the slope: one tensor of the size of preds; for
    class-index targets also their labels, from which it rebuilds target's classes first_class on).
    TorchScript has no custom Functions, and for small inputs autograd's own nodes cost less than a Python
    backward: there the surrogate sum(g * leaf) minus its detached value, zero in the forward pass, gives
    autograd exactly g.
    """
    if torch.jit.is_scripting() or (leaf.numel() <= 65536 and not fused_kernels()):
        grad = closed_form_gradient(torch.full_like(per_count, scale), positive, negative, target, slope, mask)
        surrogate = (grad * leaf).sum(dims, keepdim=True)
        return per_count + (surrogate - surrogate.detach())
    return _closed_form_function(per_count, leaf, positive, negative, target, labels, first_class, slope, mask, scale)


def counts_fit_floats(counts: Tensor, leaf: Tensor) -> bool:
    """Eagerly, for a small input on the CPU with one count to differentiate, the formula costs less on Python
    floats (nanoseconds an operation) than on tensors (microseconds an operation)."""
    if torch.jit.is_scripting() or fused_kernels():
        return False
    small = leaf.numel() <= 65536 and leaf.device.type == "cpu"
    return small and counts.numel() == 4 and leaf.requires_grad and torch.is_grad_enabled()


@torch.jit.unused
def loss_from_floats(
    loss: float, positive: float, negative: float, target: Tensor, slope: Optional[Tensor], scale: float,
    mask: Optional[Tensor], leaf: Tensor,
) -> Tensor:
    """The loss value with the closed-form gradient attached: closed_form_gradient's weights, here from floats,
    dotted with leaf, minus the detached dot product, which is zero but carries the gradient."""
    weights = torch.mul(target, (positive - negative) * scale).add_(negative * scale)
    if slope is not None:
        weights.mul_(slope)
    if mask is not None:
        weights.mul_(mask)
    surrogate = torch.dot(leaf.reshape(-1).to(weights.dtype), weights.reshape(-1))
    return (surrogate - surrogate.detach()) + loss


def cross_entropy(preds: Tensor, target: Tensor, task: str, from_logits: bool, ignore_index: Optional[int]) -> Tensor:
    """The compound term: BCE (binary, multilabel) or CE over classes (multiclass), a mean over kept positions.

    Matches torch.nn.functional.binary_cross_entropy(_with_logits) and cross_entropy (nll_loss of log(p) for
    probabilities, log clamped at -100 like BCE); its gradient is left to autograd.
    """
    preds, target, mask, _ = canonical_layout(preds, target, task, ignore_index)
    preds = preds.to(target.dtype)
    if task == "multiclass":
        log_probs = torch.log_softmax(preds, dim=1) if from_logits else torch.clamp(torch.log(preds), min=-100.0)
        per_position = -(target * log_probs).sum(1, keepdim=True)
        if mask is not None:
            mask = mask.amin(1, keepdim=True)
    elif from_logits:
        per_position = torch.nn.functional.binary_cross_entropy_with_logits(preds, target, reduction="none")
    else:
        per_position = torch.nn.functional.binary_cross_entropy(preds, target, reduction="none")
    if mask is None:
        return per_position.mean()
    return (per_position * mask).sum() / torch.clamp(mask.sum(), min=1.0)


def signed_clamp(x: Tensor, eps: float) -> Tensor:
    """x moved to +-eps where |x| < eps, keeping its sign (zero goes to +eps)."""
    return torch.where(x.abs() < eps, torch.where(x < 0, -eps, eps) * torch.ones_like(x), x)


def signed_clamp_float(x: float, eps: float) -> float:
    """signed_clamp of a Python float."""
    if abs(x) >= eps:
        return x
    return -eps if x < 0 else eps


def sign_float(x: float) -> float:
    """torch.sign of a Python float."""
    return 0.0 if x == 0 else math.copysign(1.0, x)


def heaviside_float(x: float) -> float:
    """torch.heaviside(x, 0.5) of a Python float."""
    return 0.5 if x == 0 else float(x > 0)


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tensor:
    """The soft metric from the soft counts."""
    value = 2.0 * (tn * tp - fn * fp) / torch.clamp((fn + tn) * (fn + tp) + (fp + tn) * (fp + tp), min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = fn + tn
    x1 = fp + tp
    x2 = torch.clamp(x0 * (fn + tp) + x1 * (fp + tn), min=eps)
    x3 = tn * tp
    x4 = 2.0 * (x0 + x1) / torch.square(x2)
    value = 2.0 * (tn * tp - fn * fp) / x2
    positive = x4 * (torch.square(fp) + x3 + fn * tn + fp * tn)
    negative = -x4 * (torch.square(fn) + x3 + fn * tp + fp * tp)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = fn + tn
    x1 = fp + tp
    x2 = max(x0 * (fn + tp) + x1 * (fp + tn), eps)
    x3 = tn * tp
    x4 = 2.0 * (x0 + x1) / x2 ** 2
    value = 2.0 * (tn * tp - fn * fp) / x2
    positive = x4 * (fp ** 2 + x3 + fn * tn + fp * tn)
    negative = -x4 * (fn ** 2 + x3 + fn * tp + fp * tp)
    return value, positive, negative


_CHOICES = {
    "task": ["binary", "multiclass", "multilabel"],
    "approximation": ["anyloss", "identity", "linear"],
    "average": ["micro", "macro", "weighted", "none", "samples"],
    "multidim_average": ["global", "samplewise"],
    "direction": ["maximize", "minimize"],
}


class CohenKappaLoss(torch.nn.Module):
    """The metric as a loss on (preds, target); the module docstring has the formula.

    preds: (N,) or (N, 1, *spatial) for task='binary'; (N, C, *spatial) for 'multiclass' and 'multilabel'.
    Probabilities, or logits with from_logits=True (sigmoid; softmax over C for 'multiclass').
    target: the shape of preds (0/1, one-hot or multi-hot), or class indices (N, *spatial) or (N, 1, *spatial)
    for 'multiclass'. Positions whose target is ignore_index are left out; include_background=False leaves out
    class 0. average: 'micro' pools the classes, 'macro' averages them (multiclass leaves out absent classes),
    'weighted' weighs them by support, 'none' returns one loss per class, 'samples' one metric per sample
    (multilabel). multidim_average='samplewise': counts per image, then the mean over images.
    zero_division: the metric of a class absent from both targets and predictions (TP + FP + FN < 0.5);
    None keeps the formula's own value there. sync='ddp': counts summed over torch.distributed ranks.
    count_momentum: in training mode, counts mixed with running counts as BatchNorm's statistics are.
    """

    ignore_index: Optional[int]
    zero_division: Optional[float]
    sync: Optional[str]
    count_momentum: Optional[float]

    def __init__(
        self,
        task: str = 'binary',
        from_logits: bool = False,
        approximation: str = 'anyloss',
        steepness: float = 73.0,
        threshold: float = 0.5,
        width: float = 0.2,
        average: str = 'micro',
        multidim_average: str = 'global',
        ignore_index: Optional[int] = None,
        include_background: bool = True,
        class_weights: Optional[List[float]] = None,
        zero_division: Optional[float] = None,
        sync: Optional[str] = None,
        count_momentum: Optional[float] = None,
        eps: float = 1e-07,
        direction: str = 'maximize',
        validate_args: bool = True,
        ce_weight: float = 0.0,
    ):
        super().__init__()
        for option, value in (("task", task), ("approximation", approximation), ("average", average),
                              ("multidim_average", multidim_average), ("direction", direction)):
            if value not in _CHOICES[option]:
                raise ValueError(f"{option}={value!r} is not one of {_CHOICES[option]}")
        if not (steepness > 0 and width > 0 and eps > 0 and 0 < threshold < 1):
            raise ValueError("steepness, width and eps must be positive and threshold must lie in (0, 1)")
        check_averaging(task, average, multidim_average, include_background, class_weights, zero_division, sync, count_momentum)
        if not (ce_weight >= 0.0 and ce_weight < float("inf")) or (ce_weight > 0.0 and average == "none"):
            raise ValueError(f"ce_weight={ce_weight} must be a finite number >= 0, and 0 when average='none'")
        self.task = task
        self.from_logits = from_logits
        self.approximation = approximation
        self.steepness = float(steepness)
        self.threshold = float(threshold)
        self.width = float(width)
        self.average = average
        self.multidim_average = multidim_average
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.zero_division = None if zero_division is None else float(zero_division)
        self.sync = sync
        self.count_momentum = None if count_momentum is None else float(count_momentum)
        self.eps = float(eps)
        self.sign = -1.0 if direction == "maximize" else 1.0
        self.offset = 1.0 if direction == "maximize" else 0.0
        self.validate_args = validate_args
        self.ce_weight = float(ce_weight)
        weights = torch.tensor(class_weights if class_weights is not None else [], dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)
        self.register_buffer("running_counts", torch.zeros(0), persistent=False)

    def _counts(self, preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], float, Tensor, Optional[Tensor], List[int]]:
        """Soft counts TP, FP, FN, TN stacked, of the canonical (batch, classes, positions) layout, and what the
        backward pass needs."""
        if self.validate_args:
            validate_inputs(preds, target, self.task, self.from_logits, self.ignore_index, self.include_background)
        preds, target, mask, labels = canonical_layout(preds, target, self.task, self.ignore_index)
        values = preds.detach().to(target.dtype)
        leaf = preds
        if self.from_logits and self.task == "multiclass":
            leaf = probabilities(preds.to(target.dtype), self.task, self.from_logits)
            values = leaf.detach()
        if not self.include_background:
            leaf, values, target = leaf[:, 1:], values[:, 1:], target[:, 1:]
            if mask is not None and mask.shape[1] > 1:
                mask = mask[:, 1:]
        dims = count_dims(self.task, self.average, self.multidim_average)
        sigmoid_logits = self.from_logits and self.task != "multiclass"
        with_slope = leaf.requires_grad and torch.is_grad_enabled()
        counts, slope, scale = soft_counts(
            values, target, mask, dims, sigmoid_logits, self.approximation, self.steepness, self.threshold, self.width, with_slope
        )
        return counts, target, labels, slope, scale, leaf, mask, dims

    def _pooled(self, counts: Tensor, dims: List[int], running: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, float]:
        """The counts the formula sees (summed over ranks, mixed with running counts) and their derivative by this batch's."""
        if (self.sync is None or 0 not in dims) and (self.count_momentum is None or not running):
            return counts[0], counts[1], counts[2], counts[3], 1.0
        if self.sync is not None and 0 in dims:
            counts = all_reduce_sum(counts)
        scale = 1.0
        momentum = self.count_momentum
        if momentum is not None and running:
            counts, scale = running_counts(counts, self.running_counts, momentum)
            self.running_counts = counts.detach()
        return counts[0], counts[1], counts[2], counts[3], scale

    def _average(self, value: Tensor, tp: Tensor, fp: Tensor, fn: Tensor, dims: List[int]) -> Tensor:
        """The per-count metric values averaged over classes and rows as configured; rows summed over ranks."""
        if self.average == "micro" and self.sync is None:
            return value.mean()  # one pooled count per row, each row counts: the weights below are all one
        class_weights: Optional[Tensor] = None
        if self.class_weights.numel() > 0:
            if self.class_weights.numel() != tp.shape[1]:
                raise ValueError(
                    f"class_weights has {self.class_weights.numel()} entries for {tp.shape[1]} scored classes"
                    " (include_background=False leaves out class 0)"
                )
            class_weights = self.class_weights
        weights = average_weights(tp, fp, fn, self.task, self.average, class_weights)
        total, rows = row_sums(value, weights, self.average)
        if self.sync is not None and 0 not in dims:
            total = total + (all_reduce_sum(total) - total.detach())
            rows = all_reduce_sum(rows)
        zero_division = self.zero_division
        return mean_over_rows(total, rows, 0.0 if zero_division is None else zero_division)

    @torch.jit.unused
    def _loss_of_floats(
        self, counts: Tensor, target: Tensor, slope: Optional[Tensor], scale: float, mask: Optional[Tensor], leaf: Tensor
    ) -> Optional[Tensor]:
        """The loss of one count (binary, or micro-averaged) with the formula on Python floats; None where the
        floats fail (0/0, an overflow) and the tensor formula is to decide."""
        tp, fp, fn, tn = counts.reshape(4).tolist()
        try:
            value, positive, negative = metric_value_and_weights_of_floats(tp, fp, fn, tn, self.eps)
        except (ArithmeticError, ValueError):
            return None
        if not all(math.isfinite(x) for x in (value, positive, negative)):
            return None
        if self.zero_division is not None and tp + fp + fn < 0.5:
            value, positive, negative = self.zero_division, 0.0, 0.0
        return loss_from_floats(self.sign * value + self.offset, self.sign * positive, self.sign * negative, target, slope, scale, mask, leaf)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss: {1 - metric or metric}, averaged as configured, with the closed-form gradient."""
        counts, counted, labels, slope, scale, leaf, mask, dims = self._counts(preds, target)
        loss: Optional[Tensor] = None
        one_count = self.average == "micro" and self.sync is None and (self.count_momentum is None or not self.training)
        if one_count and counts_fit_floats(counts, leaf):
            loss = self._loss_of_floats(counts, counted, slope, scale, mask, leaf)
        if loss is None:
            loss = self._loss_of_tensors(counts, counted, labels, slope, scale, leaf, mask, dims)
        if self.ce_weight > 0.0:
            loss = loss + self.ce_weight * cross_entropy(preds, target, self.task, self.from_logits, self.ignore_index)
        return loss

    def _loss_of_tensors(
        self, counts: Tensor, counted: Tensor, labels: Optional[Tensor], slope: Optional[Tensor], scale: float, leaf: Tensor,
        mask: Optional[Tensor], dims: List[int],
    ) -> Tensor:
        """The loss with the formula on count tensors, pooled across ranks and steps as configured."""
        tp, fp, fn, tn, count_scale = self._pooled(counts, dims, self.training)
        zero_division = self.zero_division
        if not (leaf.requires_grad and torch.is_grad_enabled()):
            value = metric_value(tp, fp, fn, tn, self.eps)
            if zero_division is not None:
                value = value.masked_fill(absent_counts(tp, fp, fn), zero_division)
        else:
            value, positive, negative = metric_value_and_weights(tp, fp, fn, tn, self.eps)
            if zero_division is not None:
                value, positive, negative = fill_absent(value, positive, negative, tp, fp, fn, zero_division)
            first_class = 0 if self.include_background else 1
            value = attach_gradient(value, positive, negative, counted, labels, first_class, slope, scale * count_scale, mask, leaf, dims)
        return self.sign * self._average(value, tp, fp, fn, dims) + self.offset

    @torch.jit.export
    def metric(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft metric of this batch (no gradient, no running counts), averaged like the loss."""
        with torch.no_grad():
            counts, target, labels, slope, scale, leaf, mask, dims = self._counts(preds, target)
            tp, fp, fn, tn, count_scale = self._pooled(counts, dims, False)
            value = metric_value(tp, fp, fn, tn, self.eps)
            zero_division = self.zero_division
            if zero_division is not None:
                value = value.masked_fill(absent_counts(tp, fp, fn), zero_division)
            return self._average(value, tp, fp, fn, dims)

    @torch.jit.export
    def metric_of_counts(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        """The guarded formula on count tensors of any one shape, element-wise: no averaging, no zero_division."""
        return metric_value(tp, fp, fn, tn, self.eps)

    @torch.jit.export
    def reset_running_counts(self) -> None:
        """Forget the running counts (count_momentum): the next training step starts from its own batch."""
        self.running_counts = self.running_counts.new_zeros([0])
