"""The formula launch: eagerly, a loss on the Triton path is three kernels whatever its formula, the soft counts
or matrix (one pass over the inputs), the loss (the formula, its per-sample weights or G = d metric / d M, and the
average, in one program), and in the backward pass the gradient (one pass that recomputes A'(p) and reads the
upstream gradient from memory). Nothing waits for the host, so the step can be captured in a CUDA graph.

The formula is the compiled metric's own `..._in_triton` function, which the emitter prints from SymPy in Triton's
language: plain Python in the emitted file, made a Triton function here, with `tl` and the guards bound, so that
importing a loss file never imports triton. eps, zero_division and the metric's parameters are compile-time
constants of the loss kernel (one compilation per value, cached by Triton): a Python float is exact in a float64
kernel, where a float argument would be rounded to float32, and no tensor of them is copied to the device.
"""

import functools
import types
from typing import Any, Callable, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..backward import exact_gradient, release_leaf, saved_leaf
from . import KERNEL_KINDS, CountOperands, LossSettings, MatrixOperands
from .kernels import count_gradient_launch, kernel_constants, matrix_gradient_launch, soft_count_partials, soft_matrix_partials


@triton.jit
def signed_clamp_in_triton(x, eps):
    """runtime.guards.signed_clamp: x moved to +-eps where |x| < eps, keeping its sign (zero goes to +eps)."""
    return tl.where(tl.abs(x) < eps, tl.where(x < 0.0, -eps, eps), x)


@functools.lru_cache(maxsize=256)
def triton_formula(function: Callable[..., Any]) -> Any:
    """An emitted ..._in_triton function as a Triton function: the same code and source lines (Triton reads them
    back), with `tl` and the guards it may call among its globals; once per function."""
    names = dict(function.__globals__, tl=tl, signed_clamp_in_triton=signed_clamp_in_triton)
    bound = types.FunctionType(function.__code__, names, function.__name__, function.__defaults__, function.__closure__)
    bound.__module__, bound.__qualname__, bound.__doc__ = function.__module__, function.__qualname__, function.__doc__
    return triton.jit(bound)


def _constants(settings: LossSettings) -> dict:
    """The loss kernels' compile-time constants that both forms share."""
    return dict(
        FORMULA=triton_formula(settings.formula), EPS=settings.eps, PARAMETERS=settings.parameters,
        SIGN=-1.0 if settings.maximize else 1.0, OFFSET=1.0 if settings.maximize else 0.0,
    )


def _backward(ctx, grad: Tensor, gradient_of: Callable[[Tensor], Tensor], others: int) -> Tuple[Optional[Tensor], ...]:
    """A loss Function's backward: the gradient kernel, or with create_graph=True autograd through ctx.recompute.
    After a first-order pass the graph lets go of the predictions (the recompute closure holds them too)."""
    if torch.is_grad_enabled():
        return (exact_gradient(ctx.recompute, ctx.leaf, ctx.leaf_version, grad),) + (None,) * others
    release_leaf(ctx)
    ctx.recompute = None
    return (gradient_of(grad),) + (None,) * others


# four counts


@triton.jit
def _counts_of_row(partial_ptr, group, groups, parts, classes, cls, cls_ok, WITH_MASS: tl.constexpr, POOL_CLASSES: tl.constexpr):
    """TP, FP, FN, TN (and the probability mass, WITH_MASS) of one row, per class or pooled over classes, from the
    soft-counts kernel's per-program sums, added in a fixed order."""
    dtype = partial_ptr.dtype.element_ty
    stride = groups * parts * classes
    tp = tl.zeros([cls.shape[0]], dtype)
    fp = tl.zeros([cls.shape[0]], dtype)
    fn = tl.zeros([cls.shape[0]], dtype)
    tn = tl.zeros([cls.shape[0]], dtype)
    mass = tl.zeros([cls.shape[0]], dtype)
    for part in range(parts):
        at = partial_ptr + (group * parts + part) * classes + cls
        tp += tl.load(at, mask=cls_ok, other=0.0)
        fp += tl.load(at + stride, mask=cls_ok, other=0.0)
        fn += tl.load(at + 2 * stride, mask=cls_ok, other=0.0)
        tn += tl.load(at + 3 * stride, mask=cls_ok, other=0.0)
        if WITH_MASS:
            mass += tl.load(at + 4 * stride, mask=cls_ok, other=0.0)
    if POOL_CLASSES:
        tp = tl.zeros_like(tp) + tl.sum(tp, axis=0)
        fp = tl.zeros_like(fp) + tl.sum(fp, axis=0)
        fn = tl.zeros_like(fn) + tl.sum(fn, axis=0)
        tn = tl.zeros_like(tn) + tl.sum(tn, axis=0)
        mass = tl.zeros_like(mass) + tl.sum(mass, axis=0)
    return tp, fp, fn, tn, mass


@triton.jit
def _row(
    partial_ptr, class_weights_ptr, group, groups, parts, classes, cls, cls_ok, FORMULA: tl.constexpr, EPS: tl.constexpr,
    PARAMETERS: tl.constexpr, AVERAGE: tl.constexpr, ABSENT: tl.constexpr, ZERO_DIVISION: tl.constexpr,
    HAS_CLASS_WEIGHTS: tl.constexpr, POOL_CLASSES: tl.constexpr,
):
    """One row's metric values and per-sample weights, per class, and each count's averaging weight (summing to one
    over the row, or to zero): reduce.absent_counts, LossBase._fill_absent and reduce.average_weights. AVERAGE and
    ABSENT are gpu's AVERAGE_* and ABSENT_* numbers."""
    tp, fp, fn, tn, mass = _counts_of_row(partial_ptr, group, groups, parts, classes, cls, cls_ok, ABSENT == 2, POOL_CLASSES)
    value, positive, negative = FORMULA(tp, fp, fn, tn, tl.zeros_like(tp) + EPS, PARAMETERS)
    if ABSENT == 1:
        absent = (tp + fn == 0.0) & (fp == 0.0)
    elif ABSENT == 2:
        absent = (tp + fn == 0.0) & (mass == 0.0)
    else:
        absent = cls < 0
    if ZERO_DIVISION is not None:
        value = tl.where(absent, tl.zeros_like(tp) + ZERO_DIVISION, value)
        positive = tl.where(absent, 0.0, positive)
        negative = tl.where(absent, 0.0, negative)
    if AVERAGE == 1:
        weights = tp + fn
    elif AVERAGE == 2:
        weights = tl.where(absent, 0.0, 1.0).to(tp.dtype)
    else:
        weights = tl.zeros_like(tp) + 1.0
    if HAS_CLASS_WEIGHTS:
        weights = weights * tl.load(class_weights_ptr + cls, mask=cls_ok, other=0.0).to(tp.dtype)
    if POOL_CLASSES:
        weights = tl.where(cls == 0, weights, 0.0)  # one count a row, held by the first lane
    weights = tl.where(cls_ok, weights, 0.0)
    return value, positive, negative, weights / tl.maximum(tl.sum(weights, axis=0), 1e-12)


@triton.jit
def _count_loss_kernel(
    partial_ptr, class_weights_ptr, loss_ptr, weights_ptr, groups, parts, classes, FORMULA: tl.constexpr, EPS: tl.constexpr,
    PARAMETERS: tl.constexpr, SIGN: tl.constexpr, OFFSET: tl.constexpr, AVERAGE: tl.constexpr, ABSENT: tl.constexpr,
    ZERO_DIVISION: tl.constexpr, HAS_CLASS_WEIGHTS: tl.constexpr, POOL_CLASSES: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """One program: the counts of every row, the formula and its per-sample weights on them, the average over
    classes and rows (reduce.row_sums, mean_over_rows), the loss OFFSET + SIGN * average, and the weights
    d loss / d a of every (row, class) for the backward pass, weights[0] for y = 1 and [1] for y = 0."""
    dtype = partial_ptr.dtype.element_ty
    cls = tl.arange(0, BLOCK_C)
    cls_ok = cls < classes
    total = tl.zeros([BLOCK_C], dtype)
    rows = tl.zeros([BLOCK_C], dtype)
    for group in range(groups):
        value, _, _, weights = _row(
            partial_ptr, class_weights_ptr, group, groups, parts, classes, cls, cls_ok, FORMULA, EPS, PARAMETERS, AVERAGE,
            ABSENT, ZERO_DIVISION, HAS_CLASS_WEIGHTS, POOL_CLASSES,
        )
        total += tl.where(weights != 0.0, weights * value, 0.0)
        rows += tl.where(cls == 0, (tl.sum(weights, axis=0) > 0.5).to(dtype), 0.0)
    kept = tl.sum(rows, axis=0)
    scale = SIGN / tl.maximum(kept, 1.0)
    average = tl.sum(total, axis=0)
    if ZERO_DIVISION is not None:  # no row counts: the fallback of mean_over_rows
        average += tl.sum(tl.where(kept < 0.5, tl.zeros([1], dtype) + ZERO_DIVISION, 0.0), axis=0)
    tl.store(loss_ptr, OFFSET + scale * average)
    for group in range(groups):
        _, positive, negative, weights = _row(
            partial_ptr, class_weights_ptr, group, groups, parts, classes, cls, cls_ok, FORMULA, EPS, PARAMETERS, AVERAGE,
            ABSENT, ZERO_DIVISION, HAS_CLASS_WEIGHTS, POOL_CLASSES,
        )
        if POOL_CLASSES:
            weights = tl.zeros_like(weights) + tl.sum(weights, axis=0)  # every class of the row reads the one count
        at = weights_ptr + group * classes + cls
        tl.store(at, tl.where(weights != 0.0, scale * weights * positive, 0.0), mask=cls_ok)
        tl.store(at + groups * classes, tl.where(weights != 0.0, scale * weights * negative, 0.0), mask=cls_ok)


def _count_loss_and_weights(operands: CountOperands, settings: LossSettings) -> Tuple[Tensor, Tensor]:
    """The loss (a 0-dim tensor) and the backward pass's weights (2, rows or 1, classes): two launches."""
    leaf, target, mask, dims, sigmoid_logits, first_class, ignore_index, with_mass = operands
    first, second = kernel_constants(settings.approximation)
    kind = KERNEL_KINDS[settings.approximation.kind]
    partial = soft_count_partials(leaf, target, mask, 0 in dims, sigmoid_logits, kind, first, second, first_class, ignore_index, with_mass)
    _, groups, parts, classes = partial.shape
    loss = torch.empty((), dtype=partial.dtype, device=leaf.device)
    weights = torch.empty((2, groups, classes), dtype=partial.dtype, device=leaf.device)
    class_weights = None if settings.class_weights is None else settings.class_weights.to(partial)
    _count_loss_kernel[(1,)](
        partial, partial if class_weights is None else class_weights, loss, weights, groups, parts, classes,
        AVERAGE=settings.average, ABSENT=settings.absent, ZERO_DIVISION=settings.zero_division,
        HAS_CLASS_WEIGHTS=class_weights is not None, POOL_CLASSES=1 in dims, BLOCK_C=triton.next_power_of_2(max(classes, 1)),
        **_constants(settings),
    )
    return loss, weights


class FusedCountLoss(torch.autograd.Function):
    """The loss of a four-count metric from three kernels (this module's docstring); a gradient to be
    differentiated again (create_graph=True) is autograd through `recompute`, the same loss from the custom ops."""

    @staticmethod
    def forward(ctx, leaf: Tensor, operands: CountOperands, settings: LossSettings, recompute: Callable[[Tensor], Tensor]):
        loss, weights = _count_loss_and_weights(operands, settings)
        ctx.operands, ctx.settings = operands._replace(leaf=None, target=None, mask=None), settings
        saved_leaf(ctx, leaf, recompute)
        ctx.save_for_backward(leaf, operands.target, operands.mask, weights)
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):
        leaf, target, mask, weights = ctx.saved_tensors
        settings, operands = ctx.settings, ctx.operands
        first, second = kernel_constants(settings.approximation)

        def gradient_of(grad: Tensor) -> Tensor:
            return count_gradient_launch(
                leaf, target, mask, weights, operands.sigmoid_logits, KERNEL_KINDS[settings.approximation.kind], first, second,
                operands.first_class, operands.ignore_index, grad,
            )

        return _backward(ctx, grad, gradient_of, 3)


def fused_count_loss(operands: CountOperands, settings: LossSettings, recompute: Callable[[Tensor], Tensor]) -> Tensor:
    """The loss of a four-count metric from three launches, differentiable with respect to operands.leaf."""
    return FusedCountLoss.apply(operands.leaf, operands, settings, recompute)


# the whole matrix


@triton.jit
def _matrix_of_row(partial_ptr, group, parts, classes, i, j, ok, BLOCK_C: tl.constexpr):
    """One row's soft C x C matrix from the soft-matrix kernel's per-program matrices, added in a fixed order."""
    matrix = tl.zeros([BLOCK_C, BLOCK_C], partial_ptr.dtype.element_ty)
    for part in range(parts):
        matrix += tl.load(partial_ptr + ((group * parts + part) * classes + i) * classes + j, mask=ok, other=0.0)
    return matrix


@triton.jit
def _weight_matrices(i, j, ok, classes, dtype: tl.constexpr):
    """matrix.weight_matrix's three W: 1 - delta, |i - j| / (C - 1) and (i - j)^2 / (C - 1)^2, zero outside the classes."""
    difference = (i - j).to(dtype)
    scale = tl.maximum(classes - 1, 1).to(dtype)
    unweighted = tl.where(ok & (i != j), 1.0, 0.0).to(dtype)
    linear = tl.where(ok, tl.abs(difference) / scale, 0.0)
    quadratic = tl.where(ok, difference * difference / (scale * scale), 0.0)
    return unweighted, linear, quadratic


@triton.jit
def _matrix_row(partial_ptr, group, parts, classes, FORMULA: tl.constexpr, EPS: tl.constexpr, PARAMETERS: tl.constexpr, BLOCK_C: tl.constexpr):
    """One row's metric and G = d metric / d M: matrix.aggregate's values, the formula and its partial by every
    aggregate, and the chain rule (matrix.chain_rule) with each aggregate's d / dM."""
    i = tl.arange(0, BLOCK_C)[:, None]
    j = tl.arange(0, BLOCK_C)[None, :]
    ok = (i < classes) & (j < classes)
    dtype = partial_ptr.dtype.element_ty
    matrix = _matrix_of_row(partial_ptr, group, parts, classes, i, j, ok, BLOCK_C)
    rows = tl.sum(matrix, axis=1)
    columns = tl.sum(matrix, axis=0)
    unweighted, linear, quadratic = _weight_matrices(i, j, ok, classes, dtype)
    by_rows_u = tl.sum(rows[:, None] * unweighted, axis=0)  # (r W)[j]
    by_rows_l = tl.sum(rows[:, None] * linear, axis=0)
    by_rows_q = tl.sum(rows[:, None] * quadratic, axis=0)
    total = tl.sum(rows, axis=0)
    value, d_sum, d_trace, d_rc, d_rr, d_cc, d_ou, d_ol, d_oq, d_eu, d_el, d_eq = FORMULA(
        total, tl.sum(tl.sum(tl.where(i == j, matrix, 0.0), axis=1), axis=0), tl.sum(rows * columns, axis=0),
        tl.sum(rows * rows, axis=0), tl.sum(columns * columns, axis=0), tl.sum(tl.sum(unweighted * matrix, axis=1), axis=0),
        tl.sum(tl.sum(linear * matrix, axis=1), axis=0), tl.sum(tl.sum(quadratic * matrix, axis=1), axis=0),
        tl.sum(by_rows_u * columns, axis=0), tl.sum(by_rows_l * columns, axis=0), tl.sum(by_rows_q * columns, axis=0),
        tl.zeros_like(total) + EPS, PARAMETERS,
    )
    gradient = d_sum + tl.where(i == j, d_trace, 0.0) + d_rc * (columns[:, None] + rows[None, :])
    gradient += d_rr * 2.0 * rows[:, None] + d_cc * 2.0 * columns[None, :]
    gradient += d_ou * unweighted + d_ol * linear + d_oq * quadratic
    gradient += d_eu * (tl.sum(unweighted * columns[None, :], axis=1)[:, None] + by_rows_u[None, :])
    gradient += d_el * (tl.sum(linear * columns[None, :], axis=1)[:, None] + by_rows_l[None, :])
    gradient += d_eq * (tl.sum(quadratic * columns[None, :], axis=1)[:, None] + by_rows_q[None, :])
    return value, gradient, i, j, ok


@triton.jit
def _matrix_loss_kernel(
    partial_ptr, kept_ptr, loss_ptr, gradient_ptr, groups, parts, classes, FORMULA: tl.constexpr, EPS: tl.constexpr,
    PARAMETERS: tl.constexpr, SIGN: tl.constexpr, OFFSET: tl.constexpr, EVERY_ROW_KEPT: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """One program: each row's matrix, the formula and G on it, the mean over the rows with a kept position
    (MatrixLossBase._mean; kept[row], or every row with EVERY_ROW_KEPT), the loss OFFSET + SIGN * mean, and G times
    d loss / d metric for the backward pass."""
    dtype = partial_ptr.dtype.element_ty
    total = tl.zeros([1], dtype)
    kept = tl.zeros([1], dtype)
    for group in range(groups):
        value, _, _, _, _ = _matrix_row(partial_ptr, group, parts, classes, FORMULA, EPS, PARAMETERS, BLOCK_C)
        counts = 1.0 if EVERY_ROW_KEPT else tl.load(kept_ptr + group).to(dtype)
        total += tl.where(counts != 0.0, value * counts, 0.0)
        kept += counts
    scale = SIGN / tl.maximum(tl.sum(kept, axis=0), 1.0)
    tl.store(loss_ptr, OFFSET + scale * tl.sum(total, axis=0))
    for group in range(groups):
        _, gradient, i, j, ok = _matrix_row(partial_ptr, group, parts, classes, FORMULA, EPS, PARAMETERS, BLOCK_C)
        counts = 1.0 if EVERY_ROW_KEPT else tl.load(kept_ptr + group).to(dtype)
        gradient = tl.where(counts != 0.0, gradient * (scale * counts), 0.0)
        tl.store(gradient_ptr + (group * classes + i) * classes + j, gradient, mask=ok)


def _matrix_loss_and_gradient(operands: MatrixOperands, settings: LossSettings) -> Tuple[Tensor, Tensor]:
    """The loss (a 0-dim tensor) and G times d loss / d metric, (rows or 1, C, C): two launches."""
    leaf, target, mask, kept, per_row, ignore_index = operands
    first, second = kernel_constants(settings.approximation)
    kind = KERNEL_KINDS[settings.approximation.kind]
    partial = soft_matrix_partials(leaf, target, mask, not per_row, kind, first, second, ignore_index)
    groups, parts, classes, _ = partial.shape
    loss = torch.empty((), dtype=partial.dtype, device=leaf.device)
    gradient = torch.empty((groups, classes, classes), dtype=partial.dtype, device=leaf.device)
    _matrix_loss_kernel[(1,)](
        partial, partial if kept is None else kept, loss, gradient, groups, parts, classes, EVERY_ROW_KEPT=kept is None,
        BLOCK_C=triton.next_power_of_2(max(classes, 1)), **_constants(settings),
    )
    return loss, gradient


class FusedMatrixLoss(torch.autograd.Function):
    """The loss of a matrix metric from three kernels: the soft matrix, the loss with G, and the gradient (G's row
    of each position's label); create_graph=True is autograd through `recompute`, the same loss from the custom ops."""

    @staticmethod
    def forward(ctx, leaf: Tensor, operands: MatrixOperands, settings: LossSettings, recompute: Callable[[Tensor], Tensor]):
        loss, gradient = _matrix_loss_and_gradient(operands, settings)
        ctx.settings, ctx.ignore_index = settings, operands.ignore_index
        saved_leaf(ctx, leaf, recompute)
        ctx.save_for_backward(leaf, operands.target, operands.mask, gradient)
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):
        leaf, target, mask, gradient = ctx.saved_tensors
        settings = ctx.settings
        first, second = kernel_constants(settings.approximation)

        def gradient_of(grad: Tensor) -> Tensor:
            kind = KERNEL_KINDS[settings.approximation.kind]
            return matrix_gradient_launch(leaf, target, mask, gradient, kind, first, second, ctx.ignore_index, grad)

        return _backward(ctx, grad, gradient_of, 3)


def fused_matrix_loss(operands: MatrixOperands, settings: LossSettings, recompute: Callable[[Tensor], Tensor]) -> Tensor:
    """The loss of a matrix metric from three launches, differentiable with respect to operands.leaf."""
    return FusedMatrixLoss.apply(operands.leaf, operands, settings, recompute)
