"""Stage 3: where a formula is undefined (a denominator that can vanish, a root or log argument that can turn
negative or vanish) and the guard the emitted code puts there; the compiler calls it before emitting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import sympy

from .conditions import negative_condition, zero_condition
from .derive import Derivation


class SafeDenominator(sympy.Function):
    """max(x, eps) for an x >= 0 that can reach zero: exact wherever x >= eps."""

    is_positive = True
    is_real = True

    def fdiff(self, argindex=1):
        return sympy.Integer(1)


class SignedDenominator(sympy.Function):
    """x pushed away from zero to +-eps, for a denominator that can take either sign."""

    is_real = True
    is_nonzero = True

    def fdiff(self, argindex=1):
        return sympy.Integer(1)


class ClampAtZero(sympy.Function):
    """max(x, 0), for the argument of a root that could become negative."""

    is_nonnegative = True
    is_real = True

    def fdiff(self, argindex=1):
        return sympy.Heaviside(self.args[0])


GUARDS = (SafeDenominator, SignedDenominator, ClampAtZero)


@dataclass(frozen=True)
class Singularity:
    """One place the formula is undefined, with the guard the emitted code puts there."""

    expression: sympy.Expr
    kind: str  # "denominator", "root", "log"
    guard: str

    def condition(self) -> str:
        """When it happens, in words where the counts allow ("the batch has no positives")."""
        if self.guard == "ClampAtZero":
            return negative_condition(plain(self.expression))
        return zero_condition(plain(self.expression))

    def describe(self, metric: str = "", in_value: bool = True) -> str:
        where = {"denominator": "the denominator", "root": "the root argument", "log": "the log argument"}[self.kind]
        happens = "is negative" if self.guard == "ClampAtZero" else "vanishes"
        guard_text = _GUARD_TEXT[self.guard]
        if metric:
            what = metric if in_value else f"the gradient of {metric}"
            return f"{what} is undefined when {self.condition()} ({where} {sympy.sstr(plain(self.expression))} {happens}); guarded by {guard_text}"
        return f"{where} {sympy.sstr(plain(self.expression))} {happens} ({self.condition()}); guarded by {guard_text}"


_GUARD_TEXT = {
    "SafeDenominator": "max(x, eps)",
    "SignedDenominator": "moving x to +-eps when |x| < eps",
    "ClampAtZero": "max(x, 0)",
}


def plain(expression: sympy.Expr) -> sympy.Expr:
    """The expression with its guards taken off, for display and for reasoning about where it vanishes."""
    return expression.replace(lambda node: isinstance(node, GUARDS), lambda node: node.args[0])


#: Arguments up to this size are compared after expansion, so that one denominator written two ways is one guard.
_CANONICAL_FORM_LIMIT = 200


def guard(expression: sympy.Expr, forms: Optional[Dict[sympy.Expr, sympy.Expr]] = None) -> Tuple[sympy.Expr, List[Singularity]]:
    """Wrap every subexpression that can make the formula undefined, innermost first.

    `forms`, shared across the value and the partials, maps each guarded argument (expanded) to the form first
    met, so `TP*(b + 1) + FP` and `TP*b + TP + FP` become one guard that the emitted code computes once.
    """
    found: Dict[str, Singularity] = {}
    forms = {} if forms is None else forms

    def note(argument: sympy.Expr, kind: str, guard_class) -> sympy.Expr:
        if sympy.count_ops(argument) <= _CANONICAL_FORM_LIMIT:
            argument = forms.setdefault(sympy.expand(argument), argument)
        key = f"{kind}:{sympy.srepr(argument)}"
        found.setdefault(key, Singularity(argument, kind, guard_class.__name__))
        return guard_class(argument)

    def visit(node: sympy.Expr) -> sympy.Expr:
        if not node.args or isinstance(node, GUARDS):
            return node
        args = [visit(arg) for arg in node.args]
        if isinstance(node, sympy.Pow):
            base, exponent = args
            if base.is_positive:
                return sympy.Pow(base, exponent, evaluate=False)
            kind = "denominator" if exponent.is_negative else "root"
            if exponent.is_integer and exponent.is_negative:
                guarded = note(base, kind, SafeDenominator if base.is_nonnegative else SignedDenominator)
            elif exponent.is_integer or (exponent.is_positive and base.is_nonnegative):
                guarded = base
            elif exponent.is_positive:
                guarded = note(base, kind, ClampAtZero)
            else:
                guarded = note(base, kind, SafeDenominator)
            return sympy.Pow(guarded, exponent, evaluate=False)
        if isinstance(node, sympy.log):
            (argument,) = args
            return node.func(argument if argument.is_positive else note(argument, "log", SafeDenominator))
        return node.func(*args)

    return visit(expression), list(found.values())


def guard_together(expressions: Sequence[sympy.Expr]) -> Tuple[List[sympy.Expr], Tuple[Singularity, ...]]:
    """Guard a metric and the expressions computed beside it (its partials, its per-sample weights) with one set
    of forms, so a denominator they share is one guard; the singular points once each, in the order met."""
    forms: Dict[sympy.Expr, sympy.Expr] = {}
    guarded: List[sympy.Expr] = []
    found: Dict[str, Singularity] = {}
    for expression in expressions:
        safe, singularities = guard(expression, forms)
        guarded.append(safe)
        for singularity in singularities:
            found.setdefault(f"{singularity.kind}:{sympy.srepr(singularity.expression)}", singularity)
    return guarded, tuple(found.values())


@dataclass(frozen=True)
class SingularPoint:
    """A singularity of the metric or only of its gradient, with its guard."""

    singularity: Singularity
    in_value: bool

    def describe(self, metric: str = "the metric") -> str:
        return self.singularity.describe(metric, self.in_value)


def singular_points(derivation: Derivation) -> List[SingularPoint]:
    """Where the emitted code guards the metric (first) and its partials, in the order it meets them."""
    forms: Dict[sympy.Expr, sympy.Expr] = {}
    _, in_value = guard(derivation.value, forms)
    points = {f"{s.kind}:{sympy.srepr(s.expression)}": SingularPoint(s, True) for s in in_value}
    for partial in derivation.partials:
        for found in guard(partial, forms)[1]:
            points.setdefault(f"{found.kind}:{sympy.srepr(found.expression)}", SingularPoint(found, False))
    return list(points.values())
