"""ConstrainedLoss: one rate trained under bounds on others ("recall at precision >= 0.9"), as a Lagrangian.

The loss is objective + sum_k lambda_k * violation_k, each violation the constraint's soft rate against its bound
(bound - rate for >=, rate - bound for <=). Every rate is a compiled loss module of the same options, so each
constraint's gradient is its symbolic closed form, as the objective's is. The multipliers lambda_k are a buffer:
after each training forward they take one step of projected dual ascent, lambda_k <- max(0, lambda_k + step *
violation_k), the violation measured on the hard rates (a proxy-Lagrangian, after Cotter et al. 2019: the
multipliers see the rates that are judged, the model the soft ones it can differentiate): 0/1 predictions at the
approximation's threshold for two classes, the arg-max for task='multiclass'. docs/constraints.md explains the
method, its defaults and its limits.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .errors import OptionError

#: The multipliers' step per training step unless `multiplier_step=` says otherwise: a constraint violated by 0.1
#: raises its multiplier by 0.01 a step, so that it weighs as much as the objective after about 100 steps.
MULTIPLIER_STEP = 0.1

#: A constrained loss's own defaults, for the options a user did not give: soft rates of the probabilities
#: themselves (identity), whose gradient never vanishes, and the objective compounded with 1.0 x cross-entropy.
#: With the options table's (anyloss L = 73, no cross-entropy) a model pushed to predict nothing positive has no
#: gradient left and training collapses (examples/RESULTS.md, "Constrained objectives").
CONSTRAINED_DEFAULTS = {"approximation": "identity", "ce_weight": 1.0}
#: Options that choose an approximation's shape: given one, the approximation is the user's or the options table's.
_APPROXIMATION_SHAPES = ("steepness", "width")

#: Options that only the objective takes: a constraint's rate is a rate, neither maximised nor compounded with CE.
_OBJECTIVE_ONLY = ("direction", "ce_weight")
#: Options of the approximation, which the hard rates (0/1 predictions counted as they are) do without.
_SOFT_ONLY = ("from_logits", "approximation", "steepness", "threshold", "width")
#: Options of per-class values, which a metric of the whole confusion matrix has none of: the objective's only there.
_PER_CLASS_ONLY = ("average", "class_weights", "zero_division", "include_background")


def violation(rate: Tensor, comparison: str, bound: float) -> Tensor:
    """How far a rate is from meeting `rate comparison bound`: positive where violated, negative where slack."""
    return bound - rate if comparison == ">=" else rate - bound


def ascended(multipliers: Tensor, violations: Tensor, step: float) -> Tensor:
    """One step of projected dual ascent: each multiplier moves by step times its violation, and stops at 0."""
    return torch.clamp(multipliers + step * violations, min=0.0)


#: The counts' order in a stacked count tensor (runtime.counts), for the sets that make a rate undefined.
COUNT_ORDER = ("TP", "FP", "FN", "TN")


def undefined_sets(metric_text: str, task: str) -> Tuple[Tuple[int, ...], ...]:
    """Where a constraint's rate is undefined (undefined_sets_of its derivation for this task)."""
    from .compiler import resolve

    return undefined_sets_of(resolve(metric_text, task)[1])


def undefined_sets_of(derivation: Any) -> Tuple[Tuple[int, ...], ...]:
    """Where a rate is undefined: sets of count positions (COUNT_ORDER) whose being all zero makes a denominator
    (or a log's argument) of its formula vanish, as precision's TP + FP when nothing is predicted positive. Empty
    for a matrix metric and for a denominator that is no nonnegative combination of counts."""
    from .conditions import vanishing_sets
    from .guards import guard, plain

    if derivation.form.kind == "matrix":
        return ()
    found = []
    for singularity in guard(derivation.value)[1]:
        sets = vanishing_sets(plain(singularity.expression)) if singularity.kind != "root" else None
        found += [tuple(sorted(COUNT_ORDER.index(name) for name in names)) for names in sets or ()]
    return tuple(sorted(set(found)))


def undefined_counts(counts: Sequence[Tensor], sets: Sequence[Sequence[int]]) -> Tensor:
    """Per count entry, whether some set of `sets` has all its counts zero there: the rate is 0/0 (undefined)."""
    undefined = torch.zeros_like(counts[0], dtype=torch.bool)
    for positions in sets:
        every_zero = torch.ones_like(undefined)
        for position in positions:
            every_zero = every_zero & (counts[position] == 0)
        undefined = undefined | every_zero
    return undefined


def hard_predictions(preds: Tensor, task: str, from_logits: bool, threshold: float) -> Tensor:
    """The 0/1 predictions the hard rates count. Two-class: probability > threshold (the approximation's tau), on
    logits logit > log(tau / (1 - tau)), the same cut without rounding the sigmoid. Multi-class: the one-hot of the
    arg-max over the classes (axis 1), which is the same for probabilities and logits."""
    preds = preds.detach()
    if task == "multiclass":
        return torch.nn.functional.one_hot(preds.argmax(1), preds.shape[1]).movedim(-1, 1).to(torch.float32)
    cut = math.log(threshold / (1.0 - threshold)) if from_logits else threshold
    return (preds > cut).to(torch.float32)


def hard_rate(rate: torch.nn.Module, hard: Tensor, target: Tensor, sets: Sequence[Sequence[int]]) -> Tuple[Tensor, Tensor]:
    """A constraint's metric of the hard predictions, its counts pooled as the loss pools them (over ranks, with
    the running counts in training), and whether it is defined: False where it is 0/0 (`sets`) at every scored
    class and row that is not absent, so that it says nothing about the constraint."""
    if not sets:
        value = rate(hard, target).to(torch.float64).reshape(())
        return value, torch.ones((), dtype=torch.bool, device=value.device)
    counts, _, _, _, _, leaf, mask, dims = rate._counts(hard, target)
    tp, fp, fn, tn, _ = rate._pooled(counts, dims, rate.training)
    absent = rate._absent(tp, fp, fn, leaf, mask, dims)
    value = rate._average(rate._fill_absent(rate.formula(tp, fp, fn, tn), absent), tp, fn, absent, dims)
    undefined = undefined_counts([tp, fp, fn, tn], sets)
    informative = ~undefined if absent is None else ~(undefined | absent)
    return value.to(torch.float64).reshape(()), informative.any()


def checked_step(step: Any) -> float:
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not 0.0 < step < math.inf:
        raise OptionError(
            f"multiplier_step={step!r} must be a finite number > 0: each training step moves a multiplier by it times its "
            f"constraint's violation (default {MULTIPLIER_STEP})"
        )
    return float(step)


def parsed(constraints: Any) -> Tuple[Any, ...]:
    """The constraints as language.Constraints: one text or a non-empty list of texts, each parsed by the grammar."""
    from .threshold import parsed_constraints

    if isinstance(constraints, (list, tuple)) and not constraints:
        raise OptionError(
            "constraints=[] gives nothing to train under: give at least one, such as constraints=['precision >= 0.9'], "
            "or leave constraints out for the plain loss"
        )
    if not isinstance(constraints, (str, list, tuple)):
        raise OptionError(f"constraints={constraints!r}: give a list of texts such as ['precision >= 0.9']")
    return parsed_constraints(constraints)


def for_matrix(options: Dict[str, Any]) -> Dict[str, Any]:
    """A rate's options for a metric of the whole confusion matrix: without the per-class ones (the objective's)."""
    return {key: value for key, value in options.items() if key not in _PER_CLASS_ONLY}


def with_constrained_defaults(options: Dict[str, Any]) -> Dict[str, Any]:
    """The options with CONSTRAINED_DEFAULTS for those not given: a user's value always wins, and a steepness or
    width given without an approximation keeps the options table's approximation, which it shapes."""
    defaults = dict(CONSTRAINED_DEFAULTS)
    if any(options.get(shape) is not None for shape in _APPROXIMATION_SHAPES):
        del defaults["approximation"]
    return {**defaults, **{key: value for key, value in options.items() if value is not None}}


def checked_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """The objective's options, validated, where the constraints can be trained under them; else OptionError."""
    from .arguments import make_options

    if options.get("average") == "none":
        raise OptionError(
            "average='none' gives one loss per class, and the constraints one rate per class: a Lagrangian needs one "
            "number per constraint; choose 'micro', 'macro', 'weighted' or 'samples'"
        )
    make_options(**options)
    return options


class ConstrainedLoss(torch.nn.Module):
    """objective(preds, target) + sum_k lambda_k * violation_k(soft rates), the multipliers lambda_k >= 0 moved by
    projected dual ascent on the hard rates after each training forward (none in eval mode).

    metric: the objective, a library name or a formula; constraints: texts such as "precision >= 0.9" or
    "FP / (FP + TN) <= 0.01" (docs/constraints.md); multiplier_step: the dual step size. Keyword arguments are
    metricc.loss's options, which every rate shares (from_logits, task, average, count_momentum, sync, ...), and
    the objective's parameters; a constraint's parameters are written in it (`fbeta(beta=2) >= 0.5`). The hard
    rates pool their counts as the soft ones do: over ranks with sync='ddp', with running counts with
    count_momentum, else this batch's. Unless given, approximation='identity' and ce_weight=1.0
    (CONSTRAINED_DEFAULTS, not the options table's anyloss and 0), with which training under constraints does not
    collapse; a hard rate that is 0/0 on a step (precision when nothing is predicted positive) leaves its multiplier.
    """

    def __init__(self, metric: str, /, constraints: Sequence[str], *, multiplier_step: float = MULTIPLIER_STEP,
                 name: Optional[str] = None, **arguments: Any):
        super().__init__()
        from .arguments import checked_parameters, split_arguments
        from .compiler import resolve
        from .recipe import loss_class

        bounds = parsed(constraints)
        self.multiplier_step = checked_step(multiplier_step)
        options, parameters = split_arguments(arguments)
        options = checked_options(with_constrained_defaults(options))
        objective_class = loss_class(metric, name, options)
        self.objective = objective_class(**checked_parameters(objective_class.metric_name, objective_class.metric_parameters, parameters))
        rate_options = {key: value for key, value in options.items() if key not in _OBJECTIVE_ONLY}
        rate_options.update(direction="minimize", validate_args=False)  # the loss of a minimised metric is the metric
        hard_options = {key: value for key, value in rate_options.items() if key not in _SOFT_ONLY}
        hard_options.update(approximation="identity")  # counts of 0/1 predictions are the hard counts
        task = self.objective.task
        # each rate as the task reads it: a metric of the whole confusion matrix, or of the four counts
        derivations = [resolve(bound.metric_text, task)[1] for bound in bounds]
        matrix = [derivation.form.kind == "matrix" for derivation in derivations]
        self.soft_rates = torch.nn.ModuleList(
            loss_class(bound.metric_text, None, for_matrix(rate_options) if whole else rate_options)() for bound, whole in zip(bounds, matrix)
        )
        self.hard_rates = torch.nn.ModuleList(
            loss_class(bound.metric_text, None, for_matrix(hard_options) if whole else hard_options)() for bound, whole in zip(bounds, matrix)
        )
        self.undefined_sets = tuple(undefined_sets_of(derivation) for derivation in derivations)
        self.metric_name: str = objective_class.metric_name
        self.constraint_texts: Tuple[str, ...] = tuple(str(bound) for bound in bounds)
        self.comparisons: Tuple[str, ...] = tuple(bound.comparison for bound in bounds)
        self.bounds: Tuple[float, ...] = tuple(float(bound.bound) for bound in bounds)
        self.register_buffer("lagrange_multipliers", torch.zeros(len(bounds), dtype=torch.float64))
        self._latest_rates: Optional[Tensor] = None  # the hard rates of the latest training step, for `rates`

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """The Lagrangian at the current multipliers; in training mode the multipliers then take their step."""
        total = self.objective(preds, target)
        multipliers = self.lagrange_multipliers  # replaced, never changed in place: this step's graph keeps these values
        for index, rate in enumerate(self.soft_rates):
            soft = rate(preds, target)
            total = total + multipliers[index].to(soft.dtype) * violation(soft, self.comparisons[index], self.bounds[index])
        if self.training:
            self._ascend(preds, target)
        return total

    @torch.no_grad()
    def _ascend(self, preds: Tensor, target: Tensor) -> None:
        """One step of dual ascent on the hard rates of this step's (pooled) counts; a constraint whose hard rate is
        undefined there (0/0: precision when nothing is predicted positive) keeps its multiplier."""
        objective = self.objective
        hard = hard_predictions(preds, objective.task, objective.from_logits, objective.threshold)
        measured = [hard_rate(rate, hard, target, sets) for rate, sets in zip(self.hard_rates, self.undefined_sets)]
        rates = torch.stack([value for value, _ in measured])
        defined = torch.stack([known for _, known in measured])
        violations = torch.stack([violation(r, c, b) for r, c, b in zip(rates, self.comparisons, self.bounds)])
        multipliers = self.lagrange_multipliers
        violations = torch.where(defined, violations, torch.zeros_like(violations)).to(multipliers.device, multipliers.dtype)
        self.lagrange_multipliers = ascended(multipliers, violations, self.multiplier_step)
        self._latest_rates = torch.where(defined, rates, torch.full_like(rates, math.nan))

    # what it holds

    @property
    def multipliers(self) -> Dict[str, float]:
        """{constraint text: its multiplier lambda >= 0}: 0 while the constraint has held, growing while it is violated."""
        return dict(zip(self.constraint_texts, self.lagrange_multipliers.tolist()))

    @property
    def rates(self) -> Optional[Dict[str, float]]:
        """{constraint text: its metric's hard value} as the multipliers last saw it (None before a training step); a
        value None where the rate was undefined (0/0), which left its multiplier as it was."""
        if self._latest_rates is None:
            return None
        return {text: None if math.isnan(value) else value for text, value in zip(self.constraint_texts, self._latest_rates.tolist())}

    def reset_multipliers(self) -> None:
        """Every multiplier back to 0 (and the running counts forgotten), as at construction."""
        self.lagrange_multipliers = torch.zeros_like(self.lagrange_multipliers)
        self._latest_rates = None
        for rate in [self.objective, *self.soft_rates, *self.hard_rates]:
            rate.reset_running_counts()

    def extra_repr(self) -> str:
        shown = ", ".join(f"{text!r}: {value:.4g}" for text, value in self.multipliers.items())
        return f"{self.metric_name!r}, multipliers={{{shown}}}, multiplier_step={self.multiplier_step:g}"

    # checkpoints

    def get_extra_state(self) -> Dict[str, Any]:
        """What a checkpoint must agree on to load (plain values, so it loads with weights_only=True)."""
        return {"version": 1, "objective": self.metric_name, "constraints": list(self.constraint_texts)}

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        mine = self.get_extra_state()
        different = [key for key in ("objective", "constraints") if state.get(key) != mine[key]]
        if different:
            shown = "; ".join(f"{key} {state.get(key)!r} there, {mine[key]!r} here" for key in different)
            raise OptionError(f"this checkpoint is of another ConstrainedLoss ({shown}): construct it as it was saved to load it")

    def _load_from_state_dict(
        self, state_dict: Dict[str, Any], prefix: str, local_metadata: Dict[str, Any], strict: bool,
        missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str],
    ) -> None:
        """The identity is checked before the multipliers are copied, so that a mismatch names the constraints,
        not a shape."""
        extra = state_dict.get(prefix + "_extra_state")
        if extra is not None:
            self.set_extra_state(extra)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
