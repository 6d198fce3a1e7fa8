"""ConstrainedLoss: one rate trained under bounds on others ("recall at precision >= 0.9"), as a Lagrangian.

The loss is objective + sum_k lambda_k * violation_k, each violation the constraint's soft rate against its bound
(bound - rate for >=, rate - bound for <=). Every rate is a compiled loss module of the same options, so each
constraint's gradient is its symbolic closed form, as the objective's is. The multipliers lambda_k are a buffer:
after each training forward they take one step of projected dual ascent, lambda_k <- max(0, lambda_k + step *
violation_k), the violation measured on the hard rates (a proxy-Lagrangian, after Cotter et al. 2019: the
multipliers see the rates that are judged, the model the soft ones it can differentiate). docs/constraints.md
explains the method and its limits.
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

#: Options that only the objective takes: a constraint's rate is a rate, neither maximised nor compounded with CE.
_OBJECTIVE_ONLY = ("direction", "ce_weight")
#: Options of the approximation, which the hard rates (0/1 predictions counted as they are) do without.
_SOFT_ONLY = ("from_logits", "approximation", "steepness", "threshold", "width")


def violation(rate: Tensor, comparison: str, bound: float) -> Tensor:
    """How far a rate is from meeting `rate comparison bound`: positive where violated, negative where slack."""
    return bound - rate if comparison == ">=" else rate - bound


def ascended(multipliers: Tensor, violations: Tensor, step: float) -> Tensor:
    """One step of projected dual ascent: each multiplier moves by step times its violation, and stops at 0."""
    return torch.clamp(multipliers + step * violations, min=0.0)


def hard_predictions(preds: Tensor, from_logits: bool, threshold: float) -> Tensor:
    """The 0/1 predictions the hard rates count: probability > threshold (the approximation's tau), on logits
    logit > log(tau / (1 - tau)), which is the same cut without rounding the sigmoid."""
    cut = math.log(threshold / (1.0 - threshold)) if from_logits else threshold
    return (preds.detach() > cut).to(torch.float32)


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


def checked_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """The objective's options, validated, where the constraints can be trained under them; else OptionError."""
    from .arguments import make_options

    chosen = make_options(**options)
    if chosen.task == "multiclass":
        raise OptionError(
            "training under constraints is not built yet for task='multiclass' (its rates are of arg-max predictions, "
            "which have no threshold): train a two-class problem with task='binary', one-vs-rest labels with "
            "task='multilabel', or train the multi-class loss without constraints"
        )
    if chosen.average == "none":
        raise OptionError(
            "average='none' gives one loss per class, and the constraints one rate per class: a Lagrangian needs one "
            "number per constraint; choose 'micro', 'macro', 'weighted' or 'samples'"
        )
    return options


class ConstrainedLoss(torch.nn.Module):
    """objective(preds, target) + sum_k lambda_k * violation_k(soft rates), the multipliers lambda_k >= 0 moved by
    projected dual ascent on the hard rates after each training forward (none in eval mode).

    metric: the objective, a library name or a formula; constraints: texts such as "precision >= 0.9" or
    "FP / (FP + TN) <= 0.01" (docs/constraints.md); multiplier_step: the dual step size. Keyword arguments are
    metricc.loss's options, which every rate shares (from_logits, task, average, count_momentum, sync, ...), and
    the objective's parameters; a constraint's parameters are written in it (`fbeta(beta=2) >= 0.5`). The hard
    rates pool their counts as the soft ones do: over ranks with sync='ddp', with running counts with
    count_momentum, else this batch's.
    """

    def __init__(self, metric: str, /, constraints: Sequence[str], *, multiplier_step: float = MULTIPLIER_STEP,
                 name: Optional[str] = None, **arguments: Any):
        super().__init__()
        from .arguments import checked_parameters, split_arguments
        from .recipe import loss_class

        bounds = parsed(constraints)
        self.multiplier_step = checked_step(multiplier_step)
        options, parameters = split_arguments(arguments)
        options = checked_options(options)
        objective_class = loss_class(metric, name, options)
        self.objective = objective_class(**checked_parameters(objective_class.metric_name, objective_class.metric_parameters, parameters))
        rate_options = {key: value for key, value in options.items() if key not in _OBJECTIVE_ONLY}
        rate_options.update(direction="minimize", validate_args=False)  # the loss of a minimised metric is the metric
        hard_options = {key: value for key, value in rate_options.items() if key not in _SOFT_ONLY}
        hard_options.update(approximation="identity")  # counts of 0/1 predictions are the hard counts
        self.soft_rates = torch.nn.ModuleList(loss_class(bound.metric_text, None, rate_options)() for bound in bounds)
        self.hard_rates = torch.nn.ModuleList(loss_class(bound.metric_text, None, hard_options)() for bound in bounds)
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
        """One step of dual ascent on the hard rates of this step's (pooled) counts."""
        hard = hard_predictions(preds, self.objective.from_logits, self.objective.threshold)
        rates = torch.stack([rate(hard, target).to(torch.float64).reshape(()) for rate in self.hard_rates])
        violations = torch.stack([violation(r, c, b) for r, c, b in zip(rates, self.comparisons, self.bounds)])
        multipliers = self.lagrange_multipliers
        self.lagrange_multipliers = ascended(multipliers, violations.to(multipliers.device, multipliers.dtype), self.multiplier_step)
        self._latest_rates = rates

    # what it holds

    @property
    def multipliers(self) -> Dict[str, float]:
        """{constraint text: its multiplier lambda >= 0}: 0 while the constraint has held, growing while it is violated."""
        return dict(zip(self.constraint_texts, self.lagrange_multipliers.tolist()))

    @property
    def rates(self) -> Optional[Dict[str, float]]:
        """{constraint text: its metric's hard value} as the multipliers last saw it (None before a training step)."""
        if self._latest_rates is None:
            return None
        return dict(zip(self.constraint_texts, self._latest_rates.tolist()))

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
