"""`metricc demo`: compile a library metric, show its gradient, train a small model on built-in imbalanced data,
and compare BCE with the compiled losses at threshold 0.5 and at the threshold tuned on a validation split."""

from __future__ import annotations

import sympy

POSITIVE_RATE = 0.03


def imbalanced_data(samples: int, positive_rate: float, seed: int):
    """Two overlapping Gaussian classes in 10 dimensions, a minority of positives; generated, never downloaded."""
    import torch

    direction = torch.randn(10, generator=torch.Generator().manual_seed(12345))
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(samples, generator=generator) < positive_rate).float()
    features = torch.randn(samples, 10, generator=generator) + 2.0 * target[:, None] * direction / direction.norm()
    return features, target


def train(loss_fn, features, target, seed: int, epochs: int = 40, validation=None):
    """Adam on mini-batches; a LearnedLoss also sees the validation split after every epoch, to learn its weights."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(target)).split(256):
            optimizer.zero_grad()
            loss_fn(model(features[batch]).squeeze(1), target[batch]).backward()
            optimizer.step()
        if hasattr(loss_fn, "validate"):
            with torch.no_grad():
                loss_fn.validate(model(validation[0]).squeeze(1), validation[1])
    return model


def scores_of(metric: str, model, validation, test) -> dict:
    """Test metric at 0.5 and at the threshold best on validation, and the validation metric there."""
    import torch

    import metricc

    with torch.no_grad():
        val_logits, test_logits = (model(x).squeeze(1) for x, _ in (validation, test))
    tuned = metricc.threshold_curve(metric, val_logits, validation[1], from_logits=True)
    on_test = metricc.threshold_curve(metric, test_logits, test[1], from_logits=True)  # exact at any threshold
    return {
        "at 0.5": on_test.value_at(0.0),
        "tuned": on_test.value_at(tuned.best_threshold),
        "threshold": float(torch.sigmoid(torch.tensor(tuned.best_threshold))),
        "validation": tuned.best_value,
    }


def summary(metric: str, results: dict, higher_is_better: bool) -> str:
    """One sentence read off the numbers: what tuning did to BCE, what wins at 0.5, what validation picks."""
    best = max if higher_is_better else min
    at_half = best(results, key=lambda label: results[label]["at 0.5"])
    picked = best(results, key=lambda label: results[label]["validation"])
    bce = results["BCE"]
    return (
        f"Read it as: tuning the threshold on validation data moved BCE from {bce['at 0.5']:.3f} to {bce['tuned']:.3f}, "
        f"so compare losses at their tuned thresholds, not at 0.5 (where {at_half} leads); "
        f"picked by validation {metric}, {picked} at its tuned threshold scores {results[picked]['tuned']:.3f} on the test split."
    )


def run(metric: str = "f1", seed: int = 0, epochs: int = 40) -> dict:
    """The whole demo; returns each loss's test scores (at 0.5, tuned) so tests can check it ran."""
    import torch

    import metricc

    from .explanation import gradient_report

    print(f"== 1. compile the library metric {metric!r}")
    loss = metricc.loss(metric, from_logits=True)
    report = gradient_report(metric)
    better = "1 - " if loss.maximize else ""
    print(f"   {type(loss).__name__}: loss = {better}{sympy.sstr(report.derivation.value)}")
    print("\n== 2. its derived gradient")
    print("   " + report.format("text").replace("\n", "\n   "))
    print(f"\n== 3. train a small MLP on built-in imbalanced data ({POSITIVE_RATE:.0%} positives): 4000 rows each to train,")
    print("      to choose the threshold (validation) and to test")
    train_set, validation, test = (imbalanced_data(4000, POSITIVE_RATE, seed + offset) for offset in (0, 1, 2))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread, and steadily on a shared CPU
    try:
        results = _compare(metric, loss, train_set, validation, test, seed, epochs)
    finally:
        torch.set_num_threads(threads)
    print("\n" + summary(metric, results, loss.maximize))
    print("\nNext: `metricc threshold f1 scores.csv` (the best threshold of your own scores), `metricc compile f1 -o f1_loss.py`,")
    print("`metricc list`, and examples/selection.py (choosing the loss and the threshold by validation).")
    return results


def _compare(metric: str, loss, train_set, validation, test, seed: int, epochs: int) -> dict:
    """Train with BCE, the metric loss, their sum and a LearnedLoss; print and return each one's scores."""
    import torch

    import metricc

    bce = torch.nn.BCEWithLogitsLoss()
    compound = metricc.loss(metric, from_logits=True, ce_weight=1.0)
    learned = metricc.LearnedLoss(metric, from_logits=True)
    results = {}
    print(f"   {'':<20} test {metric} at 0.5   at the tuned threshold (p >)")
    for label, loss_fn in (("BCE", bce), (f"{metric} loss", loss), (f"BCE + {metric} loss", compound), ("LearnedLoss", learned)):
        model = train(loss_fn, *train_set, seed, epochs, validation)
        results[label] = scores_of(metric, model, validation, test)
        found = results[label]
        print(f"   {label:<20} {found['at 0.5']:>15.3f}   {found['tuned']:>8.3f} ({found['threshold']:.2f})")
    weights = ", ".join(f"{weight:.2f} {name}" for name, weight in learned.weights.items() if weight > 0.005)
    print(f"   LearnedLoss ended on {weights} (docs/learned.md)")
    return results
