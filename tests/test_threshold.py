"""threshold_curve against brute force: sklearn's metrics of `scores > t` at every cut, ties included."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from torch.utils._python_dispatch import TorchDispatchMode
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, matthews_corrcoef, precision_score, recall_score

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
    st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
)
def test_hypothesis_scores_with_ties(pairs, dtype):
    scores = np.array([p[0] for p in pairs])
    target = np.array([int(p[1]) for p in pairs])
    if target.min() == target.max():
        target[0] = 1 - target[0]
    as_tensor = torch.tensor(scores, dtype=dtype)
    curve = metricc.threshold_curve("mcc", as_tensor, torch.tensor(target))
    # predictions are made in the scores' own dtype, where every threshold separates its two neighbours
    assert curve.thresholds.dtype == dtype
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


CLOSE_SCORES = {
    "8th digit": [0.30000001, 0.30000002, 0.30000003, 0.30000004, 0.1, 0.7, 0.70000001],
    "near 1": [1 - 1e-9, 1 - 2e-9, 1 - 3e-9, 1 - 4e-9, 0.5, 1.0],
}


def _cuts_match_sklearn(curve, scores, target):
    """Every cut of the curve against sklearn at that threshold, compared in float64, and the best against the
    best of all cuts."""
    thresholds = curve.thresholds.double().numpy()
    every = _brute_force(ORACLES["f1"], scores, target, thresholds)
    assert len(thresholds) == len(np.unique(scores)) + 1
    np.testing.assert_allclose(curve.values.numpy(), every, atol=1e-12)
    assert curve.best_value == pytest.approx(every.max(), abs=1e-12)
    assert f1_score(target, (scores > curve.best_threshold).astype(int)) == pytest.approx(curve.best_value, abs=1e-12)


@pytest.mark.parametrize("case", list(CLOSE_SCORES))
@pytest.mark.parametrize("form", ["list", "numpy", "float64 tensor"])
def test_scores_that_float32_would_merge_keep_their_cuts(case, form):
    scores = np.array(CLOSE_SCORES[case])
    target = np.array([0, 1] * (len(scores) // 2) + [1] * (len(scores) % 2))
    given = {"list": scores.tolist(), "numpy": scores, "float64 tensor": torch.tensor(scores)}[form]
    curve = metricc.threshold_curve("f1", given, target.tolist() if form == "list" else target)
    assert curve.thresholds.dtype == torch.float64 and curve.scores.dtype == torch.float64
    _cuts_match_sklearn(curve, scores, target)


def test_the_issue_pair_has_best_f1_one():
    curve = metricc.threshold_curve("f1", [0.30000001, 0.30000002], [0, 1])
    assert curve.best_value == 1.0 and 0.30000001 <= curve.best_threshold < 0.30000002


def test_a_list_target_is_not_rounded_to_float32():
    with pytest.raises(metricc.ThresholdError, match="target must contain only 0 and 1"):
        metricc.threshold_curve("f1", [0.1, 0.2, 0.3], [0, 1 - 1e-9, 1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_a_tensor_keeps_its_dtype_and_adjacent_values_keep_their_cuts(dtype):
    """Runs of adjacent representable numbers of the dtype, where a midpoint rounds onto one of its two ends."""
    runs = []
    for start in (0.3, 0.999):
        value = torch.tensor([start], dtype=dtype)
        for _ in range(4):
            runs.append(value)
            value = torch.nextafter(value, torch.ones_like(value))
    scores = torch.cat(runs + [torch.tensor([0.0, 1.0], dtype=dtype)])
    target = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0, 0, 1])
    curve = metricc.threshold_curve("f1", scores, target)
    assert curve.thresholds.dtype == dtype and curve.scores.dtype == dtype and curve.values.dtype == torch.float64
    predictions = [(scores > t).int().numpy() for t in curve.thresholds]  # compared in the scores' own dtype
    assert len({tuple(p) for p in predictions}) == len(predictions) == len(torch.unique(scores)) + 1
    np.testing.assert_allclose(curve.values.numpy(), [f1_score(target, p, zero_division=0) for p in predictions], atol=1e-12)
    exact = scores.double().numpy()  # every number of the dtype is exact in float64
    assert f1_score(target, (exact > curve.best_threshold).astype(int)) == pytest.approx(curve.best_value, abs=1e-12)
    assert curve.best_value == pytest.approx(max(_brute_force(ORACLES["f1"], exact, target.numpy(), [-1.0, *np.unique(exact)])), abs=1e-12)


def test_a_numpy_float32_array_keeps_float32():
    scores = np.array([0.1, 0.3, 0.7], dtype=np.float32)
    curve = metricc.threshold_curve("f1", scores, np.array([0, 1, 1]))
    assert curve.thresholds.dtype == torch.float32
    assert f1_score([0, 1, 1], (scores > curve.best_threshold).astype(int)) == curve.best_value


def test_value_at_a_threshold_that_rounds_onto_a_float32_score():
    """0.3f minus 1e-9 rounds to 0.3f in float32; the score 0.3f is still above it, so it is predicted positive."""
    scores = torch.tensor([0.1, 0.3, 0.7])
    target = np.array([0, 1, 1])
    curve = metricc.threshold_curve("f1", scores, target)
    exact = scores.double().numpy()
    for t in (float(scores[1]) - 1e-9, float(scores[1]), float(scores[1]) + 1e-9, 0.5, -1.0, 1e40, -1e40):
        assert curve.value_at(t) == pytest.approx(f1_score(target, (exact > t).astype(int), zero_division=0), abs=1e-12)
    with pytest.raises(metricc.ThresholdError, match="must be a number"):
        curve.value_at(float("nan"))


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
    printed_threshold = float(printed.split()[2])
    assert f1_score(target, (scores > printed_threshold).astype(int)) == pytest.approx(curve.best_value, abs=1e-12)
    assert f"{curve.best_value:.6g}" in printed
    assert f"f1 at 0.5       {f1_score(target, (scores > 0.5).astype(int)):.6g}" in printed
    assert (tmp_path / "c.png").exists()


def test_cli_prints_a_short_threshold_below_the_lowest_score(tmp_path, capsys):
    """Recall is best predicting everything positive: the cut below the lowest score prints as a short number
    that still gives that cut (not 0.09999999999999999)."""
    scores, target = np.array([0.1, 0.4, 0.6, 0.9]), [0, 1, 0, 1]
    assert main(["threshold", "TP/(TP+FN)", _csv(tmp_path, "score,target\n" + "".join(f"{s},{t}\n" for s, t in zip(scores, target)))]) == 0
    printed = capsys.readouterr().out.split()[2]
    assert len(printed) <= 4 and float(printed) < 0.1
    assert recall_score(target, (scores > float(printed)).astype(int)) == 1.0


HEADER_AND_ROWS = (CLOSE_SCORES["8th digit"] + CLOSE_SCORES["near 1"], [0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1])


def _write(tmp_path, data: bytes, name="scores.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _variant(header, delimiter=",", decimal=".", newline="\n", quoted=False, prefix=b"", extra=""):
    """HEADER_AND_ROWS written as a CSV variant; `extra` adds an id column in front."""
    cell = (lambda text: f'"{text}"') if quoted else (lambda text: text)
    lines = [delimiter.join(cell(name) for name in ([extra] if extra else []) + header)]
    for i, (score, target) in enumerate(zip(*HEADER_AND_ROWS)):
        fields = ([str(i)] if extra else []) + [repr(score).replace(".", decimal), str(target)]
        lines.append(delimiter.join(cell(field) for field in fields))
    return prefix + newline.join(lines).encode() + newline.encode()


CSV_VARIANTS = {
    "plain": (_variant(["score", "target"]), []),
    "BOM, Excel's CSV UTF-8": (_variant(["score", "target"], newline="\r\n", prefix=b"\xef\xbb\xbf"), []),
    "Score,TARGET": (_variant([" Score", "TARGET "]), []),
    "semicolon, decimal comma": (_variant(["score", "target"], delimiter=";", decimal=","), []),
    "semicolon given": (_variant(["score", "target"], delimiter=";"), ["--delimiter", ";"]),
    "tab": (_variant(["score", "target"], delimiter="\t", extra="id"), []),
    "tab given as 'tab'": (_variant(["score", "target"], delimiter="\t"), ["--delimiter", "tab"]),
    "pipe, quoted": (_variant(["score", "target"], delimiter="|", quoted=True), []),
    "custom names": (_variant(["Probability", "label"], extra="id"), ["--score-column", "probability", "--target-column", "LABEL"]),
    "old Mac line endings": (_variant(["score", "target"], newline="\r"), []),
    "non-ASCII names": (_variant(["Wahrscheinlichkeit (ä)", "Ziel"], delimiter=";", decimal=","), ["--score-column", "WAHRSCHEINLICHKEIT (Ä)", "--target-column", "ziel"]),
    "blank lines": (b"\n" + _variant(["score", "target"]).replace(b"\n", b"\n\n", 3), []),
}


@pytest.mark.parametrize("variant", list(CSV_VARIANTS))
def test_cli_reads_every_csv_variant_in_float64_and_agrees_with_sklearn(tmp_path, capsys, variant):
    data, flags = CSV_VARIANTS[variant]
    assert main(["threshold", "f1", _write(tmp_path, data), *flags]) == 0
    printed = capsys.readouterr().out
    scores, target = np.array(HEADER_AND_ROWS[0]), np.array(HEADER_AND_ROWS[1])
    best = _brute_force(ORACLES["f1"], scores, target, [-1.0, *np.unique(scores)]).max()
    assert f"f1 at best      {best:.6g}" in printed
    threshold = float(printed.split()[2])
    assert f1_score(target, (scores > threshold).astype(int)) == pytest.approx(best, abs=1e-12)
    assert f"{len(scores)} scores, {len(np.unique(scores)) + 1} distinct thresholds" in printed


def test_read_scores_csv_keeps_every_digit(tmp_path):
    from metricc.scores_csv import read_scores_csv

    scores, targets = read_scores_csv(_write(tmp_path, CSV_VARIANTS["semicolon, decimal comma"][0]))
    assert scores == HEADER_AND_ROWS[0] and targets == HEADER_AND_ROWS[1]


MALFORMED = {
    "empty": (b"", "is empty"),
    "only a byte-order mark": (b"\xef\xbb\xbf", "is empty"),
    "only blank lines": (b"\n\n \n", "is empty"),
    "header only": (b"score,target\n", "has a header but no rows"),
    "no target column": (b"score,label\n0.2,1\n", "the header has no 'target' column (found 'score', 'label'"),
    "two score columns": (b"score,Score,target\n0.2,0.3,1\n", "2 columns named 'score' (columns 1, 2)"),
    "target not 0/1": (b"score,target\n0.2,1\n0.3,2\n", "row 2 (line 3): target '2' is not 0 or 1"),
    "nan score": (b"score,target\n0.2,1\nnan,0\n", "row 2 (line 3): score 'nan' is not a finite number"),
    "word for a score": (b"score,Target\n0.2,1\nhigh,0\n", "row 2 (line 3): score 'high' is not a number"),
    "word for a target": (b"Score,target\n0.2,1\n0.3,yes\n", "row 2 (line 3): target 'yes' is not a number"),
    "short row": (b"score,target\n0.2\n", "row 1 (line 2): 1 fields, expected 2"),
    "long row": (b"score,target\n0.2,1\n0.4,1,oops,more\n", "row 2 (line 3): 4 fields, expected 2"),
    "a digit separator": (b"score,target\n0.2,1\n1_0,0\n", "row 2 (line 3): score '1_0' is not a number"),
    "one class": (b"score,target\n0.2,1\n0.3,1\n", "every target is positive"),
    "NUL bytes": (b"\0" * 100_000, "line 1: a NUL byte"),
    "a NUL later": (b"score,target\n0.2,1\n0.3\0,0\n", "line 3: a NUL byte"),
    "UTF-16": ("score,target\n0.2,1\n".encode("utf-16"), "is UTF-16 text"),
    "PNG": (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "line 1: byte 0x89 at column 1 is not UTF-8"),
    "Latin-1": (b"score,target\n0.2,1\n0.3,0 \xe9\n", "line 3: byte 0xe9 at column 7 is not UTF-8"),
    "unterminated quote at the end": (b'score,target\n0.2,1\n"0.3,0\n0.4,1\n', 'a " quote that is never closed'),
    "quote then text": (b'score,target\n"0.2"x,1\n', "line 2: not a CSV: ',' expected after '\"'"),
    "a quote that swallows a line": (b'score,target\n"0.2,1\n0.3",0\n', "row 1 (line 3): the score field runs over several lines"),
    "200,000-character field": (b"score,target\n0.2,1\n" + b"7" * 200_000 + b",0\n", "field larger than field limit"),
    "200,000-character quoted field": (b'score,target\n0.2,1\n"' + b"7" * 200_000 + b'",0\n', "field larger than field limit"),
    "unterminated quote in a long file": (b'score,target\n"0.2,1\n' + b"0.3,0\n" * 40_000, "field larger than field limit"),
    "a 2 MiB line": (b"score,target\n" + b"0," * (1 << 20) + b"\n", "line 2 is longer than 1048576 characters"),
    "logits": (b"score,target\n-1.5,0\n2,1\n", "pass --from-logits for logits"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_cli_malformed_file_is_one_error_line_and_exit_2(tmp_path, capsys, case):
    data, message = MALFORMED[case]
    assert main(["threshold", "f1", _write(tmp_path, data)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("metricc: error: ") and message in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""
    assert "from_logits" not in captured.err


def test_cli_missing_file_and_directory_exit_2(tmp_path, capsys):
    for path in (tmp_path / "absent.csv", tmp_path):
        assert main(["threshold", "f1", str(path)]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"metricc: error: cannot read {path}: ") and error.count("\n") == 1


def test_cli_malformed_file_in_a_subprocess_exits_2_without_a_traceback(tmp_path):
    import subprocess
    import sys

    path = _write(tmp_path, b"\0" * 1000)
    result = subprocess.run([sys.executable, "-m", "metricc.cli", "threshold", "f1", path], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("metricc: error: ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize("flag", ["ab", '"', ""])
def test_cli_refuses_a_delimiter_that_is_not_one_character(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exit_:
        main(["threshold", "f1", _write(tmp_path, CSV_VARIANTS["plain"][0]), "--delimiter", flag])
    assert exit_.value.code == 2 and "give one character" in capsys.readouterr().err


def test_cli_labels_a_metric_file_by_its_name(tmp_path, capsys):
    metric = tmp_path / "cost.txt"
    metric.write_text("# misses cost five times a false alarm\nmisses = FN\nFP + 5 * misses\n")
    assert main(["threshold", "-f", str(metric), _write(tmp_path, CSV_VARIANTS["plain"][0]), "--plot", str(tmp_path / "c.png")]) == 0
    printed = capsys.readouterr().out
    assert "cost.txt at best" in printed and "cost.txt at 0.5" in printed and "misses" not in printed
    assert len(printed.splitlines()) == 4
    scores, target = np.array(HEADER_AND_ROWS[0]), np.array(HEADER_AND_ROWS[1])
    best = _brute_force(ORACLES["FP + 5*FN"], scores, target, [-1.0, *np.unique(scores)]).min()
    assert f"cost.txt at best  {best:.6g}" in printed


def test_the_logit_advice_names_the_keyword_in_python_and_the_flag_on_the_command_line():
    with pytest.raises(metricc.ThresholdError) as raised:
        metricc.threshold_curve("f1", [0.1, 2.0], [0, 1])
    assert "from_logits=True" in str(raised.value) and "--from-logits" not in str(raised.value)
    assert "--from-logits" in raised.value.cli_message and "from_logits" not in raised.value.cli_message


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


CSV_ALPHABET = st.sampled_from(list('01.,;\t|"\n\r \x00e-') + ["score", "target", "Score", "\ufeff", "\xe9", "nan", "0.5"])


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.lists(CSV_ALPHABET, max_size=80).map(lambda parts: "".join(parts).encode())))
def test_hypothesis_any_file_is_read_or_refused_in_one_line(data):
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/scores.csv"
        with open(path, "wb") as handle:
            handle.write(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["threshold", "f1", path])
    if code == 2:
        assert err.getvalue().startswith("metricc: error: ") and err.getvalue().count("\n") == 1 and out.getvalue() == ""
    else:
        assert code == 0 and "best threshold" in out.getvalue()


@pytest.mark.parametrize(
    "options", [{"zero_division": 1.0}, {"ignore_index": -1}, {"steepness": 10.0}, {"average": "macro", "class_weights": [1.0, 2.0]}],
    ids=["zero_division", "ignore_index", "steepness", "average and class_weights"],
)
def test_loss_options_a_curve_cannot_honour_are_refused_by_name(options):
    """A curve counts hard predictions: an option that would change only the loss is an error, not silently ignored."""
    scores, target = torch.rand(20, generator=torch.Generator().manual_seed(0)), torch.arange(20) % 2
    named = ", ".join(sorted(options))
    with pytest.raises(metricc.OptionError, match=f"threshold_curve counts hard predictions .*: {named} do(es)? not apply"):
        metricc.threshold_curve("f1", scores, target, **options)
