"""GilbertSkillScoreLoss: gilbert_skill_score as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - gilbert_skill_score):

    gilbert_skill_score = (TP - (FN + TP)*(FP + TP)/(FN + FP + TN + TP))/(FN + FP + TP - (FN +
        TP)*(FP + TP)/(FN + FP + TN + TP))

Partial derivatives:

    d gilbert_skill_score / d TP = (FN + FP)*(FN + TN)*(FP + TN)/(FN**2 + FN*FP + FN*TN + FN*TP +
        FP**2 + FP*TN + FP*TP + TN*TP)**2
    d gilbert_skill_score / d FP = -(FN**3 + FN**2*TN + FN**2*TP - FN*FP**2 + 2*FN*TN*TP +
        2*FP*TN*TP + TN**2*TP + TN*TP**2)/(FN**2 + FN*FP + FN*TN + FN*TP + FP**2 + FP*TN + FP*TP +
        TN*TP)**2
    d gilbert_skill_score / d FN = (FN**2*FP - 2*FN*TN*TP - FP**3 - FP**2*TN - FP**2*TP -
        2*FP*TN*TP - TN**2*TP - TN*TP**2)/(FN**2 + FN*FP + FN*TN + FN*TP + FP**2 + FP*TN + FP*TP +
        TN*TP)**2
    d gilbert_skill_score / d TN = (FN + FP)*(FN + TP)*(FP + TP)/(FN**2 + FN*FP + FN*TN + FN*TP +
        FP**2 + FP*TN + FP*TP + TN*TP)**2

Per-sample weights d gilbert_skill_score / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = (FN + FP + TN + TP)*(FN*TN + FP**2 + FP*TN + TN*TP)/(FN**2 +
        FN*FP + FN*TN + FN*TP + FP**2 + FP*TN + FP*TP + TN*TP)**2
    negative, y_i = 0: dFP - dTN = -(FN + FP + TN + TP)*(FN**2 + FN*TP + FP*TP + TN*TP)/(FN**2 +
        FN*FP + FN*TN + FN*TP + FP**2 + FP*TN + FP*TP + TN*TP)**2

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN + FP + TN + TP vanishes (the batch is empty); guarded by max(x, eps)
    - the denominator FN + FP + TP - (FN + TP)*(FP + TP)/(FN + FP + TN + TP) vanishes (FN + FP + TP
        = (FN + TP)*(FP + TP)/(FN + FP + TN + TP)); guarded by moving x to +-eps when |x| < eps
    - the denominator FN**2 + FN*FP + FN*TN + FN*TP + FP**2 + FP*TN + FP*TP + TN*TP vanishes (there
        are no negatives and nothing is predicted negative or there are no positives and nothing is
        predicted positive); guarded by max(x, eps)

Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).
This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

from typing import Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.guards import signed_clamp, signed_clamp_float  # noqa: E402
from metricc.runtime.loss import CountLossBase  # noqa: E402


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tensor:
    """The soft metric from the soft counts."""
    x0 = fn + tp
    x1 = fp + x0
    x2 = -x0 * (fp + tp) / torch.clamp(tn + x1, min=eps)
    value = (tp + x2) / signed_clamp(x1 + x2, eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = fn + tp
    x1 = fp + x0
    x2 = tn + x1
    x3 = -x0 * (fp + tp) / torch.clamp(x2, min=eps)
    x4 = tn * tp
    x5 = torch.square(fp) + x4 + fn * tn + fp * tn
    x6 = torch.square(fn) + fn * tp + fp * tp
    x7 = x2 / torch.square(torch.clamp(x5 + x6 + fn * fp, min=eps))
    value = (tp + x3) / signed_clamp(x1 + x3, eps)
    positive = x5 * x7
    negative = -x7 * (x4 + x6)
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = fn + tp
    x1 = fp + x0
    x2 = tn + x1
    x3 = -x0 * (fp + tp) / max(x2, eps)
    x4 = tn * tp
    x5 = fp ** 2 + x4 + fn * tn + fp * tn
    x6 = fn ** 2 + fn * tp + fp * tp
    x7 = x2 / max(x5 + x6 + fn * fp, eps) ** 2
    value = (tp + x3) / signed_clamp_float(x1 + x3, eps)
    positive = x5 * x7
    negative = -x7 * (x4 + x6)
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    x0 = fn + tp
    x1 = fp + x0
    x2 = tn + x1
    x3 = -x0 * (fp + tp) / tl.maximum(x2, eps)
    x4 = tn * tp
    x5 = (fp * fp) + x4 + fn * tn + fp * tn
    x6 = (fn * fn) + fn * tp + fp * tp
    x7 = x2 / (tl.maximum(x5 + x6 + fn * fp, eps) * tl.maximum(x5 + x6 + fn * fp, eps))
    value = (tp + x3) / signed_clamp_in_triton(x1 + x3, eps)
    positive = x5 * x7
    negative = -x7 * (x4 + x6)
    return value, positive, negative


class GilbertSkillScoreLoss(CountLossBase):
    """gilbert_skill_score as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "gilbert_skill_score"
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
