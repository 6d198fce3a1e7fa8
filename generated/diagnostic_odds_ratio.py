"""DiagnosticOddsRatioLoss: diagnostic_odds_ratio as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - diagnostic_odds_ratio):

    diagnostic_odds_ratio = TN*TP/(FN*FP)

Partial derivatives:

    d diagnostic_odds_ratio / d TP = TN/(FN*FP)
    d diagnostic_odds_ratio / d FP = -TN*TP/(FN*FP**2)
    d diagnostic_odds_ratio / d FN = -TN*TP/(FN**2*FP)
    d diagnostic_odds_ratio / d TN = TP/(FN*FP)

Per-sample weights d diagnostic_odds_ratio / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = TN*(FN + TP)/(FN**2*FP)
    negative, y_i = 0: dFP - dTN = -TP*(FP + TN)/(FN*FP**2)

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN vanishes (there are no false negatives); guarded by max(x, eps)
    - the denominator FP vanishes (there are no false positives); guarded by max(x, eps)

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
    value = tn * tp / torch.clamp(fn, min=eps) / torch.clamp(fp, min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.clamp(fp, min=eps)
    x1 = tn / x0
    x2 = torch.clamp(fn, min=eps)
    x3 = tp / x2
    value = x1 * x3
    positive = x1 * (fn + tp) / torch.square(x2)
    negative = -x3 * (fp + tn) / torch.square(x0)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = max(fp, eps)
    x1 = tn / x0
    x2 = max(fn, eps)
    x3 = tp / x2
    value = x1 * x3
    positive = x1 * (fn + tp) / x2 ** 2
    negative = -x3 * (fp + tn) / x0 ** 2
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = tl.maximum(fp, eps)
    x1 = tn / x0
    x2 = tl.maximum(fn, eps)
    x3 = tp / x2
    value = x1 * x3
    positive = x1 * (fn + tp) / (x2 * x2)
    negative = -x3 * (fp + tn) / (x0 * x0)
    return value, positive, negative


class DiagnosticOddsRatioLoss(CountLossBase):
    """diagnostic_odds_ratio as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "diagnostic_odds_ratio"
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
