"""Stage 2: the four partial derivatives of a metric with respect to TP, FP, FN and TN."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Tuple

import sympy

from .errors import InvalidMetricError
from .parse import COUNT_NAMES, COUNTS, MAX_NODES, MetricDefinition, expression_size

#: Rational cancellation multiplies out denominators and powers: beyond these it can run for minutes.
CANCEL_LIMIT = 400
CANCEL_DENOMINATORS = 4
CANCEL_POWER = 8


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
    pulled out or fully factored; unchanged where cancelling could take minutes. (Full `sympy.simplify` rarely
    does better here and costs ten times more.)"""
    if not _affordable(expression):
        return expression
    cancelled = sympy.cancel(expression)
    candidates = [expression, sympy.factor_terms(cancelled), sympy.factor(cancelled)]
    return min(candidates, key=lambda candidate: (sympy.count_ops(candidate), sympy.default_sort_key(candidate)))


def _affordable(expression: sympy.Expr) -> bool:
    """Whether cancelling and simplifying stays cheap: few operations, few distinct denominators, small powers."""
    powers = expression.atoms(sympy.Pow)
    denominators = {p.base for p in powers if p.exp.is_negative}
    large = any(p.base.is_Add and p.exp.is_Number and abs(p.exp) > CANCEL_POWER for p in powers)
    return not large and len(denominators) <= CANCEL_DENOMINATORS and sympy.count_ops(expression) <= CANCEL_LIMIT


def derive(definition: MetricDefinition) -> Derivation:
    """Differentiate symbolically; the partials are simplified, the value is kept as written."""
    value = definition.expression
    raw = [sympy.diff(value, count) for count in COUNTS]
    for name, partial in zip(COUNT_NAMES, raw):
        if expression_size(partial)[0] > MAX_NODES:
            raise InvalidMetricError(
                f"the partial derivative with respect to {name} has more than {MAX_NODES} operations "
                "(nested quotients grow fast under differentiation); simplify the formula"
            )
    partials = tuple(tidy(partial) for partial in raw)
    return Derivation(definition, value, partials)


@lru_cache(maxsize=256)
def per_sample_weights(derivation: Derivation) -> Tuple[sympy.Expr, sympy.Expr]:
    """d metric / d a for one positive example (dTP - dFN) and one negative example (dFP - dTN)."""
    d_tp, d_fp, d_fn, d_tn = derivation.partials
    return tidy(d_tp - d_fn), tidy(d_fp - d_tn)
