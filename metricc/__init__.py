"""metricc: compile a confusion-matrix metric into a PyTorch loss with a closed-form gradient.

    >>> import metricc
    >>> loss = metricc.loss("2*TP/(2*TP+FP+FN)")      # or metricc.loss("f1")
    >>> metricc.gradient("f1")["TP"]
    2*(FN + FP)/(FN + FP + 2*TP)**2
    >>> metricc.explain("f1").monotonicity.monotone
    True

Importing metricc is cheap: the pipeline's stages (and SymPy, Lark, torch) load when first used.
"""

from __future__ import annotations

import importlib

from .runtime.version import __version__  # the one version source, which pyproject.toml reads too

from .api import emit, explain, gradient, loss, threshold_curve  # noqa: E402
from .errors import (  # noqa: E402
    ConstraintError,
    DirectionError,
    InfeasibleConstraintError,
    InvalidMetricError,
    MetricError,
    MetricSyntaxError,
    OptionError,
    ParameterError,
    ThresholdError,
    UnknownNameError,
)

#: Submodules reachable as attributes of the package, imported on first access.
_SUBMODULES = (
    "analyses", "api", "arguments", "cache", "cli", "compiler", "conditions", "constrained", "demo", "derive", "direction", "emitter",
    "explanation", "formats", "guards", "language", "learned", "library", "linear_program", "load", "numeric", "parse",
    "plots", "printer", "recipe", "report", "runtime", "scores_csv", "threshold",
)

#: Classes reachable as attributes of the package, from the submodule that defines them, imported on first access.
_CLASSES = {"ConstrainedLoss": "constrained", "LearnedLoss": "learned"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConstrainedLoss",
    "ConstraintError",
    "DirectionError",
    "InfeasibleConstraintError",
    "InvalidMetricError",
    "LearnedLoss",
    "MetricError",
    "MetricSyntaxError",
    "OptionError",
    "ParameterError",
    "ThresholdError",
    "UnknownNameError",
    "emit",
    "explain",
    "gradient",
    "loss",
    "threshold_curve",
]
