"""Static analysis verdicts on metrics whose answers are known: direction, monotonicity, range, singular points, guards."""

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

import metricc
from metricc.analyses import estimate_range, monotonicity, operation_counts
from metricc.conditions import zero_condition
from metricc.direction import decide_direction
from metricc.guards import ClampAtZero, SafeDenominator, SignedDenominator, guard, singular_points
from metricc.compiler import resolve
from metricc.derive import derive, per_sample_weights
from metricc.library import default_library
from metricc.language import COUNTS
from metricc.parse import parse
from oracles import labels_with_counts

TP, FP, FN, TN = COUNTS
EPS = sympy.Rational(1, 10**7)


def derivation(text):
    return resolve(text)[1]


@pytest.mark.parametrize(
    "text, direction",
    [
        ("f1", "maximize"),
        ("mcc", "maximize"),
        ("recall", "maximize"),
        ("error_rate", "minimize"),
        ("(FP + FN) / TOTAL", "minimize"),
        ("fdr", "minimize"),
        ("TP - FP^2 + FN", "maximize"),  # every prediction moving towards its label raises it (yet see monotonicity)
        ("TP / TOTAL", "maximize"),  # Russell-Rao, likewise, though it falls with TN
        ("TP + FP", None),  # rewards predicting positive: a negative example becoming more correct lowers it
        ("TP * FP", None),
    ],
)
def test_direction_from_the_signs_of_the_partials(text, direction):
    assert decide_direction(derivation(text)).direction == direction


@pytest.mark.parametrize("text", ["f1", "fbeta", "tversky", "precision", "jaccard", "balanced_accuracy", "mcc", "TP - FP^2"])
def test_monotone_metrics_are_proved_symbolically(text):
    verdict = monotonicity(derivation(text), "maximize")
    assert verdict.monotone
    assert {trend.method for trend in verdict.trends} == {"symbolic"}
    assert "proved symbolically" in verdict.describe()


@pytest.mark.parametrize("text, direction", [("overlap_coefficient", "maximize"), ("focal_tversky", "minimize")])
def test_monotone_metrics_sympy_cannot_decide_are_sampled(text, direction):
    verdict = monotonicity(derivation(text), direction)
    assert verdict.monotone
    assert "sampled" in {trend.method for trend in verdict.trends}


def test_minimised_metric_is_monotone_the_other_way():
    verdict = monotonicity(derivation("error_rate"), "minimize")
    assert verdict.monotone
    assert [verdict.expected(c) for c in ("TP", "FP", "FN", "TN")] == ["non-increasing", "non-decreasing", "non-decreasing", "non-increasing"]


def test_metric_rising_with_false_negatives_is_flagged():
    """Its direction is maximize, yet one more false negative raises it."""
    flagged = monotonicity(derivation("TP - FP^2 + FN"), "maximize")
    assert not flagged.monotone
    assert "it is non-decreasing in FN where a maximized metric should be non-increasing" in flagged.describe()
    assert not monotonicity(derivation("TP / TOTAL"), "maximize").monotone  # falls with TN
    verdict = monotonicity(derivation("TP - FP^2 + FN"), None)
    assert not verdict.monotone
    trends = {t.count: t.trend for t in verdict.trends}
    assert trends == {"TP": "non-decreasing", "FP": "non-increasing", "FN": "non-decreasing", "TN": "constant"}
    assert "NOT monotone" in verdict.describe() and "FN" in verdict.describe()


def test_cohen_kappa_is_not_monotone_and_the_witness_is_real():
    verdict = monotonicity(derivation("cohen_kappa"), "maximize")
    assert not verdict.monotone
    mixed = [t for t in verdict.trends if t.trend == "mixed"]
    assert {t.count for t in mixed} == {"FP", "FN"}
    # at the witness, one more false positive raises kappa (checked with sklearn, not with our formula)
    fp_trend = next(t for t in mixed if t.count == "FP")
    tp, fp, fn, tn = (int(fp_trend.witness[c]) for c in ("TP", "FP", "FN", "TN"))

    def kappa(tp, fp, fn, tn):
        return cohen_kappa_score(*labels_with_counts(tp, fp, fn, tn))

    assert kappa(tp, fp + 1, fn, tn) > kappa(tp, fp, fn, tn)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("recall", ["recall is undefined when the batch has no positives (the denominator FN + TP vanishes); guarded by max(x, eps)"]),
        ("precision", ["precision is undefined when nothing is predicted positive (the denominator FP + TP vanishes); guarded by max(x, eps)"]),
        ("specificity", ["specificity is undefined when the batch has no negatives (the denominator FP + TN vanishes); guarded by max(x, eps)"]),
        ("accuracy", ["accuracy is undefined when the batch is empty (the denominator FN + FP + TN + TP vanishes); guarded by max(x, eps)"]),
        ("f1", ["f1 is undefined when there are no positives and nothing is predicted positive (the denominator FN + FP + 2*TP vanishes); guarded by max(x, eps)"]),
    ],
)  # fmt: skip
def test_singular_points_in_words(text, expected):
    entry, result = resolve(text)
    assert [point.describe(entry.name) for point in singular_points(result)] == expected


def test_gradient_only_singularities_are_told_apart():
    points = singular_points(derivation("gmean"))
    in_value = {sympy.sstr(p.singularity.expression) for p in points if p.in_value}
    gradient_only = {sympy.sstr(p.singularity.expression) for p in points if not p.in_value}
    assert in_value == {"FN + TP", "FP + TN"}
    assert gradient_only == {"TP", "TN"}  # d sqrt(x) / dx is infinite at x = 0
    assert any(p.describe("gmean").startswith("the gradient of gmean is undefined when there are no true positives") for p in points)


def test_root_and_log_and_signed_singularities():
    root = singular_points(derivation("sqrt(TP - FP)"))
    assert (root[0].singularity.kind, root[0].singularity.guard, root[0].singularity.condition()) == ("root", "ClampAtZero", "FP > TP")
    log = [p.singularity for p in singular_points(derivation("log(TP / (TP + FP))")) if p.singularity.kind == "log"]
    assert log and log[0].condition() == "there are no true positives"
    signed = [p.singularity for p in singular_points(derivation("TP / (TP*TN - FP*FN)"))]
    assert signed[0].guard == "SignedDenominator" and signed[0].condition() == "FN*FP = TN*TP"


@pytest.mark.parametrize(
    "expression, words",
    [
        (TP + FN, "the batch has no positives"),
        (FP + TN, "the batch has no negatives"),
        (FN + TN, "nothing is predicted negative"),
        (TP + FP + FN + TN, "the batch is empty"),
        (TP, "there are no true positives"),
        ((TP + FP) * (TP + FN), "nothing is predicted positive or the batch has no positives"),
    ],
)
def test_zero_condition_words(expression, words):
    assert zero_condition(expression) == words


def test_smoothed_dice_needs_no_guard():
    smoothed = derive(parse("(2*TP + 1) / (2*TP + FP + FN + 1)"))
    assert singular_points(smoothed) == []
    guarded, found = guard(smoothed.value)
    assert found == [] and not guarded.has(SafeDenominator, SignedDenominator, ClampAtZero)


def _exact(expression):
    """The guards replaced by what they compute, with the emitted default eps, in exact arithmetic."""
    return expression.replace(SafeDenominator, lambda x: sympy.Max(x, EPS)).replace(
        ClampAtZero, lambda x: sympy.Max(x, 0)
    ).replace(SignedDenominator, lambda x: sympy.Piecewise((x, sympy.Abs(x) >= EPS), (-EPS, x < 0), (EPS, True)))


GUARD_CASES = default_library().names() + ["(2*TP + 1) / (2*TP + FP + FN + 1)", "sqrt(TP - FP) + TN/(TN + FN)"]


@pytest.mark.parametrize("text", GUARD_CASES)
@settings(max_examples=15, deadline=None)
@given(counts=st.tuples(*[st.integers(0, 30)] * 4))
def test_guards_do_not_move_the_value_off_the_singular_region(text, counts):
    """On integer counts where the metric is defined, the guarded value equals the unguarded one exactly."""
    result = derivation(text)
    defaults = {p.symbol: p.default for p in result.definition.parameters}
    at = {**defaults, **dict(zip(COUNTS, map(sympy.Integer, counts)))}
    unguarded = result.value.xreplace(at)
    if unguarded.is_finite is not True or not unguarded.is_real:
        return
    guarded = _exact(guard(result.value)[0]).xreplace(at)
    assert sympy.simplify(guarded - unguarded) == 0


@pytest.mark.parametrize("text", ["f1", "mcc", "fbeta", "prevalence_threshold", "TP - FP^2 + FN"])
def test_per_sample_weights_are_the_derivative_of_adding_one_sample(text):
    """A sample with soft prediction a puts a into TP and 1 - a into FN if positive, a into FP and 1 - a into TN if not:
    moving its prediction by da moves those counts by +da and -da."""
    result = derivation(text)
    a = sympy.Symbol("a")
    positive, negative = per_sample_weights(result)
    add_positive = result.value.xreplace({TP: TP + a, FN: FN - a})
    add_negative = result.value.xreplace({FP: FP + a, TN: TN - a})
    rng = np.random.default_rng(0)
    for _ in range(3):
        point = dict(zip(COUNTS, (sympy.Rational(int(v), 7) for v in rng.integers(1, 60, size=4))))
        point.update({p.symbol: p.default for p in result.definition.parameters})
        for weight, added in ((positive, add_positive), (negative, add_negative)):
            expected = sympy.diff(added, a).xreplace(point).xreplace({a: 0})
            assert sympy.N(weight.xreplace(point) - expected, 30) == pytest.approx(0, abs=1e-20)


def test_operation_counts_drop_with_cse_where_there_is_sharing():
    shared = operation_counts(derivation("mcc"))
    assert shared.after_cse < shared.before_cse and shared.intermediates > 0
    nothing_shared = operation_counts(derivation("TP - FP^2 + FN"))
    assert nothing_shared.after_cse == nothing_shared.before_cse and nothing_shared.intermediates == 0


def test_range_is_estimated_by_sampling_and_says_so():
    estimate = estimate_range(derivation("TP / TOTAL"))
    assert estimate.source == "sampled" and estimate.samples > 1000
    assert 0.0 <= estimate.low <= 0.01 and 0.99 <= estimate.high <= 1.0
    assert "estimated" in estimate.describe()


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_a_direction_that_flips_inside_the_parameters_domain_is_not_guessed(task):
    """A compiled loss keeps one direction whatever parameter value its constructor takes, so direction='auto'
    must hold over the whole domain: s in [-1, 1] flips IoU's sign (s = -1 would train the wrong way)."""
    body = "s*TP/(TP+FP+FN)" if task == "binary" else "s*TRACE/SUM"
    with pytest.raises(metricc.DirectionError, match=r"s in \[-1, 1\].*narrow the domain"):
        metricc.emit(f"param s = 1 in [-1, 1]; {body}", task=task)
    with pytest.raises(metricc.DirectionError, match="narrow the domain"):
        metricc.loss(f"param s = 1 in [-1, 1]; {body}", task=task, s=-1)
    narrowed = metricc.loss(f"param s = 1 in (0, 1]; {body}", task=task, s=0.5)
    assert narrowed.maximize is True  # the loss is 1 - metric
    explicit = metricc.loss(f"param s = 1 in [-1, 1]; {body}", task=task, direction="minimize", s=-1)
    assert explicit.maximize is False
