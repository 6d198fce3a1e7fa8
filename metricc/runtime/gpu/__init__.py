"""The GPU path: which path a step takes (METRICC_BACKEND, else the device), and the soft counts and matrix from
the Triton kernels (gpu/kernels.py) in the shapes the torch path gives them. Only torch is imported here: triton is
imported by the first step that takes its path, so `import metricc` and every CPU step never import it.

A package of its own beside the runtime's modules: a standalone file inlines those and carries the torch path
alone (runtime/loss.py reaches this package only where it is the installed package's loss.py)."""

import contextlib
import os
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ..approximate import Approximation
from ..options import InvalidOption

#: The values METRICC_BACKEND takes; unset (or empty), CUDA tensors take the Triton path where triton imports.
BACKENDS = ("torch", "triton")
#: The approximations of A(p) as the kernels number them (a compile-time constant of each kernel).
KERNEL_KINDS = {"anyloss": 0, "identity": 1, "linear": 2}

#: Losses of at most this many classes (after include_background) and rows of counts (images with samplewise,
#: samples with average='samples') take the one loss launch, whose single program takes the rows in turn (a bound
#: chosen without a GPU to measure it; more rows take the custom ops, whose kernels spread over the rows).
FUSED_CLASSES = 1024
FUSED_ROWS = 64
#: Matrix metrics of at most this many classes take the kernels (every class of a tile in one block of registers).
MATRIX_CLASSES = 32

_triton_importable: List[bool] = []
_setting: List[str] = []


def backend_setting() -> str:
    """METRICC_BACKEND, checked: 'torch', 'triton' or '' (choose by device). Read on the first step of the process
    (reading the environment costs microseconds a step) and kept; reset_backend_setting() reads it again."""
    if not _setting:
        value = os.environ.get("METRICC_BACKEND", "")
        if value not in BACKENDS and value != "":
            raise InvalidOption(f"METRICC_BACKEND={value!r} is not a backend: set it to 'torch' or 'triton', or leave it unset")
        _setting.append(value)
    return _setting[0]


def reset_backend_setting() -> None:
    """Forget the METRICC_BACKEND read so far: the next step reads it again (after os.environ changed it)."""
    _setting.clear()


def triton_importable() -> bool:
    """Whether triton imports here, with the torch.library API the kernels register through (torch 2.6 and
    later), decided once per process."""
    if not _triton_importable:
        try:
            import triton  # noqa: F401
            from torch.library import triton_op, wrap_triton  # noqa: F401
        except ImportError:
            _triton_importable.append(False)
        else:
            _triton_importable.append(True)
    return _triton_importable[0]


def _require_triton(what: str) -> None:
    """ImportError, telling what to install, unless triton_importable()."""
    if not triton_importable():
        raise ImportError(f"{what} needs triton and torch 2.6 or later: pip install 'metricc[triton]'")


def takes_triton_path(preds: Tensor) -> bool:
    """Whether this step's counts and gradient come from the Triton kernels: forced by METRICC_BACKEND, else on
    CUDA tensors where triton imports. Never inside a torch.func transform or forward-mode AD, whose tensors a
    custom kernel cannot read."""
    setting = backend_setting()
    if setting == "torch" or (setting == "" and not preds.is_cuda):
        return False
    if torch._C._are_functorch_transforms_active() or torch.autograd.forward_ad._current_level >= 0:
        return False
    if setting == "triton":
        _require_triton("METRICC_BACKEND='triton' (unset it for the torch path)")
    return setting == "triton" or triton_importable()


def _on_its_device(leaf: Tensor) -> Any:
    """Triton launches on the current CUDA device: eagerly, make it leaf's (a loss on a second GPU). The backward
    pass runs on autograd's thread for that device already; compiled code sets its own."""
    if leaf.is_cuda and not torch.compiler.is_compiling():
        return torch.cuda.device(leaf.device)
    return contextlib.nullcontext()


def soft_counts_on_triton(
    leaf: Tensor, target: Tensor, mask: Optional[Tensor], dims: List[int], sigmoid_logits: bool, approximation: Approximation,
    first_class: int = 0, ignore_index: Optional[int] = None, with_mass: bool = False,
) -> Tensor:
    """TP, FP, FN, TN of the canonical (batch, classes, positions) layout summed over dims, stacked on axis 0 as
    soft_counts gives them, (4, rows or 1, classes or 1, 1); with_mass, a fifth of that shape, zero exactly where
    probability_mass is (the kept positions with p != 0). Differentiable with respect to leaf, whose backward pass is
    one more kernel that recomputes A'(p) from leaf. target: 0/1 floats beside mask, or (batch, positions) class
    indices, class c of leaf being label c + first_class, positions labelled ignore_index left out."""
    from .kernels import kernel_constants, soft_counts_op

    first, second = kernel_constants(approximation)
    pooled = 0 in dims
    kind = KERNEL_KINDS[approximation.kind]
    with _on_its_device(leaf):
        counts = soft_counts_op(leaf, target, mask, pooled, sigmoid_logits, kind, first, second, first_class, ignore_index, with_mass)
    counts = counts.unsqueeze(-1)  # (4 or 5, rows or 1, classes, 1)
    return counts.sum(2, keepdim=True) if 1 in dims else counts


class CountOperands(NamedTuple):
    """What the soft-counts kernel reads of a step, in the canonical (batch, classes, positions) layout: the leaf, the
    0/1 target with its mask or (batch, positions) class indices (class c of leaf being label c + first_class,
    positions labelled ignore_index left out), the axes a count sums over, whether leaf holds sigmoid logits, and
    whether the kernel also gives the probability mass that absent classes are told by."""

    leaf: Tensor
    target: Tensor
    mask: Optional[Tensor]
    dims: List[int]
    sigmoid_logits: bool
    first_class: int
    ignore_index: Optional[int]
    with_mass: bool


def soft_counts_of(operands: CountOperands, approximation: Approximation) -> Tuple[Tensor, Optional[Tensor]]:
    """soft_counts_on_triton of the operands: the four counts, and the probability mass where asked for (else None)."""
    leaf, target, mask, dims, sigmoid_logits, first_class, ignore_index, with_mass = operands
    counts = soft_counts_on_triton(leaf, target, mask, dims, sigmoid_logits, approximation, first_class, ignore_index, with_mass)
    return counts[:4], counts[4] if with_mass else None


#: How a loss kernel weighs the counts of a row (reduce.average_weights): every count alike, by support (weighted),
#: or the present classes alike (the multiclass macro average).
AVERAGE_EQUAL, AVERAGE_BY_SUPPORT, AVERAGE_PRESENT = 0, 1, 2
#: How a loss kernel tells absent counts (LossBase._absent): not at all (nothing reads them), by FP (A(p) = p), or by
#: the probability mass, the soft-counts kernel's fifth sum.
ABSENT_UNREAD, ABSENT_BY_FP, ABSENT_BY_MASS = 0, 1, 2


class LossSettings(NamedTuple):
    """What a loss kernel (gpu/formula.py) needs beyond its operands: the compiled metric's formula in Triton's
    language (formula_in_triton) and its parameters in their declared order, eps, the average and how absent counts
    are told (AVERAGE_*, ABSENT_*; four counts only), zero_division, class_weights, the direction and A(p)."""

    formula: Any
    parameters: Tuple[float, ...]
    eps: float
    average: int
    absent: int
    zero_division: Optional[float]
    class_weights: Optional[Tensor]
    maximize: bool
    approximation: Approximation


def count_loss_on_triton(operands: CountOperands, settings: LossSettings, recompute: Callable[[Tensor], Tensor]) -> Tensor:
    """The loss of a four-count metric from three kernels, whatever its formula (gpu/formula.py); a gradient of the
    gradient is autograd through recompute (leaf -> the same loss from the custom ops)."""
    from .formula import fused_count_loss

    with _on_its_device(operands.leaf):
        return fused_count_loss(operands, settings, recompute)


def matrix_on_triton(
    leaf: Tensor, target: Tensor, mask: Optional[Tensor], per_row: bool, approximation: Approximation, ignore_index: Optional[int] = None,
) -> Tensor:
    """The soft C x C matrix of the canonical layout as soft_matrix gives it, (rows or 1, C, C), differentiable with
    respect to leaf (at most MATRIX_CLASSES classes); target as soft_counts_on_triton reads it, of every class."""
    from .kernels import kernel_constants, soft_matrix_op

    first, second = kernel_constants(approximation)
    with _on_its_device(leaf):
        return soft_matrix_op(leaf, target, mask, not per_row, KERNEL_KINDS[approximation.kind], first, second, ignore_index)


class MatrixOperands(NamedTuple):
    """What the soft-matrix kernel reads of a step (CountOperands' layout), and 1 for each matrix with a kept
    position (None where every matrix has one), per image with per_row."""

    leaf: Tensor
    target: Tensor
    mask: Optional[Tensor]
    kept: Optional[Tensor]
    per_row: bool
    ignore_index: Optional[int]


def matrix_loss_on_triton(operands: MatrixOperands, settings: LossSettings, recompute: Callable[[Tensor], Tensor]) -> Tensor:
    """The loss of a matrix metric from three kernels, whatever its formula (gpu/formula.py)."""
    from .formula import fused_matrix_loss

    with _on_its_device(operands.leaf):
        return fused_matrix_loss(operands, settings, recompute)


# TorchScript's way in (script_with_kernels): two operators defined here, torch-only, so that a scripted module can name
# them whether or not triton is installed; their Python implementations call the kernels' own ops (importing triton
# on their first call), whose autograd formulas serve, every order exact. torch.compile and torch.export call the
# kernels' ops directly (gpu/kernels.py), which they trace into. A scripted module reaches them through
# soft_counts_in_script and matrix_in_script, which a standalone file never names.

_SCRIPT_LIBRARY = torch.library.Library("metricc", "FRAGMENT")
_SCRIPT_LIBRARY.define(
    "scripted_soft_counts(Tensor leaf, Tensor target, Tensor? mask, int[] dims, bool sigmoid_logits, str approximation,"
    " float steepness, float threshold, float width, int first_class, int? ignore_index, bool with_mass) -> Tensor"
)
_SCRIPT_LIBRARY.define(
    "scripted_soft_matrix(Tensor leaf, Tensor target, Tensor? mask, bool per_row, str approximation, float steepness,"
    " float threshold, float width, int? ignore_index) -> Tensor"
)


def _scripted_soft_counts(
    leaf: Tensor, target: Tensor, mask: Optional[Tensor], dims: List[int], sigmoid_logits: bool, approximation: str,
    steepness: float, threshold: float, width: float, first_class: int, ignore_index: Optional[int], with_mass: bool,
) -> Tensor:
    """metricc::scripted_soft_counts: soft_counts_on_triton, its approximation given by its four fields."""
    _require_triton("a loss scripted with metricc.runtime.gpu.script_with_kernels")
    spec = Approximation(approximation, steepness, threshold, width)
    return soft_counts_on_triton(leaf, target, mask, list(dims), sigmoid_logits, spec, first_class, ignore_index, with_mass)


def _scripted_soft_matrix(
    leaf: Tensor, target: Tensor, mask: Optional[Tensor], per_row: bool, approximation: str, steepness: float, threshold: float,
    width: float, ignore_index: Optional[int],
) -> Tensor:
    """metricc::scripted_soft_matrix: matrix_on_triton, its approximation given by its four fields."""
    _require_triton("a loss scripted with metricc.runtime.gpu.script_with_kernels")
    return matrix_on_triton(leaf, target, mask, per_row, Approximation(approximation, steepness, threshold, width), ignore_index)


# CompositeImplicitAutograd: autograd records the kernels' ops these call, not these operators
_SCRIPT_LIBRARY.impl("scripted_soft_counts", _scripted_soft_counts, "CompositeImplicitAutograd")
_SCRIPT_LIBRARY.impl("scripted_soft_matrix", _scripted_soft_matrix, "CompositeImplicitAutograd")


def soft_counts_in_script(
    leaf: Tensor, target: Tensor, mask: Optional[Tensor], dims: List[int], sigmoid_logits: bool, approximation: Approximation,
    first_class: int, ignore_index: Optional[int], with_mass: bool,
) -> Tensor:
    """soft_counts_on_triton, as TorchScript calls it: through metricc::scripted_soft_counts."""
    return torch.ops.metricc.scripted_soft_counts(
        leaf, target, mask, dims, sigmoid_logits, approximation.kind, approximation.steepness, approximation.threshold,
        approximation.width, first_class, ignore_index, with_mass,
    )


def matrix_in_script(
    leaf: Tensor, target: Tensor, mask: Optional[Tensor], per_row: bool, approximation: Approximation, ignore_index: Optional[int],
) -> Tensor:
    """matrix_on_triton, as TorchScript calls it: through metricc::scripted_soft_matrix."""
    return torch.ops.metricc.scripted_soft_matrix(
        leaf, target, mask, per_row, approximation.kind, approximation.steepness, approximation.threshold, approximation.width,
        ignore_index,
    )


def script_with_kernels(loss: torch.nn.Module, on_cpu: bool = False) -> torch.jit.ScriptModule:
    """torch.jit.script(loss) whose CUDA steps take the kernels through torch.ops.metricc (the counts' or matrix's
    kernels, autograd through the formula, as under torch.compile); on_cpu, CPU ones too (TRITON_INTERPRET=1). Its
    archive loads where metricc.runtime.gpu is imported; torch.jit.script(loss) keeps the torch path, whose archive
    needs no metricc. The losses carry the setting while scripting: do not script them in another thread meanwhile."""
    from ..loss import LossBase

    _require_triton("script_with_kernels")
    losses = [module for module in loss.modules() if isinstance(module, LossBase)]
    if not losses:
        raise TypeError(
            f"script_with_kernels takes a loss compiled by metricc (metricc.loss, or a file of generated/), not a "
            f"{type(loss).__name__}; a standalone file carries the torch path only: script it with torch.jit.script"
        )
    for module in losses:  # read by TorchScript when compiling (LossBase._script_takes_kernels)
        module.script_kernels_on_cpu, module.script_matrix_classes = on_cpu, MATRIX_CLASSES
    try:
        return torch.jit.script(loss)
    finally:
        for module in losses:
            del module.script_kernels_on_cpu, module.script_matrix_classes
