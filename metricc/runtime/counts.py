"""The soft confusion counts TP, FP, FN, TN over kept positions, in cache-sized blocks for large CPU inputs."""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .approximate import Approximation, approximation_scale, differentiable_soft, soft_block
from .inputs import tracing


def _product_sums(
    soft: Tensor, complement: Tensor, target: Tensor, negative: Tensor, dims: List[int], scratch: Optional[Tensor]
) -> Tensor:
    """TP, FP, FN, TN: sums over dims of a y, a (1 - y), (1 - a) y and (1 - a)(1 - y), stacked on a new axis 0.
    A sum over every axis is a dot product; otherwise each product goes through `scratch` when given."""
    if len(dims) == 3:
        a, c, y, n = soft.reshape(-1), complement.reshape(-1), target.reshape(-1), negative.reshape(-1)
        return torch.stack([torch.dot(a, y), torch.dot(a, n), torch.dot(c, y), torch.dot(c, n)]).reshape(4, 1, 1, 1)
    sums: List[Tensor] = []
    for x, y in ((soft, target), (soft, negative), (complement, target), (complement, negative)):
        product = x * y if scratch is None else torch.mul(x, y, out=scratch)
        sums.append(product.sum(dims, keepdim=True))
    return torch.stack(sums)


def soft_counts(
    values: Tensor,
    target: Tensor,
    mask: Optional[Tensor],
    dims: List[int],
    sigmoid_logits: bool,
    approximation: Approximation,
    with_slope: bool,
    slope_out: Optional[Tensor] = None,
) -> Tuple[Tensor, Optional[Tensor], float]:
    """TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y) over kept positions, stacked
    on a new axis 0, and A'(p) as (slope tensor or None for a constant, constant factor) for the backward pass.

    A large CPU input goes through in blocks of about 2^17 elements: each block's temporaries stay in cache and
    are reused by the allocator, and the slope is the only tensor of the size of the input written (a fresh
    tensor of 1e7 floats costs more in page faults than a pass over it). Elsewhere, and under torch.compile,
    which fuses the same expressions into one kernel, the whole tensor is one block. slope_out: where the blocks
    write the slope (a tensor the caller reuses across steps), else a fresh one.
    """
    scale = approximation_scale(approximation)
    if not counted_in_blocks(values):
        counts, slope = _soft_counts_block(values, target, mask, dims, sigmoid_logits, approximation, with_slope, None, None)
        return counts, slope, scale
    # blocks along the positions, or along the rows when there is one position per row (multiclass (N, C))
    axis = 2 if values.shape[2] > 1 else 0
    step = max(1, block_size() * values.shape[axis] // values.numel())
    slope: Optional[Tensor] = None
    if with_slope and slope_varies(approximation, sigmoid_logits):
        slope = torch.empty_like(values) if slope_out is None else slope_out
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
            sigmoid_logits, approximation, with_slope, slope_block, scratch.narrow(axis + 1, 0, length),
        )
        parts.append(counts_block)
    counts = torch.stack(parts).sum(0) if axis == 2 or 0 in dims else torch.cat(parts, 1)
    return counts, slope, scale


def block_size() -> int:
    """Elements in one block of soft_counts: its temporaries, a few of this size, stay in the CPU's cache."""
    return 1 << 17


def counted_in_blocks(values: Tensor) -> bool:
    """Whether soft_counts goes through values in blocks (eagerly, on the CPU, above block_size() elements), and
    so writes its slope into slope_out."""
    return values.numel() > block_size() and values.device.type == "cpu" and not tracing()


def slope_varies(approximation: Approximation, sigmoid_logits: bool) -> bool:
    """Whether A'(p) differs between samples (a tensor the size of preds), or is a constant factor."""
    return approximation.kind != "identity" or sigmoid_logits


def _soft_counts_block(
    values: Tensor,
    target: Tensor,
    mask: Optional[Tensor],
    dims: List[int],
    sigmoid_logits: bool,
    approximation: Approximation,
    with_slope: bool,
    slope_out: Optional[Tensor],
    scratch: Optional[Tensor],
) -> Tuple[Tensor, Optional[Tensor]]:
    soft, complement, slope = soft_block(values, sigmoid_logits, approximation, with_slope, slope_out, scratch)
    negative = torch.rsub(target, 1.0) if scratch is None else torch.sub(target.new_ones(()), target, out=scratch[2])
    if mask is not None:
        target, negative = target * mask, negative * mask
    return _product_sums(soft, complement, target, negative, dims, None if scratch is None else scratch[3]), slope


def count_changes(
    leaf: Tensor, target: Tensor, mask: Optional[Tensor], dims: List[int], sigmoid_logits: bool, approximation: Approximation
) -> Tuple[Tensor, Tensor]:
    """TP and FP minus their own values: zero, with the counts' derivatives by leaf of every order in autograd's
    operations. FN and TN change by minus these."""
    soft = differentiable_soft(leaf.to(target.dtype), sigmoid_logits, approximation)
    change = soft - soft.detach()
    if mask is not None:
        change = change * mask
    tp = (change * target).sum(dims, keepdim=True)
    fp = change.sum(dims, keepdim=True) - tp
    return tp, fp
