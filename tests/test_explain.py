"""`metricc explain` and `metricc grad`: the four formats, the JSON schema, the plot, the Python API, no torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

import metricc
from metricc.cli import main
from metricc.parse import parse
from metricc.explanation import Explanation
from metricc.plots import matrix_weight_curves, weight_curves

REPOSITORY = Path(__file__).resolve().parents[1]

# The schema documented in docs/explain.md, version 1: a four-count metric's keys, and a matrix metric's.
GRAD_KEYS = {"schema_version", "command", "input", "name", "kind", "metric", "parameters", "partials", "per_sample_weights"}
ANALYSIS_KEYS = {"library", "direction", "monotonicity", "range", "singular_points", "operations"}
EXPLAIN_KEYS = GRAD_KEYS | ANALYSIS_KEYS
MATRIX_GRAD_KEYS = GRAD_KEYS - {"per_sample_weights"} | {"aggregates", "matrix_gradient"}
MATRIX_EXPLAIN_KEYS = MATRIX_GRAD_KEYS | ANALYSIS_KEYS


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_text_for_a_library_metric(capsys):
    code, out, _ = run(capsys, "explain", "mcc")
    assert code == 0
    assert "formula: mcc = " in out and "LaTeX: \\frac{" in out
    assert "direction: maximize (declared by the library; the signs of the partials agree)" in out
    assert "monotonicity: monotone (higher is better)" in out
    assert "range: [-1, 1] (from the library)" in out
    assert "mcc is undefined when the batch has no positives (the denominator FN + TP vanishes); guarded by max(x, eps)" in out
    assert "d mcc / d TP = " in out and "positive example (y = 1): dTP - dFN = " in out
    assert "after common-subexpression elimination" in out


def test_explain_flags_a_non_monotone_formula(capsys):
    code, out, _ = run(capsys, "explain", "TP - FP^2 + FN")
    assert code == 0
    assert "direction: maximize (from the signs of the partials)" in out
    assert "monotonicity: NOT monotone: it is non-decreasing in FN where a maximized metric should be non-increasing" in out
    assert "estimated from" in out  # no library range: sampled, and said so


def test_explain_undecided_direction(capsys):
    code, out, _ = run(capsys, "explain", "TP + FP")
    assert code == 0 and "direction: undecided: " in out and "--direction" in out


def test_explain_json_follows_the_schema(capsys):
    code, out, _ = run(capsys, "explain", "fbeta", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == EXPLAIN_KEYS
    assert data["schema_version"] == 1 and data["command"] == "explain" and data["name"] == "fbeta"
    assert data["parameters"] == [
        {"name": "beta", "default": 1.0, "domain": "(0, inf)", "lower": 0.0, "upper": None, "lower_open": True, "upper_open": True}
    ]
    assert set(data["partials"]) == {"TP", "FP", "FN", "TN"}
    assert set(data["per_sample_weights"]) == {"positive", "negative"}
    assert data["direction"] == {"value": "maximize", "source": "library", "note": "the signs of the partials agree"}
    assert data["monotonicity"]["monotone"] is True
    assert {c["method"] for c in data["monotonicity"]["counts"].values()} == {"symbolic"}
    assert data["range"]["low"] == 0.0 and data["range"]["high"] == 1.0 and data["range"]["source"] == "library"
    (point,) = data["singular_points"]
    assert set(point) == {"kind", "expression", "condition", "affects", "guard", "description"}
    assert point["condition"] == "there are no positives and nothing is predicted positive" and point["affects"] == "value"
    assert set(data["operations"]) == {"before_cse", "after_cse", "intermediates"}


def test_json_formulas_read_back_through_the_metric_language(capsys):
    """The "text" of each formula is valid metric-language input that parses back to the same expression."""
    _, out, _ = run(capsys, "explain", "mcc", "--format", "json")
    data = json.loads(out)
    gradient = metricc.gradient("mcc")
    assert sympy.simplify(parse(data["metric"]["text"]).expression - parse("mcc", metricc.library.default_library()).expression) == 0
    for count, partial in data["partials"].items():
        assert sympy.simplify(parse(partial["text"]).expression - gradient[count]) == 0


def test_grad_json_is_the_common_part_of_the_schema(capsys):
    code, out, _ = run(capsys, "grad", "f1", "--format", "json")
    data = json.loads(out)
    assert code == 0 and set(data) == GRAD_KEYS and data["command"] == "grad"
    assert data["partials"]["TP"]["text"] == "2*(FN + FP)/(FN + FP + 2*TP)**2"


@pytest.mark.parametrize("command", ["grad", "explain"])
def test_latex_and_markdown(capsys, command):
    _, latex, _ = run(capsys, command, "f1", "--format", "latex")
    assert latex.startswith("\\begin{align*}") and "\\frac{\\partial \\mathrm{f1}}{\\partial \\mathrm{TP}}" in latex
    _, markdown, _ = run(capsys, command, "f1", "--format", "markdown")
    assert markdown.startswith("## `f1`") and "| TP | $" in markdown


def test_parameters_are_reported_as_constructor_arguments(capsys):
    _, out, _ = run(capsys, "explain", "param w = 2 in (0, inf)\nTP / (TP + w*FP)")
    assert "parameter: w = 2, domain (0, inf) (constructor argument: MetricLoss(w=...))" in out


def test_explain_from_a_file(tmp_path, capsys):
    source = tmp_path / "metric.txt"
    source.write_text("# balanced accuracy\ntpr = TP / P\ntnr = TN / N\n(tpr + tnr) / 2\n")
    code, out, _ = run(capsys, "explain", "-f", str(source))
    assert code == 0 and "monotonicity: monotone (higher is better)" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "f11"], "did you mean f1"),
        (["explain", "TP/("], "ends too early"),
        (["grad", "fbeta(beta=-1)"], "parameter beta of fbeta"),
        (["explain", "f1", "--counts", "1,2,3"], "--counts"),
        (["explain", "f1", "--counts", "1,-2,3,4"], "--counts"),
    ],
)
def test_errors_exit_2_with_a_message(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_plot_writes_a_png(tmp_path, capsys):
    path = tmp_path / "f1.png"
    code, _, err = run(capsys, "explain", "f1", "--plot", str(path), "--counts", "20,10,10,60")
    assert code == 0 and str(path) in err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(capsys, "explain", "f1", "--plot", str(tmp_path / "f1.png"))
    assert code == 2 and "needs matplotlib" in err and "pip install" in err


@pytest.mark.parametrize("name", ["f1", "mcc", "error_rate", "fbeta"])
def test_weight_curves_are_the_derivative_of_the_loss_curves(name):
    """The plotted weight is d loss / d p: compare with finite differences of the plotted loss."""
    curves = weight_curves(metricc.explain(name), (20, 10, 10, 60), points=2001)
    step = curves["p"][1] - curves["p"][0]
    for kind in ("positive", "negative"):
        numeric = np.gradient(curves[f"loss_{kind}"], step)
        assert np.allclose(curves[f"weight_{kind}"][1:-1], numeric[1:-1], rtol=1e-4, atol=1e-8)


def test_python_api():
    explanation = metricc.explain("recall")
    assert isinstance(explanation, Explanation)
    assert explanation.direction == "maximize" and explanation.monotonicity.monotone
    assert explanation.singular_points[0].describe("recall").startswith("recall is undefined when the batch has no positives")
    assert explanation.to_dict() == json.loads(explanation.format("json"))
    assert str(explanation) == explanation.format("text")


@pytest.mark.parametrize("command", ["explain", "grad"])
def test_symbolic_commands_do_not_import_torch(command):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "metricc.cli", command, "f1"],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={"PYTHONPATH": str(REPOSITORY), "PATH": ""},
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "f1" in result.stdout
    assert not {module for module in imported if module == "torch" or module.startswith("torch.")}


@pytest.mark.parametrize(
    "metric, task, kind",
    [("qwk", None, "matrix"), ("mcc", "multiclass", "matrix"), ("mcc", None, "counts"), ("qwk", "binary", "counts"),
     ("f1", "binary", "counts"), ("1 - OBSERVED_LINEAR / EXPECTED_LINEAR", None, "matrix")],
)
def test_python_and_cli_give_one_answer(capsys, metric, task, kind):
    """metricc.explain(metric, task=...) is what `metricc explain metric --task ...` prints, in every format."""
    explanation = metricc.explain(metric, task=task)
    assert explanation.kind == kind
    flags = [] if task is None else ["--task", task]
    for form in ("json", "text"):
        code, out, _ = run(capsys, "explain", metric, *flags, "--format", form)
        assert code == 0 and out == explanation.format(form) + "\n"
    assert json.loads(explanation.to_json()) == explanation.to_dict()
    code, out, _ = run(capsys, "grad", metric, *flags, "--format", "json")
    assert set(json.loads(out)) == (GRAD_KEYS if kind == "counts" else MATRIX_GRAD_KEYS)


def test_matrix_json_follows_the_schema(capsys):
    code, out, _ = run(capsys, "explain", "qwk", "--format", "json")
    data = json.loads(out)
    assert code == 0 and set(data) == MATRIX_EXPLAIN_KEYS
    assert data["schema_version"] == 1 and data["kind"] == "matrix" and data["monotonicity"] is None
    assert set(data["partials"]) == set(data["aggregates"]) == {"SUM", "OBSERVED_QUADRATIC", "EXPECTED_QUADRATIC"}
    assert data["direction"] == {"value": "maximize", "source": "library", "note": "the signs of the partials agree"}
    for key in ("metric", *(f"partials.{name}" for name in data["partials"])):
        formula = data["metric"] if key == "metric" else data["partials"][key.split(".")[1]]
        assert sympy.sympify(formula["text"]).free_symbols <= {sympy.Symbol(n) for n in data["aggregates"]}


def test_a_matrix_formula_gets_a_sampled_direction_and_range():
    explanation = metricc.explain("TRACE / SUM")
    assert explanation.kind == "matrix" and explanation.direction == "maximize" and explanation.direction_source == "partials"
    assert explanation.range.source == "sampled" and 0.0 <= explanation.range.low < explanation.range.high <= 1.0
    assert metricc.explain("OBSERVED_UNWEIGHTED / SUM").direction == "minimize"


@pytest.mark.parametrize("name, matrix", [("qwk", ((20, 5, 2), (5, 20, 5), (2, 5, 20))), ("mcc", ((30, 4), (6, 10)))])
def test_matrix_weight_curves_are_the_derivative_of_the_loss_curves(name, matrix):
    """The plotted weight of a matrix metric, G[0, 0] - G[0, wrong] from the runtime, is d loss / d p."""
    curves = matrix_weight_curves(metricc.explain(name, task="multiclass"), matrix, points=2001)
    step = curves["p"][1] - curves["p"][0]
    for kind in ("near", "far"):
        numeric = np.gradient(curves[f"loss_{kind}"], step)
        assert np.allclose(curves[f"weight_{kind}"][1:-1], numeric[1:-1], rtol=1e-4, atol=1e-8)


def test_plot_of_a_matrix_metric_writes_a_png(tmp_path, capsys):
    path = tmp_path / "qwk.png"
    code, _, err = run(capsys, "explain", "qwk", "--plot", str(path), "--matrix", "20,5,2;5,20,5;2,5,20")
    assert code == 0 and str(path) in err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "qwk", "--plot", "x.png", "--counts", "1,2,3,4"], "give --matrix"),
        (["explain", "f1", "--plot", "x.png", "--matrix", "1,2;3,4"], "give --counts"),
        (["explain", "qwk", "--matrix", "1,2;3"], "square confusion matrix"),
        (["explain", "qwk", "--matrix", "1,-2;3,4"], "nonnegative"),
    ],
)
def test_plot_flags_name_the_form_they_belong_to(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, *[str(tmp_path / part) if part == "x.png" else part for part in argv])
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_every_format_of_a_matrix_metric_shows_its_gradient(capsys):
    """G = d metric / d M is in each format of a matrix metric, as the per-sample weights are in a four-count one's."""
    gradient = metricc.explain("qwk").derivation.cell_gradient_text()
    for form, shown in (("text", gradient), ("markdown", gradient), ("json", gradient), ("latex", "G_{ij}")):
        for command in ("explain", "grad"):
            code, out, _ = run(capsys, command, "qwk", "--format", form)
            assert code == 0 and shown in out, (command, form)
