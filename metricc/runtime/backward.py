"""The closed-form backward pass: per-sample weights y (dTP - dFN) + (1 - y)(dFP - dTN) times A'(p), attached
to the detached metric values by a custom autograd Function or, for small inputs, a zero-valued surrogate."""

from typing import List, Optional

import torch
from torch import Tensor

from .inputs import fused_kernels, one_hot_labels


def small_input() -> int:
    """Inputs of at most this many elements: autograd's own nodes (and, eagerly on the CPU, Python floats for the
    formula) cost less than a custom Function's Python backward."""
    return 65536


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
    def forward(ctx, per_count, leaf, positive, negative, target, labels, first_class: int, slope, mask, scale: float, spare):
        ctx.scale = scale
        ctx.spare = spare
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
        if ctx.spare is not None and slope is not None:
            # the slope has been read: the next forward pass may write over it (list append and slicing are atomic)
            ctx.spare.append(slope)
            del ctx.spare[:-1]
        return None, leaf_grad.to(ctx.leaf_dtype), None, None, None, None, None, None, None, None, None


def uses_surrogate(leaf: Tensor) -> bool:
    """TorchScript has no custom Functions, and for small inputs autograd's own nodes cost less than a Python
    backward: there a zero-valued surrogate carries the gradient instead of ClosedFormGradient."""
    return torch.jit.is_scripting() or (leaf.numel() <= small_input() and not fused_kernels())


def surrogate_gradient(
    per_count: Tensor, positive: Tensor, negative: Tensor, target: Tensor, slope: Optional[Tensor], scale: float,
    mask: Optional[Tensor], leaf: Tensor, dims: List[int],
) -> Tensor:
    """per_count plus sum(g * leaf) minus its detached value: zero in the forward pass, exactly g for autograd."""
    grad = closed_form_gradient(torch.full_like(per_count, scale), positive, negative, target, slope, mask)
    surrogate = (grad * leaf).sum(dims, keepdim=True)
    return per_count + (surrogate - surrogate.detach())


@torch.jit.unused
def closed_form_function(
    per_count: Tensor, leaf: Tensor, positive: Tensor, negative: Tensor, target: Tensor, labels: Optional[Tensor],
    first_class: int, slope: Optional[Tensor], mask: Optional[Tensor], scale: float, spare: Optional[List[Tensor]],
) -> Tensor:
    """per_count with ClosedFormGradient's backward; the slope goes back to `spare` once it has been read."""
    return ClosedFormGradient.apply(per_count, leaf, positive, negative, target, labels, first_class, slope, mask, scale, spare)


def counts_fit_floats(counts: Tensor, leaf: Tensor) -> bool:
    """Eagerly, for a small input on the CPU with one count to differentiate, the formula costs less on Python
    floats (nanoseconds an operation) than on tensors (microseconds an operation)."""
    if torch.jit.is_scripting() or fused_kernels():
        return False
    small = leaf.numel() <= small_input() and leaf.device.type == "cpu"
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
