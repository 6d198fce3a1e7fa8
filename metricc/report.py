"""What `metricc explain` and `metricc grad` say about a metric, and the text, LaTeX, Markdown and JSON they say it in.

`explain` gathers the analysis into an `Explanation`; the `format_*` functions are pure and return strings or
dicts. Nothing here imports torch; matplotlib is imported only by `plot_weights`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import sympy

from .analyse import (
    Monotonicity,
    OperationCount,
    SingularPoint,
    ValueRange,
    decide_direction,
    estimate_range,
    evaluate,
    monotonicity,
    operation_counts,
    plain,
    singular_points,
)
from .derive import Derivation, per_sample_weights
from .errors import OptionError
from .library import LibraryEntry
from .parse import COUNT_NAMES, COUNTS, Parameter

#: Bumped only when a key is removed or changes meaning; new keys may be added within a version.
SCHEMA_VERSION = 1
FORMATS = ("text", "latex", "json", "markdown")


@dataclass(frozen=True)
class Explanation:
    """Everything `metricc explain` reports about one metric; `analysed` is False for `metricc grad`."""

    source: str
    name: Optional[str]
    entry: Optional[LibraryEntry]
    derivation: Derivation
    per_sample: Tuple[sympy.Expr, sympy.Expr]
    analysed: bool = False
    direction: Optional[str] = None
    direction_source: str = ""  # "library" or "partials"
    direction_note: str = ""
    monotonicity: Optional[Monotonicity] = None
    range: Optional[ValueRange] = None
    singular_points: Tuple[SingularPoint, ...] = ()
    operations: Optional[OperationCount] = None

    @property
    def label(self) -> str:
        """The name to print: the library name, else "metric"."""
        return self.name or "metric"

    @property
    def parameters(self) -> Tuple[Parameter, ...]:
        return self.derivation.definition.parameters

    def to_dict(self) -> dict:
        return format_json_dict(self)

    def format(self, form: str = "text") -> str:
        return format_explanation(self, form)

    def __str__(self) -> str:
        return format_text(self)


def _resolve(expression: str, parameter_defaults=()):
    from .compiler import resolve

    return resolve(expression, parameter_defaults=parameter_defaults)


def gradient_report(expression: str, parameter_defaults=()) -> Explanation:
    """The formula, its four partials and the per-sample weights: what `metricc grad` prints. parameter_defaults
    (checked, from `compiler.checked_parameter_defaults`) replace the parameters' defaults."""
    entry, derivation = _resolve(expression, parameter_defaults)
    return Explanation(expression, entry.name if entry else None, entry, derivation, per_sample_weights(derivation))


def explain(expression: str, parameter_defaults=()) -> Explanation:
    """Analyse a metric (a library name or a formula): direction, monotonicity, range, singular points and guards,
    partials, per-sample gradient weights and operation counts; sampled (and plotted) with the parameters at their
    defaults, which parameter_defaults replace."""
    entry, derivation = _resolve(expression, parameter_defaults)
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
        per_sample=per_sample_weights(derivation),
        analysed=True,
        direction=direction,
        direction_source=source,
        direction_note=note,
        monotonicity=monotonicity(derivation, direction),
        range=ValueRange(entry.range[0], entry.range[1], "library") if entry else estimate_range(derivation),
        singular_points=tuple(singular_points(derivation)),
        operations=operation_counts(derivation),
    )


# Pieces shared by the formats.


def _class_name(explanation: Explanation) -> str:
    from .emitter import class_name

    return class_name(explanation.label)


def _direction_text(explanation: Explanation) -> str:
    if explanation.direction is None:
        return f"undecided: {explanation.direction_note}; compile it with --direction maximize or minimize"
    origin = "declared by the library" if explanation.direction_source == "library" else "from the signs of the partials"
    note = f"; {explanation.direction_note}" if explanation.direction_source == "library" and explanation.direction_note else ""
    loss = f"1 - {explanation.label}" if explanation.direction == "maximize" else explanation.label
    return f"{explanation.direction} ({origin}{note}); the loss is {loss}"


def _parameter_text(parameter: Parameter, owner: str) -> str:
    return f"{parameter.name} = {float(parameter.default):g}, domain {parameter.domain_text()} (constructor argument: {owner}({parameter.name}=...))"


def _operations_text(operations: OperationCount) -> str:
    return (
        f"{operations.before_cse} written out (metric and four partials), {operations.after_cse} after "
        f"common-subexpression elimination ({operations.intermediates} shared intermediates)"
    )


_WEIGHT_DEFINITIONS = {"positive": "dTP - dFN", "negative": "dFP - dTN"}
_WEIGHT_LABELS = {"positive": "positive example (y = 1)", "negative": "negative example (y = 0)"}


def _weights(explanation: Explanation) -> Dict[str, sympy.Expr]:
    return dict(zip(("positive", "negative"), explanation.per_sample))


# Text.


def format_text(explanation: Explanation) -> str:
    e, label = explanation, explanation.label
    lines = []
    if e.entry is not None:
        lines.append(f"metric: {e.entry.name}" + (f" (aliases: {', '.join(e.entry.aliases)})" if e.entry.aliases else ""))
        lines.append(f"reference: {e.entry.reference}")
    lines.append(f"formula: {label} = {sympy.sstr(e.derivation.value)}")
    if e.analysed:
        lines.append(f"LaTeX: {sympy.latex(e.derivation.value)}")
    for parameter in e.parameters:
        lines.append(f"parameter: {_parameter_text(parameter, _class_name(e))}")
    if e.analysed:
        lines.append(f"direction: {_direction_text(e)}")
        lines.append(f"monotonicity: {e.monotonicity.describe()}")
        lines.append(f"range: {e.range.describe()}")
        lines.append("singular points:" + ("" if e.singular_points else " none (no guard needed)"))
        lines += [f"  - {point.describe(label)}" for point in e.singular_points]
    lines.append("partial derivatives:")
    lines += [f"  d {label} / d {count} = {sympy.sstr(partial)}" for count, partial in e.derivation.partials_by_name().items()]
    lines.append(f"per-sample gradient weight, d {label} / d a for one sample's soft prediction a:")
    for kind, weight in _weights(e).items():
        lines.append(f"  {_WEIGHT_LABELS[kind]}: {_WEIGHT_DEFINITIONS[kind]} = {sympy.sstr(weight)}")
    if e.analysed:
        lines.append(f"operations: {_operations_text(e.operations)}")
    return "\n".join(lines)


# Markdown.


def format_markdown(explanation: Explanation) -> str:
    e, label = explanation, explanation.label
    lines = [f"## `{label}`", ""]
    if e.entry is not None:
        if e.entry.aliases:
            lines.append(f"Aliases: {', '.join(f'`{a}`' for a in e.entry.aliases)}  ")
        lines += [f"Reference: {e.entry.reference}", ""]
    lines += [f"$$ {sympy.latex(e.derivation.value)} $$", "", "```text", f"{label} = {sympy.sstr(e.derivation.value)}", "```", ""]
    if e.parameters:
        lines += ["| parameter | default | domain | constructor argument |", "|---|---|---|---|"]
        owner = _class_name(e)
        lines += [f"| `{p.name}` | {float(p.default):g} | `{p.domain_text()}` | `{owner}({p.name}=...)` |" for p in e.parameters]
        lines.append("")
    if e.analysed:
        lines += [
            f"- **Direction:** {_direction_text(e)}",
            f"- **Monotonicity:** {e.monotonicity.describe()}",
            f"- **Range:** {e.range.describe()}",
            f"- **Operations:** {_operations_text(e.operations)}",
            "",
            "### Singular points and guards",
            "",
        ]
        lines += [f"- {point.describe(label)}" for point in e.singular_points] or ["None: the emitted code needs no guard."]
        lines.append("")
    lines += ["### Partial derivatives", "", "| count | partial derivative |", "|---|---|"]
    lines += [f"| {count} | ${sympy.latex(partial)}$ |" for count, partial in e.derivation.partials_by_name().items()]
    lines += ["", f"### Per-sample gradient weight (d {label} / d a)", "", "| sample | weight | formula |", "|---|---|---|"]
    for kind, weight in _weights(e).items():
        lines.append(f"| {_WEIGHT_LABELS[kind]} | {_WEIGHT_DEFINITIONS[kind]} | ${sympy.latex(weight)}$ |")
    return "\n".join(lines)


# LaTeX.


def _latex_text(text: str) -> str:
    for plain_char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(plain_char, escaped)
    return text


def format_latex(explanation: Explanation) -> str:
    e = explanation
    name = r"\mathrm{" + e.label.replace("_", r"\_") + "}"
    rows = [f"{name} &= {sympy.latex(e.derivation.value)}"]
    rows += [
        rf"\frac{{\partial {name}}}{{\partial \mathrm{{{count}}}}} &= {sympy.latex(partial)}"
        for count, partial in e.derivation.partials_by_name().items()
    ]
    positive, negative = e.per_sample
    rows.append(rf"\frac{{\partial {name}}}{{\partial a_i}}\Big|_{{y_i=1}} &= {sympy.latex(positive)}")
    rows.append(rf"\frac{{\partial {name}}}{{\partial a_i}}\Big|_{{y_i=0}} &= {sympy.latex(negative)}")
    lines = [r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}"]
    if e.analysed or e.parameters:
        items = [rf"\item Parameter {_latex_text(_parameter_text(p, _class_name(e)))}" for p in e.parameters]
        if e.analysed:
            items += [
                rf"\item Direction: {_latex_text(_direction_text(e))}",
                rf"\item Monotonicity: {_latex_text(e.monotonicity.describe())}",
                rf"\item Range: {_latex_text(e.range.describe())}",
            ]
            items += [rf"\item Singular point: {_latex_text(point.describe(e.label))}" for point in e.singular_points]
            items.append(rf"\item Operations: {_latex_text(_operations_text(e.operations))}")
        lines += [r"\begin{itemize}", *items, r"\end{itemize}"]
    return "\n".join(lines)


# JSON.


def _expression(expression: sympy.Expr) -> dict:
    return {"text": sympy.sstr(expression), "latex": sympy.latex(expression)}


def _bound(value: float) -> Optional[float]:
    return None if value in (float("inf"), float("-inf")) or value != value else value


def format_json_dict(explanation: Explanation) -> dict:
    """The documented schema (docs/explain.md); `schema_version` says which."""
    e = explanation
    data = {
        "schema_version": SCHEMA_VERSION,
        "command": "explain" if e.analysed else "grad",
        "input": e.source,
        "name": e.name,
        "metric": _expression(e.derivation.value),
        "parameters": [
            {
                "name": p.name,
                "default": float(p.default),
                "domain": p.domain_text(),
                "lower": _bound(p.lower),
                "upper": _bound(p.upper),
                "lower_open": p.lower_open,
                "upper_open": p.upper_open,
            }
            for p in e.parameters
        ],
        "partials": {count: _expression(partial) for count, partial in e.derivation.partials_by_name().items()},
        "per_sample_weights": {
            kind: {"definition": _WEIGHT_DEFINITIONS[kind], **_expression(weight)} for kind, weight in _weights(e).items()
        },
    }
    if not e.analysed:
        return data
    data["library"] = (
        None
        if e.entry is None
        else {"aliases": list(e.entry.aliases), "reference": e.entry.reference, "higher_is_better": e.entry.higher_is_better}
    )
    data["direction"] = {"value": e.direction, "source": e.direction_source, "note": e.direction_note}
    data["monotonicity"] = {
        "monotone": e.monotonicity.monotone,
        "summary": e.monotonicity.describe(),
        "counts": {
            t.count: {
                "trend": t.trend,
                "expected": e.monotonicity.expected(t.count) if e.direction else None,
                "method": t.method,
                "witness": t.witness,
            }
            for t in e.monotonicity.trends
        },
    }
    data["range"] = {
        "low": _bound(e.range.low),
        "high": _bound(e.range.high),
        "source": e.range.source,
        "samples": e.range.samples,
        "text": e.range.describe(),
    }
    data["singular_points"] = [
        {
            "kind": point.singularity.kind,
            "expression": _expression(plain(point.singularity.expression)),
            "condition": point.singularity.condition(),
            "affects": "value" if point.in_value else "gradient",
            "guard": point.singularity.guard,
            "description": point.describe(e.label),
        }
        for point in e.singular_points
    ]
    data["operations"] = {
        "before_cse": e.operations.before_cse,
        "after_cse": e.operations.after_cse,
        "intermediates": e.operations.intermediates,
    }
    return data


def format_json(explanation: Explanation) -> str:
    return json.dumps(format_json_dict(explanation), indent=2)


def format_explanation(explanation: Explanation, form: str = "text") -> str:
    formatters = {"text": format_text, "latex": format_latex, "json": format_json, "markdown": format_markdown}
    if form not in formatters:
        raise OptionError(f"format={form!r} is not one of {', '.join(map(repr, FORMATS))}")
    return formatters[form](explanation)


# The plot: the loss and the per-sample gradient weight against one sample's prediction p.


def parse_counts(text: str) -> Tuple[float, float, float, float]:
    """'TP,FP,FN,TN' -> four nonnegative numbers."""
    parts = text.split(",")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(v >= 0 and v != float("inf") for v in values):
        raise OptionError(f"--counts {text!r} must be four nonnegative numbers TP,FP,FN,TN, e.g. 20,10,10,60")
    return values  # type: ignore[return-value]


def weight_curves(explanation: Explanation, counts: Sequence[float], points: int = 201) -> Dict[str, np.ndarray]:
    """Add one sample with soft prediction a = p (approximation='identity') to the counts of the rest of the batch:
    the loss and its gradient d loss / d p, for a positive and for a negative sample, at each p in [0, 1]."""
    p = np.linspace(0.0, 1.0, points)
    tp, fp, fn, tn = (np.full_like(p, float(c)) for c in counts)
    sign, offset = (-1.0, 1.0) if explanation.direction == "maximize" else (1.0, 0.0)
    parameters = {q.symbol: np.float64(q.default) for q in explanation.parameters}
    derivation = explanation.derivation
    curves = {"p": p}
    for kind, weight, shifted in (
        ("positive", explanation.per_sample[0], (tp + p, fp, fn + 1 - p, tn)),
        ("negative", explanation.per_sample[1], (tp, fp + p, fn, tn + 1 - p)),
    ):
        values = dict(zip(COUNTS, shifted))
        values.update(parameters)
        curves[f"loss_{kind}"] = np.broadcast_to(sign * evaluate(derivation.value, values) + offset, p.shape)
        curves[f"weight_{kind}"] = np.broadcast_to(sign * evaluate(weight, values), p.shape)
    return curves


def plot_weights(explanation: Explanation, counts: Sequence[float], path: str) -> Path:
    """Draw `weight_curves` into a PNG file (needs matplotlib: pip install 'metricc[plot]')."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise OptionError("--plot needs matplotlib, which is not installed: pip install 'metricc[plot]'") from None
    curves = weight_curves(explanation, counts)
    loss = {"maximize": f"1 - {explanation.label}", "minimize": explanation.label}.get(explanation.direction, explanation.label)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for kind, style in (("positive", "-"), ("negative", "--")):
        left.plot(curves["p"], curves[f"loss_{kind}"], style, label=f"{kind} sample (y = {1 if kind == 'positive' else 0})")
        right.plot(curves["p"], curves[f"weight_{kind}"], style, label=f"{kind} sample (y = {1 if kind == 'positive' else 0})")
    left.set(xlabel="prediction p of the added sample", ylabel=f"loss = {loss}", title="loss")
    right.set(xlabel="prediction p of the added sample", ylabel="d loss / d p", title="per-sample gradient weight")
    right.axhline(0.0, color="grey", linewidth=0.5)
    for axis in (left, right):
        axis.legend()
    tp, fp, fn, tn = counts
    figure.suptitle(f"{explanation.label}: one sample added to TP={tp:g}, FP={fp:g}, FN={fn:g}, TN={tn:g} (a = p)")
    output = Path(path)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


__all__: List[str] = [
    "Explanation",
    "explain",
    "gradient_report",
    "format_explanation",
    "format_json_dict",
    "weight_curves",
    "plot_weights",
    "parse_counts",
    "SCHEMA_VERSION",
    "FORMATS",
]
