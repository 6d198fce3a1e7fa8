"""The few functions an emitted formula calls beyond torch and math: guards of singular points and Python-float
versions of torch functions, for the formula on single counts."""

import math

import torch
from torch import Tensor


def signed_clamp(x: Tensor, eps: float) -> Tensor:
    """x moved to +-eps where |x| < eps, keeping its sign (zero goes to +eps)."""
    bound = torch.full_like(x, eps)  # in x's dtype: a float64 x keeps an eps that float32 would round to 0
    return torch.where(x.abs() < eps, torch.where(x < 0, -bound, bound), x)


def signed_clamp_float(x: float, eps: float) -> float:
    """signed_clamp of a Python float."""
    if abs(x) >= eps:
        return x
    return -eps if x < 0 else eps


def sign_float(x: float) -> float:
    """torch.sign of a Python float."""
    return 0.0 if x == 0 else math.copysign(1.0, x)


def heaviside_float(x: float) -> float:
    """torch.heaviside(x, 0.5) of a Python float."""
    return 0.5 if x == 0 else float(x > 0)
