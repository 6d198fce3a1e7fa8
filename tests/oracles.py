"""The hand-written references metricc is checked against, one copy each: plain torch ops that autograd
differentiates end to end (in float64 in the tests), and label arrays for sklearn. benchmarks/run.py times
naive_anyloss as its naive contender, so the loss the tests trust is the one the benchmark measures."""

import numpy as np
import sympy
import torch

from metricc.compiler import resolve
from metricc.language import MATRIX_SYMBOLS
from metricc.runtime.inputs import canonical_layout, count_dims


def labels_with_counts(tp, fp, fn, tn):
    """sklearn's (y_true, y_pred) integer label arrays whose confusion matrix is exactly (tp, fp, fn, tn)."""
    y_true = np.array([1] * tp + [0] * fp + [1] * fn + [0] * tn)
    y_pred = np.array([1] * tp + [1] * fp + [0] * fn + [0] * tn)
    return y_true, y_pred


def batch_with_counts(tp, fp, fn, tn):
    """Hard 0/1 (preds, target) in float64, the loss's argument order, whose confusion matrix is (tp, fp, fn, tn)."""
    y_true, y_pred = labels_with_counts(tp, fp, fn, tn)
    return torch.tensor(y_pred, dtype=torch.float64), torch.tensor(y_true, dtype=torch.float64)


def anyloss_approximation(probs, steepness=73.0, threshold=0.5):
    """The AnyLoss paper's soft prediction A(p) = 1 / (1 + exp(-L (p - threshold))), as the paper writes it."""
    return 1 / (1 + torch.exp(-steepness * (probs - threshold)))


def plain_soft_counts(a, target, dims=None, keepdim=False, mask=None):
    """TP, FP, FN, TN as four plain sums of the soft prediction a against the target (kept where mask is 1)."""

    def total(x):
        return (x if mask is None else x * mask).sum(dims, keepdim)

    return total(a * target), total(a * (1 - target)), total((1 - a) * target), total((1 - a) * (1 - target))


def f1(tp, fp, fn, tn):
    """F1 = 2 TP / (2 TP + FP + FN), unguarded, as a user writes it."""
    return 2 * tp / (2 * tp + fp + fn)


def mcc(tp, fp, fn, tn):
    """Matthews' correlation (TP TN - FP FN) / sqrt of the four marginals' product, unguarded."""
    return (tp * tn - fp * fn) / torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


def naive_anyloss(formula, preds, target, dims=None, steepness=73.0, threshold=0.5):
    """AnyLoss as users write it: 1 - the formula of the soft counts of A(p), averaged over what dims leave."""
    return 1 - formula(*plain_soft_counts(anyloss_approximation(preds, steepness, threshold), target, dims)).mean()


def soft_count_loss(namespace, loss, preds, target):
    """The oracle of a compiled four-count loss, autograd through everything: the four counts summed directly, the
    emitted metric_value, metricc's averaging (whose weights, like the module's, are constants for the gradient)."""
    p, y, mask, _ = canonical_layout(preds, target, loss.task, loss.ignore_index)
    if loss.from_logits:
        p = torch.softmax(p, 1) if loss.task == "multiclass" else torch.sigmoid(p)
    if not loss.include_background and loss.task != "binary":
        p, y = p[:, 1:], y[:, 1:]
        mask = mask[:, 1:] if mask is not None and mask.shape[1] > 1 else mask
    if loss.approximation == "anyloss":
        a = anyloss_approximation(p, loss.steepness, loss.threshold)
    elif loss.approximation == "identity":
        a = p
    else:
        a = torch.clamp((p - loss.threshold) / loss.width + 0.5, 0, 1)
    m = torch.ones_like(a) if mask is None else mask
    dims = count_dims(loss.task, loss.average, loss.multidim_average)
    tp, fp, fn, tn = plain_soft_counts(a, y, dims, keepdim=True, mask=m)
    value = namespace.metric_value(tp, fp, fn, tn, loss.eps)
    absent = ((tp + fn == 0) & ((p * m).sum(dims, keepdim=True) == 0)).detach()  # no target, no probability
    metric = loss._average(value, tp.detach(), fn.detach(), absent, dims)
    return 1 - metric if loss.maximize else metric


def soft_matrix_loss(name, probs, one_hot, mask, per_row, direction_sign, parameters=None):
    """The oracle of a compiled matrix loss: 1 - metric (or the metric) through a plain torch soft matrix."""
    _, derivation = resolve(name, "multiclass")
    rows = probs.shape[0] if per_row else 1
    y = (one_hot * mask).reshape(rows, -1, probs.shape[-1])
    a = probs.reshape(y.shape)
    values = []
    for row in range(rows):
        matrix = y[row].t() @ a[row]
        values.append(_evaluate_matrix_formula(derivation, matrix, parameters or {}))
    value = torch.stack(values).mean()
    return 1 - value if direction_sign < 0 else value


def matrix_aggregates_by_definition(matrix):
    """The aggregates of one C x C matrix, each written as its definition: r = row sums, c = column sums, W the
    weighting (1 - delta, |i - j| / (C - 1), (i - j)^2 / (C - 1)^2); observed = sum W M, expected = r W c."""
    classes = matrix.shape[0]
    rows, columns = matrix.sum(1), matrix.sum(0)
    index = torch.arange(classes, dtype=matrix.dtype)
    difference = index[:, None] - index[None, :]
    weights = {
        "UNWEIGHTED": (difference != 0).to(matrix.dtype),
        "LINEAR": difference.abs() / (classes - 1),
        "QUADRATIC": difference**2 / (classes - 1) ** 2,
    }
    aggregates = {
        "SUM": matrix.sum(), "TRACE": matrix.trace(), "SUM_RC": rows @ columns, "SUM_RR": rows @ rows, "SUM_CC": columns @ columns,
    }
    for kind, w in weights.items():
        aggregates[f"OBSERVED_{kind}"] = (w * matrix).sum()
        aggregates[f"EXPECTED_{kind}"] = rows @ w @ columns
    return aggregates


def _evaluate_matrix_formula(derivation, matrix, parameters):
    """The formula evaluated with torch ops on the aggregates of one matrix (no guards: batches stay away from them)."""
    aggregates = matrix_aggregates_by_definition(matrix)
    symbols = {symbol: aggregates[symbol.name] for symbol in MATRIX_SYMBOLS}
    symbols.update({p.symbol: torch.tensor(parameters.get(p.name, float(p.default)), dtype=matrix.dtype) for p in derivation.definition.parameters})
    # SymPy's own printer to torch, so the oracle shares no evaluation code with metricc
    formula = sympy.lambdify(list(symbols), derivation.value, modules="torch")
    return formula(*symbols.values())
