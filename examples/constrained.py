"""Constrained objectives: recall at precision >= 0.9 and TPR at FPR <= 1 %, trained under the constraint
(metricc.loss("recall", constraints=[...])) against BCE, each with the threshold chosen on validation to meet it.

Tasks: tabular.py's make_classification(20000, n_features=20, n_informative=6) at 90:10, and the same generator at
95:5; tabular.py's split (60/20/20, stratified), MLP (32-32) and schedule (25 epochs, batch 512, Adam 3e-3).
Targets: recall subject to "precision >= 0.9", and recall (TPR) subject to "fpr <= 0.01".

Arms, on the same splits and seeds (the seed picks the data, the split and the initialisation):
  bce                       PyTorch's BCEWithLogitsLoss (the same run serves both targets)
  bce+recall                metricc.loss("recall", from_logits=True, ce_weight=1.0): the compound loss without the
                            constraint, to tell the constraint's effect from that of adding a recall term
  bce+recall-identity       the same with approximation="identity"
  constrained               metricc.loss("recall", constraints=[target], from_logits=True): a constrained loss's
                            defaults (approximation="identity", ce_weight=1.0)
  constrained-no-ce         the same with ce_weight=0
  constrained-anyloss       approximation="anyloss", ce_weight=0: the defaults a constrained loss had before
  bce+constrained-anyloss   approximation="anyloss" (and the default ce_weight=1.0)
Every arm's threshold: metricc.threshold_curve("recall", val_logits, val_target, constraints=[target],
from_logits=True), the best validation recall among the cuts that meet the constraint on validation (where none
does, the cut nearest to meeting it, counted under "val infeasible"). Test recall and the test constraint come from
sklearn's confusion matrix at that threshold. CPU: time.process_time of a whole run (training and scoring).

    python examples/constrained.py                      # what RESULTS.md reports: 5 seeds, about 3 CPU minutes
    python examples/constrained.py --seeds 2 --tasks synthetic_90_10 --arms bce,constrained
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from sklearn.datasets import make_classification
from sklearn.metrics import confusion_matrix

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metricc  # noqa: E402
import tabular  # noqa: E402
from _common import Run, progress, seed_everything, train  # noqa: E402

TASKS = {"synthetic_90_10": 0.10, "synthetic_95_5": 0.05}  # name -> the minority's share
TARGETS = {"recall at precision >= 0.9": "precision >= 0.9", "TPR at FPR <= 1 %": "fpr <= 0.01"}
ARMS = ("bce", "bce+recall", "bce+recall-identity", "constrained", "constrained-no-ce", "constrained-anyloss", "bce+constrained-anyloss")
UNCONSTRAINED = ("bce", "bce+recall", "bce+recall-identity")  # trained once per task and seed, thresholded for each target
EPOCHS, BATCH, LR = 25, 512, 3e-3
TIE = 0.005  # |paired difference in test recall| below this is a tie
#: Each constrained arm's loss without the constraint: what the constraint adds is the paired difference.
TWINS = {"constrained": "bce+recall-identity", "bce+constrained-anyloss": "bce+recall"}


class Split(NamedTuple):
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: np.ndarray
    x_test: torch.Tensor
    y_test: np.ndarray


def load(task: str, seed: int, smoke: bool) -> Split:
    x, y = make_classification(
        n_samples=1000 if smoke else 20000, n_features=20, n_informative=6, weights=[1 - TASKS[task]], random_state=seed
    )
    return Split(*tabular.split(x, y, seed))


def build_loss(arm: str, constraint: Optional[str]) -> torch.nn.Module:
    if arm == "bce":
        return torch.nn.BCEWithLogitsLoss()
    if arm in ("bce+recall", "bce+recall-identity"):
        return metricc.loss("recall", from_logits=True, ce_weight=1.0, approximation="identity" if arm.endswith("identity") else "anyloss")
    options = {
        "constrained": {}, "constrained-no-ce": {"ce_weight": 0.0},
        "constrained-anyloss": {"approximation": "anyloss", "ce_weight": 0.0}, "bce+constrained-anyloss": {"approximation": "anyloss"},
    }[arm]
    return metricc.loss("recall", constraints=[constraint], from_logits=True, **options)


def test_rates(logits: torch.Tensor, target: np.ndarray, threshold: float) -> Dict[str, float]:
    """Recall, precision and FPR of `logits > threshold`, from sklearn's confusion matrix."""
    tn, fp, fn, tp = confusion_matrix(target, (logits > threshold).numpy().astype(int), labels=[0, 1]).ravel()
    return {"recall": tp / (tp + fn), "precision": tp / (tp + fp) if tp + fp else 0.0, "fpr": fp / (fp + tn)}


def holds(constraint: str, rates: Dict[str, float]) -> bool:
    metric, comparison, bound = constraint.split()
    return rates[metric] >= float(bound) if comparison == ">=" else rates[metric] <= float(bound)


def chosen_threshold(val_logits: torch.Tensor, y_val: np.ndarray, constraint: str) -> Tuple[float, bool]:
    """The validation-best threshold under the constraint, and whether any cut met it there; where none did, the cut
    whose constraint value comes closest (the highest precision, the lowest FPR), the highest threshold among ties."""
    try:
        curve = metricc.threshold_curve("recall", val_logits, torch.as_tensor(y_val), constraints=[constraint], from_logits=True)
        return curve.best_threshold, True
    except metricc.InfeasibleConstraintError as infeasible:
        curve = infeasible.curve
        values = curve.constraint_values[0]
        closest = values.max() if ">=" in constraint else values.min()
        cut = int(torch.nonzero(values == closest)[-1])
        return float(curve.thresholds[cut]), False


class Trained(NamedTuple):
    train_logits: torch.Tensor
    val_logits: torch.Tensor
    test_logits: torch.Tensor
    cpu: float
    multipliers: Dict[str, float]


def trained(arm: str, constraint: Optional[str], seed: int, data: Split, smoke: bool, show_progress: bool) -> Trained:
    """One training run; CPU time from the model's initialisation to the test logits (building the loss, which loads
    its compiled modules once per process, comes first)."""
    criterion = build_loss(arm, constraint)
    cpu = time.process_time()
    seed_everything(seed)
    model = tabular.mlp(data.x_train.shape[1])
    train(Run("", arm, seed), model, criterion, (data.x_train, data.y_train), lambda m: {"val": math.nan}, "val",
          min(EPOCHS, 2) if smoke else EPOCHS, BATCH, LR, max_steps=2 if smoke else None, show_progress=show_progress)
    with torch.no_grad():
        train_logits, val_logits, test_logits = model(data.x_train), model(data.x_val), model(data.x_test)
    return Trained(train_logits, val_logits, test_logits, time.process_time() - cpu, dict(getattr(criterion, "multipliers", {})))


def scored(run: Trained, constraint: str, data: Split) -> dict:
    """The test outcome of one target: recall and the rates at the threshold chosen on validation."""
    threshold, feasible = chosen_threshold(run.val_logits, data.y_val, constraint)
    rates = test_rates(run.test_logits, data.y_test, threshold)
    at_training_threshold = test_rates(run.train_logits, data.y_train.numpy().astype(int), 0.0)
    return {
        "recall": rates["recall"], "rates": rates, "violated": not holds(constraint, rates), "val_feasible": feasible,
        "train_holds": holds(constraint, at_training_threshold),
        "cpu": run.cpu, "multiplier": run.multipliers.get(constraint, math.nan),
    }


def execute(arm: str, seed: int, data: Split, smoke: bool, show_progress: bool) -> Dict[str, dict]:
    """{target: its test outcome}: an unconstrained arm is trained once and thresholded for each target, a
    constrained arm trained once per target."""
    if arm in UNCONSTRAINED:
        run = trained(arm, None, seed, data, smoke, show_progress)
        return {target: scored(run, constraint, data) for target, constraint in TARGETS.items()}
    return {target: scored(trained(arm, constraint, seed, data, smoke, show_progress), constraint, data) for target, constraint in TARGETS.items()}


# --- the report ---------------------------------------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "—"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def _wtl(differences: Sequence[float]) -> str:
    wins, losses = sum(d >= TIE for d in differences), sum(d <= -TIE for d in differences)
    return f"{wins}/{len(differences) - wins - losses}/{losses}"


def _paired(results, task: str, target: str, arm: str, other: Optional[str], seeds: Sequence[int]) -> List[float]:
    """Per seed, arm's test recall minus other's, where both ran (none against itself or a missing arm)."""
    if other is None or other == arm:
        return []
    return [results[(task, arm, s)][target]["recall"] - results[(task, other, s)][target]["recall"]
            for s in seeds if (task, arm, s) in results and (task, other, s) in results]


def report(results: Dict[Tuple[str, str, int], Dict[str, dict]], tasks: Sequence[str], arms: Sequence[str], seeds: Sequence[int]) -> str:
    lines: List[str] = []
    for task in tasks:
        for target, constraint in TARGETS.items():
            metric, comparison, bound = constraint.split()
            lines += [
                f"\n### {task}: {target} (test, threshold chosen on validation; {len(seeds)} seed{'s' if len(seeds) > 1 else ''})\n",
                f"| arm | test recall | test {metric} | test {constraint} violated | val infeasible | W/T/L vs bce | W/T/L vs no constraint "
                "| holds on train at p > 0.5 | multiplier at the end | CPU s / run |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for arm in arms:
                runs = {s: results[(task, arm, s)][target] for s in seeds if (task, arm, s) in results}
                if runs:
                    against = [_paired(results, task, target, arm, other, seeds) for other in ("bce", TWINS.get(arm))]
                    lines.append(
                        f"| {arm} | {_mean_std([r['recall'] for r in runs.values()])} | {_mean_std([r['rates'][metric] for r in runs.values()])} "
                        f"| {sum(r['violated'] for r in runs.values())}/{len(runs)} | {sum(not r['val_feasible'] for r in runs.values())}/{len(runs)} "
                        f"| {' | '.join(_wtl(d) if d else '—' for d in against)} | {sum(r['train_holds'] for r in runs.values())}/{len(runs)} "
                        f"| {_mean_std([r['multiplier'] for r in runs.values()])} "
                        f"| {statistics.mean(r['cpu'] for r in runs.values()):.1f} |"
                    )
    return "\n".join(lines)


# --- the command line ---------------------------------------------------------------------------------------------


def _chosen(parser: argparse.ArgumentParser, option: str, text: str, valid: Sequence[str]) -> List[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    if not chosen or any(name not in valid for name in chosen):
        parser.error(f"--{option} {text!r}: choose from {', '.join(valid)}")
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, from: " + ", ".join(TASKS))
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated, from: " + ", ".join(ARMS))
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, run as 0 .. N-1 (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="two steps on a little data, one seed: checks the script runs, measures nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    tasks, arms = _chosen(parser, "tasks", args.tasks, tuple(TASKS)), _chosen(parser, "arms", args.arms, ARMS)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    seeds = [0] if args.smoke else list(range(args.seeds))
    results: Dict[Tuple[str, str, int], Dict[str, dict]] = {}
    jobs = [(task, seed, arm) for task in tasks for seed in seeds for arm in arms]
    data: Dict[Tuple[str, int], Split] = {}
    for task, seed, arm in progress(jobs, len(jobs), "runs", not args.no_progress):
        if (task, seed) not in data:
            data = {(task, seed): load(task, seed, args.smoke)}
        results[(task, arm, seed)] = execute(arm, seed, data[(task, seed)], args.smoke, not args.no_progress)
    print(f"metricc: {Path(metricc.__file__).parent}; seeds 0-{seeds[-1]}")
    print(report(results, tasks, arms, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
