"""metricc: compile a confusion-matrix metric into a PyTorch loss with a closed-form gradient.

    >>> import metricc
    >>> loss = metricc.loss("2*TP/(2*TP+FP+FN)")      # or metricc.loss("f1")
    >>> metricc.gradient("f1")["TP"]
    2*(FN + FP)/(FN + FP + 2*TP)**2
    >>> metricc.explain("f1").monotonicity.monotone
    True
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    DirectionError,
    InvalidMetricError,
    MetricError,
    MetricSyntaxError,
    OptionError,
    ParameterError,
    UnknownNameError,
)

# Load the emit stage now, so that the function `emit` below, not the submodule, is `metricc.emit`.
from . import emit as _emit_stage  # noqa: E402,F401


def emit(expression: str, name: str | None = None, **options) -> str:
    """The source of a self-contained loss module file for the metric."""
    from .compiler import compile_metric

    return compile_metric(expression, name, **options).source


def explain(expression: str):
    """An `Explanation` of the metric: direction, monotonicity, range, singular points and guards, partials,
    per-sample gradient weights and operation counts; `.format("text" | "latex" | "json" | "markdown")`."""
    from .report import explain as _explain

    return _explain(expression)


def gradient(expression: str):
    """The four SymPy partials of the metric, keyed "TP", "FP", "FN", "TN"."""
    from .compiler import gradient as _gradient

    return _gradient(expression)


def loss(expression: str, name: str | None = None, **options):
    """A `torch.nn.Module` loss for the metric, built from the same source `emit` returns."""
    from .compiler import compile_metric
    from .emit import class_name
    from .load import load_source

    compilation = compile_metric(expression, name, **options)
    module = load_source(compilation.source)
    return getattr(module, class_name(compilation.name))()


__all__ = [
    "DirectionError",
    "InvalidMetricError",
    "MetricError",
    "MetricSyntaxError",
    "OptionError",
    "ParameterError",
    "UnknownNameError",
    "emit",
    "explain",
    "gradient",
    "loss",
]
