"""MccMulticlassLoss: mcc_multiclass as a loss, compiled by metricc 0.5.0.

Metric of the whole C x C soft confusion matrix M[i, j] = sum_n y[n, i] a[n, j] (true class i, predicted
class j; row sums r, column sums c), maximized; the loss is 1 - mcc_multiclass:

    mcc_multiclass = (SUM*TRACE - SUM_RC)/(sqrt(SUM**2 - SUM_CC)*sqrt(SUM**2 - SUM_RR))

Aggregates:

    SUM: all samples, the sum of M
    TRACE: correctly classified samples, the trace of M
    SUM_RC: the sum over classes of true count times predicted count, sum_k r_k c_k
    SUM_RR: the sum of squared true counts, sum_k r_k^2
    SUM_CC: the sum of squared predicted counts, sum_k c_k^2

Partial derivatives:

    dSUM = d mcc_multiclass / d SUM = -(SUM**4*TRACE - 2*SUM**3*SUM_RC + SUM*SUM_CC*SUM_RC +
        SUM*SUM_RC*SUM_RR - SUM_CC*SUM_RR*TRACE)/((SUM**2 - SUM_CC)**(3/2)*(SUM**2 -
        SUM_RR)**(3/2))
    dTRACE = d mcc_multiclass / d TRACE = SUM/(sqrt(SUM**2 - SUM_CC)*sqrt(SUM**2 - SUM_RR))
    dSUM_RC = d mcc_multiclass / d SUM_RC = -1/(sqrt(SUM**2 - SUM_CC)*sqrt(SUM**2 - SUM_RR))
    dSUM_RR = d mcc_multiclass / d SUM_RR = (SUM*TRACE - SUM_RC)/(2*sqrt(SUM**2 - SUM_CC)*(SUM**2 -
        SUM_RR)**(3/2))
    dSUM_CC = d mcc_multiclass / d SUM_CC = (SUM*TRACE - SUM_RC)/(2*(SUM**2 -
        SUM_CC)**(3/2)*sqrt(SUM**2 - SUM_RR))

Gradient with respect to the matrix (the backward pass uses it, not autograd through the formula):

    G[i, j] = d mcc_multiclass / d M[i, j] = dSUM + dTRACE * delta_ij + dSUM_RC * (c_i + r_j) +
        dSUM_RR * (2 r_i) + dSUM_CC * (2 c_j)
    and the weight of a[n, j] is G[label of n, j].

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator SUM**2 - SUM_CC vanishes (every sample is predicted to be of one class);
        guarded by max(x, eps)
    - the denominator SUM**2 - SUM_RR vanishes (every sample is of one true class); guarded by
        max(x, eps)

This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

from typing import Dict, Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.loss import MatrixLossBase  # noqa: E402


def metric_value(total: Tensor, trace: Tensor, sum_rc: Tensor, sum_rr: Tensor, sum_cc: Tensor, eps: float) -> Tensor:
    """The soft metric from the aggregates of the soft confusion matrix."""
    x0 = torch.square(total)
    value = (total * trace - sum_rc) * torch.rsqrt(torch.clamp(x0 - sum_cc, min=eps)) * torch.rsqrt(torch.clamp(x0 - sum_rr, min=eps))
    return value


def metric_value_and_partials(total: Tensor, trace: Tensor, sum_rc: Tensor, sum_rr: Tensor, sum_cc: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The metric and its partial derivative by each aggregate, sharing subexpressions."""
    x0 = total * trace - sum_rc
    x1 = torch.square(total)
    x2 = torch.clamp(x1 - sum_cc, min=eps)
    x3 = torch.rsqrt(x2)
    x4 = torch.clamp(x1 - sum_rr, min=eps)
    x5 = torch.rsqrt(x4)
    x6 = x3 * x5
    x7 = torch.reciprocal(x2 ** 1.5)
    x8 = torch.reciprocal(x4 ** 1.5)
    x9 = total * sum_rc
    x10 = 0.5 * x0
    value = x0 * x6
    d_total = -x7 * x8 * (total ** 4 * trace + sum_cc * x9 + sum_rr * x9 - 2.0 * total ** 3 * sum_rc - sum_cc * sum_rr * trace)
    d_trace = total * x6
    d_sum_rc = -x6
    d_sum_rr = x10 * x3 * x8
    d_sum_cc = x10 * x5 * x7
    return value, d_total, d_trace, d_sum_rc, d_sum_rr, d_sum_cc


def metric_value_and_partials_in_triton(total, trace, sum_rc, sum_rr, sum_cc, observed_unweighted, observed_linear, observed_quadratic, expected_unweighted, expected_linear, expected_quadratic, eps, parameters):
    """metric_value_and_partials in Triton's language, of every aggregate, for the GPU path's one loss launch."""
    x0 = total * trace - sum_rc
    x1 = (total * total)
    x2 = tl.maximum(x1 - sum_cc, eps)
    x3 = tl.rsqrt(x2)
    x4 = tl.maximum(x1 - sum_rr, eps)
    x5 = tl.rsqrt(x4)
    x6 = x3 * x5
    x7 = (1.0 / ((x2) * tl.sqrt(x2)))
    x8 = (1.0 / ((x4) * tl.sqrt(x4)))
    x9 = total * sum_rc
    x10 = 0.5 * x0
    value = x0 * x6
    d_total = -x7 * x8 * ((total * total * total * total) * trace + sum_cc * x9 + sum_rr * x9 - 2.0 * (total * total * total) * sum_rc - sum_cc * sum_rr * trace)
    d_trace = total * x6
    d_sum_rc = -x6
    d_sum_rr = x10 * x3 * x8
    d_sum_cc = x10 * x5 * x7
    d_observed_unweighted = tl.zeros_like(total)
    d_observed_linear = tl.zeros_like(total)
    d_observed_quadratic = tl.zeros_like(total)
    d_expected_unweighted = tl.zeros_like(total)
    d_expected_linear = tl.zeros_like(total)
    d_expected_quadratic = tl.zeros_like(total)
    return value, d_total, d_trace, d_sum_rc, d_sum_rr, d_sum_cc, d_observed_unweighted, d_observed_linear, d_observed_quadratic, d_expected_unweighted, d_expected_linear, d_expected_quadratic


class MccMulticlassLoss(MatrixLossBase):
    """mcc_multiclass as a loss; MatrixLossBase documents the inputs and the options."""

    metric_name = "mcc_multiclass"
    defaults = {"task": "multiclass", "approximation": "identity", "direction": "maximize"}
    metric_parameters = {}
    aggregates = ("SUM", "TRACE", "SUM_RC", "SUM_RR", "SUM_CC")
    formula_in_triton = staticmethod(metric_value_and_partials_in_triton)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        return self.compute_loss(preds, target)

    def formula(self, aggregates: Dict[str, Tensor]) -> Tensor:
        return metric_value(aggregates["SUM"], aggregates["TRACE"], aggregates["SUM_RC"], aggregates["SUM_RR"], aggregates["SUM_CC"], self.eps)

    def formula_and_partials(self, aggregates: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        value, d_total, d_trace, d_sum_rc, d_sum_rr, d_sum_cc = metric_value_and_partials(aggregates["SUM"], aggregates["TRACE"], aggregates["SUM_RC"], aggregates["SUM_RR"], aggregates["SUM_CC"], self.eps)
        return value, {"SUM": d_total, "TRACE": d_trace, "SUM_RC": d_sum_rc, "SUM_RR": d_sum_rr, "SUM_CC": d_sum_cc}
