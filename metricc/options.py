"""The compiler's view of the loss options: LossOptions, built from the runtime's one table (runtime/options.py),
and make_options, which checks them with the runtime's own validator and reports problems as OptionError."""

from __future__ import annotations

from dataclasses import field, make_dataclass, replace

from .errors import OptionError
from .runtime.options import OPTION_NAMES, OPTIONS, InvalidOption, validate_options

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

__all__ = ["LossOptions", "OPTION_NAMES", "make_options"]


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
