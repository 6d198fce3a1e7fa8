"""Numbers for the sampled checks: SymPy trees evaluated over numpy arrays (no lambdify: it execs generated source),
and the confusion matrices, aggregates and parameter values they are evaluated at."""

from __future__ import annotations

import math
from typing import Callable, Dict, List

import numpy as np
import sympy

from .derive import Derivation
from .guards import ClampAtZero, SafeDenominator, SignedDenominator
from .language import COUNTS

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


def dense_counts(samples: int = 4000, seed: int = 0) -> Dict[sympy.Symbol, np.ndarray]:
    """Every confusion matrix with counts 0..5, and random ones spread over six orders of magnitude, some with
    zeros: the points where sampled verdicts are checked."""
    grid = np.stack(np.meshgrid(*[np.arange(6.0)] * 4, indexing="ij"), axis=-1).reshape(-1, 4)
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.01, 1.0, size=(samples, 4)) * 10.0 ** rng.uniform(-2, 4, size=(samples, 1))
    spread *= rng.uniform(size=(samples, 4)) > 0.1
    return dict(zip(COUNTS, np.concatenate([grid, spread]).T))


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


def _with_defaults(derivation: Derivation, values: Dict[sympy.Symbol, np.ndarray]) -> Dict[sympy.Symbol, np.ndarray]:
    values = dict(values)
    values.update({p.symbol: np.float64(p.default) for p in derivation.definition.parameters})
    return values
