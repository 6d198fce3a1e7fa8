"""The canonical (batch, classes, positions) layout of preds and target, and the checks that reject bad inputs
with a message naming them before they can become a silent number."""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .options import InvalidOption, eps_problem, smallest_eps


def value_check_block() -> int:
    """Float targets above this many elements are checked in blocks through one scratch buffer of this size.
    (Tuning constants are functions here: TorchScript cannot read module-level numbers.)"""
    return 1 << 17


def class_index_target(preds: Tensor, target: Tensor, task: str) -> bool:
    """Multiclass targets given as class indices, (N, *spatial) or MONAI's (N, 1, *spatial), beside preds (N, C, *spatial)."""
    if task != "multiclass" or preds.dim() < 2:
        return False
    if target.dim() == preds.dim() - 1:
        return True
    return target.dim() == preds.dim() and preds.shape[1] > 1 and target.shape[1] == 1 and not target.is_floating_point()


def canonical_layout(
    preds: Tensor, target: Tensor, task: str, ignore_index: Optional[int]
) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """Reshape to (batch, classes, positions): preds, a one-hot target in the counting dtype, a 0/1 mask of kept
    positions (None when nothing is ignored), and class-index targets as (batch, 1, positions) labels (else None)."""
    dtype = torch.promote_types(preds.dtype, torch.float32)
    target = target.detach()
    # rows are images: a binary (N,) or (N, 1) input is one row of N positions; sizes are explicit for empty inputs
    rows = preds.shape[0] if task != "binary" or preds.dim() > 2 else 1
    classes = 1 if task == "binary" else preds.shape[1]
    shape = [rows, classes, preds.numel() // max(rows * classes, 1)]
    mask: Optional[Tensor] = None
    labels: Optional[Tensor] = None
    if class_index_target(preds, target, task):
        labels = target.reshape(rows, 1, shape[2]).long()
        if ignore_index is not None:
            keep = labels != ignore_index
            labels = torch.where(keep, labels, torch.zeros_like(labels))
            mask = keep.to(dtype)
        one_hot = one_hot_labels(labels, classes, 0, dtype)
    else:
        one_hot = target.reshape(shape)
        if ignore_index is not None:
            keep = one_hot != ignore_index
            one_hot = torch.where(keep, one_hot, torch.zeros_like(one_hot))
            mask = keep.to(dtype)
    return preds.reshape(shape), one_hot.to(dtype), mask, labels


def canonical_labels(preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
    """Multiclass preds as (batch, classes, positions) and their class-index target as (batch, positions) labels,
    views where they can be: what the Triton kernels read in place of canonical_layout's one-hot target and mask."""
    rows, classes = preds.shape[0], preds.shape[1]
    positions = preds.numel() // max(rows * classes, 1)
    return preds.reshape(rows, classes, positions), target.detach().reshape(rows, positions)


def one_hot_labels(labels: Tensor, classes: int, first_class: int, dtype: torch.dtype) -> Tensor:
    """(batch, 1, positions) class indices as 0/1 over classes first_class .. classes - 1, on axis 1.

    Eagerly a scatter into zeros, the fastest way; under torch.compile a comparison, which fuses into the
    kernels that read it instead of being written out.
    """
    if tracing():
        scored = torch.arange(first_class, classes, device=labels.device).reshape(1, -1, 1)
        return (labels == scored).to(dtype)
    shape = [labels.shape[0], classes, labels.shape[2]]
    one_hot = torch.zeros(shape, dtype=dtype, device=labels.device).scatter_(1, labels, 1.0)
    return one_hot[:, first_class:]


@torch.jit.unused
def functorch_active() -> bool:
    """Whether a torch.func transform (vmap, grad, jacrev, ...) is running: its wrapped tensors have no data to
    read and take no in-place writes into plain tensors."""
    return torch._C._are_functorch_transforms_active()


@torch.jit.unused
def running_counts_frozen() -> bool:
    """Whether module state written in the forward pass would be lost: under a torch.func transform or torch.export."""
    return functorch_active() or torch.compiler.is_exporting()


@torch.jit.unused
def _traced() -> bool:
    return torch.compiler.is_compiling() or functorch_active()


def tracing() -> bool:
    """True while torch.compile or torch.export traces, or a torch.func transform runs: whole-tensor operations
    only (no blocks written in place, no scatter into fresh zeros); under compile they fuse and temporaries are free."""
    if torch.jit.is_scripting():
        return False
    return _traced()


def value_checks_enabled() -> bool:
    """Checks of tensor values need the data; torch.compile, torch.export and torch.func's transforms trace
    without it and skip them."""
    if torch.jit.is_scripting():
        return True
    return not _traced()


def validate_inputs(
    preds: Tensor, target: Tensor, task: str, from_logits: bool, ignore_index: Optional[int], include_background: bool
) -> None:
    """Raise ValueError naming the offending input; never let bad data become a silent number."""
    preds = preds.detach()
    if task != "binary":
        if preds.dim() < 2:
            raise ValueError(f"{task} preds must have shape (N, C, ...) with classes on axis 1, got {list(preds.shape)}")
        classes = preds.shape[1]
        if task == "multiclass" and from_logits and classes < 2:
            raise ValueError(
                f"softmax over a single channel is constant (1 everywhere), got preds of shape {list(preds.shape)}: "
                "use task='binary' (sigmoid) for one channel"
            )
        if not include_background and classes < 2:
            raise ValueError(f"include_background=False drops class 0 and leaves no class of preds of shape {list(preds.shape)}")
    class_indices = class_index_target(preds, target, task)
    if class_indices:
        _check_class_index_shape(preds, target)
    elif not (target.shape == preds.shape or (task == "binary" and _channel_dropped(preds, target))):
        classes_differ = task != "binary" and target.dim() == preds.dim() and target.dim() > 1 and target.shape[1] != preds.shape[1]
        hint = f" ({preds.shape[1]} classes in preds, {target.shape[1]} in target)" if classes_differ else ""
        raise ValueError(f"target of shape {list(target.shape)} does not match preds of shape {list(preds.shape)}{hint}")
    if value_checks_enabled():
        _check_values(preds, target.detach(), class_indices, from_logits, ignore_index)


def check_eps(eps: float, preds_dtype: torch.dtype) -> None:
    """Refuse an eps that the constructor accepted for float64 counts when this input is counted in float32."""
    if preds_dtype != torch.float64 and eps < smallest_eps(False):
        raise InvalidOption(eps_problem(eps, False))


def _check_values(preds: Tensor, target: Tensor, class_indices: bool, from_logits: bool, ignore_index: Optional[int]) -> None:
    """The values of target and preds, decided from a few bounds fetched in one transfer (a GPU waits once).

    Class indices and integer 0/1 targets by their range; a float 0/1 target by t - t * t, which is exactly
    zero at 0 and 1, nonzero elsewhere and NaN at NaN or inf (no comparisons, which are slow); preds by their
    range, which aminmax gives in one pass, NaN propagating and an infinity being its own bound.
    """
    kept = target if ignore_index is None else target[target != ignore_index]
    checks: List[Tensor] = []
    check_target = kept.numel() > 0 and kept.dtype != torch.bool
    if check_target:
        if class_indices or not kept.is_floating_point():
            checks += list(torch.aminmax(kept))
        elif kept.numel() <= value_check_block():
            checks.append(torch.addcmul(kept, kept, kept, value=-1.0).abs().amax())
        else:
            # in blocks through one scratch buffer: a fresh temporary the size of the target costs more in page
            # faults than the check itself
            flat = kept.reshape(-1)
            scratch = torch.empty_like(flat[: value_check_block()])
            residual = [torch.addcmul(b, b, b, value=-1.0, out=scratch[: b.numel()]).abs_().amax() for b in flat.split(value_check_block())]
            checks.append(torch.stack(residual).amax())
    if preds.numel() > 0:
        checks += list(torch.aminmax(preds))
    if len(checks) == 0:
        return
    if any(check.dtype != checks[0].dtype for check in checks):
        checks = [check.double() for check in checks]  # exact for class indices beside float16 preds
    found: List[float] = torch.stack(checks).tolist()  # one transfer: a GPU waits once
    if check_target:
        if class_indices:
            classes = preds.shape[1]
            if found[0] < 0 or found[1] >= classes:
                outside = kept[(kept < 0) | (kept >= classes)]
                raise ValueError(
                    f"target contains class index {int(outside[0])}, outside [0, {classes - 1}] for preds with {classes} classes"
                    + ("" if ignore_index is None else f" (ignore_index={ignore_index})")
                )
            found = found[2:]
        else:
            binary = found[0] == 0.0 if kept.is_floating_point() else found[0] >= 0 and found[1] <= 1
            if not binary:
                bad = kept[(kept != 0) & (kept != 1)][0]
                raise ValueError(f"target must contain only 0 and 1 (or ignore_index), found {float(bad)}")
            found = found[1:] if kept.is_floating_point() else found[2:]
    if preds.numel() > 0:
        low_p, high_p = found[0], found[1]
        if not (abs(low_p) < float("inf") and abs(high_p) < float("inf")):
            raise ValueError("preds contain NaN or infinite values; check the model's outputs (a loss cannot be computed from them)")
        if not from_logits and (low_p < 0.0 or high_p > 1.0):
            raise ValueError(f"preds lie in [{low_p}, {high_p}], outside [0, 1]; pass from_logits=True for raw scores")


def _channel_dropped(preds: Tensor, target: Tensor) -> bool:
    """preds with a channel axis of one that target leaves out: (N, 1) beside (N,), (B, 1, H, W) beside (B, H, W)."""
    return (
        preds.dim() == target.dim() + 1
        and preds.shape[1] == 1
        and preds.shape[0] == target.shape[0]
        and preds.shape[2:] == target.shape[1:]
    )


def _check_class_index_shape(preds: Tensor, target: Tensor) -> None:
    spatial = target.shape[1:] if target.dim() == preds.dim() - 1 else target.shape[2:]
    if target.shape[0] != preds.shape[0] or spatial != preds.shape[2:]:
        raise ValueError(
            f"class-index target of shape {list(target.shape)} does not match preds of shape {list(preds.shape)}: "
            f"expected {[preds.shape[0]] + list(preds.shape[2:])} (or with a channel of 1 after the batch axis)"
        )
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"class-index targets must be integers, got dtype {target.dtype}; a one-hot target has the shape of preds")


def count_dims(task: str, average: str, multidim_average: str) -> List[int]:
    """The (batch, classes, positions) axes that one count sums over; the axes it keeps are rows (batch) and classes."""
    if average == "samples":
        return [1, 2]
    if multidim_average == "samplewise":
        return [1, 2] if average == "micro" or task == "binary" else [2]
    if average == "micro" or task == "binary":
        return [0, 1, 2]
    return [0, 2]
