"""Two emitted loss files side by side in one process: forward + backward time of each, interleaved, and the ratio.

For comparing two versions of metricc on the same metric (a standalone file from before a change against the
file of today, say), where separate benchmark runs on a shared machine differ by more than the change:

    python benchmarks/ab_files.py OLD/generated/f1.py generated/f1.py --sizes 256,10000,1000000

A multiclass metric (a whole-matrix one, such as quadratic_kappa compiled with --task multiclass) takes
`--classes C`: batches of `size` rows of C softmax probabilities with class-index targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch


def loss_of(path: Path, label: str):
    """The one loss class a generated file defines, instantiated with its defaults."""
    spec = importlib.util.spec_from_file_location(f"ab_{label}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    (loss_class,) = [value for name, value in vars(module).items() if name.endswith("Loss") and isinstance(value, type) and value.__module__ == spec.name]
    return loss_class()


def median_times(losses, size: int, rounds: int, budget: float, classes: int = 0):
    """Median seconds per step of each loss over interleaved rounds, on one binary batch of `size` (or, with
    classes, `size` rows of class probabilities and class-index targets)."""
    g = torch.Generator().manual_seed(size)
    if classes:
        preds, target = torch.softmax(torch.randn(size, classes, generator=g), 1), torch.randint(0, classes, (size,), generator=g)
    else:
        preds, target = torch.rand(size, generator=g), (torch.rand(size, generator=g) > 0.5).float()

    def step(loss):
        leaf = preds.clone().requires_grad_(True)
        loss(leaf, target).backward()

    start = time.perf_counter()
    step(losses[0])
    repeats = max(1, int(budget / rounds / max(time.perf_counter() - start, 1e-6)))
    times = [[] for _ in losses]
    for _ in range(rounds):
        for loss, found in zip(losses, times):
            start = time.perf_counter()
            for _ in range(repeats):
                step(loss)
            found.append((time.perf_counter() - start) / repeats)
    return [statistics.median(found) for found in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--sizes", default="256,10000,1000000")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per loss and size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--classes", type=int, default=0, help="multiclass batches of this many classes (0: binary)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    losses = [loss_of(args.first, "first"), loss_of(args.second, "second")]
    print(f"| N | {args.first} | {args.second} | second / first |\n|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        first, second = median_times(losses, size, args.rounds, args.budget, args.classes)
        print(f"| {size:,} | {first * 1e6:.0f} µs | {second * 1e6:.0f} µs | {second / first:.3f} |")


if __name__ == "__main__":
    main()
