"""Stage 3: where a formula is singular, which guards the emitted code needs, and which way to optimise it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import sympy

from .derive import Derivation
from .errors import DirectionError
from .language import COUNT_NAMES, COUNTS, MATRIX_NAMES, MATRIX_SYMBOLS


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
            return negative_condition(self.expression)
        return zero_condition(self.expression)

    def describe(self, metric: str = "", in_value: bool = True) -> str:
        where = {"denominator": "the denominator", "root": "the root argument", "log": "the log argument"}[self.kind]
        happens = "is negative" if self.guard == "ClampAtZero" else "vanishes"
        guard_text = _GUARD_TEXT[self.guard]
        if metric:
            what = metric if in_value else f"the gradient of {metric}"
            return f"{what} is undefined when {self.condition()} ({where} {sympy.sstr(plain(self.expression))} {happens}); guarded by {guard_text}"
        return f"{where} {sympy.sstr(plain(self.expression))} {happens} ({self.condition()}); guarded by {guard_text}"


TP, FP, FN, TN = COUNTS
#: Sets of counts that are all zero, in the words of the confusion-matrix literature.
_ZERO_SETS = {
    frozenset({"TP", "FN"}): "the batch has no positives",
    frozenset({"FP", "TN"}): "the batch has no negatives",
    frozenset({"TP", "FP"}): "nothing is predicted positive",
    frozenset({"FN", "TN"}): "nothing is predicted negative",
    frozenset({"TP", "FP", "FN", "TN"}): "the batch is empty",
    frozenset({"TP", "FP", "FN"}): "there are no positives and nothing is predicted positive",
    frozenset({"FP", "FN", "TN"}): "there are no negatives and nothing is predicted negative",
    frozenset({"TP", "FN", "TN"}): "every sample is a false positive",
    frozenset({"TP", "FP", "TN"}): "every sample is a false negative",
    frozenset({"FP", "FN"}): "every prediction is right (no false positives or false negatives)",
    frozenset({"TP", "TN"}): "every prediction is wrong (no true positives or true negatives)",
    frozenset({"TP"}): "there are no true positives",
    frozenset({"FP"}): "there are no false positives",
    frozenset({"FN"}): "there are no false negatives",
    frozenset({"TN"}): "there are no true negatives",
}
_GUARD_TEXT = {
    "SafeDenominator": "max(x, eps)",
    "SignedDenominator": "moving x to +-eps when |x| < eps",
    "ClampAtZero": "max(x, 0)",
}


def plain(expression: sympy.Expr) -> sympy.Expr:
    """The expression with its guards taken off, for display and for reasoning about where it vanishes."""
    return expression.replace(lambda node: isinstance(node, GUARDS), lambda node: node.args[0])


_ZERO_SYMBOLS = {count: sympy.Symbol(f"{name}_is_zero") for count, name in zip(COUNTS, COUNT_NAMES)}
_ZERO_NAMES = {symbol: name for symbol, name in zip(_ZERO_SYMBOLS.values(), COUNT_NAMES)}


def _zero(expression: sympy.Expr):
    """A boolean over "count = 0" symbols that says when a nonnegative expression vanishes; None if unsure."""
    if expression in _ZERO_SYMBOLS:
        return _ZERO_SYMBOLS[expression]
    if not expression.free_symbols & set(COUNTS):
        return sympy.false if expression.is_nonzero else None
    if expression.is_Pow:
        if expression.exp.is_positive:
            return _zero(expression.base)
        return sympy.false if expression.exp.is_negative else None
    if expression.is_Add and not all(_nonnegative(term) for term in expression.args):
        return None
    if isinstance(expression, (sympy.Mul, sympy.Add, sympy.Min, sympy.Max)):
        parts = [_zero(arg) for arg in expression.args]
        if any(part is None for part in parts):
            return None
        return sympy.Or(*parts) if isinstance(expression, (sympy.Mul, sympy.Min)) else sympy.And(*parts)
    return None


def _nonnegative(term: sympy.Expr) -> bool:
    """Nonnegative wherever defined (a ratio of nonnegative parts counts, though it is undefined at 0/0)."""
    if term.is_nonnegative:
        return True
    numerator, denominator = term.as_numer_denom()
    return bool(numerator.is_nonnegative and denominator.is_nonnegative)


def _words(condition) -> str:
    """A simplified boolean over "count = 0" symbols, in words."""
    names = _ZERO_NAMES
    if condition is sympy.false:
        return "never, for nonnegative counts"
    if condition in names:
        return _names_zero([names[condition]])
    if isinstance(condition, sympy.Or):
        return " or ".join(sorted(_words(arg) for arg in condition.args))
    literals = [names[arg] for arg in condition.args if arg in names]
    rest = sorted(f"({_words(arg)})" for arg in condition.args if arg not in names)
    return " and ".join(([_names_zero(literals)] if literals else []) + rest)


def _simplest(condition):
    """The disjunctive form when each of its terms has a name ("nothing is predicted positive or ..."), else
    whichever form SymPy finds shortest."""
    names = _ZERO_NAMES
    disjunction = sympy.simplify_logic(condition, form="dnf")
    terms = [sympy.And.make_args(term) for term in sympy.Or.make_args(disjunction)]
    if all(all(t in names for t in term) and frozenset(names[t] for t in term) in _ZERO_SETS for term in terms):
        return disjunction
    return sympy.simplify_logic(condition)


def _names_zero(names) -> str:
    names = sorted(set(names), key=COUNT_NAMES.index)
    return _ZERO_SETS.get(frozenset(names)) or " = ".join(names) + " = 0"


def _sides(expression: sympy.Expr) -> Tuple[str, str]:
    positive = [t for t in sympy.Add.make_args(expression) if not t.could_extract_minus_sign()]
    negative = [-t for t in sympy.Add.make_args(expression) if t.could_extract_minus_sign()]
    return sympy.sstr(sympy.Add(*positive)), sympy.sstr(sympy.Add(*negative))


def _factors(expression: sympy.Expr) -> List[sympy.Expr]:
    """The polynomial factors of small expressions (the expression itself when it is not a polynomial)."""
    if sympy.count_ops(expression) > 200:
        return [expression]
    try:
        return [factor for factor, _ in sympy.factor_list(expression)[1] if factor.free_symbols & set(COUNTS)]
    except sympy.PolynomialError:
        return [expression]


@lru_cache(maxsize=1)
def _matrix_zero_words() -> Dict[sympy.Expr, str]:
    """When the usual denominators of matrix metrics vanish, in words."""
    symbol = dict(zip(MATRIX_NAMES, MATRIX_SYMBOLS))
    total = symbol["SUM"]
    words = {
        total: "the batch is empty",
        total**2 - symbol["SUM_CC"]: "every sample is predicted to be of one class",
        total**2 - symbol["SUM_RR"]: "every sample is of one true class",
        total**2 - symbol["SUM_RC"]: "every sample is of one class and predicted to be of it",
    }
    for weighting in ("UNWEIGHTED", "LINEAR", "QUADRATIC"):
        words[symbol[f"EXPECTED_{weighting}"]] = "every sample is of one class and predicted to be of it"
    return words


def zero_condition(expression: sympy.Expr) -> str:
    """When an expression over the counts is zero: in words where it is a nonnegative combination of counts
    ("the batch has no positives"), else as an equation ("TP*TN = FN*FP")."""
    expression = plain(expression)
    matrix_words = _matrix_zero_words().get(sympy.expand(expression))
    if matrix_words is not None:
        return matrix_words
    condition = _zero(expression)
    if condition is not None:
        return _words(_simplest(condition))
    parts = []
    for factor in _factors(expression):
        condition = _zero(factor)
        if condition is not None:
            parts.append(_words(_simplest(condition)))
        else:
            left, right = _sides(factor)
            parts.append(f"{left} = {right}")
    return " or ".join(dict.fromkeys(parts)) or f"{sympy.sstr(expression)} = 0"


def negative_condition(expression: sympy.Expr) -> str:
    """When an expression over the counts is negative, as an inequality."""
    left, right = _sides(plain(expression))
    return f"{right} > {left}"


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


# Numeric evaluation of SymPy trees (no lambdify: it execs generated source).

_FUNCTIONS: Dict[type, Callable] = {
    sympy.exp: np.exp,
    sympy.log: np.log,
    sympy.Abs: np.abs,
    sympy.sign: np.sign,
    sympy.Heaviside: lambda x, at_zero=0.5: np.heaviside(x, at_zero),
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


def decide_direction(derivation: Derivation) -> DirectionVerdict:
    """Maximise when making any one prediction more correct raises the metric, minimise when it lowers it, at
    sampled confusion matrices (the form's `_DIRECTION_EVIDENCE`); with parameters, at their defaults and again
    spread over their domains, since a compiled loss keeps one direction whatever values it is given."""
    evidence = _DIRECTION_EVIDENCE[derivation.form.kind]
    parameters = derivation.definition.parameters
    at_defaults = evidence(derivation, default_values(parameters))
    if at_defaults.direction is None or not parameters:
        return at_defaults
    spread = evidence(derivation, parameter_samples(parameters, DIRECTION_SAMPLES[derivation.form.kind]))
    if spread.direction == at_defaults.direction:
        return at_defaults
    return DirectionVerdict(None, changes_with_parameters(at_defaults.direction, parameters))


def default_values(parameters) -> Dict[sympy.Symbol, np.ndarray]:
    """Each parameter at its default."""
    return {p.symbol: np.float64(p.default) for p in parameters}


def parameter_samples(parameters, samples: int, seed: int = 1) -> Dict[sympy.Symbol, np.ndarray]:
    """Each parameter, per sample, at its default or at points spread over its domain (interior points, closed ends,
    and for an unbounded side steps of 1e-3 to 1e3): the values a constructor accepts, for checks that must hold
    at all of them (the direction a compiled loss keeps whatever value it is given)."""
    rng = np.random.default_rng(seed)
    return {p.symbol: rng.choice(np.array(domain_points(p)), size=samples) for p in parameters}


def domain_points(parameter) -> List[float]:
    """The default and points spread over the parameter's domain."""
    lower, upper = parameter.lower, parameter.upper
    steps = (1e-3, 0.1, 1.0, 10.0, 1e3)
    if math.isfinite(lower) and math.isfinite(upper):
        points = [lower + (upper - lower) * t for t in (1e-3, 0.25, 0.5, 0.75, 1 - 1e-3)] + [lower, upper]
    elif math.isfinite(lower):
        points = [lower] + [lower + step for step in steps]
    elif math.isfinite(upper):
        points = [upper] + [upper - step for step in steps]
    else:
        points = [0.0] + [sign * step for step in steps for sign in (1.0, -1.0)]
    return [float(parameter.default)] + [x for x in points if parameter.contains(x)]


def changes_with_parameters(direction: str, parameters) -> str:
    """Why a direction found at the parameters' defaults cannot be kept for every value the loss accepts."""
    domains = ", ".join(f"{p.name} in {p.domain_text()}" for p in parameters)
    return (
        f"at the parameters' defaults it is to {direction}, but elsewhere in their domains ({domains}) the "
        "per-sample weights change sign, and a compiled loss keeps one direction whatever parameter values it is "
        "given: narrow the domain (param NAME = DEFAULT in (LOW, HIGH)) to where it holds"
    )


def _direction_of_weights(derivation: Derivation, parameters: Dict[sympy.Symbol, np.ndarray]) -> DirectionVerdict:
    """The four counts' evidence: a prediction a_i moving towards its label changes the metric by dTP - dFN for a
    positive example and by dTN - dFP for a negative one, exactly the per-sample weights the backward pass uses."""
    samples = DIRECTION_SAMPLES["counts"]
    values = {**sample_counts(samples), **parameters}
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


def _direction_of_corrections(derivation: Derivation, parameters: Dict[sympy.Symbol, np.ndarray]) -> DirectionVerdict:
    """The matrix's evidence: G[i, i] - G[i, j], the change of the metric as a sample moves from a wrong predicted
    class j to its true class i, at sampled matrices."""
    gains = correction_gains(derivation, parameters)
    signs = set(np.sign(gains).tolist()) - {0.0}
    if len(signs) == 1:
        return DirectionVerdict("maximize" if signs.pop() > 0 else "minimize")
    if not signs:
        return DirectionVerdict(None, "no prediction changes the metric")
    return DirectionVerdict(None, "moving a sample to its true class raises it for some confusion matrices and lowers it for others")


def sample_matrices(samples: int, classes: int = 4, seed: int = 0) -> np.ndarray:
    """(samples, C, C) confusion matrices with a dominant diagonal, over three orders of magnitude."""
    rng = np.random.default_rng(seed)
    matrices = rng.uniform(0.1, 1.0, size=(samples, classes, classes)) * 10.0 ** rng.uniform(0, 3, size=(samples, 1, 1))
    matrices += np.eye(classes) * matrices.sum(2, keepdims=True) * rng.uniform(0.5, 2, size=(samples, 1, 1))
    return matrices


def aggregate_values(derivation: Derivation, matrices: np.ndarray) -> Dict[sympy.Symbol, np.ndarray]:
    """The aggregates the metric reads, of each matrix, keyed by symbol: computed by the runtime (float64), whose
    table is the one definition of them."""
    import torch

    from .runtime.matrix import matrix_aggregates

    found = matrix_aggregates(torch.from_numpy(matrices), list(derivation.names))
    return {variable.symbol: found[variable.name].numpy() for variable in derivation.variables}


def cell_gradient(derivation: Derivation, matrices: np.ndarray, values: Dict[sympy.Symbol, np.ndarray]) -> np.ndarray:
    """G = d metric / d M of each matrix, (samples, C, C): the partials evaluated at `values` (the matrices'
    aggregates and the parameters), combined by the runtime's d aggregate / d M."""
    import torch

    from .runtime.matrix import matrix_gradient

    samples = matrices.shape[0]
    partials = {
        name: torch.from_numpy(np.array(np.broadcast_to(evaluate(partial, values), (samples,)), dtype=np.float64))
        for name, partial in derivation.partials_by_name().items()
    }
    return matrix_gradient(torch.from_numpy(matrices), partials).numpy()


def correction_gains(derivation: Derivation, parameters: Dict[sympy.Symbol, np.ndarray]) -> np.ndarray:
    """G[i, i] - G[i, j] averaged over i != j, per sampled matrix."""
    matrices = sample_matrices(DIRECTION_SAMPLES["matrix"])
    gradient = cell_gradient(derivation, matrices, {**aggregate_values(derivation, matrices), **parameters})
    classes = matrices.shape[1]
    diagonal = np.einsum("sii->si", gradient)
    off = ~np.eye(classes, dtype=bool)
    return (diagonal[:, :, None] - gradient)[:, off].mean(1)


#: How many confusion matrices each form's direction is sampled at, and how.
DIRECTION_SAMPLES = {"counts": 2000, "matrix": 200}
_DIRECTION_EVIDENCE = {"counts": _direction_of_weights, "matrix": _direction_of_corrections}


def resolve_direction(derivation: Derivation, requested: str, declared: Optional[str] = None) -> str:
    """The direction to use: an explicit request, else a library declaration, else the sampled evidence."""
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


def dense_counts(samples: int = 4000, seed: int = 0) -> Dict[sympy.Symbol, np.ndarray]:
    """Every confusion matrix with counts 0..5, and random ones spread over six orders of magnitude, some with
    zeros: the points where sampled verdicts are checked."""
    grid = np.stack(np.meshgrid(*[np.arange(6.0)] * 4, indexing="ij"), axis=-1).reshape(-1, 4)
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.01, 1.0, size=(samples, 4)) * 10.0 ** rng.uniform(-2, 4, size=(samples, 1))
    spread *= rng.uniform(size=(samples, 4)) > 0.1
    return dict(zip(COUNTS, np.concatenate([grid, spread]).T))


def _with_defaults(derivation: Derivation, values: Dict[sympy.Symbol, np.ndarray]) -> Dict[sympy.Symbol, np.ndarray]:
    values = dict(values)
    values.update({p.symbol: np.float64(p.default) for p in derivation.definition.parameters})
    return values


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
    """Where a range is sampled: `dense_counts` for the four counts; for the matrix, the aggregates of random
    2 x 2 and 4 x 4 matrices over six orders of magnitude, some cells zero, some diagonals dominant."""
    if derivation.form.kind == "counts":
        return dense_counts()
    rng = np.random.default_rng(0)
    parts = []
    for classes in (2, 4):
        shape = (2000, classes, classes)
        matrices = rng.uniform(0.01, 1.0, size=shape) * 10.0 ** rng.uniform(-2, 4, size=(2000, 1, 1))
        matrices *= rng.uniform(size=shape) > 0.2
        matrices += np.eye(classes) * matrices.sum(2, keepdims=True) * rng.choice([0.0, 1.0, 10.0], size=(2000, 1, 1))
        parts.append(aggregate_values(derivation, matrices))
    return {symbol: np.concatenate([part[symbol] for part in parts]) for symbol in parts[0]}


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
