"""Stage 1: metric text -> SymPy expression, through the Lark grammar only (no eval, no sympify): the grammar, the
Transformer that builds the expression, and the errors that point at the text. The vocabulary is language.py's."""

from __future__ import annotations

import difflib
import keyword
import math
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Protocol, Tuple

import sympy
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from .errors import ConstraintError, InvalidMetricError, MetricError, MetricSyntaxError, ParameterError, UnknownNameError
from .language import (
    DERIVED, FUNCTIONS, MAX_CONSTANT_DIGITS, MAX_EXPONENT_DIGITS, MAX_NESTING, MAX_NODES, MAX_SOURCE_CHARS, VARIABLES,
    Constraint, MetricDefinition, Parameter, expression_size, forms_read_by,
)
from .runtime.options import OPTION_NAMES

_RESERVED = set(VARIABLES) | set(DERIVED) | set(FUNCTIONS) | {"param", "in", "inf"}
#: The keyword arguments metricc.loss, emit and threshold_curve take beside the options and the parameters
#: (a test keeps this equal to their signatures).
API_KEYWORDS = ("constraints", "name", "standalone")
#: A parameter becomes a keyword argument of the loss constructor, beside the loss options (docs/language.md),
#: and of metricc.loss and metricc.emit, beside their own keywords.
_CONSTRUCTOR_NAMES = set(keyword.kwlist) | set(OPTION_NAMES) | set(API_KEYWORDS)


class MetricLibrary(Protocol):
    """What the parser needs from a library of named metrics."""

    def definition(self, name: str) -> Optional[MetricDefinition]: ...

    def names(self) -> List[str]: ...

    def all_names(self) -> List[str]: ...


def grammar_path() -> Path:
    """The one grammar file: inside the package when installed, at the repository root in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "grammar" / "metric.lark", here.parent / "grammar" / "metric.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"metric.lark not found next to {here}; reinstall metricc")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    # cache=True keeps Lark's LALR tables in the temporary directory, keyed by the grammar: 0.3 s -> 0.03 s per process
    return Lark(
        grammar_path().read_text(encoding="utf-8"), parser="lalr", start=["start", "constraint"], propagate_positions=False,
        maybe_placeholders=True, cache=True,
    )


def parse(text: str, library: Optional[MetricLibrary] = None) -> MetricDefinition:
    """Parse metric text into a `MetricDefinition`; every failure is a `MetricError` naming the input."""
    tree = _tree(text, "start")
    builder = _ExpressionBuilder(text, library, _bound_names(tree))
    expression = _transformed(builder, tree)
    _check_expression_size(expression, "the formula")
    return _checked(MetricDefinition(expression, tuple(builder.parameters.values()), text), text)


def parse_constraint(text: str, library: Optional[MetricLibrary] = None) -> Constraint:
    """Parse `metric >= number` or `metric <= number` (statements may come first) into a `Constraint`: the same
    grammar and Transformer as a metric; a bound outside a library metric's declared range is a ConstraintError."""
    tree = _tree(text, "constraint")
    builder = _ExpressionBuilder(text, library, _bound_names(tree))
    expression, comparison, bound = _transformed(builder, tree)
    _check_expression_size(expression, "the constraint's metric")
    source = text[: comparison.start_pos]
    definition = _checked(MetricDefinition(expression, tuple(builder.parameters.values()), source), source)
    constraint = Constraint(text, definition, comparison.value, float(bound), _declared_range(tree.children[-3], builder, library))
    _check_bound(constraint, tree.children[-1], text)
    return constraint


def _tree(text: str, start: str) -> Tree:
    """The parse tree of a metric (start='start') or a constraint (start='constraint'), its size checked."""
    what = "formula" if start == "start" else "constraint"
    if not isinstance(text, str):
        raise InvalidMetricError(f"a {'metric' if start == 'start' else 'constraint'} must be given as text, not {type(text).__name__}")
    if len(text) > MAX_SOURCE_CHARS:
        raise InvalidMetricError(f"the {what} is {len(text)} characters long; metricc accepts at most {MAX_SOURCE_CHARS}")
    if not text.strip():
        example = "an expression such as 2*TP/(2*TP+FP+FN) or a name such as f1" if start == "start" else "a metric compared with a number, such as precision >= 0.9"
        raise InvalidMetricError(f"the {what} is empty; write {example}")
    try:
        tree = _parser().parse(text, start=start)
    except UnexpectedInput as error:
        raise _syntax_error(error, text, what) from None
    _check_size(tree, text)
    return tree


def _transformed(builder: "_ExpressionBuilder", tree: Tree):
    try:
        return builder.transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, MetricError):
            raise error.orig_exc from None
        raise


def _declared_range(expression: Tree, builder: "_ExpressionBuilder", library: Optional[MetricLibrary]) -> Optional[Tuple[float, float]]:
    """The declared range of the constraint's metric when it is a library metric by name (`precision`, `fbeta(beta=2)`)."""
    if not isinstance(expression, Tree) or expression.data not in ("name", "call") or library is None:
        return None
    name = expression.children[0].value
    if name in builder.bindings or name in builder.parameters or name in _RESERVED:
        return None
    entry = getattr(library, "entry", lambda _: None)(name)
    return None if entry is None else tuple(entry.range)


def _check_bound(constraint: Constraint, bound: object, text: str) -> None:
    """A bound outside the declared range: the constraint never holds, or always does; either is a mistake."""
    if constraint.declared_range is None:
        return
    low, high = constraint.declared_range
    if low <= constraint.bound <= high:
        return
    above = constraint.bound > high
    never = above == (constraint.comparison == ">=")
    token = bound if isinstance(bound, Token) else bound.children[0]
    interval = f"[{_bound_text(low)}, {_bound_text(high)}]"
    name = " ".join(constraint.metric_text.split())
    raise ConstraintError(
        f"{name} lies in {interval}, so {constraint} {'never holds' if never else 'always holds'}: "
        f"give a bound in {interval}" + (" (a rate, not a percentage)" if above and high == 1 and constraint.bound <= 100 else ""),
        token.line,
        token.column,
        _caret(text, token),
    )


def _bound_text(value: float) -> str:
    return ("inf" if value > 0 else "-inf") if math.isinf(value) else f"{value:g}"


def _checked(definition: MetricDefinition, text: str) -> MetricDefinition:
    expression = definition.expression
    if not isinstance(expression, sympy.Expr):
        raise InvalidMetricError(f"{_short(text)!r} is not a numeric expression")
    if expression.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise InvalidMetricError(f"{_short(text)!r} divides by a constant zero or is infinite; check the denominators")
    if expression.has(sympy.I):
        raise InvalidMetricError(f"{_short(text)!r} takes the square root or log of a negative constant")
    forms = forms_read_by(expression)
    if not forms:
        raise InvalidMetricError(
            f"{_short(text)!r} does not depend on TP, FP, FN or TN (or on the matrix aggregates SUM, TRACE, ...), "
            "so it cannot be trained on; use at least one confusion-matrix count"
        )
    if len(forms) > 1:
        raise InvalidMetricError(
            f"{_short(text)!r} mixes {' with '.join(form.described for form in forms)}: "
            "with several classes they do not combine; write the metric with one kind of name"
        )
    return definition


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


_TOKEN_TEXT = {
    "NAME": "a name",
    "CALLEE": "a function call",
    "NUMBER": "a number",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "SEMICOLON": "';'",
    "EQUAL": "'='",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "POW": "'^'",
    "COMPARISON": "'>=' or '<='",
    "$END": "the end of the formula",
}


def _expected_text(expected) -> str:
    names = sorted({_TOKEN_TEXT.get(name, repr(name.lower()) if name.isupper() else name) for name in expected})
    return ", ".join(names)


def _syntax_error(error: UnexpectedInput, text: str, what: str = "formula") -> MetricSyntaxError:
    context = error.get_context(text, span=40)
    line, column = max(error.line, 1), max(error.column, 1)
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else ""
        message = f"unexpected character {char!r}"
        if char and not char.isascii():
            message += " (only ASCII letters, digits and + - * / ^ ( ) , ; = # are allowed)"
        elif char in "<>!" and what == "constraint":
            message += "; a constraint compares its metric with a number by >= or <=, e.g. precision >= 0.9"
    elif isinstance(error, UnexpectedEOF):
        message = _early_end(error.expected, what)
        line, column = _end_position(text)
    else:
        assert isinstance(error, UnexpectedToken)
        token = error.token
        if token.type == "$END":
            line, column = _end_position(text)
            message = _early_end(error.expected, what)
        else:
            message = f"unexpected {token.value!r}; " + _comparison_hint(token, error.expected, what)
    at_end = isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END")
    if what == "constraint" and at_end:
        context = f"{text.split(chr(10))[-1]}\n{' ' * (column - 1)}^"  # where the comparison or the bound goes
    return MetricSyntaxError(message, line, column, context)


def _comparison_hint(token: Token, expected, what: str) -> str:
    """What was expected, and what to write instead where a comparison is out of place or malformed."""
    expected_text = f"expected {_expected_text(expected)}"
    if what == "formula" and token.type == "COMPARISON":
        return f"{expected_text} (a metric has no comparison; a metric compared with a number is a constraint: constraints=[...], --constraint)"
    if what == "constraint" and token.type == "COMPARISON":
        return "a constraint has one comparison: its metric, >= or <=, and a number, e.g. precision >= 0.9"
    if what == "constraint" and token.type == "EQUAL":
        return f"{expected_text}; a constraint compares its metric with a number by >= or <=, e.g. precision >= 0.9"
    if what == "constraint" and "NUMBER" in expected and "NAME" not in expected:
        return (
            f"{expected_text}: a constraint's bound is a number after the comparison (write the metric first, precision >= 0.9; "
            "to compare two metrics, bound their difference, precision - recall >= 0)"
        )
    return expected_text


def _early_end(expected, what: str = "formula") -> str:
    if what == "constraint" and "COMPARISON" in expected:
        return "the constraint has no comparison: write its metric, then >= or <= and a number, e.g. precision >= 0.9"
    message = f"the {what} ends too early; expected {_expected_text(expected)}"
    if "PARAM" in expected:
        ending = "a metric ends with its expression" if what == "formula" else "a constraint ends with its comparison, e.g. precision >= 0.9"
        message += (
            f" (the text ends with a binding: {ending};"
            " note that a line starting with + or - continues the line before)"
        )
    return message


def _end_position(text: str) -> Tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _caret(text: str, token: Token) -> str:
    line = text.split("\n")[token.line - 1]
    return f"{line}\n{' ' * (token.column - 1)}^"


def _check_size(tree: Tree, text: str) -> None:
    """Bound nesting depth and size before SymPy sees the tree, so nothing later can recurse too deeply."""
    nodes = 0
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_NESTING:
            raise InvalidMetricError(f"the formula nests more than {MAX_NESTING} operations deep; simplify it")
        if nodes > MAX_NODES:
            raise InvalidMetricError(f"the formula has more than {MAX_NODES} operations; metricc compiles formulas up to that size")
        if isinstance(node, Tree):
            stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _check_expression_size(expression: sympy.Expr, what: str) -> None:
    """Bound the expression once bindings and library metrics are substituted: chained let-bindings can
    double its size at every step, and SymPy recurses over its depth."""
    nodes, depth = expression_size(expression)
    if depth > MAX_NESTING:
        raise InvalidMetricError(
            f"{what} nests more than {MAX_NESTING} operations deep once let-bindings and library metrics are substituted; simplify it"
        )
    if nodes > MAX_NODES:
        raise InvalidMetricError(
            f"{what} has more than {MAX_NODES} operations once let-bindings and library metrics are substituted; "
            "metricc compiles formulas up to that size"
        )


def _bound_names(tree: Tree) -> Dict[str, Token]:
    """Every name a let or param statement binds, to explain a use that comes before its binding."""
    return {
        statement.children[0].value: statement.children[0]
        for statement in tree.children
        if isinstance(statement, Tree) and statement.data in ("let", "param")
    }


def _number(token: Token) -> sympy.Rational:
    text = token.value
    mantissa, _, exponent = text.lower().partition("e")
    if len(exponent.lstrip("+-")) > MAX_EXPONENT_DIGITS:
        raise MetricSyntaxError(
            f"the number {text!r} is out of range (at most {MAX_EXPONENT_DIGITS} exponent digits)", token.line, token.column
        )
    value = Fraction(text)
    if value and abs(math.log10(value.numerator) - math.log10(value.denominator)) > MAX_CONSTANT_DIGITS:
        raise MetricSyntaxError(
            f"the number {text!r} is out of range (magnitudes from 1e-{MAX_CONSTANT_DIGITS} to 1e{MAX_CONSTANT_DIGITS})",
            token.line,
            token.column,
        )
    return sympy.Rational(value.numerator, value.denominator)


def _magnitude(value: sympy.Expr) -> float:
    """log10 |value| of a nonzero number, 0 for zero or anything symbolic."""
    if not value.is_Number or value == 0:
        return 0.0
    rational = abs(sympy.Rational(value))
    return math.log10(rational.p) - math.log10(rational.q)


def _check_constant(magnitude: float, what: str) -> None:
    if abs(magnitude) > MAX_CONSTANT_DIGITS:
        raise InvalidMetricError(
            f"{what} is about 1e{magnitude:.0f}, outside the range a float can hold "
            f"(1e-{MAX_CONSTANT_DIGITS} to 1e{MAX_CONSTANT_DIGITS}); rescale the constants"
        )


def _constant(value) -> sympy.Expr:
    return _number(value) if isinstance(value, Token) else value


def _float(value: sympy.Expr) -> float:
    return float(value)


class _ExpressionBuilder(Transformer_NonRecursive):
    """Builds SymPy bottom-up; holds the scope of bindings and parameters seen so far."""

    def __init__(self, text: str, library: Optional[MetricLibrary], later_bindings: Dict[str, Token]):
        super().__init__()
        self.text = text
        self.library = library
        self.later_bindings = later_bindings
        self.bindings: Dict[str, sympy.Expr] = {}
        self.parameters: Dict[str, Parameter] = {}

    # statements

    def start(self, children):
        return children[-1]

    def constraint(self, children):
        """(the metric's expression, the COMPARISON token, the bound)."""
        expression, comparison, bound = children[-3:]
        return expression, comparison, _constant(bound)

    def let(self, children):
        name_token, value = children
        self._check_new_name(name_token)
        _check_expression_size(value, f"the binding {name_token.value!r} on line {name_token.line}")
        self.bindings[name_token.value] = value
        return value

    def param(self, children):
        name_token, default, domain = children
        default = _constant(default)
        name = name_token.value
        self._check_new_name(name_token)
        if name in _CONSTRUCTOR_NAMES:
            what = "a Python keyword" if keyword.iskeyword(name) else "a loss option" if name in OPTION_NAMES else "a keyword of metricc.loss, metricc.emit or metricc.threshold_curve"
            raise MetricSyntaxError(
                f"parameter name {name!r} is {what}, and a parameter becomes a keyword argument of the loss "
                "constructor (and of metricc.loss) beside the loss options; choose another",
                name_token.line,
                name_token.column,
                _caret(self.text, name_token),
            )
        lower, upper, lower_open, upper_open = domain or (float("-inf"), float("inf"), True, True)
        if lower >= upper:
            raise ParameterError(f"parameter {name} has an empty domain; the lower bound must be below the upper bound")
        parameter = Parameter(name, default, lower, upper, lower_open, upper_open)
        parameter.check(_float(default))
        self.parameters[name] = parameter
        return parameter.symbol

    def _check_new_name(self, token: Token) -> None:
        name = token.value
        if name in _RESERVED:
            raise MetricSyntaxError(
                f"{name!r} is a built-in name and cannot be rebound; choose another name",
                token.line,
                token.column,
                _caret(self.text, token),
            )
        if name in self.bindings or name in self.parameters:
            raise MetricSyntaxError(f"{name!r} is bound twice; give each binding its own name", token.line, token.column, _caret(self.text, token))

    def _interval(self, children, lower_open: bool, upper_open: bool):
        lower, upper = (float(_constant(c)) for c in children)
        return lower, upper, lower_open, upper_open

    def open_open(self, children):
        return self._interval(children, True, True)

    def closed_closed(self, children):
        return self._interval(children, False, False)

    def open_closed(self, children):
        return self._interval(children, True, False)

    def closed_open(self, children):
        return self._interval(children, False, True)

    def pos_inf(self, children):
        return sympy.oo

    def neg_inf(self, children):
        return -sympy.oo

    def negative_number(self, children):
        return -_number(children[1])

    def NUMBER(self, token):
        return token

    # expressions

    def number(self, children):
        return _number(children[0])

    def sum(self, children):
        terms = [children[0]]
        for operator, operand in zip(children[1::2], children[2::2]):
            terms.append(operand if operator.type == "PLUS" else -operand)
        return sympy.Add(*terms)

    def product(self, children):
        factors = [children[0]]
        for operator, operand in zip(children[1::2], children[2::2]):
            if operator.type == "SLASH":
                factors.append(sympy.Pow(operand, -1))
            else:
                factors.append(operand)
        _check_constant(sum(_magnitude(f.base) * f.exp if f.is_Pow and f.base.is_Number else _magnitude(f) for f in factors), "a product of constants")
        return sympy.Mul(*factors)

    def neg(self, children):
        return -children[1]

    def pos(self, children):
        return children[1]

    def power(self, children):
        base, _, exponent = children
        if base.is_Number and exponent.is_Number:
            _check_constant(_magnitude(base) * float(exponent), f"the constant {sympy.sstr(base)}^{sympy.sstr(exponent)}")
        return sympy.Pow(base, exponent)

    def name(self, children):
        token = children[0]
        name = token.value
        if name in self.bindings:
            return self.bindings[name]
        if name in self.parameters:
            return self.parameters[name].symbol
        if name in VARIABLES:
            return VARIABLES[name]
        if name in DERIVED:
            return DERIVED[name][0]
        if name in FUNCTIONS:
            raise self._error(token, f"{name} is a function; call it as {name}(...)")
        metric = self._library_metric(token)
        if metric is not None:
            self._adopt_parameters(metric, token)
            return metric.expression
        raise self._unknown(token)

    def call(self, children):
        token, *arguments = children
        arguments = [a for a in arguments if a is not None]
        name = token.value
        if name in FUNCTIONS:
            constructor, least, most = FUNCTIONS[name]
            if any(isinstance(a, tuple) for a in arguments):
                raise self._error(token, f"{name}() takes no keyword arguments")
            if len(arguments) < least or (most is not None and len(arguments) > most):
                count = f"{least}" if least == most else f"at least {least}"
                raise self._error(token, f"{name}() takes {count} argument(s), got {len(arguments)}")
            return constructor(*arguments)
        metric = self._library_metric(token)
        if metric is None:
            raise self._unknown(token)
        return self._bind_library_call(token, metric, arguments)

    def keyword(self, children):
        name_token, value = children
        return (name_token, value)

    # helpers

    def _library_metric(self, token: Token) -> Optional[MetricDefinition]:
        if self.library is None:
            return None
        return self.library.definition(token.value)

    def _bind_library_call(self, token: Token, metric: MetricDefinition, arguments) -> sympy.Expr:
        by_name = {p.name: p for p in metric.parameters}
        replacements = {}
        for argument in arguments:
            if not isinstance(argument, tuple):
                raise self._error(token, f"{token.value}() takes parameters by name only, e.g. {token.value}({next(iter(by_name), 'beta')}=2)")
            name_token, value = argument
            parameter = by_name.get(name_token.value)
            if parameter is None:
                valid = ", ".join(by_name) or "none"
                raise self._error(name_token, f"{token.value} has no parameter {name_token.value!r} (its parameters: {valid})")
            if parameter.symbol in replacements:
                raise self._error(name_token, f"{token.value}() is given {name_token.value} twice; give each parameter once")
            if forms_read_by(value):
                raise self._error(name_token, f"parameter {name_token.value} must not depend on the counts")
            if value.is_number:
                parameter.check(_float(value), owner=token.value)
            replacements[parameter.symbol] = value
        unbound = [p for p in metric.parameters if p.symbol not in replacements]
        self._adopt_parameters(MetricDefinition(metric.expression, tuple(unbound)), token)
        return metric.expression.xreplace(replacements)

    def _adopt_parameters(self, metric: MetricDefinition, token: Token) -> None:
        for parameter in metric.parameters:
            existing = self.parameters.get(parameter.name)
            if existing is not None and existing != parameter:
                raise ParameterError(
                    f"{token.value} brings a parameter {parameter.name!r} that differs from one already in the formula; "
                    f"bind it explicitly, e.g. {token.value}({parameter.name}=...)"
                )
            self.parameters[parameter.name] = parameter

    def _error(self, token: Token, message: str) -> MetricSyntaxError:
        return MetricSyntaxError(message, token.line, token.column, _caret(self.text, token))

    def _unknown(self, token: Token) -> UnknownNameError:
        name = token.value
        if name in self.later_bindings:
            where = self.later_bindings[name]
            return UnknownNameError(
                f"{name!r} is used before its binding on line {where.line} is complete; "
                "a binding can use only names bound before it (no self-reference or recursion)",
                token.line,
                token.column,
                _caret(self.text, token),
            )
        known = list(VARIABLES) + list(DERIVED) + list(FUNCTIONS) + list(self.bindings) + list(self.parameters)
        library_names = self.library.all_names() if self.library is not None else []
        close = difflib.get_close_matches(name, known + library_names, n=3, cutoff=0.6)
        close += [k for k in known + library_names if k.lower() == name.lower() and k not in close]
        hint = f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else "."
        valid = ", ".join(known)
        more = " or a library metric (see `metricc list`)" if library_names else ""
        return UnknownNameError(
            f"unknown name {name!r}{hint} Valid names: {valid}{more}",
            token.line,
            token.column,
            _caret(self.text, token),
        )
