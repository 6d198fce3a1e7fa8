"""Plumbing shared by the examples: arguments, seeding, the training loop, the results table and the plot.

Each example defines its data, its model, a dict of named losses and an `evaluate` function; everything
else (the command line, progress bars, timing, mean +- std over seeds, learning curves) lives here.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

try:
    from tqdm.auto import tqdm
except ImportError:  # progress bars are optional
    tqdm = None

# the machine these run on is shared: one thread keeps timings steady and is as fast for models this small
torch.set_num_threads(1)


def build_parser(
    description: str, losses: Dict[str, Callable], default_losses: Sequence[str], epochs: int, seeds: int, datasets: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """The command line every example shares; --losses (and --datasets, where a script offers several) are checked by `parse_args`."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="losses: " + ", ".join(losses))
    parser.add_argument("--losses", default=",".join(default_losses), help="comma-separated loss names (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=seeds, help="number of seeds, run as 0 .. N-1 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=epochs, help="training epochs per run (default: %(default)s)")
    parser.add_argument("--plot", metavar="FILE.png", help="save learning curves (validation metric per epoch) to this PNG")
    parser.add_argument("--smoke", action="store_true", help="a few steps on a little data: checks the script runs, measures nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    if datasets:
        parser.add_argument("--datasets", default=",".join(datasets), help="comma-separated, from: " + ", ".join(datasets))
    return parser


def parse_args(parser: argparse.ArgumentParser, losses: Dict[str, Callable], argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse and validate: unknown loss names, non-positive counts and a plot file that is not .png are errors."""
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.losses.split(",") if name.strip()]
    unknown = [name for name in names if name not in losses]
    if unknown or not names:
        parser.error(f"unknown loss {', '.join(map(repr, unknown)) or '(none given)'}; valid losses are: {', '.join(losses)}")
    if args.seeds < 1 or args.epochs < 1 or getattr(args, "batch_size", 1) < 1:
        parser.error("--seeds, --epochs and --batch-size must be at least 1")
    if not getattr(args, "lr", 1.0) > 0:
        parser.error("--lr must be positive")
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        parser.error(f"--plot {args.plot!r}: give a file name ending in .png")
    args.losses = names
    if "datasets" in args:
        available = parser.get_default("datasets").split(",")  # the default is every dataset the script offers
        chosen = [d.strip() for d in args.datasets.split(",") if d.strip()]
        if not chosen or any(d not in available for d in chosen):
            parser.error(f"--datasets {args.datasets!r}: choose from {', '.join(available)}")
        args.datasets = chosen
    if args.smoke:
        args.seeds, args.epochs = 1, min(args.epochs, 2)
    return args


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress(iterable, total: int, description: str, enabled: bool, leave: bool = True):
    """A tqdm bar when tqdm is installed and wanted, else the iterable itself."""
    if tqdm is None or not enabled:
        return iterable
    return tqdm(iterable, total=total, desc=description, leave=leave, dynamic_ncols=True)


def batches(n: int, batch_size: int, generator: torch.Generator, max_steps: Optional[int] = None) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering n rows once (the last one may be short)."""
    order = torch.randperm(n, generator=generator)
    for step, start in enumerate(range(0, n, batch_size)):
        if max_steps is not None and step >= max_steps:
            return
        yield order[start : start + batch_size]


@dataclass
class Run:
    """One training run: a loss on a dataset with a seed."""

    dataset: str
    loss: str
    seed: int
    curve: List[float] = field(default_factory=list)  # the target metric on the validation split, per epoch
    final: Dict[str, float] = field(default_factory=dict)  # every metric after the last epoch
    seconds_per_epoch: float = 0.0


def train(
    run: Run,
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    train_data: Tuple[torch.Tensor, torch.Tensor],
    evaluate: Callable[[torch.nn.Module], Dict[str, float]],
    target_metric: str,
    epochs: int,
    batch_size: int,
    lr: float,
    max_steps: Optional[int] = None,
    show_progress: bool = True,
) -> Run:
    """Adam on mini-batches; after each epoch, evaluate on the validation split.

    Only training steps are timed, and the fastest epoch is kept: the first epoch pays one-time warm-up costs
    and a shared machine only ever adds time, so the minimum is the least disturbed measurement.
    """
    inputs, labels = train_data
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(run.seed)
    seconds = []
    bar = progress(range(epochs), epochs, f"{run.dataset} {run.loss} seed {run.seed}", show_progress, leave=False)
    for _ in bar:
        model.train()
        start = time.perf_counter()
        for index in batches(len(inputs), batch_size, generator, max_steps):
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(inputs[index]), labels[index])
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            run.final = evaluate(model)
        run.curve.append(run.final[target_metric])
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({target_metric: f"{run.curve[-1]:.3f}"})
    run.seconds_per_epoch = min(seconds)
    return run


def tuned_scores(metrics: Dict[str, Callable], val_logits: torch.Tensor, val_target, test_logits: torch.Tensor, test_target) -> Dict[str, float]:
    """For each metric (metricc library name -> score(target, predicted)): the threshold that is best on the
    validation split (metricc.threshold_curve on logits), and the test score at it.

    Keys: "<m> @ tuned" (test) and "val <m> @ tuned" (validation, what a user can see when choosing).
    """
    import metricc

    found = {}
    for name, score in metrics.items():
        curve = metricc.threshold_curve(name, val_logits, torch.as_tensor(val_target), from_logits=True)
        found[f"{name} @ tuned"] = float(score(np.asarray(test_target), (test_logits > curve.best_threshold).numpy().astype(int)))
        found[f"val {name} @ tuned"] = curve.best_value
    return found


def chosen_by_validation(runs: Sequence[Run], column: str) -> List[float]:
    """Per seed, the test value of `column` of the run whose validation value of the same column is best:
    the recipe (loss, and with "@ tuned" its threshold) a user would pick without seeing the test split."""
    chosen = []
    for seed in sorted({r.seed for r in runs}):
        candidates = [r for r in runs if r.seed == seed and f"val {column}" in r.final]
        if candidates:
            chosen.append(max(candidates, key=lambda r: r.final[f"val {column}"]).final[column])
    return chosen


def _mean_std(values: Sequence[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def results_table(runs: Sequence[Run], dataset: str, metrics: Sequence[str], baseline: str) -> str:
    """A markdown table for one dataset: mean ± std over seeds of each metric, and time per epoch relative to the
    baseline; where runs recorded validation scores, a last row with the recipe chosen by validation."""
    chosen = [r for r in runs if r.dataset == dataset]
    names = list(dict.fromkeys(r.loss for r in chosen))
    base = [r.seconds_per_epoch for r in chosen if r.loss == baseline]
    base_time = statistics.mean(base) if base else float("nan")
    lines = ["| loss | " + " | ".join(metrics) + " | time/epoch |", "|---" * (len(metrics) + 2) + "|"]
    for name in names:
        of_loss = [r for r in chosen if r.loss == name]
        cells = [_mean_std([r.final[m] for r in of_loss]) for m in metrics]
        relative = statistics.mean(r.seconds_per_epoch for r in of_loss) / base_time
        lines.append(f"| {name} | " + " | ".join(cells) + (f" | {relative:.2f}× |" if not math.isnan(relative) else " | n/a |"))
    if len(names) > 1 and any(f"val {m}" in r.final for r in chosen for m in metrics):
        cells = [_mean_std(chosen_by_validation(chosen, m)) for m in metrics]
        lines.append("| *chosen by validation* | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


def report(runs: Sequence[Run], metrics: Sequence[str], baseline: str, seeds: int) -> str:
    """One table per dataset, as printed at the end of a script."""
    parts = []
    for dataset in dict.fromkeys(r.dataset for r in runs):
        parts.append(f"\n### {dataset} (mean ± std over {seeds} seed{'s' if seeds > 1 else ''}, last epoch)\n")
        parts.append(results_table(runs, dataset, metrics, baseline))
    return "\n".join(parts)


def print_report(runs: Sequence[Run], metrics: Sequence[str], baseline: str, seeds: int, plot_path: Optional[str], target_metric: str) -> None:
    """The end of every training script: the tables, then the learning curves of target_metric when asked for."""
    print(report(runs, metrics, baseline, seeds))
    if plot_path:
        plot_curves(runs, target_metric, plot_path)
        print(f"\nlearning curves: {plot_path}")


def plot_curves(runs: Sequence[Run], target_metric: str, path: str) -> None:
    """One panel per dataset: the mean validation curve of each loss over seeds, with a ±1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.dataset for r in runs))
    losses = list(dict.fromkeys(r.loss for r in runs))
    colors = plt.get_cmap("tab10" if len(losses) <= 10 else "tab20")
    legend_rows = math.ceil(len(losses) / 4)
    height = 3.0 + 0.22 * legend_rows
    figure, axes = plt.subplots(1, len(datasets), figsize=(max(4.5 * len(datasets), 7.0), height), squeeze=False)
    for axis, dataset in zip(axes[0], datasets):
        chosen = [r for r in runs if r.dataset == dataset]
        for name in dict.fromkeys(r.loss for r in chosen):
            curves = np.array([r.curve for r in chosen if r.loss == name], dtype=float)
            mean, std = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
            epochs = np.arange(1, len(mean) + 1)
            color = colors(losses.index(name) % colors.N)
            axis.plot(epochs, mean, label=name, linewidth=1.3, color=color)
            axis.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.12, linewidth=0)
        axis.set_title(dataset, fontsize=10)
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"validation {target_metric}")
        axis.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.22 * legend_rows / height + 0.02, 1, 1))
    figure.savefig(path, dpi=72)
    plt.close(figure)
