"""Stage 3: where a formula is singular, which guards the emitted code needs, and which way to optimise it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import sympy

from .derive import Derivation
from .errors import DirectionError
from .parse import COUNT_NAMES, COUNTS


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

    def describe(self) -> str:
        where = {"denominator": "the denominator", "root": "the root argument", "log": "the log argument"}[self.kind]
        condition = "is negative" if self.guard == "ClampAtZero" else "vanishes"
        meaning = _MEANINGS.get(sympy.srepr(self.expression))
        said = f" ({meaning})" if meaning else ""
        return f"{where} {sympy.sstr(self.expression)} {condition}{said}; guarded by {_GUARD_TEXT[self.guard]}"


TP, FP, FN, TN = COUNTS
_MEANINGS = {
    sympy.srepr(TP + FN): "the batch has no positives",
    sympy.srepr(FP + TN): "the batch has no negatives",
    sympy.srepr(TP + FP): "nothing is predicted positive",
    sympy.srepr(FN + TN): "nothing is predicted negative",
    sympy.srepr(TP + FP + FN + TN): "the batch is empty",
    sympy.srepr(TP + FP + FN): "there are no positives and nothing is predicted positive",
    sympy.srepr(2 * TP + FP + FN): "there are no positives and nothing is predicted positive",
}
_GUARD_TEXT = {
    "SafeDenominator": "max(x, eps)",
    "SignedDenominator": "moving x to +-eps when |x| < eps",
    "ClampAtZero": "max(x, 0)",
}


def guard(expression: sympy.Expr) -> Tuple[sympy.Expr, List[Singularity]]:
    """Wrap every subexpression that can make the formula undefined, innermost first."""
    found: Dict[str, Singularity] = {}

    def note(argument: sympy.Expr, kind: str, guard_class) -> sympy.Expr:
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


# Numeric evaluation of SymPy trees (no lambdify: it execs generated source).

_FUNCTIONS: Dict[type, Callable] = {
    sympy.exp: np.exp,
    sympy.log: np.log,
    sympy.Abs: np.abs,
    sympy.sign: np.sign,
    sympy.Heaviside: lambda x: np.heaviside(x, 0.5),
    SafeDenominator: lambda x: np.maximum(x, 1e-12),
    SignedDenominator: lambda x: np.where(np.abs(x) < 1e-12, np.where(x < 0, -1e-12, 1e-12), x),
    ClampAtZero: lambda x: np.maximum(x, 0.0),
}


def evaluate(expression: sympy.Expr, values: Dict[sympy.Symbol, np.ndarray]) -> np.ndarray:
    """Evaluate over numpy arrays, one node type at a time; unknown node types raise TypeError."""
    if expression.is_Symbol:
        return values[expression]
    if expression.is_Number or expression.is_NumberSymbol:
        return np.float64(expression)
    args = [evaluate(arg, values) for arg in expression.args]
    with np.errstate(all="ignore"):
        if expression.is_Add:
            return sum(args[1:], args[0])
        if expression.is_Mul:
            result = args[0]
            for arg in args[1:]:
                result = result * arg
            return result
        if expression.is_Pow:
            return np.power(np.asarray(args[0], dtype=np.float64), args[1])
        if isinstance(expression, (sympy.Min, sympy.Max)):
            reduce = np.minimum if isinstance(expression, sympy.Min) else np.maximum
            result = args[0]
            for arg in args[1:]:
                result = reduce(result, arg)
            return result
        function = _FUNCTIONS.get(expression.func)
        if function is None:
            raise TypeError(f"cannot evaluate {type(expression).__name__} numerically")
        return function(*args)


def sample_counts(samples: int = 2000, seed: int = 0) -> Dict[sympy.Symbol, np.ndarray]:
    """Confusion matrices spread over several orders of magnitude, all counts positive."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-1, 4, size=(samples, 1))
    counts = rng.uniform(0.05, 1.0, size=(samples, 4)) * scale
    return dict(zip(COUNTS, counts.T))


@dataclass(frozen=True)
class DirectionVerdict:
    """Whether the metric should be maximised, minimised or neither, and the evidence when neither."""

    direction: Optional[str]
    reason: str = ""


def decide_direction(derivation: Derivation, samples: int = 2000) -> DirectionVerdict:
    """Maximise when making any one prediction more correct raises the metric, minimise when it lowers it.

    A prediction a_i moving towards its label changes the metric by dTP - dFN for a positive example and by
    dTN - dFP for a negative one: exactly the per-sample weights the backward pass uses. Their signs, at
    confusion matrices sampled over several orders of magnitude, decide the direction.
    """
    values = sample_counts(samples)
    values.update({p.symbol: np.float64(p.default) for p in derivation.definition.parameters})
    d_tp, d_fp, d_fn, d_tn = (np.broadcast_to(evaluate(partial, values), (samples,)) for partial in derivation.partials)
    weights = {"a positive example (dTP - dFN)": d_tp - d_fn, "a negative example (dTN - dFP)": d_tn - d_fp}
    signs = {}
    for label, weight in weights.items():
        finite = weight[np.isfinite(weight)]
        tolerance = 1e-9 * max(float(np.max(np.abs(finite), initial=0.0)), 1e-300)
        signs[label] = (bool(np.any(finite > tolerance)), bool(np.any(finite < -tolerance)))
    rises = any(up for up, _ in signs.values())
    falls = any(down for _, down in signs.values())
    if rises and not falls:
        return DirectionVerdict("maximize")
    if falls and not rises:
        return DirectionVerdict("minimize")
    if not rises and not falls:
        return DirectionVerdict(None, "no prediction changes the metric")
    mixed = [label for label, (up, down) in signs.items() if up and down]
    if mixed:
        return DirectionVerdict(None, f"the metric's response to {' and to '.join(mixed)} becoming more correct changes sign")
    return DirectionVerdict(None, "a positive example becoming more correct moves the metric one way and a negative example the other")


def resolve_direction(derivation: Derivation, requested: str, declared: Optional[str] = None) -> str:
    """The direction to use: an explicit request, else a library declaration, else the signs of the partials."""
    if requested != "auto":
        return requested
    if declared is not None:
        return declared
    verdict = decide_direction(derivation)
    if verdict.direction is None:
        raise DirectionError(
            f"cannot tell whether to maximize or minimize {sympy.sstr(derivation.value)}: {verdict.reason}; "
            "pass direction='maximize' or direction='minimize' (CLI: --direction)"
        )
    return verdict.direction
