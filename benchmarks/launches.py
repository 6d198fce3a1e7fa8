"""Kernel launches and time per forward + backward of a metricc loss on a GPU, the Triton path beside the torch path.

    python benchmarks/launches.py                 # a Markdown table (needs CUDA and triton)

Launches are the CUDA kernels torch.profiler records for one step after warm-up; times are medians of CUDA
events over 50 steps. Each step also runs once under torch.cuda.set_sync_debug_mode("error") with
validate_args=False: a step that synchronises with the host fails there (the "no sync" column).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import metricc  # noqa: E402
from metricc.runtime.gpu import reset_backend_setting  # noqa: E402

WORKLOADS = {
    "F1 binary N=256": ("f1", {}, lambda g: (torch.rand(256, generator=g), (torch.rand(256, generator=g) > 0.5).float())),
    "F1 binary N=1e7": ("f1", {}, lambda g: (torch.rand(10_000_000, generator=g), (torch.rand(10_000_000, generator=g) > 0.5).float())),
    "MCC binary N=1e7": ("mcc", {}, lambda g: (torch.rand(10_000_000, generator=g), (torch.rand(10_000_000, generator=g) > 0.5).float())),
    "formula of powers, logs, exps N=1e7": (
        "log(1 + TP) - exp(-FP / N) + (TP / P - FP / N)^5", {"direction": "maximize"},
        lambda g: (torch.rand(10_000_000, generator=g), (torch.rand(10_000_000, generator=g) > 0.5).float()),
    ),
    "F1 multiclass N=4096 C=100 macro": (
        "f1", {"task": "multiclass", "average": "macro"},
        lambda g: (torch.softmax(torch.randn(4096, 100, generator=g), 1), torch.randint(0, 100, (4096,), generator=g)),
    ),
    "Dice dense 8x4x256x256 per image": (
        "dice", {"task": "multiclass", "average": "macro", "multidim_average": "samplewise"},
        lambda g: (torch.softmax(torch.randn(8, 4, 256, 256, generator=g), 1), torch.randint(0, 4, (8, 256, 256), generator=g)),
    ),
    "QWK multiclass N=4096 C=5": (
        "qwk", {"task": "multiclass"},
        lambda g: (torch.softmax(torch.randn(4096, 5, generator=g), 1), torch.randint(0, 5, (4096,), generator=g)),
    ),
}


def step(loss, preds, target) -> None:
    preds.grad = None
    loss(preds, target).backward()


def measure(backend: str, metric: str, options: dict, make) -> tuple:
    """(launches, microseconds, no sync) of one forward + backward on the path METRICC_BACKEND names."""
    os.environ["METRICC_BACKEND"] = backend
    reset_backend_setting()
    loss = metricc.loss(metric, validate_args=False, **options).cuda()
    preds, target = make(torch.Generator().manual_seed(0))
    preds, target = preds.cuda().requires_grad_(True), target.cuda()
    for _ in range(5):
        step(loss, preds, target)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(loss, preds, target)
        torch.cuda.synchronize()
    launches = sum(1 for event in prof.events() if event.device_type == torch.autograd.DeviceType.CUDA)
    times = []
    for _ in range(50):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step(loss, preds, target)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1000)
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(loss, preds, target)
        no_sync = "yes"
    except RuntimeError:
        no_sync = "no"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return launches, statistics.median(times), no_sync


def main() -> int:
    if not torch.cuda.is_available():
        print("launches.py needs a CUDA device", file=sys.stderr)
        return 1
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, validate_args=False\n")
    print("| workload | path | kernel launches | µs per step | no host sync |")
    print("|---|---|---|---|---|")
    for name, (metric, options, make) in WORKLOADS.items():
        for backend in ("torch", "triton"):
            launches, micros, no_sync = measure(backend, metric, options, make)
            print(f"| {name} | {backend} | {launches} | {micros:.0f} | {no_sync} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
