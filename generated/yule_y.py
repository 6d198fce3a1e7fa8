"""YuleYLoss: yule_y as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - yule_y):

    yule_y = (-sqrt(FN)*sqrt(FP) + sqrt(TN)*sqrt(TP))/(sqrt(FN)*sqrt(FP) + sqrt(TN)*sqrt(TP))

Partial derivatives:

    d yule_y / d TP = sqrt(FN)*sqrt(FP)*sqrt(TN)/(2*sqrt(FN)*sqrt(FP)*sqrt(TN)*TP + FN*FP*sqrt(TP)
        + TN*TP**(3/2))
    d yule_y / d FP = -sqrt(FN)*sqrt(TN)*sqrt(TP)/(2*sqrt(FN)*FP*sqrt(TN)*sqrt(TP) + FN*FP**(3/2) +
        sqrt(FP)*TN*TP)
    d yule_y / d FN = -sqrt(FP)*sqrt(TN)*sqrt(TP)/(FN**(3/2)*FP + sqrt(FN)*TN*TP +
        2*FN*sqrt(FP)*sqrt(TN)*sqrt(TP))
    d yule_y / d TN = sqrt(FN)*sqrt(FP)*sqrt(TP)/(2*sqrt(FN)*sqrt(FP)*TN*sqrt(TP) + FN*FP*sqrt(TN)
        + TN**(3/2)*TP)

Per-sample weights d yule_y / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = sqrt(FN)*sqrt(FP)*sqrt(TN)/(2*sqrt(FN)*sqrt(FP)*sqrt(TN)*TP +
        FN*FP*sqrt(TP) + TN*TP**(3/2)) + sqrt(FP)*sqrt(TN)*sqrt(TP)/(FN**(3/2)*FP + sqrt(FN)*TN*TP
        + 2*FN*sqrt(FP)*sqrt(TN)*sqrt(TP))
    negative, y_i = 0: dFP - dTN = -sqrt(FN)*sqrt(FP)*sqrt(TP)/(2*sqrt(FN)*sqrt(FP)*TN*sqrt(TP) +
        FN*FP*sqrt(TN) + TN**(3/2)*TP) -
        sqrt(FN)*sqrt(TN)*sqrt(TP)/(2*sqrt(FN)*FP*sqrt(TN)*sqrt(TP) + FN*FP**(3/2) +
        sqrt(FP)*TN*TP)

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator sqrt(FN)*sqrt(FP) + sqrt(TN)*sqrt(TP) vanishes (nothing is predicted negative
        or nothing is predicted positive or the batch has no negatives or the batch has no
        positives); guarded by max(x, eps)
    - the denominator 2*sqrt(FN)*sqrt(FP)*sqrt(TN)*TP + FN*FP*sqrt(TP) + TN*TP**(3/2) vanishes
        (nothing is predicted negative or the batch has no negatives or there are no true
        positives); guarded by max(x, eps)
    - the denominator FN**(3/2)*FP + sqrt(FN)*TN*TP + 2*FN*sqrt(FP)*sqrt(TN)*sqrt(TP) vanishes
        (nothing is predicted positive or the batch has no negatives or there are no false
        negatives); guarded by max(x, eps)
    - the denominator 2*sqrt(FN)*sqrt(FP)*TN*sqrt(TP) + FN*FP*sqrt(TN) + TN**(3/2)*TP vanishes
        (nothing is predicted positive or the batch has no positives or there are no true
        negatives); guarded by max(x, eps)
    - the denominator 2*sqrt(FN)*FP*sqrt(TN)*sqrt(TP) + FN*FP**(3/2) + sqrt(FP)*TN*TP vanishes
        (nothing is predicted negative or the batch has no positives or there are no false
        positives); guarded by max(x, eps)

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
    x0 = torch.sqrt(fn) * torch.sqrt(fp)
    x1 = torch.sqrt(tn)
    x2 = torch.sqrt(tp)
    value = (x1 * x2 - x0) / torch.clamp(x0 + x1 * x2, min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.sqrt(fn)
    x1 = torch.sqrt(fp)
    x2 = x0 * x1
    x3 = torch.sqrt(tn)
    x4 = torch.sqrt(tp)
    x5 = x3 * x4
    x6 = fn * fp
    x7 = x2 * x3
    x8 = tn * tp
    x9 = x1 * x5
    x10 = x2 * x4
    x11 = x0 * x5
    value = (x3 * x4 - x2) / torch.clamp(x2 + x5, min=eps)
    positive = x7 / torch.clamp(tn * tp ** 1.5 + 2.0 * tp * x7 + x4 * x6, min=eps) + x9 / torch.clamp(2.0 * fn * x9 + fn ** 1.5 * fp + x0 * x8, min=eps)
    negative = -x10 / torch.clamp(2.0 * tn * x10 + tn ** 1.5 * tp + x3 * x6, min=eps) - x11 / torch.clamp(fn * fp ** 1.5 + 2.0 * fp * x11 + x1 * x8, min=eps)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = math.sqrt(fn)
    x1 = math.sqrt(fp)
    x2 = x0 * x1
    x3 = math.sqrt(tn)
    x4 = math.sqrt(tp)
    x5 = x3 * x4
    x6 = fn * fp
    x7 = x2 * x3
    x8 = tn * tp
    x9 = x1 * x5
    x10 = x2 * x4
    x11 = x0 * x5
    value = (x3 * x4 - x2) / max(x2 + x5, eps)
    positive = x7 / max(tn * math.pow(tp, 1.5) + 2.0 * tp * x7 + x4 * x6, eps) + x9 / max(2.0 * fn * x9 + math.pow(fn, 1.5) * fp + x0 * x8, eps)
    negative = -x10 / max(2.0 * tn * x10 + math.pow(tn, 1.5) * tp + x3 * x6, eps) - x11 / max(fn * math.pow(fp, 1.5) + 2.0 * fp * x11 + x1 * x8, eps)
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = tl.sqrt(fn)
    x1 = tl.sqrt(fp)
    x2 = x0 * x1
    x3 = tl.sqrt(tn)
    x4 = tl.sqrt(tp)
    x5 = x3 * x4
    x6 = fn * fp
    x7 = x2 * x3
    x8 = tn * tp
    x9 = x1 * x5
    x10 = x2 * x4
    x11 = x0 * x5
    value = (x3 * x4 - x2) / tl.maximum(x2 + x5, eps)
    positive = x7 / tl.maximum(tn * ((tp) * tl.sqrt(tp)) + 2.0 * tp * x7 + x4 * x6, eps) + x9 / tl.maximum(2.0 * fn * x9 + ((fn) * tl.sqrt(fn)) * fp + x0 * x8, eps)
    negative = -x10 / tl.maximum(2.0 * tn * x10 + ((tn) * tl.sqrt(tn)) * tp + x3 * x6, eps) - x11 / tl.maximum(fn * ((fp) * tl.sqrt(fp)) + 2.0 * fp * x11 + x1 * x8, eps)
    return value, positive, negative


class YuleYLoss(CountLossBase):
    """yule_y as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "yule_y"
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
