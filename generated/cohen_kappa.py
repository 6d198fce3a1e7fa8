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
    - the denominator (FN + TN)*(FN + TP) + (FP + TN)*(FP + TP) vanishes; guarded by max(x, eps)
    - the denominator FN**2 + FN*TN + FN*TP + FP**2 + FP*TN + FP*TP + 2*TN*TP vanishes; guarded by
        max(x, eps)

Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).
This file imports only torch and is generated: edit the metric, not this file.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor


def canonical_layout(
    preds: Tensor, target: Tensor, task: str, ignore_index: Optional[int]
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Reshape to (batch, classes, positions): preds, a one-hot target in the counting dtype, and a 0/1 mask
    of kept positions (None when nothing is ignored)."""
    dtype = torch.promote_types(preds.dtype, torch.float32)
    if task == "binary":
        shape = [preds.shape[0] if preds.dim() > 0 else 1, 1, -1]
    else:
        shape = [preds.shape[0], preds.shape[1], -1]
    if task == "multiclass" and target.dim() == preds.dim() - 1:
        labels = target.long()
        keep = labels != (-1 if ignore_index is None else ignore_index)
        labels = torch.where(keep, labels, torch.zeros_like(labels)).reshape(shape[0], 1, -1)
        one_hot = torch.zeros(shape[0], shape[1], labels.shape[2], dtype=dtype, device=preds.device).scatter_(1, labels, 1.0)
        keep = keep.unsqueeze(1)
        mask_shape = [shape[0], 1, -1]
    else:
        one_hot = target.reshape(preds.shape)
        keep = one_hot
        if ignore_index is not None:
            keep = one_hot != ignore_index
            one_hot = torch.where(keep, one_hot, torch.zeros_like(one_hot))
        mask_shape = shape
    mask: Optional[Tensor] = None
    if ignore_index is not None:
        mask = keep.reshape(mask_shape).to(dtype)
    return preds.reshape(shape), one_hot.reshape(shape).to(dtype), mask


@torch.jit.unused
def _compiling() -> bool:
    return torch.compiler.is_compiling()


def value_checks_enabled() -> bool:
    """Checks of tensor values need the data; torch.compile and torch.export trace without it and skip them."""
    if torch.jit.is_scripting():
        return True
    return not _compiling()


def validate_inputs(preds: Tensor, target: Tensor, task: str, from_logits: bool, ignore_index: Optional[int]) -> None:
    """Raise ValueError naming the offending input; never let bad data become a silent number."""
    preds = preds.detach()
    if task == "multiclass":
        if preds.dim() < 2:
            raise ValueError(f"multiclass preds must have shape (N, C, ...), got {list(preds.shape)}")
        if preds.shape[1] < 2 and from_logits:
            raise ValueError(f"softmax over a single channel is constant; got preds of shape {list(preds.shape)}: use task='binary'")
        if target.dim() == preds.dim() - 1:
            if target.shape[0] != preds.shape[0] or target.shape[1:] != preds.shape[2:]:
                raise ValueError(f"target of shape {list(target.shape)} does not match preds of shape {list(preds.shape)}")
            if target.is_floating_point():
                raise ValueError(f"class-index targets must be integers, got dtype {target.dtype}")
            kept = target if ignore_index is None else target[target != ignore_index]
            if kept.numel() > 0 and value_checks_enabled():
                low, high = int(kept.min()), int(kept.max())
                if low < 0 or high >= preds.shape[1]:
                    bad = low if low < 0 else high
                    raise ValueError(
                        f"target contains class index {bad}, outside [0, {preds.shape[1] - 1}] for preds with {preds.shape[1]} classes"
                    )
        elif target.shape != preds.shape:
            raise ValueError(f"target of shape {list(target.shape)} does not match preds of shape {list(preds.shape)}")
        else:
            _check_binary_values(target, ignore_index)
    else:
        if not _same_layout(preds, target):
            raise ValueError(f"target of shape {list(target.shape)} does not match preds of shape {list(preds.shape)}")
        if task == "multilabel" and preds.dim() < 2:
            raise ValueError(f"multilabel preds must have shape (N, C, ...), got {list(preds.shape)}")
        _check_binary_values(target, ignore_index)
    if preds.numel() > 0 and value_checks_enabled():
        low, high = torch.aminmax(preds)
        low_p, high_p = float(low), float(high)
        if not (abs(low_p) < float("inf") and abs(high_p) < float("inf")):
            raise ValueError("preds contain NaN or infinite values; check the model's outputs (a loss cannot be computed from them)")
        if not from_logits and (low_p < 0.0 or high_p > 1.0):
            raise ValueError(f"preds lie in [{low_p}, {high_p}], outside [0, 1]; pass from_logits=True for raw scores")


def _same_layout(preds: Tensor, target: Tensor) -> bool:
    """Equal shapes, or preds with a channel axis of one that target leaves out ((N, 1) vs (N,))."""
    if preds.shape == target.shape:
        return True
    return (
        preds.dim() == target.dim() + 1
        and preds.shape[1] == 1
        and preds.shape[0] == target.shape[0]
        and preds.shape[2:] == target.shape[1:]
    )


def _check_binary_values(target: Tensor, ignore_index: Optional[int]) -> None:
    """Every kept target is 0 or 1: for a float target t - t * t is exactly zero there, nonzero elsewhere and NaN
    at NaN or inf (no comparisons, which are slow); an integer target by its range."""
    if not value_checks_enabled() or target.dtype == torch.bool:
        return
    kept = target if ignore_index is None else target[target != ignore_index]
    if kept.numel() == 0:
        return
    if kept.is_floating_point():
        # in blocks of 2^20: a temporary the size of a large target costs more than the check (page faults)
        blocks = kept.reshape(-1).split(1 << 20)
        bounds = torch.stack([torch.stack(torch.aminmax(torch.addcmul(b, b, b, value=-1.0))) for b in blocks])
        valid = float(bounds.abs().amax()) == 0.0
    else:
        low, high = torch.aminmax(kept)
        valid = int(low) >= 0 and int(high) <= 1
    if not valid:
        bad = kept[(kept != 0) & (kept != 1)][0]
        raise ValueError(f"target must contain only 0 and 1 (or ignore_index), found {float(bad)}")


def probabilities(preds: Tensor, task: str, from_logits: bool) -> Tensor:
    """Logits become probabilities by sigmoid, or by softmax over classes for multiclass."""
    if not from_logits:
        return preds
    if task == "multiclass":
        return torch.softmax(preds, dim=1)
    return torch.sigmoid(preds)


def approximate(probs: Tensor, approximation: str, steepness: float, threshold: float, width: float) -> Tensor:
    """A(p), the soft 0/1 prediction; a new tensor except for identity, which returns probs itself.

    anyloss: sigmoid(L (p - tau)), computed in place on one new tensor. identity: p, the soft-set counts of
    soft Dice. linear: a ramp of the given width around tau, clamped to [0, 1].
    """
    if approximation == "anyloss":
        offset = torch.full((), -steepness * threshold, dtype=probs.dtype, device=probs.device)
        return torch.add(offset, probs, alpha=steepness).sigmoid_()
    if approximation == "identity":
        return probs
    return torch.sub(probs, threshold).div_(width).add_(0.5).clamp_(0.0, 1.0)


def sum_of_products(x: Tensor, y: Tensor, dims: List[int]) -> Tensor:
    """sum(x * y) over dims, keeping them.

    A large full reduction on the CPU is a dot product of 65536-element blocks: no temporary of the size of x
    (whose allocation dominates at 1e7 elements), and float rounding at the level of torch.sum (one long BLAS
    dot product rounds like a running sum, about 1e-4 relative at 1e7 float32 terms). Otherwise, and under
    torch.compile, which fuses it into the reduction, it is the plain product and sum.
    """
    if len(dims) == 3 and x.numel() > 65536 and x.device.type == "cpu" and not fused_kernels():
        blocks = [torch.dot(a, b) for a, b in zip(x.reshape(-1).split(65536), y.reshape(-1).split(65536))]
        return torch.stack(blocks).sum().reshape(1, 1, 1)
    return (x * y).sum(dims, keepdim=True)


def fused_kernels() -> bool:
    """True while torch.compile or torch.export traces: there elementwise work fuses and temporaries are free."""
    if torch.jit.is_scripting():
        return False
    return _compiling()


def soft_counts(hard: Tensor, target: Tensor, mask: Optional[Tensor], dims: List[int]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y) over kept positions.

    Three reductions (of a y, a and y) and the number of kept positions give all four; each count is then
    exact to a few units of float rounding of the total count, the accuracy of a float sum of that many terms.
    """
    if mask is not None:
        hard, target = hard * mask, target * mask
    tp = sum_of_products(hard, target, dims)
    predicted = hard.sum(dims, keepdim=True)
    fn = target.sum(dims, keepdim=True) - tp
    if mask is None:
        negatives = torch.rsub(predicted, float(_count_positions(hard.shape, dims)))
    else:
        negatives = mask.expand(hard.shape).sum(dims, keepdim=True) - predicted
    return tp, predicted - tp, fn, negatives - fn


def _count_positions(shape: List[int], dims: List[int]) -> int:
    size = 1
    for dim in dims:
        size *= shape[dim]
    return size


def approximation_slope(
    hard: Tensor, probs: Tensor, approximation: str, steepness: float, width: float, sigmoid_logits: bool
) -> Tuple[Optional[Tensor], float]:
    """d A / d (what the loss is differentiated by), as (tensor or None for a constant, constant factor).

    Written in terms of a = A(p), overwriting `hard` and, for sigmoid_logits, `probs` (both temporaries then):
    anyloss: A' = L a (1 - a); identity: 1; linear: 1 / width inside the ramp, 0 outside. With sigmoid logits
    the chain rule adds p (1 - p). a.lerp_(0, a) is a + a (0 - a) = a (1 - a) in place; torch evaluates it as
    a (1 - a) for a >= 1/2, so it has no cancellation where a is near 1.
    """
    slope: Optional[Tensor] = None
    scale = 1.0
    if approximation == "anyloss":
        slope = hard.lerp_(torch.zeros((), dtype=hard.dtype, device=hard.device), hard)
        scale = steepness
    elif approximation == "linear":
        slope = (hard > 0.0) & (hard < 1.0)
        scale = 1.0 / width
    if sigmoid_logits:
        sigmoid_slope = probs.lerp_(torch.zeros((), dtype=probs.dtype, device=probs.device), probs)
        slope = sigmoid_slope if slope is None else sigmoid_slope.mul_(slope)
    return slope, scale


def count_dims(task: str, average: str, multidim_average: str) -> List[int]:
    """The (batch, classes, positions) axes that one count sums over."""
    if average == "samples":
        return [1, 2]
    if multidim_average == "samplewise":
        return [1, 2] if average == "micro" or task == "binary" else [2]
    if average == "micro" or task == "binary":
        return [0, 1, 2]
    return [0, 2]


def average_weights(
    tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, task: str, average: str, class_weights: Optional[Tensor]
) -> Tensor:
    """Weights that turn the per-count losses into the loss: a mean over images (rows) of a weighted mean over classes.

    Multiclass macro averaging leaves out a class absent from both targets and predictions (TP + FP + FN below
    half a sample), as torchmetrics does; a row whose classes are all absent contributes zero.
    """
    rows = float(tp.shape[0])
    if average == "none" or (average == "micro" and class_weights is None):
        return torch.full_like(tp, 1.0 / rows)
    weights = torch.ones_like(tp)
    if average == "weighted":
        weights = tp + fn
    elif average == "macro" and task == "multiclass":
        weights = (tp + fp + fn >= 0.5).to(tp.dtype)
    if class_weights is not None:
        weights = weights * class_weights.to(tp.dtype).reshape(1, -1, 1)
    return weights / torch.clamp(weights.sum(1, keepdim=True), min=1e-12) / rows


def reduce_loss(per_count: Tensor, weights: Tensor, average: str) -> Tensor:
    """Weighted sum of the per-count losses: a scalar, or one loss per class for average='none'."""
    weighted = weights * per_count
    if average == "none":
        return weighted.sum([0, 2])
    return weighted.sum()


def closed_form_gradient(
    grad: Tensor, positive: Tensor, negative: Tensor, target: Tensor, slope: Optional[Tensor], mask: Optional[Tensor]
) -> Tensor:
    """d loss / d p_i = grad (y_i positive + (1 - y_i) negative) A'(p_i), zero at ignored positions.

    positive = dTP - dFN and negative = dFP - dTN are the per-sample weights of the count the sample belongs
    to; grad is d loss / d (that count's loss) times the constant factor of A'.
    """
    weights = torch.mul(target, (positive - negative) * grad).add_(negative * grad)
    if slope is not None:
        weights.mul_(slope)
    if mask is not None:
        weights.mul_(mask)
    return weights


class ClosedFormGradient(torch.autograd.Function):
    """Identity on the detached per-count losses; the backward pass is the closed form, not autograd."""

    @staticmethod
    def forward(ctx, per_count, leaf, positive, negative, target, slope, mask, scale: float):
        ctx.scale = scale
        ctx.leaf_dtype = leaf.dtype
        ctx.save_for_backward(positive, negative, target, slope, mask)
        return per_count.clone()

    @staticmethod
    def backward(ctx, grad):
        positive, negative, target, slope, mask = ctx.saved_tensors
        leaf_grad = closed_form_gradient(grad * ctx.scale, positive, negative, target, slope, mask)
        return None, leaf_grad.to(ctx.leaf_dtype), None, None, None, None, None, None


@torch.jit.unused
def _closed_form_function(
    per_count: Tensor, leaf: Tensor, positive: Tensor, negative: Tensor, target: Tensor,
    slope: Optional[Tensor], mask: Optional[Tensor], scale: float,
) -> Tensor:
    return ClosedFormGradient.apply(per_count, leaf, positive, negative, target, slope, mask, scale)


def attach_gradient(
    per_count: Tensor,
    positive: Tensor,
    negative: Tensor,
    target: Tensor,
    slope: Optional[Tensor],
    scale: float,
    mask: Optional[Tensor],
    leaf: Tensor,
    dims: List[int],
) -> Tensor:
    """Give the detached per-count losses the closed-form gradient with respect to `leaf`.

    Per sample, d loss / d a_i = y_i (dTP - dFN) + (1 - y_i)(dFP - dTN); times A'(p_i) = scale * slope_i it
    is the gradient. For large inputs, eagerly and under torch.compile, a custom autograd Function computes it
    in the backward pass from what the forward pass kept (the slope: one tensor of the size of preds).
    TorchScript has no custom Functions, and for small inputs autograd's own nodes cost less than a Python
    backward: there the surrogate sum(g * leaf) minus its detached value, zero in the forward pass, gives
    autograd exactly g.
    """
    if torch.jit.is_scripting() or (leaf.numel() <= 65536 and not fused_kernels()):
        grad = closed_form_gradient(torch.full_like(per_count, scale), positive, negative, target, slope, mask)
        surrogate = (grad * leaf).sum(dims, keepdim=True)
        return per_count + (surrogate - surrogate.detach())
    return _closed_form_function(per_count, leaf, positive, negative, target, slope, mask, scale)


def signed_clamp(x: Tensor, eps: float) -> Tensor:
    """x moved to +-eps where |x| < eps, keeping its sign (zero goes to +eps)."""
    return torch.where(x.abs() < eps, torch.where(x < 0, -eps, eps) * torch.ones_like(x), x)


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tensor:
    """The soft metric from the soft counts."""
    value = 2.0 * (tn * tp - fn * fp) / torch.clamp((fn + tn) * (fn + tp) + (fp + tn) * (fp + tp), min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = fn + tn
    x1 = fp + tp
    x2 = tn * tp
    x3 = torch.square(fp) + fn * tn + fp * tn
    x4 = torch.square(fn) + fn * tp + fp * tp
    x5 = 2.0 * (x0 + x1) / torch.square(torch.clamp(2.0 * x2 + x3 + x4, min=eps))
    value = 2.0 * (tn * tp - fn * fp) / torch.clamp(x0 * (fn + tp) + x1 * (fp + tn), min=eps)
    positive = x5 * (x2 + x3)
    negative = -x5 * (x2 + x4)
    return value, positive, negative


_CHOICES = {
    "task": ["binary", "multiclass", "multilabel"],
    "approximation": ["anyloss", "identity", "linear"],
    "average": ["micro", "macro", "weighted", "none", "samples"],
    "multidim_average": ["global", "samplewise"],
    "direction": ["maximize", "minimize"],
}


class CohenKappaLoss(torch.nn.Module):
    """The metric as a loss on (preds, target); see the module docstring for the formula and options."""

    ignore_index: Optional[int]

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
        eps: float = 1e-07,
        direction: str = 'maximize',
        validate_args: bool = True,
    ):
        super().__init__()
        for option, value in (("task", task), ("approximation", approximation), ("average", average),
                              ("multidim_average", multidim_average), ("direction", direction)):
            if value not in _CHOICES[option]:
                raise ValueError(f"{option}={value!r} is not one of {_CHOICES[option]}")
        if not (steepness > 0 and width > 0 and eps > 0 and 0 < threshold < 1):
            raise ValueError("steepness, width and eps must be positive and threshold must lie in (0, 1)")
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
        self.eps = float(eps)
        self.sign = -1.0 if direction == "maximize" else 1.0
        self.offset = 1.0 if direction == "maximize" else 0.0
        self.validate_args = validate_args
        weights = torch.tensor(class_weights if class_weights is not None else [], dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def _counts(self, preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Optional[Tensor], float, Tensor, Optional[Tensor], List[int]]:
        """Soft counts of the canonical (batch, classes, positions) layout, and what the backward pass needs."""
        if self.validate_args:
            validate_inputs(preds, target, self.task, self.from_logits, self.ignore_index)
        preds, target, mask = canonical_layout(preds, target, self.task, self.ignore_index)
        values = preds.detach().to(target.dtype)
        leaf = preds
        if self.from_logits and self.task == "multiclass":
            leaf = probabilities(preds.to(target.dtype), self.task, self.from_logits)
            probs = leaf.detach()
        else:
            probs = probabilities(values, self.task, self.from_logits)
        if not self.include_background and self.task != "binary":
            leaf, probs, target = leaf[:, 1:], probs[:, 1:], target[:, 1:]
            if mask is not None and mask.shape[1] > 1:
                mask = mask[:, 1:]
        hard = approximate(probs, self.approximation, self.steepness, self.threshold, self.width)
        dims = count_dims(self.task, self.average, self.multidim_average)
        tp, fp, fn, tn = soft_counts(hard, target, mask, dims)
        slope: Optional[Tensor] = None
        scale = 1.0
        if leaf.requires_grad and torch.is_grad_enabled():
            sigmoid_logits = self.from_logits and self.task != "multiclass"
            slope, scale = approximation_slope(hard, probs, self.approximation, self.steepness, self.width, sigmoid_logits)
        return tp, fp, fn, tn, target, slope, scale, leaf, mask, dims

    def _weights(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        class_weights: Optional[Tensor] = None
        if self.class_weights.numel() > 0:
            if self.class_weights.numel() != tp.shape[1]:
                raise ValueError(f"class_weights has {self.class_weights.numel()} entries for {tp.shape[1]} classes")
            class_weights = self.class_weights
        return average_weights(tp, fp, fn, tn, self.task, self.average, class_weights)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss: {1 - metric or metric}, averaged as configured, with the closed-form gradient."""
        tp, fp, fn, tn, target, slope, scale, leaf, mask, dims = self._counts(preds, target)
        if not (leaf.requires_grad and torch.is_grad_enabled()):
            value = metric_value(tp, fp, fn, tn, self.eps)
            return reduce_loss(self.sign * value + self.offset, self._weights(tp, fp, fn, tn), self.average)
        value, positive, negative = metric_value_and_weights(tp, fp, fn, tn, self.eps)
        per_count = torch.rsub(value, self.offset) if self.sign < 0 else value
        per_count = attach_gradient(per_count, positive, negative, target, slope, self.sign * scale, mask, leaf, dims)
        return reduce_loss(per_count, self._weights(tp, fp, fn, tn), self.average)

    @torch.jit.export
    def metric(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft metric itself (no gradient), averaged like the loss."""
        with torch.no_grad():
            tp, fp, fn, tn, target, slope, scale, leaf, mask, dims = self._counts(preds, target)
            value = metric_value(tp, fp, fn, tn, self.eps)
            return reduce_loss(value, self._weights(tp, fp, fn, tn), self.average)
