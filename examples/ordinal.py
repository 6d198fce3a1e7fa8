"""Ordinal classification: cross-entropy versus a loss compiled from quadratic weighted kappa (QWK), and both.

Datasets (nothing is downloaded): sklearn's diabetes regression target (442 patients, disease progression after
a year) cut at its quintiles into 5 ordered classes of 88-89 rows; and a synthetic latent score (a linear
function of 10 Gaussian features plus an interaction, plus noise) cut into 5 ordered classes of 40 / 30 / 18 /
8 / 4 %. An MLP is trained with each loss and scored on a held-out stratified 30% split with sklearn's
`cohen_kappa_score(weights="quadratic")` of the arg-max prediction, after the last epoch (no tuning, no early
stopping; the learning curves are of the same held-out split).

Loss names: `ce`; `qwk`, metricc.loss("qwk", task="multiclass", from_logits=True), i.e. 1 - soft QWK of the
softmax; `ce+qwk`, the same with ce_weight=CE_WEIGHT, i.e. 1 - soft QWK + CE_WEIGHT * cross-entropy in one module.

    python examples/ordinal.py
    python examples/ordinal.py --seeds 5 --plot examples/ordinal.png   # what RESULTS.md reports
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.metrics import accuracy_score, cohen_kappa_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metricc  # noqa: E402
from _common import Run, build_parser, parse_args, print_report, progress, seed_everything, train  # noqa: E402

CLASSES = 5
DATASETS = ("diabetes", "synthetic")
SYNTHETIC_SHARES = (0.40, 0.30, 0.18, 0.08, 0.04)
METRICS = ("qwk", "accuracy", "mae")


def ordered_classes(score: np.ndarray, shares) -> np.ndarray:
    """Class k holds the scores between the cumulative quantiles of shares[:k] and shares[:k + 1]."""
    edges = np.quantile(score, np.cumsum(shares)[:-1])
    return np.searchsorted(edges, score, side="right")


def synthetic(seed: int, rows: int):
    """A latent score, a noisy function of the features, cut into imbalanced ordered classes."""
    generator = np.random.default_rng(seed)
    x = generator.standard_normal((rows, 10))
    latent = x @ np.linspace(1.0, 0.1, 10) + 0.5 * x[:, 0] * x[:, 1] + generator.normal(0.0, 0.7, rows)
    return x, ordered_classes(latent, SYNTHETIC_SHARES)


def ordinal_rows(name: str, seed: int, smoke: bool):
    """(x, y) of a dataset, y the ordered class of each row; the seed picks the synthetic data."""
    if name == "diabetes":
        x, target = load_diabetes(return_X_y=True)
        return x, ordered_classes(target, [1 / CLASSES] * CLASSES)
    return synthetic(seed, 1000 if smoke else 5000)


def load(name: str, seed: int, smoke: bool):
    """Standardised float32 (x_train, y_train, x_test, y_test); the seed picks the split (and the synthetic data)."""
    x, y = ordinal_rows(name, seed, smoke)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_tensor(scaler.transform(x_train)), torch.tensor(y_train), as_tensor(scaler.transform(x_test)), y_test


def mlp(features: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(features, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, CLASSES))


def loss_factories(ce_weight: float = 1.0) -> dict:
    """Loss name -> a function building a fresh loss on (logits of shape (N, 5), class indices)."""
    return {
        "ce": torch.nn.CrossEntropyLoss,
        "qwk": lambda: metricc.loss("qwk", task="multiclass", from_logits=True),
        "ce+qwk": lambda: metricc.loss("qwk", task="multiclass", from_logits=True, ce_weight=ce_weight),
    }


def evaluate(model: torch.nn.Module, x_test: torch.Tensor, y_test: np.ndarray) -> dict:
    """sklearn's QWK and accuracy of the arg-max, and its mean absolute error in classes."""
    predicted = model(x_test).argmax(1).numpy()
    return {
        "qwk": cohen_kappa_score(y_test, predicted, weights="quadratic"),
        "accuracy": accuracy_score(y_test, predicted),
        "mae": float(np.abs(predicted - y_test).mean()),
    }


def main(argv=None) -> int:
    parser = build_parser(__doc__, loss_factories(), list(loss_factories()), epochs=40, seeds=5, datasets=DATASETS)
    parser.add_argument("--ce-weight", type=float, default=1.0, help="lambda of the ce+qwk compound loss (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parse_args(parser, loss_factories(), argv)
    if args.ce_weight < 0:
        parser.error("--ce-weight must be >= 0")
    losses = loss_factories(args.ce_weight)

    runs = []
    jobs = [(d, name, seed) for d in args.datasets for seed in range(args.seeds) for name in args.losses]
    cache = {}
    for dataset, name, seed in progress(jobs, len(jobs), "runs", not args.no_progress):
        if (dataset, seed) not in cache:
            cache = {(dataset, seed): load(dataset, seed, args.smoke)}
        x_train, y_train, x_test, y_test = cache[(dataset, seed)]
        seed_everything(seed)
        run = Run(dataset, name, seed)
        train(run, mlp(x_train.shape[1]), losses[name](), (x_train, y_train), lambda m: evaluate(m, x_test, y_test), "qwk",
              args.epochs, args.batch_size, args.lr, max_steps=2 if args.smoke else None, show_progress=not args.no_progress)
        runs.append(run)

    print_report(runs, METRICS, "ce", args.seeds, args.plot, "qwk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
