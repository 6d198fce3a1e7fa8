"""LrPlusLoss: lr_plus as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - lr_plus):

    lr_plus = TP*(FP + TN)/(FP*(FN + TP))

Partial derivatives:

    d lr_plus / d TP = FN*(FP + TN)/(FP*(FN + TP)**2)
    d lr_plus / d FP = -TN*TP/(FP**2*(FN + TP))
    d lr_plus / d FN = -TP*(FP + TN)/(FP*(FN + TP)**2)
    d lr_plus / d TN = TP/(FP*(FN + TP))

Per-sample weights d lr_plus / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = (FP + TN)/(FP*(FN + TP))
    negative, y_i = 0: dFP - dTN = -TP*(FP + TN)/(FP**2*(FN + TP))

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FP vanishes (there are no false positives); guarded by max(x, eps)
    - the denominator FN + TP vanishes (the batch has no positives); guarded by max(x, eps)

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
    value = tp * (fp + tn) / torch.clamp(fp, min=eps) / torch.clamp(fn + tp, min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.clamp(fp, min=eps)
    x1 = (fp + tn) / torch.clamp(fn + tp, min=eps)
    x2 = x1 / x0
    value = tp * x2
    positive = x2
    negative = -tp * x1 / torch.square(x0)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = max(fp, eps)
    x1 = (fp + tn) / max(fn + tp, eps)
    x2 = x1 / x0
    value = tp * x2
    positive = x2
    negative = -tp * x1 / x0 ** 2
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = tl.maximum(fp, eps)
    x1 = (fp + tn) / tl.maximum(fn + tp, eps)
    x2 = x1 / x0
    value = tp * x2
    positive = x2
    negative = -tp * x1 / (x0 * x0)
    return value, positive, negative


class LrPlusLoss(CountLossBase):
    """lr_plus as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "lr_plus"
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
