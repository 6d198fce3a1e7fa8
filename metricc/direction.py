"""Which way to optimise a metric: maximise when making any one prediction more correct raises it, minimise when
it lowers it, decided from each form's evidence at sampled confusion matrices; an explicit request or the
library's declaration comes first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import sympy

from .derive import Derivation
from .errors import DirectionError
from .numeric import aggregate_values, cell_gradient, default_values, evaluate, parameter_samples, sample_counts, sample_matrices

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
