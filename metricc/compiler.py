"""The pipeline in one place: parse -> derive -> guards and direction -> emit (-> load), with a cache of compilations."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Dict, Optional, Tuple

import sympy

from .direction import resolve_direction
from .derive import Derivation, derive
from .emitter import emit_module
from .errors import InvalidMetricError, OptionError
from .language import COUNT_NAMES, MATRIX_FORM, MetricDefinition, as_two_class
from .library import Library, LibraryEntry, default_library
from .arguments import LossOptions, checked_parameters, make_options, parameter_domains, split_arguments
from .parse import parse
from .runtime.options import matrix_option_problem

_PLAIN_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\Z")
#: Metric parameters' new defaults, (name, value) sorted by name: what `--param` and emit's keywords give.
ParameterDefaults = Tuple[Tuple[str, float], ...]


@dataclass(frozen=True)
class Compilation:
    """Everything the pipeline produced for one metric and one set of options."""

    name: str
    entry: Optional[LibraryEntry]
    derivation: Derivation
    options: LossOptions
    source: str


def resolve(
    expression: str, task: Optional[str] = "binary", parameter_defaults: ParameterDefaults = ()
) -> Tuple[Optional[LibraryEntry], Derivation]:
    """A library name (or alias) or a formula, parsed and differentiated, in the form the task reads it in:
    with task='multiclass' a library metric with a matrix form, or a formula of matrix aggregates, is a metric of
    the whole confusion matrix; with another task a matrix metric takes its two-class form, over TP, FP, FN and
    TN; with task=None (what explain and grad show) the matrix form only where the metric has no four-count form
    of its own. parameter_defaults, checked values (`checked_parameter_defaults`), replace the parameters' defaults."""
    entry, definition = resolve_definition(expression, task)
    if definition.form is MATRIX_FORM and not _reads_matrix(entry, task):
        definition = as_two_class(definition)
    return entry, _with_parameter_defaults(derive(definition), parameter_defaults)


def _reads_matrix(entry: Optional[LibraryEntry], task: Optional[str]) -> bool:
    """Whether a metric with a matrix form is compiled (task) or explained (None) in it."""
    return task == "multiclass" or (task is None and (entry is None or entry.matrix_only))


def _with_parameter_defaults(derivation, parameter_defaults: ParameterDefaults):
    """The derivation with new parameter defaults: the partials do not depend on them, only what is reported,
    sampled and emitted as the constructor's default."""
    if not parameter_defaults:
        return derivation
    values = dict(parameter_defaults)
    parameters = tuple(
        replace(p, default=sympy.Rational(values[p.name])) if p.name in values else p for p in derivation.definition.parameters
    )
    return replace(derivation, definition=replace(derivation.definition, parameters=parameters))


def checked_parameter_defaults(expression: str, name: Optional[str], task: Optional[str], values: dict) -> ParameterDefaults:
    """Parameter values given by keyword (or `--param`), checked against the metric's parameters and their domains."""
    if not values:
        return ()
    entry, derivation = resolve(expression, task)
    metric = name or (entry.name if entry else "metric")
    checked = checked_parameters(metric, parameter_domains(derivation.definition.parameters), values)
    return tuple(sorted(checked.items()))


def resolve_definition(expression: str, task: Optional[str]) -> Tuple[Optional[LibraryEntry], MetricDefinition]:
    """The parsed metric: a library entry's (its matrix form where the task reads one), or the formula's."""
    library = default_library()
    plain = _PLAIN_NAME.match(expression) if isinstance(expression, str) else None
    entry = library.entry(plain.group(1)) if plain and plain.group(1) not in COUNT_NAMES else None
    if entry is None:
        return None, _parse_formula(expression, library, task)
    matrix = library.matrix_definition(entry.name) if _reads_matrix(entry, task) else None
    return entry, matrix or library.definition(entry.name)


def _parse_formula(expression: str, library: Library, task: Optional[str]) -> MetricDefinition:
    """A formula whose library names are read as each alone is, where the whole formula can read them so: with
    task='multiclass' in their matrix forms (`1 - qwk`, `2 * accuracy - 1`), with task=None (grad, explain) those
    without a four-count form (`1 - qwk`); else, and in a formula that also reads per-class names (`qwk + f1`),
    each name in its four-count form."""
    if task in ("multiclass", None):
        try:
            return parse(expression, library=library.reading_matrix_forms(only_without_counts=task is None))
        except InvalidMetricError:
            pass  # a mixture of whole-matrix and per-class names, or an error the four-count reading reports as well
    return parse(expression, library=library)


@lru_cache(maxsize=256)
def _compile_cached(
    expression: str, name: Optional[str], options: LossOptions, standalone: bool, parameter_defaults: ParameterDefaults = ()
) -> Compilation:
    entry, derivation = resolve(expression, options.task, parameter_defaults)
    name = name or (entry.name if entry else "metric")
    problem = matrix_option_problem(name, options.__dict__) if derivation.form is MATRIX_FORM else None
    if problem is not None:
        raise OptionError(problem)
    direction = resolve_direction(derivation, options.direction, entry.direction if entry else None)
    resolved = options.with_direction(direction)
    return Compilation(name, entry, derivation, resolved, emit_module(derivation, name, resolved, standalone))


def compile_metric(expression: str, /, name: Optional[str] = None, standalone: bool = False, **arguments) -> Compilation:
    """Run the pipeline up to the emitted source (standalone: with the runtime inlined); repeated calls with the
    same input are served from a cache. Keyword arguments are loss options and metric parameters; a parameter's
    value becomes the emitted class's default for it (the constructor still takes any value in its domain)."""
    options, parameters = split_arguments(arguments)
    checked = make_options(**options)
    defaults = checked_parameter_defaults(expression, name, checked.task, parameters)
    return _compile_cached(expression, name, checked, bool(standalone), defaults)


def gradient(expression: str, task: Optional[str] = None) -> Dict[str, sympy.Expr]:
    """The partial derivatives of a metric by each variable of the form the task reads (resolve), as `metricc grad`
    shows them: "TP", "FP", "FN", "TN", or the aggregates of a metric of the whole matrix ("SUM", "TRACE", ...)."""
    _, derivation = resolve(expression, task)
    return derivation.partials_by_name()


def generated_sources() -> dict:
    """File name -> source for every library metric with default options, and for each one with a matrix form
    that form with task='multiclass' (<name>_multiclass.py): the contents of generated/."""
    library = default_library()
    sources = {}
    for name in library.names():
        sources[f"{name}.py"] = compile_metric(name).source
        if library.entry(name).matrix is not None:
            sources[f"{name}_multiclass.py"] = compile_metric(name, f"{name}_multiclass", task="multiclass").source
    return sources
