"""How a prediction becomes a soft 0/1: logits to probabilities, then A(p) (anyloss, identity or a linear ramp),
its complement without cancellation, and its slope for the backward pass."""

from typing import Optional, Tuple

import torch
from torch import Tensor

from .inputs import fused_kernels


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


def soft_block(
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


def differentiable_soft(values: Tensor, sigmoid_logits: bool, approximation: str, steepness: float, threshold: float, width: float) -> Tensor:
    """A(p) in autograd's own operations, up to a constant that differs between samples: what carries the
    derivatives of every order where the closed form gives only the first (its value is never used).

    anyloss takes sigmoid(z) - 1 = -sigmoid(-z) above the threshold, whose derivatives do not cancel to zero
    where sigmoid(z) rounds to 1; linear has slope 1 strictly inside the ramp and 0 elsewhere, as the closed form.
    """
    probs = torch.sigmoid(values) if sigmoid_logits else values
    if approximation == "anyloss":
        z = (probs - threshold) * steepness
        flip = torch.rsub((z > 0.0).to(z.dtype), 0.5).mul_(2.0)  # -1 above the threshold, else 1: a constant
        return flip * torch.sigmoid(flip * z)
    if approximation == "linear":
        hard = (probs - threshold) / width + 0.5
        inside = ((hard > 0.0) & (hard < 1.0)).to(hard.dtype)
        return hard * inside
    return probs
