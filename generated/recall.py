"""RecallLoss: recall as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - recall):

    recall = TP/(FN + TP)

Partial derivatives:

    d recall / d TP = FN/(FN + TP)**2
    d recall / d FP = 0
    d recall / d FN = -TP/(FN + TP)**2
    d recall / d TN = 0

Per-sample weights d recall / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = 1/(FN + TP)
    negative, y_i = 0: dFP - dTN = 0

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
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
    value = tp / torch.clamp(fn + tp, min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = torch.reciprocal(torch.clamp(fn + tp, min=eps))
    value = tp * x0
    positive = x0
    negative = torch.zeros_like(tp)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = (1.0 / max(fn + tp, eps))
    value = tp * x0
    positive = x0
    negative = 0.0
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = (1.0 / (tl.maximum(fn + tp, eps)))
    value = tp * x0
    positive = x0
    negative = tl.zeros_like(tp)
    return value, positive, negative


class RecallLoss(CountLossBase):
    """recall as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "recall"
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
