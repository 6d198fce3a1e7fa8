"""threshold_curve against brute force: sklearn's metrics of `scores > t` at every cut, ties included."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from torch.utils._python_dispatch import TorchDispatchMode
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, matthews_corrcoef, precision_score

import metricc
from metricc.cli import main
from metricc.threshold import _check_finite

ORACLES = {
    "f1": lambda y, p: f1_score(y, p, zero_division=0),
    "mcc": matthews_corrcoef,
    "accuracy": accuracy_score,
    "balanced_accuracy": balanced_accuracy_score,
    "precision": lambda y, p: precision_score(y, p, zero_division=0),
    "2*TP/(2*TP+FP+FN)": lambda y, p: f1_score(y, p, zero_division=0),
    "FP + 5*FN": lambda y, p: confusion_matrix(y, p, labels=[0, 1])[0, 1] + 5 * confusion_matrix(y, p, labels=[0, 1])[1, 0],
}


def _scored(seed: int, n: int = 300, levels: int = 0):
    """Scores that rank positives higher on average; `levels` rounds them onto a grid, which makes ties."""
    generator = np.random.default_rng(seed)
    target = (generator.random(n) < 0.3).astype(int)
    scores = np.clip(generator.random(n) * 0.7 + 0.3 * target, 0, 1)
    if levels:
        scores = np.round(scores * levels) / levels
    return scores, target


def _brute_force(oracle, scores, target, thresholds):
    return np.array([oracle(target, (scores > t).astype(int)) for t in thresholds])


@pytest.mark.parametrize("metric", list(ORACLES))
@pytest.mark.parametrize("levels", [0, 10])
def test_every_cut_matches_sklearn(metric, levels):
    scores, target = _scored(1, levels=levels)
    curve = metricc.threshold_curve(metric, torch.tensor(scores, dtype=torch.float64), torch.tensor(target))
    thresholds = curve.thresholds.numpy()
    assert len(thresholds) == len(np.unique(scores)) + 1
    assert np.all(np.diff(thresholds) > 0)
    np.testing.assert_allclose(curve.values.numpy(), _brute_force(ORACLES[metric], scores, target, thresholds), atol=1e-9)


@pytest.mark.parametrize("metric", list(ORACLES))
def test_best_threshold_reproduces_best_value_and_is_the_best_cut(metric):
    scores, target = _scored(2, levels=25)
    curve = metricc.threshold_curve(metric, scores, target)
    oracle = ORACLES[metric]
    every = _brute_force(oracle, scores, target, np.unique(np.concatenate([scores, [-1.0]])))
    best = every.max() if curve.direction == "maximize" else every.min()
    assert curve.best_value == pytest.approx(best, abs=1e-9)
    assert oracle(target, (scores > curve.best_threshold).astype(int)) == pytest.approx(curve.best_value, abs=1e-9)


def test_best_threshold_lies_in_the_middle_of_its_gap():
    scores, target = _scored(3, levels=20)
    curve = metricc.threshold_curve("f1", scores, target)
    distinct = np.unique(scores)
    below, above = distinct[distinct < curve.best_threshold].max(), distinct[distinct > curve.best_threshold].min()
    assert curve.best_threshold == pytest.approx((below + above) / 2)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5000001, 0.75, 1.0]), st.booleans()), min_size=2, max_size=40),
    st.sampled_from([torch.float32, torch.float64]),
)
def test_hypothesis_scores_with_ties(pairs, dtype):
    scores = np.array([p[0] for p in pairs])
    target = np.array([int(p[1]) for p in pairs])
    if target.min() == target.max():
        target[0] = 1 - target[0]
    as_tensor = torch.tensor(scores, dtype=dtype)
    curve = metricc.threshold_curve("mcc", as_tensor, torch.tensor(target))
    # predictions are made in the scores' own dtype, where every threshold separates its two neighbours
    predictions = [(as_tensor > t).numpy().astype(int) for t in curve.thresholds]
    np.testing.assert_allclose(curve.values.numpy(), [matthews_corrcoef(target, p) for p in predictions], atol=1e-9)
    assert len({tuple(p) for p in predictions}) == len(predictions)
    assert matthews_corrcoef(target, (as_tensor > curve.best_threshold).numpy().astype(int)) == pytest.approx(curve.best_value, abs=1e-9)


def test_adjacent_float32_scores_keep_their_cut():
    low = torch.tensor(0.3, dtype=torch.float32)
    high = torch.nextafter(low, torch.tensor(1.0))
    scores, target = torch.stack([low, high]), torch.tensor([0.0, 1.0])
    curve = metricc.threshold_curve("f1", scores, target)
    assert curve.best_value == 1.0
    assert (scores > curve.best_threshold).tolist() == [False, True]


def test_logits_give_logit_thresholds_and_the_same_values():
    scores, target = _scored(4)
    logits = torch.logit(torch.tensor(scores).clamp(1e-6, 1 - 1e-6))
    from_probabilities = metricc.threshold_curve("f1", torch.tensor(scores), target)
    from_logits = metricc.threshold_curve("f1", logits, target, from_logits=True)
    assert from_logits.best_value == pytest.approx(from_probabilities.best_value)
    assert from_logits.value_at(0.0) == pytest.approx(from_probabilities.value_at(0.5))
    assert from_logits.value_at(0.0) == pytest.approx(f1_score(target, (scores > 0.5).astype(int)))


def test_value_at_any_threshold_matches_sklearn():
    scores, target = _scored(5, levels=10)
    curve = metricc.threshold_curve("f1", scores, target)
    for t in (-0.5, 0.0, 0.3, 0.5, 0.55, 1.0, 2.0):
        assert curve.value_at(t) == pytest.approx(f1_score(target, (scores > t).astype(int), zero_division=0))


def test_multilabel_gives_one_curve_per_label():
    columns = [_scored(seed, n=200) for seed in (6, 7, 8)]
    scores = np.stack([c[0] for c in columns], axis=1)
    target = np.stack([c[1] for c in columns], axis=1)
    curves = metricc.threshold_curve("f1", scores, target, task="multilabel")
    assert len(curves) == 3
    for label, curve in enumerate(curves):
        alone = metricc.threshold_curve("f1", scores[:, label], target[:, label])
        assert torch.equal(curve.values, alone.values) and curve.best_threshold == alone.best_threshold
    predicted = torch.tensor(scores) > curves.best_thresholds
    assert [f1_score(target[:, i], predicted[:, i]) for i in range(3)] == pytest.approx(curves.best_values)


def test_a_metric_to_minimise_takes_the_argmin():
    scores, target = _scored(9, levels=10)
    curve = metricc.threshold_curve("error_rate", scores, target)
    assert curve.direction == "minimize"
    assert curve.best_value == pytest.approx(1 - _brute_force(accuracy_score, scores, target, curve.thresholds.numpy()).max())


def test_undefined_cuts_get_the_guarded_value():
    """Precision with nothing predicted positive is 0/0; the guarded formula gives 0, as sklearn's zero_division=0."""
    scores, target = _scored(10)
    curve = metricc.threshold_curve("precision", scores, target)
    assert float(curve.values[-1]) == 0.0
    assert torch.isfinite(curve.values).all()


@pytest.mark.parametrize(
    "scores, target, options, message",
    [
        ([0.1, float("nan"), 0.3], [0, 1, 1], {}, "nan at flat index 1"),
        ([0.1, float("inf"), 0.3], [0, 1, 1], {"from_logits": True}, "inf at flat index 1"),
        ([0.1, 0.2, 0.3], [0, 2, 1], {}, "found 2.0 at flat index 1"),
        ([0.1, 0.2, 0.3], [1, 1, 1], {}, "every target is positive"),
        ([0.1, 0.2, 0.3], [0, 0, 0], {}, "every target is negative"),
        ([0.1, 1.5, 0.3], [0, 1, 1], {}, "pass from_logits=True"),
        ([0.1, 0.2], [0, 1, 1], {}, "differ"),
        ([], [], {}, "empty"),
    ],
)
def test_bad_inputs_raise_threshold_error(scores, target, options, message):
    with pytest.raises(metricc.ThresholdError, match=message):
        metricc.threshold_curve("f1", torch.tensor(scores), torch.tensor(target), **options)


def test_multilabel_names_the_label_with_one_class():
    scores, target = np.array([[0.1, 0.2], [0.8, 0.9]]), np.array([[0, 1], [1, 1]])
    with pytest.raises(metricc.ThresholdError, match="of label 1"):
        metricc.threshold_curve("f1", scores, target, task="multilabel")


def test_a_non_finite_metric_value_is_an_error_not_a_nan():
    counts = torch.tensor([1.0, 2.0])
    with pytest.raises(metricc.ThresholdError, match="is nan at the cut with TP=2"):
        _check_finite(torch.tensor([0.5, math.nan]), counts, counts, counts, counts, "mine", "")


def test_multiclass_task_is_refused():
    with pytest.raises(metricc.OptionError, match="task='binary' or 'multilabel'"):
        metricc.threshold_curve("f1", [0.1, 0.9], [0, 1], task="multiclass")


def test_plot_writes_a_png(tmp_path):
    scores, target = _scored(11)
    path = metricc.threshold_curve("f1", scores, target).plot(tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _csv(tmp_path, text):
    path = tmp_path / "scores.csv"
    path.write_text(text)
    return str(path)


def test_cli_prints_best_threshold_value_and_value_at_half(tmp_path, capsys):
    scores, target = _scored(12, n=100, levels=20)
    path = _csv(tmp_path, "id,score,target\n" + "".join(f"{i},{s},{t}\n" for i, (s, t) in enumerate(zip(scores, target))))
    assert main(["threshold", "f1", path, "--plot", str(tmp_path / "c.png")]) == 0
    printed = capsys.readouterr().out
    curve = metricc.threshold_curve("f1", torch.tensor(scores), target)
    assert f"{curve.best_threshold:.6g}" in printed
    assert f"{curve.best_value:.6g}" in printed
    assert f"f1 at 0.5       {f1_score(target, (scores > 0.5).astype(int)):.6g}" in printed
    assert (tmp_path / "c.png").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("score,target\n", "has a header but no rows"),
        ("score,label\n0.2,1\n", "the header has no 'target' column (found 'score', 'label')"),
        ("score,target\n0.2,1\n0.3,2\n", "row 2 (line 3): target '2' is not 0 or 1"),
        ("score,target\n0.2,1\nnan,0\n", "row 2 (line 3): score 'nan' is not a finite number"),
        ("score,target\n0.2,1\nhigh,0\n", "row 2 (line 3): score 'high' is not a number"),
        ("score,target\n0.2\n", "row 1 (line 2): 1 fields, expected 2"),
        ("score,target\n0.2,1\n0.3,1\n", "every target is positive"),
    ],
)
def test_cli_bad_file_is_one_error_line_and_exit_2(tmp_path, capsys, text, message):
    assert main(["threshold", "f1", _csv(tmp_path, text)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("metricc: error: ") and message in error
    assert error.count("\n") == 1


class _HostReads(TorchDispatchMode):
    """Counts what a computation reads back to the host: scalars, and copies to another device."""

    def __init__(self):
        super().__init__()
        self.scalars, self.device_copies = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.scalars += 1
        if func is torch.ops.aten._to_copy.default and kwargs.get("device") is not None:
            self.device_copies += 1
        return func(*args, **kwargs)


@pytest.mark.parametrize("n", [1_000, 200_000])
def test_scores_never_leave_their_device_only_a_few_scalars_do(n):
    """On a GPU tensor nothing of size N may be copied to the host: the same few scalar reads at any N, no copy
    to another device (checked on the CPU through the dispatcher, since this machine has no GPU)."""
    g = torch.Generator().manual_seed(n)
    scores, target = torch.rand(n, generator=g), (torch.rand(n, generator=g) < 0.3).float()
    metricc.threshold_curve("f1", scores, target)  # compiled outside the count
    with _HostReads() as reads:
        curve = metricc.threshold_curve("f1", scores, target)
    assert reads.device_copies == 0 and reads.scalars <= 4
    assert curve.thresholds.device == scores.device and curve.values.device == scores.device
