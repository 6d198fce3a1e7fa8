"""MccOvrLoss: mcc_ovr as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - mcc_ovr):

    mcc_ovr = (-FN*FP + TN*TP)/(sqrt(FN + TN)*sqrt(FN + TP)*sqrt(FP + TN)*sqrt(FP + TP))

Partial derivatives:

    d mcc_ovr / d TP = (FN**2*FP + FN*FP**2 + 2*FN*FP*TN + 2*FN*FP*TP + FN*TN*TP +
        FP*TN*TP)/(2*sqrt(FN + TN)*(FN + TP)**(3/2)*sqrt(FP + TN)*(FP + TP)**(3/2))
    d mcc_ovr / d FP = -(FN*FP*TN + FN*FP*TP + 2*FN*TN*TP + 2*FP*TN*TP + TN**2*TP +
        TN*TP**2)/(2*sqrt(FN + TN)*sqrt(FN + TP)*(FP + TN)**(3/2)*(FP + TP)**(3/2))
    d mcc_ovr / d FN = -(FN*FP*TN + FN*FP*TP + 2*FN*TN*TP + 2*FP*TN*TP + TN**2*TP +
        TN*TP**2)/(2*(FN + TN)**(3/2)*(FN + TP)**(3/2)*sqrt(FP + TN)*sqrt(FP + TP))
    d mcc_ovr / d TN = (FN**2*FP + FN*FP**2 + 2*FN*FP*TN + 2*FN*FP*TP + FN*TN*TP + FP*TN*TP)/(2*(FN
        + TN)**(3/2)*sqrt(FN + TP)*(FP + TN)**(3/2)*sqrt(FP + TP))

Per-sample weights d mcc_ovr / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = (FN*FP + 2*FP*TN + TN*TP)*(FN + FP + TN + TP)/(2*(FN +
        TN)**(3/2)*sqrt(FN + TP)*sqrt(FP + TN)*(FP + TP)**(3/2))
    negative, y_i = 0: dFP - dTN = -(FN*FP + 2*FN*TP + TN*TP)*(FN + FP + TN + TP)/(2*(FN +
        TN)**(3/2)*sqrt(FN + TP)*sqrt(FP + TN)*(FP + TP)**(3/2))

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN + TN vanishes (nothing is predicted negative); guarded by max(x, eps)
    - the denominator FN + TP vanishes (the batch has no positives); guarded by max(x, eps)
    - the denominator FP + TN vanishes (the batch has no negatives); guarded by max(x, eps)
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
    value = (tn * tp - fn * fp) * torch.rsqrt(torch.clamp(fn + tn, min=eps)) * torch.rsqrt(torch.clamp(fn + tp, min=eps)) * torch.rsqrt(torch.clamp(fp + tn, min=eps)) * torch.rsqrt(torch.clamp(fp + tp, min=eps))
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = fn + tn
    x1 = torch.clamp(x0, min=eps)
    x2 = fp + tp
    x3 = torch.clamp(x2, min=eps)
    x4 = fn * fp
    x5 = torch.rsqrt(torch.clamp(fn + tp, min=eps)) * torch.rsqrt(torch.clamp(fp + tn, min=eps))
    x6 = x4 + tn * tp
    x7 = 0.5 * x5 * (x0 + x2) / x1 ** 1.5 / x3 ** 1.5
    value = torch.rsqrt(x1) * torch.rsqrt(x3) * x5 * (tn * tp - x4)
    positive = x7 * (x6 + 2.0 * fp * tn)
    negative = -x7 * (x6 + 2.0 * fn * tp)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = fn + tn
    x1 = max(x0, eps)
    x2 = fp + tp
    x3 = max(x2, eps)
    x4 = fn * fp
    x5 = 1.0 / math.sqrt(max(fn + tp, eps)) / math.sqrt(max(fp + tn, eps))
    x6 = x4 + tn * tp
    x7 = 0.5 * x5 * (x0 + x2) / math.pow(x1, 1.5) / math.pow(x3, 1.5)
    value = x5 * (tn * tp - x4) / math.sqrt(x1) / math.sqrt(x3)
    positive = x7 * (x6 + 2.0 * fp * tn)
    negative = -x7 * (x6 + 2.0 * fn * tp)
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = fn + tn
    x1 = tl.maximum(x0, eps)
    x2 = fp + tp
    x3 = tl.maximum(x2, eps)
    x4 = fn * fp
    x5 = 1.0 / (tl.sqrt(tl.maximum(fn + tp, eps)) * tl.sqrt(tl.maximum(fp + tn, eps)))
    x6 = x4 + tn * tp
    x7 = 0.5 * x5 * (x0 + x2) / ((x1) * tl.sqrt(x1)) / ((x3) * tl.sqrt(x3))
    value = tl.rsqrt(x1) * tl.rsqrt(x3) * x5 * (tn * tp - x4)
    positive = x7 * (x6 + 2.0 * fp * tn)
    negative = -x7 * (x6 + 2.0 * fn * tp)
    return value, positive, negative


class MccOvrLoss(CountLossBase):
    """mcc_ovr as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "mcc_ovr"
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
