"""FbetaLoss: fbeta as a loss, compiled by metricc 0.5.0.

Metric (maximized; the loss is 1 - fbeta):

    fbeta = TP*(beta**2 + 1)/(FN*beta**2 + FP + TP*(beta**2 + 1))

Partial derivatives:

    d fbeta / d TP = (beta**2 + 1)*(FN*beta**2 + FP)/(FN*beta**2 + FP + TP*beta**2 + TP)**2
    d fbeta / d FP = -TP*(beta**2 + 1)/(FN*beta**2 + FP + TP*(beta**2 + 1))**2
    d fbeta / d FN = -TP*beta**2*(beta**2 + 1)/(FN*beta**2 + FP + TP*(beta**2 + 1))**2
    d fbeta / d TN = 0

Per-sample weights d fbeta / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = (beta**2 + 1)*(FN*beta**2 + FP + TP*beta**2)/(FN*beta**2 + FP +
        TP*beta**2 + TP)**2
    negative, y_i = 0: dFP - dTN = -TP*(beta**2 + 1)/(FN*beta**2 + FP + TP*(beta**2 + 1))**2

Metric parameters:
    beta = 1.0, domain (0, inf) (written param_beta below)

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN*beta**2 + FP + TP*(beta**2 + 1) vanishes (there are no positives and
        nothing is predicted positive); guarded by max(x, eps)

Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).
This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

from typing import Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.loss import CountLossBase, ParameterSpec  # noqa: E402


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float, param_beta: float) -> Tensor:
    """The soft metric from the soft counts."""
    x0 = param_beta ** 2
    x1 = tp * (1.0 + x0)
    value = x1 / torch.clamp(fp + x1 + fn * x0, min=eps)
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float, param_beta: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = param_beta ** 2
    x1 = 1.0 + x0
    x2 = tp * x1
    x3 = fp + fn * x0
    x4 = torch.clamp(x2 + x3, min=eps)
    x5 = torch.reciprocal(torch.square(x4))
    value = x2 / x4
    positive = x1 * x5 * (x3 + tp * x0)
    negative = -x2 * x5
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float, param_beta: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = param_beta ** 2
    x1 = 1.0 + x0
    x2 = tp * x1
    x3 = fp + fn * x0
    x4 = max(x2 + x3, eps)
    x5 = (1.0 / x4 ** 2)
    value = x2 / x4
    positive = x1 * x5 * (x3 + tp * x0)
    negative = -x2 * x5
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    param_beta = tl.zeros_like(tp) + parameters[0]
    x0 = (param_beta * param_beta)
    x1 = 1.0 + x0
    x2 = tp * x1
    x3 = fp + fn * x0
    x4 = tl.maximum(x2 + x3, eps)
    x5 = (1.0 / (x4 * x4))
    value = x2 / x4
    positive = x1 * x5 * (x3 + tp * x0)
    negative = -x2 * x5
    return value, positive, negative


class FbetaLoss(CountLossBase):
    """fbeta as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "fbeta"
    defaults = {"approximation": "anyloss", "direction": "maximize"}
    metric_parameters = {
        "beta": ParameterSpec(default=1.0, lower=0.0, upper=float("inf"), lower_open=True, upper_open=True),
    }
    formula_in_triton = staticmethod(metric_value_and_weights_in_triton)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        return self.compute_loss(preds, target)

    def formula(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        return metric_value(tp, fp, fn, tn, self.eps, self.parameter_values["beta"])

    def formula_and_weights(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return metric_value_and_weights(tp, fp, fn, tn, self.eps, self.parameter_values["beta"])

    def formula_on_floats(self, tp: float, fp: float, fn: float, tn: float) -> Tuple[float, float, float]:
        return metric_value_and_weights_of_floats(tp, fp, fn, tn, self.eps, self.parameter_values["beta"])
