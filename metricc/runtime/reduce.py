"""From per-count metric values to the loss: absent classes (for zero_division), averaging weights, the mean over
rows, and the counts pooled across ranks (sync='ddp') and steps (count_momentum)."""

from typing import List, Optional, Tuple

import torch
from torch import Tensor


def absent_counts(tp: Tensor, fn: Tensor, predicted: Tensor) -> Tensor:
    """Counts of a class absent from both targets and predictions: no target (TP + FN = 0) and no probability on it
    (`predicted`, the probabilities summed over its kept positions, = 0).

    Exact zeros, not a threshold: inside (0, 1) every class with a kept position is present, so no weight or mask
    of the loss moves with the predictions; only exact 0/1 predictions meet torchmetrics' rule.
    """
    return (tp + fn == 0.0) & (predicted == 0.0)


def probability_mass(probs: Tensor, mask: Optional[Tensor], dims: List[int]) -> Tensor:
    """The probabilities summed over kept positions, count by count (the shape of TP): what absent_counts reads
    where A(p) is not p (anyloss never reaches 0, linear is 0 on a whole interval)."""
    if mask is not None:
        probs = probs * mask
    return probs.sum(dims, keepdim=True)


def average_weights(
    tp: Tensor, fn: Tensor, absent: Optional[Tensor], task: str, average: str, class_weights: Optional[Tensor]
) -> Tensor:
    """Each count's weight within its row (an image or sample, or the one row of counts pooled over the batch).

    Weights of a row sum to one, or to zero when nothing in it counts: multiclass macro averaging leaves out
    absent classes (`absent`, from absent_counts; None where no weight reads it) as torchmetrics does, weighted
    averaging weighs by support (TP + FN). None of them moves with predictions inside (0, 1), so the closed-form
    gradient, which takes them as constants, is exact.
    """
    if average == "none":
        return torch.ones_like(tp)
    if average == "weighted":
        weights = tp + fn
    elif average == "macro" and task == "multiclass":
        assert absent is not None, "multiclass macro averaging reads absent_counts"
        weights = (~absent).to(tp.dtype)
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
