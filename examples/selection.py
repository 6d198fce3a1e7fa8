"""Choose the loss and the decision threshold by validation, with metricc's tools; then test once.

    python examples/selection.py                         # a few seconds
    python examples/selection.py --metric mcc --plot curves.png

The recipe that held up best in examples/RESULTS.md: train a few candidate losses (BCE, the metric's compiled
loss, and their sum), find each model's best threshold on a validation split with metricc.threshold_curve,
keep the candidate whose validation metric at its own threshold is best, and only then look at the test split.
Data: sklearn's make_classification with 5% positives, split 60/20/20 (nothing is downloaded).
"""

import argparse
import sys

import torch
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import metricc


def split(rows: int, seed: int):
    """(train, validation, test) pairs of float32 tensors, 60/20/20 stratified."""
    x, y = make_classification(n_samples=rows, n_features=20, n_informative=6, weights=[0.95], random_state=seed)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return [(as_tensor(scaler.transform(x)), as_tensor(y)) for x, y in ((x_train, y_train), (x_val, y_val), (x_test, y_test))]


def fit(criterion, data, epochs: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    x, y = data
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 1), torch.nn.Flatten(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for index in torch.randperm(len(y)).split(512):
            optimizer.zero_grad()
            criterion(model(x[index]), y[index]).backward()
            optimizer.step()
    return model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", default="f1", help="a library metric or formula (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="FILE.png", help="the chosen model's validation curve")
    parser.add_argument("--smoke", action="store_true", help="two epochs on a little data: checks the script runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a model this small gains nothing from more threads
    train, validation, test = split(3000 if args.smoke else 20000, args.seed)
    epochs = 2 if args.smoke else args.epochs

    candidates = {
        "bce": torch.nn.BCEWithLogitsLoss(),
        f"{args.metric} loss": metricc.loss(args.metric, from_logits=True),
        f"bce + {args.metric} loss": metricc.loss(args.metric, from_logits=True, ce_weight=1.0),
    }
    print(f"validation {args.metric} of each candidate, at 0.5 and at its best threshold:")
    found = {}
    for name, criterion in candidates.items():
        model = fit(criterion, train, epochs, args.seed)
        with torch.no_grad():
            curve = metricc.threshold_curve(args.metric, model(validation[0]), validation[1], from_logits=True)
        found[name] = (model, curve)
        print(f"  {name:<22} {curve.value_at(0.0):.3f} at 0.5, {curve.best_value:.3f} at logit > {curve.best_threshold:.3f}")

    higher = next(iter(found.values()))[1].direction == "maximize"
    pick = (max if higher else min)(found, key=lambda name: found[name][1].best_value)
    model, curve = found[pick]
    with torch.no_grad():
        test_logits = model(test[0])
    # the test split is looked at once, for the chosen recipe only
    on_test = metricc.threshold_curve(args.metric, test_logits, test[1], from_logits=True)
    print(f"\nchosen by validation: {pick}, predicting positive for logit > {curve.best_threshold:.3f}")
    print(f"test {args.metric}: {on_test.value_at(curve.best_threshold):.3f} (at 0.5 it would be {on_test.value_at(0.0):.3f})")
    if args.plot:
        curve.plot(args.plot, label=f"{pick}, validation")
        print(f"validation curve: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
