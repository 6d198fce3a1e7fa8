"""Binary classification on tabular data: BCE versus losses compiled from F1, MCC, balanced accuracy and G-mean.

Datasets (nothing is downloaded): sklearn's Wisconsin breast cancer (569 rows, malignant = positive, 37%) and
make_classification at 90:10 and 99:1, split 60/20/20 into training, validation and test. A small MLP is
trained on each with every loss and scored on the test split with sklearn's metrics after the last epoch (no
early stopping): at threshold 0.5, and at the threshold that is best for that metric on the validation split
("@ tuned", found with metricc.threshold_curve). The "chosen by validation" row takes, per seed and column, the
loss whose validation score in that column is best: what a user can pick without seeing the test split.

Loss names: `bce`; `<metric>-anyloss` (metricc's default approximation, a steep sigmoid with L = 73),
`<metric>-identity` (the soft counts of soft Dice: a = p), `<metric>-linear` (a ramp of width 0.2 at 0.5),
and `bce+<metric>-<approximation>`, the compound loss metric + CE_WEIGHT * BCE built by metricc itself.

    python examples/tabular.py                                     # the default set, a few minutes
    python examples/tabular.py --losses bce,f1-identity,bce+f1-identity --datasets breast_cancer
    python examples/tabular.py --seeds 5 --plot examples/tabular.png   # what RESULTS.md reports
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef, recall_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metricc  # noqa: E402
from _common import Run, build_parser, parse_args, print_report, progress, seed_everything, train, tuned_scores  # noqa: E402

METRICS = ("f1", "mcc", "balanced_accuracy", "gmean")
APPROXIMATIONS = ("anyloss", "identity", "linear")
DATASETS = ("breast_cancer", "synthetic_90_10", "synthetic_99_1")


def load(name: str, seed: int, smoke: bool):
    """Standardised float32 (x_train, y_train, x_val, y_val, x_test, y_test), 60/20/20 stratified; the seed picks
    the split (and the synthetic data)."""
    if name == "breast_cancer":
        data = load_breast_cancer()
        x, y = data.data, 1 - data.target  # sklearn codes malignant as 0; make it the positive class
    else:
        minority = 0.10 if name == "synthetic_90_10" else 0.01
        rows = 1000 if smoke else 20000
        x, y = make_classification(n_samples=rows, n_features=20, n_informative=6, weights=[1 - minority], random_state=seed)
    return split(x, y, seed)


def split(x: np.ndarray, y: np.ndarray, seed: int, stratify: bool = True):
    """60/20/20 into (x_train, y_train, x_val, y_val, x_test, y_test), stratified on y unless told not to (multi-label
    rows); features standardised on the training rows, x and y_train as float32 tensors, y_val and y_test as arrays."""
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y if stratify else None, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest if stratify else None, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    x_train, x_val, x_test = (as_tensor(scaler.transform(a)) for a in (x_train, x_val, x_test))
    return x_train, as_tensor(y_train), x_val, y_val, x_test, y_test


def mlp(features: int) -> torch.nn.Module:
    """Two hidden layers of 32 units; one logit out."""
    return torch.nn.Sequential(
        torch.nn.Linear(features, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1), torch.nn.Flatten(0)
    )


def loss_factories(ce_weight: float = 1.0, steepness: float = 73.0) -> dict:
    """Loss name -> a function building a fresh loss on (logits, 0/1 targets)."""
    losses = {"bce": torch.nn.BCEWithLogitsLoss}
    for prefix, weight in (("", 0.0), ("bce+", ce_weight)):
        for metric in METRICS:
            for approximation in APPROXIMATIONS:
                losses[f"{prefix}{metric}-{approximation}"] = lambda m=metric, a=approximation, w=weight: metricc.loss(
                    m, from_logits=True, approximation=a, steepness=steepness, ce_weight=w
                )
    return losses


DEFAULT_LOSSES = ["bce"] + [f"{m}-{a}" for m in METRICS for a in ("anyloss", "identity")] + [f"bce+{m}-identity" for m in METRICS]


def gmean_score(target, predicted) -> float:
    """G-mean = sqrt(recall * specificity), from sklearn's recall of each class."""
    return float(np.sqrt(recall_score(target, predicted, zero_division=0) * recall_score(target, predicted, pos_label=0, zero_division=0)))


SCORES = {
    "f1": lambda y, p: f1_score(y, p, zero_division=0),
    "mcc": matthews_corrcoef,
    "balanced_accuracy": balanced_accuracy_score,
    "gmean": gmean_score,
}


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, prefix: str = "") -> dict:
    """sklearn's metrics of the thresholded predictions (p >= 0.5, i.e. logit >= 0)."""
    predicted = (model(x) >= 0).numpy().astype(int)
    return {f"{prefix}{name}": score(y, predicted) for name, score in SCORES.items()}


def evaluate_tuned(model: torch.nn.Module, x_val, y_val, x_test, y_test) -> dict:
    """The validation scores at 0.5 and, per metric, the test and validation scores at the threshold tuned on validation."""
    with torch.no_grad():
        val_logits, test_logits = model(x_val), model(x_test)
        return {**evaluate(model, x_val, y_val, "val "), **tuned_scores(SCORES, val_logits, y_val, test_logits, y_test)}


def main(argv=None) -> int:
    parser = build_parser(__doc__, loss_factories(), DEFAULT_LOSSES, epochs=25, seeds=3, datasets=DATASETS)
    parser.add_argument("--ce-weight", type=float, default=1.0, help="lambda of the bce+ compound losses (default: %(default)s)")
    parser.add_argument("--steepness", type=float, default=73.0, help="L of the anyloss approximation (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parse_args(parser, loss_factories(), argv)
    if args.ce_weight < 0 or args.steepness <= 0:
        parser.error("--ce-weight must be >= 0 and --steepness > 0")
    losses = loss_factories(args.ce_weight, args.steepness)

    runs = []
    jobs = [(d, name, seed) for d in args.datasets for seed in range(args.seeds) for name in args.losses]
    cache = {}
    for dataset, name, seed in progress(jobs, len(jobs), "runs", not args.no_progress):
        if (dataset, seed) not in cache:
            cache = {(dataset, seed): load(dataset, seed, args.smoke)}
        x_train, y_train, x_val, y_val, x_test, y_test = cache[(dataset, seed)]
        seed_everything(seed)
        model = mlp(x_train.shape[1])
        run = Run(dataset, name, seed)
        train(run, model, losses[name](), (x_train, y_train), lambda m: evaluate(m, x_test, y_test), "f1",
              args.epochs, args.batch_size, args.lr, max_steps=2 if args.smoke else None, show_progress=not args.no_progress)
        run.final.update(evaluate_tuned(model, x_val, y_val, x_test, y_test))
        runs.append(run)

    columns = [column for metric in METRICS for column in (metric, f"{metric} @ tuned")]
    print_report(runs, columns, "bce", args.seeds, args.plot, "f1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
