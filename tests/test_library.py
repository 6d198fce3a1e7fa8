"""Every library metric, compiled and run, against an independent reference; every emitted gradient against gradcheck."""

import functools
import math
import warnings

import numpy as np
import pytest
import sympy
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.spatial import distance
from sklearn import metrics as skm

import metricc
from metricc.analyses import estimate_range, monotonicity
from metricc.direction import decide_direction
from metricc.compiler import compile_metric, resolve
from metricc.library import default_library
from metricc.language import COUNTS
from oracles import labels_with_counts

LIBRARY = default_library()
NAMES = LIBRARY.names()


@functools.lru_cache(maxsize=None)
def identity_loss(name):
    """One compiled module per metric for the whole file: with a = p, hard 0/1 predictions give exact counts."""
    return metricc.loss(name, approximation="identity")


def _sk(function, **kwargs):
    def reference(y_true, y_pred, counts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(function(y_true, y_pred, **kwargs))

    return reference


def _scipy_similarity(function):
    return lambda y_true, y_pred, counts: 1.0 - float(function(y_true.astype(bool), y_pred.astype(bool)))


def _formula(function):
    def reference(y_true, y_pred, counts):
        try:
            return float(function(*map(float, counts)))
        except ZeroDivisionError:
            return math.nan

    return reference


def _ratios(y_true, y_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skm.class_likelihood_ratios(y_true, y_pred)


def _precision(y_true, y_pred, label=1):
    return _sk(skm.precision_score, pos_label=label, zero_division=np.nan)(y_true, y_pred, None)


def _recall(y_true, y_pred, label=1):
    return _sk(skm.recall_score, pos_label=label, zero_division=np.nan)(y_true, y_pred, None)


def _sqrt(x):
    return math.sqrt(x) if x >= 0 else math.nan


# name -> reference(y_true, y_pred, (tp, fp, fn, tn)). sklearn (or scipy) wherever it has the metric; otherwise the
# formula from the cited paper, written out here independently of library.toml.
REFERENCES = {
    "accuracy": _sk(skm.accuracy_score),
    "error_rate": _sk(skm.hamming_loss),
    "balanced_accuracy": _sk(skm.balanced_accuracy_score),
    "balanced_error_rate": lambda t, p, c: 1.0 - _sk(skm.balanced_accuracy_score)(t, p, c),
    "precision": lambda t, p, c: _precision(t, p),
    "recall": lambda t, p, c: _recall(t, p),
    "specificity": lambda t, p, c: _recall(t, p, label=0),
    "npv": lambda t, p, c: _precision(t, p, label=0),
    "fpr": lambda t, p, c: 1.0 - _recall(t, p, label=0),
    "fnr": lambda t, p, c: 1.0 - _recall(t, p),
    "fdr": lambda t, p, c: 1.0 - _precision(t, p),
    "false_omission_rate": lambda t, p, c: 1.0 - _precision(t, p, label=0),
    "f1": _sk(skm.f1_score, zero_division=np.nan),
    "fbeta": _sk(skm.fbeta_score, beta=1.0, zero_division=np.nan),
    "f2": _sk(skm.fbeta_score, beta=2.0, zero_division=np.nan),
    "f0_5": _sk(skm.fbeta_score, beta=0.5, zero_division=np.nan),
    "jaccard": _sk(skm.jaccard_score),
    "dice": _scipy_similarity(distance.dice),
    # Tversky (1977), S(alpha, beta) = TP / (TP + alpha FP + beta FN), at the defaults alpha = beta = 0.5.
    "tversky": _formula(lambda tp, fp, fn, tn: tp / (tp + 0.5 * fp + 0.5 * fn)),
    # Abraham and Khan (2019): (1 - TI)^(1/gamma), 1/gamma = 0.75, TI with 0.3 on FP and 0.7 on FN.
    "focal_tversky": _formula(lambda tp, fp, fn, tn: (1 - tp / (tp + 0.3 * fp + 0.7 * fn)) ** 0.75),
    "mcc": _sk(skm.matthews_corrcoef),
    "normalized_mcc": lambda t, p, c: (_sk(skm.matthews_corrcoef)(t, p, c) + 1) / 2,
    "cohen_kappa": _sk(skm.cohen_kappa_score),
    # with two classes, every weighting of kappa is Cohen's
    "linear_kappa": _sk(skm.cohen_kappa_score, weights="linear"),
    "quadratic_kappa": _sk(skm.cohen_kappa_score, weights="quadratic"),
    # the one-vs-rest forms are the binary metrics themselves
    "accuracy_ovr": _sk(skm.accuracy_score),
    "mcc_ovr": _sk(skm.matthews_corrcoef),
    "cohen_kappa_ovr": _sk(skm.cohen_kappa_score),
    "informedness": _sk(skm.balanced_accuracy_score, adjusted=True),
    "markedness": lambda t, p, c: _precision(t, p) + _precision(t, p, label=0) - 1,
    "fowlkes_mallows": lambda t, p, c: _sqrt(_precision(t, p) * _recall(t, p)),
    "gmean": lambda t, p, c: _sqrt(_recall(t, p) * _recall(t, p, label=0)),
    # Balayla (2020), PT = (sqrt(TPR FPR) - FPR) / (TPR - FPR).
    "prevalence_threshold": _formula(
        lambda tp, fp, fn, tn: (_sqrt(tp / (tp + fn) * fp / (fp + tn)) - fp / (fp + tn)) / (tp / (tp + fn) - fp / (fp + tn))
    ),
    "lr_plus": lambda t, p, c: float(_ratios(t, p)[0]),
    "lr_minus": lambda t, p, c: float(_ratios(t, p)[1]),
    # Glas et al. (2003): DOR = LR+ / LR-.
    "diagnostic_odds_ratio": lambda t, p, c: float(_ratios(t, p)[0] / _ratios(t, p)[1]),
    "log_diagnostic_odds_ratio": lambda t, p, c: math.log(_ratios(t, p)[0] / _ratios(t, p)[1]),
    "kulczynski": lambda t, p, c: (_precision(t, p) + _recall(t, p)) / 2,
    "yule_q": _scipy_similarity(distance.yule),
    # Yule (1912): Y = (sqrt(OR) - 1) / (sqrt(OR) + 1), OR = TP TN / (FP FN).
    "yule_y": _formula(
        lambda tp, fp, fn, tn: (_sqrt(tp * tn / (fp * fn)) - 1) / (_sqrt(tp * tn / (fp * fn)) + 1)
    ),
    "sokal_sneath": _scipy_similarity(distance.sokalsneath),
    # Schaefer (1990): ETS = (a - a_r) / (a + b + c - a_r), a_r = (a + b)(a + c) / n; a hits, b false alarms, c misses.
    "gilbert_skill_score": _formula(
        lambda tp, fp, fn, tn: (tp - (tp + fp) * (tp + fn) / (tp + fp + fn + tn))
        / (tp + fp + fn - (tp + fp) * (tp + fn) / (tp + fp + fn + tn))
    ),
    "rogers_tanimoto": _scipy_similarity(distance.rogerstanimoto),
    # Szymkiewicz-Simpson overlap: |A n B| / min(|A|, |B|).
    "overlap_coefficient": _formula(lambda tp, fp, fn, tn: tp / min(tp + fp, tp + fn)),
}


def test_every_library_metric_has_a_reference():
    assert sorted(REFERENCES) == sorted(NAMES)


def _defined(name, counts):
    """Whether the metric's exact value (rational arithmetic, no guards) exists at these counts."""
    definition = LIBRARY.definition(name)
    exact = definition.expression.xreplace({p.symbol: p.default for p in definition.parameters})
    return exact.xreplace(dict(zip(COUNTS, map(sympy.Integer, counts)))).is_finite is True


counts_strategy = st.tuples(*[st.integers(0, 40)] * 4).filter(lambda c: sum(c) > 0)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=counts_strategy)
def test_library_metric_matches_reference_on_hard_predictions(name, counts):
    assume(_defined(name, counts))
    y_true, y_pred = labels_with_counts(*counts)
    expected = REFERENCES[name](y_true, y_pred, counts)
    assume(math.isfinite(expected))
    preds = torch.tensor(y_pred, dtype=torch.float64)
    target = torch.tensor(y_true, dtype=torch.float64)
    got = float(identity_loss(name).metric(preds, target))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_library_metric_gradient_passes_gradcheck(name):
    generator = torch.Generator().manual_seed(sum(map(ord, name)))
    preds = (0.1 + 0.8 * torch.rand(24, generator=generator, dtype=torch.float64)).requires_grad_()
    target = (torch.arange(24) % 3 == 0).to(torch.float64)
    loss = identity_loss(name)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (preds,), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["fbeta", "tversky", "focal_tversky"])
def test_parameterised_gradient_passes_gradcheck_away_from_defaults(name):
    values = {"fbeta": {"beta": 2.5}, "tversky": {"alpha": 0.2, "beta": 0.9}, "focal_tversky": {"gamma": 1.7}}[name]
    loss = type(identity_loss(name))(approximation="identity", **values)
    preds = torch.linspace(0.1, 0.9, 17, dtype=torch.float64).requires_grad_()
    target = (torch.arange(17) % 2 == 0).to(torch.float64)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (preds,), eps=1e-6, atol=1e-6, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(counts=st.tuples(*[st.integers(1, 40)] * 4), beta=st.sampled_from([0.25, 0.5, 2.0, 3.0]))
def test_fbeta_parameter_is_a_constructor_argument(counts, beta):
    y_true, y_pred = labels_with_counts(*counts)
    loss = type(identity_loss("fbeta"))(beta=beta, approximation="identity")
    got = float(loss.metric(torch.tensor(y_pred, dtype=torch.float64), torch.tensor(y_true, dtype=torch.float64)))
    assert got == pytest.approx(skm.fbeta_score(y_true, y_pred, beta=beta), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_library_entry_is_complete(name):
    entry = LIBRARY.entry(name)
    assert entry.reference and entry.range[0] < entry.range[1]
    assert all(LIBRARY.entry(alias) is entry for alias in entry.aliases)


@pytest.mark.parametrize("name", NAMES)
def test_declared_direction_agrees_with_the_partials(name):
    entry, derivation = resolve(name)
    assert decide_direction(derivation).direction == entry.direction


@pytest.mark.parametrize("name", NAMES)
def test_library_metrics_are_monotone_except_kappa_and_ets(name):
    """Cohen's kappa and the equitable threat score rise with FP near TP = TN = 0 (test_analyse checks a witness)."""
    entry, derivation = resolve(name)
    kappas = {"cohen_kappa", "cohen_kappa_ovr", "linear_kappa", "quadratic_kappa"}  # the last three are cohen_kappa with two classes
    assert monotonicity(derivation, entry.direction).monotone == (name not in kappas | {"gilbert_skill_score"})


@pytest.mark.parametrize("name", NAMES)
def test_declared_range_holds_the_sampled_values(name):
    entry, derivation = resolve(name)
    sampled = estimate_range(derivation)
    low, high = entry.range
    assert low - 1e-9 <= sampled.low and sampled.high <= high + 1e-9


ISSUE_LIST = [
    "accuracy", "error_rate", "balanced_accuracy", "precision", "ppv", "recall", "tpr", "sensitivity", "specificity",
    "tnr", "npv", "fpr", "fnr", "fdr", "for", "f1", "fbeta", "jaccard", "threat_score", "csi", "dice", "tversky", "mcc",
    "cohen_kappa", "informedness", "youden_j", "markedness", "fowlkes_mallows", "gmean", "prevalence_threshold",
    "lr_plus", "lr_minus", "diagnostic_odds_ratio", "balanced_error_rate",
]  # fmt: skip


def test_library_covers_the_issue_list_and_has_at_least_30_metrics():
    assert len(NAMES) >= 30
    assert [name for name in ISSUE_LIST if LIBRARY.entry(name) is None] == []


def test_names_and_aliases_compile_to_the_same_metric():
    assert resolve("sensitivity")[1].value == resolve("recall")[1].value
    assert resolve("CSI")[1].value == resolve("jaccard")[1].value
    assert compile_metric("ppv").source == compile_metric("precision").source
