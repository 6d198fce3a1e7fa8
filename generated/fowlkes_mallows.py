"""FowlkesMallowsLoss: fowlkes_mallows as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - fowlkes_mallows):

    fowlkes_mallows = TP*sqrt(1/((FN + TP)*(FP + TP)))

Partial derivatives:

    d fowlkes_mallows / d TP = (2*FN*FP + FN*TP + FP*TP)/(2*(FN + TP)**(3/2)*(FP + TP)**(3/2))
    d fowlkes_mallows / d FP = -TP/(2*sqrt(FN + TP)*(FP + TP)**(3/2))
    d fowlkes_mallows / d FN = -TP/(2*(FN + TP)**(3/2)*sqrt(FP + TP))
    d fowlkes_mallows / d TN = 0

Per-sample weights d fowlkes_mallows / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = (2*FP + TP)/(2*sqrt(FN + TP)*(FP + TP)**(3/2))
    negative, y_i = 0: dFP - dTN = -TP/(2*sqrt(FN + TP)*(FP + TP)**(3/2))

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN + TP vanishes (the batch has no positives); guarded by max(x, eps)
    - the denominator FP + TP vanishes (nothing is predicted positive); guarded by max(x, eps)

Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).
This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

import math
from typing import Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.loss import CountLossBase  # noqa: E402


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tensor:
    """The soft metric from the soft counts."""
    value = tp * torch.rsqrt(torch.clamp(fn + tp, min=eps)) * torch.rsqrt(torch.clamp(fp + tp, min=eps))
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.rsqrt(torch.clamp(fn + tp, min=eps))
    x1 = torch.clamp(fp + tp, min=eps)
    x2 = 0.5 * x0 / x1 ** 1.5
    value = tp * x0 * torch.rsqrt(x1)
    positive = x2 * (2.0 * fp + tp)
    negative = -tp * x2
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = (1.0 / math.sqrt(max(fn + tp, eps)))
    x1 = max(fp + tp, eps)
    x2 = 0.5 * x0 / math.pow(x1, 1.5)
    value = tp * x0 / math.sqrt(x1)
    positive = x2 * (2.0 * fp + tp)
    negative = -tp * x2
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = tl.rsqrt(tl.maximum(fn + tp, eps))
    x1 = tl.maximum(fp + tp, eps)
    x2 = 0.5 * x0 / ((x1) * tl.sqrt(x1))
    value = tp * x0 * tl.rsqrt(x1)
    positive = x2 * (2.0 * fp + tp)
    negative = -tp * x2
    return value, positive, negative


class FowlkesMallowsLoss(CountLossBase):
    """fowlkes_mallows as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "fowlkes_mallows"
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
