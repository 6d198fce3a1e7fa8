"""Stage 2: the four partial derivatives of a metric with respect to TP, FP, FN and TN."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Tuple

import sympy

from .parse import COUNT_NAMES, COUNTS, MetricDefinition


@dataclass(frozen=True)
class Derivation:
    """A metric and its gradient with respect to the four counts, in the order TP, FP, FN, TN."""

    definition: MetricDefinition
    value: sympy.Expr
    partials: Tuple[sympy.Expr, sympy.Expr, sympy.Expr, sympy.Expr]

    def partials_by_name(self) -> Dict[str, sympy.Expr]:
        return dict(zip(COUNT_NAMES, self.partials))


def tidy(expression: sympy.Expr) -> sympy.Expr:
    """The shortest of a few equivalent forms: as given, and its cancelled rational form with common factors
    pulled out or fully factored. (Full `sympy.simplify` rarely does better here and costs ten times more.)"""
    cancelled = sympy.cancel(expression)
    candidates = [expression, sympy.factor_terms(cancelled), sympy.factor(cancelled)]
    return min(candidates, key=lambda candidate: (sympy.count_ops(candidate), sympy.default_sort_key(candidate)))


def derive(definition: MetricDefinition) -> Derivation:
    """Differentiate symbolically; the partials are simplified, the value is kept as written."""
    value = definition.expression
    partials = tuple(tidy(sympy.diff(value, count)) for count in COUNTS)
    return Derivation(definition, value, partials)


@lru_cache(maxsize=256)
def per_sample_weights(derivation: Derivation) -> Tuple[sympy.Expr, sympy.Expr]:
    """d metric / d a for one positive example (dTP - dFN) and one negative example (dFP - dTN)."""
    d_tp, d_fp, d_fn, d_tn = derivation.partials
    return tidy(d_tp - d_fn), tidy(d_fp - d_tn)
