"""FocalTverskyLoss: focal_tversky as a loss, compiled by metricc 0.5.0.

Metric (minimized; the loss is focal_tversky):

    focal_tversky = ((FN*beta + FP*alpha)/(FN*beta + FP*alpha + TP))**gamma

Partial derivatives:

    d focal_tversky / d TP = -gamma*((FN*beta + FP*alpha)/(FN*beta + FP*alpha +
        TP))**gamma/(FN*beta + FP*alpha + TP)
    d focal_tversky / d FP = TP*alpha*gamma*((FN*beta + FP*alpha)/(FN*beta + FP*alpha +
        TP))**gamma/((FN*beta + FP*alpha)*(FN*beta + FP*alpha + TP))
    d focal_tversky / d FN = TP*beta*gamma*((FN*beta + FP*alpha)/(FN*beta + FP*alpha +
        TP))**gamma/((FN*beta + FP*alpha)*(FN*beta + FP*alpha + TP))
    d focal_tversky / d TN = 0

Per-sample weights d focal_tversky / d a_i (the backward pass uses these, not autograd through the formula):

    positive, y_i = 1: dTP - dFN = -gamma*((FN*beta + FP*alpha)/(FN*beta + FP*alpha +
        TP))**gamma*(FN*beta + FP*alpha + TP*beta)/((FN*beta + FP*alpha)*(FN*beta + FP*alpha + TP))
    negative, y_i = 0: dFP - dTN = TP*alpha*gamma*((FN*beta + FP*alpha)/(FN*beta + FP*alpha +
        TP))**gamma/((FN*beta + FP*alpha)*(FN*beta + FP*alpha + TP))

Metric parameters:
    alpha = 0.3, domain [0, inf) (written param_alpha below)
    beta = 0.7, domain [0, inf) (written param_beta below)
    gamma = 0.75, domain (0, inf) (written param_gamma below)

Singular points and their guards (eps = 1e-07 by default):
    - the denominator FN*beta + FP*alpha + TP vanishes (there are no positives and nothing is
        predicted positive); guarded by max(x, eps)
    - the denominator FN*beta + FP*alpha vanishes (every prediction is right (no false positives or
        false negatives)); guarded by max(x, eps)

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

from metricc.runtime.loss import CountLossBase, ParameterSpec  # noqa: E402


def metric_value(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float, param_alpha: float, param_beta: float, param_gamma: float) -> Tensor:
    """The soft metric from the soft counts."""
    x0 = fn * param_beta + fp * param_alpha
    value = (x0 / torch.clamp(tp + x0, min=eps)) ** param_gamma
    return value


def metric_value_and_weights(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, eps: float, param_alpha: float, param_beta: float, param_gamma: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions."""
    x0 = fn * param_beta + fp * param_alpha
    x1 = torch.reciprocal(torch.clamp(tp + x0, min=eps))
    x2 = (x0 * x1) ** param_gamma
    x3 = param_gamma * x1 * x2 / torch.clamp(x0, min=eps)
    value = x2
    positive = -x3 * (x0 + tp * param_beta)
    negative = tp * param_alpha * x3
    return value, positive, negative


def metric_value_and_weights_of_floats(tp: float, fp: float, fn: float, tn: float, eps: float, param_alpha: float, param_beta: float, param_gamma: float) -> Tuple[float, float, float]:
    """metric_value_and_weights on Python floats, for counts that are single numbers."""
    x0 = fn * param_beta + fp * param_alpha
    x1 = (1.0 / max(tp + x0, eps))
    x2 = math.pow(x0 * x1, param_gamma)
    x3 = param_gamma * x1 * x2 / max(x0, eps)
    value = x2
    positive = -x3 * (x0 + tp * param_beta)
    negative = tp * param_alpha * x3
    return value, positive, negative


def metric_value_and_weights_in_triton(tp, fp, fn, tn, eps, parameters):
    """metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu)."""
    param_alpha = tl.zeros_like(tp) + parameters[0]
    param_beta = tl.zeros_like(tp) + parameters[1]
    param_gamma = tl.zeros_like(tp) + parameters[2]
    x0 = fn * param_beta + fp * param_alpha
    x1 = (1.0 / (tl.maximum(tp + x0, eps)))
    x2 = tl.exp(param_gamma * tl.log(x0 * x1))
    x3 = param_gamma * x1 * x2 / tl.maximum(x0, eps)
    value = x2
    positive = -x3 * (x0 + tp * param_beta)
    negative = tp * param_alpha * x3
    return value, positive, negative


class FocalTverskyLoss(CountLossBase):
    """focal_tversky as a loss; CountLossBase documents the inputs and the options."""

    metric_name = "focal_tversky"
    defaults = {"approximation": "anyloss", "direction": "minimize"}
    metric_parameters = {
        "alpha": ParameterSpec(default=0.3, lower=0.0, upper=float("inf"), lower_open=False, upper_open=True),
        "beta": ParameterSpec(default=0.7, lower=0.0, upper=float("inf"), lower_open=False, upper_open=True),
        "gamma": ParameterSpec(default=0.75, lower=0.0, upper=float("inf"), lower_open=True, upper_open=True),
    }
    formula_in_triton = staticmethod(metric_value_and_weights_in_triton)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        return self.compute_loss(preds, target)

    def formula(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        return metric_value(tp, fp, fn, tn, self.eps, self.parameter_values["alpha"], self.parameter_values["beta"], self.parameter_values["gamma"])

    def formula_and_weights(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return metric_value_and_weights(tp, fp, fn, tn, self.eps, self.parameter_values["alpha"], self.parameter_values["beta"], self.parameter_values["gamma"])

    def formula_on_floats(self, tp: float, fp: float, fn: float, tn: float) -> Tuple[float, float, float]:
        return metric_value_and_weights_of_floats(tp, fp, fn, tn, self.eps, self.parameter_values["alpha"], self.parameter_values["beta"], self.parameter_values["gamma"])
