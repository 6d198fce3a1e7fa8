"""AccuracyMulticlassLoss: accuracy_multiclass as a loss, compiled by metricc 0.5.0.

Metric of the whole C x C soft confusion matrix M[i, j] = sum_n y[n, i] a[n, j] (true class i, predicted
class j; row sums r, column sums c), maximized; the loss is 1 - accuracy_multiclass:

    accuracy_multiclass = TRACE/SUM

Aggregates:

    SUM: all samples, the sum of M
    TRACE: correctly classified samples, the trace of M

Partial derivatives:

    dSUM = d accuracy_multiclass / d SUM = -TRACE/SUM**2
    dTRACE = d accuracy_multiclass / d TRACE = 1/SUM

Gradient with respect to the matrix (the backward pass uses it, not autograd through the formula):

    G[i, j] = d accuracy_multiclass / d M[i, j] = dSUM + dTRACE * delta_ij
    and the weight of a[n, j] is G[label of n, j].

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator SUM vanishes (the batch is empty); guarded by max(x, eps)

This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

from typing import Dict, Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.loss import MatrixLossBase  # noqa: E402


def metric_value(total: Tensor, trace: Tensor, eps: float) -> Tensor:
    """The soft metric from the aggregates of the soft confusion matrix."""
    value = trace / torch.clamp(total, min=eps)
    return value


def metric_value_and_partials(total: Tensor, trace: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The metric and its partial derivative by each aggregate, sharing subexpressions."""
    x0 = torch.clamp(total, min=eps)
    x1 = torch.reciprocal(x0)
    value = trace * x1
    d_total = -trace / torch.square(x0)
    d_trace = x1
    return value, d_total, d_trace


def metric_value_and_partials_in_triton(total, trace, sum_rc, sum_rr, sum_cc, observed_unweighted, observed_linear, observed_quadratic, expected_unweighted, expected_linear, expected_quadratic, eps, parameters):
    """metric_value_and_partials in Triton's language, of every aggregate, for the GPU path's one loss launch."""
    x0 = tl.maximum(total, eps)
    x1 = (1.0 / (x0))
    value = trace * x1
    d_total = -trace / (x0 * x0)
    d_trace = x1
    d_sum_rc = tl.zeros_like(total)
    d_sum_rr = tl.zeros_like(total)
    d_sum_cc = tl.zeros_like(total)
    d_observed_unweighted = tl.zeros_like(total)
    d_observed_linear = tl.zeros_like(total)
    d_observed_quadratic = tl.zeros_like(total)
    d_expected_unweighted = tl.zeros_like(total)
    d_expected_linear = tl.zeros_like(total)
    d_expected_quadratic = tl.zeros_like(total)
    return value, d_total, d_trace, d_sum_rc, d_sum_rr, d_sum_cc, d_observed_unweighted, d_observed_linear, d_observed_quadratic, d_expected_unweighted, d_expected_linear, d_expected_quadratic


class AccuracyMulticlassLoss(MatrixLossBase):
    """accuracy_multiclass as a loss; MatrixLossBase documents the inputs and the options."""

    metric_name = "accuracy_multiclass"
    defaults = {"task": "multiclass", "approximation": "identity", "direction": "maximize"}
    metric_parameters = {}
    aggregates = ("SUM", "TRACE")
    formula_in_triton = staticmethod(metric_value_and_partials_in_triton)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        return self.compute_loss(preds, target)

    def formula(self, aggregates: Dict[str, Tensor]) -> Tensor:
        return metric_value(aggregates["SUM"], aggregates["TRACE"], self.eps)

    def formula_and_partials(self, aggregates: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        value, d_total, d_trace = metric_value_and_partials(aggregates["SUM"], aggregates["TRACE"], self.eps)
        return value, {"SUM": d_total, "TRACE": d_trace}
