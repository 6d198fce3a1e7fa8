"""OverlapCoefficientLoss: overlap_coefficient as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - overlap_coefficient):

    overlap_coefficient = TP/Min(FN + TP, FP + TP)

Partial derivatives:

    d overlap_coefficient / d TP = (-TP*Heaviside(-FN + FP) - TP*Heaviside(FN - FP) + Min(FN + TP,
        FP + TP))/Min(FN + TP, FP + TP)**2
    d overlap_coefficient / d FP = -TP*Heaviside(FN - FP)/Min(FN + TP, FP + TP)**2
    d overlap_coefficient / d FN = -TP*Heaviside(-FN + FP)/Min(FN + TP, FP + TP)**2
    d overlap_coefficient / d TN = 0

Per-sample weights d overlap_coefficient / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = (-TP*Heaviside(FN - FP) + Min(FN + TP, FP + TP))/Min(FN + TP, FP
        + TP)**2
    negative, y_i = 0: dFP - dTN = -TP*Heaviside(FN - FP)/Min(FN + TP, FP + TP)**2

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator Min(FN + TP, FP + TP) vanishes (nothing is predicted positive or the batch
        has no positives); guarded by max(x, eps)

Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).
This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

from typing import Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.guards import heaviside_float  # noqa: E402
from metricc.runtime.loss import CountLossBase  # noqa: E402


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tensor:
    """The soft metric from the soft counts."""
    value = tp / torch.clamp(torch.minimum(fn + tp, fp + tp), min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.minimum(fn + tp, fp + tp)
    x1 = torch.clamp(x0, min=eps)
    x2 = torch.reciprocal(torch.square(x1))
    x3 = tp * torch.heaviside(fn - fp, torch.full_like(tp, 0.5))
    value = tp / x1
    positive = x2 * (x0 - x3)
    negative = -x2 * x3
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = min(fn + tp, fp + tp)
    x1 = max(x0, eps)
    x2 = (1.0 / x1 ** 2)
    x3 = tp * heaviside_float(fn - fp)
    value = tp / x1
    positive = x2 * (x0 - x3)
    negative = -x2 * x3
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = tl.minimum(fn + tp, fp + tp)
    x1 = tl.maximum(x0, eps)
    x2 = (1.0 / (x1 * x1))
    x3 = tp * tl.where(fn - fp > 0.0, 1.0, tl.where(fn - fp < 0.0, 0.0, 0.5))
    value = tp / x1
    positive = x2 * (x0 - x3)
    negative = -x2 * x3
    return value, positive, negative


class OverlapCoefficientLoss(CountLossBase):
    """overlap_coefficient as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "overlap_coefficient"
    defaults = {"approximation": "anyloss", "direction": "maximize"}
    metric_parameters = {}
    formula_in_triton = staticmethod(metric_value_and_weights_in_triton)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        return self.compute_loss(preds, target)

    def formula(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        return metric_value(tp, fp, fn, tn, self.eps)

    def formula_and_weights(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return metric_value_and_weights(tp, fp, fn, tn, self.eps)

    def formula_on_floats(self, tp: float, fp: float, fn: float, tn: float) -> Tuple[float, float, float]:
        return metric_value_and_weights_of_floats(tp, fp, fn, tn, self.eps)
