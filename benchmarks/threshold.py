"""The best F1 threshold of N scores: metricc.threshold_curve against sklearn, side by side in one run.

    python benchmarks/threshold.py                         # N = 1e6 on the CPU, a few seconds
    python benchmarks/threshold.py --n 10000000 --rounds 5
    python benchmarks/threshold.py --threads 1             # steadier on a small shared CPU
    python benchmarks/threshold.py --device cuda           # metricc on a GPU tensor (sklearn stays on the CPU)

Contenders, each given its natural input (prepared outside the timing):
  sklearn: precision_recall_curve(target, scores) on NumPy arrays, then F1 = 2PR/(P+R) and its arg-max;
  metricc: threshold_curve("f1", scores, target) on torch tensors, then .best_threshold and .best_value.
Times are medians over interleaved rounds (each round runs both once, so load from other processes falls on
both alike); the ratio is of those medians. Both must find the same best F1, or the script fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

import metricc  # noqa: E402


def scored_data(n: int, seed: int = 0):
    """float32 probabilities of an informative model, 20% positives, as NumPy arrays."""
    generator = np.random.default_rng(seed)
    target = (generator.random(n) < 0.2).astype(np.int64)
    scores = (1 / (1 + np.exp(-(generator.standard_normal(n) + 1.5 * target - 1.0)))).astype(np.float32)
    return scores, target


def sklearn_best(scores: np.ndarray, target: np.ndarray):
    """(best threshold, best F1) the way sklearn's users find them."""
    precision, recall, thresholds = precision_recall_curve(target, scores)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    best = int(np.argmax(f1[:-1]))
    return float(thresholds[best]), float(f1[best])


def metricc_best(scores: torch.Tensor, target: torch.Tensor):
    curve = metricc.threshold_curve("f1", scores, target)
    return curve.best_threshold, curve.best_value


def seconds(function, *arguments, synchronize=lambda: None) -> float:
    start = time.perf_counter()
    function(*arguments)
    synchronize()
    return time.perf_counter() - start


def _load(values) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    scores, target = scored_data(args.n)
    device = torch.device(args.device)
    scores_t, target_t = torch.from_numpy(scores).to(device), torch.from_numpy(target).to(device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    curve = metricc.threshold_curve("f1", scores_t, target_t)  # compiles f1 once, outside the timing
    assert curve.values.device == device and curve.thresholds.device == device
    ours, theirs = metricc_best(scores_t, target_t), sklearn_best(scores, target)
    if abs(ours[1] - theirs[1]) > 1e-9:
        raise SystemExit(f"best F1 differs: metricc {ours}, sklearn {theirs}")
    times = {"sklearn": [], "metricc": []}
    for _ in range(args.rounds):
        times["sklearn"].append(seconds(sklearn_best, scores, target))
        times["metricc"].append(seconds(metricc_best, scores_t, target_t, synchronize=synchronize))
    median = {name: statistics.median(values) for name, values in times.items()}
    command = " ".join(["python benchmarks/threshold.py"] + list(sys.argv[1:] if argv is None else argv))
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; metricc on {device}.")
    print(f"Command: `{command}`; best F1 {ours[1]:.6f} for both (threshold: metricc {ours[0]:.6g}, sklearn {theirs[0]:.6g}).")
    print(f"Load average (1, 5, 15 min) before: {_load(load_before)}; after: {_load(os.getloadavg())}.\n")
    print("| N | sklearn precision_recall_curve + arg-max | metricc threshold_curve | sklearn / metricc |")
    print("|---|---|---|---|")
    ratio = median["sklearn"] / median["metricc"]
    print(f"| {args.n:_} | {median['sklearn'] * 1e3:.0f} ms | {median['metricc'] * 1e3:.0f} ms | {ratio:.2f} |".replace("_", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
