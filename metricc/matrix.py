"""Matrix metrics: formulas over the aggregates of the whole C x C confusion matrix (SUM, TRACE, SUM_RC, ...).

Their partials come from SymPy as the four counts' do; the runtime combines them with each aggregate's known
derivative into G = d metric / d M. With two classes every aggregate is a function of TP, FP, FN and TN, so a
binary (or per-label) matrix metric becomes an ordinary four-count metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Tuple

import numpy as np
import sympy

from .derive import tidy
from .errors import DirectionError, InvalidMetricError
from .parse import COUNTS, MATRIX_NAMES, MATRIX_SYMBOLS, MAX_NODES, MetricDefinition, expression_size

TP, FP, FN, TN = COUNTS
_SYMBOL = dict(zip(MATRIX_NAMES, MATRIX_SYMBOLS))

#: The 2 x 2 matrix is [[TN, FP], [FN, TP]] (rows: true class 0, 1); for two classes W = 1 - delta whatever the
#: weighting, so every observed (expected) disagreement is FP + FN (r_0 c_1 + r_1 c_0).
_TWO_CLASSES = {
    "SUM": TP + FP + FN + TN,
    "TRACE": TP + TN,
    "SUM_RC": (FP + TN) * (FN + TN) + (TP + FN) * (TP + FP),
    "SUM_RR": (FP + TN) ** 2 + (TP + FN) ** 2,
    "SUM_CC": (FN + TN) ** 2 + (TP + FP) ** 2,
    **{f"OBSERVED_{w}": FP + FN for w in ("UNWEIGHTED", "LINEAR", "QUADRATIC")},
    **{f"EXPECTED_{w}": (FP + TN) * (TP + FP) + (TP + FN) * (FN + TN) for w in ("UNWEIGHTED", "LINEAR", "QUADRATIC")},
}

#: d aggregate / d M[i, j], in the notation of the docstrings: r, c the row and column sums, W the weights.
AGGREGATE_GRADIENTS = {
    "SUM": "1",
    "TRACE": "delta_ij",
    "SUM_RC": "c_i + r_j",
    "SUM_RR": "2 r_i",
    "SUM_CC": "2 c_j",
    **{f"OBSERVED_{w}": f"W{w[0]}_ij" for w in ("UNWEIGHTED", "LINEAR", "QUADRATIC")},
    **{f"EXPECTED_{w}": f"(W{w[0]} c)_i + (W{w[0]}^T r)_j" for w in ("UNWEIGHTED", "LINEAR", "QUADRATIC")},
}


def as_two_class(definition: MetricDefinition) -> MetricDefinition:
    """The matrix metric with two classes, as a formula over TP, FP, FN and TN (class 1 is the positive one)."""
    replacements = {_SYMBOL[name]: value for name, value in _TWO_CLASSES.items()}
    return MetricDefinition(definition.expression.xreplace(replacements), definition.parameters, definition.source)


@dataclass(frozen=True)
class MatrixDerivation:
    """A matrix metric and its partials with respect to the aggregates it uses, in MATRIX_NAMES order."""

    definition: MetricDefinition
    value: sympy.Expr
    aggregates: Tuple[str, ...]
    partials: Tuple[sympy.Expr, ...]

    def partials_by_name(self) -> Dict[str, sympy.Expr]:
        return dict(zip(self.aggregates, self.partials))

    def gradient_text(self) -> str:
        """G[i, j] = d metric / d M[i, j] as a sum over the aggregates."""
        terms = []
        for name in self.aggregates:
            factor = AGGREGATE_GRADIENTS[name]
            terms.append(f"d{name}" if factor == "1" else f"d{name} * ({factor})" if " " in factor else f"d{name} * {factor}")
        return " + ".join(terms)


@lru_cache(maxsize=256)
def derive_matrix(definition: MetricDefinition) -> MatrixDerivation:
    """Differentiate with respect to each aggregate the formula uses; partials simplified, the value as written."""
    value = definition.expression
    used = tuple(name for name in MATRIX_NAMES if _SYMBOL[name] in value.free_symbols)
    raw = [sympy.diff(value, _SYMBOL[name]) for name in used]
    for name, partial in zip(used, raw):
        if expression_size(partial)[0] > MAX_NODES:
            raise InvalidMetricError(f"the partial derivative with respect to {name} has more than {MAX_NODES} operations; simplify the formula")
    return MatrixDerivation(definition, value, used, tuple(tidy(partial) for partial in raw))


def resolve_matrix_direction(derivation: MatrixDerivation, requested: str, declared: str | None) -> str:
    """The requested direction, else the library's, else the one sampled matrices agree on: moving a sample
    from a wrong predicted class to its true class raises (maximize) or lowers (minimize) the metric."""
    if requested in ("maximize", "minimize"):
        return requested
    if declared is not None:
        return declared
    from .analyse import changes_with_parameters

    signs = set(np.sign(_correction_gains(derivation, spread=False)).tolist()) - {0.0}
    reason = "moving a sample to its true class raises it for some confusion matrices and lowers it for others"
    if len(signs) == 1:
        direction = "maximize" if signs.pop() > 0 else "minimize"
        parameters = derivation.definition.parameters
        if not parameters or set(np.sign(_correction_gains(derivation, spread=True)).tolist()) - {0.0} == {1.0 if direction == "maximize" else -1.0}:
            return direction
        reason = changes_with_parameters(direction, parameters)
    raise DirectionError(
        f"cannot tell whether to maximize or minimize {sympy.sstr(derivation.value)}: {reason}; pass "
        "direction='maximize' or direction='minimize' (CLI: --direction)"
    )


def _correction_gains(derivation: MatrixDerivation, spread: bool, samples: int = 200, classes: int = 4, seed: int = 0) -> np.ndarray:
    """G[i, i] - G[i, j] averaged over i != j, at random matrices with a dominant diagonal; the parameters at their
    defaults, or (spread) at points over their domains."""
    from .analyse import default_values, evaluate, parameter_samples

    rng = np.random.default_rng(seed)
    matrices = rng.uniform(0.1, 1.0, size=(samples, classes, classes)) * 10.0 ** rng.uniform(0, 3, size=(samples, 1, 1))
    matrices += np.eye(classes) * matrices.sum(2, keepdims=True) * rng.uniform(0.5, 2, size=(samples, 1, 1))
    values = aggregate_values(matrices)
    parameters = derivation.definition.parameters
    values.update(parameter_samples(parameters, samples) if spread else default_values(parameters))
    gradient = np.zeros_like(matrices)
    for name, partial in zip(derivation.aggregates, derivation.partials):
        weight = np.broadcast_to(evaluate(partial, values), (samples,))
        gradient += weight[:, None, None] * aggregate_gradient(name, matrices)
    diagonal = np.einsum("sii->si", gradient)
    off = ~np.eye(classes, dtype=bool)
    gains = (diagonal[:, :, None] - gradient)[:, off]
    return gains.mean(1)


def weight_matrix(kind: str, classes: int) -> np.ndarray:
    """W of a weighting: 1 - delta, |i - j| / (C - 1) or (i - j)^2 / (C - 1)^2 (numpy; the runtime has its own)."""
    difference = np.subtract.outer(np.arange(classes), np.arange(classes)).astype(float)
    if kind == "UNWEIGHTED":
        return (difference != 0).astype(float)
    scale = max(classes - 1, 1)
    return np.abs(difference) / scale if kind == "LINEAR" else difference**2 / scale**2


def aggregate_values(matrices: np.ndarray) -> Dict[sympy.Symbol, np.ndarray]:
    """Every aggregate of a stack of matrices (samples, C, C), keyed by its symbol: the reference the runtime is
    tested against, too."""
    rows, columns = matrices.sum(2), matrices.sum(1)
    classes = matrices.shape[1]
    values = {
        "SUM": matrices.sum((1, 2)),
        "TRACE": np.einsum("sii->s", matrices),
        "SUM_RC": (rows * columns).sum(1),
        "SUM_RR": (rows**2).sum(1),
        "SUM_CC": (columns**2).sum(1),
    }
    for kind in ("UNWEIGHTED", "LINEAR", "QUADRATIC"):
        weights = weight_matrix(kind, classes)
        values[f"OBSERVED_{kind}"] = (matrices * weights).sum((1, 2))
        values[f"EXPECTED_{kind}"] = np.einsum("si,ij,sj->s", rows, weights, columns)
    return {_SYMBOL[name]: value for name, value in values.items()}


def aggregate_gradient(name: str, matrices: np.ndarray) -> np.ndarray:
    """d aggregate / d M for a stack of matrices, as AGGREGATE_GRADIENTS says."""
    samples, classes, _ = matrices.shape
    rows, columns = matrices.sum(2), matrices.sum(1)
    if name == "SUM":
        return np.ones_like(matrices)
    if name == "TRACE":
        return np.broadcast_to(np.eye(classes), matrices.shape)
    if name == "SUM_RC":
        return columns[:, :, None] + rows[:, None, :]
    if name == "SUM_RR":
        return np.broadcast_to(2 * rows[:, :, None], matrices.shape)
    if name == "SUM_CC":
        return np.broadcast_to(2 * columns[:, None, :], matrices.shape)
    kind, weighting = name.split("_")
    weights = weight_matrix(weighting, classes)
    if kind == "OBSERVED":
        return np.broadcast_to(weights, matrices.shape)
    return (columns @ weights.T)[:, :, None] + (rows @ weights)[:, None, :]
