"""The grammar and its meaning: SymPy built by hand is the oracle."""

import string

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from metricc import MetricError, MetricSyntaxError, UnknownNameError
from metricc.errors import InvalidMetricError
from metricc.library import default_library
from metricc.language import COUNTS, DERIVED, MAX_SOURCE_CHARS
from metricc.parse import parse

TP, FP, FN, TN = COUNTS


def expr(text):
    return parse(text, library=default_library()).expression


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2*TP/(2*TP+FP+FN)", 2 * TP / (2 * TP + FP + FN)),
        ("-TP^2", -(TP**2)),
        ("-TP**2", -(TP**2)),
        ("2^3^2 * TP", 512 * TP),
        ("TP^-1", 1 / TP),
        ("0.5*TP", sympy.Rational(1, 2) * TP),
        ("1e-3*TP + .25*FP", sympy.Rational(1, 1000) * TP + sympy.Rational(1, 4) * FP),
        ("TP - FP - FN", TP - FP - FN),
        ("TP / FP / FN", TP / FP / FN),
        ("sqrt(TP) + log(FP) + exp(FN) + abs(TP - TN)", sympy.sqrt(TP) + sympy.log(FP) + sympy.exp(FN) + sympy.Abs(TP - TN)),
        ("min(TP, FP, 3) + max(TN, FN)", sympy.Min(TP, FP, 3) + sympy.Max(TN, FN)),
        ("P + N + PP + PN + TOTAL", (TP + FN) + (FP + TN) + (TP + FP) + (FN + TN) + (TP + FP + FN + TN)),
        ("prec = TP/(TP+FP); rec = TP/(TP+FN); 2*prec*rec/(prec+rec)", None),
        ("# a comment\nTP  # and another\n", TP),
    ],
)
def test_meaning(text, expected):
    if expected is None:
        prec, rec = TP / (TP + FP), TP / (TP + FN)
        expected = 2 * prec * rec / (prec + rec)
    assert sympy.simplify(expr(text) - expected) == 0


def test_numbers_are_exact_rationals():
    assert expr("0.1*TP").coeff(TP) == sympy.Rational(1, 10)


def test_derived_names_are_documented_totals():
    assert set(DERIVED) == {"P", "N", "PP", "PN", "TOTAL"}


def test_syntax_error_names_line_and_column_with_caret():
    with pytest.raises(MetricSyntaxError) as info:
        parse("x = TP\n2 * * FP")
    error = info.value
    assert (error.line, error.column) == (2, 5)
    assert "2 * * FP" in str(error) and "^" in str(error)


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError, match="did you mean TP") as info:
        parse("2*TPP/(TP+FP)")
    assert "Valid names" in str(info.value)
    assert info.value.column == 3


def test_library_names_are_suggested():
    with pytest.raises(UnknownNameError, match="f1"):
        parse("f11 + TP", library=default_library())


@pytest.mark.parametrize("text", ["3 + 4", "0.5", "param a = 2; a * a"])
def test_formula_without_counts_is_rejected(text):
    with pytest.raises(InvalidMetricError, match="does not depend on TP, FP, FN or TN"):
        parse(text)


@pytest.mark.parametrize("text", ["", "   ", "# only a comment"])
def test_empty_formula_is_rejected(text):
    with pytest.raises(MetricError):
        parse(text)


def test_oversized_input_is_rejected_quickly():
    with pytest.raises(InvalidMetricError, match="at most"):
        parse("TP+" * MAX_SOURCE_CHARS + "TP")


def test_deep_nesting_is_a_clear_error_or_a_result():
    assert parse("(" * 10_000 + "TP" + ")" * 10_000).expression == TP
    with pytest.raises(InvalidMetricError, match="nests"):
        parse("sqrt(" * 500 + "TP" + ")" * 500)


# Random expressions from the grammar, built in parallel as text and as SymPy (the oracle).

_leaves = st.sampled_from(["TP", "FP", "FN", "TN"]).map(lambda n: (n, sympy.Symbol(n, nonnegative=True))) | st.integers(
    1, 9
).map(lambda k: (str(k), sympy.Integer(k)))


def _combine(children):
    binary = st.tuples(children, st.sampled_from("+-*/"), children).map(
        lambda t: (
            f"({t[0][0]} {t[1]} {t[2][0]})",
            {"+": sympy.Add, "-": lambda a, b: a - b, "*": sympy.Mul, "/": lambda a, b: a / b}[t[1]](t[0][1], t[2][1]),
        )
    )
    unary = st.tuples(st.sampled_from(["-", "sqrt", "square"]), children).map(
        lambda t: {
            "-": (f"-{t[1][0]}", -t[1][1]),
            "sqrt": (f"sqrt({t[1][0]} + 1)", sympy.sqrt(t[1][1] + 1)),
            "square": (f"{t[1][0]}^2", t[1][1] ** 2),
        }[t[0]]
    )
    return binary | unary


random_expressions = st.recursive(_leaves, _combine, max_leaves=6)


@given(random_expressions)
def test_parse_matches_sympy_built_directly(pair):
    text, oracle = pair
    try:
        parsed = parse(text).expression
    except InvalidMetricError:
        assert not oracle.free_symbols or oracle.has(sympy.zoo, sympy.nan, sympy.I)
        return
    assert sympy.simplify(parsed - oracle) == 0


@given(st.text(alphabet=string.printable + "é²∑\x00", max_size=60))
def test_random_text_raises_only_metric_errors(text):
    try:
        parse(text, library=default_library())
    except MetricError:
        pass


@given(st.lists(st.sampled_from(["TP", "FP", "+", "-", "*", "/", "^", "(", ")", "2", "0.5", ",", "sqrt", "f1", "=", ";", "x"]), max_size=25))
def test_random_token_sequences_raise_only_metric_errors(tokens):
    try:
        parse(" ".join(tokens), library=default_library())
    except MetricError:
        pass
