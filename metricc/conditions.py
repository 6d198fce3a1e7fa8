"""When an expression over a metric's variables vanishes or turns negative, in the words of the confusion-matrix
literature where they fit ("the batch has no positives"), else as an equation: what singular points say."""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, FrozenSet, List, Optional, Tuple

import sympy

from .language import COUNT_NAMES, COUNTS, MATRIX_NAMES, MATRIX_SYMBOLS

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
    """When an expression (without guards) over the counts is zero: in words where it is a nonnegative combination
    of counts ("the batch has no positives"), else as an equation ("TP*TN = FN*FP")."""
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
    """When an expression (without guards) over the counts is negative, as an inequality."""
    left, right = _sides(expression)
    return f"{right} > {left}"


def vanishing_sets(expression: sympy.Expr) -> Optional[List[FrozenSet[str]]]:
    """The sets of counts whose being all zero makes a nonnegative combination of counts vanish (one set per term of
    the disjunctive form: FP + TP gives [{TP, FP}]); None where it is not such a combination."""
    condition = _zero(expression)
    if condition is None:
        return None
    if condition is sympy.false:
        return []
    disjunction = sympy.simplify_logic(condition, form="dnf")
    return [frozenset(_ZERO_NAMES[literal] for literal in sympy.And.make_args(term)) for term in sympy.Or.make_args(disjunction)]
