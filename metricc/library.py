"""Named metrics, defined in the metric language in library.toml and parsed on first use."""

from __future__ import annotations

import difflib
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .errors import InvalidMetricError, MetricError, UnknownNameError
from .language import as_two_class
from .parse import MetricDefinition, parse

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@dataclass(frozen=True)
class LibraryEntry:
    """One named metric and what is known about it."""

    name: str
    formula: str
    higher_is_better: bool
    range: Tuple[float, float]
    aliases: Tuple[str, ...]
    reference: str
    matrix: Optional[str] = None

    @property
    def matrix_only(self) -> bool:
        """A metric defined on the whole confusion matrix alone (weighted kappa): its binary form is derived."""
        return not self.formula

    @property
    def direction(self) -> str:
        return "maximize" if self.higher_is_better else "minimize"

    @property
    def listed_formula(self) -> str:
        """What `metricc list` prints, on one line that pastes into `metricc grad`: the formula of TP, FP, FN and
        TN, or for a metric of the whole matrix alone its formula of the matrix's aggregates."""
        return one_line(self.formula or self.matrix or "")

    def to_dict(self) -> dict:
        """The entry as `metricc list --format json` prints it; infinite range bounds are null."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "formula": self.listed_formula,
            "direction": self.direction,
            "range": [None if math.isinf(bound) else bound for bound in self.range],
            "forms": {
                "counts": one_line(self.formula) if self.formula else None,
                "matrix": one_line(self.matrix) if self.matrix else None,
            },
            "reference": self.reference,
        }


#: A statement goes on to the next line after a line ending in one of these, or before one starting with one.
_ENDS_UNFINISHED = ("+", "-", "*", "/", "^", "(", ",", "=")
_STARTS_CONTINUED = ("+", "-", "*", "/", "^", ")")


def one_line(formula: str) -> str:
    """A formula of several lines as one line that parses to the same metric: comments dropped, statements joined
    by '; ', a line that continues the one before it (an operator or an open bracket between them) by a space."""
    text, depth = "", 0
    for line in (line.split("#", 1)[0].strip() for line in formula.splitlines()):
        if not line:
            continue
        if text:
            continues = depth > 0 or text.endswith(_ENDS_UNFINISHED) or line.startswith(_STARTS_CONTINUED)
            text += " " if continues else "; "
        text += line
        depth += line.count("(") - line.count(")")
    return text


def bound_text(value: float) -> str:
    """A range bound as the library's readers write it: inf, an integer, a small fraction (-1/3), else %g."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    fraction = Fraction(value).limit_denominator(12)
    return str(fraction) if abs(float(fraction) - value) <= 1e-12 else f"{value:g}"


class Library:
    """Looks names and aliases up case-insensitively; parses each formula once, refusing cycles."""

    def __init__(self, entries: List[LibraryEntry]):
        self.entries: Dict[str, LibraryEntry] = {entry.name: entry for entry in entries}
        self._by_name: Dict[str, LibraryEntry] = {}
        for entry in entries:
            for key in (entry.name, *entry.aliases):
                if key.lower() in self._by_name:
                    raise InvalidMetricError(f"library name {key!r} is defined twice")
                self._by_name[key.lower()] = entry
        self._definitions: Dict[str, MetricDefinition] = {}
        self._matrix_definitions: Dict[str, MetricDefinition] = {}
        self._resolving: List[str] = []

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "Library":
        path = path or Path(__file__).with_name("library.toml")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        entries = [
            LibraryEntry(
                name=name,
                formula=fields.get("formula", "").strip(),
                higher_is_better=bool(fields["higher_is_better"]),
                range=(float(fields["range"][0]), float(fields["range"][1])),
                aliases=tuple(fields.get("aliases", ())),
                reference=fields["reference"],
                matrix=fields["matrix"].strip() if "matrix" in fields else None,
            )
            for name, fields in data.items()
        ]
        return cls(entries)

    def entry(self, name: str) -> Optional[LibraryEntry]:
        return self._by_name.get(name.lower())

    def names(self) -> List[str]:
        return list(self.entries)

    def all_names(self) -> List[str]:
        return sorted(self._by_name)

    def definition(self, name: str) -> Optional[MetricDefinition]:
        entry = self.entry(name)
        if entry is None:
            return None
        if entry.name in self._definitions:
            return self._definitions[entry.name]
        if entry.name in self._resolving:
            cycle = " -> ".join(self._resolving[self._resolving.index(entry.name) :] + [entry.name])
            raise InvalidMetricError(f"library metric {entry.name!r} refers to itself: {cycle}")
        self._resolving.append(entry.name)
        try:
            if entry.matrix_only:
                definition = as_two_class(parse(entry.matrix, library=self))
            else:
                definition = parse(entry.formula, library=self)
        except MetricError as error:
            raise InvalidMetricError(f"library metric {entry.name!r} does not compile: {error}") from None
        finally:
            self._resolving.pop()
        self._definitions[entry.name] = definition
        return definition

    def matrix_definition(self, name: str) -> Optional[MetricDefinition]:
        """The entry's metric of the whole confusion matrix (used for task='multiclass'), or None."""
        entry = self.entry(name)
        if entry is None or entry.matrix is None:
            return None
        if entry.name not in self._matrix_definitions:
            try:
                self._matrix_definitions[entry.name] = parse(entry.matrix, library=self)
            except MetricError as error:
                raise InvalidMetricError(f"library metric {entry.name!r}'s matrix form does not compile: {error}") from None
        return self._matrix_definitions[entry.name]

    def reading_matrix_forms(self, only_without_counts: bool = False) -> "MatrixReading":
        """This library as a formula reads it in a matrix form: each name in its matrix form where it has one (as
        task='multiclass' reads a name alone), or only_without_counts, where it has no four-count form (qwk, as
        `metricc grad` and `explain` read a name alone)."""
        return MatrixReading(self, only_without_counts)

    def require(self, name: str) -> LibraryEntry:
        """The entry for `name`, or an error that suggests the closest names."""
        entry = self.entry(name)
        if entry is None:
            close = difflib.get_close_matches(name.lower(), self.all_names(), n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UnknownNameError(f"no library metric named {name!r}{hint} (`metricc list` shows them all)", 1, 1)
        return entry


@lru_cache(maxsize=1)
class MatrixReading:
    """A library whose names read their matrix forms where they have one (`1 - qwk` is then the whole-matrix kappa,
    as `qwk` is with task='multiclass'), and their four-count forms otherwise (the parser's MetricLibrary)."""

    def __init__(self, library: Library, only_without_counts: bool = False):
        self.library = library
        self.only_without_counts = only_without_counts

    def definition(self, name: str) -> Optional[MetricDefinition]:
        entry = self.library.entry(name)
        if entry is not None and entry.matrix is not None and (entry.matrix_only or not self.only_without_counts):
            return self.library.matrix_definition(name)
        return self.library.definition(name)

    def names(self) -> List[str]:
        return self.library.names()

    def all_names(self) -> List[str]:
        return self.library.all_names()


def default_library() -> Library:
    return Library.load()
