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
SYNCS = ("ddp",)
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
    zero_division: Optional[float] = None
    sync: Optional[str] = None
    count_momentum: Optional[float] = None
    eps: float = 1e-7
    direction: str = "auto"
    validate_args: bool = True

    def with_direction(self, direction: str) -> "LossOptions":
        return replace(self, direction=direction)


OPTION_NAMES = tuple(f.name for f in fields(LossOptions))
_NONE_ALLOWED = ("ignore_index", "class_weights", "zero_division", "sync", "count_momentum")

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
    values = {name: value for name, value in overrides.items() if value is not None or name in _NONE_ALLOWED}
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
    _check_layout_options(options)
    zero_division = options.zero_division
    if zero_division is not None:
        if isinstance(zero_division, bool) or not isinstance(zero_division, (int, float)) or not math.isfinite(zero_division):
            raise OptionError(f"zero_division={zero_division!r} must be a finite number or None")
        zero_division = float(zero_division)
    if options.sync is not None:
        _choice("sync", options.sync, SYNCS)
    momentum = options.count_momentum
    if momentum is not None:
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 < momentum <= 1.0:
            raise OptionError(f"count_momentum={momentum!r} must lie in (0, 1] (the weight of the current batch) or be None")
        momentum = float(momentum)
    return replace(
        options,
        steepness=steepness,
        width=width,
        eps=eps,
        threshold=float(threshold),
        class_weights=weights,
        zero_division=zero_division,
        count_momentum=momentum,
    )


def _check_layout_options(options: LossOptions) -> None:
    """Options that only make sense together: averaging against the task and the counts' layout."""
    if options.average == "samples" and options.task != "multilabel":
        raise OptionError(f"average='samples' needs task='multilabel' (one metric per sample over its labels), got task={options.task!r}")
    if not options.include_background and options.task == "binary":
        raise OptionError("include_background=False needs task='multiclass' or 'multilabel': a binary input has one class")
    if options.class_weights is not None and (options.task == "binary" or options.average not in ("macro", "weighted")):
        raise OptionError(
            f"class_weights weigh classes in average='macro' or 'weighted', not average={options.average!r} with task={options.task!r}"
        )
    if options.count_momentum is not None and (options.multidim_average != "global" or options.average == "samples"):
        raise OptionError(
            "count_momentum needs counts pooled over the batch: multidim_average='global' and an average other than 'samples'"
        )
