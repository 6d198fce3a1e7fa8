"""A small exact linear-program solver (dense two-phase simplex, Bland's rule), so that metricc needs no scipy.

Sized for the tiny programs of `LearnedLoss`'s weight update (about ten variables, a few hundred rows): every
pivot updates the whole tableau, which is simple and plenty fast at that size.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

TOLERANCE = 1e-9  # absolute, on data scaled so that every constraint row and the cost have largest magnitude 1
MAX_PIVOTS = 100_000  # Bland's rule terminates in exact arithmetic; this only guards against rounding


class LinearProgramError(ValueError):
    """The arrays given do not describe a linear program (shapes disagree, NaN or infinity), or rounding defeated it."""


class LinearProgram(NamedTuple):
    status: str  # "optimal", "infeasible" or "unbounded"
    x: Optional[np.ndarray]  # the optimal point (float64), None unless optimal
    value: Optional[float]  # cost @ x, None unless optimal


def _finite(array: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise LinearProgramError(f"{name} holds NaN or infinity; pass finite numbers")
    return array


def _checked_constraints(matrix, bound, variables: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A finite (rows, variables) matrix and (rows,) bound, or a LinearProgramError naming the argument."""
    if matrix is None and bound is None:
        return np.zeros((0, variables)), np.zeros(0)
    if matrix is None or bound is None:
        raise LinearProgramError(f"{name}_matrix and {name}_bound go together: pass both or neither")
    matrix, bound = np.asarray(matrix, dtype=np.float64), np.asarray(bound, dtype=np.float64)
    if matrix.size == 0 and bound.size == 0:
        return np.zeros((0, variables)), np.zeros(0)
    if matrix.ndim != 2 or matrix.shape[1] != variables or bound.shape != (matrix.shape[0],):
        raise LinearProgramError(
            f"{name}_matrix has shape {matrix.shape} and {name}_bound {bound.shape}; "
            f"expected (rows, {variables}) and (rows,) for a cost of {variables} variables"
        )
    return _finite(matrix, f"{name}_matrix"), _finite(bound, f"{name}_bound")


def _scaled_rows(matrix: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row divided by its largest coefficient, so that one absolute tolerance fits every row."""
    scale = np.abs(matrix).max(axis=1, initial=0.0)
    scale[scale == 0] = 1.0
    return matrix / scale[:, None], bound / scale


def _pivot(table: np.ndarray, basis: np.ndarray, row: int, column: int) -> None:
    """Make `column` basic in `row`: one Gauss-Jordan step on the whole tableau, objective row included."""
    table[row] /= table[row, column]
    multipliers = table[:, column].copy()
    multipliers[row] = 0.0
    table -= np.outer(multipliers, table[row])
    np.maximum(table[:-1, -1], 0.0, out=table[:-1, -1])  # basic values are >= 0; clear rounding below zero
    basis[row] = column


def _leaving_row(table: np.ndarray, basis: np.ndarray, column: int) -> Optional[int]:
    """The minimum-ratio row, ties to the smallest basic variable (Bland); None when nothing bounds the column."""
    entries = table[:-1, column]
    rows = np.flatnonzero(entries > TOLERANCE)
    if rows.size == 0:
        return None
    ratios = table[rows, -1] / entries[rows]
    ties = rows[ratios <= ratios.min() + TOLERANCE * max(1.0, ratios.min())]
    return int(ties[np.argmin(basis[ties])])


def _simplex(table: np.ndarray, basis: np.ndarray) -> bool:
    """Pivot by Bland's rule until no reduced cost is negative; False when the objective is unbounded below."""
    for _ in range(MAX_PIVOTS):
        entering = np.flatnonzero(table[-1, :-1] < -TOLERANCE)
        if entering.size == 0:
            return True
        row = _leaving_row(table, basis, int(entering[0]))
        if row is None:
            return False
        _pivot(table, basis, row, int(entering[0]))
    raise LinearProgramError(f"the simplex method made {MAX_PIVOTS} pivots without finishing (rounding); rescale the data")


def _phase_one_table(matrix: np.ndarray, bound: np.ndarray, slack_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [matrix | slacks | artificials | bound] with bound >= 0; a slack starts basic where it can, else an artificial."""
    rows, columns = matrix.shape
    slacks = np.eye(rows, slack_rows)
    sign = np.where(bound < 0, -1.0, 1.0)
    needs_artificial = (sign < 0) | (np.arange(rows) >= slack_rows)
    artificials = np.eye(rows)[:, needs_artificial]
    table = np.zeros((rows + 1, columns + slack_rows + artificials.shape[1] + 1))
    table[:-1] = np.column_stack([sign[:, None] * matrix, sign[:, None] * slacks, artificials, sign * bound])
    first_artificial = columns + slack_rows
    basis = np.where(needs_artificial, first_artificial + np.cumsum(needs_artificial) - 1, columns + np.arange(rows))
    table[-1, first_artificial:-1] = 1.0
    table[-1] -= table[:-1][needs_artificial].sum(axis=0)
    return table, basis


def _without_artificials(table: np.ndarray, basis: np.ndarray, first_artificial: int) -> tuple[np.ndarray, np.ndarray]:
    """After phase 1 (artificials all at 0): pivot each basic artificial out, dropping its row when it is redundant."""
    kept = []
    for row in range(len(basis)):
        if basis[row] >= first_artificial:
            table[row, -1] = 0.0
            magnitudes = np.abs(table[row, :first_artificial])
            if magnitudes.max(initial=0.0) <= TOLERANCE:
                continue  # a combination of the other rows: redundant
            _pivot(table, basis, row, int(np.argmax(magnitudes)))
        kept.append(row)
    rows = np.array(kept + [len(table) - 1], dtype=int)
    columns = np.r_[np.arange(first_artificial), table.shape[1] - 1]
    return table[rows][:, columns], basis[rows[:-1]]


def solve_linear_program(cost, upper_matrix=None, upper_bound=None, equal_matrix=None, equal_bound=None) -> LinearProgram:
    """minimise cost @ x subject to upper_matrix @ x <= upper_bound, equal_matrix @ x == equal_bound, x >= 0."""
    cost = _finite(np.asarray(cost, dtype=np.float64), "cost")
    if cost.ndim != 1 or cost.size == 0:
        raise LinearProgramError(f"cost has shape {cost.shape}; expected (variables,) with at least one variable")
    variables = cost.size
    upper = _scaled_rows(*_checked_constraints(upper_matrix, upper_bound, variables, "upper"))
    equal = _scaled_rows(*_checked_constraints(equal_matrix, equal_bound, variables, "equal"))
    matrix, bound = np.vstack([upper[0], equal[0]]), np.concatenate([upper[1], equal[1]])
    table, basis = _phase_one_table(matrix, bound, len(upper[1]))
    _simplex(table, basis)
    if -table[-1, -1] > TOLERANCE * max(1.0, np.abs(bound).max(initial=0.0)):
        return LinearProgram("infeasible", None, None)
    table, basis = _without_artificials(table, basis, variables + len(upper[1]))
    scaled_cost = np.r_[cost / max(np.abs(cost).max(), np.finfo(float).tiny), np.zeros(len(upper[1]))]
    table[-1] = np.r_[scaled_cost, 0.0] - scaled_cost[basis] @ table[:-1]
    if not _simplex(table, basis):
        return LinearProgram("unbounded", None, None)
    point = np.zeros(table.shape[1] - 1)
    point[basis] = table[:-1, -1]
    x = point[:variables]
    return LinearProgram("optimal", x, float(cost @ x))
