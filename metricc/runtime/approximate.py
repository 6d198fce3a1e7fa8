"""How a prediction becomes a soft 0/1: logits to probabilities, then A(p) (anyloss, identity or a linear ramp),
its complement without cancellation, and its slope for the backward pass."""

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .inputs import tracing


class Approximation(NamedTuple):
    """A(p) as the options choose it: its kind ('anyloss', 'identity' or 'linear'), the steepness L of anyloss, the
    threshold tau of anyloss and linear, and the width of linear's ramp."""

    kind: str
    steepness: float
    threshold: float
    width: float


def probabilities(preds: Tensor, task: str, from_logits: bool) -> Tensor:
    """Logits become probabilities by sigmoid, or by softmax over classes for multiclass."""
    if not from_logits:
        return preds
    if task == "multiclass":
        return torch.softmax(preds, dim=1)
    return torch.sigmoid(preds)


def approximate(probs: Tensor, approximation: Approximation, out: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """A(p) and 1 - A(p), the latter computed without cancellation; written into out[1] and out[0] when given.

    anyloss: A(p) = sigmoid(L (p - tau)); in float32 it saturates to exactly 0 or 1 once L (1 - tau) exceeds
    about 16.6 (L above ~33 at tau = 0.5), so 1 - A is taken as sigmoid(-L (p - tau)), which does not.
    identity: A(p) = p, the soft-set counts of soft Dice. linear: a ramp of the given width around tau.
    """
    # with out, one pass each: a 0-dim tensor operand broadcasts, where an in-place second operation is another pass
    steepness, threshold, width = approximation.steepness, approximation.threshold, approximation.width
    if approximation.kind == "anyloss":
        offset = probs.new_full((), -steepness * threshold)
        if out is None:
            return sigmoid_pair(torch.add(offset, probs, alpha=steepness))
        return sigmoid_pair(torch.add(offset, probs, alpha=steepness, out=out[0]), out[1])
    if approximation.kind == "identity":
        soft = probs
    elif out is None:
        soft = torch.sub(probs, threshold).div_(width).add_(0.5).clamp_(0.0, 1.0)
    else:
        soft = torch.sub(probs, threshold, out=out[1]).div_(width).add_(0.5).clamp_(0.0, 1.0)
    if out is None:
        return soft, torch.rsub(soft, 1.0)
    return soft, torch.sub(soft.new_ones(()), soft, out=out[0])


def sigmoid_pair(x: Tensor, out: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """sigmoid(x) and sigmoid(-x) = 1 - sigmoid(x), each without cancellation; x is a temporary (it becomes the
    second), the first goes to `out` when given.

    Under torch.compile both come from one exponential, u = exp(-|x|): they are 1 / (1 + u) and u / (1 + u),
    in the order the sign of x gives. Eagerly two sigmoids are fewer kernels than that.
    """
    if tracing():
        u = torch.exp(-x.abs())
        near = 1.0 / (1.0 + u)
        far = u * near
        nonnegative = x >= 0.0
        return torch.where(nonnegative, near, far), torch.where(nonnegative, far, near)
    first = torch.sigmoid(x) if out is None else torch.sigmoid(x, out=out)
    return first, x.neg_().sigmoid_()


def approximation_scale(approximation: Approximation) -> float:
    """The constant factor of A'(p): L for anyloss, 1 / width for linear, 1 for identity."""
    if approximation.kind == "anyloss":
        return approximation.steepness
    if approximation.kind == "linear":
        return 1.0 / approximation.width
    return 1.0


def soft_block(
    values: Tensor, sigmoid_logits: bool, approximation: Approximation, with_slope: bool, slope_out: Optional[Tensor],
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
    soft, complement = approximate(probs, approximation, None if scratch is None else scratch[:2])
    slope: Optional[Tensor] = None
    in_place = False
    if with_slope:
        if approximation.kind == "anyloss":
            in_place = slope_out is not None
            slope = soft * complement if slope_out is None else torch.mul(soft, complement, out=slope_out)
        elif approximation.kind == "linear":
            slope = ((soft > 0.0) & (soft < 1.0)).to(soft.dtype)
        if sigmoid_logits:
            sigmoid_slope = probs * probs_complement
            slope = sigmoid_slope if slope is None else slope.mul_(sigmoid_slope)
        if slope is not None and slope_out is not None and not in_place:
            slope = slope_out.copy_(slope)
    return soft, complement, slope


def differentiable_soft(values: Tensor, sigmoid_logits: bool, approximation: Approximation) -> Tensor:
    """A(p) in autograd's own operations, up to a constant that differs between samples: what carries the
    derivatives of every order where the closed form gives only the first (its value is never used).

    anyloss takes sigmoid(z) - 1 = -sigmoid(-z) above the threshold, whose derivatives do not cancel to zero
    where sigmoid(z) rounds to 1; linear has slope 1 strictly inside the ramp and 0 elsewhere, as the closed form.
    """
    probs = torch.sigmoid(values) if sigmoid_logits else values
    if approximation.kind == "anyloss":
        z = (probs - approximation.threshold) * approximation.steepness
        flip = torch.rsub((z > 0.0).to(z.dtype), 0.5).mul_(2.0)  # -1 above the threshold, else 1: a constant
        return flip * torch.sigmoid(flip * z)
    if approximation.kind == "linear":
        soft = (probs - approximation.threshold) / approximation.width + 0.5
        inside = ((soft > 0.0) & (soft < 1.0)).to(soft.dtype)
        return soft * inside
    return probs
