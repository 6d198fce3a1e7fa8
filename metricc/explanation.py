"""What `metricc explain` and `metricc grad` say about a metric, of either form: an `Explanation` gathers the
analyses (direction, monotonicity, range, singular points, operation counts); formats.py prints it and plots.py
draws it. Nothing here imports torch, except that a matrix metric's direction is sampled with the runtime's
aggregates (their one definition)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import sympy

from .analyses import Monotonicity, OperationCount, ValueRange, estimate_range, monotonicity, operation_counts
from .direction import decide_direction
from .guards import SingularPoint, singular_points
from .derive import Derivation, per_sample_weights
from .library import LibraryEntry
from .language import Parameter

#: Bumped only when a key is removed or changes meaning; new keys may be added within a version.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Explanation:
    """Everything `metricc explain` reports about one metric; `analysed` is False for `metricc grad`. `kind` is
    the form: "counts" (TP, FP, FN, TN) or "matrix" (aggregates of the whole confusion matrix)."""

    source: str
    name: Optional[str]
    entry: Optional[LibraryEntry]
    derivation: Derivation
    analysed: bool = False
    direction: Optional[str] = None
    direction_source: str = ""  # "library" or "partials"
    direction_note: str = ""
    monotonicity: Optional[Monotonicity] = None  # of the four counts; None for a matrix metric
    range: Optional[ValueRange] = None
    singular_points: Tuple[SingularPoint, ...] = ()
    operations: Optional[OperationCount] = None

    @property
    def kind(self) -> str:
        return self.derivation.form.kind

    @property
    def label(self) -> str:
        """The name to print: the library name, else "metric"."""
        return self.name or "metric"

    @property
    def parameters(self) -> Tuple[Parameter, ...]:
        return self.derivation.definition.parameters

    @property
    def per_sample(self) -> Tuple[sympy.Expr, ...]:
        """A four-count metric's d metric / d a for a positive and a negative sample; () for a matrix metric,
        whose samples take G[label, j] (`derivation.cell_gradient_text()`)."""
        return per_sample_weights(self.derivation) if self.kind == "counts" else ()

    def to_dict(self) -> dict:
        from .formats import format_json_dict

        return format_json_dict(self)

    def to_json(self) -> str:
        """What `--format json` prints."""
        return self.format("json")

    def format(self, form: str = "text") -> str:
        from .formats import format_explanation

        return format_explanation(self, form)

    def __str__(self) -> str:
        return self.format("text")


def _resolve(expression: str, task: Optional[str], parameter_defaults):
    from .compiler import resolve

    return resolve(expression, task, parameter_defaults)


def gradient_report(expression: str, task: Optional[str] = None, parameter_defaults=()) -> Explanation:
    """The formula and its partials (and per-sample weights, or G): what `metricc grad` prints. task: as for
    `compiler.resolve`, None for the metric's own form; parameter_defaults (checked) replace the defaults."""
    entry, derivation = _resolve(expression, task, parameter_defaults)
    return Explanation(expression, entry.name if entry else None, entry, derivation)


def explain(expression: str, task: Optional[str] = None, parameter_defaults=()) -> Explanation:
    """Analyse a metric (a library name or a formula) in the form the task reads it in: direction,
    monotonicity (four counts), range, singular points and guards, partials and operation counts; sampled with
    the parameters at their defaults, which parameter_defaults replace."""
    entry, derivation = _resolve(expression, task, parameter_defaults)
    verdict = decide_direction(derivation)
    if entry is not None:
        direction, source = entry.direction, "library"
        if verdict.direction == entry.direction:
            note = "the signs of the partials agree"
        elif verdict.direction is None:
            note = f"the signs of the partials alone do not decide it: {verdict.reason}"
        else:
            note = f"the signs of the partials suggest {verdict.direction}"
    else:
        direction, source, note = verdict.direction, "partials", verdict.reason
    return Explanation(
        source=expression,
        name=entry.name if entry else None,
        entry=entry,
        derivation=derivation,
        analysed=True,
        direction=direction,
        direction_source=source,
        direction_note=note,
        monotonicity=monotonicity(derivation, direction) if derivation.form.kind == "counts" else None,
        range=ValueRange(entry.range[0], entry.range[1], "library") if entry else estimate_range(derivation),
        singular_points=tuple(singular_points(derivation)),
        operations=operation_counts(derivation),
    )
