"""Stage 2: a metric's partial derivatives by the variables of its form (the four counts, or the matrix
aggregates it reads), simplified; the value is kept as written."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Tuple

import sympy

from .errors import InvalidMetricError
from .language import MAX_NODES, Form, MetricDefinition, Variable, expression_size

#: Rational cancellation multiplies out denominators and powers: beyond these it can run for minutes.
CANCEL_LIMIT = 400
CANCEL_DENOMINATORS = 4
CANCEL_POWER = 8


@dataclass(frozen=True)
class Derivation:
    """A metric and its partials by the variables of its form it is differentiated by (`variables`): for the
    counts always TP, FP, FN, TN in that order, for the matrix the aggregates it reads."""

    definition: MetricDefinition
    value: sympy.Expr
    variables: Tuple[Variable, ...]
    partials: Tuple[sympy.Expr, ...]

    @property
    def form(self) -> Form:
        return self.definition.form

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    def partials_by_name(self) -> Dict[str, sympy.Expr]:
        return dict(zip(self.names, self.partials))

    def cell_gradient_text(self) -> str:
        """A matrix metric's G[i, j] = d metric / d M[i, j], as a sum over the aggregates it reads."""
        terms = []
        for variable in self.variables:
            factor, partial = variable.cell_gradient, f"d{variable.name}"
            terms.append(partial if factor == "1" else f"{partial} * ({factor})" if " " in factor else f"{partial} * {factor}")
        return " + ".join(terms)


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


@lru_cache(maxsize=256)
def derive(definition: MetricDefinition) -> Derivation:
    """Differentiate symbolically by each variable the form asks for; the partials are simplified."""
    value = definition.expression
    variables = definition.form.read_by(value)
    raw = [sympy.diff(value, variable.symbol) for variable in variables]
    for variable, partial in zip(variables, raw):
        if expression_size(partial)[0] > MAX_NODES:
            raise InvalidMetricError(
                f"the partial derivative with respect to {variable.name} has more than {MAX_NODES} operations "
                "(nested quotients grow fast under differentiation); simplify the formula"
            )
    return Derivation(definition, value, variables, tuple(tidy(partial) for partial in raw))


@lru_cache(maxsize=256)
def per_sample_weights(derivation: Derivation) -> Tuple[sympy.Expr, sympy.Expr]:
    """A four-count metric's d metric / d a for one positive example (dTP - dFN) and one negative (dFP - dTN)."""
    d_tp, d_fp, d_fn, d_tn = derivation.partials
    return tidy(d_tp - d_fn), tidy(d_fp - d_tn)
