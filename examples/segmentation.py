"""Segmentation of small shapes in noise: BCE (or CE) versus losses compiled from Dice and Tversky.

Data (generated here, nothing is downloaded): 24x24 images of Gaussian noise with one to three small bright discs
and dark squares (radius 2-4 pixels, about 9% of the pixels) at low contrast (1.2 noise standard deviations). A four-layer CNN predicts a mask.
`--task binary` (default): one channel, every shape is foreground, preds (B, 1, H, W). `--task multiclass`: three
channels (background, disc, square), preds (B, 3, H, W) and labels (B, H, W).

Losses are computed per image (multidim_average="samplewise"; --multidim-average global pools the batch);
scores are the per-image Dice and IoU of the thresholded (binary) or arg-max (multiclass) prediction, averaged
over the held-out images (and over the two shape classes for multiclass), after the last epoch. Binary tables
also give them at the threshold best on a separate validation set ("@ tuned": the Dice or IoU of all
validation pixels pooled, found with metricc.threshold_curve), and a row with the loss chosen by validation.

Loss names: `bce` (binary) or `ce` (multiclass); `dice-<approximation>`; `tversky-<approximation>` (alpha = 0.3
on FP, beta = 0.7 on FN: recall-leaning); `bce+dice-<approximation>` / `ce+dice-<approximation>`, the compound
Dice + CE_WEIGHT * (B)CE loss that nnU-Net uses by default, built by metricc with ce_weight.

    python examples/segmentation.py
    python examples/segmentation.py --seeds 5 --plot examples/segmentation.png   # what RESULTS.md reports
    python examples/segmentation.py --task multiclass --seeds 5 --plot examples/segmentation_multiclass.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metricc  # noqa: E402
from _common import Run, build_parser, parse_args, print_report, progress, seed_everything, train  # noqa: E402

SIZE = 24
APPROXIMATIONS = ("anyloss", "identity", "linear")
METRICS = ("dice", "iou")


def shapes(count: int, seed: int, contrast: float = 1.2):
    """(images (N, 1, S, S) float32, labels (N, S, S) int64 with 0 background, 1 disc (bright), 2 square (dark))."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    labels = np.zeros((count, SIZE, SIZE), dtype=np.int64)
    for image in range(count):
        for _ in range(rng.integers(1, 4)):
            radius = rng.uniform(2.0, 4.0)
            centre_row, centre_col = rng.uniform(radius, SIZE - radius, size=2)
            if rng.random() < 0.5:
                inside = (rows - centre_row) ** 2 + (cols - centre_col) ** 2 <= radius**2
                labels[image][inside] = 1
            else:
                inside = (np.abs(rows - centre_row) <= radius * 0.8) & (np.abs(cols - centre_col) <= radius * 0.8)
                labels[image][inside] = 2
    images = rng.normal(size=(count, 1, SIZE, SIZE)) + contrast * ((labels == 1).astype(float) - (labels == 2))[:, None]
    return torch.tensor(images, dtype=torch.float32), torch.tensor(labels)


def cnn(channels: int) -> torch.nn.Module:
    """Four 3x3 convolutions (the third dilated), 8 features wide: a receptive field of 11 pixels."""
    width = 8
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(width, width, 3, padding=2, dilation=2), torch.nn.ReLU(),
        torch.nn.Conv2d(width, channels, 3, padding=1),
    )  # fmt: skip


def loss_factories(task: str, ce_weight: float = 1.0, multidim_average: str = "samplewise") -> dict:
    """Loss name -> a function building a fresh loss on (logits, masks or labels)."""
    if task == "binary":
        options = dict(task="binary", multidim_average=multidim_average, from_logits=True)
        losses = {"bce": torch.nn.BCEWithLogitsLoss}
        compound = "bce+"
    else:  # macro over the two shape classes, background left out of the metric (the CE term keeps it)
        options = dict(task="multiclass", average="macro", include_background=False, multidim_average=multidim_average, from_logits=True)
        losses = {"ce": torch.nn.CrossEntropyLoss}
        compound = "ce+"
    for approximation in APPROXIMATIONS:
        losses[f"dice-{approximation}"] = lambda a=approximation: metricc.loss("dice", approximation=a, **options)
        losses[f"tversky-{approximation}"] = lambda a=approximation: metricc.loss(
            "tversky(alpha=0.3, beta=0.7)", name="tversky", approximation=a, **options
        )
    for approximation in APPROXIMATIONS:
        losses[f"{compound}dice-{approximation}"] = lambda a=approximation: metricc.loss("dice", approximation=a, ce_weight=ce_weight, **options)
    return losses


def default_losses(task: str) -> list:
    base, compound = ("bce", "bce+") if task == "binary" else ("ce", "ce+")
    return [base, "dice-anyloss", "dice-identity", "tversky-identity", f"{compound}dice-identity"]


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, task: str, threshold: float = 0.0) -> dict:
    """Per-image Dice and IoU of the hard prediction, averaged over images (and shape classes); empty vs empty counts 1.
    Binary: a pixel is foreground where its logit is >= threshold (0: p >= 0.5)."""
    logits = model(images)
    if task == "binary":
        predicted, truth = (logits[:, 0] >= threshold)[:, None], (labels > 0)[:, None]
    else:
        hard = logits.argmax(1)
        predicted = torch.stack([hard == c for c in (1, 2)], 1)
        truth = torch.stack([labels == c for c in (1, 2)], 1)
    overlap = (predicted & truth).sum((2, 3)).double()
    total = predicted.sum((2, 3)).double() + truth.sum((2, 3)).double()
    union = total - overlap
    empty = total == 0
    dice = torch.where(empty, 1.0, 2 * overlap / total.clamp(min=1))
    iou = torch.where(empty, 1.0, overlap / union.clamp(min=1))
    return {"dice": float(dice.mean()), "iou": float(iou.mean())}


def evaluate_tuned(model: torch.nn.Module, validation, test) -> dict:
    """Binary: for Dice and IoU (metricc's jaccard), the logit threshold best for the metric pooled over the
    validation pixels (metricc.threshold_curve), and the per-image scores of validation and test there."""
    found = {}
    with torch.no_grad():
        logits = model(validation[0])[:, 0]
        for column, metric in (("dice", "dice"), ("iou", "jaccard")):
            curve = metricc.threshold_curve(metric, logits.reshape(-1), (validation[1] > 0).reshape(-1).float(), from_logits=True)
            # >= in evaluate: the next float above the threshold makes it the same cut as "> threshold"
            at = float(np.nextafter(np.float32(curve.best_threshold), np.float32(np.inf)))
            found[f"{column} @ tuned"] = evaluate(model, *test, "binary", at)[column]
            found[f"val {column} @ tuned"] = evaluate(model, *validation, "binary", at)[column]
        found.update({f"val {k}": v for k, v in evaluate(model, *validation, "binary").items()})
    return found


def main(argv=None) -> int:
    tasks = argparse.ArgumentParser(add_help=False)
    tasks.add_argument("--task", choices=("binary", "multiclass"), default="binary")
    task = tasks.parse_known_args(argv)[0].task  # the loss names depend on the task
    parser = build_parser(__doc__, loss_factories(task), default_losses(task), epochs=25, seeds=3)
    parser.add_argument("--task", choices=("binary", "multiclass"), default="binary")
    parser.add_argument("--ce-weight", type=float, default=1.0, help="lambda of the compound losses (default: %(default)s)")
    parser.add_argument("--multidim-average", choices=("samplewise", "global"), default="samplewise",
                        help="Dice per image, or over the whole batch's pixels (default: %(default)s)")
    parser.add_argument("--images", type=int, default=384, help="training images (validation: half as many)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parse_args(parser, loss_factories(task), argv)
    if args.ce_weight < 0:
        parser.error("--ce-weight must be >= 0")
    losses = loss_factories(args.task, args.ce_weight, args.multidim_average)
    count = 16 if args.smoke else args.images

    runs = []
    jobs = [(seed, name) for seed in range(args.seeds) for name in args.losses]
    data = {}
    for seed, name in progress(jobs, len(jobs), "runs", not args.no_progress):
        if seed not in data:
            train_images, train_labels = shapes(count, seed=2 * seed)
            test_images, test_labels = shapes(count // 2, seed=2 * seed + 1)
            validation = shapes(count // 2, seed=1000 + seed)  # a third set, so the training and test sets stay as they were
            data = {seed: (train_images, train_labels, test_images, test_labels, validation)}
        train_images, train_labels, test_images, test_labels, validation = data[seed]
        targets = (train_labels > 0).float()[:, None] if args.task == "binary" else train_labels
        seed_everything(seed)
        run = Run(f"shapes, {args.task}", name, seed)
        model = cnn(1 if args.task == "binary" else 3)
        train(run, model, losses[name](), (train_images, targets), lambda m: evaluate(m, test_images, test_labels, args.task), "dice",
              args.epochs, args.batch_size, args.lr, max_steps=2 if args.smoke else None, show_progress=not args.no_progress)
        if args.task == "binary":
            run.final.update(evaluate_tuned(model.eval(), validation, (test_images, test_labels)))
        runs.append(run)

    columns = [c for m in METRICS for c in (m, f"{m} @ tuned")] if args.task == "binary" else METRICS
    print_report(runs, columns, "bce" if args.task == "binary" else "ce", args.seeds, args.plot, "dice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
