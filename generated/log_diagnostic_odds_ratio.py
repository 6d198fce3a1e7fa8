"""LogDiagnosticOddsRatioLoss: log_diagnostic_odds_ratio as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - log_diagnostic_odds_ratio):

    log_diagnostic_odds_ratio = log(TN*TP/(FN*FP))

Partial derivatives:

    d log_diagnostic_odds_ratio / d TP = 1/TP
    d log_diagnostic_odds_ratio / d FP = -1/FP
    d log_diagnostic_odds_ratio / d FN = -1/FN
    d log_diagnostic_odds_ratio / d TN = 1/TN

Per-sample weights d log_diagnostic_odds_ratio / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = (FN + TP)/(FN*TP)
    negative, y_i = 0: dFP - dTN = -(FP + TN)/(FP*TN)

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN vanishes (there are no false negatives); guarded by max(x, eps)
    - the denominator FP vanishes (there are no false positives); guarded by max(x, eps)
    - the log argument TN*TP/(FN*FP) vanishes (there are no true negatives or there are no true
        positives); guarded by max(x, eps)
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
    value = torch.log(torch.clamp(tn * tp / torch.clamp(fn, min=eps) / torch.clamp(fp, min=eps), min=eps))
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.reciprocal(torch.clamp(fn, min=eps))
    x1 = torch.reciprocal(torch.clamp(fp, min=eps))
    value = torch.log(torch.clamp(tn * tp * x0 * x1, min=eps))
    positive = x0 * (fn + tp) / torch.clamp(tp, min=eps)
    negative = -x1 * (fp + tn) / torch.clamp(tn, min=eps)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = (1.0 / max(fn, eps))
    x1 = (1.0 / max(fp, eps))
    value = math.log(max(tn * tp * x0 * x1, eps))
    positive = x0 * (fn + tp) / max(tp, eps)
    negative = -x1 * (fp + tn) / max(tn, eps)
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = (1.0 / (tl.maximum(fn, eps)))
    x1 = (1.0 / (tl.maximum(fp, eps)))
    value = tl.log(tl.maximum(tn * tp * x0 * x1, eps))
    positive = x0 * (fn + tp) / tl.maximum(tp, eps)
    negative = -x1 * (fp + tn) / tl.maximum(tn, eps)
    return value, positive, negative


class LogDiagnosticOddsRatioLoss(CountLossBase):
    """log_diagnostic_odds_ratio as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "log_diagnostic_odds_ratio"
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
