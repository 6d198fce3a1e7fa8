"""The metric language: let-bindings, parameters, library metrics in formulas, comments, files, and bad input."""

import pytest
import sympy
from sklearn import metrics as skm

import metricc
from metricc.cli import main
from metricc.errors import InvalidMetricError, MetricError, MetricSyntaxError, ParameterError, UnknownNameError
from metricc.library import Library, LibraryEntry, default_library
from metricc.language import COUNTS, MAX_SOURCE_CHARS
from metricc.parse import parse
from oracles import batch_with_counts

TP, FP, FN, TN = COUNTS
LIBRARY = default_library()


def metric(text):
    return parse(text, LIBRARY)


def same(a, b):
    return sympy.simplify(a - b) == 0


def library_expression(name):
    return LIBRARY.definition(name).expression


def test_let_bindings():
    text = "prec = TP/(TP+FP); rec = TP/(TP+FN); 2*prec*rec/(prec+rec)"
    assert same(metric(text).expression, 2 * TP / (2 * TP + FP + FN))


def test_comments_and_lines_without_semicolons():
    text = """
    # F1 from precision and recall
    prec = TP / (TP + FP)   # positive predictive value
    rec = TP / (TP + FN)
    2 * prec * rec / (prec + rec)   # harmonic mean
    """
    assert same(metric(text).expression, library_expression("f1"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("(f1 + mcc)/2", lambda: (library_expression("f1") + library_expression("mcc")) / 2),
        ("0.5*recall + 0.5*specificity", lambda: library_expression("balanced_accuracy")),
        ("fbeta(beta=2)", lambda: library_expression("f2")),
        ("fbeta(beta = 0.5)", lambda: library_expression("f0_5")),
        ("1 - ppv", lambda: library_expression("fdr")),
        ("tversky(alpha=0.5, beta=0.5)", lambda: library_expression("dice")),
    ],
)
def test_library_metrics_inside_formulas(text, expected):
    assert same(metric(text).expression, expected())


def test_library_parameters_carry_into_formulas():
    definition = metric("fbeta + recall")
    assert [p.name for p in definition.parameters] == ["beta"]
    assert [p.name for p in metric("fbeta(beta=2) + recall").parameters] == []


def test_binding_may_shadow_a_library_name():
    assert metric("precision = TP; precision / (TP + FN)").expression == TP / (TP + FN)


def test_parameters_become_constructor_arguments():
    loss = metricc.loss("param w = 2 in (0, inf)\nTP / (TP + w * FP)", name="weighted_precision", approximation="identity")
    assert loss.parameter_values == {"w": 2.0}
    preds, target = batch_with_counts(6, 3, 2, 5)
    assert float(type(loss)(w=3.0, approximation="identity").metric(preds, target)) == pytest.approx(6 / (6 + 3 * 3))
    with pytest.raises(ValueError, match=r"w=-1.*\(0, inf\)"):
        type(loss)(w=-1.0)


def test_fbeta_constructor_argument_matches_sklearn_and_rejects_bad_beta():
    fbeta = type(metricc.loss("fbeta"))
    preds, target = batch_with_counts(7, 4, 3, 9)
    expected = skm.fbeta_score(target.numpy(), preds.numpy(), beta=2.0)
    assert float(fbeta(beta=2.0, approximation="identity").metric(preds, target)) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="beta=-1"):
        fbeta(beta=-1)


@pytest.mark.parametrize(
    "text, match",
    [
        ("fbeta(beta=-1)", "parameter beta of fbeta = -1 lies outside its domain"),
        ("fbeta(beta=0)", "parameter beta of fbeta = 0 lies outside its domain"),
        ("param beta = -1 in (0, inf)\nTP/(TP + beta*FP)", "parameter beta = -1 lies outside its domain"),
        ("param a = 1 in (2, 1)\nTP/(TP + a*FP)", "parameter a has an empty domain"),
        ("tversky(alpha=-0.1)", "parameter alpha of tversky"),
    ],
)
def test_parameter_outside_its_domain_is_named(text, match):
    with pytest.raises(ParameterError, match=match.replace("(", r"\(")):
        metric(text)


@pytest.mark.parametrize(
    "text, match",
    [
        ("fbeta(gamma=2)", "fbeta has no parameter 'gamma' \\(its parameters: beta\\)"),
        ("fbeta(2)", "takes parameters by name only"),
        ("fbeta(beta=TP)", "must not depend on the counts"),
        ("fbeta(beta=2, beta=3)", "fbeta\\(\\) is given beta twice"),
        ("param eps = 1\nTP", "'eps' is a loss option"),
        ("param average = 1\nTP", "'average' is a loss option"),
        ("param lambda = 1\nTP", "'lambda' is a Python keyword"),
        ("TP = 1; TP", "built-in name"),
        ("a = TP; a = FP; a", "bound twice"),
    ],
)
def test_bad_parameters_and_bindings(text, match):
    with pytest.raises(MetricSyntaxError, match=match):
        metric(text)


@pytest.mark.parametrize("text", ["x = x + TP; x", "a = b + TP; b = a; a", "f = TP / (TP + f); f"])
def test_self_reference_and_recursion_are_errors(text):
    with pytest.raises(UnknownNameError, match="no self-reference or recursion"):
        metric(text)


def test_recursive_library_entries_are_errors():
    entry = dict(higher_is_better=True, range=(0.0, 1.0), aliases=(), reference="-")
    library = Library([LibraryEntry("ping", "pong + TP", **entry), LibraryEntry("pong", "ping / 2", **entry)])
    with pytest.raises(InvalidMetricError, match="refers to itself: ping -> pong -> ping"):
        library.definition("ping")


@pytest.mark.parametrize("text, suggestion", [("f11", "f1"), ("recal", "recall"), ("sensitivty", "sensitivity"), ("jacard", "jaccard")])
def test_unknown_names_suggest_the_closest(text, suggestion):
    with pytest.raises(UnknownNameError, match=f"did you mean {suggestion}"):
        metric(text)


def test_statement_without_a_metric_says_so():
    with pytest.raises(MetricSyntaxError, match="ends with a binding"):
        metric("a = TP\n-FP")


# Bounded input: every case ends in a result or a MetricError, never a RecursionError or a hang.


def test_ten_thousand_nested_parentheses_give_a_result():
    assert metric("(" * 10_000 + "TP/(TP+FP)" + ")" * 10_000).expression == TP / (TP + FP)


@pytest.mark.parametrize(
    "text, match",
    [
        ("TP+" * 350_000 + "TP", f"at most {MAX_SOURCE_CHARS}"),  # a 1 MB formula
        ("-" * 10_000 + "TP", "nests more than"),
        ("sqrt(" * 5_000 + "TP" + ")" * 5_000, "nests more than"),
        ("^".join(["TP"] * 3_000), "nests more than"),
        ("\n".join(f"x{i} = sqrt(x{i - 1} + TP)" if i else "x0 = TP" for i in range(2_000)) + "\nx1999", "nests more than"),
        ("\n".join(f"x{i} = (x{i - 1} + FP) / (x{i - 1} + TN)" if i else "x0 = TP" for i in range(40)) + "\nx39", "operations"),
        ("+".join(["TP*FP"] * 12_000), "operations"),
        ("2^2^2^2^2 * TP", "outside the range a float can hold"),
        ("1e200 * 1e200 * TP", "outside the range a float can hold"),
        ("TP^1e999", "out of range"),
    ],
)
def test_huge_or_deep_input_is_a_clear_error(text, match):
    with pytest.raises(MetricError, match=match):
        metric(text)


def test_derivative_growth_is_bounded():
    text = "\n".join(f"x{i} = (x{i - 1} + FP) / (x{i - 1} + TN)" if i else "x0 = TP" for i in range(12)) + "\nx11"
    with pytest.raises(InvalidMetricError, match="partial derivative with respect to TP has more than"):
        metricc.gradient(text)


def test_long_sum_of_fractions_compiles():
    text = "+".join(f"TP/(TP + {k}*FP + FN)" for k in range(1, 40))
    assert set(metricc.gradient(text)) == {"TP", "FP", "FN", "TN"}


# The command line.


def test_compile_from_a_multi_line_file(tmp_path, capsys):
    source = tmp_path / "metric.txt"
    source.write_text("# my metric\nparam w = 2 in (0, inf)   # weight of false positives\nprec = TP / (TP + w*FP)\nprec\n")
    assert main(["compile", "-f", str(source), "--name", "weighted_precision", "-o", str(tmp_path / "out.py")]) == 0
    emitted = (tmp_path / "out.py").read_text()
    declared = '"w": ParameterSpec(default=2.0, lower=0.0, upper=float("inf"), lower_open=True, upper_open=True),'
    assert "class WeightedPrecisionLoss" in emitted and declared in emitted


def test_compile_unknown_name_suggests(capsys):
    assert main(["compile", "f11"]) == 2
    assert "did you mean f1" in capsys.readouterr().err
    assert main(["compile", "nosuchmetric"]) == 2
    assert "unknown name 'nosuchmetric'" in capsys.readouterr().err


def test_cli_bad_parameter_and_huge_input_exit_2(capsys):
    assert main(["grad", "fbeta(beta=-1)"]) == 2
    assert "parameter beta" in capsys.readouterr().err
    assert main(["grad", "TP+" * 350_000 + "TP"]) == 2
    assert "characters long" in capsys.readouterr().err
    assert main(["grad", "(" * 10_000 + "TP" + ")" * 10_000]) == 0


def test_list_shows_every_metric(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in LIBRARY.names())
