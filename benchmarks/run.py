"""metricc benchmarks: one command, Markdown tables of ratios measured side by side in one run.

    python benchmarks/run.py                      # the full suite on the CPU (about 18 minutes on 2 cores)
    python benchmarks/run.py --metrics QWK --sections speed,memory   # only the QWK rows (about 4 minutes)
    python benchmarks/run.py --quick              # small sizes, few repetitions (a minute or two)
    python benchmarks/run.py --device cuda        # the same suite on a GPU
    python benchmarks/run.py --output benchmarks/RESULTS.md

Contenders, for one forward and backward pass of the loss:
  (a) naive: the AnyLoss-style hand-written module, a = 1/(1+exp(-L(p-0.5))), counts and formula in plain
      torch ops, autograd through everything (tests/oracles.py's naive_anyloss, the tests' own reference);
      (b) torch.compile of (a);
  (c) metricc's emitted module, eager;   (d) (c) under torch.compile;   (e) (c) under torch.jit.script;
  (f) floor: one read of preds and target producing a sum (torch.dot, or two sums for class-index
      targets), then one elementwise pass writing a tensor the size of preds (the gradient).
For QWK (a metric of the whole C x C soft confusion matrix, its own workloads), (a) is TensorFlow Addons'
WeightedKappaLoss ported to torch (O / E = 1 - soft QWK, autograd through everything) and (c) is
metricc.loss("qwk", task="multiclass"); the two must agree in loss and gradient before they are timed.
Times are medians over interleaved rounds: every round runs each contender once in turn, so load from other
processes falls on all of them alike. Ratios are of those medians. Each workload runs in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # oracles, imported as the tests import it

import torch  # noqa: E402

import metricc  # noqa: E402
from oracles import f1, mcc, naive_anyloss  # noqa: E402

L = 73.0
CONTENDERS = ("a", "b", "c", "d", "e", "f")
NAMES = {"a": "naive", "b": "compile(naive)", "c": "metricc", "d": "compile(metricc)", "e": "script(metricc)", "f": "floor"}
CUSTOM = (
    "(2*TP/(2*TP + FP + FN) + TP/(TP + FN) + TN/(TN + FP) + TP/(TP + FP) + TN/(TN + FN)) / 5"
    " - FP/(FP + TN)/10 - FN/(FN + TP)/10 + (TP + TN)/(TP + TN + FP + FN)/5"
    " + TP/(TP + FP + FN)/20 + (TP*TN - FP*FN)/(TP + FP + FN + TN)^2/20"
)


# The hand-written formulas of contender (a), what a user writes today: f1 and mcc from tests/oracles.py, and this.
def custom_formula(tp, fp, fn, tn):
    total = tp + fp + fn + tn
    mean = (2 * tp / (2 * tp + fp + fn) + tp / (tp + fn) + tn / (tn + fp) + tp / (tp + fp) + tn / (tn + fn)) / 5
    return (
        mean - fp / (fp + tn) / 10 - fn / (fn + tp) / 10 + (tp + tn) / total / 5
        + tp / (tp + fp + fn) / 20 + (tp * tn - fp * fn) / total**2 / 20
    )


# mcc_ovr: the per-class (one-vs-rest) MCC the naive module averages; "mcc" with task="multiclass" is the matrix MCC
METRICS = {"F1": ("f1", f1), "MCC": ("mcc_ovr", mcc), "custom": (CUSTOM, custom_formula)}
MATRIX_METRICS = {"QWK": "qwk"}


class NaiveLoss(torch.nn.Module):
    """AnyLoss as users write it: a sigmoid approximation, four sums, the formula, autograd for the rest."""

    def __init__(self, formula: Callable, layout: str, classes: int = 1):
        super().__init__()
        self.formula, self.layout, self.classes = formula, layout, classes

    def forward(self, preds, target):
        if self.layout == "binary":
            y, dims = target, None
        elif self.layout == "multiclass":
            y, dims = torch.nn.functional.one_hot(target, self.classes).to(preds.dtype), (0,)
        else:
            y, dims = torch.nn.functional.one_hot(target, self.classes).permute(0, 3, 1, 2).to(preds.dtype), (2, 3)
        return naive_anyloss(self.formula, preds, y, dims, steepness=L)


class NaiveKappaLoss(torch.nn.Module):
    """TensorFlow Addons' WeightedKappaLoss in torch: W = (i - j)^2 / (C - 1)^2, O = sum W * (y^T p),
    E = sum W * (row sums x column sums) / N, loss O / E = 1 - soft QWK (per image for (B, C, H, W) preds)."""

    def __init__(self, classes: int):
        super().__init__()
        index = torch.arange(classes, dtype=torch.float32)
        self.register_buffer("weights", (index[:, None] - index[None, :]) ** 2 / (classes - 1) ** 2)
        self.classes = classes

    def forward(self, preds, target):
        y = torch.nn.functional.one_hot(target, self.classes).to(preds.dtype)
        weights = self.weights.to(preds.dtype)
        if preds.dim() == 2:
            observed, truth, predicted, count = y.t() @ preds, y.sum(0), preds.sum(0), preds.shape[0]
        else:
            observed = torch.einsum("bhwi,bjhw->bij", y, preds)
            truth, predicted, count = y.sum((1, 2)), preds.sum((2, 3)), preds.shape[2] * preds.shape[3]
        expected = truth.unsqueeze(-1) * predicted.unsqueeze(-2) / count
        return ((weights * observed).sum((-2, -1)) / (weights * expected).sum((-2, -1))).mean()


def assert_same_loss_and_gradient(naive: Callable, compiled: Callable, preds: torch.Tensor, target: torch.Tensor) -> None:
    """A hand-written contender must compute metricc's loss: value and gradient by the logits agree to 1e-6 in
    float64. By the logits, as in training: by the probabilities the two differ by a constant per row (metricc's
    N is the matrix's sum, TFA's the batch size), which the softmax removes."""
    results = []
    for loss in (naive, compiled):
        logits = preds.detach().double().log().requires_grad_(True)
        value = loss(torch.softmax(logits, 1), target)
        value.backward()
        results.append((value.item(), logits.grad))
    (value, gradient), (expected_value, expected_gradient) = results
    assert abs(value - expected_value) <= 1e-6, f"naive loss {value} != metricc's {expected_value}"
    difference = (gradient - expected_gradient).abs().max().item()
    assert difference <= 1e-6 * expected_gradient.abs().max().item(), f"naive and metricc gradients differ by {difference}"


def floor(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One read of preds and target producing a sum, one elementwise pass writing the 'gradient'."""
    if target.shape == preds.shape and target.dtype == preds.dtype:
        total = torch.dot(preds.reshape(-1), target.reshape(-1))
    else:
        total = preds.sum() + target.sum()
    return preds * total


@dataclass
class Workload:
    name: str
    layout: str
    make: Callable[[torch.device], Tuple[torch.Tensor, torch.Tensor]]
    options: Dict[str, object]
    classes: int = 1
    metrics: Tuple[str, ...] = tuple(METRICS)


def workloads(quick: bool) -> List[Workload]:
    def binary(n):
        def make(device):
            g = torch.Generator().manual_seed(n)
            preds = torch.rand(n, generator=g).to(device)
            return preds, (torch.rand(n, generator=g) > 0.5).float().to(device)

        return Workload(f"binary N={n:,}".replace(",", " "), "binary", make, {})

    def multiclass(n, c):
        def make(device):
            g = torch.Generator().manual_seed(c)
            preds = torch.softmax(torch.randn(n, c, generator=g) * 3, 1).to(device)
            return preds, torch.randint(0, c, (n,), generator=g).to(device)

        return Workload(f"multiclass N={n}, C={c}, macro", "multiclass", make, {"task": "multiclass", "average": "macro"}, c)

    def dense(b, c, side):
        def make(device):
            g = torch.Generator().manual_seed(side)
            preds = torch.softmax(torch.randn(b, c, side, side, generator=g) * 3, 1).to(device)
            return preds, torch.randint(0, c, (b, side, side), generator=g).to(device)

        options = {"task": "multiclass", "average": "macro", "multidim_average": "samplewise"}
        return Workload(f"dense B={b}, C={c}, {side}x{side}, per image", "dense", make, options, c)

    def kappa(workload: Workload) -> Workload:
        """The same inputs measured for QWK, the kappa of the whole matrix, rather than a per-class count metric."""
        options = {key: value for key, value in workload.options.items() if key != "average"}
        name = "qwk " + workload.name.replace(", macro", "")
        return Workload(name, workload.layout, workload.make, options, workload.classes, tuple(MATRIX_METRICS))

    if quick:
        return [binary(256), binary(10_000), multiclass(512, 10), dense(2, 4, 32), kappa(multiclass(512, 5)), kappa(dense(2, 5, 32))]
    counts = [binary(256), binary(10_000), binary(1_000_000), binary(10_000_000), multiclass(4096, 100), dense(8, 4, 256)]
    return counts + [kappa(multiclass(4096, 5)), kappa(multiclass(4096, 100)), kappa(dense(8, 5, 256))]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_function(loss: Callable, preds: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    def step():
        preds.grad = None
        loss(preds, target).backward()

    return step


def median_times(steps: Dict[str, Callable[[], None]], device: torch.device, rounds: int, budget: float) -> Dict[str, float]:
    """Seconds per call: every round runs each step, in turn, enough times to fill its share of `budget`."""
    for step in steps.values():
        # TorchScript's profiling executor optimises on the second call; the allocator and the caches settle
        # over the first fraction of a second of a new size (the first row of each size ran slower without this)
        start = time.perf_counter()
        for calls in range(1000):
            step()
            if calls >= 2 and time.perf_counter() - start > budget / 20:
                break
    synchronize(device)
    calls = {}
    for key, step in steps.items():
        start = time.perf_counter()
        step()
        synchronize(device)
        calls[key] = max(1, int(budget / rounds / max(time.perf_counter() - start, 1e-6)))
    samples: Dict[str, List[float]] = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            for _ in range(calls[key]):
                step()
            synchronize(device)
            samples[key].append((time.perf_counter() - start) / calls[key])
    return {key: statistics.median(values) for key, values in samples.items()}


def build_contenders(metric: str, workload: Workload, device: torch.device, chosen: str, validate: bool = True) -> Dict[str, Callable]:
    torch._dynamo.reset()  # each row compiles afresh: no recompile limits, no graphs shared between rows
    if metric in MATRIX_METRICS:
        naive = NaiveKappaLoss(workload.classes).to(device)
        compiled = metricc.loss(MATRIX_METRICS[metric], validate_args=validate, **workload.options).to(device)
        assert_same_loss_and_gradient(naive, compiled, *workload.make(device))
    else:
        expression, formula = METRICS[metric]
        naive = NaiveLoss(formula, workload.layout, workload.classes).to(device)
        compiled = metricc.loss(expression, direction="maximize", validate_args=validate, **workload.options).to(device)
    built: Dict[str, Callable] = {}
    if "a" in chosen:
        built["a"] = naive
    if "b" in chosen:
        built["b"] = torch.compile(naive, fullgraph=True)
    if "c" in chosen:
        built["c"] = compiled
    if "d" in chosen:
        built["d"] = torch.compile(compiled, fullgraph=True)
    if "e" in chosen:
        built["e"] = torch.jit.script(compiled)
    return built


def speed_and_memory_tables(args, device: torch.device) -> Tuple[str, str]:
    """Both tables from one set of contenders per workload and metric (building (b), (d), (e) is the slow part)."""
    keys = [k for k in args.contenders]
    speed = ["| workload | metric | " + " | ".join(f"({k}) {NAMES[k]}" for k in keys) + " | a/c | b/d | d/f | a/e |"]
    speed.append("|" + "---|" * (speed[0].count("|") - 1))
    memory_keys = [k for k in keys if k in "abcde"]
    memory = ["| workload | metric | " + " | ".join(f"({k}) {NAMES[k]}" for k in memory_keys) + " |"]
    memory.append("|" + "---|" * (memory[0].count("|") - 1))
    for workload in workloads(args.quick):
        if (args.only and args.only not in workload.name) or (args.workload and args.workload != workload.name):
            continue
        metrics = [m for m in args.metrics if m in workload.metrics]
        if not metrics:
            continue
        if not args.workload:
            rows = workload_in_child(args, workload.name)
            speed += [row for row in rows if row.count("|") == speed[0].count("|")]
            memory += [row for row in rows if row.count("|") == memory[0].count("|")]
            continue
        preds, target = workload.make(device)
        preds.requires_grad_(True)
        for metric in metrics:
            losses = build_contenders(metric, workload, device, args.contenders, not args.no_validation)
            if "speed" in args.sections:
                steps = {k: step_function(loss, preds, target) for k, loss in losses.items()}
                if "f" in keys:
                    detached = preds.detach()
                    steps["f"] = lambda: floor(detached, target)
                times = median_times(steps, device, args.rounds, args.budget)
                cells = [_time(times.get(k)) for k in keys]
                ratios = [_ratio(times, "a", "c"), _ratio(times, "b", "d"), _ratio(times, "d", "f"), _ratio(times, "a", "e")]
                speed.append(f"| {workload.name} | {metric} | " + " | ".join(cells + ratios) + " |")
                print(speed[-1], file=sys.stderr, flush=True)
            if "memory" in args.sections:
                cells = []
                for key in memory_keys:
                    count, mib = saved_tensors(losses[key], preds, target)
                    cells.append(f"{count} ({mib:.1f} MiB)")
                memory.append(f"| {workload.name} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(speed), "\n".join(memory)


def workload_in_child(args, name: str) -> List[str]:
    """The table rows of one workload, measured in a fresh process: what an earlier workload left in the memory
    allocator (a 40 MB tensor freed, a heap grown) changed later rows' times by up to 2x when they shared one."""
    command = [sys.executable, str(Path(__file__).resolve()), "--workload", name, "--sections", ",".join(s for s in args.sections if s in ("speed", "memory"))]
    command += ["--device", args.device, "--contenders", args.contenders, "--metrics", ",".join(args.metrics)]
    command += ["--rounds", str(args.rounds), "--budget", str(args.budget)] + (["--quick"] if args.quick else [])
    command += (["--threads", str(args.threads)] if args.threads else []) + (["--no-validation"] if args.no_validation else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {name} failed:\n{result.stderr}")
    sys.stderr.write(result.stderr)
    return [line for line in result.stdout.splitlines() if line.startswith(f"| {name} |")]


def _time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


def _ratio(times: Dict[str, float], top: str, bottom: str) -> str:
    if top not in times or bottom not in times:
        return "-"
    return f"{times[top] / times[bottom]:.2f}"


def saved_tensors(loss: Callable, preds: torch.Tensor, target: torch.Tensor) -> Tuple[int, float]:
    """Tensors with at least preds.numel() elements that autograd keeps for backward, beyond preds and target:
    (how many, MiB)."""
    inputs = {preds.untyped_storage().data_ptr(), target.untyped_storage().data_ptr()}
    kept: Dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if tensor.numel() >= preds.numel() and storage.data_ptr() not in inputs:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    preds.grad = None
    loss(preds, target).backward()  # compiled contenders compile outside the hooks
    preds.grad = None
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        value = loss(preds, target)
    value.backward()
    return len(kept), sum(kept.values()) / 2**20


_COMPILE_SNIPPET = """
import sys, time
sys.path.insert(0, {root!r})
import torch, sympy, lark, metricc, metricc.compiler, metricc.library
start = time.perf_counter()
for name in {names!r}:
    metricc.loss(name)
first = time.perf_counter() - start
start = time.perf_counter()
for name in {names!r}:
    metricc.loss(name)
print(first, time.perf_counter() - start)
"""


def _python(code: str, env: Optional[Dict[str, str]] = None) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip()


def compile_table(args) -> str:
    """String -> loaded module, in fresh processes, imports excluded: no cache; the in-process cache; a warm
    disk cache in a new process."""
    import tempfile

    from metricc.library import default_library

    targets = {"F1": ["f1"], "MCC": ["mcc"], f"whole library ({len(default_library().names())})": default_library().names()}
    rows = ["| metric | uncached | repeated in-process | new process, disk cache |", "|---|---|---|---|"]
    for label, names in targets.items():
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, METRICC_CACHE_DIR=cache)
            snippet = _COMPILE_SNIPPET.format(root=str(ROOT), names=list(names))
            first, repeated = (float(x) for x in _python(snippet, env).split())
            warm, _ = (float(x) for x in _python(snippet, env).split())
        rows.append(f"| {label} | {first:.3f} s | {repeated * 1e3:.2f} ms | {warm * 1e3:.1f} ms |")
    return "\n".join(rows)


_FIRST_CALL_SNIPPET = """
import sys, time
sys.path.insert(0, {root!r})
import torch, metricc
sys.path.insert(0, {bench!r})
from run import NaiveLoss, f1
preds = torch.rand(10000, device={device!r}, requires_grad=True)
target = (torch.rand(10000, device={device!r}) > 0.5).float()
loss = NaiveLoss(f1, "binary") if {naive!r} else metricc.loss("f1")
compiled = torch.compile(loss, fullgraph=True)
start = time.perf_counter()
compiled(preds, target).backward()
if preds.is_cuda:
    torch.cuda.synchronize()
print(time.perf_counter() - start)
"""


def first_call_table(args, device: torch.device) -> str:
    rows = ["| loss | first forward+backward under torch.compile (fresh process) |", "|---|---|"]
    for label, naive in (("(b) compile(naive) F1", True), ("(d) compile(metricc) F1", False)):
        snippet = _FIRST_CALL_SNIPPET.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), device=str(device), naive=naive)
        rows.append(f"| {label} | {float(_python(snippet)):.1f} s |")
    return "\n".join(rows)


def cli_table(args) -> str:
    """`metricc grad f1` wall time from a cold interpreter, and whether it imported torch."""
    command = [sys.executable, "-m", "metricc.cli", "grad", "f1"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times = []
    for _ in range(3 if args.quick else 7):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - start)
    probe = "import sys, runpy; sys.argv = ['metricc', 'grad', 'f1']\ntry:\n    runpy.run_module('metricc.cli', run_name='__main__')\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stderr.strip()
    return "\n".join(
        [
            "| command | median wall time | imports torch |",
            "|---|---|---|",
            f"| `metricc grad f1` | {statistics.median(times):.2f} s | {'yes' if imported == 'True' else 'no'} |",
        ]
    )


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--contenders", default="".join(CONTENDERS), help="subset of abcdef (default all)")
    parser.add_argument("--metrics", default=",".join([*METRICS, *MATRIX_METRICS]), help="subset of F1,MCC,custom (count metrics) and QWK (its own workloads)")
    parser.add_argument("--only", default="", help="only workloads whose name contains this text (e.g. binary)")
    parser.add_argument("--workload", default="", help="measure this one workload in this process (each runs in its own)")
    parser.add_argument("--sections", default="speed,memory,compile,first-call,cli", help="which tables")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per measurement (default 15, quick 3)")
    parser.add_argument("--budget", type=float, help="seconds of measuring per contender and row (default 3, quick 0.2)")
    parser.add_argument("--no-validation", action="store_true", help="metricc modules with validate_args=False")
    parser.add_argument("--output", help="also write the tables, machine and command to this Markdown file")
    args = parser.parse_args(argv)
    args.metrics = [m for m in args.metrics.split(",") if m]
    unknown = sorted(set(args.metrics) - set(METRICS) - set(MATRIX_METRICS)) + sorted(set(args.contenders) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown metric or contender: {', '.join(unknown)}")
    args.rounds = args.rounds or (3 if args.quick else 15)
    args.budget = args.budget or (0.2 if args.quick else 3.0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    sections = [s for s in args.sections.split(",") if s]
    load_before = load()
    parts = []
    args.sections = sections
    if "speed" in sections or "memory" in sections:
        speed, memory = speed_and_memory_tables(args, device)
        if "speed" in sections:
            parts.append("### Forward + backward time (median of interleaved rounds)\n\n" + speed)
        if "memory" in sections:
            parts.append(
                "### Tensors of at least N elements (the size of preds) kept for backward, beyond preds and target\n\n"
                + memory
            )
    if "compile" in sections:
        parts.append("### Compile time: string to loaded module (imports excluded)\n\n" + compile_table(args))
    if "first-call" in sections:
        parts.append("### First call under torch.compile\n\n" + first_call_table(args, device))
    if "cli" in sections:
        parts.append("### CLI cold start\n\n" + cli_table(args))
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = (
        f"Machine: {machine(device)}; device {device}.\n"
        f"Command: `{command.strip()}`\n"
        f"Load average (1, 5, 15 min) before: {load_before}; after: {load()}.\n\n" + "\n\n".join(parts) + "\n"
    )
    print(report)
    if args.output:
        Path(args.output).write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
