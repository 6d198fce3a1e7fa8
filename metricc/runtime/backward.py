"""The closed-form backward pass: per-sample weights y (dTP - dFN) + (1 - y)(dFP - dTN) times A'(p), attached
to the detached metric values by a custom autograd Function. Where a gradient must itself be differentiated
(create_graph=True), the Function's backward recomputes the loss from the saved predictions in autograd's own
ops; where no Function can serve (TorchScript, torch.export, forward-mode AD, torch.func transforms) the loss
is autograd through the formula from the start. Either way every derivative order is autograd's, exact."""

from typing import Callable, List, Optional

import torch
from torch import Tensor

from .inputs import functorch_active, tracing, one_hot_labels


def small_input() -> int:
    """Inputs of at most this many elements: eagerly, the formula on Python floats (on the CPU), and closed-form
    weights computed in the forward pass, cost less than a backward pass that computes them."""
    return 65536


def closed_form_gradient(
    grad: Optional[Tensor], scale: float, positive: Tensor, negative: Tensor, target: Tensor, slope: Optional[Tensor],
    mask: Optional[Tensor],
) -> Tensor:
    """d value / d p_i = grad scale (y_i positive + (1 - y_i) negative) A'(p_i) / scale, zero at ignored positions.

    positive = dTP - dFN and negative = dFP - dTN are the per-sample weights of the count the sample belongs
    to; grad is the upstream gradient of that count's value (None: one), scale the constant factor of A'.
    """
    if grad is None:
        weights = torch.mul(target, (positive - negative) * scale).add_(negative * scale)
    else:
        factor = grad * scale
        weights = torch.mul(target, (positive - negative) * factor).add_(negative * factor)
    if slope is not None:
        weights.mul_(slope)
    if mask is not None:
        weights.mul_(mask)
    return weights


def autograd_through_formula(leaf: Tensor) -> bool:
    """Whether the loss is to be autograd through the formula rather than the closed form: in TorchScript (no
    custom Functions) when a gradient is wanted; under torch.export (which keeps autograd's ops, not a
    Function's backward), forward-mode AD (dual tensors) and torch.func's transforms (wrapped tensors)."""
    if torch.jit.is_scripting():
        return leaf.requires_grad and torch.is_grad_enabled()
    return _transformed()


@torch.jit.unused
def _transformed() -> bool:
    if torch.compiler.is_compiling():
        return torch.compiler.is_exporting()
    return functorch_active() or torch.autograd.forward_ad._current_level >= 0


@torch.jit.unused
def exact_gradient(recompute: Callable[[Tensor], Tensor], leaf: Optional[Tensor], version: int, grad: Tensor) -> Tensor:
    """The gradient of recompute(leaf) with respect to leaf, itself differentiable: what a Function's backward
    returns under create_graph=True, so that second and higher derivatives are autograd's, exact."""
    if leaf is None:
        raise RuntimeError(
            "this loss's graph was already differentiated once without create_graph=True (retain_graph=True), which "
            "let go of the predictions; for derivatives of the gradient, pass create_graph=True to the first backward"
        )
    if leaf._version != version:
        raise RuntimeError(
            "the predictions were modified in place after the loss was computed; a gradient with create_graph=True "
            "recomputes the loss from them: compute the loss again after the in-place change"
        )
    with torch.enable_grad():
        value = recompute(leaf)
        (gradient,) = torch.autograd.grad(value, leaf, grad, create_graph=True, allow_unused=True)
    return torch.zeros_like(leaf) if gradient is None else gradient


def saved_leaf(ctx, leaf: Tensor, recompute: Optional[Callable[[Tensor], Tensor]]) -> None:
    """Keep what exact_gradient needs: a reference to the predictions (not a copy, and not a saved tensor, so that
    a first-order backward checks nothing it does not read) and their version. A first-order backward lets go of
    it (release_leaf): between steps the loss keeps the predictions no longer than its saved tensors."""
    ctx.recompute = recompute
    ctx.leaf = None
    ctx.leaf_version = 0
    if recompute is not None:
        ctx.leaf, ctx.leaf_version = leaf, leaf._version


def release_leaf(ctx) -> None:
    """After a first-order backward: the graph is freed (or retained only for more first-order passes)."""
    ctx.leaf = None


class ClosedFormGradient(torch.autograd.Function):
    """Identity on the detached per-count values; the backward pass is the closed form, not autograd, unless the
    gradient is to be differentiated again (create_graph=True): then autograd through `recompute`.

    Class-index targets are kept as their labels, a tensor 1 / classes the size of the one-hot target (of the
    classes from first_class on), which the backward pass rebuilds.
    """

    @staticmethod
    def forward(ctx, per_count, leaf, positive, negative, target, labels, first_class: int, slope, mask, scale: float, spare, recompute):
        ctx.scale = scale
        ctx.spare = spare
        ctx.leaf_dtype = leaf.dtype
        ctx.target_dtype = target.dtype
        ctx.from_labels = labels is not None
        ctx.first_class = first_class
        ctx.classes = first_class + target.shape[1]
        saved_leaf(ctx, leaf, recompute)
        ctx.save_for_backward(positive, negative, target if labels is None else labels, slope, mask)
        return per_count.clone()

    @staticmethod
    def backward(ctx, grad):
        positive, negative, target, slope, mask = ctx.saved_tensors
        if ctx.spare is not None and slope is not None:
            # the slope has been read: the next forward pass may write over it (list append and slicing are atomic)
            ctx.spare.append(slope)
            del ctx.spare[:-1]
        if ctx.recompute is not None and torch.is_grad_enabled():
            leaf_grad = exact_gradient(ctx.recompute, ctx.leaf, ctx.leaf_version, grad)
            return None, leaf_grad, None, None, None, None, None, None, None, None, None, None
        release_leaf(ctx)
        if ctx.from_labels:
            target = one_hot_labels(target, ctx.classes, ctx.first_class, ctx.target_dtype)
        leaf_grad = closed_form_gradient(grad, ctx.scale, positive, negative, target, slope, mask)
        return None, leaf_grad.to(ctx.leaf_dtype), None, None, None, None, None, None, None, None, None, None


class PrecomputedGradient(torch.autograd.Function):
    """Identity on the detached per-count values, for small inputs: the closed-form weights d value / d leaf, per
    unit upstream gradient, are computed in the forward pass (as autograd's own nodes would), so the backward
    pass is one product; with create_graph=True, autograd through `recompute`."""

    @staticmethod
    def forward(ctx, per_count, leaf, weights, recompute):
        ctx.leaf_dtype = leaf.dtype
        saved_leaf(ctx, leaf, recompute)
        ctx.save_for_backward(weights)
        return per_count.clone()

    @staticmethod
    def backward(ctx, grad):
        (weights,) = ctx.saved_tensors
        if ctx.recompute is not None and torch.is_grad_enabled():
            return None, exact_gradient(ctx.recompute, ctx.leaf, ctx.leaf_version, grad), None, None
        release_leaf(ctx)
        leaf_grad = weights * (grad if grad.dim() == weights.dim() else grad.reshape(grad.shape + (1,) * (weights.dim() - grad.dim())))
        return None, leaf_grad if leaf_grad.dtype == ctx.leaf_dtype else leaf_grad.to(ctx.leaf_dtype), None, None


@torch.jit.unused
def precomputed_function(per_count: Tensor, leaf: Tensor, weights: Tensor, recompute: Callable[[Tensor], Tensor]) -> Tensor:
    """per_count with the gradient `weights` times the upstream gradient (broadcast over what each value sums)."""
    return PrecomputedGradient.apply(per_count, leaf, weights, recompute)


@torch.jit.unused
def closed_form_function(
    per_count: Tensor, leaf: Tensor, positive: Tensor, negative: Tensor, target: Tensor, labels: Optional[Tensor],
    first_class: int, slope: Optional[Tensor], mask: Optional[Tensor], scale: float, spare: Optional[List[Tensor]],
    recompute: Optional[Callable[[Tensor], Tensor]],
) -> Tensor:
    """per_count with ClosedFormGradient's backward; the slope goes back to `spare` once it has been read."""
    return ClosedFormGradient.apply(per_count, leaf, positive, negative, target, labels, first_class, slope, mask, scale, spare, recompute)


def counts_fit_floats(counts: Tensor, leaf: Tensor) -> bool:
    """Eagerly, for a small input on the CPU with one count to differentiate, the formula costs less on Python
    floats (nanoseconds an operation) than on tensors (microseconds an operation)."""
    if torch.jit.is_scripting() or tracing():
        return False
    small = leaf.numel() <= small_input() and leaf.device.type == "cpu"
    return small and counts.numel() == 4 and leaf.requires_grad and torch.is_grad_enabled()


class FloatLossGradient(torch.autograd.Function):
    """The loss of one count, computed on Python floats, as a tensor whose backward is the closed form of those
    floats (or, with create_graph=True, autograd through `recompute`)."""

    @staticmethod
    def forward(ctx, leaf, target, slope, mask, loss: float, positive: float, negative: float, scale: float, recompute):
        ctx.weights = (positive * scale, negative * scale)
        ctx.leaf_dtype = leaf.dtype
        saved_leaf(ctx, leaf, recompute)
        ctx.save_for_backward(target, slope, mask)
        return target.new_full((), loss)

    @staticmethod
    def backward(ctx, grad):
        target, slope, mask = ctx.saved_tensors
        if ctx.recompute is not None and torch.is_grad_enabled():
            return exact_gradient(ctx.recompute, ctx.leaf, ctx.leaf_version, grad), None, None, None, None, None, None, None, None
        release_leaf(ctx)
        positive, negative = ctx.weights
        weights = torch.mul(target, positive - negative).add_(negative).mul_(grad)
        if slope is not None:
            weights.mul_(slope)
        if mask is not None:
            weights.mul_(mask)
        return weights.to(ctx.leaf_dtype), None, None, None, None, None, None, None, None


@torch.jit.unused
def loss_from_floats(
    loss: float, positive: float, negative: float, target: Tensor, slope: Optional[Tensor], scale: float,
    mask: Optional[Tensor], leaf: Tensor, recompute: Callable[[Tensor], Tensor],
) -> Tensor:
    """The loss value with the closed-form gradient of the float weights attached (FloatLossGradient)."""
    return FloatLossGradient.apply(leaf, target, slope, mask, loss, positive, negative, scale, recompute)
