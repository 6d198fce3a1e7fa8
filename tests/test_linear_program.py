"""metricc.linear_program against scipy's HiGHS (the oracle): status, optimal value and feasibility of the point."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from metricc.linear_program import LinearProgramError, solve_linear_program

SCIPY_STATUS = {0: "optimal", 2: "infeasible", 3: "unbounded"}


def scipy_solution(cost, upper_matrix=None, upper_bound=None, equal_matrix=None, equal_bound=None):
    """HiGHS on the same program, with the same x >= 0 bounds; a status it cannot classify fails the test."""
    result = linprog(cost, A_ub=upper_matrix, b_ub=upper_bound, A_eq=equal_matrix, b_eq=equal_bound, bounds=(0, None), method="highs")
    assert result.status in SCIPY_STATUS, result.message
    return SCIPY_STATUS[result.status], result.fun


def assert_agrees_with_scipy(cost, upper_matrix=None, upper_bound=None, equal_matrix=None, equal_bound=None):
    """Same status as HiGHS; when optimal, the same value (1e-7 relative) at a point that satisfies every constraint."""
    solution = solve_linear_program(cost, upper_matrix, upper_bound, equal_matrix, equal_bound)
    status, value = scipy_solution(cost, upper_matrix, upper_bound, equal_matrix, equal_bound)
    assert solution.status == status
    if status != "optimal":
        assert solution.x is None and solution.value is None
        return solution
    x = solution.x
    assert x.dtype == np.float64 and x.shape == (len(cost),)
    assert solution.value == pytest.approx(value, rel=1e-7, abs=1e-7)
    assert solution.value == pytest.approx(float(np.asarray(cost) @ x), rel=1e-12, abs=1e-12)
    assert (x >= 0).all()
    scale = 1e-7 * max(1.0, np.abs(x).max())
    if upper_matrix is not None:
        upper_matrix, upper_bound = np.asarray(upper_matrix, float), np.asarray(upper_bound, float)
        assert (upper_matrix @ x <= upper_bound + scale * (1 + np.abs(upper_matrix).sum(axis=1))).all()
    if equal_matrix is not None:
        equal_matrix, equal_bound = np.asarray(equal_matrix, float), np.asarray(equal_bound, float)
        np.testing.assert_allclose(equal_matrix @ x, equal_bound, atol=scale * (1 + np.abs(equal_matrix).max()))
    return solution


@st.composite
def linear_programs(draw):
    """Small programs; integer data from a narrow range makes ties, degenerate vertices and redundant rows common."""
    variables = draw(st.integers(2, 8))
    uppers, equals = draw(st.integers(0, 40)), draw(st.integers(0, 2))
    if draw(st.booleans()):
        numbers = st.integers(-3, 3).map(float)
    else:
        numbers = st.floats(-10, 10).map(lambda number: round(number, 3))  # HiGHS's tolerances are absolute: no 1e-200

    def matrix(rows, columns):
        return np.array(draw(st.lists(numbers, min_size=rows * columns, max_size=rows * columns)), dtype=float).reshape(rows, columns)

    cost, upper_matrix, equal_matrix = matrix(1, variables)[0], matrix(uppers, variables), matrix(equals, variables)
    if draw(st.booleans()):  # feasible by construction around a point x0 >= 0, many rows tight at it (degenerate)
        point = np.abs(matrix(1, variables)[0])
        upper_bound, equal_bound = upper_matrix @ point + np.abs(matrix(1, uppers)[0]) * draw(st.booleans()), equal_matrix @ point
    else:
        upper_bound, equal_bound = matrix(1, uppers)[0], matrix(1, equals)[0]
    upper = (upper_matrix, upper_bound) if uppers else (None, None)
    equal = (equal_matrix, equal_bound) if equals else (None, None)
    if equals and draw(st.booleans()):  # a repeated equality row: an artificial stays basic at level 0
        equal = (np.vstack([equal[0], 2 * equal[0][:1]]), np.r_[equal[1], 2 * equal[1][:1]])
    return cost, *upper, *equal


@settings(max_examples=60, deadline=None)
@given(linear_programs())
def test_random_programs_agree_with_scipy(program):
    assert_agrees_with_scipy(*program)


def test_two_variables_solved_by_hand():
    """max x + y with x + 2y <= 4, 3x + y <= 6: both rows bind, so x = 8/5, y = 6/5 and the minimum of -(x + y) is -14/5."""
    solution = assert_agrees_with_scipy([-1.0, -1.0], [[1.0, 2.0], [3.0, 1.0]], [4.0, 6.0])
    np.testing.assert_allclose(solution.x, [8 / 5, 6 / 5], rtol=1e-12)
    assert solution.value == pytest.approx(-14 / 5, rel=1e-12)


def test_infeasible_and_unbounded():
    """x + y <= -1 has no point with x, y >= 0; x - y <= 1 lets x grow without bound along y = x."""
    assert assert_agrees_with_scipy([1.0, 1.0], [[1.0, 1.0]], [-1.0]).status == "infeasible"
    assert assert_agrees_with_scipy([-1.0, 0.0], [[1.0, -1.0]], [1.0]).status == "unbounded"
    assert assert_agrees_with_scipy([0.0, 0.0], None, None, [[1.0, 1.0], [1.0, 1.0]], [1.0, 2.0]).status == "infeasible"


def test_no_constraints():
    """With only x >= 0: optimal at 0 when no cost is negative, unbounded otherwise."""
    assert assert_agrees_with_scipy([1.0, 0.0, 2.0]).x.tolist() == [0.0, 0.0, 0.0]
    assert solve_linear_program([1.0, -1e-3]).status == "unbounded"
    assert solve_linear_program([1.0, 2.0], np.zeros((0, 2)), np.zeros(0)).status == "optimal"


def test_redundant_equality_rows():
    """x + y = 2 stated three times (once scaled): min x - y puts everything on y, x = 0, y = 2."""
    rows, bounds = [[1.0, 1.0], [2.0, 2.0], [1.0, 1.0]], [2.0, 4.0, 2.0]
    solution = assert_agrees_with_scipy([1.0, -1.0], None, None, rows, bounds)
    np.testing.assert_allclose(solution.x, [0.0, 2.0], atol=1e-12)


def test_negative_right_hand_sides():
    """x + y >= 1 written as -x - y <= -1, and an equality with a negative bound."""
    assert_agrees_with_scipy([1.0, 2.0], [[-1.0, -1.0]], [-1.0])
    assert_agrees_with_scipy([1.0, 2.0, 0.0], [[-1.0, -1.0, 0.0]], [-1.0], [[1.0, 0.0, -1.0]], [-0.5])


def test_beale_cycling_example():
    """Beale (1955): Dantzig's largest-coefficient rule cycles on this degenerate program; Bland's rule must not."""
    cost = [-0.75, 20.0, -0.5, 6.0]
    rows = [[0.25, -8.0, -1.0, 9.0], [0.5, -12.0, -0.5, 3.0], [0.0, 0.0, 1.0, 0.0]]
    solution = assert_agrees_with_scipy(cost, rows, [0.0, 0.0, 1.0])
    np.testing.assert_allclose(solution.x, [1.0, 0.0, 1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("dimension", [3, 6, 8])
def test_klee_minty_cube(dimension):
    """max sum 2^(n-j) x_j, 2 sum_{j<i} 2^(i-j) x_j + x_i <= 5^i: optimum x = (0, ..., 0, 5^n), many pivots to get there."""
    powers = 2.0 ** np.arange(dimension)[::-1]
    rows = np.array([[2 * 2.0 ** (i - j) if j < i else float(i == j) for j in range(dimension)] for i in range(dimension)])
    solution = assert_agrees_with_scipy(-powers, rows, 5.0 ** np.arange(1, dimension + 1))
    np.testing.assert_allclose(solution.x, np.r_[np.zeros(dimension - 1), 5.0**dimension], atol=1e-6)


def test_scale_does_not_change_the_answer():
    """Rows and costs near 1e-6 and 1e6 give the same point as the program at unit scale."""
    rows, bound, cost = np.array([[1.0, 2.0], [3.0, 1.0]]), np.array([4.0, 6.0]), np.array([-1.0, -1.0])
    reference = solve_linear_program(cost, rows, bound).x
    for scale in (1e-6, 1e6):
        scaled = solve_linear_program(scale * cost, rows * [[scale], [1 / scale]], bound * [scale, 1 / scale])
        np.testing.assert_allclose(scaled.x, reference, rtol=1e-9)


@pytest.mark.parametrize(
    "arguments, name",
    [
        (([1.0, 2.0], [[1.0, 2.0, 3.0]], [1.0]), "upper_matrix"),
        (([1.0, 2.0], [[1.0, 2.0]], [1.0, 2.0]), "upper_bound"),
        (([1.0, 2.0], [[1.0, 2.0]], None), "upper_matrix and upper_bound"),
        (([1.0, 2.0], None, None, [[1.0, 2.0]], [np.nan]), "equal_bound"),
        (([1.0, np.inf],), "cost"),
        (([1.0, 2.0], [[1.0, -np.inf]], [1.0]), "upper_matrix"),
        (([[1.0, 2.0]],), "cost"),
        (([],), "cost"),
    ],
)
def test_bad_input_raises_a_typed_error_naming_it(arguments, name):
    with pytest.raises(LinearProgramError, match=name):
        solve_linear_program(*arguments)
    assert issubclass(LinearProgramError, ValueError)


def max_margin_program(differences):
    """max delta s.t. D @ w >= delta per row, sum(w) = 1, w >= 0; variables (w, delta+, delta-) with delta = delta+ - delta-."""
    rows, weights = differences.shape
    cost = np.r_[np.zeros(weights), -1.0, 1.0]
    upper = np.column_stack([-differences, np.ones(rows), -np.ones(rows)])
    return cost, upper, np.zeros(rows), np.r_[np.ones(weights), 0.0, 0.0][None], np.ones(1)


def minimal_move_program(differences, start):
    """min sum(u) s.t. u >= |w - w0| (two rows each), D @ w >= 0, sum(w) = 1, w >= 0; variables (w, u)."""
    rows, weights = differences.shape
    identity = np.eye(weights)
    upper = np.vstack([np.hstack([identity, -identity]), np.hstack([-identity, -identity]), np.hstack([-differences, np.zeros((rows, weights))])])
    bound = np.r_[start, -start, np.zeros(rows)]
    return np.r_[np.zeros(weights), np.ones(weights)], upper, bound, np.r_[np.ones(weights), np.zeros(weights)][None], np.ones(1)


@st.composite
def difference_matrices(draw):
    """D (T x K) as LearnedLoss builds it: base-loss differences between checkpoints, often of one sign per column."""
    seed, checkpoints, weights = draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 40)), draw(st.integers(1, 6))
    generator = np.random.default_rng(seed)
    differences = generator.normal(size=(checkpoints, weights)) + draw(st.floats(-1.0, 1.0)) * generator.normal(size=weights)
    if draw(st.booleans()):
        differences = np.round(differences)  # ties and zero rows
    return differences, generator.dirichlet(np.ones(weights))


@settings(max_examples=60, deadline=None)
@given(difference_matrices())
def test_max_margin_on_the_simplex(problem):
    differences, _ = problem
    solution = assert_agrees_with_scipy(*max_margin_program(differences))
    weights = solution.x[: differences.shape[1]]
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert (differences @ weights).min() == pytest.approx(solution.x[-2] - solution.x[-1], abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(difference_matrices())
def test_minimal_l1_move(problem):
    differences, start = problem
    solution = assert_agrees_with_scipy(*minimal_move_program(differences, start))
    if solution.status == "optimal":
        weights = solution.x[: differences.shape[1]]
        assert np.abs(weights - start).sum() == pytest.approx(solution.value, abs=1e-7)
        assert (differences @ weights >= -1e-7).all()
