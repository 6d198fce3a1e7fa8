"""F1Loss: f1 as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - f1):

    f1 = 2*TP/(FN + FP + 2*TP)

Partial derivatives:

    d f1 / d TP = 2*(FN + FP)/(FN + FP + 2*TP)**2
    d f1 / d FP = -2*TP/(FN + FP + 2*TP)**2
    d f1 / d FN = -2*TP/(FN + FP + 2*TP)**2
    d f1 / d TN = 0

Per-sample weights d f1 / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = 2*(FN + FP + TP)/(FN + FP + 2*TP)**2
    negative, y_i = 0: dFP - dTN = -2*TP/(FN + FP + 2*TP)**2

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN + FP + 2*TP vanishes (there are no positives and nothing is predicted
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
    x0 = 2.0 * tp
    value = x0 / torch.clamp(fn + fp + x0, min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = 2.0 * tp
    x1 = fn + fp
    x2 = torch.clamp(x0 + x1, min=eps)
    x3 = torch.reciprocal(torch.square(x2))
    value = x0 / x2
    positive = 2.0 * x3 * (tp + x1)
    negative = -x0 * x3
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = 2.0 * tp
    x1 = fn + fp
    x2 = max(x0 + x1, eps)
    x3 = (1.0 / x2 ** 2)
    value = x0 / x2
    positive = 2.0 * x3 * (tp + x1)
    negative = -x0 * x3
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = 2.0 * tp
    x1 = fn + fp
    x2 = tl.maximum(x0 + x1, eps)
    x3 = (1.0 / (x2 * x2))
    value = x0 / x2
    positive = 2.0 * x3 * (tp + x1)
    negative = -x0 * x3
    return value, positive, negative


class F1Loss(CountLossBase):
    """f1 as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "f1"
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
