"""One exception family, so callers can catch everything metricc raises about a formula."""

from __future__ import annotations


class MetricError(ValueError):
    """Base class: the formula, a name in it or an option cannot be compiled."""


class MetricSyntaxError(MetricError):
    """The text is not a sentence of the metric language; carries line, column and a caret."""

    def __init__(self, message: str, line: int, column: int, context: str = ""):
        self.line = line
        self.column = column
        self.context = context
        where = f"line {line}, column {column}: {message}"
        super().__init__(f"{where}\n{context}".rstrip())


class UnknownNameError(MetricSyntaxError):
    """A name that is neither a count, a binding, a parameter, a function nor a library metric."""


class InvalidMetricError(MetricError):
    """The formula parses but cannot be a metric (no count in it, too large, recursive, ...)."""


class ParameterError(MetricError):
    """A parameter value lies outside its declared domain, or parameters conflict."""


class DirectionError(MetricError):
    """The partials do not say whether the metric is to be maximised or minimised."""


class OptionError(MetricError):
    """An option given to `loss`, `emit` or the CLI has a value it cannot take."""


class ConstraintError(MetricSyntaxError):
    """A constraint's bound lies outside the declared range of its metric (`precision >= 1.5`); points at the bound."""


class ThresholdError(MetricError):
    """Scores, targets or a metric from which no decision threshold can be chosen (NaN, one class, ...)."""

    def __init__(self, message: str, cli_message: str = ""):
        super().__init__(message)
        self.cli_message = cli_message or message  # the same advice with keywords spelt as `metricc threshold` flags


class InfeasibleConstraintError(ThresholdError):
    """No decision threshold meets every constraint on these scores; `.curve` (`.curves` for multi-label) is the
    curve with `.feasible` False everywhere, `.reached` each constraint's best value on this data."""

    def __init__(self, message: str, curve=None, reached=None, cli_message: str = ""):
        super().__init__(message, cli_message)
        self.curve = curve
        self.reached = dict(reached or {})
