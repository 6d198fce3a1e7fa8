"""GmeanLoss: gmean as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - gmean):

    gmean = sqrt(TN)*sqrt(TP)*sqrt(1/((FN + TP)*(FP + TN)))

Partial derivatives:

    d gmean / d TP = FN*sqrt(TN)/(2*sqrt(TP)*(FN + TP)**(3/2)*sqrt(FP + TN))
    d gmean / d FP = -sqrt(TN)*sqrt(TP)/(2*sqrt(FN + TP)*(FP + TN)**(3/2))
    d gmean / d FN = -sqrt(TN)*sqrt(TP)/(2*(FN + TP)**(3/2)*sqrt(FP + TN))
    d gmean / d TN = FP*sqrt(TP)/(2*sqrt(TN)*sqrt(FN + TP)*(FP + TN)**(3/2))

Per-sample weights d gmean / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = sqrt(TN)/(2*sqrt(TP)*sqrt(FN + TP)*sqrt(FP + TN))
    negative, y_i = 0: dFP - dTN = -sqrt(TP)/(2*sqrt(TN)*sqrt(FN + TP)*sqrt(FP + TN))

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN + TP vanishes (the batch has no positives); guarded by max(x, eps)
    - the denominator FP + TN vanishes (the batch has no negatives); guarded by max(x, eps)
    - the denominator TP vanishes (there are no true positives); guarded by max(x, eps)
    - the denominator TN vanishes (there are no true negatives); guarded by max(x, eps)

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
    value = torch.sqrt(tn) * torch.sqrt(tp) * torch.rsqrt(torch.clamp(fn + tp, min=eps)) * torch.rsqrt(torch.clamp(fp + tn, min=eps))
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.sqrt(tn)
    x1 = torch.sqrt(tp)
    x2 = torch.rsqrt(torch.clamp(fn + tp, min=eps)) * torch.rsqrt(torch.clamp(fp + tn, min=eps))
    value = x0 * x1 * x2
    positive = 0.5 * x0 * x2 * torch.rsqrt(torch.clamp(tp, min=eps))
    negative = -0.5 * x1 * x2 * torch.rsqrt(torch.clamp(tn, min=eps))
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = math.sqrt(tn)
    x1 = math.sqrt(tp)
    x2 = 1.0 / math.sqrt(max(fn + tp, eps)) / math.sqrt(max(fp + tn, eps))
    value = x0 * x1 * x2
    positive = 0.5 * x0 * x2 / math.sqrt(max(tp, eps))
    negative = -0.5 * x1 * x2 / math.sqrt(max(tn, eps))
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = tl.sqrt(tn)
    x1 = tl.sqrt(tp)
    x2 = 1.0 / (tl.sqrt(tl.maximum(fn + tp, eps)) * tl.sqrt(tl.maximum(fp + tn, eps)))
    value = x0 * x1 * x2
    positive = 0.5 * x0 * x2 * tl.rsqrt(tl.maximum(tp, eps))
    negative = -0.5 * x1 * x2 * tl.rsqrt(tl.maximum(tn, eps))
    return value, positive, negative


class GmeanLoss(CountLossBase):
    """gmean as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "gmean"
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
