"""`metricc list`: formulas that paste back into `metricc grad`, and a JSON form that covers the library."""

import contextlib
import io
import json

import pytest
import sympy

import metricc
from metricc.cli import main
from metricc.compiler import resolve
from metricc.library import bound_text, default_library, one_line
from metricc.parse import parse


def printed(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def listed_formulas(text: str) -> dict:
    """name -> formula, read from the text table as a user reads it: the formula column to the end of the line."""
    header, *rows = text.splitlines()
    start = header.index("formula")
    return {row.split()[0]: row[start:] for row in rows}


@pytest.fixture(scope="module")
def listing():
    """(name -> formula of `metricc list`, the parsed `metricc list --format json`), printed once."""
    outputs = []
    for argv in (["list"], ["list", "--format", "json"]):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main(argv) == 0
        outputs.append(buffer.getvalue())
    return listed_formulas(outputs[0]), json.loads(outputs[1])


def test_the_text_list_names_every_library_metric_once(listing):
    formulas, _ = listing
    assert list(formulas) == default_library().names()


@pytest.mark.parametrize("name", default_library().names())
def test_a_listed_formula_has_the_library_metrics_partials(listing, name):
    formula = listing[0][name]
    assert "\n" not in formula and "#" not in formula
    by_formula, by_name = metricc.gradient(formula), metricc.gradient(name)
    assert set(by_formula) == set(by_name)
    for count in by_name:
        assert sympy.simplify(by_formula[count] - by_name[count]) == 0, (name, count, formula)


@pytest.mark.parametrize("name", ["fbeta", "focal_tversky", "prevalence_threshold", "gilbert_skill_score", "quadratic_kappa"])
def test_a_listed_formula_pastes_into_metricc_grad(listing, capsys, name):
    """The CLI reads the printed formula as it reads the name: the same partials in the same words."""
    pasted = json.loads(printed(capsys, "grad", listing[0][name], "--format", "json"))
    named = json.loads(printed(capsys, "grad", name, "--format", "json"))
    assert pasted["partials"] == named["partials"]


def test_one_line_keeps_statements_apart_and_continuations_together():
    formula = "param a = 1 in (0, inf)   # a comment\n\nx = TP +\n  FP\ny = (TP\n  + FN)\nx / y\n  - a\n"
    text = one_line(formula)
    assert text == "param a = 1 in (0, inf); x = TP + FP; y = (TP + FN); x / y - a"
    assert parse(text).expression == parse(formula).expression


def test_the_json_list_covers_the_library(listing):
    formulas, data = listing
    library = default_library()
    assert data["schema_version"] == 1 and data["command"] == "list"
    assert [metric["name"] for metric in data["metrics"]] == library.names()
    for metric in data["metrics"]:
        entry = library.entry(metric["name"])
        assert set(metric) == {"name", "aliases", "formula", "direction", "range", "forms", "reference"}
        assert metric["formula"] == formulas[metric["name"]]
        assert metric["direction"] == ("maximize" if entry.higher_is_better else "minimize")
        assert metric["range"] == [None if abs(bound) == float("inf") else bound for bound in entry.range]
        assert all(library.entry(alias) is entry for alias in metric["aliases"])
        assert metric["aliases"] == list(entry.aliases) and metric["reference"] == entry.reference
        forms = metric["forms"]
        assert set(forms) == {"counts", "matrix"} and (forms["counts"] or forms["matrix"])
        assert metric["formula"] == (forms["counts"] or forms["matrix"])
        assert (forms["matrix"] is not None) == (entry.matrix is not None)


@pytest.mark.parametrize("name", [name for name in default_library().names() if default_library().entry(name).matrix])
def test_a_listed_matrix_form_has_the_matrix_metrics_partials(listing, name):
    """The JSON's matrix form, compiled for task='multiclass', differentiates as the library metric's does."""
    (metric,) = [metric for metric in listing[1]["metrics"] if metric["name"] == name]
    _, pasted = resolve(metric["forms"]["matrix"], "multiclass")
    _, named = resolve(name, "multiclass")
    assert pasted.partials_by_name() == named.partials_by_name()


def test_range_bounds_print_as_the_library_writes_them():
    assert [bound_text(value) for value in (0.0, -1.0, -1 / 3, 0.5, 0.123456789, float("inf"), -float("inf"))] == [
        "0", "-1", "-1/3", "1/2", "0.123457", "inf", "-inf"
    ]


@pytest.mark.parametrize(
    "name, task", [("qwk", None), ("1 - qwk", None), ("qwk", "binary"), ("mcc", None), ("mcc", "multiclass"), ("f1", None)],
)
def test_the_gradient_function_gives_the_partials_metricc_grad_shows(capsys, name, task):
    """metricc.gradient reads a metric in the form `metricc grad` does: qwk (and a formula of it) by its aggregates,
    unless two-class."""
    shown = json.loads(printed(capsys, "grad", name, "--format", "json", *(["--task", task] if task else [])))["partials"]
    partials = metricc.gradient(name, task=task)
    assert list(partials) == list(shown)
    for variable, partial in partials.items():
        assert str(partial) == shown[variable]["text"], variable


@pytest.mark.parametrize("task", ["Multiclass", "multi"])
def test_the_gradient_function_names_a_task_it_does_not_know(task):
    with pytest.raises(metricc.OptionError, match=f"task='{task}' is not one of None, 'binary', 'multiclass', 'multilabel'"):
        metricc.gradient("qwk", task=task)
