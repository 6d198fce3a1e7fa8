"""The benchmark command runs (quick mode, the cheap contenders) and prints its tables; no timings are checked."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_quick_mode_prints_tables(tmp_path):
    output = tmp_path / "results.md"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--contenders", "acf", "--metrics", "F1,MCC",
        "--sections", "speed,memory,cli", "--rounds", "1", "--budget", "0.01", "--output", str(output),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    text = output.read_text(encoding="utf-8")
    assert "| binary N=256 | F1 |" in text and "| dense B=2, C=4, 32x32, per image | MCC |" in text
    assert "### Tensors of at least N elements" in text and "`metricc grad f1`" in text
    assert text in result.stdout


def test_benchmark_rejects_unknown_contender():
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--contenders", "az"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and "unknown metric or contender: z" in result.stderr


def test_naive_kappa_contender_computes_metricc_qwk_loss_and_gradient():
    spec = importlib.util.spec_from_file_location("benchmark_run", ROOT / "benchmarks" / "run.py")
    run = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = run  # its dataclasses look their module up there
    spec.loader.exec_module(run)
    kappa_rows = [w for w in run.workloads(quick=True) if "QWK" in w.metrics]
    assert len(kappa_rows) == 2
    for workload in kappa_rows:
        contenders = run.build_contenders("QWK", workload, run.torch.device("cpu"), "ac")  # asserts the agreement
        preds, target = workload.make(run.torch.device("cpu"))
        assert abs(contenders["a"](preds, target).item() - contenders["c"](preds, target).item()) < 1e-5


def test_learned_loss_cost_benchmark_prints_its_table():
    command = [sys.executable, str(ROOT / "benchmarks" / "learned.py"), "--widths", "8", "--epochs", "1", "--repeats", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "| hidden width | f1 loss (s) | BCE | BCE + f1 loss | LearnedLoss |" in result.stdout
    assert "| 8 |" in result.stdout
