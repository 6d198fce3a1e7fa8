"""The decision threshold: a metric's hard value at every distinct threshold, from one sort and cumulative sums.

A compiled loss trains the scores; predictions still need a threshold. For N scores there are at most N + 1
different predictions "positive iff score > t", one per gap between adjacent distinct scores (and the two
ends). Sorting the scores once and summing the targets cumulatively gives TP and FP at every cut; FN = P - TP
and TN = N - FP. The metric is then evaluated once, on the vectors of counts, by the compiled module's
`metric_of_counts`: the same guarded formula the loss uses.

Constraints (`precision >= 0.9`) are metrics too: each one's compiled formula is evaluated on the same counts, a
cut is feasible where every constraint holds (within language.CONSTRAINT_TOLERANCE), and the best cut is the best
feasible one; where none is, InfeasibleConstraintError names each constraint and the best value it reaches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .errors import InfeasibleConstraintError, OptionError, ThresholdError
from .language import Constraint
from .runtime.inputs import canonical_layout
from .runtime.options import OPTION_NAMES

_OWN_OPTIONS = ("task", "from_logits")
#: The loss options that change the formula metric_of_counts evaluates: its guard and its direction.
_FORMULA_OPTIONS = ("eps", "direction")


@dataclass(frozen=True)
class ThresholdCurve:
    """A metric at every distinct threshold of one set of scores; predict positive for `scores > threshold`."""

    metric: str
    thresholds: Tensor  # ascending, in the scores' dtype and on their device
    values: Tensor  # float64, values[i] is the metric of the prediction scores > thresholds[i]
    scores: Tensor  # the distinct scores, ascending: thresholds[i] lies in [scores[i-1], scores[i])
    best_index: int
    direction: str  # "maximize" or "minimize"
    from_logits: bool = False
    constraints: Tuple[Constraint, ...] = ()
    constraint_values: Tuple[Tensor, ...] = ()  # float64, one per constraint: its metric at every cut
    feasible: Optional[Tensor] = None  # bool, feasible[i]: every constraint holds at cut i (all True without constraints)

    @property
    def best_threshold(self) -> float:
        """The threshold of the best value, in the middle of its gap between adjacent distinct scores."""
        return float(self.thresholds[self.best_index])

    @property
    def best_value(self) -> float:
        return float(self.values[self.best_index])

    @property
    def best_constraint_values(self) -> Dict[str, float]:
        """Each constraint (as text) -> its metric's value at the best threshold."""
        return {str(c): float(v[self.best_index]) for c, v in zip(self.constraints, self.constraint_values)}

    def value_at(self, threshold: float) -> float:
        """The metric of the prediction `scores > threshold`, for any threshold (0.5 or a logit of 0, say)."""
        return float(self.values[self._cut_at(threshold, "value_at")])

    def constraint_values_at(self, threshold: float) -> Dict[str, float]:
        """Each constraint (as text) -> its metric's value for the prediction `scores > threshold`."""
        cut = self._cut_at(threshold, "constraint_values_at")
        return {str(c): float(v[cut]) for c, v in zip(self.constraints, self.constraint_values)}

    def _cut_at(self, threshold: float, caller: str) -> int:
        if threshold != threshold:
            raise ThresholdError(f"{caller}(nan): the threshold must be a number")
        return int(torch.searchsorted(self.scores, rounded_down(threshold, self.scores), right=True))

    def plot(self, path, label: Optional[str] = None):
        """Draw the curve with its best threshold marked and save it as an image (needs matplotlib)."""
        return plot_curves([self], path, [label or self.metric])


class ThresholdCurves(tuple):
    """One ThresholdCurve per label of a multi-label input, in label order."""

    @property
    def best_thresholds(self) -> Tensor:
        """One threshold per label: predict `scores > best_thresholds` on (N, labels) scores."""
        return torch.tensor([curve.best_threshold for curve in self], dtype=self[0].thresholds.dtype, device=self[0].thresholds.device)

    @property
    def best_values(self) -> List[float]:
        return [curve.best_value for curve in self]

    def plot(self, path):
        """Every label's curve in one figure (needs matplotlib)."""
        return plot_curves(list(self), path, [f"label {i}" for i in range(len(self))])


def threshold_curve(metric: str, scores, target, /, constraints=(), **options):
    """The hard metric at every distinct threshold; see `metricc.threshold_curve`."""
    task = options.get("task", "binary")
    from_logits = options.get("from_logits", False)
    if task not in ("binary", "multilabel"):
        raise OptionError(f"task={task!r}: threshold_curve takes task='binary' or 'multilabel' (a threshold decides between two classes)")
    if not isinstance(from_logits, bool):
        raise OptionError(f"from_logits={from_logits!r} must be True or False")
    unused = sorted(set(options) & set(OPTION_NAMES) - set(_OWN_OPTIONS) - set(_FORMULA_OPTIONS))
    if unused:
        raise OptionError(
            f"threshold_curve counts hard predictions and evaluates the formula at each cut: {', '.join(unused)} "
            f"{'does' if len(unused) == 1 else 'do'} not apply there (it takes task, from_logits, {', '.join(_FORMULA_OPTIONS)} and "
            "the metric's parameters; drop ignored positions from scores and target before the call)"
        )
    bounds = parsed_constraints(constraints)
    arguments = tuple(sorted((k, v) for k, v in options.items() if k not in _OWN_OPTIONS))  # other options, parameters
    loss = _compiled_loss(metric, arguments) if _hashable(arguments) else _compiled_loss.__wrapped__(metric, arguments)
    judges = tuple((bound, _compiled_loss(bound.metric_text, _CONSTRAINT_OPTIONS)) for bound in bounds)
    direction = "maximize" if loss.maximize else "minimize"
    scores, target = _checked_inputs(scores, target, task, from_logits)
    if task == "binary":
        return _curve(loss, metric, direction, scores.reshape(-1), target.reshape(-1), from_logits, "", judges)
    return ThresholdCurves(
        _curve(loss, metric, direction, scores[:, label], target[:, label], from_logits, f" of label {label}", judges)
        for label in range(scores.shape[1])
    )


#: A constraint's metric is only evaluated, never trained: its direction is not asked for (PP / TOTAL has none).
_CONSTRAINT_OPTIONS = (("direction", "maximize"),)


def parsed_constraints(constraints) -> Tuple[Constraint, ...]:
    """Texts such as "precision >= 0.9" (one text, or a list; a parsed Constraint passes) as Constraints."""
    from .library import default_library
    from .parse import parse_constraint

    if isinstance(constraints, (str, Constraint)):
        constraints = (constraints,)
    try:
        given = tuple(constraints)
    except TypeError:
        raise OptionError(f"constraints={constraints!r}: give a list of texts such as ['precision >= 0.9']") from None
    parsed = []
    for constraint in given:
        if isinstance(constraint, Constraint):
            parsed.append(constraint)
        elif isinstance(constraint, str):
            parsed.append(parse_constraint(constraint, library=default_library()))
        else:
            raise OptionError(f"constraints: {constraint!r} is not a text; write each constraint as text, e.g. 'precision >= 0.9'")
    return tuple(parsed)


def _hashable(arguments: tuple) -> bool:
    """Whether the arguments can key the cache; a list (a bad parameter value, say) goes to metricc.loss uncached,
    which names what is wrong with it."""
    try:
        hash(arguments)
    except TypeError:
        return False
    return True


@lru_cache(maxsize=64)
def _compiled_loss(metric: str, options: Tuple[Tuple[str, object], ...]):
    """The compiled loss module of the metric, once per process for each metric and options."""
    import metricc

    return metricc.loss(metric, **dict(options))


def rounded_down(threshold: float, scores: Tensor) -> Tensor:
    """The threshold as a 1-element tensor of the scores' dtype, rounded down: the largest number t of that dtype
    at or below it, so that `scores > t` is `scores > threshold` computed exactly."""
    rounded = torch.tensor([threshold], dtype=scores.dtype)  # on the host: no device sync for the comparison
    if float(rounded) > threshold:
        rounded = torch.nextafter(rounded, torch.full_like(rounded, float("-inf")))
    return rounded.to(scores.device)


def as_tensor(values, device=None) -> Tensor:
    """A tensor or an array keeps its dtype; anything else (a list, a float) becomes float64, never the default
    float32, whose 24 bits would merge scores such as 0.30000001 and 0.30000002 into one cut."""
    if isinstance(values, Tensor) or hasattr(values, "dtype"):
        return torch.as_tensor(values, device=device)
    return torch.as_tensor(values, dtype=torch.float64, device=device)


def _checked_inputs(scores, target, task: str, from_logits: bool) -> Tuple[Tensor, Tensor]:
    """Scores as a float tensor and the target as bool, of the same shape; a ThresholdError names what is wrong."""
    scores = as_tensor(scores)
    target = as_tensor(target, device=scores.device)
    if not scores.is_floating_point():
        scores = scores.double()
    if scores.shape != target.shape:
        raise ThresholdError(f"scores of shape {list(scores.shape)} and target of shape {list(target.shape)} differ: give one target per score")
    if scores.numel() == 0:
        raise ThresholdError("scores and target are empty: a threshold needs at least one score of each class")
    if task == "multilabel" and scores.dim() != 2:
        raise ThresholdError(f"task='multilabel' takes (samples, labels) scores, got shape {list(scores.shape)}")
    positive = target != 0
    off_binary = positive & (target != 1)  # NaN is neither
    low, high, bad_target = torch.stack([*torch.aminmax(scores), off_binary.any()]).double().tolist()  # one transfer
    if not (abs(low) < float("inf") and abs(high) < float("inf")):
        bad = int(torch.nonzero(~torch.isfinite(scores.reshape(-1)))[0])
        raise ThresholdError(f"scores contain {float(scores.reshape(-1)[bad])} at flat index {bad}: remove or fix non-finite scores")
    if bad_target:
        bad = int(torch.nonzero(off_binary.reshape(-1))[0])
        raise ThresholdError(f"target must contain only 0 and 1, found {float(target.reshape(-1)[bad])} at flat index {bad}")
    if not from_logits and (low < 0.0 or high > 1.0):
        outside = f"scores lie in [{low}, {high}], outside [0, 1]"
        raise ThresholdError(
            f"{outside}; pass from_logits=True for logits (thresholds are then logits)",
            cli_message=f"{outside}; pass --from-logits for logits (thresholds are then logits)",
        )
    return scores, positive


def _curve(loss, metric: str, direction: str, scores: Tensor, positive: Tensor, from_logits: bool, where: str, judges=()) -> ThresholdCurve:
    """The curve of one set of 1-D scores: counts at every cut, the metric and each constraint's metric on them,
    the best feasible cut.

    Ascending order: the cut after the j-th group of tied scores predicts that group and every lower score
    negative, so FN and TN are cumulative sums there, and TP = P - FN, FP = N - TN. The first cut predicts
    everything positive.
    """
    sorted_scores, order = sort_ascending(scores)
    positives_below = torch.cumsum(positive[order], 0, dtype=torch.float64)  # positives at or below each position
    total_positives, total = float(positives_below[-1]), len(positive)
    if total_positives in (0.0, float(total)):
        only = "positive" if total_positives else "negative"
        raise ThresholdError(f"every target{where} is {only}: a threshold needs both classes (here any cut predicts one class perfectly or not at all)")
    last_of_group = torch.ones_like(sorted_scores, dtype=torch.bool)
    torch.ne(sorted_scores[:-1], sorted_scores[1:], out=last_of_group[:-1])
    ends = torch.nonzero(last_of_group).squeeze(1)
    # one allocation for the four count vectors: on a small CPU, page faults of fresh buffers cost more than the arithmetic
    counts = torch.zeros(4, len(ends) + 1, dtype=torch.float64, device=ends.device)
    tp, fp, fn, tn = counts.unbind(0)
    torch.index_select(positives_below, 0, ends, out=fn[1:])
    tn[1:].copy_(ends).add_(1.0).sub_(fn[1:])
    torch.sub(total_positives, fn, out=tp)
    torch.sub(total - total_positives, tn, out=fp)
    values = loss.metric_of_counts(tp, fp, fn, tn)
    _check_finite(values, tp, fp, fn, tn, metric, where)
    distinct = sorted_scores[ends]
    bounds = tuple(bound for bound, _ in judges)
    bound_values = tuple(judge.metric_of_counts(tp, fp, fn, tn) for _, judge in judges)
    feasible = torch.ones_like(values, dtype=torch.bool)
    for bound, bound_value in zip(bounds, bound_values):
        _check_finite(bound_value, tp, fp, fn, tn, f"the constraint {bound}", where)
        feasible &= bound.holds(bound_value)
    eligible = values if not bounds else torch.where(feasible, values, float("-inf") if direction == "maximize" else float("inf"))
    curve = ThresholdCurve(metric, cut_thresholds(distinct), values, distinct, _best_index(eligible, direction), direction, from_logits, bounds, bound_values, feasible)
    if bounds and not bool(feasible[curve.best_index]):
        raise _infeasible(curve, where)
    return curve


def _best_index(values: Tensor, direction: str) -> int:
    """The cut of the best value (the first among ties: the lowest threshold)."""
    return int(torch.argmax(values) if direction == "maximize" else torch.argmin(values))


def _infeasible(curve: ThresholdCurve, where: str) -> InfeasibleConstraintError:
    """No cut meets every constraint: say how near each one comes on this data, alone."""
    reached = {str(c): c.best_reached(v) for c, v in zip(curve.constraints, curve.constraint_values)}
    alone = [bool(c.holds(v).any()) for c, v in zip(curve.constraints, curve.constraint_values)]
    parts = [
        f"{text} {'holds at some cuts' if met else 'is never met'} (its best here: {value:.6g})"
        for (text, value), met in zip(reached.items(), alone)
    ]
    together = " but no cut meets them all at once" if all(alone) else ""
    curve = dataclasses.replace(curve, best_index=_best_index(curve.values, curve.direction))
    return InfeasibleConstraintError(
        f"no threshold meets the constraints on these scores{where}: {'; '.join(parts)}{together}; "
        f"loosen a bound, or train the scores for it",
        curve,
        reached,
    )


def sort_ascending(scores: Tensor) -> Tuple[Tensor, Tensor]:
    """torch.sort of 1-D scores; float32 goes through order-preserving int32 keys, which torch sorts about
    three times faster on a CPU (a radix sort)."""
    if scores.dtype != torch.float32:
        return torch.sort(scores)
    bits = (scores + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0
    keys = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # negative floats: larger magnitude, smaller key
    _, order = torch.sort(keys)
    return scores[order], order


def cut_thresholds(distinct: Tensor) -> Tensor:
    """For ascending distinct scores, the threshold of each cut: the next representable number below the
    smallest (everything positive), the middle of each gap, and the largest score (nothing positive).

    Midpoints are taken in the scores' dtype and fall back to the lower score where the middle rounds up onto
    the higher one, so that `scores > threshold` reproduces the cut exactly in that dtype.
    """
    lower, higher = distinct[:-1], distinct[1:]
    middle = lower / 2 + higher / 2
    middle = torch.where((middle >= lower) & (middle < higher), middle, lower)
    below = torch.nextafter(distinct[:1], distinct.new_full((1,), float("-inf")))
    return torch.cat([below, middle, distinct[-1:]])


def _check_finite(values: Tensor, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, metric: str, where: str) -> None:
    """A non-finite metric at some cut would make the best threshold meaningless: name the first such cut."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        counts = ", ".join(f"{name}={float(c[i]):g}" for name, c in (("TP", tp), ("FP", fp), ("FN", fn), ("TN", tn)))
        raise ThresholdError(f"{metric!r}{where} is {float(values[i])} at the cut with {counts}; choose a metric that is finite at every count")


def plot_curves(curves: Sequence[ThresholdCurve], path, labels: Sequence[str]):
    """Metric against threshold, one line per curve, each best threshold marked; returns the path."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib (or metricc[plot])") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6))
    for curve, label in zip(curves, labels):
        thresholds, values = curve.thresholds.double().cpu().numpy(), curve.values.cpu().numpy()
        line = axis.plot(thresholds, values, drawstyle="steps-post", linewidth=1.2, label=f"{label}: best {curve.best_value:.4g} at {curve.best_threshold:.4g}")
        axis.axvline(curve.best_threshold, color=line[0].get_color(), linestyle=":", linewidth=1)
    axis.set_xlabel("threshold (logit)" if curves[0].from_logits else "threshold")
    axis.set_ylabel(curves[0].metric)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


#: How many cuts at quantiles of the scores `best_hard_metric` tries where no single curve gives the metric exactly
#: (besides the best cut of the pooled curve); each costs one evaluation of the metric on the whole validation set.
QUANTILE_CUTS = 16


def best_hard_metric(scorer, preds: Tensor, target: Tensor) -> Tuple[float, object]:
    """The hard metric of a compiled loss's options at the threshold best for it on these scores, and that threshold.

    scorer: a compiled loss with approximation='identity' and from_logits=False, so that its `metric` of 0/1
    predictions is the hard metric, averaged as configured. The threshold is exact where one curve holds the metric
    (every score pooled: binary, multi-label micro) and per label where each label's metric is scored alone
    (multi-label macro, weighted: a list, one per label; a label with one class in the target takes the cut that
    predicts it perfectly, none or all); otherwise (samplewise, average='samples') it is the best
    of the pooled curve's best cut and QUANTILE_CUTS cuts at quantiles of the scores. Thresholds are on the scale of preds (logits or probabilities).
    """
    direction = "maximize" if scorer.maximize else "minimize"
    scores, positive, mask, _ = canonical_layout(preds, target, scorer.task, scorer.ignore_index)
    pooled = scorer.multidim_average == "global" and (scorer.task == "binary" or scorer.average == "micro")
    per_label = scorer.multidim_average == "global" and scorer.task == "multilabel" and scorer.average in ("macro", "weighted")

    def kept(values: Tensor, label: Optional[int] = None) -> Tensor:
        """The scored positions of values (of one label, if given), flattened."""
        keep = None if mask is None else (mask if label is None else mask[:, label]).reshape(-1) > 0
        values = (values if label is None else values[:, label]).reshape(-1)
        return values if keep is None else values[keep]

    def hard_value(threshold) -> float:
        cut = torch.as_tensor(threshold, dtype=torch.float64, device=preds.device)
        if cut.dim() == 1:
            cut = cut.reshape([1, -1] + [1] * (preds.dim() - 2))
        return float(scorer.metric((preds > cut).to(torch.float32), target).mean())

    if pooled:
        curve = _curve(scorer, scorer.metric_name, direction, kept(scores), kept(positive) > 0, False, "")
        return curve.best_value, curve.best_threshold
    if per_label:
        thresholds = []
        for label in range(scores.shape[1]):
            label_scores, label_positive = kept(scores, label), kept(positive, label) > 0
            if len(label_scores) == 0 or not bool(label_positive.any()):  # no positives: predicting none is right
                thresholds.append(float(label_scores.max()) if len(label_scores) else 0.0)
                continue
            if bool(label_positive.all()):  # every one positive: predicting all is right
                thresholds.append(float(torch.nextafter(label_scores.min(), label_scores.new_tensor(float("-inf")))))
                continue
            curve = _curve(scorer, scorer.metric_name, direction, label_scores, label_positive, False, f" of label {label}")
            thresholds.append(curve.best_threshold)
        return hard_value(thresholds), thresholds
    cuts = cut_thresholds(torch.unique(kept(scores).double()))
    if len(cuts) > QUANTILE_CUTS:
        quantiles = torch.quantile(cuts, torch.linspace(0, 1, QUANTILE_CUTS, dtype=torch.float64, device=cuts.device))
        positive_kept = kept(positive) > 0
        if bool(positive_kept.any()) and not bool(positive_kept.all()):
            pooled_best = _curve(scorer, scorer.metric_name, direction, kept(scores), positive_kept, False, "").best_threshold
            quantiles = torch.cat([quantiles, quantiles.new_tensor([pooled_best])])
        cuts = torch.sort(quantiles).values
    values = [hard_value(float(cut)) for cut in cuts]
    best = max(range(len(values)), key=lambda i: values[i] if direction == "maximize" else -values[i])
    return values[best], float(cuts[best])
