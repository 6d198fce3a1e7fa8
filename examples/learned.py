"""Loss settings learned in one run (metricc.LearnedLoss) against the settings a user would otherwise guess or search.

Every task comes from another example, with its data, its model and its schedule (epochs, batch, Adam's learning
rate), imported from that script; each is split 60/20/20 into training, validation and test:
  synthetic_99_1, synthetic_90_10, breast_cancer  tabular.py (MLP 32-32, 25 epochs, batch 512, 3e-3), F1
  noisy_98_2       make_classification(20000, n_features=20, n_informative=6, weights=[0.98], flip_y=0.05), as tabular.py
  multilabel       make_multilabel_classification(10000, n_features=20, n_classes=10, n_labels=2): 10 labels of
                   14-30 % positives; multiclass.py's MLP (64-64) with 10 logits, tabular.py's schedule; macro-F1
                   (every label counts alike, as macro-F1 on digits; a threshold per label then maximises it exactly)
  digits           multiclass.py (5 rare classes, MLP 64-64, 40 epochs, batch 128, 3e-3), macro-F1 of the arg-max
  ordinal          ordinal.py's synthetic set (5000 rows, 5 ordered classes, MLP 64-64, 40 epochs, batch 64, 3e-3),
                   QWK of the arg-max (the diabetes set's 88 validation rows are too few to rank anything)
  shapes           segmentation.py, binary (CNN, 25 epochs, batch 32, 3e-3), Dice per image (multidim_average=
                   "samplewise"), its own validation images
digits and ordinal were split 70/30 in their own scripts; here they are split 60/20/20 like the others.

Arms, on the same splits and seeds, each scored with sklearn (or the example's own scorer) on the test split after
the last epoch, at the threshold best on validation (metricc.threshold_curve on the validation logits; per label for
multilabel; the arg-max for softmax tasks):
  ce          BCE or cross-entropy alone (PyTorch's)
  metric      metricc.loss(metric, from_logits=True, **task options): anyloss L=73 (sigmoid), identity (softmax)
  ce+metric   the same with ce_weight=1.0
  best of 3   per seed, of those three, the one whose validation score (at its own threshold) is best
  grid (13)   per seed, the best on validation of {ce} and ce_weight in (0, 0.3, 1, 3) x anyloss L in (10, 30, 73)
  learned     one run of metricc.LearnedLoss(metric, from_logits=True, **task options), validate() once per epoch
For sigmoid tasks `metric` and `ce+metric` are the grid's (ce_weight 0 and 1, L=73) runs, the same modules.
Cost: CPU seconds (time.process_time of a whole run, training and validation, one thread) and training passes,
relative to one run of `metric`; a selection arm costs all the runs it chooses from.

Each (task, run, seed) result is cached as JSON under --cache (default examples/.learned_cache), so a rerun
skips finished runs and prints the tables; `--arms` runs only some arms (the tables show what is finished). On the
2-core development machine the arms other than learned took 21 CPU minutes for 5 seeds (ordinal 93 s and shapes 69 s
a seed, the synthetic tabular sets about 21 s each), learned 2, and `--timing 5` 3.5; nothing was cut.

    python examples/learned.py --timing 5                       # what RESULTS.md reports: about 27 minutes of CPU
    python examples/learned.py --tasks breast_cancer,digits --seeds 2
    python examples/learned.py --arms "best of 3,grid (13)"     # the runs that do not need LearnedLoss
    python examples/learned.py --report-only                    # the tables of what the cache holds
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, make_classification, make_multilabel_classification
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metricc  # noqa: E402
import multiclass  # noqa: E402
import ordinal  # noqa: E402
import segmentation  # noqa: E402
import tabular  # noqa: E402
from _common import Run, progress, seed_everything, train, tuned_scores  # noqa: E402

ARMS = ("ce", "metric", "ce+metric", "best of 3", "grid (13)", "learned")
GRID_WEIGHTS = (0.0, 0.3, 1.0, 3.0)
GRID_STEEPNESS = (10.0, 30.0, 73.0)
TIE = 0.005  # |paired difference| below this is a tie
DEFAULT_CACHE = Path(__file__).resolve().parent / ".learned_cache"


class Data(NamedTuple):
    """One seed's splits: inputs, the targets the loss takes (train, validation) and the scorer's (validation, test)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor  # as the losses (and LearnedLoss.validate) take it
    x_test: torch.Tensor
    y_test: object  # as the scorer takes it
    val_scored: object  # the validation target as the scorer takes it


class Task(NamedTuple):
    """A task of the study: its metric and loss options, its example's schedule, its data and model."""

    name: str
    metric: str  # the metricc library name
    options: Tuple[Tuple[str, object], ...]  # metricc.loss options besides from_logits
    kind: str  # binary, multilabel, dense (binary masks) or multiclass
    epochs: int
    batch_size: int
    lr: float
    load: Callable[[int, bool], Data]
    model: Callable[[Data], torch.nn.Module]

    @property
    def sigmoid(self) -> bool:
        return self.kind != "multiclass"


def _tabular_data(x, y, seed: int, stratify: bool = True) -> Data:
    x_train, y_train, x_val, y_val, x_test, y_test = tabular.split(x, y, seed, stratify)
    return Data(x_train, y_train, x_val, torch.tensor(y_val, dtype=torch.float32), x_test, y_test, y_val)


def _synthetic(minority: float, flip_y: float = 0.01):
    def load(seed: int, smoke: bool) -> Data:
        rows = 1000 if smoke else 20000
        x, y = make_classification(n_samples=rows, n_features=20, n_informative=6, weights=[1 - minority], flip_y=flip_y, random_state=seed)
        return _tabular_data(x, y, seed)

    return load


def _breast_cancer(seed: int, smoke: bool) -> Data:
    x, y = load_breast_cancer(return_X_y=True)
    return _tabular_data(x, 1 - y, seed)  # as tabular.py: malignant, coded 0 by sklearn, is the positive class


def _multilabel(seed: int, smoke: bool) -> Data:
    x, y = make_multilabel_classification(n_samples=1000 if smoke else 10000, n_features=20, n_classes=10, n_labels=2, random_state=seed)
    return _tabular_data(x, y, seed, stratify=False)


def _class_data(x, y, seed: int) -> Data:
    x_train, y_train, x_val, y_val, x_test, y_test = tabular.split(x, y, seed)
    return Data(x_train, y_train.long(), x_val, torch.tensor(y_val), x_test, y_test, y_val)


def _digits(seed: int, smoke: bool) -> Data:
    return _class_data(*multiclass.rare_digits(seed), seed)


def _ordinal(seed: int, smoke: bool) -> Data:
    return _class_data(*ordinal.ordinal_rows("synthetic", seed, smoke), seed)


def _shapes(seed: int, smoke: bool) -> Data:
    """segmentation.py's images: its training and test sets of this seed and its third, validation, set."""
    count = 16 if smoke else 384
    train_images, train_labels = segmentation.shapes(count, seed=2 * seed)
    test_images, test_labels = segmentation.shapes(count // 2, seed=2 * seed + 1)
    val_images, val_labels = segmentation.shapes(count // 2, seed=1000 + seed)
    as_masks = lambda labels: (labels > 0).float()[:, None]  # noqa: E731
    return Data(train_images, as_masks(train_labels), val_images, as_masks(val_labels), test_images, test_labels, val_labels)


def _tabular_mlp(data: Data) -> torch.nn.Module:
    return tabular.mlp(data.x_train.shape[1])


def _wide_mlp(outputs: int):
    return lambda data: multiclass.mlp(data.x_train.shape[1], outputs)


TASKS: Dict[str, Task] = {
    task.name: task
    for task in (
        Task("synthetic_99_1", "f1", (), "binary", 25, 512, 3e-3, _synthetic(0.01), _tabular_mlp),
        Task("synthetic_90_10", "f1", (), "binary", 25, 512, 3e-3, _synthetic(0.10), _tabular_mlp),
        Task("breast_cancer", "f1", (), "binary", 25, 512, 3e-3, _breast_cancer, _tabular_mlp),
        Task("noisy_98_2", "f1", (), "binary", 25, 512, 3e-3, _synthetic(0.02, flip_y=0.05), _tabular_mlp),
        Task("multilabel", "f1", (("task", "multilabel"), ("average", "macro")), "multilabel", 25, 512, 3e-3, _multilabel, _wide_mlp(10)),
        Task("digits", "f1", (("task", "multiclass"), ("average", "macro")), "multiclass", 40, 128, 3e-3, _digits, _wide_mlp(10)),
        Task("ordinal", "qwk", (("task", "multiclass"),), "multiclass", 40, 64, 3e-3, _ordinal, lambda d: ordinal.mlp(d.x_train.shape[1])),
        Task("shapes", "dice", (("multidim_average", "samplewise"),), "dense", 25, 32, 3e-3, _shapes, lambda d: segmentation.cnn(1)),
    )
}


# --- the runs: a configuration is "ce", "learned" or (approximation, steepness or None, ce_weight) -------------------


def metric_config(task: Task, ce_weight: float) -> tuple:
    """The default metric loss's configuration (metricc's defaults: anyloss L=73 for sigmoid, identity for softmax)."""
    return ("anyloss", 73.0, ce_weight) if task.sigmoid else ("identity", None, ce_weight)


def arm_members(task: Task) -> Dict[str, List]:
    """Arm -> the configurations it trains (a selection arm chooses among them on validation)."""
    grid = ["ce"] + [("anyloss", steepness, weight) for weight in GRID_WEIGHTS for steepness in GRID_STEEPNESS]
    three = ["ce", metric_config(task, 0.0), metric_config(task, 1.0)]
    return {"ce": ["ce"], "metric": three[1:2], "ce+metric": three[2:], "best of 3": three, "grid (13)": grid, "learned": ["learned"]}


def config_key(config) -> str:
    if isinstance(config, str):
        return config
    approximation, steepness, weight = config
    return f"{approximation}{'' if steepness is None else f'-{steepness:g}'}+ce{weight:g}"


def build_loss(task: Task, config) -> torch.nn.Module:
    options = dict(task.options)
    if config == "ce":
        return torch.nn.BCEWithLogitsLoss() if task.sigmoid else torch.nn.CrossEntropyLoss()
    if config == "learned":
        return metricc.LearnedLoss(task.metric, from_logits=True, **options)
    approximation, steepness, weight = config
    if steepness is not None:
        options["steepness"] = steepness
    return metricc.loss(task.metric, from_logits=True, approximation=approximation, ce_weight=weight, **options)


def scores(task: Task, model: torch.nn.Module, data: Data) -> Tuple[float, float]:
    """(validation, test) score of the trained model: at the threshold best on validation for sigmoid outputs (per label
    for multilabel), at the arg-max for softmax. A model whose validation logits are not finite scores NaN."""
    model.eval()
    with torch.no_grad():
        val_logits = model(data.x_val)
        if not torch.isfinite(val_logits).all():
            return math.nan, math.nan
        if task.kind == "binary":
            found = tuned_scores({"f1": tabular.SCORES["f1"]}, val_logits, data.val_scored, model(data.x_test), data.y_test)
            return found["val f1 @ tuned"], found["f1 @ tuned"]
        if task.kind == "multilabel":
            curves = metricc.threshold_curve("f1", val_logits, data.y_val, task="multilabel", from_logits=True)
            predicted = (model(data.x_test) > curves.best_thresholds).numpy().astype(int)
            return statistics.mean(curves.best_values), float(f1_score(data.y_test, predicted, average="macro", zero_division=0))
        if task.kind == "dense":
            found = segmentation.evaluate_tuned(model, (data.x_val, data.val_scored), (data.x_test, data.y_test))
            return found["val dice @ tuned"], found["dice @ tuned"]
        evaluate = multiclass.evaluate if task.name == "digits" else ordinal.evaluate
        column = "macro_f1" if task.name == "digits" else "qwk"
        return evaluate(model, data.x_val, data.val_scored)[column], evaluate(model, data.x_test, data.y_test)[column]


def _plain(value):
    """History entries as JSON: tensors become lists or floats."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def execute(task: Task, config, seed: int, data: Data, smoke: bool, show_progress: bool) -> dict:
    """One training run, timed as a whole (model, training, per-epoch validation, the final threshold and scores);
    building the loss (loading its compiled module) comes before the clock starts, as a one-time cost."""
    max_steps = 2 if smoke else None
    epochs = min(task.epochs, 2) if smoke else task.epochs
    criterion = build_loss(task, config)
    cpu, wall = time.process_time(), time.perf_counter()
    seed_everything(seed)
    model = task.model(data)
    if config == "learned":
        evaluate = lambda m: {"val": criterion.validate(m(data.x_val), data.y_val)}  # noqa: E731  (train runs it under no_grad)
    else:
        evaluate = lambda m: {"val": math.nan}  # noqa: E731  (the fixed losses need nothing per epoch)
    run = Run(task.name, config_key(config), seed)
    train(run, model, criterion, (data.x_train, data.y_train), evaluate, "val", epochs, task.batch_size, task.lr,
          max_steps=max_steps, show_progress=show_progress)
    val, test = scores(task, model, data)
    result = {
        "val": val, "test": test, "cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall,
        "train_seconds_per_epoch": run.seconds_per_epoch,
        "steps": epochs * min(math.ceil(len(data.x_train) / task.batch_size), max_steps or math.inf),
    }
    if config == "learned":
        result.update(history=_plain(criterion.history), weights=_plain(criterion.weights), validate_scores=run.curve)
    return result


def settings(task: Task, smoke: bool, config) -> dict:
    """What a cached result depends on besides its task, configuration and seed; for `learned`, also the source of
    the rule (metricc's learned.py and the modules beside it that it uses), so that a changed rule is run again."""
    found = {"epochs": task.epochs, "batch_size": task.batch_size, "lr": task.lr, "smoke": smoke, "torch": torch.__version__}
    if config == "learned":
        package = Path(metricc.__file__).parent
        digest = hashlib.sha256()
        for module in ("learned.py", "linear_program.py", "threshold.py"):
            if (package / module).is_file():
                digest.update((package / module).read_bytes())
        found["rule"] = digest.hexdigest()[:16]
    return found


def cache_path(cache: Path, task: Task, config, seed: int) -> Path:
    return cache / task.name / f"{config_key(config)}-seed{seed}.json"


def cached(cache: Optional[Path], task: Task, config, seed: int, smoke: bool) -> Optional[dict]:
    if cache is None:
        return None
    path = cache_path(cache, task, config, seed)
    if not path.is_file():
        return None
    found = json.loads(path.read_text())
    return found["result"] if found.get("settings") == settings(task, smoke, config) else None


def store(cache: Optional[Path], task: Task, config, seed: int, smoke: bool, result: dict) -> None:
    """Written to a temporary file and renamed, so an interrupted run never leaves half a result."""
    if cache is None:
        return
    path = cache_path(cache, task, config, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"settings": settings(task, smoke, config), "result": result}, indent=1))
    partial.replace(path)


# --- the report ---------------------------------------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def _mean_se(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return f"{statistics.mean(values):+.3f} ± {se:.3f}"


def _se(values: Sequence[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def arm_outcomes(task: Task, results: Dict[Tuple[str, int], dict], seeds: Sequence[int]) -> Dict[str, Dict[int, dict]]:
    """Arm -> seed -> {"test", "val", "cpu", "steps", "chosen"} for the seeds where every run the arm needs is finished;
    a selection arm takes the member best on validation (the first listed among ties; NaN never wins)."""
    outcomes: Dict[str, Dict[int, dict]] = {}
    for arm, members in arm_members(task).items():
        outcomes[arm] = {}
        for seed in seeds:
            found = [results.get((config_key(c), seed)) for c in members]
            if any(r is None for r in found):
                continue
            best = max(range(len(members)), key=lambda i: -math.inf if math.isnan(found[i]["val"]) else found[i]["val"])
            outcomes[arm][seed] = {
                "test": found[best]["test"], "val": found[best]["val"], "chosen": config_key(members[best]),
                "cpu": sum(r["cpu_seconds"] for r in found), "steps": sum(r["steps"] for r in found),
                "train_epoch": sum(r["train_seconds_per_epoch"] for r in found),
            }
    return outcomes


def _paired(outcomes, arm: str, against: str) -> List[float]:
    seeds = sorted(set(outcomes[arm]) & set(outcomes[against]))
    return [outcomes[arm][s]["test"] - outcomes[against][s]["test"] for s in seeds]


def _wtl(differences: Sequence[float]) -> str:
    wins = sum(d >= TIE for d in differences)
    losses = sum(d <= -TIE for d in differences)
    return f"{wins}/{len(differences) - wins - losses}/{losses}"


def _relative_cost(outcomes, arm: str, field: str) -> float:
    """Mean over seeds of the arm's cost over that seed's run of `metric`."""
    seeds = sorted(set(outcomes[arm]) & set(outcomes["metric"]))
    if not seeds:
        return math.nan
    return statistics.mean(outcomes[arm][s][field] / outcomes["metric"][s][field] for s in seeds)


def task_report(task: Task, outcomes) -> List[str]:
    label = {"f1": "F1", "qwk": "QWK", "dice": "Dice"}[task.metric] if task.kind != "multilabel" else "macro-F1"
    if task.name == "digits":
        label = "macro-F1"
    lines = [f"\n### {task.name} (test {label} at the validation-tuned threshold{' (arg-max)' if not task.sigmoid else ''})\n",
             f"| arm | seeds | test {label} | CPU × metric | train passes × metric | chosen on validation |", "|---|---|---|---|---|---|"]
    for arm in ARMS:
        found = outcomes[arm]
        tests = [found[s]["test"] for s in sorted(found)]
        chosen = ""
        if arm in ("best of 3", "grid (13)") and found:
            counts: Dict[str, int] = {}
            for s in sorted(found):
                counts[found[s]["chosen"]] = counts.get(found[s]["chosen"], 0) + 1
            chosen = ", ".join(f"{name} {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1]))
        cpu, passes = _relative_cost(outcomes, arm, "cpu"), _relative_cost(outcomes, arm, "steps")
        cost = "n/a | n/a" if math.isnan(cpu) else f"{cpu:.2f}× | {passes:.0f}×"
        lines.append(f"| {arm} | {len(found)} | {_mean_std(tests)} | {cost} | {chosen} |")
    for against in ("ce", "grid (13)"):
        differences = _paired(outcomes, "learned", against)
        if differences:
            lines.append(f"\nlearned − {against}: {_mean_se(differences)} (mean ± SE over {len(differences)} paired seeds), "
                         f"W/T/L {_wtl(differences)} (tie: |difference| < {TIE})")
    return lines


def trajectory_report(task: Task, results: Dict[Tuple[str, int], dict], seeds: Sequence[int]) -> List[str]:
    """Seed 0's weights after epochs 1, 5, 10, ..., last; and the final weights' mean over seeds."""
    runs = {s: results[("learned", s)] for s in seeds if ("learned", s) in results}
    if not runs:
        return []
    first = runs[min(runs)]
    names = list(first["weights"])
    epochs = len(first["history"])
    shown = sorted({1, epochs} | set(range(5, epochs + 1, 5)))
    lines = [f"\n{task.name}, seed {min(runs)}: weights after each validate() (epoch), and the validation score there\n",
             "| epoch | " + " | ".join(names) + " | validation |", "|---" * (len(names) + 2) + "|"]
    for epoch in shown:
        entry = first["history"][epoch - 1]
        lines.append(f"| {epoch} | " + " | ".join(f"{entry['weights'].get(n, 0.0):.2f}" for n in names) + f" | {entry['score']:.3f} |")
    finals = [[run["weights"].get(n, 0.0) for n in names] for run in runs.values()]
    lines.append(f"| mean final ({len(runs)} seeds) | " + " | ".join(f"{statistics.mean(c):.2f}" for c in zip(*finals)) + " | |")
    return lines


def targets(tasks: Sequence[Task], all_outcomes, means: Dict[str, List[float]], ratios: Dict[str, float]) -> List[str]:
    """Issue 17's three targets, each said as met or missed from the numbers above."""
    lines = ["\n### Targets\n"]
    short = [t.name for t in tasks if len(_paired(all_outcomes[t.name], "learned", "ce")) < 2]
    if short:
        return lines + [f"not judged: fewer than 2 paired seeds of learned on {', '.join(short)}"]
    behind = []
    for task in tasks:
        differences = _paired(all_outcomes[task.name], "learned", "ce")
        if statistics.mean(differences) < -_se(differences):
            behind.append(f"{task.name} ({_mean_se(differences)})")
    lines.append(f"- learned >= ce within one paired SE on every task: {'met' if not behind else 'MISSED on ' + ', '.join(behind)}")
    learned, grid = statistics.mean(means["learned"]), statistics.mean(means["grid (13)"])
    lines.append(f"- learned >= grid (13) on the mean over tasks: {'met' if learned >= grid else 'MISSED'} ({learned:.4f} against {grid:.4f})")
    mean_ratio = statistics.mean(ratios.values())
    over = [f"{name} {ratio:.2f}×" for name, ratio in ratios.items() if ratio > 1.3]
    lines.append(f"- learned <= 1.3× the CPU of one metric run (in these runs, which ran at different times; --timing measures "
                 f"side by side): {'met' if not over else 'MISSED on ' + ', '.join(over)}"
                 f" (mean over tasks {mean_ratio:.2f}×)")
    differences = [d for t in tasks for d in _paired(all_outcomes[t.name], "learned", "ce")]
    against_grid = [d for t in tasks for d in _paired(all_outcomes[t.name], "learned", "grid (13)")]
    lines.append(f"- over all {len(differences)} (task, seed) pairs: W/T/L {_wtl(differences)} against ce, {_wtl(against_grid)} against the grid")
    return lines


def final_weights_report(tasks: Sequence[Task], results, seeds: Sequence[int]) -> List[str]:
    """Per task, the learned weights after the last epoch, mean over seeds ((b)ce is BCE or CE)."""
    names = ("ce", "anyloss-10", "anyloss-30", "anyloss-73", "identity")
    lines = ["\nMean final weights over seeds\n", "| task | seeds | (b)ce | " + " | ".join(names[1:]) + " |", "|---" * (len(names) + 2) + "|"]
    for task in tasks:
        runs = [results[task.name][("learned", s)] for s in seeds if ("learned", s) in results[task.name]]
        if runs:
            columns = [[run["weights"].get(n, run["weights"].get("b" + n, 0.0)) for run in runs] for n in names]
            lines.append(f"| {task.name} | {len(runs)} | " + " | ".join(f"{statistics.mean(c):.2f}" for c in columns) + " |")
    return lines


def report(tasks: Sequence[Task], results: Dict[str, Dict[Tuple[str, int], dict]], seeds: Sequence[int]) -> str:
    parts: List[str] = []
    all_outcomes = {task.name: arm_outcomes(task, results[task.name], seeds) for task in tasks}
    for task in tasks:
        parts += task_report(task, all_outcomes[task.name])

    parts += ["\n### Over tasks (test score per arm, mean ± std over seeds; learned − arm: mean ± SE of the paired differences)\n",
              "| task | " + " | ".join(ARMS) + " | learned − ce (W/T/L) | learned − grid (W/T/L) |", "|---" * (len(ARMS) + 3) + "|"]
    means: Dict[str, List[float]] = {arm: [] for arm in ARMS}
    for task in tasks:
        outcomes = all_outcomes[task.name]
        cells = []
        for arm in ARMS:
            tests = [outcomes[arm][s]["test"] for s in sorted(outcomes[arm])]
            cells.append(_mean_std(tests))
            if tests:
                means[arm].append(statistics.mean(tests))
        paired = [_paired(outcomes, "learned", against) for against in ("ce", "grid (13)")]
        cells += [f"{_mean_se(d)} ({_wtl(d)})" if d else "n/a" for d in paired]
        parts.append(f"| {task.name} | " + " | ".join(cells) + " |")
    complete = all(len(means[arm]) == len(tasks) for arm in ARMS)
    totals = []
    for against in ("ce", "grid (13)"):
        per_task = [_paired(all_outcomes[t.name], "learned", against) for t in tasks]
        pooled = [d for differences in per_task for d in differences]
        totals.append(f"{statistics.mean(statistics.mean(d) for d in per_task):+.3f} ({_wtl(pooled)})" if all(per_task) else "n/a")
    parts.append("| **mean over tasks** | " + " | ".join(f"**{statistics.mean(means[arm]):.3f}**" if len(means[arm]) == len(tasks) else "n/a"
                                                     for arm in ARMS) + " | " + " | ".join(totals) + " |")
    if not complete:
        parts.append("\n(a mean over tasks is shown only for an arm finished on every task)")

    parts += ["\n### Cost relative to one run of the default metric loss (mean over tasks of the per-seed ratios)\n",
              "| arm | runs | CPU (whole run) | CPU, fastest training epoch |", "|---|---|---|---|"]
    for arm in ARMS:
        cpu = [_relative_cost(all_outcomes[t.name], arm, "cpu") for t in tasks]
        epoch = [_relative_cost(all_outcomes[t.name], arm, "train_epoch") for t in tasks]
        cpu, epoch = [c for c in cpu if not math.isnan(c)], [e for e in epoch if not math.isnan(e)]
        runs = len(arm_members(tasks[0])[arm]) if tasks else 0
        parts.append(f"| {arm} | {runs} | {statistics.mean(cpu):.2f}× | {statistics.mean(epoch):.2f}× |" if cpu else f"| {arm} | {runs} | n/a | n/a |")
    ratios = {t.name: _relative_cost(all_outcomes[t.name], "learned", "cpu") for t in tasks}
    ratios = {name: ratio for name, ratio in ratios.items() if not math.isnan(ratio)}
    if ratios:
        parts.append("\nlearned / metric, CPU of the whole run, per task: " + ", ".join(f"{name} {ratio:.2f}×" for name, ratio in ratios.items()))
    parts += targets(tasks, all_outcomes, means, ratios)

    parts += ["\n### CPU of each arm per task, relative to one run of metric (mean over seeds of the per-seed ratios)\n",
              "| task | " + " | ".join(ARMS) + " |", "|---" * (len(ARMS) + 1) + "|"]
    for task in tasks:
        cells = [_relative_cost(all_outcomes[task.name], arm, "cpu") for arm in ARMS]
        parts.append(f"| {task.name} | " + " | ".join("n/a" if math.isnan(c) else f"{c:.2f}×" for c in cells) + " |")

    parts.append("\n### Learned weights")
    parts += final_weights_report(tasks, results, seeds)
    for task in tasks:
        parts += trajectory_report(task, results[task.name], seeds)
    return "\n".join(parts)


def timing_report(tasks: Sequence[Task], repeats: int, smoke: bool) -> str:
    """`metric` and `learned` run alternately on seed 0, `repeats` times each, uncached: the least CPU time of each
    (a shared machine only ever adds time) and their ratio, measured side by side."""
    lines = [f"\n### Side by side: one run of learned against one run of metric (seed 0, least of {repeats} alternating runs each)\n",
             "| task | metric CPU s | learned CPU s | learned / metric | fastest training epoch, learned / metric |", "|---|---|---|---|---|"]
    ratios = []
    for task in tasks:
        data = task.load(0, smoke)
        execute(task, "ce", 0, data, True, False)
        found: Dict[str, List[dict]] = {"metric": [], "learned": []}
        for _ in range(repeats):
            for arm, config in (("metric", metric_config(task, 0.0)), ("learned", "learned")):
                found[arm].append(execute(task, config, 0, data, smoke, False))
        cpu = {arm: min(r["cpu_seconds"] for r in runs) for arm, runs in found.items()}
        epoch = {arm: min(r["train_seconds_per_epoch"] for r in runs) for arm, runs in found.items()}
        ratios.append(cpu["learned"] / cpu["metric"])
        lines.append(f"| {task.name} | {cpu['metric']:.2f} | {cpu['learned']:.2f} | {ratios[-1]:.2f}× | {epoch['learned'] / epoch['metric']:.2f}× |")
    lines.append(f"| **mean** | | | {statistics.mean(ratios):.2f}× | |")
    return "\n".join(lines)


# --- the command line ---------------------------------------------------------------------------------------------


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, from: " + ", ".join(TASKS))
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to run, from: " + ", ".join(ARMS))
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, run as 0 .. N-1 (default: %(default)s)")
    parser.add_argument("--cache", type=Path, help=f"directory of cached results (default: {DEFAULT_CACHE}; none with --smoke)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: the tables of what the cache holds")
    parser.add_argument("--timing", type=int, default=0, metavar="N",
                        help="also time metric against learned side by side, N alternating runs each on seed 0 (needs LearnedLoss)")
    parser.add_argument("--smoke", action="store_true", help="a few steps on a little data, one seed: checks the script runs, measures nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    for option, valid in (("tasks", TASKS), ("arms", ARMS)):
        chosen = [name.strip() for name in getattr(args, option).split(",") if name.strip()]
        if not chosen or any(name not in valid for name in chosen):
            parser.error(f"--{option} {getattr(args, option)!r}: choose from {', '.join(valid)}")
        setattr(args, option, chosen)
    if args.seeds < 1 or args.timing < 0:
        parser.error("--seeds must be at least 1 and --timing at least 0")
    if args.smoke:
        args.seeds = 1
    if args.cache is None and not args.smoke:
        args.cache = DEFAULT_CACHE
    if args.report_only and args.cache is None:
        parser.error("--report-only needs --cache (--smoke caches nothing by default)")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    tasks = [TASKS[name] for name in args.tasks]
    seeds = list(range(args.seeds))
    results: Dict[str, Dict[Tuple[str, int], dict]] = {task.name: {} for task in tasks}
    jobs = []
    for seed in seeds:  # seed by seed: the first seed of every task finishes first
        for task in tasks:
            members = arm_members(task)
            configs = list(dict.fromkeys(c for arm in args.arms for c in members[arm]))
            every = list(dict.fromkeys(c for arm in ARMS for c in members[arm]))
            for config in every:
                found = cached(args.cache, task, config, seed, args.smoke)
                if found is not None:
                    results[task.name][(config_key(config), seed)] = found
                elif config in configs and not args.report_only:
                    jobs.append((task, seed, config))
    loaded: Dict[Tuple[str, int], Data] = {}
    for task, seed, config in progress(jobs, len(jobs), "runs", not args.no_progress):
        if (task.name, seed) not in loaded:
            loaded = {(task.name, seed): task.load(seed, args.smoke)}
            execute(task, "ce", seed, loaded[(task.name, seed)], True, False)  # an untimed warm-up: two steps and the scores
        result = execute(task, config, seed, loaded[(task.name, seed)], args.smoke, not args.no_progress)
        store(args.cache, task, config, seed, args.smoke, result)
        results[task.name][(config_key(config), seed)] = result
    print(f"metricc: {Path(metricc.__file__).parent}; seeds 0-{args.seeds - 1}; cache: {args.cache}")
    print(report(tasks, results, seeds))
    if args.timing:
        print(timing_report(tasks, args.timing, args.smoke))
    return 0


if __name__ == "__main__":
    sys.exit(main())
