"""The four ways an `Explanation` prints: text, Markdown, LaTeX and JSON (the schema of docs/explain.md), for
either form. Pure functions of the explanation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import sympy

from .guards import plain
from .errors import OptionError
from .explanation import SCHEMA_VERSION, Explanation
from .language import Parameter, WEIGHTINGS

FORMATS = ("text", "latex", "json", "markdown")


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


def _operations_text(explanation: Explanation) -> str:
    operations = explanation.operations
    partials = {4: "four partials"}.get(len(explanation.derivation.partials), f"{len(explanation.derivation.partials)} partials")
    return (
        f"{operations.before_cse} written out (metric and {partials}), {operations.after_cse} after "
        f"common-subexpression elimination ({operations.intermediates} shared intermediates)"
    )


@dataclass(frozen=True)
class FormSections:
    """What one form adds to an explanation in each format: how its formula line reads, what its variables are
    called, the lines that describe its variables (after the parameters) and those that say how the backward pass
    uses the partials (after them), and its keys of the JSON schema."""

    formula_words: str
    variable_word: str
    text_variables: List[str] = field(default_factory=list)
    text_backward: List[str] = field(default_factory=list)
    markdown_variables: List[str] = field(default_factory=list)
    markdown_backward: List[str] = field(default_factory=list)
    latex_rows: List[str] = field(default_factory=list)
    json: Dict[str, object] = field(default_factory=dict)


_WEIGHT_DEFINITIONS = {"positive": "dTP - dFN", "negative": "dFP - dTN"}
_WEIGHT_LABELS = {"positive": "positive example (y = 1)", "negative": "negative example (y = 0)"}


def _count_sections(e: Explanation) -> FormSections:
    """The four counts: the per-sample gradient weights dTP - dFN and dFP - dTN."""
    label, name = e.label, _latex_name(e)
    weights = dict(zip(("positive", "negative"), e.per_sample))
    return FormSections(
        formula_words="formula",
        variable_word="count",
        text_backward=[f"per-sample gradient weight, d {label} / d a for one sample's soft prediction a:"]
        + [f"  {_WEIGHT_LABELS[kind]}: {_WEIGHT_DEFINITIONS[kind]} = {sympy.sstr(weight)}" for kind, weight in weights.items()],
        markdown_backward=["", f"### Per-sample gradient weight (d {label} / d a)", "", "| sample | weight | formula |", "|---|---|---|"]
        + [f"| {_WEIGHT_LABELS[kind]} | {_WEIGHT_DEFINITIONS[kind]} | ${sympy.latex(weight)}$ |" for kind, weight in weights.items()],
        latex_rows=[
            rf"\frac{{\partial {name}}}{{\partial a_i}}\Big|_{{y_i={1 if kind == 'positive' else 0}}} &= {sympy.latex(weight)}"
            for kind, weight in weights.items()
        ],
        json={
            "per_sample_weights": {
                kind: {"definition": _WEIGHT_DEFINITIONS[kind], **_expression(weight)} for kind, weight in weights.items()
            }
        },
    )


_AGGREGATES_HEADING = "aggregates (M[i, j]: true class i, predicted class j; r, c: row and column sums)"
_CELL_GRADIENT_HEADING = "gradient with respect to the matrix (" + ", ".join(
    f"{short} = {text.split(' = ', 1)[1]}" for short, text in WEIGHTINGS.values()
) + ")"
_SAMPLE_WEIGHT = "the weight of a[n, j] in the backward pass is G[label of n, j]"


def _matrix_sections(e: Explanation) -> FormSections:
    """The whole confusion matrix: the aggregates the metric reads, and G = d metric / d M."""
    aggregates = {v.name: v.meaning for v in e.derivation.variables}
    gradient = e.derivation.cell_gradient_text()
    return FormSections(
        formula_words="formula of the whole C x C confusion matrix",
        variable_word="aggregate",
        text_variables=[f"{_AGGREGATES_HEADING}:"] + [f"  {name}: {meaning}" for name, meaning in aggregates.items()],
        text_backward=[f"{_CELL_GRADIENT_HEADING}:", f"  G[i, j] = {gradient}", f"  {_SAMPLE_WEIGHT}"],
        markdown_variables=[f"{_capitalised(_AGGREGATES_HEADING)}:", ""] + [f"- `{name}`: {meaning}" for name, meaning in aggregates.items()] + [""],
        markdown_backward=["", f"### {_capitalised(_CELL_GRADIENT_HEADING)}", "", "```text", f"G[i, j] = {gradient}", "```", "", f"{_capitalised(_SAMPLE_WEIGHT)}."],
        latex_rows=[rf"G_{{ij}} &= \text{{{_latex_text(gradient)}}}"],
        json={"aggregates": aggregates, "matrix_gradient": gradient},
    )


#: What each form adds to every format, by the form's kind (language.FORMS).
_FORM_SECTIONS = {"counts": _count_sections, "matrix": _matrix_sections}


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


# Text.


def format_text(explanation: Explanation) -> str:
    e, label = explanation, explanation.label
    lines = []
    if e.entry is not None:
        lines.append(f"metric: {e.entry.name}" + (f" (aliases: {', '.join(e.entry.aliases)})" if e.entry.aliases else ""))
        lines.append(f"reference: {e.entry.reference}")
    sections = _FORM_SECTIONS[e.kind](e)
    lines.append(f"{sections.formula_words}: {label} = {sympy.sstr(e.derivation.value)}")
    if e.analysed:
        lines.append(f"LaTeX: {sympy.latex(e.derivation.value)}")
    for parameter in e.parameters:
        lines.append(f"parameter: {_parameter_text(parameter, _class_name(e))}")
    lines += sections.text_variables
    if e.analysed:
        lines.append(f"direction: {_direction_text(e)}")
        if e.monotonicity is not None:
            lines.append(f"monotonicity: {e.monotonicity.describe()}")
        lines.append(f"range: {e.range.describe()}")
        lines.append("singular points:" + ("" if e.singular_points else " none (no guard needed)"))
        lines += [f"  - {point.describe(label)}" for point in e.singular_points]
    lines.append("partial derivatives:")
    lines += [f"  d {label} / d {count} = {sympy.sstr(partial)}" for count, partial in e.derivation.partials_by_name().items()]
    lines += sections.text_backward
    if e.analysed:
        lines.append(f"operations: {_operations_text(e)}")
    return "\n".join(lines)


# Markdown.


def format_markdown(explanation: Explanation) -> str:
    e, label = explanation, explanation.label
    sections = _FORM_SECTIONS[e.kind](e)
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
    lines += sections.markdown_variables
    if e.analysed:
        lines.append(f"- **Direction:** {_direction_text(e)}")
        if e.monotonicity is not None:
            lines.append(f"- **Monotonicity:** {e.monotonicity.describe()}")
        lines += [
            f"- **Range:** {e.range.describe()}",
            f"- **Operations:** {_operations_text(e)}",
            "",
            "### Singular points and guards",
            "",
        ]
        lines += [f"- {point.describe(label)}" for point in e.singular_points] or ["None: the emitted code needs no guard."]
        lines.append("")
    lines += ["### Partial derivatives", "", f"| {sections.variable_word} | partial derivative |", "|---|---|"]
    lines += [f"| {count} | ${sympy.latex(partial)}$ |" for count, partial in e.derivation.partials_by_name().items()]
    return "\n".join(lines + sections.markdown_backward)


# LaTeX.


def _latex_name(explanation: Explanation) -> str:
    return r"\mathrm{" + explanation.label.replace("_", r"\_") + "}"


def _latex_text(text: str) -> str:
    for plain_char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(plain_char, escaped)
    return text


def format_latex(explanation: Explanation) -> str:
    e = explanation
    name = _latex_name(e)
    rows = [f"{name} &= {sympy.latex(e.derivation.value)}"]
    rows += [
        rf"\frac{{\partial {name}}}{{\partial \mathrm{{{count.replace('_', chr(92) + '_')}}}}} &= {sympy.latex(partial)}"
        for count, partial in e.derivation.partials_by_name().items()
    ]
    rows += _FORM_SECTIONS[e.kind](e).latex_rows
    lines = [r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}"]
    if e.analysed or e.parameters:
        items = [rf"\item Parameter {_latex_text(_parameter_text(p, _class_name(e)))}" for p in e.parameters]
        if e.analysed:
            items.append(rf"\item Direction: {_latex_text(_direction_text(e))}")
            if e.monotonicity is not None:
                items.append(rf"\item Monotonicity: {_latex_text(e.monotonicity.describe())}")
            items.append(rf"\item Range: {_latex_text(e.range.describe())}")
            items += [rf"\item Singular point: {_latex_text(point.describe(e.label))}" for point in e.singular_points]
            items.append(rf"\item Operations: {_latex_text(_operations_text(e))}")
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
        "kind": e.kind,
        "partials": {count: _expression(partial) for count, partial in e.derivation.partials_by_name().items()},
        **_FORM_SECTIONS[e.kind](e).json,
    }
    if not e.analysed:
        return data
    data["library"] = (
        None
        if e.entry is None
        else {"aliases": list(e.entry.aliases), "reference": e.entry.reference, "higher_is_better": e.entry.higher_is_better}
    )
    data["direction"] = {"value": e.direction, "source": e.direction_source, "note": e.direction_note}
    data["monotonicity"] = None if e.monotonicity is None else {
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


