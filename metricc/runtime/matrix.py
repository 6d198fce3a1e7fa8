"""The soft C x C confusion matrix M[i, j] = sum_n y[n, i] a[n, j] (true class i, predicted class j), its
aggregates, and G = d metric / d M from the metric's partials by each aggregate; the weight of a[n, j] in the
backward pass is G[label of n, j]."""

from typing import Dict, List, Optional

import torch
from torch import Tensor


def weight_matrix(weighting: str, classes: int, like: Tensor) -> Tensor:
    """W: 1 - delta (UNWEIGHTED), |i - j| / (C - 1) (LINEAR) or (i - j)^2 / (C - 1)^2 (QUADRATIC)."""
    index = torch.arange(classes, device=like.device).to(like.dtype)
    difference = index.reshape(-1, 1) - index.reshape(1, -1)
    if weighting == "UNWEIGHTED":
        return (difference != 0).to(like.dtype)
    scale = float(max(classes - 1, 1))
    if weighting == "LINEAR":
        return difference.abs() / scale
    return difference * difference / (scale * scale)


def soft_matrix(hard: Tensor, target: Tensor, per_row: bool) -> Tensor:
    """M of (rows, classes, positions) soft predictions and a masked one-hot target: (rows, C, C) per image with
    per_row, else (1, C, C) over everything."""
    if per_row:
        return torch.einsum("bip,bjp->bij", target, hard)
    return torch.einsum("bip,bjp->ij", target, hard).unsqueeze(0)


def matrix_aggregates(matrix: Tensor, names: List[str]) -> Dict[str, Tensor]:
    """The named aggregates of each matrix of a (rows, C, C) stack, each of shape (rows,)."""
    rows, columns = matrix.sum(2), matrix.sum(1)
    classes = matrix.shape[1]
    found: Dict[str, Tensor] = {}
    for name in names:
        if name == "SUM":
            found[name] = matrix.sum([1, 2])
        elif name == "TRACE":
            found[name] = torch.diagonal(matrix, dim1=1, dim2=2).sum(1)
        elif name == "SUM_RC":
            found[name] = (rows * columns).sum(1)
        elif name == "SUM_RR":
            found[name] = (rows * rows).sum(1)
        elif name == "SUM_CC":
            found[name] = (columns * columns).sum(1)
        elif name.startswith("OBSERVED_"):
            found[name] = (matrix * weight_matrix(name[9:], classes, matrix)).sum([1, 2])
        else:
            weights = weight_matrix(name[9:], classes, matrix)
            found[name] = (torch.matmul(rows, weights) * columns).sum(1)
    return found


def matrix_gradient(matrix: Tensor, partials: Dict[str, Tensor]) -> Tensor:
    """G[r, i, j] = sum over aggregates A of dmetric/dA[r] * dA/dM[r, i, j]."""
    rows, columns = matrix.sum(2), matrix.sum(1)
    classes = matrix.shape[1]
    gradient = torch.zeros_like(matrix)
    for name, partial in partials.items():
        weight = partial.reshape(-1, 1, 1)
        if name == "SUM":
            gradient = gradient + weight
        elif name == "TRACE":
            gradient = gradient + weight * torch.eye(classes, dtype=matrix.dtype, device=matrix.device)
        elif name == "SUM_RC":
            gradient = gradient + weight * (columns.unsqueeze(2) + rows.unsqueeze(1))
        elif name == "SUM_RR":
            gradient = gradient + weight * (2.0 * rows.unsqueeze(2))
        elif name == "SUM_CC":
            gradient = gradient + weight * (2.0 * columns.unsqueeze(1))
        elif name.startswith("OBSERVED_"):
            gradient = gradient + weight * weight_matrix(name[9:], classes, matrix)
        else:
            weights = weight_matrix(name[9:], classes, matrix)
            expected = torch.matmul(columns, weights.t()).unsqueeze(2) + torch.matmul(rows, weights).unsqueeze(1)
            gradient = gradient + weight * expected
    return gradient


def sample_weights(gradient: Tensor, target: Tensor, labels: Optional[Tensor], mask: Optional[Tensor], per_row: bool) -> Tensor:
    """d metric / d a[n, j] = sum_i y[n, i] G[i, j], as (rows, C, positions): one gather of G's rows by the labels
    for class-index targets, else a product with the one-hot target; zero at ignored positions."""
    if labels is not None:
        batch, _, positions = labels.shape
        classes = gradient.shape[2]
        if per_row:
            index = labels.reshape(batch, positions, 1).expand(batch, positions, classes)
            weights = torch.gather(gradient, 1, index)
        else:
            weights = gradient[0].index_select(0, labels.reshape(-1)).reshape(batch, positions, classes)
        weights = weights.transpose(1, 2)
        if mask is not None:
            weights = weights * mask
        return weights
    if per_row:
        return torch.einsum("bip,bij->bjp", target, gradient)
    return torch.einsum("bip,ij->bjp", target, gradient[0])
