"""The keyword arguments of metricc.loss and emit, as the compiler sees them: the loss options (LossOptions, built from the runtime's one table (runtime/options.py)),
and make_options, which checks them with the runtime's own validator and reports problems as OptionError; and the
keyword arguments that are not options, a metric's parameters, checked against their domains."""

from __future__ import annotations

import math
from dataclasses import field, make_dataclass, replace
from typing import Any, Dict, Mapping, Sequence, Tuple

from .errors import OptionError, ParameterError
from .runtime.options import (
    OPTION_NAMES, OPTIONS, InvalidOption, domain_text, parameter_problem, unknown_arguments_problem, validate_options,
)

#: A metric parameter's (default, lower, upper, lower_open, upper_open), as a loss class's `metric_parameters` holds it.
Domain = Tuple[float, float, float, bool, bool]

LossOptions = make_dataclass(
    "LossOptions",
    [(option.name, object, field(default=option.default)) for option in OPTIONS],
    namespace={
        "__doc__": "Everything about a compiled loss except its formula; becomes the module's constructor defaults.",
        "__module__": __name__,
        "with_direction": lambda self, direction: replace(self, direction=direction),
    },
    frozen=True,
)

__all__ = ["LossOptions", "OPTION_NAMES", "checked_parameters", "make_options", "split_arguments"]


def make_options(**overrides) -> LossOptions:
    """Validated options from keyword arguments, naming any unknown or out-of-range one. None means the option's
    default, except for the options whose value may be None."""
    given = {name: value for name, value in overrides.items() if value is not None or _none_allowed(name)}
    try:
        return LossOptions(**validate_options(given))
    except InvalidOption as error:
        raise OptionError(str(error)) from None


def _none_allowed(name: str) -> bool:
    return any(option.name == name and option.default is None for option in OPTIONS)


def split_arguments(arguments: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Keyword arguments of loss, emit and threshold_curve as (loss options, metric parameters): a name in the
    options table is an option, any other a parameter (no parameter may be named like an option)."""
    options = {name: value for name, value in arguments.items() if name in OPTION_NAMES}
    return options, {name: value for name, value in arguments.items() if name not in OPTION_NAMES}


def checked_parameters(metric: str, domains: Mapping[str, Domain], values: Mapping[str, Any]) -> Dict[str, float]:
    """Parameter values as floats, each a finite number inside its domain; an OptionError names the keywords that
    are neither options nor parameters of the metric, a ParameterError the parameter and its domain."""
    unknown = sorted(set(values) - set(domains))
    if unknown:
        raise OptionError(unknown_arguments_problem(metric, unknown, list(domains)))
    checked = {}
    for name, value in values.items():
        _, lower, upper, lower_open, upper_open = domains[name]
        if parameter_problem(name, value, lower, upper, lower_open, upper_open) is not None:
            domain = domain_text(lower, upper, lower_open, upper_open)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            shown = f"{value:g}" if number else repr(value)
            reason = "lies outside its domain" if number else "is not a finite number; it takes a number in"
            raise ParameterError(f"parameter {name} of {metric} = {shown} {reason} {domain}")
        checked[name] = float(value)
    return checked


def parameter_domains(parameters: Sequence[Any]) -> Dict[str, Domain]:
    """The domains of a definition's Parameter objects, in the form a loss class's `metric_parameters` holds."""
    return {p.name: (float(p.default), p.lower, p.upper, p.lower_open, p.upper_open) for p in parameters}
