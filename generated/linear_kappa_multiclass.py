"""LinearKappaMulticlassLoss: linear_kappa_multiclass as a loss, compiled by metricc 0.5.0.

Metric of the whole C x C soft confusion matrix M[i, j] = sum_n y[n, i] a[n, j] (true class i, predicted
class j; row sums r, column sums c), maximized; the loss is 1 - linear_kappa_multiclass:

    linear_kappa_multiclass = 1 - OBSERVED_LINEAR*SUM/EXPECTED_LINEAR

Aggregates:

    SUM: all samples, the sum of M
    OBSERVED_LINEAR: sum_ij W_ij M_ij with W_ij = |i - j| / (C - 1)
    EXPECTED_LINEAR: sum_ij W_ij r_i c_j with W_ij = |i - j| / (C - 1)

Partial derivatives:

    dSUM = d linear_kappa_multiclass / d SUM = -OBSERVED_LINEAR/EXPECTED_LINEAR
    dOBSERVED_LINEAR = d linear_kappa_multiclass / d OBSERVED_LINEAR = -SUM/EXPECTED_LINEAR
    dEXPECTED_LINEAR = d linear_kappa_multiclass / d EXPECTED_LINEAR =
        OBSERVED_LINEAR*SUM/EXPECTED_LINEAR**2

Gradient with respect to the matrix (the backward pass uses it, not autograd through the formula):

    G[i, j] = d linear_kappa_multiclass / d M[i, j] = dSUM + dOBSERVED_LINEAR * WL_ij +
        dEXPECTED_LINEAR * ((WL c)_i + (WL^T r)_j)
    and the weight of a[n, j] is G[label of n, j].

Metric parameters:
    none

Singular points and their guards (eps = 1e-07 by default):
    - the denominator EXPECTED_LINEAR vanishes (every sample is of one class and predicted to be of
        it); guarded by max(x, eps)

This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula.
It is generated: edit the metric, not this file.
"""

from typing import Dict, Tuple

import torch
from torch import Tensor

from metricc.runtime import require_runtime

require_runtime(2, "0.5.0")

from metricc.runtime.loss import MatrixLossBase  # noqa: E402


def metric_value(total: Tensor, observed_linear: Tensor, expected_linear: Tensor, eps: float) -> Tensor:
    """The soft metric from the aggregates of the soft confusion matrix."""
    value = 1.0 - observed_linear * total / torch.clamp(expected_linear, min=eps)
    return value


def metric_value_and_partials(total: Tensor, observed_linear: Tensor, expected_linear: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The metric and its partial derivative by each aggregate, sharing subexpressions."""
    x0 = torch.clamp(expected_linear, min=eps)
    x1 = torch.reciprocal(x0)
    x2 = observed_linear * x1
    value = 1.0 - total * x2
    d_total = -x2
    d_observed_linear = -total * x1
    d_expected_linear = observed_linear * total / torch.square(x0)
    return value, d_total, d_observed_linear, d_expected_linear


def metric_value_and_partials_in_triton(total, trace, sum_rc, sum_rr, sum_cc, observed_unweighted, observed_linear, observed_quadratic, expected_unweighted, expected_linear, expected_quadratic, eps, parameters):
    """metric_value_and_partials in Triton's language, of every aggregate, for the GPU path's one loss launch."""
    x0 = tl.maximum(expected_linear, eps)
    x1 = (1.0 / (x0))
    x2 = observed_linear * x1
    value = 1.0 - total * x2
    d_total = -x2
    d_trace = tl.zeros_like(total)
    d_sum_rc = tl.zeros_like(total)
    d_sum_rr = tl.zeros_like(total)
    d_sum_cc = tl.zeros_like(total)
    d_observed_unweighted = tl.zeros_like(total)
    d_observed_linear = -total * x1
    d_observed_quadratic = tl.zeros_like(total)
    d_expected_unweighted = tl.zeros_like(total)
    d_expected_linear = observed_linear * total / (x0 * x0)
    d_expected_quadratic = tl.zeros_like(total)
    return value, d_total, d_trace, d_sum_rc, d_sum_rr, d_sum_cc, d_observed_unweighted, d_observed_linear, d_observed_quadratic, d_expected_unweighted, d_expected_linear, d_expected_quadratic


class LinearKappaMulticlassLoss(MatrixLossBase):
    """linear_kappa_multiclass as a loss; MatrixLossBase documents the inputs and the options."""

    metric_name = "linear_kappa_multiclass"
    defaults = {"task": "multiclass", "approximation": "identity", "direction": "maximize"}
    metric_parameters = {}
    aggregates = ("SUM", "OBSERVED_LINEAR", "EXPECTED_LINEAR")
    formula_in_triton = staticmethod(metric_value_and_partials_in_triton)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        return self.compute_loss(preds, target)

    def formula(self, aggregates: Dict[str, Tensor]) -> Tensor:
        return metric_value(aggregates["SUM"], aggregates["OBSERVED_LINEAR"], aggregates["EXPECTED_LINEAR"], self.eps)

    def formula_and_partials(self, aggregates: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        value, d_total, d_observed_linear, d_expected_linear = metric_value_and_partials(aggregates["SUM"], aggregates["OBSERVED_LINEAR"], aggregates["EXPECTED_LINEAR"], self.eps)
        return value, {"SUM": d_total, "OBSERVED_LINEAR": d_observed_linear, "EXPECTED_LINEAR": d_expected_linear}
