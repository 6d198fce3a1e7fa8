"""LinearKappaLoss: linear_kappa as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - linear_kappa):

    linear_kappa = -(FN + FP)*(FN + FP + TN + TP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP)) + 1

Partial derivatives:

    d linear_kappa / d TP = 2*(FN + FP)*(FN + TN)*(FP + TN)/(FN**2 + FN*TN + FN*TP + FP**2 + FP*TN
        + FP*TP + 2*TN*TP)**2
    d linear_kappa / d FP = -(FN + FP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP)) - (FN +
        FP)*(-2*FP - TN - TP)*(FN + FP + TN + TP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP))**2 -
        (FN + FP + TN + TP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP))
    d linear_kappa / d FN = -(FN + FP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP)) - (FN +
        FP)*(-2*FN - TN - TP)*(FN + FP + TN + TP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP))**2 -
        (FN + FP + TN + TP)/((FN + TN)*(FN + TP) + (FP + TN)*(FP + TP))
    d linear_kappa / d TN = 2*(FN + FP)*(FN + TP)*(FP + TP)/(FN**2 + FN*TN + FN*TP + FP**2 + FP*TN
        + FP*TP + 2*TN*TP)**2

Per-sample weights d linear_kappa / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = 2*(FN + FP + TN + TP)*(FN*TN + FP**2 + FP*TN + TN*TP)/(FN**2 +
        FN*TN + FN*TP + FP**2 + FP*TN + FP*TP + 2*TN*TP)**2
    negative, y_i = 0: dFP - dTN = -2*(FN + FP + TN + TP)*(FN**2 + FN*TP + FP*TP + TN*TP)/(FN**2 +
        FN*TN + FN*TP + FP**2 + FP*TN + FP*TP + 2*TN*TP)**2

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator (FN + TN)*(FN + TP) + (FP + TN)*(FP + TP) vanishes (there are no negatives
        and nothing is predicted negative or there are no positives and nothing is predicted
        positive); guarded by max(x, eps)

Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).
This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

from typing import Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.loss import CountLossBase  # noqa: E402


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tensor:
    """The soft metric from the soft counts."""
    x0 = fn + tn
    x1 = fp + tp
    value = 1.0 - (fn + fp) * (x0 + x1) / torch.clamp(x0 * (fn + tp) + x1 * (fp + tn), min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = fn + tn
    x1 = fp + tp
    x2 = x0 + x1
    x3 = torch.clamp(x0 * (fn + tp) + x1 * (fp + tn), min=eps)
    x4 = tn * tp
    x5 = 2.0 * x2 / torch.square(x3)
    value = 1.0 - x2 * (fn + fp) / x3
    positive = x5 * (torch.square(fp) + x4 + fn * tn + fp * tn)
    negative = -x5 * (torch.square(fn) + x4 + fn * tp + fp * tp)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = fn + tn
    x1 = fp + tp
    x2 = x0 + x1
    x3 = max(x0 * (fn + tp) + x1 * (fp + tn), eps)
    x4 = tn * tp
    x5 = 2.0 * x2 / x3 ** 2
    value = 1.0 - x2 * (fn + fp) / x3
    positive = x5 * (fp ** 2 + x4 + fn * tn + fp * tn)
    negative = -x5 * (fn ** 2 + x4 + fn * tp + fp * tp)
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = fn + tn
    x1 = fp + tp
    x2 = x0 + x1
    x3 = tl.maximum(x0 * (fn + tp) + x1 * (fp + tn), eps)
    x4 = tn * tp
    x5 = 2.0 * x2 / (x3 * x3)
    value = 1.0 - x2 * (fn + fp) / x3
    positive = x5 * ((fp * fp) + x4 + fn * tn + fp * tn)
    negative = -x5 * ((fn * fn) + x4 + fn * tp + fp * tp)
    return value, positive, negative


class LinearKappaLoss(CountLossBase):
    """linear_kappa as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "linear_kappa"
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
