"""The language's vocabulary and data model: the variables a metric is written over, grouped into forms, the
functions and totals it may use, and a parsed metric with its parameters.

A *form* is what a metric's formula reads: the four counts of one class (TP, FP, FN, TN), or the aggregates of
the whole C x C confusion matrix. Every later stage (derive, guards, explain, emit) takes the form from the
derivation and asks it what differs; a new form is one more `Form` here, one base class in the runtime and its
entry in each per-form table (docs/architecture.md, "Adding a form").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, Optional, Tuple

import sympy

from .errors import ParameterError
from .runtime.options import domain_text

MAX_SOURCE_CHARS = 100_000
MAX_NESTING = 100
MAX_NODES = 20_000
MAX_EXPONENT_DIGITS = 3
#: Constants (written or computed) must stay well inside the float64 range.
MAX_CONSTANT_DIGITS = 300


@dataclass(frozen=True)
class Variable:
    """One name a formula reads: its symbol, its meaning, and its Python name in emitted code. An aggregate of
    the confusion matrix also says what it is for two classes and how it changes with each cell."""

    name: str
    symbol: sympy.Symbol
    meaning: str
    code_name: str
    two_class: Optional[sympy.Expr] = None  # over TP, FP, FN, TN: the 2 x 2 matrix is [[TN, FP], [FN, TP]]
    cell_gradient: str = ""  # d variable / d M[i, j], in the docstrings' notation


def _variable(name: str, meaning: str, code_name: str = "", two_class: Optional[sympy.Expr] = None, cell_gradient: str = "") -> Variable:
    return Variable(name, sympy.Symbol(name, nonnegative=True), meaning, code_name or name.lower(), two_class, cell_gradient)


_COUNT_VARIABLES = (
    _variable("TP", "true positives, sum a y"),
    _variable("FP", "false positives, sum a (1 - y)"),
    _variable("FN", "false negatives, sum (1 - a) y"),
    _variable("TN", "true negatives, sum (1 - a)(1 - y)"),
)
TP, FP, FN, TN = COUNTS = tuple(v.symbol for v in _COUNT_VARIABLES)
COUNT_NAMES = tuple(v.name for v in _COUNT_VARIABLES)

#: Every weighting of a weighted kappa: W is 1 - delta, |i - j| / (C - 1) or (i - j)^2 / (C - 1)^2; with two
#: classes each is 1 - delta, so every observed (expected) disagreement is FP + FN (r_0 c_1 + r_1 c_0).
WEIGHTINGS = {
    "UNWEIGHTED": ("WU", "W = 1 - delta"),
    "LINEAR": ("WL", "W_ij = |i - j| / (C - 1)"),
    "QUADRATIC": ("WQ", "W_ij = (i - j)^2 / (C - 1)^2"),
}
_EXPECTED_TWO_CLASSES = (FP + TN) * (TP + FP) + (TP + FN) * (FN + TN)

#: The aggregates of the whole C x C soft confusion matrix M[i, j] (true class i, predicted class j), with row
#: sums r (true counts) and column sums c (predicted counts): one row each, the one description of them the
#: compiler has (the runtime computes each one's value and d / dM side by side, runtime/matrix.py).
_MATRIX_VARIABLES = (
    _variable("SUM", "all samples, the sum of M", "total", TP + FP + FN + TN, "1"),
    _variable("TRACE", "correctly classified samples, the trace of M", "", TP + TN, "delta_ij"),
    _variable(
        "SUM_RC", "the sum over classes of true count times predicted count, sum_k r_k c_k", "",
        (FP + TN) * (FN + TN) + (TP + FN) * (TP + FP), "c_i + r_j",
    ),
    _variable("SUM_RR", "the sum of squared true counts, sum_k r_k^2", "", (FP + TN) ** 2 + (TP + FN) ** 2, "2 r_i"),
    _variable("SUM_CC", "the sum of squared predicted counts, sum_k c_k^2", "", (FN + TN) ** 2 + (TP + FP) ** 2, "2 c_j"),
    *(
        _variable(
            f"OBSERVED_{weighting}",
            ("misclassified samples, sum_ij W_ij M_ij with " if weighting == "UNWEIGHTED" else "sum_ij W_ij M_ij with ") + text,
            "", FP + FN, f"{short}_ij",
        )
        for weighting, (short, text) in WEIGHTINGS.items()
    ),
    *(
        _variable(f"EXPECTED_{weighting}", f"sum_ij W_ij r_i c_j with {text}", "", _EXPECTED_TWO_CLASSES, f"({short} c)_i + ({short}^T r)_j")
        for weighting, (short, text) in WEIGHTINGS.items()
    ),
)


@dataclass(frozen=True)
class Form:
    """What a metric is written over, and what differs in its loss: the runtime base class it compiles to, and
    whether the partials of every variable or only of those the formula reads are derived."""

    kind: str  # "counts" or "matrix"
    variables: Tuple[Variable, ...]
    base_class: str
    every_partial: bool  # counts: the four partials always (the per-sample weights need them)
    described: str  # what its variables are, in an error that mixes forms

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    @property
    def symbols(self) -> Tuple[sympy.Symbol, ...]:
        return tuple(v.symbol for v in self.variables)

    def variable(self, name: str) -> Variable:
        return self.variables[self.names.index(name)]

    def read_by(self, expression: sympy.Expr) -> Tuple[Variable, ...]:
        """The variables to differentiate by, in the form's order."""
        used = expression.free_symbols
        return tuple(v for v in self.variables if self.every_partial or v.symbol in used)


COUNTS_FORM = Form("counts", _COUNT_VARIABLES, "CountLossBase", every_partial=True, described="per-class counts (TP, FP, FN, TN)")
MATRIX_FORM = Form("matrix", _MATRIX_VARIABLES, "MatrixLossBase", every_partial=False, described="whole-matrix aggregates (SUM, TRACE, ...)")
#: Every form; a metric is written over the variables of exactly one.
FORMS = (COUNTS_FORM, MATRIX_FORM)
#: Every variable of every form, by name: what the parser resolves a name to.
VARIABLES = {v.name: v.symbol for form in FORMS for v in form.variables}


def forms_read_by(expression: sympy.Expr) -> Tuple[Form, ...]:
    """The forms whose variables an expression reads (the parser refuses more than one)."""
    used = expression.free_symbols
    return tuple(form for form in FORMS if used & set(form.symbols))

MATRIX_NAMES = MATRIX_FORM.names
MATRIX_SYMBOLS = MATRIX_FORM.symbols
#: name -> meaning, for the parser's suggestions and the docs.
MATRIX_AGGREGATES = {v.name: v.meaning for v in _MATRIX_VARIABLES}

#: Totals users know from the confusion-matrix literature (Wikipedia's P, N, PP, PN).
DERIVED = {
    "P": (TP + FN, "actual positives, TP + FN"),
    "N": (FP + TN, "actual negatives, FP + TN"),
    "PP": (TP + FP, "predicted positives, TP + FP"),
    "PN": (FN + TN, "predicted negatives, FN + TN"),
    "TOTAL": (TP + FP + FN + TN, "all samples, TP + FP + FN + TN"),
}

#: name -> (SymPy constructor, minimum arguments, maximum arguments or None).
FUNCTIONS: Dict[str, Tuple[Callable, int, Optional[int]]] = {
    "sqrt": (sympy.sqrt, 1, 1),
    "log": (sympy.log, 1, 1),
    "exp": (sympy.exp, 1, 1),
    "abs": (sympy.Abs, 1, 1),
    "min": (sympy.Min, 2, None),
    "max": (sympy.Max, 2, None),
}


@dataclass(frozen=True)
class Parameter:
    """A named constant of a metric (F-beta's beta): a constructor argument with a default and a domain."""

    name: str
    default: sympy.Rational
    lower: float = float("-inf")
    upper: float = float("inf")
    lower_open: bool = True
    upper_open: bool = True

    @property
    def symbol(self) -> sympy.Symbol:
        return parameter_symbol(self.name, self.lower)

    def contains(self, value: float) -> bool:
        above = value > self.lower if self.lower_open else value >= self.lower
        below = value < self.upper if self.upper_open else value <= self.upper
        return above and below

    def domain_text(self) -> str:
        return domain_text(self.lower, self.upper, self.lower_open, self.upper_open)

    def check(self, value: float, owner: str = "") -> None:
        if not self.contains(value):
            where = f" of {owner}" if owner else ""
            raise ParameterError(f"parameter {self.name}{where} = {value:g} lies outside its domain {self.domain_text()}")


@lru_cache(maxsize=None)
def parameter_symbol(name: str, lower: float) -> sympy.Symbol:
    """Parameters bounded below by zero are positive, which lets SymPy simplify more."""
    return sympy.Symbol(name, positive=True) if lower >= 0 else sympy.Symbol(name, real=True)


def expression_size(expression: sympy.Expr) -> Tuple[int, int]:
    """(nodes, depth) of the expression as a tree, counted without recursion over its shared subexpressions."""
    size: Dict[sympy.Basic, Tuple[int, int]] = {}
    stack = [(expression, False)]
    while stack:
        node, ready = stack.pop()
        if node in size:
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args if arg not in size)
            continue
        below = [size[arg] for arg in node.args]
        size[node] = (1 + sum(n for n, _ in below), 1 + max((d for _, d in below), default=0))
    return size[expression]


@dataclass(frozen=True)
class MetricDefinition:
    """A parsed metric: its expression over one form's variables (and parameters), and where it came from."""

    expression: sympy.Expr
    parameters: Tuple[Parameter, ...] = ()
    source: str = ""

    @property
    def parameter_defaults(self) -> Dict[sympy.Symbol, sympy.Rational]:
        return {p.symbol: p.default for p in self.parameters}

    @property
    def form(self) -> Form:
        """The form whose variables the expression reads (the parser refuses a mixture)."""
        return (forms_read_by(self.expression) or (COUNTS_FORM,))[0]


def as_two_class(definition: MetricDefinition) -> MetricDefinition:
    """A matrix metric with two classes, as a formula over TP, FP, FN and TN (class 1 is the positive one)."""
    replacements = {v.symbol: v.two_class for v in MATRIX_FORM.variables}
    return MetricDefinition(definition.expression.xreplace(replacements), definition.parameters, definition.source)


#: A cut meets `metric >= bound` when its float64 value is at least bound - CONSTRAINT_TOLERANCE * max(1, |bound|):
#: a rate equal to the bound in exact arithmetic (27/30 >= 0.9) meets it whatever the rounding of its formula, and
#: two different rates of up to 10^6 samples differ by more than that.
CONSTRAINT_TOLERANCE = 1e-12
COMPARISONS = (">=", "<=")


@dataclass(frozen=True)
class Constraint:
    """A bound on a metric, `metric >= bound` or `metric <= bound`: what a chosen threshold must meet."""

    text: str  # as written
    definition: MetricDefinition  # the metric on the left; its source is the text before the comparison
    comparison: str  # ">=" or "<="
    bound: float
    declared_range: Optional[Tuple[float, float]] = None  # the library metric's range, when the left side is one

    def __str__(self) -> str:
        return " ".join(self.text.split()).rstrip(";").rstrip()

    @property
    def metric_text(self) -> str:
        """The metric on the left as text that parses on its own (statements included)."""
        return self.definition.source

    def holds(self, values):
        """Element-wise whether values (floats, arrays or tensors) meet the constraint, within CONSTRAINT_TOLERANCE."""
        slack = CONSTRAINT_TOLERANCE * max(1.0, abs(self.bound))
        return values >= self.bound - slack if self.comparison == ">=" else values <= self.bound + slack

    def best_reached(self, values) -> float:
        """The value among values closest to meeting the constraint: the largest for >=, the smallest for <=."""
        return float(values.max() if self.comparison == ">=" else values.min())
