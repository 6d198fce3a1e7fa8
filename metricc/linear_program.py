# TEMPORARY scipy shim until the helper's solver lands (never committed)
from typing import NamedTuple, Optional
import numpy as np
from scipy.optimize import linprog
class LinearProgram(NamedTuple):
    status: str
    x: Optional[np.ndarray]
    value: Optional[float]
def solve_linear_program(cost, upper_matrix=None, upper_bound=None, equal_matrix=None, equal_bound=None):
    r = linprog(cost, A_ub=upper_matrix, b_ub=upper_bound, A_eq=equal_matrix, b_eq=equal_bound, bounds=[(0, None)] * len(cost), method="highs")
    if r.status == 0: return LinearProgram("optimal", r.x, float(r.fun))
    return LinearProgram("infeasible" if r.status == 2 else "unbounded", None, None)
