"""What explain reports beyond the guards and the direction: whether a four-count metric is monotone in each
count, the range of values a metric takes, and how many operations the emitted code computes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import sympy

from .derive import Derivation
from .guards import guard
from .language import COUNT_NAMES, COUNTS
from .numeric import _with_defaults, aggregate_values, dense_counts, evaluate

TP = COUNTS[0]

#: What a count does to a metric that is maximised (higher is better).
EXPECTED_TRENDS = {"TP": "non-decreasing", "FP": "non-increasing", "FN": "non-increasing", "TN": "non-decreasing"}


_OPPOSITE = {"non-decreasing": "non-increasing", "non-increasing": "non-decreasing"}


@dataclass(frozen=True)
class CountTrend:
    """How the metric moves as one count grows: the sign of one partial over the valid domain."""

    count: str
    trend: str  # "non-decreasing", "non-increasing", "constant" or "mixed"
    method: str  # "symbolic" (SymPy proved it) or "sampled" (dense sampling found no exception)
    witness: Optional[Dict[str, float]] = None  # a confusion matrix where the partial has the sign against `trend`

    def agrees(self, expected: str) -> bool:
        return self.trend in (expected, "constant")


def symbolic_sign(expression: sympy.Expr) -> Optional[int]:
    """+1 if SymPy proves the expression >= 0 wherever it is defined, -1 if <= 0, else None."""
    if expression.is_nonnegative:
        return 1
    if expression.is_nonpositive:
        return -1
    numerator, denominator = expression.as_numer_denom()
    if not denominator.is_nonnegative:
        return None
    candidates = [numerator]
    if sympy.count_ops(numerator) <= 200:
        candidates.append(sympy.expand(numerator))  # a sum of monomials with one sign is easy to decide
    for candidate in candidates:
        if candidate.is_nonnegative:
            return 1
        if candidate.is_nonpositive:
            return -1
    return None


def count_trend(derivation: Derivation, index: int, values: Optional[Dict[sympy.Symbol, np.ndarray]] = None) -> CountTrend:
    """Decide the sign of one partial symbolically where SymPy can, else by dense sampling (parameters at their defaults)."""
    name, partial = COUNT_NAMES[index], derivation.partials[index]
    if partial == 0:
        return CountTrend(name, "constant", "symbolic")
    sign = symbolic_sign(partial)
    if sign is not None:
        return CountTrend(name, "non-decreasing" if sign > 0 else "non-increasing", "symbolic")
    values = _with_defaults(derivation, values if values is not None else dense_counts())
    gradients = np.stack([np.broadcast_to(evaluate(p, values), values[TP].shape) for p in derivation.partials])
    finite = np.all(np.isfinite(gradients), axis=0)
    scale = np.max(np.abs(gradients), axis=0)
    keep = finite & (scale > 0)
    signed = gradients[index][keep] / scale[keep]
    up, down = signed > 1e-9, signed < -1e-9
    if not up.any() and not down.any():
        return CountTrend(name, "constant", "sampled")
    if not down.any():
        return CountTrend(name, "non-decreasing", "sampled")
    if not up.any():
        return CountTrend(name, "non-increasing", "sampled")
    worst = np.flatnonzero(keep)[np.argmin(signed) if up.sum() >= down.sum() else np.argmax(signed)]
    witness = {count: float(values[symbol][worst]) for count, symbol in zip(COUNT_NAMES, COUNTS)}
    return CountTrend(name, "mixed", "sampled", witness)


@dataclass(frozen=True)
class Monotonicity:
    """Whether the metric only improves with TP and TN and only worsens with FP and FN (as its direction says)."""

    monotone: bool
    direction: Optional[str]
    trends: Tuple[CountTrend, ...]

    def expected(self, count: str) -> str:
        trend = EXPECTED_TRENDS[count]
        return _OPPOSITE[trend] if self.direction == "minimize" else trend

    def describe(self) -> str:
        symbolic = [t.count for t in self.trends if t.method == "symbolic"]
        sampled = [t.count for t in self.trends if t.method == "sampled"]
        if not sampled:
            how = "proved symbolically"
        elif not symbolic:
            how = "by dense sampling"
        else:
            how = f"{', '.join(symbolic)} proved symbolically, {', '.join(sampled)} by dense sampling"
        if self.monotone:
            rises, falls = ("TP or TN", "FP or FN") if self.direction == "maximize" else ("FP or FN", "TP or TN")
            better = "higher" if self.direction == "maximize" else "lower"
            return f"monotone ({better} is better): it never decreases as {rises} grows and never increases as {falls} grows ({how})"
        problems = []
        for trend in self.trends:
            if trend.trend == "mixed":
                at = ", ".join(f"{k}={v:g}" for k, v in (trend.witness or {}).items())
                problems.append(f"it rises and falls with {trend.count} (against the trend at {at})")
            elif self.direction is not None and not trend.agrees(self.expected(trend.count)):
                problems.append(f"it is {trend.trend} in {trend.count} where a {self.direction}d metric should be {self.expected(trend.count)}")
        if self.direction is None and not problems:
            ups = [t.count for t in self.trends if t.trend == "non-decreasing"]
            downs = [t.count for t in self.trends if t.trend == "non-increasing"]
            if ups or downs:
                problems.append(
                    f"it rises with {' and '.join(ups) or 'no count'} and falls with {' and '.join(downs) or 'no count'}, "
                    "so neither maximizing nor minimizing it rewards only correct predictions"
                )
            else:
                problems.append("it does not change with any count")
        return f"NOT monotone: {'; '.join(problems)} ({how})"


def monotonicity(derivation: Derivation, direction: Optional[str]) -> Monotonicity:
    """Check the trend of each count against the direction (maximize: TP, TN up and FP, FN down; minimize: reversed)."""
    values = dense_counts()
    trends = tuple(count_trend(derivation, index, values) for index in range(4))
    if direction is None or all(t.trend == "constant" for t in trends):
        return Monotonicity(False, direction, trends)
    verdict = Monotonicity(True, direction, trends)
    return Monotonicity(all(t.agrees(verdict.expected(t.count)) for t in trends), direction, trends)


@dataclass(frozen=True)
class ValueRange:
    """The values a metric takes: declared in the library, or estimated by sampling (and then said so)."""

    low: float
    high: float
    source: str  # "library" or "sampled"
    samples: int = 0

    def describe(self) -> str:
        interval = f"[{_number_text(self.low)}, {_number_text(self.high)}]"
        if self.source == "library":
            return f"{interval} (from the library)"
        return f"about {interval} (estimated from {self.samples} sampled confusion matrices; the true range may be wider)"


def _number_text(value: float) -> str:
    return "inf" if value == float("inf") else "-inf" if value == float("-inf") else f"{value:.4g}"


def estimate_range(derivation: Derivation) -> ValueRange:
    """The smallest and largest finite values over dense sampling (`range_samples`), parameters at their defaults."""
    values = _with_defaults(derivation, range_samples(derivation))
    size = len(next(iter(values.values())))
    metric = np.broadcast_to(evaluate(derivation.value, values), (size,))
    finite = metric[np.isfinite(metric)]
    if not finite.size:
        return ValueRange(float("nan"), float("nan"), "sampled", 0)
    return ValueRange(float(finite.min()), float(finite.max()), "sampled", int(finite.size))


def range_samples(derivation: Derivation) -> Dict[sympy.Symbol, np.ndarray]:
    """Where a range is sampled, by the form (`_RANGE_SAMPLES`)."""
    return _RANGE_SAMPLES[derivation.form.kind](derivation)


def _matrix_range_samples(derivation: Derivation) -> Dict[sympy.Symbol, np.ndarray]:
    """The aggregates of random 2 x 2 and 4 x 4 matrices over six orders of magnitude, some cells zero, some
    diagonals dominant."""
    rng = np.random.default_rng(0)
    parts = []
    for classes in (2, 4):
        shape = (2000, classes, classes)
        matrices = rng.uniform(0.01, 1.0, size=shape) * 10.0 ** rng.uniform(-2, 4, size=(2000, 1, 1))
        matrices *= rng.uniform(size=shape) > 0.2
        matrices += np.eye(classes) * matrices.sum(2, keepdims=True) * rng.choice([0.0, 1.0, 10.0], size=(2000, 1, 1))
        parts.append(aggregate_values(derivation, matrices))
    return {symbol: np.concatenate([part[symbol] for part in parts]) for symbol in parts[0]}


#: Each form's sampling for `estimate_range`: the four counts' dense grid, the matrix's random matrices.
_RANGE_SAMPLES = {"counts": lambda derivation: dense_counts(), "matrix": _matrix_range_samples}


@dataclass(frozen=True)
class OperationCount:
    """SymPy operation counts of the metric and its four partials, written out and after common-subexpression elimination."""

    before_cse: int
    after_cse: int
    intermediates: int


def operation_counts(derivation: Derivation) -> OperationCount:
    """Count the guarded value and partials as the emitted code computes them, before and after `sympy.cse`."""
    forms: Dict[sympy.Expr, sympy.Expr] = {}
    expressions = [guard(e, forms)[0] for e in (derivation.value, *derivation.partials)]
    replacements, reduced = sympy.cse(expressions, symbols=sympy.numbered_symbols("x"), order="canonical")
    before = sum(sympy.count_ops(e) for e in expressions)
    after = sum(sympy.count_ops(e) for _, e in replacements) + sum(sympy.count_ops(e) for e in reduced)
    return OperationCount(int(before), int(after), len(replacements))
