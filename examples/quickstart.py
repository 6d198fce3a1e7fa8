"""Quickstart: compile F1 into a loss, look at the gradient metricc derived, and train a model with it.

    python examples/quickstart.py          # under 15 seconds on a laptop CPU

1. metricc.gradient("f1") gives the four partial derivatives of F1 = 2 TP / (2 TP + FP + FN) that SymPy derived.
2. metricc.loss("f1", ...) compiles F1 into a torch.nn.Module whose backward pass uses them (closed form).
3. A small MLP learns an imbalanced problem (3% positives, sklearn's make_classification) once with binary
   cross-entropy and once with the compiled F1 loss; both are scored with sklearn's F1 on held-out data.
"""

import argparse
import sys
import time

import torch
from sklearn.datasets import make_classification
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import metricc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=25, help="training epochs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the split and the model (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="two epochs on a little data: checks the script runs")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    epochs, rows = (2, 2000) if args.smoke else (args.epochs, 20000)
    torch.set_num_threads(1)  # a model this small gains nothing from more threads

    # 1. The gradient metricc derives for F1: it rewards TP and penalises FP and FN, as it should.
    print("F1 = 2*TP / (2*TP + FP + FN); the partial derivatives metricc derived:")
    for count, partial in metricc.gradient("f1").items():
        print(f"  d F1 / d {count} = {partial}")

    # 2. The compiled loss: 1 - F1 over soft counts a = sigmoid(73 (p - 0.5)) of p = sigmoid(logits), nearly the
    #    hard 0/1 decisions, with the gradient above (steep near p = 0.5; see docs/choosing.md for other choices).
    f1_loss = metricc.loss("f1", from_logits=True)
    logits, labels = torch.tensor([0.3, -0.1, 0.05, -0.2], requires_grad=True), torch.tensor([1.0, 0.0, 0.0, 1.0])
    value = f1_loss(logits, labels)
    value.backward()
    print(f"\n{type(f1_loss).__name__}: loss {value.item():.3f} on a toy batch, d loss / d logits = {logits.grad.numpy().round(3)}")

    # 3. Train: 3% positives; F1 of the held-out split at threshold 0.5 after every few epochs.
    x, y = make_classification(n_samples=rows, n_features=20, n_informative=6, weights=[0.97], random_state=args.seed)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=args.seed)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (x_train, x_test))
    y_train = torch.tensor(y_train, dtype=torch.float32)
    print(f"\ndata: {len(y_train)} training rows ({int(y_train.sum())} positive), {len(y_test)} held out ({y_test.sum()} positive)")

    results = {}
    for name, criterion in (("BCE", torch.nn.BCEWithLogitsLoss()), ("F1 loss (metricc)", f1_loss)):
        torch.manual_seed(args.seed)
        model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            for index in torch.randperm(len(y_train)).split(512):
                optimizer.zero_grad()
                criterion(model(x_train[index]).squeeze(1), y_train[index]).backward()
                optimizer.step()
            with torch.no_grad():
                predicted = (model(x_test).squeeze(1) >= 0).int().numpy()  # logit >= 0 is p >= 0.5
            score = f1_score(y_test, predicted, zero_division=0)
            if epoch % 5 == 0 or epoch == epochs:
                print(f"  {name:18s} epoch {epoch:3d}  held-out F1 {score:.3f}")
        results[name] = (score, time.perf_counter() - start)

    print("\nheld-out F1 after training:")
    for name, (score, seconds) in results.items():
        print(f"  {name:18s} {score:.3f}   ({seconds:.1f} s)")
    print("\nsee examples/RESULTS.md for the same comparison over 5 seeds, more metrics and losses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
