"""The pipeline in one place: parse -> derive -> analyse -> emit (-> load), with a cache of compilations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Optional, Tuple

import sympy

from .analyse import resolve_direction
from .derive import Derivation, derive
from .emitter import emit_module
from .library import LibraryEntry, default_library
from .options import LossOptions, make_options
from .parse import COUNT_NAMES, parse

_PLAIN_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\Z")


@dataclass(frozen=True)
class Compilation:
    """Everything the pipeline produced for one metric and one set of options."""

    name: str
    entry: Optional[LibraryEntry]
    derivation: Derivation
    options: LossOptions
    source: str


def resolve(expression: str) -> Tuple[Optional[LibraryEntry], Derivation]:
    """A library name (or alias) or a formula, parsed and differentiated."""
    library = default_library()
    plain = _PLAIN_NAME.match(expression) if isinstance(expression, str) else None
    entry = library.entry(plain.group(1)) if plain and plain.group(1) not in COUNT_NAMES else None
    definition = library.definition(entry.name) if entry else parse(expression, library=library)
    return entry, _derive_cached(definition)


@lru_cache(maxsize=256)
def _derive_cached(definition) -> Derivation:
    return derive(definition)


@lru_cache(maxsize=256)
def _compile_cached(expression: str, name: Optional[str], options: LossOptions, standalone: bool) -> Compilation:
    entry, derivation = resolve(expression)
    direction = resolve_direction(derivation, options.direction, entry.direction if entry else None)
    resolved = options.with_direction(direction)
    name = name or (entry.name if entry else "metric")
    return Compilation(name, entry, derivation, resolved, emit_module(derivation, name, resolved, standalone))


def compile_metric(expression: str, name: Optional[str] = None, standalone: bool = False, **options) -> Compilation:
    """Run the pipeline up to the emitted source (standalone: with the runtime inlined); repeated calls with the
    same input are served from a cache."""
    return _compile_cached(expression, name, make_options(**options), bool(standalone))


def gradient(expression: str) -> Dict[str, sympy.Expr]:
    """The four partial derivatives of a metric, keyed "TP", "FP", "FN", "TN"."""
    _, derivation = resolve(expression)
    return derivation.partials_by_name()
