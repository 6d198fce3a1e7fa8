"""Smoke runs of the examples: each script runs end to end on a few steps, plots, and refuses bad arguments."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROOT = EXAMPLES.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_exits_zero_in_a_fresh_process():
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py"), "--smoke"], capture_output=True, text=True,
                          env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "d F1 / d TP = 2*(FN + FP)/(FN + FP + 2*TP)**2" in done.stdout
    assert "held-out F1 after training" in done.stdout


@pytest.mark.parametrize(
    "script, arguments, rows",
    [
        ("tabular", ["--losses", "bce,f1-anyloss,mcc-identity,bce+gmean-identity,balanced_accuracy-linear", "--datasets", "breast_cancer,synthetic_99_1"],
         ["| bce |", "| bce+gmean-identity |", "### synthetic_99_1"]),
        ("multiclass", [], ["| ce |", "| ce+macro_f1-identity |"]),
        ("segmentation", [], ["| bce |", "| tversky-identity |", "| bce+dice-identity |"]),
        ("segmentation", ["--task", "multiclass", "--losses", "ce,dice-identity,ce+dice-anyloss"], ["| ce |", "| ce+dice-anyloss |"]),
        ("ordinal", [], ["| loss | qwk | accuracy | mae |", "| ce |", "| qwk |", "| ce+qwk |", "### diabetes", "### synthetic"]),
    ],
)
def test_example_smoke_run_prints_a_table_and_plots(script, arguments, rows, tmp_path, capsys):
    plot = tmp_path / "curves.png"
    assert _load(script).main(arguments + ["--smoke", "--no-progress", "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    for row in rows:
        assert row in printed
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("script, valid", [("tabular", "bce+f1-identity"), ("multiclass", "ce+macro_f1-identity"), ("segmentation", "tversky-identity"), ("ordinal", "ce+qwk")])
def test_unknown_loss_lists_the_valid_ones(script, valid, capsys):
    with pytest.raises(SystemExit) as stopped:
        _load(script).main(["--losses", "focal", "--smoke"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "unknown loss 'focal'; valid losses are:" in error
    assert valid in error


@pytest.mark.parametrize("arguments", [["--seeds", "0"], ["--epochs", "0"], ["--batch-size", "0"], ["--lr", "-1"], ["--plot", "curves.pdf"]])
def test_bad_arguments_are_refused(arguments, capsys):
    with pytest.raises(SystemExit):
        _load("multiclass").main(arguments)
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["tabular", "ordinal"])
@pytest.mark.parametrize("datasets", ["nope", " , "])
def test_unknown_or_empty_datasets_list_the_valid_ones(script, datasets, capsys):
    module = _load(script)
    with pytest.raises(SystemExit) as stopped:
        module.main(["--datasets", datasets, "--smoke"])
    assert stopped.value.code == 2
    assert f"--datasets {datasets!r}: choose from {', '.join(module.DATASETS)}" in capsys.readouterr().err


def test_constrained_smoke_run_prints_each_targets_table(capsys):
    assert _load("constrained").main(["--smoke", "--no-progress", "--tasks", "synthetic_90_10", "--arms", "bce,constrained"]) == 0
    printed = capsys.readouterr().out
    for row in ("### synthetic_90_10: recall at precision >= 0.9", "### synthetic_90_10: TPR at FPR <= 1 %", "| bce |", "| constrained |"):
        assert row in printed
    with pytest.raises(SystemExit):
        _load("constrained").main(["--arms", "focal", "--smoke"])
    assert "--arms 'focal': choose from bce," in capsys.readouterr().err


def test_selection_chooses_by_validation_and_tests_once(capsys):
    assert _load("selection").main(["--smoke"]) == 0
    printed = capsys.readouterr().out
    assert "chosen by validation:" in printed and "test f1:" in printed


def test_tabular_table_has_tuned_columns_and_a_chosen_row(capsys):
    assert _load("tabular").main(["--losses", "bce,f1-anyloss", "--datasets", "breast_cancer", "--smoke", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| f1 | f1 @ tuned | mcc | mcc @ tuned |" in printed and "| *chosen by validation* |" in printed


def test_learned_smoke_run_prints_every_arm_and_resumes_from_its_cache(tmp_path, capsys):
    arguments = ["--smoke", "--no-progress", "--tasks", "breast_cancer,multilabel,digits,shapes", "--cache", str(tmp_path)]
    assert _load("learned").main(arguments) == 0
    printed = capsys.readouterr().out
    for row in ("| ce | 1 |", "| ce+metric | 1 |", "| best of 3 | 1 |", "| grid (13) | 1 |", "| learned | 1 |", "### shapes",
                "learned − grid (13):", "| **mean over tasks** |", "### Targets", "mean final (1 seeds)"):
        assert row in printed
    cached = sorted(tmp_path.rglob("*.json"))
    assert len(cached) == 4 * 14 + 2  # per task the grid's 13 runs and learned; digits also trains identity and ce+identity
    written = [path.stat().st_mtime_ns for path in cached]
    assert _load("learned").main(arguments + ["--report-only"]) == 0
    assert capsys.readouterr().out == printed
    assert [path.stat().st_mtime_ns for path in cached] == written


@pytest.mark.parametrize("arguments", [["--tasks", "nope"], ["--arms", " , "], ["--seeds", "0"]])
def test_learned_refuses_bad_arguments(arguments, capsys):
    with pytest.raises(SystemExit) as stopped:
        _load("learned").main(arguments)
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err
