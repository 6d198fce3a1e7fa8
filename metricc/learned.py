"""LearnedLoss: a non-negative combination of base losses whose weights are learned on validation data during one
training run, after Streeter's LearnLoss ("Learning Effective Loss Functions Efficiently", 2019).

At each `validate()` the rule looks at every checkpoint seen so far: the base losses' values on the training
batches that led to it, and its hard validation metric. It keeps the weights if, under them, the best-validated
checkpoint already has the lowest training loss of all; otherwise it moves them as little as it can to weights
that say so (or, when none do, that come closest). docs/learned.md explains the rule, its cost and its limits.
"""

from __future__ import annotations

import copy
import math
import numbers
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .errors import OptionError
from .linear_program import solve_linear_program
from .runtime.compound import cross_entropy
from .runtime.inputs import validate_inputs

#: Options of metricc.loss that LearnedLoss chooses itself, through the family of base losses.
LEARNED_OPTIONS = ("approximation", "steepness", "ce_weight")

#: The family unless `base=` says otherwise: cross-entropy, the metric at three steepness values and with identity.
SIGMOID_FAMILY = ("bce", "anyloss-10", "anyloss-30", "anyloss-73", "identity")
SOFTMAX_FAMILY = ("ce", "identity", "anyloss-10", "anyloss-30", "anyloss-73")

_ANYLOSS = re.compile(r"anyloss-(\d+(?:\.\d*)?)")
#: A weight the rule lowers below this is dropped (set to 0), so that forward stops evaluating that base.
NEGLIGIBLE_WEIGHT = 0.02
#: The rule sees at most this many checkpoints: the latest ones and the best; each validate then costs milliseconds.
RULE_CHECKPOINTS = 64
_TIE_TOLERANCE = 1e-9  # a checkpoint preferred by less than this, in units of each base loss's range, is a tie


# the rule: pure functions of the checkpoints' base-loss values and validation scores


def best_checkpoint(scores: Sequence[float], maximize: bool) -> int:
    """The index of the best validation score; among ties the latest, which has seen the most training."""
    values = np.asarray(scores, dtype=float)
    best = values.max() if maximize else values.min()
    return int(np.flatnonzero(values == best)[-1])


def preferring_weights(losses: np.ndarray, scores: Sequence[float], weights: np.ndarray, maximize: bool = True) -> np.ndarray:
    """Weights on the simplex under which the best-validated checkpoint has the lowest weighted training loss.

    losses: (checkpoints, bases), each base loss's training value at each checkpoint; scores: each checkpoint's
    validation metric; weights: the current weights. The current weights stay if they already prefer the best
    checkpoint; else the nearest weights (L1) that do, or, where no weights do, the nearest of those that come
    closest (the largest worst-case margin). Distances and margins are in units of each base loss's range over the
    checkpoints, so that a base whose values happen to be large does not dominate the choice.
    """
    losses = np.asarray(losses, dtype=float)
    weights = np.asarray(weights, dtype=float)
    best = best_checkpoint(scores, maximize)
    spread = np.ptp(losses, axis=0)
    spread[spread == 0.0] = 1.0
    differences = np.delete(losses - losses[best], best, axis=0) / spread  # >= 0: the best is preferred to that one
    if len(differences) == 0:
        return weights
    scaled = weights * spread / np.dot(weights, spread)
    if (differences @ scaled >= -_TIE_TOLERANCE).all():
        return weights
    margin = min(0.0, largest_margin(differences)) - _TIE_TOLERANCE
    moved = nearest_weights(differences, scaled, margin)
    unscaled = moved / spread
    return unscaled / unscaled.sum()


def largest_margin(differences: np.ndarray) -> float:
    """max over the simplex of min_i differences[i] @ w: how strongly the best weights can prefer the best checkpoint."""
    checkpoints, bases = differences.shape
    # variables: w (bases), then the margin split into its positive and negative parts
    cost = np.r_[np.zeros(bases), -1.0, 1.0]
    upper = np.hstack([-differences, np.ones((checkpoints, 1)), -np.ones((checkpoints, 1))])
    equal = np.r_[np.ones(bases), 0.0, 0.0][None]
    solution = solve_linear_program(cost, upper, np.zeros(checkpoints), equal, np.ones(1))
    return -solution.value


def nearest_weights(differences: np.ndarray, weights: np.ndarray, margin: float) -> np.ndarray:
    """The weights on the simplex nearest to `weights` in L1 with differences @ w >= margin for every checkpoint."""
    checkpoints, bases = differences.shape
    identity = np.eye(bases)
    # variables: w, then u >= |w - weights|, whose sum is minimised
    cost = np.r_[np.zeros(bases), np.ones(bases)]
    upper = np.vstack([
        np.hstack([-differences, np.zeros((checkpoints, bases))]),
        np.hstack([identity, -identity]),
        np.hstack([-identity, -identity]),
    ])
    bound = np.r_[np.full(checkpoints, -margin), weights, -weights]
    equal = np.r_[np.ones(bases), np.zeros(bases)][None]
    solution = solve_linear_program(cost, upper, bound, equal, np.ones(1))
    if solution.status != "optimal":  # the margin came from the same constraints; only rounding can get here
        return weights
    moved = np.clip(solution.x[:bases], 0.0, None)
    return moved / moved.sum()


def damped_step(current: np.ndarray, target: np.ndarray, step: float) -> np.ndarray:
    """`step` of the way from the current weights to the rule's; a weight the rule lowers is dropped once it falls
    below NEGLIGIBLE_WEIGHT (a damped step never reaches 0 by itself, and forward pays for every positive weight),
    one it raises is kept however small, so that a base can enter the loss."""
    moved = current + step * (target - current)
    moved = np.where((moved < NEGLIGIBLE_WEIGHT) & (target < current), 0.0, moved)
    return moved / moved.sum()


# the family


class CrossEntropyBase(torch.nn.Module):
    """BCE (sigmoid tasks) or CE over classes (multiclass), as metricc's compound term computes it."""

    def __init__(self, task: str, from_logits: bool, ignore_index: Optional[int]):
        super().__init__()
        self.task, self.from_logits, self.ignore_index = task, from_logits, ignore_index

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        if self._plain_bce(preds, target):  # the same number, without the (batch, classes, positions) layout
            return torch.nn.functional.binary_cross_entropy_with_logits(preds, target.reshape(preds.shape).to(preds.dtype))
        return cross_entropy(preds, target, self.task, self.from_logits, self.ignore_index)

    def _plain_bce(self, preds: Tensor, target: Tensor) -> bool:
        return (
            self.task != "multiclass" and self.from_logits and self.ignore_index is None
            and preds.dtype in (torch.float32, torch.float64) and target.numel() == preds.numel()
        )

    def extra_repr(self) -> str:
        return f"task={self.task!r}, from_logits={self.from_logits}, ignore_index={self.ignore_index}"


def cross_entropy_name(task: str) -> str:
    """What the family calls cross-entropy: ce for softmax (multiclass), bce for sigmoid outputs; both spellings are
    accepted in base= and initial=."""
    return "ce" if task == "multiclass" else "bce"


def spelt(name: str, task: str) -> str:
    """A base-loss name with cross-entropy spelt as the task calls it."""
    return cross_entropy_name(task) if name in ("bce", "ce") else name


def base_options(name: str) -> Optional[Dict[str, Any]]:
    """The loss options of a metric base loss ("anyloss-30" -> anyloss with L = 30), or None for cross-entropy."""
    if name in ("bce", "ce"):
        return None
    if name in ("identity", "linear"):
        return {"approximation": name}
    matched = _ANYLOSS.fullmatch(name)
    if matched and 0.0 < float(matched.group(1)) < math.inf:
        return {"approximation": "anyloss", "steepness": float(matched.group(1))}
    raise OptionError(
        f"base loss {name!r} is not one LearnedLoss knows: use 'bce' (or 'ce': cross-entropy), 'identity', 'linear' "
        "or 'anyloss-L' with a positive steepness L, such as 'anyloss-30'"
    )


def family(base: Optional[Sequence[str]], task: str) -> Tuple[str, ...]:
    """The base-loss names, cross-entropy spelt as the task calls it (ce for multiclass, bce otherwise), checked."""
    if base is None:
        return SOFTMAX_FAMILY if task == "multiclass" else SIGMOID_FAMILY
    if isinstance(base, str) or not base:
        raise OptionError(f"base={base!r}: give a non-empty sequence of base-loss names, such as ('bce', 'anyloss-73')")
    names = tuple(spelt(name, task) for name in base)
    parsed = [repr(base_options(name)) for name in names]  # also checks each name
    repeated = sorted({name for name, key in zip(names, parsed) if parsed.count(key) > 1})
    if repeated:
        raise OptionError(f"base={tuple(base)!r} names the same base loss more than once ({', '.join(repeated)})")
    return names


def starting_weights(names: Sequence[str], initial: Optional[Mapping[str, float]], task: str) -> List[float]:
    """initial, normalised to sum 1; by default half cross-entropy, half the default metric loss (metricc's
    ce_weight=1 recipe) where the family has both, else equal weights."""
    cross = cross_entropy_name(task)
    if initial is None:
        default_metric = "identity" if task == "multiclass" else "anyloss-73"
        chosen = {cross, default_metric} if {cross, default_metric} <= set(names) else set(names)
        return [1.0 / len(chosen) if name in chosen else 0.0 for name in names]
    given = {spelt(name, task): value for name, value in dict(initial).items()}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise OptionError(f"initial names {', '.join(map(repr, unknown))}, not in the family {names}; set base= to include them")
    values = [given.get(name, 0.0) for name in names]
    if any(not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise OptionError(f"initial={dict(initial)!r}: weights must be finite numbers >= 0, not all zero")
    return [float(v) / sum(values) for v in values]


# the module


class LearnedLoss(torch.nn.Module):
    """sum_k w_k * base_k(preds, target), the weights learned by `validate` from checkpoints' validation metrics.

    metric: a library name or a formula; keyword arguments are metricc.loss's options and the metric's parameters,
    except approximation, steepness and ce_weight, which the family of base losses (`base=`) replaces.
    """

    def __init__(
        self,
        metric: str,
        /,
        *,
        base: Optional[Sequence[str]] = None,
        initial: Optional[Mapping[str, float]] = None,
        feature_every: int = 8,
        step: float = 0.25,
        name: Optional[str] = None,
        **arguments: Any,
    ):
        super().__init__()
        from .arguments import checked_parameters, split_arguments
        from .recipe import loss_class

        learned = sorted(set(arguments) & set(LEARNED_OPTIONS))
        if learned:
            raise OptionError(
                f"LearnedLoss learns {', '.join(learned)}: leave {'it' if len(learned) == 1 else 'them'} out, and choose "
                "the base losses it combines with base=, such as base=('bce', 'anyloss-30', 'identity')"
            )
        if isinstance(feature_every, bool) or not isinstance(feature_every, int) or feature_every < 1:
            raise OptionError(f"feature_every={feature_every!r} must be a positive integer (1 records every step)")
        if arguments.get("count_momentum") is not None:
            raise OptionError(
                "LearnedLoss does not take count_momentum yet: its base losses are evaluated on different steps, and "
                "running counts would mix them; use larger batches, or metricc.loss with count_momentum"
            )
        if arguments.get("average") == "none":
            raise OptionError(
                "LearnedLoss needs one validation number per checkpoint and one training value per base: average='none' "
                "gives one per class; choose 'macro', 'weighted' or 'micro'"
            )
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0.0 < step <= 1.0:
            raise OptionError(f"step={step!r} must lie in (0, 1]: the fraction of the way to the rule's weights taken at each validate")
        options, parameters = split_arguments(arguments)
        module_class = loss_class(metric, name, options)
        parameters = checked_parameters(module_class.metric_name, module_class.metric_parameters, parameters)
        configured = module_class(**parameters)  # the options as the user gave them, checked
        task = configured.task
        self.metric_name: str = module_class.metric_name
        self.task, self.from_logits, self.ignore_index = task, configured.from_logits, configured.ignore_index
        self.maximize: bool = configured.maximize
        self.feature_every = feature_every
        self.step = float(step)
        self.validate_args: bool = configured.validate_args
        self.include_background: bool = configured.include_background
        self.base_names: Tuple[str, ...] = family(base, task)
        base_losses = [base_options(n) for n in self.base_names]
        self.bases = torch.nn.ModuleList(
            CrossEntropyBase(task, self.from_logits, self.ignore_index) if chosen is None
            else module_class(**chosen, validate_args=False, **parameters)  # forward checks the inputs once
            for chosen in base_losses
        )
        # the hard metric: 0/1 predictions (or one-hot arg-maxes) are soft counts that are exactly the hard counts
        self.scorer = module_class(approximation="identity", from_logits=False, count_momentum=None, sync=None, **parameters)
        self._weights = starting_weights(self.base_names, initial, task)
        self._history: List[Dict[str, Any]] = []
        self._steps = 0  # training steps since the last validate
        self._samples = 0  # of which recorded
        self._sums: Optional[Tensor] = None  # float64 sums of the recorded values, on the predictions' device

    # training

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """The weighted sum of the base losses with a positive weight; in training with gradients, on the first step
        after each validate and every feature_every-th one, every base's value is also recorded for the rule."""
        if self.validate_args:
            validate_inputs(preds, target, self.task, self.from_logits, self.ignore_index, self.include_background)
        training = self.training and torch.is_grad_enabled()
        values: List[Optional[Tensor]] = [None] * len(self.bases)
        total: Optional[Tensor] = None
        for index, (weight, base) in enumerate(zip(self._weights, self.bases)):
            if weight > 0.0:
                values[index] = base(preds, target)
                total = weight * values[index] if total is None else total + weight * values[index]
        if training and self._steps % self.feature_every == 0:
            with torch.no_grad():
                detached = preds.detach()
                recorded = [value if value is not None else base(detached, target) for value, base in zip(values, self.bases)]
                recorded_sum = torch.stack([value.detach().reshape(()) for value in recorded]).to(torch.float64)
                self._sums = recorded_sum if self._sums is None else self._sums.to(recorded_sum.device) + recorded_sum
            self._samples += 1
        if training:
            self._steps += 1
        return total

    # validation

    def validate(self, preds: Tensor, target: Tensor) -> float:
        """This checkpoint's hard metric on validation data (at its best threshold for sigmoid outputs, at the arg-max
        for multiclass); records it with the base losses' training values since the last call and updates the
        weights. It never computes a gradient: validation data tunes the weights and the threshold, not the model."""
        preds, target = preds.detach(), target.detach()
        if preds.numel() == 0:
            raise ValueError(f"validate got empty preds (shape {list(preds.shape)}): pass the predictions on the validation data")
        validate_inputs(preds, target, self.task, self.from_logits, self.ignore_index, self.include_background)
        with torch.no_grad():
            score, threshold = self._hard_score(preds, target)
        if not math.isfinite(score):
            raise ValueError(f"the validation {self.metric_name} is {score}: choose a metric that is finite on these predictions")
        entry = {"score": score, "threshold": threshold, "losses": None, "weights": None, "steps": self._steps}
        sums, samples = self._sums, self._samples
        self._steps, self._samples, self._sums = 0, 0, None  # those steps belong to this checkpoint, whatever follows
        losses = self._recorded_means(sums, samples, preds.device)
        if losses is not None:
            entry["losses"] = dict(zip(self.base_names, losses))
            self._weights = self._updated_weights(self._history + [entry])
        self._weights = self._rank_zero_weights(preds.device)
        entry["weights"] = self.weights
        self._history.append(entry)
        return score

    def _recorded_means(self, sums: Optional[Tensor], samples: int, device: torch.device) -> Optional[List[float]]:
        """Each base's mean recorded training value from the sums of `samples` recorded steps, over every
        torch.distributed rank when running; None if nothing was recorded. A non-finite value is an error naming the base."""
        if sums is None:
            sums = torch.zeros(len(self.base_names), dtype=torch.float64, device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            together = torch.cat([sums.to(device), sums.new_tensor([float(samples)], device=device)])
            torch.distributed.all_reduce(together)
            sums, samples = together[:-1], int(together[-1])
        if samples == 0:
            return None
        means = (sums / samples).tolist()
        bad = [name for name, value in zip(self.base_names, means) if not math.isfinite(value)]
        if bad:
            raise ValueError(
                f"the training value of base loss {', '.join(bad)} was not finite in the {samples} recorded steps since the "
                "last validate: these steps are left out; check the training predictions, or leave that base out with base="
            )
        return means

    def _rank_zero_weights(self, device: torch.device) -> List[float]:
        """Under torch.distributed every rank trains with rank 0's weights, even if their validation data differ."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            weights = torch.tensor(self._weights, dtype=torch.float64, device=device)
            torch.distributed.broadcast(weights, 0)
            return weights.tolist()
        return self._weights

    def _updated_weights(self, history: List[Dict[str, Any]]) -> List[float]:
        """The rule on the checkpoints that have training values (a validate before any training step has none): the
        latest RULE_CHECKPOINTS of them and the best, a damped step towards its answer."""
        seen = [entry for entry in history if entry["losses"] is not None]
        best = best_checkpoint([entry["score"] for entry in seen], self.maximize)
        seen = [entry for index, entry in enumerate(seen) if index >= len(seen) - RULE_CHECKPOINTS or index == best]
        losses = np.array([[entry["losses"][n] for n in self.base_names] for entry in seen])
        current = np.array(self._weights)
        target = preferring_weights(losses, [entry["score"] for entry in seen], current, self.maximize)
        return damped_step(current, target, self.step).tolist()

    def _hard_score(self, preds: Tensor, target: Tensor) -> Tuple[float, Any]:
        """The hard metric and the threshold it is reached at (None for multiclass; a list per label where thresholds
        are per label)."""
        from .threshold import best_hard_metric

        if self.task == "multiclass":
            chosen = preds.argmax(dim=1, keepdim=True)
            one_hot = torch.zeros_like(preds, dtype=torch.float32).scatter_(1, chosen, 1.0)
            return float(self.scorer.metric(one_hot, target).mean()), None
        return best_hard_metric(self.scorer, preds, target)

    # what it learned

    @property
    def weights(self) -> Dict[str, float]:
        """{base loss name: weight}: the current combination, non-negative, summing to 1."""
        return dict(zip(self.base_names, self._weights))

    @property
    def history(self) -> List[Dict[str, Any]]:
        """One entry per validate(): score, threshold, losses (training values of each base), weights (after the
        update) and steps (training steps since the previous validate)."""
        return copy.deepcopy(self._history)

    @property
    def best_score(self) -> Optional[float]:
        return self._history[self._best()]["score"] if self._history else None

    @property
    def best_threshold(self) -> Any:
        """Where the best checkpoint's validation metric peaked (a logit when from_logits); None before validate."""
        return self._threshold_of(self._history[self._best()]) if self._history else None

    @property
    def latest_threshold(self) -> Any:
        """The latest checkpoint's best threshold: the one to use with the model as it is now. (Not the `threshold`
        option of metricc.loss, tau of the approximation, which LearnedLoss passes to its bases.)"""
        return self._threshold_of(self._history[-1]) if self._history else None

    def _best(self) -> int:
        return best_checkpoint([entry["score"] for entry in self._history], self.maximize)

    @staticmethod
    def _threshold_of(entry: Dict[str, Any]) -> Any:
        threshold = entry["threshold"]
        return torch.tensor(threshold, dtype=torch.float64) if isinstance(threshold, list) else threshold

    def extra_repr(self) -> str:
        weights = ", ".join(f"{n}={w:.3g}" for n, w in self.weights.items())
        return f"{self.metric_name!r}, task={self.task!r}, weights=({weights}), checkpoints={len(self._history)}"

    # checkpoints

    def get_extra_state(self) -> Dict[str, Any]:
        """What state_dict holds, as plain values (it loads with weights_only=True): what the loss is, what it learned
        and what it recorded since the last validate."""
        sums = [0.0] * len(self.base_names) if self._sums is None else self._sums.tolist()
        return {
            "version": 1, "identity": self._identity(), "weights": list(self._weights), "history": self.history,
            "steps": self._steps, "samples": self._samples, "sums": sums,
        }

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        saved, mine = state.get("identity", {}), self._identity()
        different = [key for key in mine if saved.get(key) != mine[key]]
        if different:
            shown = "; ".join(f"{key} {saved.get(key)!r} there, {mine[key]!r} here" for key in different)
            raise OptionError(f"this checkpoint is of another LearnedLoss ({shown}): construct it as it was saved to resume")
        self._weights = [float(w) for w in state["weights"]]
        self._history = copy.deepcopy(list(state["history"]))
        self._steps, self._samples = int(state["steps"]), int(state["samples"])
        self._sums = torch.tensor(state["sums"], dtype=torch.float64) if self._samples else None

    def _identity(self) -> Dict[str, Any]:
        """What a checkpoint must agree on to resume: the metric and how its scores and thresholds read."""
        return {
            "metric": self.metric_name, "task": self.task, "from_logits": self.from_logits, "maximize": self.maximize,
            "base": list(self.base_names),
        }
