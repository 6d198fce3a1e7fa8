"""Multi-class classification with rare classes: cross-entropy versus a loss compiled from macro-F1.

Data (nothing is downloaded): sklearn's 8x8 digits, 10 classes, with digits 5-9 subsampled to 15% of their
rows, so half the classes are rare (about 27 images each against about 180). An MLP is trained with each loss and
scored on a held-out stratified 30% split with sklearn's macro-F1 of the arg-max prediction, after the last epoch.

Loss names: `ce`; `macro_f1-<approximation>`, metricc.loss("f1", task="multiclass", average="macro",
from_logits=True, approximation=...) on the softmax; `ce+macro_f1-<approximation>`, the same with
ce_weight=CE_WEIGHT, i.e. macro-F1 loss + CE_WEIGHT * cross-entropy in one module.

    python examples/multiclass.py
    python examples/multiclass.py --seeds 5 --plot examples/multiclass.png   # what RESULTS.md reports
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metricc  # noqa: E402
from _common import Run, build_parser, parse_args, print_report, progress, seed_everything, train  # noqa: E402

RARE_CLASSES = (5, 6, 7, 8, 9)
RARE_FRACTION = 0.15
APPROXIMATIONS = ("anyloss", "identity", "linear")
METRICS = ("macro_f1", "rare_f1", "accuracy", "balanced_accuracy")


def rare_digits(seed: int):
    """(x, y): the digits with the rare classes subsampled; the seed picks which rows survive."""
    x, y = load_digits(return_X_y=True)
    generator = np.random.default_rng(seed)
    keep = np.array([label not in RARE_CLASSES or generator.random() < RARE_FRACTION for label in y])
    return x[keep], y[keep]


def load(seed: int):
    """Digits with the rare classes subsampled (the seed picks which rows survive and the split); standardised."""
    x, y = rare_digits(seed)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_tensor(scaler.transform(x_train)), torch.tensor(y_train), as_tensor(scaler.transform(x_test)), y_test


def mlp(features: int, classes: int = 10) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(features, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, classes))


def loss_factories(ce_weight: float) -> dict:
    """Loss name -> a function building a fresh loss on (logits of shape (N, 10), class indices)."""
    losses = {"ce": torch.nn.CrossEntropyLoss}
    for prefix, weight in (("", 0.0), ("ce+", ce_weight)):
        for approximation in APPROXIMATIONS:
            losses[f"{prefix}macro_f1-{approximation}"] = lambda a=approximation, w=weight: metricc.loss(
                "f1", task="multiclass", average="macro", from_logits=True, approximation=a, ce_weight=w
            )
    return losses


DEFAULT_LOSSES = ["ce", "macro_f1-anyloss", "macro_f1-identity", "ce+macro_f1-anyloss", "ce+macro_f1-identity"]


def evaluate(model: torch.nn.Module, x_test: torch.Tensor, y_test: np.ndarray) -> dict:
    predicted = model(x_test).argmax(1).numpy()
    return {
        "macro_f1": f1_score(y_test, predicted, average="macro", zero_division=0),
        "rare_f1": f1_score(y_test, predicted, labels=list(RARE_CLASSES), average="macro", zero_division=0),
        "accuracy": accuracy_score(y_test, predicted),
        "balanced_accuracy": balanced_accuracy_score(y_test, predicted),
    }


def main(argv=None) -> int:
    parser = build_parser(__doc__, loss_factories(1.0), DEFAULT_LOSSES, epochs=40, seeds=5)
    parser.add_argument("--ce-weight", type=float, default=1.0, help="lambda of the ce+ compound losses (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parse_args(parser, loss_factories(1.0), argv)
    if args.ce_weight < 0:
        parser.error("--ce-weight must be >= 0")
    losses = loss_factories(args.ce_weight)

    runs = []
    jobs = [(seed, name) for seed in range(args.seeds) for name in args.losses]
    data = {}
    for seed, name in progress(jobs, len(jobs), "runs", not args.no_progress):
        if seed not in data:
            data = {seed: load(seed)}
        x_train, y_train, x_test, y_test = data[seed]
        seed_everything(seed)
        run = Run("digits, 5 rare classes", name, seed)
        train(run, mlp(x_train.shape[1]), losses[name](), (x_train, y_train), lambda m: evaluate(m, x_test, y_test), "macro_f1",
              args.epochs, args.batch_size, args.lr, max_steps=2 if args.smoke else None, show_progress=not args.no_progress)
        runs.append(run)

    print_report(runs, METRICS, "ce", args.seeds, args.plot, "macro_f1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
