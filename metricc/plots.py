"""`metricc explain --plot`: the loss and the gradient weight of one sample added to a batch, against that
sample's prediction p, for either form. matplotlib is imported only to draw."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from .numeric import aggregate_values, cell_gradient, evaluate
from .errors import OptionError
from .explanation import Explanation
from .language import COUNTS

#: The rest of the batch when none is given: a confusion matrix with some of every kind of error.
DEFAULT_COUNTS = (20.0, 10.0, 10.0, 60.0)
DEFAULT_MATRIX = ((20.0, 5.0, 2.0), (5.0, 20.0, 5.0), (2.0, 5.0, 20.0))
#: Each form's rest of the batch, by kind.
DEFAULT_BATCH = {"counts": DEFAULT_COUNTS, "matrix": DEFAULT_MATRIX}


def _as_loss(explanation: Explanation, metric, derivative=False):
    """The loss a compiled module returns, 1 - metric for a metric to maximise, or (derivative) its derivative."""
    if explanation.direction != "maximize":
        return metric
    return -metric if derivative else 1.0 - metric


def weight_curves(explanation: Explanation, counts: Sequence[float], points: int = 201) -> Dict[str, np.ndarray]:
    """Add one sample with soft prediction a = p (approximation='identity') to the counts of the rest of the batch:
    the loss and its gradient d loss / d p, for a positive and for a negative sample, at each p in [0, 1]."""
    p = np.linspace(0.0, 1.0, points)
    tp, fp, fn, tn = (np.full_like(p, float(c)) for c in counts)
    parameters = {q.symbol: np.float64(q.default) for q in explanation.parameters}
    derivation = explanation.derivation
    curves = {"p": p}
    for kind, weight, shifted in (
        ("positive", explanation.per_sample[0], (tp + p, fp, fn + 1 - p, tn)),
        ("negative", explanation.per_sample[1], (tp, fp + p, fn, tn + 1 - p)),
    ):
        values = dict(zip(COUNTS, shifted))
        values.update(parameters)
        curves[f"loss_{kind}"] = np.broadcast_to(_as_loss(explanation, evaluate(derivation.value, values)), p.shape)
        curves[f"weight_{kind}"] = np.broadcast_to(_as_loss(explanation, evaluate(weight, values), derivative=True), p.shape)
    return curves


def matrix_weight_curves(explanation: Explanation, matrix: Sequence[Sequence[float]], points: int = 201) -> Dict[str, np.ndarray]:
    """Add one sample of true class 0 to the rest of the batch's confusion matrix, predicting class 0 with
    probability p and a wrong class with 1 - p (the next class, "near", and the last, "far": they differ for a
    weighted kappa): the loss and d loss / d p = G[0, 0] - G[0, wrong], at each p in [0, 1]."""
    rest = np.asarray(matrix, dtype=np.float64)
    classes = rest.shape[0]
    p = np.linspace(0.0, 1.0, points)
    parameters = {q.symbol: np.float64(q.default) for q in explanation.parameters}
    derivation = explanation.derivation
    curves = {"p": p}
    for kind, wrong in (("near", 1), ("far", classes - 1)):
        matrices = np.repeat(rest[None], points, axis=0)
        matrices[:, 0, 0] += p
        matrices[:, 0, wrong] += 1.0 - p
        values = {**aggregate_values(derivation, matrices), **parameters}
        gradient = cell_gradient(derivation, matrices, values)
        curves[f"loss_{kind}"] = np.broadcast_to(_as_loss(explanation, evaluate(derivation.value, values)), p.shape)
        curves[f"weight_{kind}"] = _as_loss(explanation, gradient[:, 0, 0] - gradient[:, 0, wrong], derivative=True)
    return curves


def _count_plot(explanation: Explanation, counts):
    """The curves of a four-count metric, their (kind, line style, legend), the x label and the title."""
    tp, fp, fn, tn = counts
    styles = (("positive", "-", "positive sample (y = 1)"), ("negative", "--", "negative sample (y = 0)"))
    title = f"{explanation.label}: one sample added to TP={tp:g}, FP={fp:g}, FN={fn:g}, TN={tn:g} (a = p)"
    return weight_curves(explanation, counts), styles, "prediction p of the added sample", title


def _matrix_plot(explanation: Explanation, matrix):
    """The curves of a matrix metric (one wrong class only, with two classes), styles, x label and title."""
    classes = len(matrix)
    styles = (("near", "-", "1 - p on class 1"), ("far", "--", f"1 - p on class {classes - 1}"))[: 1 if classes == 2 else 2]
    rows = "; ".join(", ".join(f"{value:g}" for value in row) for row in matrix)
    title = f"{explanation.label}: one sample of class 0 added to M = [{rows}]"
    return matrix_weight_curves(explanation, matrix), styles, "probability p that the added sample of class 0 puts on class 0", title


#: Each form's plot, by kind.
_PLOTS = {"counts": _count_plot, "matrix": _matrix_plot}


def plot_weights(explanation: Explanation, batch, path: str) -> Path:
    """Draw the curves into a PNG file (needs matplotlib: pip install 'metricc[plot]'); batch: TP, FP, FN, TN for
    a four-count metric, the rest of the batch's C x C matrix for a matrix metric."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise OptionError("--plot needs matplotlib, which is not installed: pip install 'metricc[plot]'") from None
    loss = {"maximize": f"1 - {explanation.label}", "minimize": explanation.label}.get(explanation.direction, explanation.label)
    curves, styles, added, title = _PLOTS[explanation.kind](explanation, batch)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for kind, style, label in styles:
        left.plot(curves["p"], curves[f"loss_{kind}"], style, label=label)
        right.plot(curves["p"], curves[f"weight_{kind}"], style, label=label)
    left.set(xlabel=added, ylabel=f"loss = {loss}", title="loss")
    right.set(xlabel=added, ylabel="d loss / d p", title="per-sample gradient weight")
    right.axhline(0.0, color="grey", linewidth=0.5)
    for axis in (left, right):
        axis.legend()
    figure.suptitle(title)
    output = Path(path)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output
