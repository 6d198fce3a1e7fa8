"""PrevalenceThresholdLoss: prevalence_threshold as a loss, compiled by metricc 0.5.0.

Metric (minimized; the loss is prevalence_threshold):

    prevalence_threshold = sqrt(FP)/(sqrt(FP + TN)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN +
        TP)))

Partial derivatives:

    d prevalence_threshold / d TP = sqrt(FP)*(sqrt(TP)/(2*(FN + TP)**(3/2)) - 1/(2*sqrt(TP)*sqrt(FN
        + TP)))/(sqrt(FP + TN)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP))**2)
    d prevalence_threshold / d FP = sqrt(FP)*(sqrt(FP)/(2*(FP + TN)**(3/2)) - 1/(2*sqrt(FP)*sqrt(FP
        + TN)))/(sqrt(FP + TN)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP))**2) -
        sqrt(FP)/(2*(FP + TN)**(3/2)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP))) +
        1/(2*sqrt(FP)*sqrt(FP + TN)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP)))
    d prevalence_threshold / d FN = sqrt(FP)*sqrt(TP)/(2*(FN + TP)**(3/2)*sqrt(FP +
        TN)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP))**2)
    d prevalence_threshold / d TN = -sqrt(FP)/(2*(FP + TN)**(3/2)*(sqrt(FP)/sqrt(FP + TN) +
        sqrt(TP)/sqrt(FN + TP))) + FP/(2*(FP + TN)**2*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN +
        TP))**2)

Per-sample weights d prevalence_threshold / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = -sqrt(FP)*sqrt(TP)/(2*(FN + TP)**(3/2)*sqrt(FP +
        TN)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP))**2) + sqrt(FP)*(sqrt(TP)/(2*(FN +
        TP)**(3/2)) - 1/(2*sqrt(TP)*sqrt(FN + TP)))/(sqrt(FP + TN)*(sqrt(FP)/sqrt(FP + TN) +
        sqrt(TP)/sqrt(FN + TP))**2)
    negative, y_i = 0: dFP - dTN = sqrt(FP)*(sqrt(FP)/(2*(FP + TN)**(3/2)) - 1/(2*sqrt(FP)*sqrt(FP
        + TN)))/(sqrt(FP + TN)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP))**2) - FP/(2*(FP +
        TN)**2*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP))**2) + 1/(2*sqrt(FP)*sqrt(FP +
        TN)*(sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP)))

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FP + TN vanishes (the batch has no negatives); guarded by max(x, eps)
    - the denominator FN + TP vanishes (the batch has no positives); guarded by max(x, eps)
    - the denominator sqrt(FP)/sqrt(FP + TN) + sqrt(TP)/sqrt(FN + TP) vanishes (nothing is
        predicted positive); guarded by max(x, eps)
    - the denominator TP vanishes (there are no true positives); guarded by max(x, eps)
    - the denominator FP vanishes (there are no false positives); guarded by max(x, eps)

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
    x0 = torch.sqrt(fp) * torch.rsqrt(torch.clamp(fp + tn, min=eps))
    value = x0 / torch.clamp(x0 + torch.sqrt(tp) * torch.rsqrt(torch.clamp(fn + tp, min=eps)), min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.sqrt(fp)
    x1 = torch.clamp(fp + tn, min=eps)
    x2 = torch.rsqrt(x1)
    x3 = x0 * x2
    x4 = torch.sqrt(tp)
    x5 = torch.clamp(fn + tp, min=eps)
    x6 = torch.rsqrt(x5)
    x7 = torch.clamp(x3 + x4 * x6, min=eps)
    x8 = torch.reciprocal(x7)
    x9 = 0.5 * x4 / x5 ** 1.5
    x10 = torch.reciprocal(torch.square(x7))
    x11 = x10 * x3
    x12 = 0.5 * x2 * torch.rsqrt(torch.clamp(fp, min=eps))
    value = x3 * x8
    positive = x0 * x10 * x2 * (x9 - 0.5 * x6 * torch.rsqrt(torch.clamp(tp, min=eps))) - x11 * x9
    negative = x11 * (0.5 * x0 / x1 ** 1.5 - x12) + x12 * x8 - 0.5 * fp * x10 / torch.square(x1)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = math.sqrt(fp)
    x1 = max(fp + tn, eps)
    x2 = (1.0 / math.sqrt(x1))
    x3 = x0 * x2
    x4 = math.sqrt(tp)
    x5 = max(fn + tp, eps)
    x6 = (1.0 / math.sqrt(x5))
    x7 = max(x3 + x4 * x6, eps)
    x8 = (1.0 / x7)
    x9 = 0.5 * x4 / math.pow(x5, 1.5)
    x10 = (1.0 / x7 ** 2)
    x11 = x10 * x3
    x12 = 0.5 * x2 / math.sqrt(max(fp, eps))
    value = x3 * x8
    positive = x0 * x10 * x2 * (x9 - 0.5 * x6 / math.sqrt(max(tp, eps))) - x11 * x9
    negative = x11 * (0.5 * x0 / math.pow(x1, 1.5) - x12) + x12 * x8 - 0.5 * fp * x10 / x1 ** 2
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = tl.sqrt(fp)
    x1 = tl.maximum(fp + tn, eps)
    x2 = tl.rsqrt(x1)
    x3 = x0 * x2
    x4 = tl.sqrt(tp)
    x5 = tl.maximum(fn + tp, eps)
    x6 = tl.rsqrt(x5)
    x7 = tl.maximum(x3 + x4 * x6, eps)
    x8 = (1.0 / (x7))
    x9 = 0.5 * x4 / ((x5) * tl.sqrt(x5))
    x10 = (1.0 / (x7 * x7))
    x11 = x10 * x3
    x12 = 0.5 * x2 * tl.rsqrt(tl.maximum(fp, eps))
    value = x3 * x8
    positive = x0 * x10 * x2 * (x9 - 0.5 * x6 * tl.rsqrt(tl.maximum(tp, eps))) - x11 * x9
    negative = x11 * (0.5 * x0 / ((x1) * tl.sqrt(x1)) - x12) + x12 * x8 - 0.5 * fp * x10 / (x1 * x1)
    return value, positive, negative


class PrevalenceThresholdLoss(CountLossBase):
    """prevalence_threshold as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "prevalence_threshold"
    defaults = {"approximation": "anyloss", "direction": "minimize"}
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
