"""`metricc demo`: compile a library metric, show its gradient, train a small model on built-in imbalanced data."""

from __future__ import annotations

import sympy


def imbalanced_data(samples: int, positive_rate: float, seed: int):
    """Two overlapping Gaussian classes in 10 dimensions, a minority of positives; generated, never downloaded."""
    import torch

    direction = torch.randn(10, generator=torch.Generator().manual_seed(12345))
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(samples, generator=generator) < positive_rate).float()
    features = torch.randn(samples, 10, generator=generator) + 2.0 * target[:, None] * direction / direction.norm()
    return features, target


def hard_f1(logits, target) -> float:
    """F1 of thresholded predictions, computed from integer counts."""
    predicted = (logits > 0).float()
    tp = float((predicted * target).sum())
    fp = float((predicted * (1 - target)).sum())
    fn = float(((1 - predicted) * target).sum())
    return 2 * tp / max(2 * tp + fp + fn, 1.0)


def train(loss_fn, features, target, seed: int, epochs: int = 40):
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(target)).split(256):
            optimizer.zero_grad()
            loss_fn(model(features[batch]).squeeze(1), target[batch]).backward()
            optimizer.step()
    return model


def run(metric: str = "f1", seed: int = 0, epochs: int = 40) -> dict:
    """The whole demo; returns the held-out F1 of each loss so tests can check it ran."""
    import torch

    import metricc

    from .cli import format_gradient, gradient_report

    print(f"== 1. compile the library metric {metric!r}")
    loss = metricc.loss(metric, from_logits=True, approximation="identity")
    print(f"   {type(loss).__name__}: loss = 1 - {sympy.sstr(gradient_report(metric)['metric'])}")
    print("\n== 2. its derived gradient")
    print("   " + format_gradient(gradient_report(metric), "text").replace("\n", "\n   "))
    print("\n== 3. train a small MLP on built-in imbalanced data (10% positives)")
    train_x, train_y = imbalanced_data(4000, 0.1, seed)
    test_x, test_y = imbalanced_data(4000, 0.1, seed + 1)
    bce = torch.nn.BCEWithLogitsLoss()
    results = {}
    for label, loss_fn in (("BCE", bce), (f"{metric} loss", loss), (f"BCE + {metric} loss", lambda z, y: bce(z, y) + loss(z, y))):
        model = train(loss_fn, train_x, train_y, seed, epochs)
        with torch.no_grad():
            results[label] = hard_f1(model(test_x).squeeze(1), test_y)
        print(f"   {label:<18} held-out F1 at threshold 0.5: {results[label]:.3f}")
    print("\nNext: `metricc compile f1 -o f1_loss.py`, `metricc list`, `metricc grad mcc --format latex`.")
    return results
