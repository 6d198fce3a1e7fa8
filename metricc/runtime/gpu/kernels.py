"""The Triton kernels of a four-count loss, registered as torch custom ops (torch.library.triton_op), so that one
path serves eager mode, torch.compile and torch.export:

- metricc::soft_counts, one pass over preds, target and mask: A(p), 1 - A(p) (its own sigmoid, never a difference)
  and the four sums per (row, class), or per class pooled over rows; on request a fifth, the kept positions with
  p != 0, whose zeros tell absent classes. Each program writes its partial sums to a buffer that one sum reduces
  in a fixed order: no atomics, the same bits on every call.
- metricc::count_gradient, its backward: A'(p) recomputed from p (nothing the size of preds is kept) times
  y (dTP - dFN) + (1 - y)(dFP - dTN) and the mask, written in the dtype of preds.
- metricc::soft_matrix and metricc::matrix_gradient, the same two passes for the C x C soft confusion matrix
  M[i, j] = sum y[n, i] a[n, j] (gpu.MATRIX_CLASSES classes at most) and its backward's weights G[label of n, j].

The target is a float (rows, classes, positions) 0/1 tensor beside an optional mask, or integer (rows, positions)
class-index labels, read as y[n, c] = (label == c + first_class) and dropped where label == ignore_index: no N x C
one-hot target is written for them (LABELS, a compile-time switch of each kernel).

Imported only when a step takes the Triton path (gpu/__init__.py); with TRITON_INTERPRET=1 they run on CPU tensors.
"""

import struct
from typing import Any, Callable, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import custom_op, register_autograd, triton_op, wrap_triton
from triton.runtime.interpreter import InterpretedFunction

from ..approximate import Approximation


def _split(value: float) -> Tuple[float, float]:
    """value as float32 hi + lo: a kernel's float arguments are float32, their sum in float64 is value to ~1e-14."""
    hi = struct.unpack("f", struct.pack("f", value))[0]
    return hi, value - hi


def kernel_constants(approximation: Approximation) -> Tuple[float, float]:
    """A(p)'s two constants as the kernels read them: anyloss L and -L tau (z = L p - L tau, as the torch path
    computes it), linear tau and the width; identity reads none."""
    if approximation.kind == "anyloss":
        return approximation.steepness, -approximation.steepness * approximation.threshold
    return approximation.threshold, approximation.width


@triton.jit
def _exact(hi, lo, dtype: tl.constexpr):
    """hi + lo (see _split), a scalar of the counting dtype."""
    return tl.cast(hi, dtype) + tl.cast(lo, dtype)


@triton.jit
def _sigmoid_pair(z):
    """sigmoid(z) and sigmoid(-z) from one exponential, neither a difference."""
    u = tl.exp(-tl.abs(z))
    near = 1.0 / (1.0 + u)
    far = u * near
    nonnegative = z >= 0.0
    return tl.where(nonnegative, near, far), tl.where(nonnegative, far, near)


@triton.jit
def _soft(x, first, second, KIND: tl.constexpr, SIGMOID_LOGITS: tl.constexpr):
    """a = A(p), 1 - a, A'(p) (with its constant factor) and p: sigmoid(x) for sigmoid logits, else x."""
    if SIGMOID_LOGITS:
        p, q = _sigmoid_pair(x)
    else:
        p = x
        q = 1.0 - x
    if KIND == 0:
        a, c = _sigmoid_pair(p * first + second)
        slope = first * a * c
    elif KIND == 1:
        a = p
        c = 1.0 - p
        slope = a * 0.0 + 1.0
    else:
        a = tl.minimum(tl.maximum((p - first) / second + 0.5, 0.0), 1.0)
        c = 1.0 - a
        slope = ((a > 0.0) & (a < 1.0)).to(a.dtype) / second
    if SIGMOID_LOGITS:
        slope = slope * (p * q)
    return a, c, slope, p


@triton.jit
def _tile_place(group, part, i, tiles_per_program, positions, POOLED: tl.constexpr, BLOCK_N: tl.constexpr):
    """The flat indices n of a program's i-th tile and their (row, position): of every row flattened (POOLED), or
    the positions of one row (group)."""
    n = (part.to(tl.int64) * tiles_per_program + i) * BLOCK_N + tl.arange(0, BLOCK_N)
    if POOLED:
        row = n // positions
        pos = n % positions
    else:
        row = n * 0 + group
        pos = n
    return n, row, pos


@triton.jit
def _tile(
    preds_ptr, target_ptr, mask_ptr, row, pos, cls64, inside, cls_ok, pr, pc, pp, tr, tc, tp, mr, mc, mp, first_class, ignore_index,
    dtype: tl.constexpr, HAS_MASK: tl.constexpr, LABELS: tl.constexpr,
):
    """x, y and the mask (0 outside the input) of one tile of (position, class); with LABELS, y = (label == class +
    first_class) and the mask is label != ignore_index (HAS_MASK)."""
    ok = inside[:, None] & cls_ok[None, :]
    x = tl.load(preds_ptr + (row * pr + pos * pp)[:, None] + (cls64 * pc)[None, :], mask=ok, other=0.0).to(dtype)
    if LABELS:
        label = tl.load(target_ptr + row * tr + pos * tp, mask=inside, other=0)
        y = (label[:, None] == (cls64 + first_class)[None, :]).to(dtype)
        if HAS_MASK:
            ok = ok & (label != ignore_index)[:, None]
        m = ok.to(dtype)
    else:
        y = tl.load(target_ptr + (row * tr + pos * tp)[:, None] + (cls64 * tc)[None, :], mask=ok, other=0.0).to(dtype)
        if HAS_MASK:
            m = tl.load(mask_ptr + (row * mr + pos * mp)[:, None] + (cls64 * mc)[None, :], mask=ok, other=0.0).to(dtype)
        else:
            m = ok.to(dtype)
    return x, y, m


@triton.jit
def _soft_counts_kernel(
    preds_ptr, target_ptr, mask_ptr, partial_ptr, positions, length, classes, tiles_per_program,
    pr, pc, pp, tr, tc, tp, mr, mc, mp, first_class, ignore_index, first_hi, first_lo, second_hi, second_lo,
    POOLED: tl.constexpr, HAS_MASK: tl.constexpr, LABELS: tl.constexpr, WITH_MASS: tl.constexpr, SIGMOID_LOGITS: tl.constexpr,
    KIND: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Program (group, part, class block): the four sums over its tiles of positions, of one row (group), or of
    every row (POOLED: position n of the flattened rows x positions), into partial[count, group, part, class];
    WITH_MASS, a fifth: the kept positions with p != 0 (0 exactly where a class has no probability)."""
    group = tl.program_id(0)
    part = tl.program_id(1)
    groups = tl.num_programs(0)
    parts = tl.num_programs(1)
    dtype = partial_ptr.dtype.element_ty
    first = _exact(first_hi, first_lo, dtype)
    second = _exact(second_hi, second_lo, dtype)
    cls = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    cls_ok = cls < classes
    cls64 = cls.to(tl.int64)
    tp_sum = tl.zeros([BLOCK_N, BLOCK_C], dtype)
    fp_sum = tl.zeros([BLOCK_N, BLOCK_C], dtype)
    fn_sum = tl.zeros([BLOCK_N, BLOCK_C], dtype)
    tn_sum = tl.zeros([BLOCK_N, BLOCK_C], dtype)
    mass_sum = tl.zeros([BLOCK_N, BLOCK_C], dtype)
    for i in range(tiles_per_program):
        n, row, pos = _tile_place(group, part, i, tiles_per_program, positions, POOLED, BLOCK_N)
        x, y, m = _tile(
            preds_ptr, target_ptr, mask_ptr, row, pos, cls64, n < length, cls_ok, pr, pc, pp, tr, tc, tp, mr, mc, mp, first_class,
            ignore_index, dtype, HAS_MASK, LABELS,
        )
        a, c, _, p = _soft(x, first, second, KIND, SIGMOID_LOGITS)
        positive = y * m
        negative = (1.0 - y) * m
        tp_sum += a * positive
        fp_sum += a * negative
        fn_sum += c * positive
        tn_sum += c * negative
        if WITH_MASS:
            mass_sum += (p != 0.0).to(dtype) * m
    out = partial_ptr + (group * parts + part) * classes + cls64
    stride = groups * parts * classes
    tl.store(out, tl.sum(tp_sum, axis=0), mask=cls_ok)
    tl.store(out + stride, tl.sum(fp_sum, axis=0), mask=cls_ok)
    tl.store(out + 2 * stride, tl.sum(fn_sum, axis=0), mask=cls_ok)
    tl.store(out + 3 * stride, tl.sum(tn_sum, axis=0), mask=cls_ok)
    if WITH_MASS:
        tl.store(out + 4 * stride, tl.sum(mass_sum, axis=0), mask=cls_ok)


@triton.jit
def _count_gradient_kernel(
    preds_ptr, target_ptr, mask_ptr, weights_ptr, out_ptr, positions, length, classes, tiles_per_program,
    pr, pc, pp, tr, tc, tp, mr, mc, mp, first_class, ignore_index, wk, wr, wc, first_hi, first_lo, second_hi, second_lo,
    grad_ptr, HAS_MASK: tl.constexpr, LABELS: tl.constexpr, SIGMOID_LOGITS: tl.constexpr, KIND: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, HAS_GRAD: tl.constexpr,
):
    """Program (part, class block): d loss / d p = A'(p) (y w[0] + (1 - y) w[1]) m over its tiles of the flattened
    rows x positions, into a contiguous (rows, classes, positions) gradient; w[k, row, class] as its strides say,
    times the upstream gradient read from grad_ptr (HAS_GRAD; read on the device, so the host never waits)."""
    part = tl.program_id(0)
    dtype = weights_ptr.dtype.element_ty
    first = _exact(first_hi, first_lo, dtype)
    second = _exact(second_hi, second_lo, dtype)
    upstream = tl.load(grad_ptr).to(dtype) if HAS_GRAD else 1.0
    cls = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cls_ok = cls < classes
    cls64 = cls.to(tl.int64)
    for i in range(tiles_per_program):
        n, row, pos = _tile_place(0, part, i, tiles_per_program, positions, True, BLOCK_N)
        ok = (n < length)[:, None] & cls_ok[None, :]
        x, y, m = _tile(
            preds_ptr, target_ptr, mask_ptr, row, pos, cls64, n < length, cls_ok, pr, pc, pp, tr, tc, tp, mr, mc, mp, first_class,
            ignore_index, dtype, HAS_MASK, LABELS,
        )
        _, _, slope, _ = _soft(x, first, second, KIND, SIGMOID_LOGITS)
        weight = weights_ptr + (row * wr)[:, None] + (cls64 * wc)[None, :]
        positive = tl.load(weight, mask=ok, other=0.0).to(dtype)
        negative = tl.load(weight + wk, mask=ok, other=0.0).to(dtype)
        gradient = slope * (y * positive + (1.0 - y) * negative) * m * upstream
        out = out_ptr + (row * classes * positions + pos)[:, None] + (cls64 * positions)[None, :]
        tl.store(out, gradient.to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _soft_matrix_kernel(
    preds_ptr, target_ptr, mask_ptr, partial_ptr, positions, length, classes, tiles_per_program,
    pr, pc, pp, tr, tc, tp, mr, mc, mp, ignore_index, first_hi, first_lo, second_hi, second_lo,
    POOLED: tl.constexpr, HAS_MASK: tl.constexpr, LABELS: tl.constexpr, KIND: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Program (group, part): M[i, j] = sum y[n, i] m[n] a[n, j] over its tiles of positions, of one row (group) or
    of every row (POOLED), into partial[group, part, i, j]; every class in one block."""
    group = tl.program_id(0)
    part = tl.program_id(1)
    parts = tl.num_programs(1)
    dtype = partial_ptr.dtype.element_ty
    first = _exact(first_hi, first_lo, dtype)
    second = _exact(second_hi, second_lo, dtype)
    cls = tl.arange(0, BLOCK_C)
    cls_ok = cls < classes
    cls64 = cls.to(tl.int64)
    matrix = tl.zeros([BLOCK_C, BLOCK_C], dtype)
    for i in range(tiles_per_program):
        n, row, pos = _tile_place(group, part, i, tiles_per_program, positions, POOLED, BLOCK_N)
        x, y, m = _tile(
            preds_ptr, target_ptr, mask_ptr, row, pos, cls64, n < length, cls_ok, pr, pc, pp, tr, tc, tp, mr, mc, mp, 0, ignore_index,
            dtype, HAS_MASK, LABELS,
        )
        a, _, _, _ = _soft(x, first, second, KIND, False)
        matrix += tl.sum((y * m)[:, :, None] * a[:, None, :], axis=0)
    out = partial_ptr + ((group * parts + part) * classes + cls64)[:, None] * classes + cls64[None, :]
    tl.store(out, matrix, mask=cls_ok[:, None] & cls_ok[None, :])


@triton.jit
def _matrix_gradient_kernel(
    preds_ptr, target_ptr, mask_ptr, weights_ptr, out_ptr, positions, length, classes, tiles_per_program,
    pr, pc, pp, tr, tc, tp, mr, mc, mp, ignore_index, wr, wi, wj, first_hi, first_lo, second_hi, second_lo, grad_ptr,
    HAS_MASK: tl.constexpr, LABELS: tl.constexpr, KIND: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
    HAS_GRAD: tl.constexpr,
):
    """Program (part): d loss / d p[n, j] = A'(p) sum_i y[n, i] m[n] G[row, i, j] (with LABELS, A'(p) m[n] G[row, label
    of n, j], one row of G gathered) over its tiles of the flattened rows x positions, into a contiguous (rows,
    classes, positions) gradient; times the upstream gradient read from grad_ptr (HAS_GRAD)."""
    part = tl.program_id(0)
    dtype = weights_ptr.dtype.element_ty
    first = _exact(first_hi, first_lo, dtype)
    second = _exact(second_hi, second_lo, dtype)
    upstream = tl.load(grad_ptr).to(dtype) if HAS_GRAD else 1.0
    cls = tl.arange(0, BLOCK_C)
    cls_ok = cls < classes
    cls64 = cls.to(tl.int64)
    for i in range(tiles_per_program):
        n, row, pos = _tile_place(0, part, i, tiles_per_program, positions, True, BLOCK_N)
        ok = (n < length)[:, None] & cls_ok[None, :]
        x, y, m = _tile(
            preds_ptr, target_ptr, mask_ptr, row, pos, cls64, n < length, cls_ok, pr, pc, pp, tr, tc, tp, mr, mc, mp, 0, ignore_index,
            dtype, HAS_MASK, LABELS,
        )
        _, _, slope, _ = _soft(x, first, second, KIND, False)
        if LABELS:
            label = tl.load(target_ptr + row * tr + pos * tp, mask=n < length, other=0)
            named = (label >= 0) & (label < classes)  # a label outside the classes scores none (y = 0), as one-hot
            weight = weights_ptr + (row * wr + tl.where(named, label, 0).to(tl.int64) * wi)[:, None] + (cls64 * wj)[None, :]
            gradient = slope * tl.load(weight, mask=ok & named[:, None], other=0.0).to(dtype) * m
        else:
            weight = weights_ptr + (row * wr)[:, None, None] + (cls64 * wi)[None, :, None] + (cls64 * wj)[None, None, :]
            square = ok[:, :, None] & cls_ok[None, None, :]
            weights = tl.load(weight, mask=square, other=0.0).to(dtype)
            gradient = slope * tl.sum((y * m)[:, :, None] * weights, axis=1)
        out = out_ptr + (row * classes * positions + pos)[:, None] + (cls64 * positions)[None, :]
        tl.store(out, (gradient * upstream).to(out_ptr.dtype.element_ty), mask=ok)


def _operator(name: str, fake: Callable[..., Tensor]) -> Callable[[Callable[..., Tensor]], Any]:
    """A triton_op, which torch.compile and torch.export see into; under TRITON_INTERPRET=1, whose kernels run only
    on real CPU tensors, an opaque custom_op with `fake` for its shapes, so that the same tests trace it."""

    def register(function: Callable[..., Tensor]) -> Any:
        if not isinstance(_soft_counts_kernel, InterpretedFunction):
            return triton_op(name, mutates_args={})(function)
        operator = custom_op(name, mutates_args=())(function)
        operator.register_fake(fake)
        return operator

    return register


def _blocks(classes: int) -> Tuple[int, int]:
    """(positions, classes) of one tile: the classes of a row together, up to 16, about 1024 elements a tile."""
    block_c = min(triton.next_power_of_2(max(classes, 1)), 16)
    return max(16, 1024 // block_c), block_c


def _programs(length: int, block_n: int, wanted: int) -> Tuple[int, int]:
    """(programs, tiles each) for `length` positions in tiles of block_n, about `wanted` programs."""
    tiles = max(triton.cdiv(length, block_n), 1)
    each = triton.cdiv(tiles, max(wanted, 1))
    return triton.cdiv(tiles, each), each


def counting_dtype(preds: Tensor) -> torch.dtype:
    """The dtype the kernels count in, as canonical_layout's: float32, or float64 for float64 preds."""
    return torch.promote_types(preds.dtype, torch.float32)


def _target_operands(
    target: Tensor, mask: Optional[Tensor], ignore_index: Optional[int], preds: Tensor
) -> Tuple[Tensor, Tuple[int, int, int], Tensor, Tuple[int, int, int], bool, bool]:
    """target, mask and their (row, class, position) strides as the kernels read them, with HAS_MASK and LABELS: a
    float target beside its mask (broadcast over classes by a zero stride; else target as an unread pointer), or
    integer (rows, positions) labels with ignore_index as their mask (a class stride of 0, no mask tensor)."""
    if target.is_floating_point():
        if mask is None:
            return target, tuple(target.stride()), target, (0, 0, 0), False, False
        mask = mask.expand(target.shape)
        return target, tuple(target.stride()), mask, tuple(mask.stride()), True, False
    if mask is not None or target.dim() != 2 or target.shape[0] != preds.shape[0] or target.shape[1] != preds.shape[2]:
        raise ValueError(
            f"class-index labels of shape {list(target.shape)} beside preds of shape {list(preds.shape)}: expected (rows, positions)"
            " and no mask (ignore_index drops positions)"
        )
    if target.dtype not in (torch.int32, torch.int64):
        target = target.long()
    rows, positions = target.stride()
    return target, (rows, 0, positions), target, (0, 0, 0), ignore_index is not None, True


def _counts_shape(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], pooled: bool, sigmoid_logits: bool, kind: int, first: float, second: float,
    first_class: int, ignore_index: Optional[int], with_mass: bool,
) -> Tensor:
    """soft_counts_op's output for tracing (its fake kernel)."""
    rows, classes, _ = preds.shape
    return preds.new_empty((5 if with_mass else 4, 1 if pooled else rows, classes), dtype=counting_dtype(preds))


def _gradient_shape(preds: Tensor, *inputs: Any) -> Tensor:
    """count_gradient_op's and matrix_gradient_op's output for tracing (their fake kernel)."""
    return torch.empty_like(preds, memory_format=torch.contiguous_format)


def soft_count_partials(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], pooled: bool, sigmoid_logits: bool, kind: int, first: float, second: float,
    first_class: int, ignore_index: Optional[int], with_mass: bool,
) -> Tensor:
    """(4 or 5, rows or 1, programs, classes): each program's sums (soft_counts_op), which a fixed-order sum reduces."""
    rows, classes, positions = preds.shape
    groups = 1 if pooled else rows
    length = rows * positions if pooled else positions
    block_n, block_c = _blocks(classes)
    class_blocks = triton.cdiv(classes, block_c)
    parts, each = _programs(length, block_n, 1024 // max(groups * class_blocks, 1))
    empty = torch.zeros if length == 0 else torch.empty  # no positions: no program runs, the counts are zero
    partial = empty((5 if with_mass else 4, groups, parts, classes), dtype=counting_dtype(preds), device=preds.device)
    target, (tr, tc, tp), mask_in, (mr, mc, mp), has_mask, labels = _target_operands(target, mask, ignore_index, preds)
    if partial.numel() > 0 and length > 0:
        wrap_triton(_soft_counts_kernel)[(groups, parts, class_blocks)](
            preds, target, mask_in, partial, positions, length, classes, each,
            *preds.stride(), tr, tc, tp, mr, mc, mp, first_class, ignore_index or 0, *_split(first), *_split(second),
            POOLED=pooled, HAS_MASK=has_mask, LABELS=labels, WITH_MASS=with_mass, SIGMOID_LOGITS=sigmoid_logits, KIND=kind,
            BLOCK_N=block_n, BLOCK_C=block_c,
        )
    return partial


@_operator("metricc::soft_counts", _counts_shape)
def soft_counts_op(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], pooled: bool, sigmoid_logits: bool, kind: int, first: float, second: float,
    first_class: int, ignore_index: Optional[int], with_mass: bool,
) -> Tensor:
    """(4, rows or 1, classes): TP, FP, FN, TN of (rows, classes, positions) preds, per row or pooled over rows; with_mass,
    (5, ...): and the kept positions with p != 0, a count whose derivative is zero. target: 0/1 floats of preds'
    shape beside an optional mask, or (rows, positions) class indices, class c of preds being label c + first_class
    and positions labelled ignore_index dropped."""
    return soft_count_partials(preds, target, mask, pooled, sigmoid_logits, kind, first, second, first_class, ignore_index, with_mass).sum(2)


def count_gradient_launch(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], weights: Tensor, sigmoid_logits: bool, kind: int, first: float,
    second: float, first_class: int, ignore_index: Optional[int], grad: Optional[Tensor] = None,
) -> Tensor:
    """count_gradient_op's kernel; with `grad` (a one-element tensor), the gradient times it, read on the device."""
    rows, classes, positions = preds.shape
    out = torch.empty((rows, classes, positions), dtype=preds.dtype, device=preds.device)
    weights = weights.to(counting_dtype(preds)).expand(2, rows, classes)
    block_n, block_c = _blocks(classes)
    class_blocks = triton.cdiv(classes, block_c)
    parts, each = _programs(rows * positions, block_n, 4096 // class_blocks)
    target, (tr, tc, tp), mask_in, (mr, mc, mp), has_mask, labels = _target_operands(target, mask, ignore_index, preds)
    if out.numel() > 0:
        wrap_triton(_count_gradient_kernel)[(parts, class_blocks)](
            preds, target, mask_in, weights, out, positions, rows * positions, classes, each,
            *preds.stride(), tr, tc, tp, mr, mc, mp, first_class, ignore_index or 0, *weights.stride(), *_split(first), *_split(second),
            weights if grad is None else grad,
            HAS_MASK=has_mask, LABELS=labels, SIGMOID_LOGITS=sigmoid_logits, KIND=kind, BLOCK_N=block_n, BLOCK_C=block_c,
            HAS_GRAD=grad is not None,
        )
    return out


@_operator("metricc::count_gradient", _gradient_shape)
def count_gradient_op(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], weights: Tensor, sigmoid_logits: bool, kind: int, first: float, second: float,
    first_class: int, ignore_index: Optional[int],
) -> Tensor:
    """d loss / d preds of (rows, classes, positions) inputs (target as soft_counts_op reads it), in the dtype of
    preds; weights: (2, rows or 1, classes or 1), dTP - dFN and dFP - dTN of each count's upstream gradient."""
    return count_gradient_launch(preds, target, mask, weights, sigmoid_logits, kind, first, second, first_class, ignore_index)


def _matrix_shape(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], pooled: bool, kind: int, first: float, second: float, ignore_index: Optional[int],
) -> Tensor:
    """soft_matrix_op's output for tracing (its fake kernel)."""
    rows, classes, _ = preds.shape
    return preds.new_empty((1 if pooled else rows, classes, classes), dtype=counting_dtype(preds))


def _matrix_blocks(classes: int, gathered: bool = False) -> Tuple[int, int]:
    """(positions, classes) of one tile of the matrix kernels: every class, about 4096 products a tile (C x C a
    position, or C where the gradient gathers G[label] for class-index labels)."""
    block_c = triton.next_power_of_2(max(classes, 1))
    return max(1, 4096 // (block_c if gathered else block_c * block_c)), block_c


def soft_matrix_partials(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], pooled: bool, kind: int, first: float, second: float, ignore_index: Optional[int],
) -> Tensor:
    """(rows or 1, programs, C, C): each program's matrix (soft_matrix_op), which a fixed-order sum reduces."""
    rows, classes, positions = preds.shape
    groups = 1 if pooled else rows
    length = rows * positions if pooled else positions
    block_n, block_c = _matrix_blocks(classes)
    parts, each = _programs(length, block_n, 1024 // max(groups, 1))
    empty = torch.zeros if length == 0 else torch.empty  # no positions: no program runs, the matrix is zero
    partial = empty((groups, parts, classes, classes), dtype=counting_dtype(preds), device=preds.device)
    target, (tr, tc, tp), mask_in, (mr, mc, mp), has_mask, labels = _target_operands(target, mask, ignore_index, preds)
    if partial.numel() > 0 and length > 0:
        wrap_triton(_soft_matrix_kernel)[(groups, parts)](
            preds, target, mask_in, partial, positions, length, classes, each,
            *preds.stride(), tr, tc, tp, mr, mc, mp, ignore_index or 0, *_split(first), *_split(second),
            POOLED=pooled, HAS_MASK=has_mask, LABELS=labels, KIND=kind, BLOCK_N=block_n, BLOCK_C=block_c,
        )
    return partial


@_operator("metricc::soft_matrix", _matrix_shape)
def soft_matrix_op(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], pooled: bool, kind: int, first: float, second: float, ignore_index: Optional[int],
) -> Tensor:
    """(rows or 1, C, C): M[i, j] = sum y[n, i] a[n, j] over kept positions of (rows, classes, positions) preds; target
    as soft_counts_op reads it (labels of every class: first_class 0)."""
    return soft_matrix_partials(preds, target, mask, pooled, kind, first, second, ignore_index).sum(1)


def matrix_gradient_launch(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], weights: Tensor, kind: int, first: float, second: float,
    ignore_index: Optional[int], grad: Optional[Tensor] = None,
) -> Tensor:
    """matrix_gradient_op's kernel; with `grad` (a one-element tensor), the gradient times it, read on the device."""
    rows, classes, positions = preds.shape
    out = torch.empty((rows, classes, positions), dtype=preds.dtype, device=preds.device)
    weights = weights.to(counting_dtype(preds)).expand(rows, classes, classes)
    target, (tr, tc, tp), mask_in, (mr, mc, mp), has_mask, labels = _target_operands(target, mask, ignore_index, preds)
    block_n, block_c = _matrix_blocks(classes, labels)
    parts, each = _programs(rows * positions, block_n, 4096)
    if out.numel() > 0:
        wrap_triton(_matrix_gradient_kernel)[(parts,)](
            preds, target, mask_in, weights, out, positions, rows * positions, classes, each,
            *preds.stride(), tr, tc, tp, mr, mc, mp, ignore_index or 0, *weights.stride(), *_split(first), *_split(second),
            weights if grad is None else grad,
            HAS_MASK=has_mask, LABELS=labels, KIND=kind, BLOCK_N=block_n, BLOCK_C=block_c, HAS_GRAD=grad is not None,
        )
    return out


@_operator("metricc::matrix_gradient", _gradient_shape)
def matrix_gradient_op(
    preds: Tensor, target: Tensor, mask: Optional[Tensor], weights: Tensor, kind: int, first: float, second: float, ignore_index: Optional[int],
) -> Tensor:
    """d loss / d preds of (rows, classes, positions) inputs (target as soft_matrix_op reads it) in the dtype of
    preds; weights: G = d loss / d M, (rows or 1, C, C)."""
    return matrix_gradient_launch(preds, target, mask, weights, kind, first, second, ignore_index)


def soft_and_slope(preds: Tensor, dtype: torch.dtype, sigmoid_logits: bool, kind: int, first: float, second: float) -> Tuple[Tensor, Tensor]:
    """A(p) and A'(p) in torch's own operations, differentiable: the reference of the kernels' _soft, and what a
    gradient of the gradient (create_graph=True) is taken through."""
    x = preds.to(dtype)
    p, q = (torch.sigmoid(x), torch.sigmoid(-x)) if sigmoid_logits else (x, 1.0 - x)
    if kind == 0:
        z = p * first + second
        soft = torch.sigmoid(z)
        slope = first * soft * torch.sigmoid(-z)
    elif kind == 1:
        soft, slope = p, torch.ones_like(p)
    else:
        soft = torch.clamp((p - first) / second + 0.5, 0.0, 1.0)
        slope = ((soft > 0.0) & (soft < 1.0)).to(dtype) / second
    if sigmoid_logits:
        slope = slope * (p * q)
    return soft, slope


def dense_target(
    target: Tensor, mask: Optional[Tensor], classes: int, first_class: int, ignore_index: Optional[int], dtype: torch.dtype
) -> Tuple[Tensor, Optional[Tensor]]:
    """y (rows, classes, positions) and the mask as the kernels read them: from class-index labels, the one-hot target
    the kernels never write, built here only, for a gradient of the gradient (autograd reads it whole)."""
    if target.is_floating_point():
        return target, mask
    labels = target.unsqueeze(1)
    scored = torch.arange(first_class, first_class + classes, device=target.device).reshape(1, -1, 1)
    return (labels == scored).to(dtype), None if ignore_index is None else (labels != ignore_index).to(dtype)


def _counts_context(ctx, inputs, output) -> None:
    preds, target, mask, pooled, sigmoid_logits, kind, first, second, first_class, ignore_index, with_mass = inputs
    ctx.save_for_backward(preds, target, mask)
    ctx.options = (sigmoid_logits, kind, first, second, first_class, ignore_index)


def _counts_backward(ctx, grad: Tensor):
    """d counts / d a: TP and FN move with a y, FP and TN with a (1 - y); FN and TN by minus it. The fifth count
    (with_mass) is piecewise constant in p: its derivative is zero."""
    preds, target, mask = ctx.saved_tensors
    weights = torch.stack([grad[0] - grad[2], grad[1] - grad[3]])
    return (count_gradient_op(preds, target, mask, weights, *ctx.options),) + (None,) * 10


def _or_zeros(gradient: Optional[Tensor], like: Tensor) -> Tensor:
    """A gradient autograd found unused (A' constant: identity, or linear between its kinks) is zero."""
    return torch.zeros_like(like) if gradient is None else gradient


def _leaves(preds: Tensor, weights: Tensor) -> Tuple[Tensor, Tensor]:
    """A view of each input where it carries a graph (as torch.autograd.functional.vjp does): its own node, so the
    derivative is the caller's alone (weights depend on preds too), and still connected for further orders."""
    leaf = preds.view_as(preds) if preds.requires_grad else preds.detach().requires_grad_()
    weight = weights.view_as(weights) if weights.requires_grad else weights.detach().requires_grad_()
    return leaf, weight


def _gradient_context(ctx, inputs, output) -> None:
    preds, target, mask, weights, sigmoid_logits, kind, first, second, first_class, ignore_index = inputs
    ctx.save_for_backward(preds, target, mask, weights)
    ctx.options = (sigmoid_logits, kind, first, second, first_class, ignore_index)


def _gradient_backward(ctx, grad: Tensor):
    """A gradient of the gradient (create_graph=True): autograd through the same expression in torch's operations."""
    preds, target, mask, weights = ctx.saved_tensors
    sigmoid_logits, kind, first, second, first_class, ignore_index = ctx.options
    dtype = counting_dtype(preds)
    further = torch.is_grad_enabled()  # a third order and beyond: the result keeps its graph
    with torch.enable_grad():
        leaf, weight = _leaves(preds, weights)
        _, slope = soft_and_slope(leaf, dtype, sigmoid_logits, kind, first, second)
        y, kept = dense_target(target, mask, preds.shape[1], first_class, ignore_index, dtype)
        positive, negative = weight[0].unsqueeze(-1), weight[1].unsqueeze(-1)  # (rows or 1, classes, 1)
        gradient = slope * (y * positive + (1.0 - y) * negative)
        if kept is not None:
            gradient = gradient * kept
        by_preds, by_weights = torch.autograd.grad(gradient.to(preds.dtype), (leaf, weight), grad, create_graph=further, allow_unused=True)
    return _or_zeros(by_preds, preds), None, None, by_weights, None, None, None, None, None, None


def _matrix_context(ctx, inputs, output) -> None:
    preds, target, mask, pooled, kind, first, second, ignore_index = inputs
    ctx.save_for_backward(preds, target, mask)
    ctx.options = (kind, first, second, ignore_index)


def _matrix_backward(ctx, grad: Tensor):
    """d M[i, j] / d a[n, j] = y[n, i] m[n]: the gradient's weights are G = grad itself."""
    preds, target, mask = ctx.saved_tensors
    return (matrix_gradient_op(preds, target, mask, grad, *ctx.options),) + (None,) * 7


def _matrix_gradient_context(ctx, inputs, output) -> None:
    preds, target, mask, weights, kind, first, second, ignore_index = inputs
    ctx.save_for_backward(preds, target, mask, weights)
    ctx.options = (kind, first, second, ignore_index)


def _matrix_gradient_backward(ctx, grad: Tensor):
    """A gradient of the gradient: autograd through the same expression in torch's operations (_gradient_backward)."""
    preds, target, mask, weights = ctx.saved_tensors
    kind, first, second, ignore_index = ctx.options
    dtype = counting_dtype(preds)
    further = torch.is_grad_enabled()
    with torch.enable_grad():
        leaf, weight = _leaves(preds, weights)
        _, slope = soft_and_slope(leaf, dtype, False, kind, first, second)
        y, kept = dense_target(target, mask, preds.shape[1], 0, ignore_index, dtype)
        counted = y if kept is None else y * kept
        gradient = slope * torch.einsum("rip,rij->rjp", counted, weight.expand(preds.shape[0], -1, -1))
        by_preds, by_weights = torch.autograd.grad(gradient.to(preds.dtype), (leaf, weight), grad, create_graph=further, allow_unused=True)
    return _or_zeros(by_preds, preds), None, None, by_weights, None, None, None, None


register_autograd("metricc::soft_counts", _counts_backward, setup_context=_counts_context)
register_autograd("metricc::soft_matrix", _matrix_backward, setup_context=_matrix_context)
register_autograd("metricc::matrix_gradient", _matrix_gradient_backward, setup_context=_matrix_gradient_context)
register_autograd("metricc::count_gradient", _gradient_backward, setup_context=_gradient_context)
