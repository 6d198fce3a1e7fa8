"""`metricc grad` and `metricc explain` for a metric of the whole confusion matrix: its aggregates, the partial
derivative by each, the formula of G = d metric / d M, and (explain) its direction, range and singular points."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Tuple

import sympy

from .analyse import Singularity, guard_together
from .library import LibraryEntry
from .matrix import MatrixDerivation, resolve_matrix_direction
from .parse import MATRIX_AGGREGATES


@dataclass(frozen=True)
class MatrixExplanation:
    """What the report shows of one matrix metric; `detailed` adds the direction, range and singular points."""

    name: str
    entry: Optional[LibraryEntry]
    derivation: MatrixDerivation
    detailed: bool

    @property
    def singularities(self) -> Tuple[Singularity, ...]:
        return guard_together([self.derivation.value, *self.derivation.partials])[1]

    def to_dict(self) -> dict:
        derivation = self.derivation
        data = {
            "metric": {"name": self.name, "text": sympy.sstr(derivation.value), "latex": sympy.latex(derivation.value)},
            "kind": "matrix",
            "aggregates": {name: MATRIX_AGGREGATES[name] for name in derivation.aggregates},
            "partials": {name: {"text": sympy.sstr(p), "latex": sympy.latex(p)} for name, p in derivation.partials_by_name().items()},
            "matrix_gradient": derivation.gradient_text(),
        }
        if self.detailed:
            declared = self.entry.direction if self.entry else None
            data["direction"] = resolve_matrix_direction(derivation, "auto", declared)
            data["range"] = list(self.entry.range) if self.entry else None
            data["singular_points"] = [s.describe(self.name) for s in self.singularities]
        return data

    def format(self, form: str = "text") -> str:
        data = self.to_dict()
        if form == "json":
            return json.dumps(data, indent=2)
        if form == "latex":
            lines = [f"{self.name} = {data['metric']['latex']}"]
            lines += [rf"\frac{{\partial\, {self.name}}}{{\partial\, \mathrm{{{n.replace('_', '-')}}}}} = {p['latex']}" for n, p in data["partials"].items()]
            return "\n".join(lines)
        bullet = "- " if form == "markdown" else "  "
        lines = []
        if self.entry is not None:
            aliases = f" (aliases: {', '.join(self.entry.aliases)})" if self.entry.aliases else ""
            lines.append(f"metric: {self.entry.name}{aliases}")
        lines.append(f"metric of the whole C x C confusion matrix: {self.name} = {data['metric']['text']}")
        lines.append("aggregates (M[i, j]: true class i, predicted class j; r, c: row and column sums):")
        lines += [f"{bullet}{name}: {text}" for name, text in data["aggregates"].items()]
        if self.detailed:
            lines.append(f"direction: {data['direction']}; the loss is {'1 - ' if data['direction'] == 'maximize' else ''}{self.name}")
            if data["range"]:
                lines.append(f"range: [{data['range'][0]:g}, {data['range'][1]:g}] (from the library)")
            lines.append("singular points:")
            lines += [f"{bullet}{text}" for text in data["singular_points"]] or [f"{bullet}none"]
        lines.append("partial derivatives:")
        lines += [f"{bullet}d {self.name} / d {name} = {p['text']}" for name, p in data["partials"].items()]
        lines.append("gradient with respect to the matrix (WU = 1 - delta, WL = |i - j| / (C - 1), WQ = (i - j)^2 / (C - 1)^2):")
        lines.append(f"{bullet}G[i, j] = {data['matrix_gradient']}")
        lines.append(f"{bullet}the weight of a[n, j] in the backward pass is G[label of n, j]")
        return "\n".join(lines)
