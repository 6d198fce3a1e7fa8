"""The soft C x C confusion matrix M[i, j] = sum_n y[n, i] a[n, j] (true class i, predicted class j), the table of
its aggregates (each one's value beside its d / dM), and G = d metric / d M from the metric's partials by each
aggregate; the weight of a[n, j] in the backward pass is G[label of n, j]."""

from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .approximate import Approximation, differentiable_soft
from .backward import exact_gradient, release_leaf, saved_leaf
from .inputs import tracing


def weight_matrix(weighting: str, classes: int, like: Tensor) -> Tensor:
    """W: 1 - delta (UNWEIGHTED), |i - j| / (C - 1) (LINEAR) or (i - j)^2 / (C - 1)^2 (QUADRATIC)."""
    index = torch.arange(classes, device=like.device).to(like.dtype)
    difference = index.reshape(-1, 1) - index.reshape(1, -1)
    if weighting == "UNWEIGHTED":
        return (difference != 0).to(like.dtype)
    scale = float(max(classes - 1, 1))
    if weighting == "LINEAR":
        return difference.abs() / scale
    if weighting == "QUADRATIC":
        return difference * difference / (scale * scale)
    raise ValueError("unknown weighting " + weighting + ": UNWEIGHTED, LINEAR or QUADRATIC")


def soft_matrix(soft: Tensor, target: Tensor, labels: Optional[Tensor], mask: Optional[Tensor], per_row: bool) -> Tensor:
    """M of (rows, classes, positions) soft predictions and a masked one-hot target: (rows, C, C) per image with
    per_row, else (1, C, C) over everything. Matrix products on views, never a transposed copy of the inputs; for
    (N, C) inputs with class indices, eagerly on the CPU, each row added to its label's row of M (N C additions,
    where the product with the one-hot target takes N C^2; a GPU keeps the product, whose sums do not depend on
    timing, and torch.compile the product, which it fuses with the one-hot comparison)."""
    classes = soft.shape[1]
    if per_row:
        return torch.bmm(target, soft.transpose(1, 2))
    if soft.shape[2] != 1:
        return torch.bmm(target, soft.transpose(1, 2)).sum(0, keepdim=True)
    if labels is None or soft.device.type != "cpu" or tracing():
        return torch.mm(target[:, :, 0].t(), soft[:, :, 0]).unsqueeze(0)
    rows = soft[:, :, 0] if mask is None else soft[:, :, 0] * mask[:, :, 0]
    return torch.zeros([classes, classes], dtype=soft.dtype, device=soft.device).index_add_(0, labels.reshape(-1), rows).unsqueeze(0)


#: Every aggregate a matrix metric may read, in the order `aggregate` defines them.
AGGREGATE_NAMES = (
    "SUM", "TRACE", "SUM_RC", "SUM_RR", "SUM_CC",
    "OBSERVED_UNWEIGHTED", "OBSERVED_LINEAR", "OBSERVED_QUADRATIC",
    "EXPECTED_UNWEIGHTED", "EXPECTED_LINEAR", "EXPECTED_QUADRATIC",
)


def aggregate(name: str, matrix: Tensor, rows: Tensor, columns: Tensor, with_gradient: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """The table of aggregates: each one's value for each matrix of a (rows, C, C) stack, shape (rows,), beside its
    d / dM (broadcast to (rows, C, C)) when with_gradient; r = M's row sums, c = its column sums, W = weight_matrix."""
    gradient: Optional[Tensor] = None
    if name == "SUM":  # sum_ij M[i, j]
        value = matrix.sum([1, 2])
        if with_gradient:
            gradient = matrix.new_ones([1, 1, 1])
    elif name == "TRACE":  # sum_i M[i, i]
        value = torch.diagonal(matrix, dim1=1, dim2=2).sum(1)
        if with_gradient:
            gradient = torch.eye(matrix.shape[1], dtype=matrix.dtype, device=matrix.device).unsqueeze(0)
    elif name == "SUM_RC":  # sum_k r[k] c[k]
        value = (rows * columns).sum(1)
        if with_gradient:
            gradient = columns.unsqueeze(2) + rows.unsqueeze(1)
    elif name == "SUM_RR":  # sum_k r[k]^2
        value = (rows * rows).sum(1)
        if with_gradient:
            gradient = 2.0 * rows.unsqueeze(2)
    elif name == "SUM_CC":  # sum_k c[k]^2
        value = (columns * columns).sum(1)
        if with_gradient:
            gradient = 2.0 * columns.unsqueeze(1)
    elif name.startswith("OBSERVED_"):  # sum_ij W[i, j] M[i, j]
        weights = weight_matrix(name[len("OBSERVED_"):], matrix.shape[1], matrix)
        value = (matrix * weights).sum([1, 2])
        if with_gradient:
            gradient = weights.unsqueeze(0)
    elif name.startswith("EXPECTED_"):  # sum_ij r[i] W[i, j] c[j]
        weights = weight_matrix(name[len("EXPECTED_"):], matrix.shape[1], matrix)
        value = (torch.matmul(rows, weights) * columns).sum(1)
        if with_gradient:
            gradient = torch.matmul(columns, weights.t()).unsqueeze(2) + torch.matmul(rows, weights).unsqueeze(1)
    else:
        raise ValueError("unknown matrix aggregate " + name + ": the aggregates are those of AGGREGATE_NAMES")
    return value, gradient


def matrix_aggregates(matrix: Tensor, names: List[str]) -> Dict[str, Tensor]:
    """The named aggregates of each matrix of a (rows, C, C) stack, each of shape (rows,): no derivative."""
    rows, columns = matrix.sum(2), matrix.sum(1)
    found: Dict[str, Tensor] = {}
    for name in names:
        found[name] = aggregate(name, matrix, rows, columns, False)[0]
    return found


def aggregates_and_gradients(matrix: Tensor, names: List[str]) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """The named aggregates of each matrix of a (rows, C, C) stack, and each one's d / dM, in one pass."""
    rows, columns = matrix.sum(2), matrix.sum(1)
    values: Dict[str, Tensor] = {}
    gradients: Dict[str, Tensor] = {}
    for name in names:
        value, gradient = aggregate(name, matrix, rows, columns, True)
        assert gradient is not None
        values[name], gradients[name] = value, gradient
    return values, gradients


def chain_rule(partials: Dict[str, Tensor], gradients: Dict[str, Tensor], matrix: Tensor) -> Tensor:
    """G[r, i, j] = sum over aggregates A of d metric / dA[r] * dA / dM[r, i, j]."""
    total = torch.zeros_like(matrix)
    for name, partial in partials.items():
        total = total + partial.reshape(-1, 1, 1) * gradients[name]
    return total


def matrix_gradient(matrix: Tensor, partials: Dict[str, Tensor]) -> Tensor:
    """G = d metric / dM of each matrix of a (rows, C, C) stack, from the metric's partial by each aggregate."""
    return chain_rule(partials, aggregates_and_gradients(matrix, list(partials))[1], matrix)


def sample_weights(gradient: Tensor, target: Tensor, labels: Optional[Tensor], mask: Optional[Tensor], per_row: bool) -> Tensor:
    """d metric / d a[n, j] = sum_i y[n, i] G[i, j], as (rows, C, positions): for class-index targets one gather
    of G's columns by the labels, written in that layout; else a product with the one-hot target. Zero at
    ignored positions."""
    if labels is not None:
        batch, _, positions = labels.shape
        classes = gradient.shape[2]
        if positions == 1:
            # one position per row: the weights of row n are G's row of its label, copied whole
            rows = torch.gather(gradient, 1, labels.expand(batch, 1, classes)) if per_row else gradient[0].index_select(0, labels.reshape(-1))
            weights = rows.reshape(batch, classes, 1)
        else:
            by_prediction = gradient.transpose(1, 2).expand(batch, classes, classes)
            weights = torch.gather(by_prediction, 2, labels.expand(batch, classes, positions))
        return weights if mask is None else weights.mul_(mask)
    if per_row:
        return torch.bmm(gradient.transpose(1, 2), target)
    return torch.matmul(gradient[0].t(), target)


def leaf_gradient(gradient: Tensor, target: Tensor, labels: Optional[Tensor], slope: Optional[Tensor], mask: Optional[Tensor], per_row: bool) -> Tensor:
    """d metric / d p: each sample's weights G[label, j], times A'(p) where it varies (the slope)."""
    weights = sample_weights(gradient, target, labels, mask, per_row)
    return weights if slope is None else weights.mul_(slope)


class MatrixGradient(torch.autograd.Function):
    """Identity on the detached per-row metric values; the backward pass gives a[n, j] the weight G[label of n, j]
    times A'(p). It keeps G (C x C), the labels (or the one-hot target), the mask and the slope where A' varies:
    for class-index targets and the identity approximation, nothing the size of the predictions. A gradient to be
    differentiated again (create_graph=True) is autograd through `recompute` instead."""

    @staticmethod
    def forward(ctx, value, leaf, gradient, target, labels, slope, mask, scale: float, per_row: bool, recompute):
        ctx.scale, ctx.per_row, ctx.leaf_dtype, ctx.from_labels = scale, per_row, leaf.dtype, labels is not None
        saved_leaf(ctx, leaf, recompute)
        ctx.save_for_backward(gradient, labels if labels is not None else target, slope, mask)
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        gradient, target, slope, mask = ctx.saved_tensors
        if ctx.recompute is not None and torch.is_grad_enabled():
            return None, exact_gradient(ctx.recompute, ctx.leaf, ctx.leaf_version, grad), None, None, None, None, None, None, None, None
        release_leaf(ctx)
        labels = target if ctx.from_labels else None
        weights = leaf_gradient(gradient * (grad.reshape(-1, 1, 1) * ctx.scale), target, labels, slope, mask, ctx.per_row)
        return None, weights.to(ctx.leaf_dtype), None, None, None, None, None, None, None, None


@torch.jit.unused
def matrix_gradient_function(
    value: Tensor, leaf: Tensor, gradient: Tensor, target: Tensor, labels: Optional[Tensor], slope: Optional[Tensor],
    mask: Optional[Tensor], scale: float, per_row: bool, recompute: Optional[Callable[[Tensor], Tensor]],
) -> Tensor:
    """value, with MatrixGradient's backward pass."""
    return MatrixGradient.apply(value, leaf, gradient, target, labels, slope, mask, scale, per_row, recompute)


def matrix_change(leaf: Tensor, target: Tensor, approximation: Approximation, per_row: bool) -> Tensor:
    """M minus its own value, of the masked one-hot target: zero, with M's derivatives by leaf of every order in
    autograd's operations; (rows, C, C) per image with per_row, else (1, C, C)."""
    soft = leaf.to(target.dtype)
    if approximation.kind != "identity":
        soft = differentiable_soft(soft, False, approximation)
    change = torch.bmm(target, (soft - soft.detach()).transpose(1, 2))
    return change if per_row else change.sum(0, keepdim=True)
