"""What LearnedLoss costs beside one metric loss: CPU time of training epochs with validation, side by side.

Each arm trains the same model on the same data (an MLP on 12,000 rows of 20 features, 2 % positives, batch 512,
Adam, a validation of 4,000 rows after every epoch: metricc.threshold_curve for the plain losses, validate() for
LearnedLoss); arms alternate, each is repeated, and the median CPU time (time.process_time, one thread) is
reported relative to the default metric loss. The model's width varies: the loss is a large part of a step of a
tiny MLP and a small part of a larger one's.

    python benchmarks/learned.py                 # widths 32 and 512, 3 repeats of 5 epochs
    python benchmarks/learned.py --widths 32,128,1024 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import metricc


def data(rows: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(rows, 20, generator=generator)
    target = ((features[:, 0] + torch.randn(rows, generator=generator)) > 2.3).float()
    return features, target


def run(arm: str, width: int, epochs: int, train, validation) -> float:
    """CPU seconds of `epochs` epochs (training steps and the validation after each)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(20, width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 1)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    if arm == "LearnedLoss":
        criterion = metricc.LearnedLoss("f1", from_logits=True)
    elif arm == "BCE":
        criterion = torch.nn.BCEWithLogitsLoss()
    else:
        criterion = metricc.loss("f1", from_logits=True, ce_weight=1.0 if arm == "BCE + f1 loss" else 0.0)
    (x, y), (x_val, y_val) = train, validation
    start = time.process_time()
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(512):
            optimizer.zero_grad()
            criterion(model(x[batch]).squeeze(1), y[batch]).backward()
            optimizer.step()
        with torch.no_grad():
            scores = model(x_val).squeeze(1)
            if arm == "LearnedLoss":
                criterion.validate(scores, y_val)
            else:
                metricc.threshold_curve("f1", scores, y_val, from_logits=True)
    return time.process_time() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", default="32,512", help="hidden widths of the MLP (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train, validation = data(12000, 0), data(4000, 1)
    arms = ("f1 loss", "BCE", "BCE + f1 loss", "LearnedLoss")
    print(f"CPU time of {args.epochs} epochs with validation, median of {args.repeats}, relative to the f1 loss (PyTorch {torch.__version__})\n")
    print("| hidden width | f1 loss (s) | " + " | ".join(arms[1:]) + " |")
    print("|---" * (len(arms) + 1) + "|")
    for width in (int(w) for w in args.widths.split(",")):
        run("LearnedLoss", width, 1, train, validation)  # warm-up: compilation, allocator
        seconds = {arm: [] for arm in arms}
        for _ in range(args.repeats):
            for arm in arms:
                seconds[arm].append(run(arm, width, args.epochs, train, validation))
        median = {arm: statistics.median(values) for arm, values in seconds.items()}
        ratios = " | ".join(f"{median[arm] / median['f1 loss']:.2f}×" for arm in arms[1:])
        print(f"| {width} | {median['f1 loss']:.2f} | {ratios} |")


if __name__ == "__main__":
    main()
