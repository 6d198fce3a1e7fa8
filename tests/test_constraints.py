"""Constraints ("recall at precision >= 0.9"): the parser's errors, and threshold selection under constraints
against brute force with sklearn at every cut."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, fbeta_score, matthews_corrcoef, precision_score, recall_score

import metricc
from metricc.cli import main
from metricc.errors import ConstraintError, InvalidMetricError, MetricSyntaxError, OptionError, UnknownNameError
from metricc.library import default_library
from metricc.parse import parse, parse_constraint

#: sklearn's value of each metric, with zero_division as metricc's guarded formulas give it (nothing predicted
#: positive: precision 0); the data always has both classes, so recall, specificity and FPR are defined.
ORACLES = {
    "recall": lambda y, p: recall_score(y, p, zero_division=0),
    "precision": lambda y, p: precision_score(y, p, zero_division=0),
    "f1": lambda y, p: f1_score(y, p, zero_division=0),
    "fbeta(beta=2)": lambda y, p: fbeta_score(y, p, beta=2, zero_division=0),
    "mcc": matthews_corrcoef,
    "error_rate": lambda y, p: 1 - accuracy_score(y, p),
    "specificity": lambda y, p: recall_score(1 - y, 1 - p, zero_division=0),
    "FP / (FP + TN)": lambda y, p: 1 - recall_score(1 - y, 1 - p, zero_division=0),
    "PP / TOTAL": lambda y, p: p.mean(),
}
MINIMISED = {"error_rate"}


def _scored(seed: int, n: int = 300, levels: int = 0, positives: float = 0.3):
    """Scores that rank positives higher on average; `levels` rounds them onto a grid, which makes ties."""
    generator = np.random.default_rng(seed)
    target = (generator.random(n) < positives).astype(int)
    scores = np.clip(generator.random(n) * 0.7 + 0.3 * target, 0, 1)
    if levels:
        scores = np.round(scores * levels) / levels
    return scores, target


def _cuts(scores):
    """Every distinct prediction `scores > t`: t below every score, then t at each distinct score."""
    return np.concatenate([[-np.inf], np.unique(scores)])


def _brute_force(objective, constraints, scores, target, reached=None):
    """sklearn at every cut: (objective values, feasible mask, the expected best cut's threshold or None), and
    each constraint's metric at every cut into `reached`. The best is the best objective among feasible cuts, the
    lowest threshold among ties."""
    cuts = _cuts(scores)
    predictions = [(scores > t).astype(int) for t in cuts]
    values = np.array([ORACLES[objective](target, p) for p in predictions])
    feasible = np.ones(len(cuts), dtype=bool)
    reached = [] if reached is None else reached
    for metric, comparison, bound in constraints:
        reached.append(np.array([ORACLES[metric](target, p) for p in predictions]))
        feasible &= reached[-1] >= bound - 1e-9 if comparison == ">=" else reached[-1] <= bound + 1e-9
    if not feasible.any():
        return values, feasible, None
    sign = -1 if objective in MINIMISED else 1
    best = (sign * values[feasible]).max()
    tied = np.nonzero(feasible & (np.abs(sign * values - best) <= 1e-12))[0]
    return values, feasible, cuts[tied[0]]


def _text(constraints):
    return [f"{metric} {comparison} {bound}" for metric, comparison, bound in constraints]


CASES = [
    ("recall", [("precision", ">=", 0.9)]),
    ("recall", [("precision", ">=", 0.75)]),
    ("precision", [("recall", ">=", 0.6)]),
    ("recall", [("FP / (FP + TN)", "<=", 0.01)]),
    ("recall", [("specificity", ">=", 0.95)]),
    ("f1", [("PP / TOTAL", "<=", 0.2)]),
    ("fbeta(beta=2)", [("precision", ">=", 0.6), ("PP / TOTAL", ">=", 0.1)]),
    ("mcc", [("recall", ">=", 0.5), ("FP / (FP + TN)", "<=", 0.2)]),
    ("error_rate", [("recall", ">=", 0.8)]),
]


@pytest.mark.parametrize("objective, constraints", CASES, ids=lambda case: str(case))
@pytest.mark.parametrize("levels", [0, 12])
def test_the_best_feasible_cut_matches_sklearn_at_every_cut(objective, constraints, levels):
    scores, target = _scored(1, n=150, levels=levels)
    curve = metricc.threshold_curve(objective, scores, target, constraints=_text(constraints))
    reached = []
    values, feasible, expected = _brute_force(objective, constraints, scores, target, reached)
    np.testing.assert_allclose(curve.values.numpy(), values, atol=1e-9)
    assert curve.feasible.tolist() == feasible.tolist()
    assert curve.best_value == pytest.approx(values[list(_cuts(scores)).index(expected)], abs=1e-9)
    # the chosen threshold makes the oracle's prediction, so every constraint holds there and the value is the best
    assert ((scores > curve.best_threshold) == (scores > expected)).all()
    prediction = (scores > curve.best_threshold).astype(int)
    for (metric, comparison, bound), text, every_cut, computed in zip(constraints, _text(constraints), reached, curve.constraint_values):
        value = ORACLES[metric](target, prediction)
        assert value >= bound - 1e-9 if comparison == ">=" else value <= bound + 1e-9
        assert curve.best_constraint_values[text] == pytest.approx(value, abs=1e-9)
        np.testing.assert_allclose(computed.numpy(), every_cut, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.0]), st.booleans()), min_size=2, max_size=30),
    st.sampled_from(["recall", "f1", "mcc"]),
    st.sampled_from([("precision", ">="), ("FP / (FP + TN)", "<="), ("specificity", ">=")]),
    st.sampled_from([0.0, 0.25, 0.5, 2 / 3, 0.75, 0.9, 1.0]),
)
def test_hypothesis_constrained_selection_is_the_brute_force_one(pairs, objective, constraint, bound):
    scores = np.array([p[0] for p in pairs])
    target = np.array([int(p[1]) for p in pairs])
    if target.min() == target.max():
        target[0] = 1 - target[0]
    constraints = [(*constraint, bound)]
    values, feasible, expected = _brute_force(objective, constraints, scores, target)
    if expected is None:
        with pytest.raises(metricc.InfeasibleConstraintError):
            metricc.threshold_curve(objective, scores, target, constraints=_text(constraints))
        return
    curve = metricc.threshold_curve(objective, scores, target, constraints=_text(constraints))
    assert curve.feasible.tolist() == feasible.tolist()
    assert ((scores > curve.best_threshold) == (scores > expected)).all()
    assert ORACLES[objective](target, (scores > curve.best_threshold).astype(int)) == pytest.approx(curve.best_value, abs=1e-9)


def test_a_rate_equal_to_its_bound_meets_it():
    """9 of the 10 highest scores positive: precision is exactly 9/10 there, which meets precision >= 0.9 whatever
    the rounding of the formula."""
    scores = np.linspace(0.01, 1.0, 40)
    target = np.zeros(40, dtype=int)
    target[-10:] = 1
    target[-5] = 0
    target[3] = 1
    curve = metricc.threshold_curve("recall", scores, target, constraints=["precision >= 0.9", "TP / PP >= 0.9"])
    assert precision_score(target, scores > curve.best_threshold) == pytest.approx(0.9)
    assert recall_score(target, scores > curve.best_threshold) == pytest.approx(0.9)


def test_ties_take_the_lowest_threshold_among_the_best_feasible_cuts():
    """Recall stays 1 at every cut below the lowest positive; with precision >= 0.5 the best is the lowest such cut."""
    scores = np.array([0.1, 0.2, 0.2, 0.3, 0.6, 0.6, 0.8, 0.9])
    target = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    curve = metricc.threshold_curve("recall", scores, target, constraints=["precision >= 0.5"])
    values, feasible, expected = _brute_force("recall", [("precision", ">=", 0.5)], scores, target)
    assert curve.best_value == 1.0 and ((scores > curve.best_threshold) == (scores > expected)).all()
    assert int(feasible.sum()) >= 2 and curve.best_threshold < 0.3


def test_without_constraints_every_cut_is_feasible_and_the_best_is_unchanged():
    scores, target = _scored(2)
    plain = metricc.threshold_curve("f1", scores, target)
    assert plain.feasible.all() and plain.constraints == () and plain.best_constraint_values == {}
    loose = metricc.threshold_curve("f1", scores, target, constraints=["precision >= 0"])
    assert loose.best_index == plain.best_index and loose.feasible.all()


def test_formulas_bindings_and_library_names_select_the_same_cut():
    scores, target = _scored(3, levels=30)
    written = ["precision >= 0.8", "TP / (TP + FP) >= 0.8", "prec = TP / (TP + FP); prec >= 0.8", "TP/PP >= 0.8", "ppv >= 0.8"]
    curves = [metricc.threshold_curve("recall", scores, target, constraints=[text]) for text in written]
    assert len({curve.best_index for curve in curves}) == 1
    assert all(torch.equal(curve.feasible, curves[0].feasible) for curve in curves)
    # a whole-matrix aggregate takes its two-class form
    matrix = metricc.threshold_curve("recall", scores, target, constraints=["TRACE / SUM >= 0.7"])
    counts = metricc.threshold_curve("recall", scores, target, constraints=["accuracy >= 0.7"])
    assert torch.equal(matrix.feasible, counts.feasible) and matrix.best_index == counts.best_index


def test_a_single_text_and_a_parsed_constraint_are_accepted():
    scores, target = _scored(4)
    as_list = metricc.threshold_curve("recall", scores, target, constraints=["precision >= 0.8"])
    as_text = metricc.threshold_curve("recall", scores, target, constraints="precision >= 0.8")
    parsed = metricc.threshold_curve("recall", scores, target, constraints=[parse_constraint("precision >= 0.8", default_library())])
    assert as_list.best_index == as_text.best_index == parsed.best_index


def test_infeasible_constraints_raise_naming_each_and_its_best_value():
    scores, target = _scored(5)
    cuts = _cuts(scores)
    best_precision = max(precision_score(target, (scores > t).astype(int), zero_division=0) for t in cuts)
    best_fpr = min(1 - recall_score(1 - target, 1 - (scores > t).astype(int)) for t in cuts)
    with pytest.raises(metricc.InfeasibleConstraintError) as info:
        metricc.threshold_curve("recall", scores, target, constraints=["precision >= 0.99", "recall >= 0.9"])
    error = info.value
    assert isinstance(error, metricc.ThresholdError)
    assert "precision >= 0.99" in str(error) and "recall >= 0.9" in str(error) and "no cut meets them all at once" in str(error)
    assert error.reached["precision >= 0.99"] == pytest.approx(best_precision)
    assert not error.curve.feasible.any()
    assert error.curve.best_value == pytest.approx(1.0)  # the curve without the constraints' selection
    with pytest.raises(metricc.InfeasibleConstraintError, match="is never met") as info:
        metricc.threshold_curve("recall", scores, target, constraints=["FP / (FP + TN) <= -0.5"])
    assert info.value.reached["FP / (FP + TN) <= -0.5"] == pytest.approx(best_fpr)


def test_multilabel_selects_per_label_and_names_an_infeasible_label():
    columns = [_scored(seed, n=200) for seed in (6, 7, 8)]
    scores = np.stack([c[0] for c in columns], axis=1)
    target = np.stack([c[1] for c in columns], axis=1)
    curves = metricc.threshold_curve("recall", scores, target, task="multilabel", constraints=["precision >= 0.8"])
    for label, curve in enumerate(curves):
        alone = metricc.threshold_curve("recall", scores[:, label], target[:, label], constraints=["precision >= 0.8"])
        assert curve.best_index == alone.best_index and torch.equal(curve.feasible, alone.feasible)
        _, _, expected = _brute_force("recall", [("precision", ">=", 0.8)], scores[:, label], target[:, label])
        assert ((scores[:, label] > curves.best_thresholds[label].item()) == (scores[:, label] > expected)).all()
    hard = scores.copy()
    hard[:, 1] = np.random.default_rng(9).random(200)  # label 1's scores carry no signal
    feasible_elsewhere = ["precision >= 0.9", "recall >= 0.3"]
    metricc.threshold_curve("recall", scores, target, task="multilabel", constraints=feasible_elsewhere)
    with pytest.raises(metricc.InfeasibleConstraintError, match="of label 1"):
        metricc.threshold_curve("recall", hard, target, task="multilabel", constraints=feasible_elsewhere)


def test_logits_select_the_same_cut_as_probabilities():
    scores, target = _scored(10)
    logits = torch.logit(torch.tensor(scores).clamp(1e-6, 1 - 1e-6))
    probabilities = metricc.threshold_curve("recall", torch.tensor(scores), target, constraints=["precision >= 0.8"])
    from_logits = metricc.threshold_curve("recall", logits, target, from_logits=True, constraints=["precision >= 0.8"])
    assert from_logits.best_value == probabilities.best_value
    assert torch.equal(from_logits.feasible, probabilities.feasible)
    assert ((logits > from_logits.best_threshold) == (torch.tensor(scores) > probabilities.best_threshold)).all()
    assert from_logits.constraint_values_at(0.0) == probabilities.constraint_values_at(0.5)


# the language of constraints, and its errors


def _constraint(text):
    return parse_constraint(text, default_library())


def test_a_constraint_is_its_metric_compared_with_a_number():
    constraint = _constraint("prec = TP / (TP + FP)\nprec >= -0.0;")
    assert constraint.comparison == ">=" and constraint.bound == 0.0
    assert constraint.definition.expression == parse("TP / (TP + FP)").expression
    assert parse(constraint.metric_text).expression == constraint.definition.expression
    assert _constraint("fbeta(beta=2) <= 0.5").declared_range == (0.0, 1.0)
    assert _constraint("TP / (TP + FP) <= 0.5").declared_range is None
    assert str(_constraint("  precision   >=  0.9 ")) == "precision >= 0.9"


def test_a_malformed_constraint_names_line_and_column_with_a_caret():
    with pytest.raises(MetricSyntaxError) as info:
        _constraint("x = TP / (TP + FP)\nx >= >= 0.9")
    assert (info.value.line, info.value.column) == (2, 6)
    assert "x >= >= 0.9" in str(info.value) and "\n     ^" in str(info.value)


@pytest.mark.parametrize(
    "text, column, advice",
    [
        ("precision", 10, "has no comparison: write its metric, then >= or <= and a number, e.g. precision >= 0.9"),
        ("precision > 0.9", 11, "by >= or <="),
        ("precision == 0.9", 12, "by >= or <="),
        ("precision >= recall", 14, "bound their difference, precision - recall >= 0"),
        ("0.9 <= precision", 8, "write the metric first"),
        ("precision >= 0.9 >= 0.5", 18, "one comparison"),
        ("x = TP\nx >= ", 6, "ends too early"),
    ],
)
def test_each_malformed_constraint_says_what_to_write(text, column, advice):
    with pytest.raises(MetricSyntaxError) as info:
        _constraint(text)
    assert advice in str(info.value) and info.value.column == column
    assert str(info.value).endswith("\n" + " " * (column - 1) + "^")  # the caret under the column


def test_an_unknown_name_in_a_constraint_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean precision") as info:
        _constraint("precison >= 0.9")
    assert (info.value.line, info.value.column) == (1, 1)


@pytest.mark.parametrize(
    "text, message",
    [
        ("precision >= 1.5", r"precision lies in \[0, 1\], so precision >= 1.5 never holds: give a bound in \[0, 1\]"),
        ("precision >= 90", r"never holds: give a bound in \[0, 1\] \(a rate, not a percentage\)"),
        ("recall <= -0.1", r"recall lies in \[0, 1\], so recall <= -0.1 never holds"),
        ("specificity <= 2", r"always holds"),
        ("lr_plus >= -1", r"lr_plus lies in \[0, inf\], so lr_plus >= -1 always holds"),
        ("mcc >= -2", r"mcc lies in \[-1, 1\]"),
    ],
)
def test_a_bound_outside_the_declared_range_is_refused_naming_it(text, message):
    with pytest.raises(ConstraintError, match=message) as info:
        _constraint(text)
    assert info.value.column == text.index(text.split()[-1]) + 1


def test_a_formula_s_bound_is_not_checked_against_a_range_it_does_not_declare():
    assert _constraint("TP / (TP + FP) >= 1.5").bound == 1.5


@pytest.mark.parametrize("text, error, message", [("", InvalidMetricError, "the constraint is empty"), ("3 >= 2", InvalidMetricError, "does not depend on TP")])
def test_a_constraint_without_a_metric_is_refused(text, error, message):
    with pytest.raises(error, match=message):
        _constraint(text)


def test_a_comparison_in_a_metric_points_to_constraints():
    with pytest.raises(MetricSyntaxError, match=r"a metric compared with a number is a constraint: constraints=\[...\], --constraint"):
        parse("precision >= 0.9", library=default_library())


@pytest.mark.parametrize("constraints", [[0.9], 0.9, [["precision >= 0.9"]]])
def test_constraints_that_are_not_texts_are_an_option_error(constraints):
    with pytest.raises(OptionError, match="text"):
        metricc.threshold_curve("recall", [0.1, 0.9], [0, 1], constraints=constraints)


def test_errors_in_threshold_curve_are_the_parser_s():
    with pytest.raises(ConstraintError, match="never holds"):
        metricc.threshold_curve("recall", [0.1, 0.9], [0, 1], constraints=["precision >= 1.1"])
    with pytest.raises(UnknownNameError, match="did you mean recall"):
        metricc.threshold_curve("precision", [0.1, 0.9], [0, 1], constraints=["recal >= 0.5"])


# the command line


def _csv(tmp_path, scores, target):
    path = tmp_path / "scores.csv"
    path.write_text("score,target\n" + "".join(f"{s},{t}\n" for s, t in zip(scores, target)))
    return str(path)


def test_cli_prints_the_constrained_best_and_each_constraint_there(tmp_path, capsys):
    scores, target = _scored(11, n=200, levels=40)
    path = _csv(tmp_path, scores, target)
    assert main(["threshold", "recall", path, "--constraint", "precision >= 0.9", "--constraint", "FP / (FP + TN) <= 0.05"]) == 0
    printed = capsys.readouterr().out
    rows = {row[0]: row[1:] for row in (re.split(r"\s{2,}", line) for line in printed.splitlines())}
    threshold = float(rows["best threshold"][0])
    prediction = (scores > threshold).astype(int)
    _, feasible, expected = _brute_force("recall", [("precision", ">=", 0.9), ("FP / (FP + TN)", "<=", 0.05)], scores, target)
    assert ((scores > threshold) == (scores > expected)).all()
    assert rows["recall at best"][0] == f"{recall_score(target, prediction):.6g}"
    assert rows["precision >= 0.9"][0] == f"{precision_score(target, prediction):.6g}"
    at_half = precision_score(target, (scores > 0.5).astype(int))
    assert rows["precision >= 0.9"][1] == f"holds at the best threshold; at 0.5: {at_half:.6g}, {'holds' if at_half >= 0.9 else 'violated'}"
    assert rows["FP / (FP + TN) <= 0.05"][0] == f"{1 - recall_score(1 - target, 1 - prediction):.6g}"
    assert printed.splitlines()[-1].endswith(f", {int(feasible.sum())} meet every constraint")


def test_cli_infeasible_and_malformed_constraints_exit_2_with_one_message(tmp_path, capsys):
    scores, target = _scored(12, n=100)
    path = _csv(tmp_path, scores, target)
    assert main(["threshold", "f1", path, "--constraint", "precision >= 0.99", "--constraint", "recall >= 0.95"]) == 2
    assert "metricc: error: no threshold meets the constraints" in capsys.readouterr().err
    assert main(["threshold", "f1", path, "--constraint", "precision => 0.9"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("metricc: error: line 1, column 12: unexpected character '>'") and "by >= or <=" in error and "^" in error
    result = subprocess.run(
        [sys.executable, "-m", "metricc.cli", "threshold", "f1", path, "--constraint", "precision >= 1.5"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "give a bound in [0, 1]" in result.stderr


def test_the_errors_docs_constraints_md_shows_are_the_errors_raised():
    """Each `SomeError: message` paragraph of docs/constraints.md: a parser error with the constraint on its next
    line, or the infeasible example on the CSV tests/test_docs.py writes; `...` stands for any text."""
    from test_docs import INPUT_FILES, ROOT, code_blocks, line_pattern

    rows = [line.split(",") for line in INPUT_FILES["scores.csv"].splitlines()[1:]]
    scores, target = np.array([float(s) for s, _ in rows]), np.array([int(t) for _, t in rows])
    shown = 0
    for block in code_blocks(ROOT / "docs" / "constraints.md"):
        for paragraph in "\n".join(block.lines).split("\n\n"):
            lines = paragraph.splitlines()
            match = re.match(r"(\w+Error): (.*)", lines[0])
            if not match:
                continue
            name, message = match.groups()
            with pytest.raises(getattr(metricc, name)) as info:
                if name == "InfeasibleConstraintError":
                    metricc.threshold_curve("recall", scores, target, constraints=re.findall(r"(\w+ [<>]= [\d.]+) (?:holds|is never)", message))
                else:
                    _constraint(lines[1])
            real = str(info.value).splitlines()
            assert len(real) == len(lines) and all(line_pattern(quoted).match(line) for quoted, line in zip(lines[1:], real[1:])), paragraph
            assert line_pattern(message).match(real[0]), f"the doc shows\n{message}\nbut the error is\n{real[0]}"
            shown += 1
    assert shown == 5


@pytest.mark.parametrize("n", [1_000, 200_000])
def test_constraints_keep_the_scores_on_their_device(n):
    """As without constraints (test_threshold.py): no copy to another device, and the same few scalar reads at any N,
    one more per constraint (its finiteness) and one for whether the best cut is feasible."""
    from test_threshold import _HostReads

    g = torch.Generator().manual_seed(n)
    scores, target = torch.rand(n, generator=g), (torch.rand(n, generator=g) < 0.3).float()
    constraints = ["precision >= 0.3", "FP / (FP + TN) <= 0.5"]
    metricc.threshold_curve("recall", scores, target, constraints=constraints)  # compiled outside the count
    with _HostReads() as plain:
        metricc.threshold_curve("recall", scores, target)
    with _HostReads() as reads:
        curve = metricc.threshold_curve("recall", scores, target, constraints=constraints)
    assert reads.device_copies == 0 and reads.scalars <= plain.scalars + 1 + len(constraints)
    assert curve.feasible.device == scores.device and all(v.device == scores.device for v in curve.constraint_values)


def test_a_loss_with_constraints_is_the_lagrangian_under_the_constraints_threshold_curve_reads():
    """metricc.loss(..., constraints=...) parses them as threshold_curve does (tests/test_constrained_training.py
    and tests/test_constrained_multiclass.py check the training)."""
    written = ["precision >= 0.9", "FP / (FP + TN) <= 0.01"]
    loss = metricc.loss("recall", constraints=written)
    assert isinstance(loss, metricc.ConstrainedLoss)
    assert loss.multipliers == {str(parse_constraint(text, default_library())): 0.0 for text in written}
    assert loss.bounds == (0.9, 0.01) and loss.comparisons == (">=", "<=")
