"""The loss options shared by the emitter, the Python API and the CLI, with their checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Optional, Tuple

from .errors import OptionError

APPROXIMATIONS = ("anyloss", "identity", "linear")
TASKS = ("binary", "multiclass", "multilabel")
AVERAGES = ("micro", "macro", "weighted", "none", "samples")
MULTIDIM_AVERAGES = ("global", "samplewise")
DIRECTIONS = ("auto", "maximize", "minimize")
_DIRECTION_SPELLINGS = {"maximise": "maximize", "minimise": "minimize", "max": "maximize", "min": "minimize"}


@dataclass(frozen=True)
class LossOptions:
    """Everything about a compiled loss except its formula; becomes the module's constructor defaults."""

    task: str = "binary"
    from_logits: bool = False
    approximation: str = "anyloss"
    steepness: float = 73.0
    threshold: float = 0.5
    width: float = 0.2
    average: str = "micro"
    multidim_average: str = "global"
    ignore_index: Optional[int] = None
    include_background: bool = True
    class_weights: Optional[Tuple[float, ...]] = None
    eps: float = 1e-7
    direction: str = "auto"
    validate_args: bool = True

    def with_direction(self, direction: str) -> "LossOptions":
        return replace(self, direction=direction)


OPTION_NAMES = tuple(f.name for f in fields(LossOptions))

#: Local names of the emitted formula functions; a metric parameter may not take one (nor x0, x1, ...).
EMITTED_NAMES = ("tp", "fp", "fn", "tn", "eps", "value", "d_tp", "d_fp", "d_fn", "d_tn", "preds", "target", "signed_clamp")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise OptionError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


def _positive_finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise OptionError(f"{name}={value!r} must be a positive finite number")
    return float(value)


def make_options(**overrides) -> LossOptions:
    """Build validated options from keyword arguments, naming any unknown or out-of-range one."""
    unknown = sorted(set(overrides) - set(OPTION_NAMES))
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)}; valid options are {', '.join(OPTION_NAMES)}")
    values = {name: value for name, value in overrides.items() if value is not None or name in ("ignore_index", "class_weights")}
    direction = values.get("direction", "auto")
    if isinstance(direction, str):
        values["direction"] = _DIRECTION_SPELLINGS.get(direction, direction)
    options = replace(LossOptions(), **values)
    _choice("task", options.task, TASKS)
    _choice("approximation", options.approximation, APPROXIMATIONS)
    _choice("average", options.average, AVERAGES)
    _choice("multidim_average", options.multidim_average, MULTIDIM_AVERAGES)
    _choice("direction", options.direction, DIRECTIONS)
    for flag in ("from_logits", "include_background", "validate_args"):
        if not isinstance(getattr(options, flag), bool):
            raise OptionError(f"{flag}={getattr(options, flag)!r} must be True or False")
    steepness = _positive_finite("steepness", options.steepness)
    width = _positive_finite("width", options.width)
    eps = _positive_finite("eps", options.eps)
    threshold = options.threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise OptionError(f"threshold={threshold!r} must lie strictly between 0 and 1")
    if options.ignore_index is not None and (isinstance(options.ignore_index, bool) or not isinstance(options.ignore_index, int)):
        raise OptionError(f"ignore_index={options.ignore_index!r} must be an integer or None")
    weights = options.class_weights
    if weights is not None:
        weights = tuple(_positive_finite("class_weights entry", float(w)) for w in weights)
        if not weights:
            raise OptionError("class_weights must not be empty")
    if options.average == "samples" and options.task == "binary":
        raise OptionError("average='samples' needs task='multilabel' or 'multiclass': a binary sample has one count")
    return replace(options, steepness=steepness, width=width, eps=eps, threshold=float(threshold), class_weights=weights)
