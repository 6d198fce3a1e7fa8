"""Soft confusion counts and the closed-form backward around them.

This file is the runtime of every emitted loss module: the emitter copies it verbatim into each
generated file, so it imports only torch and stays TorchScript-compatible. The formula-specific
part (the metric and its four partials) is passed in by the emitted module.
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
