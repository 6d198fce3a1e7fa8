"""AccuracyLoss: accuracy as a loss, compiled by metricc 0.1.0.

Metric (maximized; the loss is 1 - accuracy):

    accuracy = (TN + TP)/(FN + FP + TN + TP)

Partial derivatives (the backward pass uses these, not autograd through the formula):

    d accuracy / d TP = (FN + FP)/(FN + FP + TN + TP)**2
    d accuracy / d FP = (-TN - TP)/(FN + FP + TN + TP)**2
    d accuracy / d FN = (-TN - TP)/(FN + FP + TN + TP)**2
    d accuracy / d TN = (FN + FP)/(FN + FP + TN + TP)**2

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN + FP + TN + TP vanishes (the batch is empty); guarded by max(x, eps)

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
    target = target.detach()
    if task == "binary":
        rows = preds.shape[0] if preds.dim() > 2 else 1
        shape = [rows, 1, preds.numel() // max(rows, 1)]
    else:
        rows = preds.shape[0]
        shape = [rows, preds.shape[1], preds.numel() // max(rows * preds.shape[1], 1)]
    if task == "multiclass" and target.dim() == preds.dim() - 1:
        labels = target.long()
        keep = labels != (-1 if ignore_index is None else ignore_index)
        labels = torch.where(keep, labels, torch.zeros_like(labels))
        one_hot = torch.nn.functional.one_hot(labels, preds.shape[1]).movedim(-1, 1)
        keep = keep.unsqueeze(1)
        mask_shape = [shape[0], 1, shape[2]]
    else:
        one_hot = target.reshape(preds.shape)
        keep = one_hot != (-1 if ignore_index is None else ignore_index)
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
        if not bool(torch.isfinite(preds).all()):
            raise ValueError("preds contain NaN or infinite values; check the model's outputs (a loss cannot be computed from them)")
        if not from_logits:
            low_p, high_p = torch.aminmax(preds)
            if float(low_p) < 0.0 or float(high_p) > 1.0:
                raise ValueError(
                    f"preds lie in [{float(low_p)}, {float(high_p)}], outside [0, 1]; pass from_logits=True for raw scores"
                )


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
    if not value_checks_enabled():
        return
    kept = target if ignore_index is None else target[target != ignore_index]
    if kept.numel() > 0 and not bool(((kept == 0) | (kept == 1)).all()):
        bad = kept[(kept != 0) & (kept != 1)][0]
        raise ValueError(f"target must contain only 0 and 1 (or ignore_index), found {float(bad)}")


def probabilities(preds: Tensor, task: str, from_logits: bool) -> Tensor:
    """Logits become probabilities by sigmoid, or by softmax over classes for multiclass."""
    if not from_logits:
        return preds
    if task == "multiclass":
        return torch.softmax(preds, dim=1)
    return torch.sigmoid(preds)


def approximate(probs: Tensor, approximation: str, steepness: float, threshold: float, width: float) -> Tuple[Tensor, Tensor, Tensor]:
    """A(p), 1 - A(p) computed without cancellation, and A'(p).

    anyloss: A(p) = sigmoid(L (p - tau)); in float32 it saturates to exactly 0 or 1 once L (1 - tau) exceeds
    about 16.6 (L above ~33 at tau = 0.5), so 1 - A is taken as sigmoid(-L (p - tau)), which does not.
    identity: A(p) = p, the soft-set counts of soft Dice. linear: a ramp of the given width around tau.
    """
    if approximation == "anyloss":
        scaled = steepness * (probs - threshold)
        hard = torch.sigmoid(scaled)
        complement = torch.sigmoid(-scaled)
        return hard, complement, steepness * hard * complement
    if approximation == "identity":
        return probs, 1.0 - probs, torch.ones_like(probs)
    ramp = (probs - threshold) / width + 0.5
    hard = torch.clamp(ramp, 0.0, 1.0)
    inside = ((ramp > 0.0) & (ramp < 1.0)).to(probs.dtype)
    return hard, 1.0 - hard, inside / width


def soft_counts(
    hard: Tensor, complement: Tensor, target: Tensor, mask: Optional[Tensor], dims: List[int]
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y) over kept positions."""
    positive = target if mask is None else target * mask
    negative = 1.0 - target if mask is None else (1.0 - target) * mask
    tp = (hard * positive).sum(dims, keepdim=True)
    fp = (hard * negative).sum(dims, keepdim=True)
    fn = (complement * positive).sum(dims, keepdim=True)
    tn = (complement * negative).sum(dims, keepdim=True)
    return tp, fp, fn, tn


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
    weights = torch.ones_like(tp)
    if average == "weighted":
        weights = tp + fn
    elif average == "macro" and task == "multiclass":
        weights = (tp + fp + fn >= 0.5).to(tp.dtype)
    if class_weights is not None:
        weights = weights * class_weights.to(tp.dtype).reshape(1, -1, 1)
    rows = float(tp.shape[0])
    if average == "none":
        return torch.full_like(tp, 1.0 / rows)
    return weights / torch.clamp(weights.sum(1, keepdim=True), min=1e-12) / rows


def reduce_loss(per_count: Tensor, weights: Tensor, average: str) -> Tensor:
    """Weighted sum of the per-count losses: a scalar, or one loss per class for average='none'."""
    weighted = weights * per_count
    if average == "none":
        return weighted.sum([0, 2])
    return weighted.sum()


def attach_gradient(
    per_count: Tensor,
    d_tp: Tensor,
    d_fp: Tensor,
    d_fn: Tensor,
    d_tn: Tensor,
    target: Tensor,
    mask: Optional[Tensor],
    slope: Tensor,
    leaf: Tensor,
    dims: List[int],
) -> Tensor:
    """Give the detached per-count losses the closed-form gradient with respect to `leaf`.

    Per sample, d loss / d a_i = y_i (dTP - dFN) + (1 - y_i)(dFP - dTN); times A'(p_i) (and any activation
    derivative folded into `slope`) it is the gradient. The surrogate sum(g * leaf) - its detached value is
    zero in the forward pass and has exactly that gradient, so only g is kept for the backward pass.
    """
    negative_weight = d_fp - d_tn
    grad = (target * (d_tp - d_fn - negative_weight) + negative_weight) * slope
    if mask is not None:
        grad = grad * mask
    surrogate = (grad * leaf).sum(dims, keepdim=True)
    return per_count + (surrogate - surrogate.detach())


def signed_clamp(x: Tensor, eps: float) -> Tensor:
    """x moved to +-eps where |x| < eps, keeping its sign (zero goes to +eps)."""
    return torch.where(x.abs() < eps, torch.where(x < 0, -eps, eps) * torch.ones_like(x), x)


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tensor:
    """The soft metric from the soft counts."""
    x0 = tn + tp
    value = x0 / torch.clamp(fn + fp + x0, min=eps)
    return value


def metric_value_and_partials(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The metric and its partial derivatives with respect to TP, FP, FN and TN, sharing subexpressions."""
    x0 = tn + tp
    x1 = fn + fp
    x2 = torch.clamp(x0 + x1, min=eps)
    x3 = 1.0 / x2 ** 2
    x4 = x1 * x3
    x5 = -x0 * x3
    value = x0 / x2
    d_tp = x4
    d_fp = x5
    d_fn = x5
    d_tn = x4
    return value, d_tp, d_fp, d_fn, d_tn


_CHOICES = {
    "task": ["binary", "multiclass", "multilabel"],
    "approximation": ["anyloss", "identity", "linear"],
    "average": ["micro", "macro", "weighted", "none", "samples"],
    "multidim_average": ["global", "samplewise"],
    "direction": ["maximize", "minimize"],
}


class AccuracyLoss(torch.nn.Module):
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

    def _counts(self, preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Optional[Tensor], List[int]]:
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
        hard, complement, slope = approximate(probs, self.approximation, self.steepness, self.threshold, self.width)
        if self.from_logits and self.task != "multiclass":
            slope = slope * probs * torch.sigmoid(-values)
        dims = count_dims(self.task, self.average, self.multidim_average)
        tp, fp, fn, tn = soft_counts(hard, complement, target, mask, dims)
        return tp, fp, fn, tn, target, slope, leaf, probs, mask, dims

    def _weights(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        class_weights: Optional[Tensor] = None
        if self.class_weights.numel() > 0:
            if self.class_weights.numel() != tp.shape[1]:
                raise ValueError(f"class_weights has {self.class_weights.numel()} entries for {tp.shape[1]} classes")
            class_weights = self.class_weights
        return average_weights(tp, fp, fn, tn, self.task, self.average, class_weights)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss: {1 - metric or metric}, averaged as configured, with the closed-form gradient."""
        tp, fp, fn, tn, target, slope, leaf, probs, mask, dims = self._counts(preds, target)
        value, d_tp, d_fp, d_fn, d_tn = metric_value_and_partials(tp, fp, fn, tn, self.eps)
        per_count = self.sign * value + self.offset
        if leaf.requires_grad and torch.is_grad_enabled():
            s = self.sign
            per_count = attach_gradient(per_count, s * d_tp, s * d_fp, s * d_fn, s * d_tn, target, mask, slope, leaf, dims)
        return reduce_loss(per_count, self._weights(tp, fp, fn, tn), self.average)

    @torch.jit.export
    def metric(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft metric itself (no gradient), averaged like the loss."""
        with torch.no_grad():
            tp, fp, fn, tn, target, slope, leaf, probs, mask, dims = self._counts(preds, target)
            value = metric_value(tp, fp, fn, tn, self.eps)
            return reduce_loss(value, self._weights(tp, fp, fn, tn), self.average)
