"""CohenKappaMulticlassLoss: cohen_kappa_multiclass as a loss, compiled by metricc 0.5.0.

Metric of the whole C x C soft confusion matrix M[i, j] = sum_n y[n, i] a[n, j] (true class i, predicted
class j; row sums r, column sums c), maximized; the loss is 1 - cohen_kappa_multiclass:

    cohen_kappa_multiclass = (SUM*TRACE - SUM_RC)/(SUM**2 - SUM_RC)

Aggregates:

    SUM: all samples, the sum of M
    TRACE: correctly classified samples, the trace of M
    SUM_RC: the sum over classes of true count times predicted count, sum_k r_k c_k

Partial derivatives:

    dSUM = d cohen_kappa_multiclass / d SUM = -(SUM**2*TRACE - 2*SUM*SUM_RC + SUM_RC*TRACE)/(SUM**2
        - SUM_RC)**2
    dTRACE = d cohen_kappa_multiclass / d TRACE = SUM/(SUM**2 - SUM_RC)
    dSUM_RC = d cohen_kappa_multiclass / d SUM_RC = -SUM*(SUM - TRACE)/(SUM**2 - SUM_RC)**2

Gradient with respect to the matrix (the backward pass uses it, not autograd through the formula):

    G[i, j] = d cohen_kappa_multiclass / d M[i, j] = dSUM + dTRACE * delta_ij + dSUM_RC * (c_i +
        r_j)
    and the weight of a[n, j] is G[label of n, j].

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator SUM**2 - SUM_RC vanishes (every sample is of one class and predicted to be of
        it); guarded by moving x to +-eps when |x| < eps

This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

from typing import Dict, Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.guards import signed_clamp  # noqa: E402
from metricc.runtime.loss import MatrixLossBase  # noqa: E402


def metric_value(total: Tensor, trace: Tensor, sum_rc: Tensor, eps: float) -> Tensor:
    """The soft metric from the aggregates of the soft confusion matrix."""
    x0 = -sum_rc
    value = (x0 + total * trace) / signed_clamp(torch.square(total) + x0, eps)
    return value


def metric_value_and_partials(total: Tensor, trace: Tensor, sum_rc: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The metric and its partial derivative by each aggregate, sharing subexpressions."""
    x0 = -sum_rc
    x1 = torch.square(total)
    x2 = signed_clamp(x0 + x1, eps)
    x3 = torch.reciprocal(x2)
    x4 = torch.reciprocal(torch.square(x2))
    value = x3 * (x0 + total * trace)
    d_total = -x4 * (sum_rc * trace + trace * x1 - 2.0 * total * sum_rc)
    d_trace = total * x3
    d_sum_rc = -total * x4 * (total - trace)
    return value, d_total, d_trace, d_sum_rc


def metric_value_and_partials_in_triton(total, trace, sum_rc, sum_rr, sum_cc, observed_unweighted, observed_linear, observed_quadratic, expected_unweighted, expected_linear, expected_quadratic, eps, parameters):
    """metric_value_and_partials in Triton's language, of every aggregate, for the GPU path's one loss launch."""
    x0 = -sum_rc
    x1 = (total * total)
    x2 = signed_clamp_in_triton(x0 + x1, eps)
    x3 = (1.0 / (x2))
    x4 = (1.0 / (x2 * x2))
    value = x3 * (x0 + total * trace)
    d_total = -x4 * (sum_rc * trace + trace * x1 - 2.0 * total * sum_rc)
    d_trace = total * x3
    d_sum_rc = -total * x4 * (total - trace)
    d_sum_rr = tl.zeros_like(total)
    d_sum_cc = tl.zeros_like(total)
    d_observed_unweighted = tl.zeros_like(total)
    d_observed_linear = tl.zeros_like(total)
    d_observed_quadratic = tl.zeros_like(total)
    d_expected_unweighted = tl.zeros_like(total)
    d_expected_linear = tl.zeros_like(total)
    d_expected_quadratic = tl.zeros_like(total)
    return value, d_total, d_trace, d_sum_rc, d_sum_rr, d_sum_cc, d_observed_unweighted, d_observed_linear, d_observed_quadratic, d_expected_unweighted, d_expected_linear, d_expected_quadratic


class CohenKappaMulticlassLoss(MatrixLossBase):
    """cohen_kappa_multiclass as a loss; MatrixLossBase documents the inputs and the options."""

    metric_name = "cohen_kappa_multiclass"
    defaults = {"task": "multiclass", "approximation": "identity", "direction": "maximize"}
    metric_parameters = {}
    aggregates = ("SUM", "TRACE", "SUM_RC")
    formula_in_triton = staticmethod(metric_value_and_partials_in_triton)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        return self.compute_loss(preds, target)

    def formula(self, aggregates: Dict[str, Tensor]) -> Tensor:
        return metric_value(aggregates["SUM"], aggregates["TRACE"], aggregates["SUM_RC"], self.eps)

    def formula_and_partials(self, aggregates: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        value, d_total, d_trace, d_sum_rc = metric_value_and_partials(aggregates["SUM"], aggregates["TRACE"], aggregates["SUM_RC"], self.eps)
        return value, {"SUM": d_total, "TRACE": d_trace, "SUM_RC": d_sum_rc}
