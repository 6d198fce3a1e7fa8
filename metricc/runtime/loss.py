"""The base modules of every compiled loss: LossBase (options, parameters, running counts), CountLossBase (the
four counts: forward, metric, averaging, sync, the CE term and the closed-form backward) and MatrixLossBase (the
whole C x C confusion matrix). A compiled metric's subclass adds its name, its constructor defaults and its
formula hooks; the emitted file holds nothing else."""

import inspect
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .approximate import Approximation, approximation_scale, probabilities, soft_block
from .backward import (
    autograd_through_formula, closed_form_function, closed_form_gradient, counts_fit_floats, loss_from_floats, precomputed_function, small_input,
)
from .compound import cross_entropy
from .counts import count_changes, counted_in_blocks, slope_varies, soft_counts
from .inputs import (
    canonical_labels, canonical_layout, check_eps, class_index_target, count_dims, one_hot_labels, running_counts_frozen, tracing, validate_inputs,
)
from .matrix import aggregates_and_gradients, chain_rule, leaf_gradient, matrix_aggregates, matrix_change, matrix_gradient_function, soft_matrix
from .options import (
    DEFAULTS, OPTION_NAMES, OPTIONS, InvalidOption, default_approximation, matrix_option_problem, parameter_problem,
    unknown_arguments_problem, validate_options,
)
from .reduce import (
    absent_counts, all_reduce_sum, average_weights, mean_over_rows, probability_mass, row_sums, running_counts,
)


#: The GPU path (runtime/gpu/), where this is the installed package's loss.py; a standalone file inlines this line
#: with the rest of the runtime, and its copy, named otherwise, carries the torch path alone (so no import statement,
#: which the standalone file would carry too).
GPU_PATH: Any = __import__("metricc.runtime.gpu", fromlist=["gpu"]) if __name__ == "metricc.runtime.loss" else None


#: What the soft-counts kernel reads of a step, gpu.CountOperands' fields (a plain tuple, which TorchScript can pass).
KernelCountInputs = Tuple[Tensor, Tensor, Optional[Tensor], List[int], bool, int, Optional[int], bool]


#: The Python type inspect shows for each option's TorchScript annotation in a loss class's constructor signature.
_ANNOTATION_TYPES = {
    "str": str, "bool": bool, "float": float, "Optional[int]": Optional[int], "Optional[float]": Optional[float],
    "Optional[str]": Optional[str], "Optional[List[float]]": Optional[List[float]],
}


def constructor_signature(loss_class: Any) -> inspect.Signature:
    """The keyword-only constructor of a loss class: every option with the class's compiled default, then each
    metric parameter with its default. Built from the options table, so parameter names never become Python
    names in emitted code (a parameter may be called `self` or `x0`)."""
    defaults = {**DEFAULTS, **loss_class.defaults}
    keyword = inspect.Parameter.KEYWORD_ONLY
    options = [
        inspect.Parameter(option.name, keyword, default=defaults[option.name], annotation=_ANNOTATION_TYPES.get(option.annotation, Any))
        for option in OPTIONS
    ]
    parameters = [inspect.Parameter(name, keyword, default=domain[0], annotation=float) for name, domain in loss_class.metric_parameters.items()]
    return inspect.Signature(options + parameters)


class _ConstructorSignature:
    """`inspect.signature(LossClass)` and `help(LossClass)` show the constructor's keywords; on an instance it is
    None, so that inspect describes the instance's call (preds, target) as for any nn.Module."""

    def __get__(self, instance: Any, owner: Any) -> Optional[inspect.Signature]:
        # a subclass with a constructor of its own (a user's, taking more arguments) is described by that constructor
        ours = getattr(owner.__init__, "__module__", None) == __name__
        return constructor_signature(owner) if instance is None and ours else None


class ParameterSpec(NamedTuple):
    """A metric parameter as an emitted file declares it: its default and its domain (runtime contract 2; files of
    contract 1 wrote the same five values as a bare tuple, which serves as well)."""

    default: float
    lower: float
    upper: float
    lower_open: bool
    upper_open: bool


def _weights_key(weights: Any) -> Optional[Tuple[float, ...]]:
    """class_weights as the float32 buffer holds them, rounded to float32's precision: comparable and readable."""
    if weights is None or len(weights) == 0:
        return None
    return tuple(float(f"{w:.7g}") for w in torch.tensor(list(weights), dtype=torch.float32).tolist())


class LossBase(torch.nn.Module):
    """What every compiled loss shares: its options, its metric parameters and its running counts.

    preds: (N,) or (N, 1, *spatial) for task='binary'; (N, C, *spatial) for 'multiclass' and 'multilabel'.
    Probabilities, or logits with from_logits=True (sigmoid; softmax over C for 'multiclass').
    target: the shape of preds (0/1, one-hot or multi-hot), or class indices (N, *spatial) or (N, 1, *spatial)
    for 'multiclass'. Positions whose target is ignore_index are left out; include_background=False leaves out
    class 0. average: 'micro' pools the classes, 'macro' averages them (multiclass leaves out absent classes),
    'weighted' weighs them by support, 'none' returns one loss per class, 'samples' one metric per sample
    (multilabel). multidim_average='samplewise': counts per image, then the mean over images.
    zero_division: the metric of a class absent from both targets and predictions (no target, and probability
    exactly 0 at every kept position, so inside (0, 1) no class is absent and no weight jumps); None keeps the
    formula's own value there. sync='ddp': counts summed over torch.distributed ranks.
    count_momentum: in training mode, counts mixed with running counts as BatchNorm's statistics are.

    Keyword arguments are the loss options (metricc.runtime.options.OPTIONS) and the metric's parameters;
    the subclass's `defaults` replace the options' own defaults, and `metric_parameters` maps each parameter to
    its ParameterSpec (default, lower, upper, lower_open, upper_open). `inspect.signature(LossClass)` and help() show them all with
    their compiled defaults; repr shows the ones that set an instance apart (`extra_repr`).
    """

    __signature__ = _ConstructorSignature()

    metric_name = "metric"
    defaults = {}  # type: Dict[str, Any]
    metric_parameters = {}  # type: Dict[str, ParameterSpec]
    # slope tensors whose backward pass has run, for the next eager step: Python state TorchScript never sees
    __jit_ignored_attributes__ = ["spare_slopes"]

    approximation_spec: Approximation
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
            raise InvalidOption(unknown_arguments_problem(type(self).__name__, unknown, list(parameters)))
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
        self.approximation_spec = Approximation(options["approximation"], options["steepness"], options["threshold"], options["width"])
        self.average: str = options["average"]
        self.multidim_average: str = options["multidim_average"]
        self.ignore_index = options["ignore_index"]
        self.include_background: bool = options["include_background"]
        self.zero_division = options["zero_division"]
        self.sync = options["sync"]
        self.count_momentum = options["count_momentum"]
        self.eps: float = options["eps"]
        self.maximize: bool = options["direction"] == "maximize"
        self.validate_args: bool = options["validate_args"]
        self.ce_weight: float = options["ce_weight"]
        weights = options["class_weights"]
        self.register_buffer("class_weights", torch.tensor(list(weights or ()), dtype=torch.float32), persistent=False)
        self.register_buffer("running_counts", torch.zeros(0), persistent=options["count_momentum"] is not None)
        self.spare_slopes = []  # type: List[Tensor]
        self.aggregate_names = []

    # A(p)'s options, kept in the one Approximation the runtime passes around; set one after construction and the
    # next step uses it, as for any other option

    @property
    def approximation(self) -> str:
        return self.approximation_spec.kind

    @approximation.setter
    def approximation(self, value: str) -> None:
        spec = self.approximation_spec
        self.approximation_spec = Approximation(value, spec.steepness, spec.threshold, spec.width)

    @property
    def steepness(self) -> float:
        return self.approximation_spec.steepness

    @steepness.setter
    def steepness(self, value: float) -> None:
        spec = self.approximation_spec
        self.approximation_spec = Approximation(spec.kind, float(value), spec.threshold, spec.width)

    @property
    def threshold(self) -> float:
        return self.approximation_spec.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        spec = self.approximation_spec
        self.approximation_spec = Approximation(spec.kind, spec.steepness, float(value), spec.width)

    @property
    def width(self) -> float:
        return self.approximation_spec.width

    @width.setter
    def width(self, value: float) -> None:
        spec = self.approximation_spec
        self.approximation_spec = Approximation(spec.kind, spec.steepness, spec.threshold, float(value))

    def option_values(self) -> Dict[str, Any]:
        """The options this loss runs with, in the table's order, read from its attributes (the direction from
        maximize, class_weights from their buffer)."""
        values: Dict[str, Any] = {}
        for name in OPTION_NAMES:
            if name == "direction":
                values[name] = "maximize" if self.maximize else "minimize"
            elif name == "class_weights":
                values[name] = _weights_key(self.class_weights.tolist())
            else:
                values[name] = getattr(self, name)
        return values

    def extra_repr(self) -> str:
        """What sets this loss apart, as keywords its class takes: the metric parameters that differ from the class's
        defaults, then the options that differ from the options table's (compiled in or passed), so that
        print(model) shows FbetaLoss(beta=2.0, from_logits=True) however from_logits was set. The approximation
        is compared with its default for the task, the direction with the class's (the metric's own)."""
        domains = type(self).metric_parameters
        shown = [f"{name}={value!r}" for name, value in self.parameter_values.items() if value != domains[name][0]]
        plain = dict(DEFAULTS, approximation=default_approximation(self.task), direction=type(self).defaults.get("direction"))
        shown += [f"{name}={value!r}" for name, value in self.option_values().items() if value != plain[name]]
        return ", ".join(shown)

    def options_problem(self, options: Dict[str, Any]) -> Optional[str]:
        """Why these (valid) options do not suit this kind of loss, or None."""
        return None

    # what every form of metric does alike: the loss of a metric value, the inputs, the CE term, create_graph=True

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """compute_loss; a compiled metric repeats this line, so that torch.compile counts recompilations per metric."""
        return self.compute_loss(preds, target)

    def loss_of_metric(self, value: Tensor) -> Tensor:
        """The loss a metric value gives: 1 - metric where it is maximised, the metric itself where minimised."""
        return 1.0 - value if self.maximize else value

    def _inputs(self, preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        """Checked inputs in the canonical (batch, classes, positions) layout: the leaf the gradient is taken by (the
        softmax of multiclass logits, else preds), its detached values in the counting dtype, the one-hot target,
        the mask of kept positions and class-index labels."""
        self._check_inputs(preds, target)
        preds, target, mask, labels = canonical_layout(preds, target, self.task, self.ignore_index)
        leaf = preds
        values = preds.detach().to(target.dtype)
        if self.from_logits and self.task == "multiclass":
            leaf = probabilities(preds.to(target.dtype), self.task, self.from_logits)
            values = leaf.detach()
        return leaf, values, target, mask, labels

    def _check_inputs(self, preds: Tensor, target: Tensor) -> None:
        """validate_inputs where validate_args is set, and an eps this input's dtype counts with."""
        if self.validate_args:
            validate_inputs(preds, target, self.task, self.from_logits, self.ignore_index, self.include_background)
        check_eps(self.eps, preds.dtype)

    def _kernel_inputs(self, preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """_inputs as the Triton kernels read them: the leaf (preds as they are, or the softmax of multiclass logits),
        and the 0/1 target with its mask, or class-index targets kept as their (batch, positions) labels (no mask:
        the kernels leave out ignore_index themselves), so that no N x C target or copy of preds is written."""
        self._check_inputs(preds, target)
        mask: Optional[Tensor] = None
        if class_index_target(preds, target, self.task):
            leaf, target = canonical_labels(preds, target)
        else:
            leaf, target, mask, _ = canonical_layout(preds, target, self.task, self.ignore_index)
        if self.from_logits and self.task == "multiclass":
            leaf = probabilities(leaf.to(torch.promote_types(leaf.dtype, torch.float32)), self.task, self.from_logits)
        return leaf, target, mask

    def _with_cross_entropy(self, loss: Tensor, preds: Tensor, target: Tensor) -> Tensor:
        """The loss plus ce_weight times cross-entropy (a compound loss), where ce_weight is set."""
        if self.ce_weight > 0.0:
            return loss + self.ce_weight * cross_entropy(preds, target, self.task, self.from_logits, self.ignore_index)
        return loss

    def _script_takes_kernels(self, preds: Tensor) -> bool:
        """In a module scripted with kernels, whether this step takes them (gpu.script_with_kernels). Callers test
        hasattr(self, 'script_kernels_on_cpu') first, which TorchScript decides when compiling: without it, the code
        that names metricc's operators is left out (and the archive loads where metricc is not installed)."""
        return preds.is_cuda or self.script_kernels_on_cpu

    @torch.jit.unused
    def _recompute(
        self, target: Tensor, labels: Optional[Tensor], first_class: int, mask: Optional[Tensor],
        value_of: Callable[[Tensor, Tensor], Tensor],
    ) -> Callable[[Tensor], Tensor]:
        """leaf -> value_of(leaf, target), differentiably, for a backward pass with create_graph=True. Class-index
        targets are kept as their labels (not the one-hot target, of the classes from first_class on) and rebuilt
        there, times `mask` where given."""
        classes, dtype = first_class + target.shape[1], target.dtype
        kept_target = target if labels is None else None

        def recompute(leaf: Tensor) -> Tensor:
            scored = kept_target
            if labels is not None:
                scored = one_hot_labels(labels, classes, first_class, dtype)
                scored = scored if mask is None else scored * mask
            return value_of(leaf, scored)

        return recompute

    @torch.jit.unused
    def _on_triton(self, preds: Tensor) -> bool:
        """Whether this step takes the Triton kernels (runtime/gpu/: METRICC_BACKEND, else CUDA tensors)."""
        return GPU_PATH is not None and GPU_PATH.takes_triton_path(preds)

    @torch.jit.unused
    def _takes_a_loss_kernel(self, leaf: Tensor, pooled_rows: bool) -> bool:
        """Whether a loss kernel of gpu/formula.py computes this step's loss: eagerly, for a file that carries its
        formula in Triton's language, without counts of other ranks or steps, and for at most gpu.FUSED_CLASSES
        classes and gpu.FUSED_ROWS rows of counts (one program takes them in turn)."""
        return (
            getattr(type(self), "formula_in_triton", None) is not None
            and not torch.compiler.is_compiling()
            and self.sync is None
            and (self.count_momentum is None or not self.training)
            and leaf.shape[1] <= GPU_PATH.FUSED_CLASSES
            and (pooled_rows or leaf.shape[0] <= GPU_PATH.FUSED_ROWS)
        )

    @torch.jit.unused
    def _loss_settings(self, average: int, absent: int, class_weights: Optional[Tensor]) -> Any:
        """gpu.LossSettings of this loss: its formula in Triton's language, parameters, options and direction."""
        parameters = tuple(self.parameter_values[name] for name in self.metric_parameters)
        return GPU_PATH.LossSettings(
            type(self).formula_in_triton, parameters, self.eps, average, absent, self.zero_division, class_weights,
            self.maximize, self.approximation_spec,
        )

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

    def _check_running_counts_writable(self) -> None:
        """count_momentum writes the running counts in training, state that neither a torch.func transform nor
        torch.export (which captures a function of the inputs) can write: a clear error, not a frozen history."""
        if self.count_momentum is not None and self.training and not torch.jit.is_scripting() and running_counts_frozen():
            raise RuntimeError(
                "count_momentum updates the running counts, state that a torch.func transform (vmap, grad, ...) or "
                "torch.export cannot write: call loss.eval() before the transform or the export, or construct the loss "
                "with count_momentum=None"
            )

    @torch.jit.export
    def reset_running_counts(self) -> None:
        """Forget the running counts (count_momentum): the next training step starts from its own batch."""
        self.running_counts = self.running_counts.new_zeros([0])

    # pickling and checkpoints: Python-side protocol methods, never compiled by TorchScript

    _version = 2  # 2: with count_momentum, state_dict holds the running counts (1: it held nothing)

    def __getstate__(self) -> Dict[str, Any]:
        """The module's state without the spare slope tensors, which belong to this process's last steps."""
        state = super().__getstate__()
        state["spare_slopes"] = []
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """A loss pickled by metricc 0.2 kept A(p)'s options as four attributes and the direction as sign/offset."""
        if "approximation_spec" not in state and "approximation" in state:
            names = ("approximation", "steepness", "threshold", "width")
            state["approximation_spec"] = Approximation(*(state.pop(name) for name in names))
            state["maximize"] = state.pop("sign") < 0
            del state["offset"]
        super().__setstate__(state)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """A class compiled at run time (metricc.loss) pickles as its recipe, so that another process can rebuild it
        without the module of this process; nn.Module's __setstate__ then restores buffers, hooks and mode. A class
        importable by its module's name (a file from generated/, a standalone file) pickles by reference."""
        rebuild = vars(type(self)).get("metricc_rebuild")
        if rebuild is None:
            return super().__reduce_ex__(protocol)
        function, recipe = rebuild
        return function, recipe, self.__getstate__()

    def _load_from_state_dict(
        self, state_dict: Dict[str, Any], prefix: str, local_metadata: Dict[str, Any], strict: bool,
        missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str],
    ) -> None:
        """Running counts take the saved shape and dtype (empty before the first step, then the counts'); a
        checkpoint of version 1 has none, and its history starts empty, as after reset_running_counts()."""
        key = prefix + "running_counts"
        if "running_counts" not in self._non_persistent_buffers_set:
            version = local_metadata.get("version")
            if key not in state_dict and (version is None or version < 2):
                state_dict[key] = self.running_counts.new_zeros([0])
            saved = state_dict.get(key)
            if isinstance(saved, Tensor):
                self.running_counts = self.running_counts.new_empty(saved.shape, dtype=saved.dtype)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


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

    def compute_loss(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss: 1 - metric (or the metric, when it is minimised), averaged as configured, with the closed-form gradient."""
        if torch.jit.is_scripting():
            if hasattr(self, "script_kernels_on_cpu"):  # decided when compiling: see _script_takes_kernels
                if self._script_takes_kernels(preds):
                    return self._with_cross_entropy(self._loss_of_triton_counts(self._kernel_count_inputs(preds, target)), preds, target)
        elif self._on_triton(preds):
            return self._with_cross_entropy(self._loss_on_triton(preds, target), preds, target)
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
        return self._with_cross_entropy(loss, preds, target)

    @torch.jit.unused
    def _loss_on_triton(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss with this batch's counts and their backward pass from the Triton kernels: eagerly, where the
        compiled file carries its formula in Triton's language and the options allow, three kernels in all (the
        counts, the loss, the gradient: gpu/formula.py); else the counts' kernels (one launch each way, nothing the
        size of preds kept) and autograd through the formula on the small counts, which torch.compile fuses."""
        self._check_running_counts_writable()
        operands = self._count_operands(preds, target)

        def loss_of(leaf: Tensor) -> Tensor:
            return self._loss_of_triton_counts(operands._replace(leaf=leaf))

        if not self._takes_a_loss_kernel(operands.leaf, 0 in operands.dims) or self.average == "none":
            return loss_of(operands.leaf)
        class_weights = self.class_weights if self.class_weights.numel() > 0 else None
        if class_weights is not None and class_weights.numel() != operands.leaf.shape[1]:
            return loss_of(operands.leaf)  # _average says what is wrong
        if not self._absent_matters():
            absent = GPU_PATH.ABSENT_UNREAD
        else:
            absent = GPU_PATH.ABSENT_BY_MASS if self._absent_reads_mass() else GPU_PATH.ABSENT_BY_FP
        if self.average == "macro" and self.task == "multiclass":
            average = GPU_PATH.AVERAGE_PRESENT
        else:
            average = GPU_PATH.AVERAGE_BY_SUPPORT if self.average == "weighted" else GPU_PATH.AVERAGE_EQUAL
        return GPU_PATH.count_loss_on_triton(operands, self._loss_settings(average, absent, class_weights), loss_of)

    def _loss_of_triton_counts(self, operands: KernelCountInputs) -> Tensor:
        """The loss from the counts' custom ops and autograd through the formula on the counts (every order exact)."""
        counts, mass = self._kernel_counts(operands)
        leaf, dims = operands[0], operands[3]
        tp, fp, fn, tn, count_scale = self._pooled(counts, dims, self.training)
        if self.sync is not None and 0 in dims:
            # summed over ranks, detached: this rank's counts carry the gradient (a zero change, times d pooled / d batch)
            change = (counts - counts.detach()) * count_scale
            tp, fp, fn, tn = tp + change[0], fp + change[1], fn + change[2], tn + change[3]
        tp_value, fn_value = tp.detach(), fn.detach()  # the averaging weights and absent classes are constants
        absent = self._absent(tp_value, fp.detach(), fn_value, leaf, None, dims, mass)
        value = self._fill_absent(self.formula(tp, fp, fn, tn), absent)
        return self.loss_of_metric(self._average(value, tp_value, fn_value, absent, dims))

    @torch.jit.unused
    def _count_operands(self, preds: Tensor, target: Tensor) -> Any:
        """What the soft-counts kernel reads (gpu.CountOperands)."""
        return GPU_PATH.CountOperands(*self._kernel_count_inputs(preds, target))

    def _kernel_counts(self, operands: KernelCountInputs) -> Tuple[Tensor, Optional[Tensor]]:
        """The four counts and the probability mass (or None) from the soft-counts kernel's op (gpu.soft_counts_of); in
        TorchScript, through the operator that calls it."""
        if torch.jit.is_scripting():
            leaf, target, mask, dims, sigmoid_logits, first_class, ignore_index, with_mass = operands
            counts = GPU_PATH.soft_counts_in_script(leaf, target, mask, dims, sigmoid_logits, self.approximation_spec, first_class, ignore_index, with_mass)
            mass: Optional[Tensor] = None
            if with_mass:
                mass = counts[4]
            return counts[:4], mass
        return GPU_PATH.soft_counts_of(operands, self.approximation_spec)

    def _kernel_count_inputs(self, preds: Tensor, target: Tensor) -> KernelCountInputs:
        """gpu.CountOperands' fields: what the soft-counts kernel reads, class-index targets as they are, and whether
        it is to give the probability mass that absent classes are told by (where something reads it)."""
        leaf, target, mask = self._kernel_inputs(preds, target)
        labels = not target.is_floating_point()
        if not self.include_background:
            leaf = leaf[:, 1:]
            if not labels:
                target = target[:, 1:]
                mask = mask[:, 1:] if mask is not None and mask.shape[1] > 1 else mask
        return (
            leaf, target, mask, count_dims(self.task, self.average, self.multidim_average), self.from_logits and self.task != "multiclass",
            0 if self.include_background else 1, self.ignore_index if labels else None, self._absent_matters() and self._absent_reads_mass(),
        )

    def _metric_on_triton(self, preds: Tensor, target: Tensor) -> Tensor:
        """metric() with this batch's counts from the soft-counts kernel."""
        operands = self._kernel_count_inputs(preds, target)
        counts, mass = self._kernel_counts(operands)
        leaf, dims = operands[0], operands[3]
        tp, fp, fn, tn, _ = self._pooled(counts, dims, False)
        absent = self._absent(tp, fp, fn, leaf, None, dims, mass)
        return self._average(self._fill_absent(self.formula(tp, fp, fn, tn), absent), tp, fn, absent, dims)

    @torch.jit.export
    def metric(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft metric of this batch (no gradient, no running counts), averaged like the loss."""
        with torch.no_grad():
            if torch.jit.is_scripting():
                if hasattr(self, "script_kernels_on_cpu"):  # decided when compiling: see _script_takes_kernels
                    if self._script_takes_kernels(preds):
                        return self._metric_on_triton(preds, target)
            elif self._on_triton(preds):
                return self._metric_on_triton(preds, target)
            counts, target, labels, slope, scale, leaf, mask, dims = self._counts(preds, target)
            tp, fp, fn, tn, count_scale = self._pooled(counts, dims, False)
            absent = self._absent(tp, fp, fn, leaf, mask, dims)
            value = self._fill_absent(self.formula(tp, fp, fn, tn), absent)
            return self._average(value, tp, fn, absent, dims)

    @torch.jit.export
    def metric_of_counts(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        """The guarded formula on count tensors of any one shape, element-wise: no averaging, no zero_division."""
        return self.formula(tp, fp, fn, tn)

    def _counts(self, preds: Tensor, target: Tensor, by_autograd: bool = False) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], float, Tensor, Optional[Tensor], List[int]]:
        """Soft counts TP, FP, FN, TN stacked, of the canonical (batch, classes, positions) layout, and what the
        backward pass needs."""
        leaf, values, target, mask, labels = self._inputs(preds, target)
        if not self.include_background:
            leaf, values, target = leaf[:, 1:], values[:, 1:], target[:, 1:]
            if mask is not None and mask.shape[1] > 1:
                mask = mask[:, 1:]
        dims = count_dims(self.task, self.average, self.multidim_average)
        sigmoid_logits = self.from_logits and self.task != "multiclass"
        with_slope = leaf.requires_grad and torch.is_grad_enabled() and not by_autograd
        slope_out: Optional[Tensor] = None
        if with_slope and slope_varies(self.approximation_spec, sigmoid_logits) and counted_in_blocks(values):
            slope_out = self._slope_buffer(values)
        counts, slope, scale = soft_counts(values, target, mask, dims, sigmoid_logits, self.approximation_spec, with_slope, slope_out)
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

    def _absent(
        self, tp: Tensor, fp: Tensor, fn: Tensor, leaf: Tensor, mask: Optional[Tensor], dims: List[int], mass: Optional[Tensor] = None,
    ) -> Optional[Tensor]:
        """absent_counts where zero_division or a multiclass macro average reads them, else None: the pooled counts
        have no target and this batch puts no probability on the class. With A(p) = p that probability is the
        batch's FP; other approximations, and running counts (whose FP holds earlier steps), sum it from the
        probabilities (`mass` where the soft-counts kernel gave it), so that every approximation decides alike."""
        if not self._absent_matters():
            return None
        predicted = fp
        if self._absent_reads_mass():
            predicted = self._probability_mass(leaf, mask, dims) if mass is None else mass
            if self.sync is not None and 0 in dims:
                predicted = all_reduce_sum(predicted)
        return absent_counts(tp, fn, predicted)

    def _absent_matters(self) -> bool:
        """Whether absent counts matter: zero_division fills them, a multiclass macro average leaves them out."""
        return self.zero_division is not None or (self.average == "macro" and self.task == "multiclass")

    def _absent_reads_mass(self) -> bool:
        """Whether _absent reads the probability mass rather than this batch's FP (see there)."""
        return self.approximation_spec.kind != "identity" or (self.count_momentum is not None and self.training)

    def _probability_mass(self, leaf: Tensor, mask: Optional[Tensor], dims: List[int]) -> Tensor:
        """probability_mass of the leaf's probabilities (the sigmoid of sigmoid logits); only its zeros matter, and a
        sum of non-negative numbers is 0 only where each is, in any dtype."""
        probs = leaf.detach()
        return probability_mass(torch.sigmoid(probs) if self.from_logits and self.task != "multiclass" else probs, mask, dims)

    def _average(self, value: Tensor, tp: Tensor, fn: Tensor, absent: Optional[Tensor], dims: List[int]) -> Tensor:
        """The per-count metric values averaged over classes and rows as configured; rows summed over ranks."""
        if self.average == "micro" and self.sync is None and value.numel() > 0:
            return value.mean()  # one pooled count per row, each row counts: the weights below are all one
        class_weights: Optional[Tensor] = None
        if self.class_weights.numel() > 0:
            if self.class_weights.numel() != tp.shape[1]:
                raise ValueError(
                    f"class_weights has {self.class_weights.numel()} entries for {tp.shape[1]} scored classes"
                    " (include_background=False leaves out class 0)"
                )
            class_weights = self.class_weights
        weights = average_weights(tp, fn, absent, self.task, self.average, class_weights)
        total, rows = row_sums(value, weights, self.average)
        zero_division = self.zero_division
        return self._mean_over_ranks(total, rows, 0 not in dims, 0.0 if zero_division is None else zero_division)

    def _fill_absent(self, value: Tensor, absent: Optional[Tensor], weight: bool = False) -> Tensor:
        """zero_division, where it is set, at the absent counts (absent_counts): as the metric's value there, and as
        0 for its weights (weight=True), since there the value no longer depends on the predictions."""
        zero_division = self.zero_division
        if zero_division is None or absent is None:
            return value
        return value.masked_fill(absent, 0.0 if weight else zero_division)

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
        if self.zero_division is not None and self._absent_float(tp, fp, fn, leaf, mask):
            value, positive, negative = self.zero_division, 0.0, 0.0  # _fill_absent on floats
        if self.maximize:
            value, positive, negative = 1.0 - value, -positive, -negative  # loss_of_metric on floats
        recompute = self._recompute_counts(target, None, mask, dims, counts, 1.0, True)
        return loss_from_floats(value, positive, negative, target, slope, scale, mask, leaf, recompute)

    @torch.jit.unused
    def _absent_float(self, tp: float, fp: float, fn: float, leaf: Tensor, mask: Optional[Tensor]) -> bool:
        """absent_counts of _loss_of_floats' one count; the probabilities are summed only where it has no target."""
        if tp + fn != 0.0:
            return False
        return (fp if self.approximation_spec.kind == "identity" else float(self._probability_mass(leaf, mask, [0, 1, 2]))) == 0.0

    def _loss_of_tensors(
        self, counts: Tensor, counted: Tensor, labels: Optional[Tensor], slope: Optional[Tensor], scale: float, leaf: Tensor,
        mask: Optional[Tensor], dims: List[int],
    ) -> Tensor:
        """The loss with the formula on count tensors, pooled across ranks and steps as configured."""
        tp, fp, fn, tn, count_scale = self._pooled(counts, dims, self.training)
        absent = self._absent(tp, fp, fn, leaf, mask, dims)
        if not (leaf.requires_grad and torch.is_grad_enabled()):
            value = self._fill_absent(self.formula(tp, fp, fn, tn), absent)
        else:
            value, positive, negative = self.formula_and_weights(tp, fp, fn, tn)
            value = self._fill_absent(value, absent)
            positive, negative = self._fill_absent(positive, absent, True), self._fill_absent(negative, absent, True)
            value = self._closed_form(value, leaf, positive, negative, counted, labels, slope, mask, scale, count_scale, [tp, fp, fn, tn], dims)
        return self.loss_of_metric(self._average(value, tp, fn, absent, dims))

    def _loss_by_autograd(self, counts: Tensor, target: Tensor, leaf: Tensor, mask: Optional[Tensor], dims: List[int]) -> Tensor:
        """The loss as autograd through the formula, exact at every order: in TorchScript, under torch.export,
        forward-mode AD and torch.func's transforms, where the closed form's Function cannot serve."""
        self._check_running_counts_writable()
        tp, fp, fn, tn, count_scale = self._pooled(counts, dims, self.training)
        absent = self._absent(tp, fp, fn, leaf, mask, dims)
        value = self._differentiable_value(leaf, target, mask, dims, [tp, fp, fn, tn], count_scale, absent)
        return self.loss_of_metric(self._average(value, tp, fn, absent, dims))

    def _differentiable_value(
        self, leaf: Tensor, target: Tensor, mask: Optional[Tensor], dims: List[int], pooled: List[Tensor], count_scale: float,
        absent: Optional[Tensor],
    ) -> Tensor:
        """The per-count metric values at the pooled counts TP, FP, FN, TN, as a function of leaf in autograd's
        operations: this batch's counts enter as their change times d(pooled) / d(batch), every order exact."""
        sigmoid_logits = self.from_logits and self.task != "multiclass"
        tp_change, fp_change = count_changes(leaf, target, mask, dims, sigmoid_logits, self.approximation_spec)
        tp_change, fp_change = tp_change * count_scale, fp_change * count_scale
        tp, fp, fn, tn = pooled[0], pooled[1], pooled[2], pooled[3]
        return self._fill_absent(self.formula(tp + tp_change, fp + fp_change, fn - tp_change, tn - fp_change), absent)

    @torch.jit.unused
    def _recompute_counts(
        self, target: Tensor, labels: Optional[Tensor], mask: Optional[Tensor], dims: List[int], pooled: Any,
        count_scale: float, whole_loss: bool,
    ) -> Callable[[Tensor], Tensor]:
        """leaf -> the per-count values (whole_loss: the loss of one count), differentiably (_recompute); pooled: TP,
        FP, FN, TN (a list, or stacked on axis 0)."""
        first_class = 0 if self.include_background else 1

        def value_of(leaf: Tensor, scored: Tensor) -> Tensor:
            counts = list(pooled)
            absent = self._absent(counts[0], counts[1], counts[2], leaf, mask, dims)
            value = self._differentiable_value(leaf, scored, mask, dims, counts, count_scale, absent)
            return self.loss_of_metric(value.reshape(())) if whole_loss else value

        return self._recompute(target, labels, first_class, None, value_of)

    @torch.jit.unused
    def _closed_form(
        self, value: Tensor, leaf: Tensor, positive: Tensor, negative: Tensor, target: Tensor, labels: Optional[Tensor],
        slope: Optional[Tensor], mask: Optional[Tensor], scale: float, count_scale: float, pooled: List[Tensor], dims: List[int],
    ) -> Tensor:
        """The detached per-count values with the closed-form gradient with respect to `leaf` (ClosedFormGradient):
        per sample, d loss / d a_i = y_i (dTP - dFN) + (1 - y_i)(dFP - dTN), times A'(p_i) = scale * slope_i. It keeps
        only the slope (and class-index labels, not their one-hot target); a slope that _slope_buffer handed out
        goes back to spare_slopes once its backward pass has read it. Traced, there is no create_graph=True pass."""
        recompute = None if tracing() else self._recompute_counts(target, labels, mask, dims, pooled, count_scale, False)
        if recompute is not None and leaf.numel() <= small_input():
            # a small input: the weights now, as autograd's own nodes would, and one product in the backward pass
            weights = closed_form_gradient(None, scale * count_scale, positive, negative, target, slope, mask)
            return precomputed_function(value, leaf, weights, recompute)
        spare = self.spare_slopes if slope is not None and counted_in_blocks(slope) else None
        first_class = 0 if self.include_background else 1
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

    def compute_loss(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss: 1 - metric (or the metric, when it is minimised), with the closed-form gradient."""
        if torch.jit.is_scripting():
            if hasattr(self, "script_kernels_on_cpu"):  # decided when compiling: see _script_takes_kernels
                if self._script_takes_matrix_kernels(preds):
                    leaf, kernel_target, mask, per_row, ignore_index = self._matrix_operands(preds, target)
                    loss = self._loss_of_triton_matrix(leaf, kernel_target, mask, per_row, ignore_index)
                    return self._with_cross_entropy(loss, preds, target)
        elif self._on_triton(preds):
            return self._with_cross_entropy(self._loss_on_triton(preds, target), preds, target)
        by_autograd = autograd_through_formula(preds)
        matrix, counted, labels, slope, scale, leaf, mask, per_row = self._matrix(preds, target, by_autograd)
        pooled, count_scale = self._pool(matrix, not per_row, self.training)
        kept = self._kept_rows(counted, per_row)
        if by_autograd:
            self._check_running_counts_writable()
            value = self._differentiable_value(leaf, counted, pooled, count_scale, per_row)
        elif not (leaf.requires_grad and torch.is_grad_enabled()):
            value = self.formula(matrix_aggregates(pooled, self.aggregate_names))
        else:
            aggregates, gradients = aggregates_and_gradients(pooled, self.aggregate_names)
            value, partials = self.formula_and_partials(aggregates)
            gradient = chain_rule(partials, gradients, pooled)
            value = self._closed_form(value, leaf, gradient, counted, labels, slope, mask, scale * count_scale, count_scale, pooled, per_row)
        return self._with_cross_entropy(self.loss_of_metric(self._mean(value, kept, per_row)), preds, target)

    @torch.jit.unused
    def _on_triton(self, preds: Tensor) -> bool:
        """LossBase._on_triton, for matrices of at most gpu.MATRIX_CLASSES classes (more take the torch path)."""
        return super()._on_triton(preds) and preds.dim() > 1 and preds.shape[1] <= GPU_PATH.MATRIX_CLASSES

    def _script_takes_matrix_kernels(self, preds: Tensor) -> bool:
        """_script_takes_kernels for matrices of at most gpu.MATRIX_CLASSES classes (_on_triton's bound)."""
        return self._script_takes_kernels(preds) and preds.dim() > 1 and preds.shape[1] <= self.script_matrix_classes

    @torch.jit.unused
    def _loss_on_triton(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss with this batch's matrix and its backward pass from the Triton kernels: eagerly, where the compiled
        file carries its formula in Triton's language and no counts of other ranks or steps are pooled, three kernels
        (the matrix, the loss with G, the gradient: gpu/formula.py); else the matrix's ops and autograd through the
        formula on the small matrix, as _differentiable_value."""
        self._check_running_counts_writable()
        leaf, target, mask, per_row, ignore_index = self._matrix_operands(preds, target)

        def loss_of(leaf: Tensor) -> Tensor:
            return self._loss_of_triton_matrix(leaf, target, mask, per_row, ignore_index)

        if not self._takes_a_loss_kernel(leaf, not per_row):
            return loss_of(leaf)
        kept: Optional[Tensor] = None  # class indices without ignore_index: a position, hence every row, is kept
        if target.is_floating_point() or ignore_index is not None or target.numel() == 0:
            kept = self._kept_rows_read(leaf, target, mask, per_row)
        operands = GPU_PATH.MatrixOperands(leaf, target, mask, kept, per_row, ignore_index)
        settings = self._loss_settings(GPU_PATH.AVERAGE_EQUAL, GPU_PATH.ABSENT_UNREAD, None)
        return GPU_PATH.matrix_loss_on_triton(operands, settings, loss_of)

    def _loss_of_triton_matrix(self, leaf: Tensor, target: Tensor, mask: Optional[Tensor], per_row: bool, ignore_index: Optional[int]) -> Tensor:
        """The loss from the matrix's custom ops and autograd through the formula on the matrix (every order exact)."""
        matrix = self._kernel_matrix(leaf, target, mask, per_row, ignore_index)
        pooled, count_scale = self._pool(matrix, not per_row, self.training)
        if self.sync is not None and not per_row:
            pooled = pooled + (matrix - matrix.detach()) * count_scale  # summed over ranks, detached: as for the counts
        value = self.formula(matrix_aggregates(pooled, self.aggregate_names))
        return self.loss_of_metric(self._mean(value, self._kept_rows_read(matrix, target, mask, per_row), per_row))

    def _kernel_matrix(self, leaf: Tensor, target: Tensor, mask: Optional[Tensor], per_row: bool, ignore_index: Optional[int]) -> Tensor:
        """The soft matrix from the soft-matrix kernel's op; in TorchScript, through the operator that calls it."""
        if torch.jit.is_scripting():
            return GPU_PATH.matrix_in_script(leaf, target, mask, per_row, self.approximation_spec, ignore_index)
        return GPU_PATH.matrix_on_triton(leaf, target, mask, per_row, self.approximation_spec, ignore_index)

    def _matrix_operands(self, preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor], bool, Optional[int]]:
        """What the soft-matrix kernel reads (_kernel_inputs: class-index targets as they are), whether per image, and
        the ignore_index it leaves out of class-index labels (a float target comes with its mask)."""
        leaf, target, mask = self._kernel_inputs(preds, target)
        ignore_index = None if target.is_floating_point() else self.ignore_index
        return leaf, target, mask, self.multidim_average == "samplewise", ignore_index

    def _matrix_on_triton(self, preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor], bool]:
        """This batch's matrix from the soft-matrix kernel, with the target and mask it read."""
        leaf, target, mask, per_row, ignore_index = self._matrix_operands(preds, target)
        return self._kernel_matrix(leaf, target, mask, per_row, ignore_index), target, mask, per_row

    def _kept_rows_read(self, matrix: Tensor, target: Tensor, mask: Optional[Tensor], per_row: bool) -> Tensor:
        """_kept_rows of the target and mask the kernels read; for class-index labels, from the labels alone."""
        ignore_index = self.ignore_index
        if target.is_floating_point():
            counted = target if mask is None else target * mask
        elif ignore_index is None:
            counted = matrix.new_ones([1, 1, 1]).expand(target.shape[0], 1, target.shape[1])  # every position kept, nothing written
        else:
            counted = (target != ignore_index).to(matrix.dtype).unsqueeze(1)
        return self._kept_rows(counted, per_row)

    @torch.jit.export
    def metric(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft metric of this batch (no gradient, no running counts), per image averaged with samplewise."""
        with torch.no_grad():
            if torch.jit.is_scripting():
                if hasattr(self, "script_kernels_on_cpu"):  # decided when compiling: see _script_takes_kernels
                    if self._script_takes_matrix_kernels(preds):
                        return self._metric_on_triton(preds, target)
            elif self._on_triton(preds):
                return self._metric_on_triton(preds, target)
            matrix, counted, labels, slope, scale, leaf, mask, per_row = self._matrix(preds, target)
            pooled, count_scale = self._pool(matrix, not per_row, False)
            kept = self._kept_rows(counted, per_row)
            return self._mean(self.formula(matrix_aggregates(pooled, self.aggregate_names)), kept, per_row)

    def _metric_on_triton(self, preds: Tensor, target: Tensor) -> Tensor:
        """metric() with this batch's matrix from the soft-matrix kernel."""
        matrix, target, mask, per_row = self._matrix_on_triton(preds, target)
        value = self.formula(matrix_aggregates(self._pool(matrix, not per_row, False)[0], self.aggregate_names))
        return self._mean(value, self._kept_rows_read(matrix, target, mask, per_row), per_row)

    def _differentiable_value(self, leaf: Tensor, target: Tensor, pooled: Tensor, count_scale: float, per_row: bool) -> Tensor:
        """The metric of each pooled matrix as a function of leaf in autograd's operations: this batch's matrix
        enters as its change times d(pooled) / d(batch), every derivative order exact."""
        change = matrix_change(leaf, target, self.approximation_spec, per_row)
        return self.formula(matrix_aggregates(pooled + change * count_scale, self.aggregate_names))

    @torch.jit.unused
    def _closed_form(
        self, value: Tensor, leaf: Tensor, gradient: Tensor, target: Tensor, labels: Optional[Tensor], slope: Optional[Tensor],
        mask: Optional[Tensor], scale: float, count_scale: float, pooled: Tensor, per_row: bool,
    ) -> Tensor:
        """MatrixGradient: the closed form first, autograd through _differentiable_value for a backward pass with
        create_graph=True (_recompute). Traced, there is no create_graph=True pass."""
        def value_of(leaf: Tensor, scored: Tensor) -> Tensor:
            return self._differentiable_value(leaf, scored, pooled, count_scale, per_row)

        recompute = None if tracing() else self._recompute(target, labels, 0, mask, value_of)
        if recompute is not None and leaf.numel() <= small_input():
            # a small input: the weights now, as autograd's own nodes would, and one product in the backward pass
            return precomputed_function(value, leaf, leaf_gradient(gradient * scale, target, labels, slope, mask, per_row), recompute)
        return matrix_gradient_function(value, leaf, gradient, target, labels, slope, mask, scale, per_row, recompute)

    @torch.jit.export
    def confusion_matrix(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft confusion matrix of this batch, (C, C), or (images, C, C) with samplewise."""
        with torch.no_grad():
            if torch.jit.is_scripting():
                if hasattr(self, "script_kernels_on_cpu"):  # decided when compiling: see _script_takes_kernels
                    if self._script_takes_matrix_kernels(preds):
                        return self._per_image_or_batch(self._matrix_on_triton(preds, target)[0])
            elif self._on_triton(preds):
                return self._per_image_or_batch(self._matrix_on_triton(preds, target)[0])
            return self._per_image_or_batch(self._matrix(preds, target)[0])

    def _per_image_or_batch(self, matrices: Tensor) -> Tensor:
        """confusion_matrix's answer: the matrix of each image with samplewise, else the batch's one."""
        return matrices if self.multidim_average == "samplewise" else matrices[0]

    def _matrix(self, preds: Tensor, target: Tensor, by_autograd: bool = False) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], float, Tensor, Optional[Tensor], bool]:
        """M of the canonical (batch, classes, positions) layout, and what the backward pass needs: the masked
        one-hot target, class-index labels, A'(p) as (slope or None, constant factor), the leaf and the mask."""
        leaf, values, target, mask, labels = self._inputs(preds, target)
        with_slope = leaf.requires_grad and torch.is_grad_enabled() and not by_autograd
        soft = values
        slope: Optional[Tensor] = None
        if self.approximation_spec.kind != "identity":
            soft, complement, slope = soft_block(values, False, self.approximation_spec, with_slope, None, None)
        if mask is not None:
            target = target * mask
        per_row = self.multidim_average == "samplewise"
        scale = approximation_scale(self.approximation_spec)
        return soft_matrix(soft, target, labels, mask, per_row), target, labels, slope, scale, leaf, mask, per_row

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
