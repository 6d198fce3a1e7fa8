"""The base modules of every compiled loss: LossBase (options, parameters, running counts), CountLossBase (the
four counts: forward, metric, averaging, sync, the CE term and the closed-form backward) and MatrixLossBase (the
whole C x C confusion matrix). A compiled metric's subclass adds its name, its constructor defaults and its
formula hooks; the emitted file holds nothing else."""

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .approximate import approximation_scale, probabilities, soft_block
from .backward import (
    autograd_through_formula, closed_form_function, closed_form_gradient, counts_fit_floats, loss_from_floats, precomputed_function, small_input,
)
from .compound import cross_entropy
from .counts import count_changes, counted_in_blocks, slope_varies, soft_counts
from .inputs import canonical_layout, count_dims, functorch_active, fused_kernels, one_hot_labels, validate_inputs
from .matrix import leaf_gradient, matrix_aggregates, matrix_change, matrix_gradient, matrix_gradient_function, soft_matrix
from .options import OPTION_NAMES, InvalidOption, matrix_option_problem, parameter_problem, validate_options
from .reduce import absent_counts, all_reduce_sum, average_weights, fill_absent, mean_over_rows, row_sums, running_counts


class LossBase(torch.nn.Module):
    """What every compiled loss shares: its options, its metric parameters and its running counts.

    preds: (N,) or (N, 1, *spatial) for task='binary'; (N, C, *spatial) for 'multiclass' and 'multilabel'.
    Probabilities, or logits with from_logits=True (sigmoid; softmax over C for 'multiclass').
    target: the shape of preds (0/1, one-hot or multi-hot), or class indices (N, *spatial) or (N, 1, *spatial)
    for 'multiclass'. Positions whose target is ignore_index are left out; include_background=False leaves out
    class 0. average: 'micro' pools the classes, 'macro' averages them (multiclass leaves out absent classes),
    'weighted' weighs them by support, 'none' returns one loss per class, 'samples' one metric per sample
    (multilabel). multidim_average='samplewise': counts per image, then the mean over images.
    zero_division: the metric of a class absent from both targets and predictions (TP + FP + FN < 0.5);
    None keeps the formula's own value there. sync='ddp': counts summed over torch.distributed ranks.
    count_momentum: in training mode, counts mixed with running counts as BatchNorm's statistics are.

    Keyword arguments are the loss options (metricc.runtime.options.OPTIONS) and the metric's parameters;
    the subclass's `defaults` replace the options' own defaults, and `metric_parameters` maps each parameter to
    (default, lower, upper, lower_open, upper_open).
    """

    metric_name = "metric"
    defaults = {}  # type: Dict[str, Any]
    metric_parameters = {}  # type: Dict[str, Tuple[float, float, float, bool, bool]]
    # slope tensors whose backward pass has run, for the next eager step: Python state TorchScript never sees
    __jit_ignored_attributes__ = ["spare_slopes"]

    ignore_index: Optional[int]
    zero_division: Optional[float]
    sync: Optional[str]
    count_momentum: Optional[float]
    parameter_values: Dict[str, float]
    aggregate_names: List[str]

    def __init__(self, /, **arguments: Any):
        super().__init__()
        parameters = type(self).metric_parameters
        unknown = sorted(set(arguments) - set(OPTION_NAMES) - set(parameters))
        if unknown:
            accepted = ", ".join(OPTION_NAMES + tuple(parameters))
            raise InvalidOption(f"{type(self).__name__} got unknown argument(s) {', '.join(unknown)}; it accepts {accepted}")
        given = {name: value for name, value in arguments.items() if name not in parameters}
        options = validate_options({**type(self).defaults, **given})
        if options["direction"] == "auto":
            raise InvalidOption("direction='auto' is decided when a metric is compiled: pass 'maximize' or 'minimize'")
        problem = self.options_problem(options)
        if problem is not None:
            raise InvalidOption(problem)
        self.parameter_values = {}
        for name, (default, lower, upper, lower_open, upper_open) in parameters.items():
            value = arguments.get(name, default)
            problem = parameter_problem(name, value, lower, upper, lower_open, upper_open)
            if problem is not None:
                raise InvalidOption(problem)
            self.parameter_values[name] = float(value)
        self.task: str = options["task"]
        self.from_logits: bool = options["from_logits"]
        self.approximation: str = options["approximation"]
        self.steepness: float = options["steepness"]
        self.threshold: float = options["threshold"]
        self.width: float = options["width"]
        self.average: str = options["average"]
        self.multidim_average: str = options["multidim_average"]
        self.ignore_index = options["ignore_index"]
        self.include_background: bool = options["include_background"]
        self.zero_division = options["zero_division"]
        self.sync = options["sync"]
        self.count_momentum = options["count_momentum"]
        self.eps: float = options["eps"]
        self.sign: float = -1.0 if options["direction"] == "maximize" else 1.0
        self.offset: float = 1.0 if options["direction"] == "maximize" else 0.0
        self.validate_args: bool = options["validate_args"]
        self.ce_weight: float = options["ce_weight"]
        weights = options["class_weights"]
        self.register_buffer("class_weights", torch.tensor(list(weights or ()), dtype=torch.float32), persistent=False)
        self.register_buffer("running_counts", torch.zeros(0), persistent=False)
        self.spare_slopes = []  # type: List[Tensor]
        self.aggregate_names = []

    def options_problem(self, options: Dict[str, Any]) -> Optional[str]:
        """Why these (valid) options do not suit this kind of loss, or None."""
        return None

    def _pool(self, counts: Tensor, over_ranks: bool, running: bool) -> Tuple[Tensor, float]:
        """Counts (or a confusion matrix) as the formula sees them: summed over ranks with sync='ddp' where they pool
        the batch, mixed with the running counts in training with count_momentum; and their derivative by this
        batch's."""
        if self.sync is not None and over_ranks:
            counts = all_reduce_sum(counts)
        momentum = self.count_momentum
        if momentum is not None and running:
            mixed, scale = running_counts(counts, self.running_counts, momentum)
            self.running_counts = mixed.detach()
            return mixed, scale
        return counts, 1.0

    def _mean_over_ranks(self, total: Tensor, rows: Tensor, over_ranks: bool, fallback: float) -> Tensor:
        """total / rows, both summed over ranks with sync='ddp' where rows are images or samples; `fallback` when no
        row counts. Only this rank's total carries a gradient: each rank differentiates its own samples."""
        if over_ranks and self.sync is not None:
            total = total + (all_reduce_sum(total) - total.detach())
            rows = all_reduce_sum(rows)
        return mean_over_rows(total, rows, fallback)

    @torch.jit.export
    def reset_running_counts(self) -> None:
        """Forget the running counts (count_momentum): the next training step starts from its own batch."""
        self.running_counts = self.running_counts.new_zeros([0])


class CountLossBase(LossBase):
    """A metric of the four counts TP, FP, FN, TN (per class, per image, or pooled) as a loss."""

    # the formula hooks, written by the compiler in each metric's subclass (with a forward of its own, so that
    # torch.compile's limit of recompilations per function counts per metric, not across every metricc loss)

    def formula(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        """The guarded metric of count tensors, element-wise."""
        raise NotImplementedError("a compiled metric's subclass defines formula")

    def formula_and_weights(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative)."""
        raise NotImplementedError("a compiled metric's subclass defines formula_and_weights")

    def formula_on_floats(self, tp: float, fp: float, fn: float, tn: float) -> Tuple[float, float, float]:
        """formula_and_weights on Python floats; raises ArithmeticError or ValueError where torch would give inf or NaN."""
        raise NotImplementedError("a compiled metric's subclass defines formula_on_floats")

    # the loss

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """compute_loss; a compiled metric repeats this line, so that torch.compile counts recompilations per metric."""
        return self.compute_loss(preds, target)

    def compute_loss(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss: 1 - metric (or the metric, when it is minimised), averaged as configured, with the closed-form gradient."""
        by_autograd = autograd_through_formula(preds)
        counts, counted, labels, slope, scale, leaf, mask, dims = self._counts(preds, target, by_autograd)
        loss: Optional[Tensor] = None
        if by_autograd:
            loss = self._loss_by_autograd(counts, counted, leaf, mask, dims)
        else:
            one_count = self.average == "micro" and self.sync is None and (self.count_momentum is None or not self.training)
            if one_count and counts_fit_floats(counts, leaf):
                loss = self._loss_of_floats(counts, counted, slope, scale, mask, leaf, dims)
            if loss is None:
                loss = self._loss_of_tensors(counts, counted, labels, slope, scale, leaf, mask, dims)
        if self.ce_weight > 0.0:
            loss = loss + self.ce_weight * cross_entropy(preds, target, self.task, self.from_logits, self.ignore_index)
        return loss

    @torch.jit.export
    def metric(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft metric of this batch (no gradient, no running counts), averaged like the loss."""
        with torch.no_grad():
            counts, target, labels, slope, scale, leaf, mask, dims = self._counts(preds, target)
            tp, fp, fn, tn, count_scale = self._pooled(counts, dims, False)
            value = self.formula(tp, fp, fn, tn)
            zero_division = self.zero_division
            if zero_division is not None:
                value = value.masked_fill(absent_counts(tp, fp, fn), zero_division)
            return self._average(value, tp, fp, fn, dims)

    @torch.jit.export
    def metric_of_counts(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        """The guarded formula on count tensors of any one shape, element-wise: no averaging, no zero_division."""
        return self.formula(tp, fp, fn, tn)

    def _counts(self, preds: Tensor, target: Tensor, by_autograd: bool = False) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], float, Tensor, Optional[Tensor], List[int]]:
        """Soft counts TP, FP, FN, TN stacked, of the canonical (batch, classes, positions) layout, and what the
        backward pass needs."""
        if self.validate_args:
            validate_inputs(preds, target, self.task, self.from_logits, self.ignore_index, self.include_background)
        preds, target, mask, labels = canonical_layout(preds, target, self.task, self.ignore_index)
        values = preds.detach().to(target.dtype)
        leaf = preds
        if self.from_logits and self.task == "multiclass":
            leaf = probabilities(preds.to(target.dtype), self.task, self.from_logits)
            values = leaf.detach()
        if not self.include_background:
            leaf, values, target = leaf[:, 1:], values[:, 1:], target[:, 1:]
            if mask is not None and mask.shape[1] > 1:
                mask = mask[:, 1:]
        dims = count_dims(self.task, self.average, self.multidim_average)
        sigmoid_logits = self.from_logits and self.task != "multiclass"
        with_slope = leaf.requires_grad and torch.is_grad_enabled() and not by_autograd
        slope_out: Optional[Tensor] = None
        if with_slope and slope_varies(self.approximation, sigmoid_logits) and counted_in_blocks(values):
            slope_out = self._slope_buffer(values)
        counts, slope, scale = soft_counts(
            values, target, mask, dims, sigmoid_logits, self.approximation, self.steepness, self.threshold, self.width, with_slope, slope_out
        )
        return counts, target, labels, slope, scale, leaf, mask, dims

    def _slope_buffer(self, like: Tensor) -> Tensor:
        """A tensor for the slope, kept for backward: eagerly, the one of the last step whose backward has run."""
        if torch.jit.is_scripting():
            return torch.empty_like(like)
        return self._spare_slope(like)

    @torch.jit.unused
    def _spare_slope(self, like: Tensor) -> Tensor:
        """A fresh tensor of 1e7 floats costs more in page faults than what is written to it. Reuse is safe: a
        graph that would read the old slope again (retain_graph=True) finds it overwritten, and autograd's check
        of saved tensors raises instead of computing with it. pop and append are atomic: threads never share one."""
        try:
            spare = self.spare_slopes.pop()
        except IndexError:
            return torch.empty_like(like)
        if spare.shape != like.shape or spare.dtype != like.dtype or spare.device != like.device:
            return torch.empty_like(like)
        return spare

    def _pooled(self, counts: Tensor, dims: List[int], running: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, float]:
        """The counts the formula sees (summed over ranks, mixed with running counts) and their derivative by this batch's."""
        if (self.sync is None or 0 not in dims) and (self.count_momentum is None or not running):
            return counts[0], counts[1], counts[2], counts[3], 1.0
        pooled, scale = self._pool(counts, 0 in dims, running)
        return pooled[0], pooled[1], pooled[2], pooled[3], scale

    def _average(self, value: Tensor, tp: Tensor, fp: Tensor, fn: Tensor, dims: List[int]) -> Tensor:
        """The per-count metric values averaged over classes and rows as configured; rows summed over ranks."""
        if self.average == "micro" and self.sync is None:
            return value.mean()  # one pooled count per row, each row counts: the weights below are all one
        class_weights: Optional[Tensor] = None
        if self.class_weights.numel() > 0:
            if self.class_weights.numel() != tp.shape[1]:
                raise ValueError(
                    f"class_weights has {self.class_weights.numel()} entries for {tp.shape[1]} scored classes"
                    " (include_background=False leaves out class 0)"
                )
            class_weights = self.class_weights
        weights = average_weights(tp, fp, fn, self.task, self.average, class_weights)
        total, rows = row_sums(value, weights, self.average)
        zero_division = self.zero_division
        return self._mean_over_ranks(total, rows, 0 not in dims, 0.0 if zero_division is None else zero_division)

    @torch.jit.unused
    def _loss_of_floats(
        self, counts: Tensor, target: Tensor, slope: Optional[Tensor], scale: float, mask: Optional[Tensor], leaf: Tensor,
        dims: List[int],
    ) -> Optional[Tensor]:
        """The loss of one count (binary, or micro-averaged) with the formula on Python floats; None where the
        floats fail (0/0, an overflow) and the tensor formula is to decide."""
        tp, fp, fn, tn = counts.reshape(4).tolist()
        try:
            value, positive, negative = self.formula_on_floats(tp, fp, fn, tn)
        except (ArithmeticError, ValueError):
            return None
        if not all(abs(x) < float("inf") for x in (value, positive, negative)):
            return None
        if self.zero_division is not None and tp + fp + fn < 0.5:
            value, positive, negative = self.zero_division, 0.0, 0.0
        recompute = self._recompute(target, None, 0, mask, dims, counts, 1.0, True)
        return loss_from_floats(self.sign * value + self.offset, self.sign * positive, self.sign * negative, target, slope, scale, mask, leaf, recompute)

    def _loss_of_tensors(
        self, counts: Tensor, counted: Tensor, labels: Optional[Tensor], slope: Optional[Tensor], scale: float, leaf: Tensor,
        mask: Optional[Tensor], dims: List[int],
    ) -> Tensor:
        """The loss with the formula on count tensors, pooled across ranks and steps as configured."""
        tp, fp, fn, tn, count_scale = self._pooled(counts, dims, self.training)
        zero_division = self.zero_division
        if not (leaf.requires_grad and torch.is_grad_enabled()):
            value = self.formula(tp, fp, fn, tn)
            if zero_division is not None:
                value = value.masked_fill(absent_counts(tp, fp, fn), zero_division)
        else:
            value, positive, negative = self.formula_and_weights(tp, fp, fn, tn)
            if zero_division is not None:
                value, positive, negative = fill_absent(value, positive, negative, tp, fp, fn, zero_division)
            value = self._closed_form(value, leaf, positive, negative, counted, labels, slope, mask, scale, count_scale, [tp, fp, fn, tn], dims)
        return self.sign * self._average(value, tp, fp, fn, dims) + self.offset

    def _loss_by_autograd(self, counts: Tensor, target: Tensor, leaf: Tensor, mask: Optional[Tensor], dims: List[int]) -> Tensor:
        """The loss as autograd through the formula, exact at every order: in TorchScript, under torch.export,
        forward-mode AD and torch.func's transforms, where the closed form's Function cannot serve."""
        if self.count_momentum is not None and self.training and not torch.jit.is_scripting() and functorch_active():
            raise RuntimeError(
                "count_momentum updates the running counts, state that a torch.func transform (vmap, grad, ...) cannot "
                "write: call loss.eval() inside the transform, or construct the loss with count_momentum=None"
            )
        tp, fp, fn, tn, count_scale = self._pooled(counts, dims, self.training)
        value = self._differentiable_value(leaf, target, mask, dims, [tp, fp, fn, tn], count_scale)
        return self.sign * self._average(value, tp, fp, fn, dims) + self.offset

    def _differentiable_value(
        self, leaf: Tensor, target: Tensor, mask: Optional[Tensor], dims: List[int], pooled: List[Tensor], count_scale: float
    ) -> Tensor:
        """The per-count metric values at the pooled counts TP, FP, FN, TN, as a function of leaf in autograd's
        operations: this batch's counts enter as their change times d(pooled) / d(batch), every order exact."""
        sigmoid_logits = self.from_logits and self.task != "multiclass"
        tp_change, fp_change = count_changes(leaf, target, mask, dims, sigmoid_logits, self.approximation, self.steepness, self.threshold, self.width)
        tp_change, fp_change = tp_change * count_scale, fp_change * count_scale
        tp, fp, fn, tn = pooled[0], pooled[1], pooled[2], pooled[3]
        value = self.formula(tp + tp_change, fp + fp_change, fn - tp_change, tn - fp_change)
        zero_division = self.zero_division
        if zero_division is not None:
            value = value.masked_fill(absent_counts(tp, fp, fn), zero_division)
        return value

    @torch.jit.unused
    def _recompute(
        self, target: Tensor, labels: Optional[Tensor], first_class: int, mask: Optional[Tensor], dims: List[int],
        pooled: Any, count_scale: float, whole_loss: bool,
    ) -> Callable[[Tensor], Tensor]:
        """leaf -> the per-count values (whole_loss: the loss of one count), differentiably, for a backward pass
        with create_graph=True; pooled: TP, FP, FN, TN (a list, or stacked on axis 0). Class-index targets are
        kept as their labels (not the one-hot target) and rebuilt there."""
        classes, dtype = first_class + target.shape[1], target.dtype
        kept_target = target if labels is None else None

        def recompute(leaf: Tensor) -> Tensor:
            scored = kept_target if labels is None else one_hot_labels(labels, classes, first_class, dtype)
            value = self._differentiable_value(leaf, scored, mask, dims, list(pooled), count_scale)
            return self.sign * value.reshape(()) + self.offset if whole_loss else value

        return recompute

    @torch.jit.unused
    def _closed_form(
        self, value: Tensor, leaf: Tensor, positive: Tensor, negative: Tensor, target: Tensor, labels: Optional[Tensor],
        slope: Optional[Tensor], mask: Optional[Tensor], scale: float, count_scale: float, pooled: List[Tensor], dims: List[int],
    ) -> Tensor:
        """The detached per-count values with the closed-form gradient with respect to `leaf` (ClosedFormGradient):
        per sample, d loss / d a_i = y_i (dTP - dFN) + (1 - y_i)(dFP - dTN), times A'(p_i) = scale * slope_i. It keeps
        only the slope (and class-index labels, not their one-hot target); a slope that _slope_buffer handed out
        goes back to spare_slopes once its backward pass has read it."""
        spare = self.spare_slopes if slope is not None and counted_in_blocks(slope) else None
        first_class = 0 if self.include_background else 1
        if fused_kernels():
            recompute: Optional[Callable[[Tensor], Tensor]] = None
        else:
            recompute = self._recompute(target, labels, first_class, mask, dims, pooled, count_scale, False)
            if leaf.numel() <= small_input():
                # a small input: the weights now, as autograd's own nodes would, and one product in the backward pass
                weights = closed_form_gradient(None, scale * count_scale, positive, negative, target, slope, mask)
                return precomputed_function(value, leaf, weights, recompute)
        return closed_form_function(value, leaf, positive, negative, target, labels, first_class, slope, mask, scale * count_scale, spare, recompute)


class MatrixLossBase(LossBase):
    """A metric of the whole C x C soft confusion matrix (task='multiclass') as a loss: M[i, j] = sum_n y[n, i] a[n, j]
    over kept positions, per image with multidim_average='samplewise'. The backward pass gives a[n, j] the weight
    G[label of n, j], G = d metric / d M, from the partials by each aggregate the formula reads (`aggregates`)."""

    aggregates = ()  # type: Tuple[str, ...]

    def __init__(self, /, **arguments: Any):
        super().__init__(**arguments)
        self.aggregate_names = list(type(self).aggregates)

    def options_problem(self, options: Dict[str, Any]) -> Optional[str]:
        return matrix_option_problem(type(self).metric_name, options)

    # the formula hooks, written by the compiler in each metric's subclass

    def formula(self, aggregates: Dict[str, Tensor]) -> Tensor:
        """The guarded metric of each matrix's aggregates."""
        raise NotImplementedError("a compiled matrix metric's subclass defines formula")

    def formula_and_partials(self, aggregates: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The metric and its partial derivative by each aggregate."""
        raise NotImplementedError("a compiled matrix metric's subclass defines formula_and_partials")

    # the loss

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """compute_loss; a compiled metric repeats this line, so that torch.compile counts recompilations per metric."""
        return self.compute_loss(preds, target)

    def compute_loss(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss: 1 - metric (or the metric, when it is minimised), with the closed-form gradient."""
        by_autograd = autograd_through_formula(preds)
        matrix, counted, labels, slope, scale, leaf, mask, per_row = self._matrix(preds, target, by_autograd)
        pooled, count_scale = self._pool(matrix, not per_row, self.training)
        kept = self._kept_rows(counted, per_row)
        if by_autograd:
            if self.count_momentum is not None and self.training and not torch.jit.is_scripting() and functorch_active():
                raise RuntimeError(
                    "count_momentum updates the running counts, state that a torch.func transform (vmap, grad, ...) cannot "
                    "write: call loss.eval() inside the transform, or construct the loss with count_momentum=None"
                )
            value = self._differentiable_value(leaf, counted, pooled, count_scale, per_row)
        elif not (leaf.requires_grad and torch.is_grad_enabled()):
            value = self.formula(matrix_aggregates(pooled, self.aggregate_names))
        else:
            value, partials = self.formula_and_partials(matrix_aggregates(pooled, self.aggregate_names))
            gradient = matrix_gradient(pooled, partials)
            value = self._closed_form(value, leaf, gradient, counted, labels, slope, mask, scale * count_scale, count_scale, pooled, per_row)
        loss = self.sign * self._mean(value, kept, per_row) + self.offset
        if self.ce_weight > 0.0:
            loss = loss + self.ce_weight * cross_entropy(preds, target, self.task, self.from_logits, self.ignore_index)
        return loss

    @torch.jit.export
    def metric(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft metric of this batch (no gradient, no running counts), per image averaged with samplewise."""
        with torch.no_grad():
            matrix, counted, labels, slope, scale, leaf, mask, per_row = self._matrix(preds, target)
            pooled, count_scale = self._pool(matrix, not per_row, False)
            kept = self._kept_rows(counted, per_row)
            return self._mean(self.formula(matrix_aggregates(pooled, self.aggregate_names)), kept, per_row)

    def _differentiable_value(self, leaf: Tensor, target: Tensor, pooled: Tensor, count_scale: float, per_row: bool) -> Tensor:
        """The metric of each pooled matrix as a function of leaf in autograd's operations: this batch's matrix
        enters as its change times d(pooled) / d(batch), every derivative order exact."""
        change = matrix_change(leaf, target, self.approximation, self.steepness, self.threshold, self.width, per_row)
        return self.formula(matrix_aggregates(pooled + change * count_scale, self.aggregate_names))

    @torch.jit.unused
    def _closed_form(
        self, value: Tensor, leaf: Tensor, gradient: Tensor, target: Tensor, labels: Optional[Tensor], slope: Optional[Tensor],
        mask: Optional[Tensor], scale: float, count_scale: float, pooled: Tensor, per_row: bool,
    ) -> Tensor:
        """MatrixGradient: the closed form first, autograd through _differentiable_value for a backward pass with
        create_graph=True (class-index targets kept as their labels and rebuilt there)."""
        if fused_kernels():
            return matrix_gradient_function(value, leaf, gradient, target, labels, slope, mask, scale, per_row, None)
        classes, dtype = target.shape[1], target.dtype
        kept_target = target if labels is None else None

        def recompute(leaf: Tensor) -> Tensor:
            scored = kept_target
            if labels is not None:
                scored = one_hot_labels(labels, classes, 0, dtype)
                scored = scored if mask is None else scored * mask
            return self._differentiable_value(leaf, scored, pooled, count_scale, per_row)

        if leaf.numel() <= small_input():
            # a small input: the weights now, as autograd's own nodes would, and one product in the backward pass
            return precomputed_function(value, leaf, leaf_gradient(gradient * scale, target, labels, slope, mask, per_row), recompute)
        return matrix_gradient_function(value, leaf, gradient, target, labels, slope, mask, scale, per_row, recompute)

    @torch.jit.export
    def confusion_matrix(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft confusion matrix of this batch, (C, C), or (images, C, C) with samplewise."""
        with torch.no_grad():
            matrix = self._matrix(preds, target)[0]
            return matrix if self.multidim_average == "samplewise" else matrix[0]

    def _matrix(self, preds: Tensor, target: Tensor, by_autograd: bool = False) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], float, Tensor, Optional[Tensor], bool]:
        """M of the canonical (batch, classes, positions) layout, and what the backward pass needs: the masked
        one-hot target, class-index labels, A'(p) as (slope or None, constant factor), the leaf and the mask."""
        if self.validate_args:
            validate_inputs(preds, target, self.task, self.from_logits, self.ignore_index, self.include_background)
        preds, target, mask, labels = canonical_layout(preds, target, self.task, self.ignore_index)
        values = preds.detach().to(target.dtype)
        leaf = preds
        if self.from_logits:
            leaf = probabilities(preds.to(target.dtype), self.task, self.from_logits)
            values = leaf.detach()
        with_slope = leaf.requires_grad and torch.is_grad_enabled() and not by_autograd
        hard = values
        slope: Optional[Tensor] = None
        if self.approximation != "identity":
            hard, complement, slope = soft_block(values, False, self.approximation, self.steepness, self.threshold, self.width, with_slope, None, None)
        if mask is not None:
            target = target * mask
        per_row = self.multidim_average == "samplewise"
        scale = approximation_scale(self.approximation, self.steepness, self.width)
        return soft_matrix(hard, target, labels, mask, per_row), target, labels, slope, scale, leaf, mask, per_row

    def _kept_rows(self, counted: Tensor, per_row: bool) -> Tensor:
        """1 for each matrix (image, or the batch) with a kept position, else 0; the batch's over every rank."""
        if per_row:
            return (counted.sum([1, 2]) > 0.5).to(counted.dtype)
        positions = counted.sum().reshape(1)
        if self.sync is not None:
            positions = all_reduce_sum(positions)
        return (positions > 0.5).to(counted.dtype)

    def _mean(self, value: Tensor, kept: Tensor, per_row: bool) -> Tensor:
        """The mean over the matrices with a kept position (images, or the batch), over every rank's images with
        sync='ddp'; 0 where there is none (an empty batch, every position ignored), as for the per-class metrics."""
        return self._mean_over_ranks((value * kept).sum(), kept.sum(), per_row, 0.0)
