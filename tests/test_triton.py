"""The Triton path (runtime/gpu/kernels.py) against the torch path and float64 autograd.

On a CPU these run under Triton's interpreter (TRITON_INTERPRET=1, set here before triton is imported), which
runs each program in Python: shapes stay tiny. With CUDA (and TRITON_INTERPRET unset) they run on the GPU.
"""

import io
import os
import re
import subprocess
import sys
import warnings
import zipfile

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")

import metricc  # noqa: E402
import metricc.runtime.gpu as gpu  # noqa: E402
import metricc.runtime.inputs as runtime_inputs  # noqa: E402
import metricc.runtime.loss as runtime_loss  # noqa: E402
from metricc.runtime.options import InvalidOption  # noqa: E402
from metricc.runtime.gpu import reset_backend_setting, takes_triton_path  # noqa: E402

from losses import namespace_and_module  # noqa: E402
from oracles import soft_count_loss, soft_matrix_loss  # noqa: E402


def _batch(shape, classes=None, seed=0, logits=False, ignore=False):
    """preds of `shape`, and a 0/1 target of that shape or, with classes, class indices without axis 1."""
    generator = torch.Generator().manual_seed(seed)
    preds = torch.randn(shape, generator=generator, dtype=torch.float64)
    preds = preds * 2 if logits else torch.sigmoid(preds)
    if classes is None:
        target = (torch.rand(shape, generator=generator) < 0.4).double()
        if ignore:
            target[torch.rand(shape, generator=generator) < 0.2] = -1.0
    else:
        target = torch.randint(0, classes, shape[:1] + shape[2:], generator=generator)
        if ignore:
            target[torch.rand(target.shape, generator=generator) < 0.2] = -1
    if not logits and classes is not None and len(shape) > 1:
        preds = preds / preds.sum(1, keepdim=True)
    return preds, target


@pytest.fixture(autouse=True)
def _backend_read_again():
    """METRICC_BACKEND is read once a process: each test sets its own, and the next reads the environment again."""
    reset_backend_setting()
    yield
    reset_backend_setting()


def _use(backend, monkeypatch):
    monkeypatch.setenv("METRICC_BACKEND", backend)
    reset_backend_setting()


def _kernel_steps(patch):
    """A counter of the steps whose counts or matrix come from the kernels (gpu's entry points, spied on)."""
    calls = [0]
    for name in ("soft_counts_on_triton", "count_loss_on_triton", "matrix_on_triton", "matrix_loss_on_triton"):
        def counted(*args, _original=getattr(gpu, name), **kwargs):
            calls[0] += 1
            return _original(*args, **kwargs)

        patch.setattr(gpu, name, counted)
    return calls


def _run(module, preds, target, backend, monkeypatch, **grad_options):
    """The loss and its gradient by preds, on the path METRICC_BACKEND names (checked: the kernels ran, or not)."""
    _use(backend, monkeypatch)
    with monkeypatch.context() as patch:
        calls = _kernel_steps(patch)
        leaf = preds.to(DEVICE).requires_grad_(True)
        loss = module.to(DEVICE)(leaf, target.to(DEVICE))
        (gradient,) = torch.autograd.grad(loss, leaf, **grad_options)
    assert (calls[0] > 0) == (backend == "triton"), f"METRICC_BACKEND={backend}, yet {calls[0]} steps on the kernels"
    return loss.detach().cpu(), gradient.cpu()


CASES = {
    "binary f1": ("f1", {}, (40,), None),
    "binary mcc from_logits": ("mcc", {"from_logits": True}, (40,), None),
    "binary mcc dense ignore_index": ("mcc", {"ignore_index": -1}, (2, 1, 5, 4), None),
    "multilabel macro class_weights": ("f1", {"task": "multilabel", "average": "macro", "class_weights": [1.0, 2.0, 0.5]}, (12, 3), None),
    "multilabel samples": ("jaccard", {"task": "multilabel", "average": "samples"}, (6, 3), None),
    "multiclass probabilities one-hot": ("f1", {"task": "multiclass", "average": "macro"}, (12, 3), 3),
    "multiclass class indices ignore_index": ("jaccard", {"task": "multiclass", "average": "micro", "ignore_index": -1}, (12, 4), 4),
    "multiclass logits weighted": ("dice", {"task": "multiclass", "average": "weighted", "from_logits": True}, (10, 3), 3),
    "dense samplewise no background": (
        "dice", {"task": "multiclass", "multidim_average": "samplewise", "include_background": False, "zero_division": 1.0}, (2, 3, 4, 4), 3,
    ),
    "dense labels ignore_index no background macro": (
        "f1", {"task": "multiclass", "average": "macro", "ignore_index": -1, "include_background": False}, (2, 4, 3, 3), 4,
    ),
    "dense labels (N, 1, H, W) int32 zero_division": (
        "jaccard", {"task": "multiclass", "average": "weighted", "zero_division": 0.5, "multidim_average": "samplewise"}, (2, 3, 4, 3), 3,
    ),
    "class indices in two blocks of classes no background": (
        "dice", {"task": "multiclass", "average": "macro", "ignore_index": -1, "include_background": False, "approximation": "anyloss"},
        (10, 20), 20,
    ),
    "identity": ("dice", {"approximation": "identity"}, (30,), None),
    "linear": ("f1", {"approximation": "linear", "width": 0.4}, (30,), None),
}


def _as_case_asks(case, target, classes):
    """The target in the form the case's name asks for: one-hot, or class indices with a channel axis, in int32."""
    if case.endswith("one-hot"):
        return torch.nn.functional.one_hot(target, classes).double()
    if "(N, 1, H, W)" in case:
        target = target.unsqueeze(1)
    return target.int() if "int32" in case else target


def _assert_the_triton_path_gives(expected, expected_gradient, module, preds, target, gradient_rtol, monkeypatch):
    """On the Triton path: the oracle's loss and gradient in float64, and the torch path's in float32."""
    loss, gradient = _run(module, preds, target, "triton", monkeypatch)
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gradient, expected_gradient, rtol=gradient_rtol, atol=1e-12)
    single = [_run(module, preds.float(), target, backend, monkeypatch) for backend in ("torch", "triton")]
    torch.testing.assert_close(single[1][0], single[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(single[1][1], single[0][1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_values_and_gradients_equal_the_torch_path_and_float64_autograd(case, monkeypatch):
    metric, options, shape, classes = CASES[case]
    namespace, module = namespace_and_module(metric, **options)
    preds, target = _batch(shape, classes, logits=options.get("from_logits", False), ignore="ignore_index" in options)
    if classes is not None:
        target = _as_case_asks(case, target, classes)
    leaf = preds.clone().requires_grad_(True)
    expected = soft_count_loss(namespace, module, leaf, target)
    (expected_gradient,) = torch.autograd.grad(expected, leaf)
    _assert_the_triton_path_gives(expected, expected_gradient, module, preds, target, 1e-8, monkeypatch)


def _one_formula_launch_steps(patch):
    """A counter of the steps that take a loss kernel (gpu/formula.py), spied on at gpu's entry points."""
    calls = [0]
    for name in ("count_loss_on_triton", "matrix_loss_on_triton"):
        def counted(*args, _original=getattr(gpu, name), **kwargs):
            calls[0] += 1
            return _original(*args, **kwargs)

        patch.setattr(gpu, name, counted)
    return calls


def _run_on_the_ops(module, preds, target, monkeypatch):
    """_run on the Triton path as for a file without its formula in Triton's language: the counts' or matrix's
    custom ops and autograd through the torch formula."""
    with monkeypatch.context() as patch:
        patch.setattr(type(module), "formula_in_triton", None)
        return _run(module, preds, target, "triton", monkeypatch)




def _assert_the_loss_launch_gives_the_ops(module, preds, target, monkeypatch):
    """The step takes a loss kernel, and its loss and gradient equal those of the kernels' custom ops and autograd
    through the torch formula (_run_on_the_ops), in float64."""
    with monkeypatch.context() as patch:
        launches = _one_formula_launch_steps(patch)
        fused = _run(module, preds, target, "triton", monkeypatch)
    assert launches[0] == 1
    unfused = _run_on_the_ops(module, preds, target, monkeypatch)
    torch.testing.assert_close(fused[0], unfused[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fused[1], unfused[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("case", list(CASES))
def test_the_formula_launch_gives_the_counts_ops_loss_and_gradient(case, monkeypatch):
    """The loss kernel (formula, weights and average in one program) against the counts' ops and autograd through
    the torch formula, both on the Triton path, in float64 (every case of CASES takes it: none pools counts of other
    steps or ranks)."""
    metric, options, shape, classes = CASES[case]
    _, module = namespace_and_module(metric, **options)
    preds, target = _batch(shape, classes, logits=options.get("from_logits", False), ignore="ignore_index" in options)
    _assert_the_loss_launch_gives_the_ops(module, preds, target, monkeypatch)


@pytest.mark.parametrize("metric, options, classes", [("f1", {}, None), ("qwk", {"task": "multiclass"}, 4)], ids=["counts", "matrix"])
def test_after_backward_the_graph_keeps_no_predictions(metric, options, classes, monkeypatch):
    """A loss kept after its (first-order) backward holds no reference to the predictions, as on the torch path."""
    import weakref

    _use("triton", monkeypatch)
    module = metricc.loss(metric, **options).to(DEVICE)
    raw, target = (tensor.to(DEVICE) for tensor in _batch((12, 4) if classes else (12,), classes))
    leaf = raw.clone().requires_grad_(True)
    preds = leaf * 1.0  # not a leaf: only the graph and this name hold it
    alive = weakref.ref(preds)
    loss = module(preds, target)
    loss.backward()
    del preds
    assert alive() is None, "the loss's graph still holds the predictions after backward"
    assert loss.grad_fn is not None


@pytest.mark.parametrize(
    "metric, options, shape, training",
    [
        ("f1", {"count_momentum": 0.5}, (20,), True),
        ("f1", {"task": "multilabel", "average": "none"}, (10, 3), False),
        ("dice", {"multidim_average": "samplewise", "task": "multilabel", "average": "macro"}, (3, 2, 4), False),
        ("qwk", {"task": "multiclass", "multidim_average": "samplewise"}, (3, 4, 5), False),
    ],
    ids=["running counts", "average none", "more rows than FUSED_ROWS", "more matrices than FUSED_ROWS"],
)
def test_steps_the_loss_kernels_cannot_take_use_the_ops(metric, options, shape, training, monkeypatch):
    """Counts of other steps, per-class losses and many rows of counts take the kernels' custom ops and the torch
    formula (the torch path's loss), not a loss kernel."""
    monkeypatch.setattr(gpu, "FUSED_ROWS", 2)
    module = metricc.loss(metric, **options).train(training)
    classes = shape[1] if options.get("task") == "multiclass" else None
    preds, target = _batch(shape, classes)
    per_class = {"grad_outputs": torch.ones(shape[1], dtype=torch.float64)} if options.get("average") == "none" else {}
    with monkeypatch.context() as patch:
        launches = _one_formula_launch_steps(patch)
        loss = _run(module, preds, target, "triton", monkeypatch, **per_class)[0]
    assert launches[0] == 0
    if training:
        module.reset_running_counts()
    torch.testing.assert_close(loss, _run(module, preds, target, "torch", monkeypatch, **per_class)[0], rtol=1e-12, atol=1e-14)


#: Formulas that reach every branch of printer.TritonPrinter: high, odd, half and fractional powers, exp, log, abs
#: (and sign, its derivative), min and max (Heaviside), the guards (signed_clamp in kappa), and a parameter.
PRINTER_FORMULAS = [
    ("(TP / P - FP / N)^5 + (TP / P)^7", {"direction": "maximize"}),
    ("(TP / P)^0.3 + sqrt(TP * TN) / (P * N)^1.5", {"direction": "maximize"}),
    ("log(1 + TP) - exp(-FP / N) + abs(TP - FN) / (P + N)", {"direction": "maximize"}),
    ("min(TP / P, TN / N) + max(TP, FP) / (P + N)", {"direction": "maximize"}),
    ("cohen_kappa", {}),
    ("overlap_coefficient", {}),
    ("fbeta", {"beta": 0.7}),
    ("tversky", {"alpha": 0.3, "beta": 0.7}),
    ("focal_tversky", {"gamma": 0.75}),
    ("log(2) * TP / P + 2^(TP / P) + exp(1/3) * TN / N + sqrt(2)", {"direction": "maximize"}),
]


@pytest.mark.parametrize("exact", [False, True], ids=["inside (0, 1)", "exact 0/1 and identity"])
@pytest.mark.parametrize("formula, options", PRINTER_FORMULAS, ids=[f for f, _ in PRINTER_FORMULAS])
def test_a_formula_printed_in_triton_gives_the_torch_paths_loss_and_gradient(formula, options, exact, monkeypatch):
    """The emitted metric_value_and_weights_in_triton (TritonPrinter) against the torch path's formula, value and
    gradient in float64, through the one formula launch; exact predictions with A(p) = p reach the guards."""
    _, module = namespace_and_module(formula, **options, **({"approximation": "identity"} if exact else {}))
    preds, target = _batch((40,), seed=3)
    if exact:
        preds = preds.round()
    with monkeypatch.context() as patch:
        launches = _one_formula_launch_steps(patch)
        loss, gradient = _run(module, preds, target, "triton", monkeypatch)
    assert launches[0] == 1
    expected, expected_gradient = _run(module, preds, target, "torch", monkeypatch)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-10, atol=1e-14)


class _ComputeOps(torch.utils._python_dispatch.TorchDispatchMode):
    """The aten operations a step dispatches that compute something (a kernel each, on a GPU): not allocations,
    views or metadata, nor the copies with which Triton's interpreter moves a kernel's arguments to the host."""

    SILENT = ("empty", "new_empty", "set_", "view", "expand", "detach", "alias", "promote_types", "copy_", "as_strided")

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in self.SILENT:
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


#: Steps whose forward and backward are three kernels: binary formulas short and long, and class indices of a
#: multi-class four-count metric (macro, so absent classes are decided in the loss kernel) and of a matrix metric.
THREE_KERNEL_STEPS = {
    **{formula: (formula, {} if formula in ("f1", "mcc", "fbeta") else {"direction": "maximize"}, None)
       for formula in ("f1", "mcc", "fbeta", PRINTER_FORMULAS[0][0], PRINTER_FORMULAS[2][0])},
    "multiclass f1 macro": ("f1", {"task": "multiclass", "average": "macro"}, 5),
    "multiclass qwk": ("qwk", {"task": "multiclass"}, 5),
}


@pytest.mark.skipif(DEVICE != "cpu", reason="counts the interpreter's launches (benchmarks/launches.py counts a GPU's)")
@pytest.mark.parametrize("step_of", list(THREE_KERNEL_STEPS))
def test_a_step_is_three_kernels_whatever_the_formula(step_of, monkeypatch):
    """Forward and backward: the counts (or matrix), the loss and the gradient kernels, and no other computing
    operation but autograd's seed (ones_like), however long the formula."""
    from triton.runtime.interpreter import InterpretedFunction

    formula, options, classes = THREE_KERNEL_STEPS[step_of]
    loss = metricc.loss(formula, validate_args=False, from_logits=classes is None, **options)
    if classes is None:
        preds, target = torch.randn(64, requires_grad=True), (torch.rand(64) < 0.3).float()
    else:
        preds, target = torch.softmax(torch.randn(64, classes), 1).requires_grad_(True), torch.randint(0, classes, (64,))
    _use("triton", monkeypatch)
    loss(preds, target).backward()  # the first step binds the formula
    launches = []
    run = InterpretedFunction.run

    def launched(self, *args, **kwargs):
        launches.append(self.fn.__name__)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(InterpretedFunction, "run", launched)
    preds.grad = None  # else autograd adds to the first step's gradient: one more operation, the user's
    with _ComputeOps() as step:
        loss(preds, target).backward()
    form = "matrix" if formula == "qwk" else "count"
    assert launches == [f"_soft_{'matrix' if form == 'matrix' else 'counts'}_kernel", f"_{form}_loss_kernel", f"_{form}_gradient_kernel"]
    assert step.ops == ["ones_like"], step.ops


def _absent_class_batch():
    """Dense probabilities (2, 4, 6) and labels in {0, 1, -1}: class 2 has no target but probability (present), class 3
    probability only where the label is ignored (absent: no target, no probability at a kept position)."""
    preds, labels = _batch((2, 4, 6), 2, seed=5, ignore=True)
    labels[:, 0] = -1
    preds[:, 3] = 0.0
    preds[:, 3, 0] = 0.25
    return preds / preds.sum(1, keepdim=True), labels


@pytest.mark.parametrize(
    "metric, options",
    [
        ("f1", {"average": "macro"}),
        ("f1", {"average": "macro", "approximation": "anyloss"}),
        ("dice", {"average": "macro", "zero_division": 1.0, "multidim_average": "samplewise", "approximation": "linear", "width": 0.4}),
    ],
    ids=["macro identity (by FP)", "macro anyloss", "zero_division samplewise linear"],
)
def test_absent_classes_are_told_by_the_kernels_probability_mass(metric, options, monkeypatch):
    """The fifth sum of the soft-counts kernel decides absent classes as the torch path's probability mass does."""
    namespace, module = namespace_and_module(metric, task="multiclass", ignore_index=-1, **options)
    preds, labels = _absent_class_batch()
    leaf = preds.clone().requires_grad_(True)
    expected = soft_count_loss(namespace, module, leaf, labels)
    (expected_gradient,) = torch.autograd.grad(expected, leaf)
    _assert_the_triton_path_gives(expected, expected_gradient, module, preds, labels, 1e-8, monkeypatch)


def _no_one_hot(*args, **kwargs):
    raise AssertionError("a one-hot target was built from class indices on the Triton path")


@pytest.mark.parametrize(
    "metric, options",
    [
        ("dice", {"average": "macro", "include_background": False, "zero_division": 1.0, "approximation": "anyloss"}),
        ("qwk", {"multidim_average": "samplewise"}),
    ],
    ids=["counts", "matrix"],
)
def test_class_indices_reach_the_kernels_as_they_are(metric, options, monkeypatch):
    """Neither canonical_layout nor one_hot_labels runs for class-index targets on the Triton path: loss, gradient,
    metric() and confusion_matrix() equal the torch path's, which builds the one-hot target."""
    module = metricc.loss(metric, task="multiclass", ignore_index=-1, **options).to(DEVICE)
    preds, labels = _absent_class_batch()
    expected = _run(module, preds, labels, "torch", monkeypatch)
    preds, labels = preds.to(DEVICE), labels.to(DEVICE)
    expected_values = [module.metric(preds, labels)] + ([module.confusion_matrix(preds, labels)] if metric == "qwk" else [])
    with monkeypatch.context() as patch:
        for owner in (runtime_loss, runtime_inputs):
            patch.setattr(owner, "one_hot_labels", _no_one_hot)
        patch.setattr(runtime_loss, "canonical_layout", _no_one_hot)
        loss, gradient = _run(module, preds, labels, "triton", monkeypatch)
        calls = _kernel_steps(patch)
        values = [module.metric(preds, labels)] + ([module.confusion_matrix(preds, labels)] if metric == "qwk" else [])
    assert calls[0] == len(values), "metric() and confusion_matrix() on the kernels"
    torch.testing.assert_close(loss, expected[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gradient, expected[1], rtol=1e-8, atol=1e-12)
    for value, expected_value in zip(values, expected_values):
        torch.testing.assert_close(value, expected_value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "metric, options, target_form",
    [
        ("f1", {"task": "multilabel", "average": "samples"}, "0/1"),
        ("jaccard", {"task": "multiclass", "average": "macro", "zero_division": 0.5}, "one-hot"),
        ("mcc", {"task": "multiclass", "ignore_index": -1}, "class indices"),
        ("qwk", {"task": "multiclass", "ignore_index": -1}, "one-hot"),
    ],
)
def test_metric_and_confusion_matrix_take_the_kernels_and_equal_the_torch_path(metric, options, target_form, monkeypatch):
    module = metricc.loss(metric, **options)
    preds, target = _batch((10, 3), None if target_form == "0/1" else 3, ignore="ignore_index" in options)
    if target_form == "one-hot":
        kept = target != -1
        target = torch.nn.functional.one_hot(torch.where(kept, target, 0), 3).double()
        target[~kept] = -1.0
    results = []
    for backend in ("torch", "triton"):
        _use(backend, monkeypatch)
        with monkeypatch.context() as patch:
            calls = _kernel_steps(patch)
            values = [module.metric(preds.to(DEVICE), target.to(DEVICE)).cpu()]
            if hasattr(module, "confusion_matrix"):
                values.append(module.confusion_matrix(preds.to(DEVICE), target.to(DEVICE)).cpu())
        assert calls[0] == (len(values) if backend == "triton" else 0)
        results.append(values)
    for triton_value, torch_value in zip(results[1], results[0]):
        torch.testing.assert_close(triton_value, torch_value, rtol=1e-10, atol=1e-12)


MATRIX_CASES = {
    "quadratic_kappa": ("quadratic_kappa", {}, (12, 4)),
    "mcc from_logits ignore_index": ("mcc", {"from_logits": True, "ignore_index": -1}, (12, 3)),
    "mcc dense samplewise": ("mcc", {"multidim_average": "samplewise"}, (2, 3, 3, 3)),
    "cohen_kappa ignore_index one-hot": ("cohen_kappa", {"ignore_index": -1}, (12, 3)),
}


@pytest.mark.parametrize("case", list(MATRIX_CASES))
def test_matrix_metrics_equal_float64_autograd_through_a_plain_soft_matrix(case, monkeypatch):
    name, options, shape = MATRIX_CASES[case]
    module = metricc.loss(name, task="multiclass", direction="maximize", **options)
    logits, labels = _batch(shape, shape[1], logits=True, ignore="ignore_index" in options)
    preds = logits if options.get("from_logits") else torch.softmax(logits, 1)
    reference = preds.clone().requires_grad_(True)
    probs = torch.softmax(reference, 1) if options.get("from_logits") else reference
    kept = labels != -1
    one_hot = torch.nn.functional.one_hot(torch.where(kept, labels, 0), shape[1]).double().reshape(shape[0], -1, shape[1])
    flat = probs.movedim(1, -1).reshape(one_hot.shape)
    per_row = options.get("multidim_average") == "samplewise"
    expected = soft_matrix_loss(name, flat, one_hot, kept.reshape(shape[0], -1, 1).double(), per_row, -1)
    (expected_gradient,) = torch.autograd.grad(expected, reference)
    target = labels
    if case.endswith("one-hot"):
        target = torch.nn.functional.one_hot(torch.where(kept, labels, 0), shape[1]).double()
        target[~kept] = -1.0
    _assert_the_triton_path_gives(expected, expected_gradient, module, preds, target, 1e-9, monkeypatch)


#: Matrix metrics that read, between them, every aggregate (and so every term of the loss kernel's G).
MATRIX_FORMULAS = {
    "mcc (SUM, TRACE, SUM_RC, SUM_RR, SUM_CC)": ("mcc", {}),
    "linear_kappa anyloss (OBSERVED/EXPECTED_LINEAR)": ("linear_kappa", {"approximation": "anyloss"}),
    "quadratic_kappa samplewise (OBSERVED/EXPECTED_QUADRATIC)": ("quadratic_kappa", {"multidim_average": "samplewise"}),
    "OBSERVED_UNWEIGHTED, EXPECTED_UNWEIGHTED, ignore_index": (
        "1 - OBSERVED_UNWEIGHTED / (EXPECTED_UNWEIGHTED / SUM + 1)", {"ignore_index": -1, "direction": "maximize"},
    ),
}


@pytest.mark.parametrize("case", list(MATRIX_FORMULAS))
def test_the_matrix_loss_launch_gives_the_ops_loss_and_gradient(case, monkeypatch):
    """The matrix loss kernel (the aggregates, the formula, G and the mean in one program) against the matrix's
    custom ops and autograd through the torch formula, both on the Triton path, in float64."""
    name, options = MATRIX_FORMULAS[case]
    module = metricc.loss(name, task="multiclass", **options)
    shape = (3, 4, 3, 2) if options.get("multidim_average") == "samplewise" else (14, 4)
    logits, labels = _batch(shape, 4, seed=7, logits=True, ignore="ignore_index" in options)
    preds = torch.softmax(logits, 1)
    _assert_the_loss_launch_gives_the_ops(module, preds, labels, monkeypatch)


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_give_the_torch_paths_loss_and_a_gradient_of_their_dtype(dtype, task, monkeypatch):
    module = metricc.loss("f1", task=task, average="macro", ignore_index=-1)
    preds, target = _batch((16, 3), 3 if task == "multiclass" else None, ignore=True)
    torch_path, triton_path = (_run(module, preds.to(dtype), target, backend, monkeypatch) for backend in ("torch", "triton"))
    assert triton_path[1].dtype == dtype
    torch.testing.assert_close(triton_path[0], torch_path[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(triton_path[1].float(), torch_path[1].float(), rtol=1e-2, atol=1e-4)


def test_running_counts_and_gradients_follow_the_torch_path(monkeypatch):
    results = []
    for backend in ("torch", "triton"):
        module = metricc.loss("mcc", count_momentum=0.3).train()
        steps = [_run(module, *_batch((32,), seed=seed), backend, monkeypatch) for seed in (1, 2)]
        results.append((steps, module.running_counts.cpu()))
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=1e-5)
    for (torch_loss, torch_gradient), (loss, gradient) in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(loss, torch_loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gradient, torch_gradient, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "metric, options, preds, target",
    [
        ("f1", {}, torch.rand(0), torch.zeros(0)),
        ("f1", {"ignore_index": -1}, torch.rand(5), -torch.ones(5)),
        ("qwk", {"task": "multiclass"}, torch.rand(0, 3), torch.zeros(0, dtype=torch.long)),
        ("f1", {"task": "multiclass", "average": "macro", "zero_division": 1.0}, torch.rand(0, 3, 2), torch.zeros(0, 2, dtype=torch.long)),
        ("dice", {"task": "multiclass", "ignore_index": -1, "approximation": "anyloss"}, torch.rand(4, 3), -torch.ones(4, dtype=torch.long)),
        ("mcc", {"task": "multiclass", "ignore_index": -1}, torch.rand(4, 3), -torch.ones(4, dtype=torch.long)),
        ("f1", {"multidim_average": "samplewise"}, torch.rand(0, 1, 4, 4), torch.zeros(0, 1, 4, 4)),
        ("dice", {"task": "multiclass", "multidim_average": "samplewise"}, torch.rand(0, 3, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long)),
    ],
    ids=[
        "empty", "every position ignored", "empty matrix", "empty labels", "every label ignored", "every label ignored matrix",
        "no images", "no images micro multiclass",
    ],
)
def test_a_batch_without_positions_gives_the_torch_paths_loss(metric, options, preds, target, monkeypatch):
    """Both paths give a number, and the same one: the zero_division fallback (else 0) where no row counts."""
    module = metricc.loss(metric, **options)
    torch_path, triton_path = (_run(module, preds, target, backend, monkeypatch) for backend in ("torch", "triton"))
    assert torch.isfinite(torch_path[0])
    torch.testing.assert_close(triton_path[0], torch_path[0])
    torch.testing.assert_close(triton_path[1], torch_path[1])


def test_a_repeated_call_gives_the_same_bits(monkeypatch):
    """Partial sums per program, reduced in a fixed order: several programs here (5000 positions, 1024 a tile)."""
    module = metricc.loss("mcc", task="multilabel", average="micro")
    preds, target = _batch((2500, 2))
    first, second = (_run(module, preds.float(), target, "triton", monkeypatch) for _ in range(2))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


SECOND_ORDER_CASES = {
    "binary f1 from_logits": (("f1",), {"from_logits": True}, (24,), None),
    "multilabel macro": (("f1",), {"task": "multilabel", "average": "macro"}, (6, 3), None),
    "quadratic_kappa class indices": (("quadratic_kappa",), {"task": "multiclass"}, (8, 3), 3),
    "mcc class indices ignore_index": (("mcc",), {"task": "multiclass", "ignore_index": -1}, (8, 3), 3),
    "dice class indices ignore_index no background": (
        ("dice",), {"task": "multiclass", "average": "macro", "ignore_index": -1, "include_background": False}, (2, 3, 2, 2), 3,
    ),
}


@pytest.mark.parametrize("case", list(SECOND_ORDER_CASES))
def test_a_gradient_of_the_gradient_equals_the_torch_paths(case, monkeypatch):
    """Second derivatives are autograd through the kernels' expression in torch's operations (class indices made
    one-hot there only)."""
    names, options, shape, classes = SECOND_ORDER_CASES[case]
    module = metricc.loss(*names, **options)
    preds, target = _batch(shape, classes, logits=options.get("from_logits", False), ignore="ignore_index" in options)
    direction = torch.randn(preds.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    results = []
    for backend in ("torch", "triton"):
        _use(backend, monkeypatch)
        with monkeypatch.context() as patch:
            calls = _kernel_steps(patch)
            leaf = preds.to(DEVICE).requires_grad_(True)
            (gradient,) = torch.autograd.grad(module.to(DEVICE)(leaf, target.to(DEVICE)), leaf, create_graph=True)
            (second,) = torch.autograd.grad((gradient * direction.to(DEVICE)).sum(), leaf)
        assert (calls[0] > 0) == (backend == "triton")
        results.append((gradient.detach().cpu(), second.cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "options, shape, classes",
    [
        ({}, (40,), None),
        ({"task": "multiclass", "average": "macro", "ignore_index": -1, "zero_division": 1.0, "approximation": "anyloss"}, (4, 3, 5), 3),
    ],
    ids=["binary", "class indices and probability mass"],
)
def test_compiled_and_exported_losses_call_the_kernels(options, shape, classes, monkeypatch):
    _use("triton", monkeypatch)
    module = metricc.loss("mcc" if classes is None else "f1", validate_args=False, **options).to(DEVICE)
    preds, target = _batch(shape, classes, ignore="ignore_index" in options)
    preds, target = preds.float().to(DEVICE), (target.float() if classes is None else target).to(DEVICE)
    expected, expected_gradient = _run(module, preds, target, "triton", monkeypatch)
    graphs = []

    def recording_backend(graph, inputs):
        graphs.append(str(graph.graph))
        return graph.forward

    torch._dynamo.reset()
    for backend in (recording_backend, "inductor"):
        leaf = preds.clone().requires_grad_(True)
        loss = torch.compile(module, fullgraph=True, backend=backend)(leaf, target)
        (gradient,) = torch.autograd.grad(loss, leaf)
        torch.testing.assert_close(loss.detach().cpu(), expected, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(gradient.cpu(), expected_gradient, rtol=1e-5, atol=1e-7)
    assert "metricc.soft_counts" in graphs[0]
    exported = torch.export.export(module.eval(), (preds, target))
    assert "metricc.soft_counts" in str(exported.graph)
    torch.testing.assert_close(exported.module()(preds, target).cpu(), expected, rtol=1e-6, atol=1e-7)


SCRIPTED_CASES = {
    "binary mcc from_logits": ("mcc", {"from_logits": True}, (40,), None),
    "multiclass class indices ignore_index macro zero_division": (
        "f1", {"task": "multiclass", "average": "macro", "ignore_index": -1, "zero_division": 1.0, "approximation": "anyloss"}, (12, 3), 3,
    ),
    "multilabel samples": ("jaccard", {"task": "multilabel", "average": "samples"}, (6, 3), None),
    "running counts in training": ("f1", {"count_momentum": 0.5}, (30,), None),
    "dense ignore_index on a float target no background class_weights": (
        "dice", {"task": "multilabel", "average": "macro", "ignore_index": -1, "include_background": False, "class_weights": [2.0, 0.5]},
        (2, 3, 3, 2), None,
    ),
    "multiclass logits average none": ("jaccard", {"task": "multiclass", "average": "none", "from_logits": True}, (10, 3), 3),
    "matrix quadratic_kappa ignore_index": ("quadratic_kappa", {"task": "multiclass", "ignore_index": -1}, (12, 4), 4),
    "matrix mcc dense samplewise": ("mcc", {"task": "multiclass", "multidim_average": "samplewise"}, (2, 3, 3, 3), 3),
}


def _scripted_with_kernels(module):
    """script_with_kernels(module), whose steps on this test's device take the kernels (CPU ones: the interpreter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return gpu.script_with_kernels(module, on_cpu=DEVICE == "cpu")


def _operators_named(scripted):
    """The metricc operators a TorchScript archive of `scripted` calls, read from its code."""
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    archive = zipfile.ZipFile(buffer)
    code = "".join(archive.read(name).decode() for name in archive.namelist() if name.endswith(".py"))
    return sorted(set(re.findall(r"ops\.metricc\.(\w+)", code)))


@pytest.mark.parametrize("case", list(SCRIPTED_CASES))
def test_a_module_scripted_with_kernels_takes_them_through_torch_ops(case, monkeypatch):
    """TorchScript through torch.ops: the scripted module's steps call the kernels (metricc::scripted_soft_counts or
    _matrix, whose autograd is the kernels' own) and give the eager torch path's loss, gradient, second derivative,
    metric and running counts; torch.jit.script alone names no metricc operator."""
    metric, options, shape, classes = SCRIPTED_CASES[case]
    preds, target = _batch(shape, classes, logits=options.get("from_logits", False), ignore="ignore_index" in options)
    preds, target = preds.to(DEVICE), target.to(DEVICE)
    direction = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    eager, scripted_from = metricc.loss(metric, **options).to(DEVICE), metricc.loss(metric, **options).to(DEVICE)
    scripted = _scripted_with_kernels(scripted_from)
    results = []
    for module, backend in ((eager, "torch"), (scripted, "triton")):
        _use("torch", monkeypatch)  # the environment never reaches a scripted module: its constants decide
        with monkeypatch.context() as patch:
            calls = _kernel_steps(patch)
            steps = []
            for step in range(2):  # the second step reads the first's running counts
                leaf = preds.clone().requires_grad_(True)
                loss = module(leaf, target)
                (gradient,) = torch.autograd.grad(loss.sum(), leaf, create_graph=True)  # average='none': a loss per class
                (second,) = torch.autograd.grad((gradient * direction).sum(), leaf)
                values = [loss.detach(), gradient.detach(), second, module.metric(preds, target), module.running_counts.clone()]
                if case.startswith("matrix"):
                    values.append(module.confusion_matrix(preds, target))
                steps.append(values)
        kernel_calls = 6 if case.startswith("matrix") else 4  # two steps: the loss, metric() and confusion_matrix()
        assert calls[0] == (kernel_calls if backend == "triton" else 0), f"{calls[0]} steps of the {backend} module on the kernels"
        results.append(steps)
    for scripted_step, eager_step in zip(results[1], results[0]):
        for scripted_value, eager_value in zip(scripted_step, eager_step):
            torch.testing.assert_close(scripted_value.cpu(), eager_value.cpu(), rtol=1e-8, atol=1e-10)
    expected = ["scripted_soft_matrix"] if case.startswith("matrix") else ["scripted_soft_counts"]
    assert _operators_named(scripted) == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert _operators_named(torch.jit.script(scripted_from)) == [], "script_with_kernels left its constants set"


def test_an_archive_scripted_with_kernels_loads_where_metricc_runtime_gpu_is_imported(tmp_path):
    """A fresh process loads the archive once metricc.runtime.gpu defines the operators, and gives this one's loss;
    without it, torch.jit.load names the missing operator."""
    module = metricc.loss("qwk", task="multiclass", from_logits=True)
    preds, labels = _batch((12, 4), 4, logits=True)
    scripted = _scripted_with_kernels(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(scripted, str(tmp_path / "qwk.pt"))
    torch.save((preds, labels), tmp_path / "batch.pt")
    load = "import warnings, torch; warnings.simplefilter('ignore'); m = torch.jit.load('qwk.pt')\n"
    run = "preds, labels = torch.load('batch.pt'); print(repr(float(m(preds.to('{0}'), labels.to('{0}')))))\n".format(DEVICE)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    missing = subprocess.run([sys.executable, "-c", load], cwd=tmp_path, capture_output=True, text=True, env=environment)
    assert missing.returncode != 0 and "metricc::scripted_soft_matrix" in missing.stderr
    loaded = subprocess.run(
        [sys.executable, "-c", "import metricc.runtime.gpu\n" + load + run], cwd=tmp_path, capture_output=True, text=True, env=environment,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert float(loaded.stdout) == float(scripted(preds.to(DEVICE), labels.to(DEVICE)))


def test_script_with_kernels_takes_only_metriccs_losses_and_needs_triton(monkeypatch):
    with pytest.raises(TypeError, match="script_with_kernels takes a loss compiled by metricc"):
        gpu.script_with_kernels(torch.nn.BCELoss())
    namespace, module = namespace_and_module("f1", standalone=True)
    with pytest.raises(TypeError, match="a standalone file carries the torch path only"):
        gpu.script_with_kernels(module)
    monkeypatch.setattr(gpu, "_triton_importable", [False])
    with pytest.raises(ImportError, match=r"script_with_kernels needs triton .*pip install 'metricc\[triton\]'"):
        gpu.script_with_kernels(metricc.loss("f1"))


def test_a_subclass_with_constants_of_its_own_scripts_both_ways(monkeypatch):
    """The scripted path is chosen by hasattr, which TorchScript decides however a subclass declares its constants."""
    class WithConstants(type(metricc.loss("f1"))):
        __constants__ = ["extra"]
        extra = 2

    preds, target = _batch((30,))
    expected = WithConstants()(preds, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plain = torch.jit.script(WithConstants())
    assert _operators_named(plain) == []
    with monkeypatch.context() as patch:
        calls = _kernel_steps(patch)
        values = [plain(preds, target), _scripted_with_kernels(WithConstants())(preds.to(DEVICE), target.to(DEVICE)).cpu()]
    assert calls[0] == 1
    for value in values:
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)


def test_a_scripted_matrix_metric_of_more_classes_than_the_kernels_take_keeps_the_torch_path(monkeypatch):
    module = metricc.loss("qwk", task="multiclass")
    preds, labels = _batch((40, gpu.MATRIX_CLASSES + 1), gpu.MATRIX_CLASSES + 1)
    with monkeypatch.context() as patch:
        calls = _kernel_steps(patch)
        scripted = _scripted_with_kernels(module)
        values = [scripted(preds.to(DEVICE), labels.to(DEVICE)), scripted.confusion_matrix(preds.to(DEVICE), labels.to(DEVICE))]
    assert calls[0] == 0
    torch.testing.assert_close(values[0].cpu(), module(preds, labels), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(values[1].cpu(), module.confusion_matrix(preds, labels), rtol=1e-12, atol=1e-12)


def test_a_module_scripted_with_kernels_keeps_cpu_tensors_on_the_torch_path(monkeypatch):
    """Without on_cpu, a CPU step of a module scripted with kernels is the torch path's (only CUDA steps take them)."""
    module = metricc.loss("f1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = gpu.script_with_kernels(module)
    preds, target = _batch((30,))
    with monkeypatch.context() as patch:
        calls = _kernel_steps(patch)
        torch.testing.assert_close(scripted(preds, target), module(preds, target), rtol=1e-12, atol=0.0)
    assert calls[0] == 0


def test_the_backend_is_chosen_by_the_environment_then_the_device(monkeypatch):
    cpu = torch.zeros(3)
    monkeypatch.delenv("METRICC_BACKEND", raising=False)
    assert not takes_triton_path(cpu)
    _use("triton", monkeypatch)
    assert takes_triton_path(cpu)
    monkeypatch.setenv("METRICC_BACKEND", "torch")
    assert takes_triton_path(cpu), "read once, until reset_backend_setting()"
    reset_backend_setting()
    assert not takes_triton_path(cpu)
    _use("cuda", monkeypatch)
    with pytest.raises(InvalidOption, match="METRICC_BACKEND='cuda'"):
        takes_triton_path(cpu)


def test_a_cpu_step_by_default_never_imports_triton():
    script = (
        "import sys, torch, metricc\n"
        "x = torch.rand(8, requires_grad=True)\n"
        "metricc.loss('f1')(x, (torch.rand(8) > 0.5).float()).backward()\n"
        "assert 'triton' not in sys.modules, 'triton imported'\n"
    )
    environment = {key: value for key, value in os.environ.items() if key not in ("METRICC_BACKEND", "TRITON_INTERPRET")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr


cuda_only = pytest.mark.skipif(DEVICE != "cuda", reason="needs a CUDA device (the interpreter has no streams to synchronise)")


@cuda_only
@pytest.mark.parametrize(
    "metric, options, shape", [("mcc", {}, (10_000,)), ("fbeta", {"beta": 2.0}, (10_000,)), ("qwk", {"task": "multiclass"}, (4096, 5))],
)
def test_a_step_never_synchronises_with_the_host(metric, options, shape, monkeypatch):
    _use("triton", monkeypatch)
    module = metricc.loss(metric, validate_args=False, **options).cuda()
    preds, target = (t.float().cuda() if t.is_floating_point() else t.cuda() for t in _batch(shape, shape[1] if len(shape) > 1 else None))
    preds.requires_grad_(True)
    module(preds, target).backward()  # the kernels compile on the first call
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        module(preds, target).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@cuda_only
def test_a_training_step_replays_from_a_cuda_graph(monkeypatch):
    _use("triton", monkeypatch)
    module = metricc.loss("f1", validate_args=False).cuda()
    preds, target = (t.float().cuda() for t in _batch((5000,)))
    static = preds.clone().requires_grad_(True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            static.grad = None
            module(static, target).backward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    static.grad = None
    with torch.cuda.graph(graph):
        static_loss = module(static, target)
        static_loss.backward()
    fresh = torch.rand_like(preds)
    with torch.no_grad():
        static.copy_(fresh)
    graph.replay()
    leaf = fresh.clone().requires_grad_(True)
    expected = module(leaf, target)
    expected.backward()
    torch.testing.assert_close(static_loss, expected)
    torch.testing.assert_close(static.grad, leaf.grad)


DDP_CASES = [
    "multiclass-macro", "multiclass-weighted-samplewise", "multilabel-micro", "multiclass-running", "multiclass-absent-on-rank-0",
    "matrix-qwk", "matrix-mcc-samplewise", "matrix-kappa-running",
]


def _ddp_worker(rank):
    """One gloo rank on the Triton path (the interpreter's, on CPU tensors): test_ddp's cases on its shard."""
    from ranks import shard
    from test_ddp import CASES, batch, losses_and_gradients, metric_of, steps_of

    os.environ["METRICC_BACKEND"] = "triton"
    reset_backend_setting()
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        calls = _kernel_steps(patch)
        for case in DDP_CASES:
            loss = metricc.loss(metric_of(case), from_logits=True, sync="ddp", **CASES[case])
            batches = [batch(case, step) for step in range(steps_of(case))]
            out[case] = losses_and_gradients(loss, [b[0][shard(rank)] for b in batches], [b[1][shard(rank)] for b in batches], steps_of(case))
    out["kernel steps"] = calls[0]
    return out


@pytest.mark.skipif(DEVICE != "cpu", reason="gloo ranks on CPU tensors")
def test_sync_ddp_ranks_on_the_triton_path_equal_one_process_on_the_whole_batch(tmp_path):
    from ranks import WORLD, on_ranks
    from test_ddp import assert_ranks_equal_one_process, steps_of

    ranks = on_ranks(_ddp_worker, tmp_path)
    steps = sum(steps_of(case) for case in DDP_CASES)
    assert [ranks[rank]["kernel steps"] for rank in range(WORLD)] == [steps] * WORLD, "every step of every rank on the kernels"
    for case in DDP_CASES:
        assert_ranks_equal_one_process(ranks, case)


_COMPILE_FOR_SM90 = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import metricc
from metricc.runtime.gpu import formula, kernels

def source(kernel, constants, labels, floats="*fp32"):
    names = kernel.arg_names
    def kind(name):
        if name == "target_ptr" and labels:
            return labels
        if name == "preds_ptr":
            return "*fp16"
        return floats if name.endswith("_ptr") else "fp32" if name.endswith(("_hi", "_lo")) else "i64"
    signature = {name: "constexpr" if name in constants else kind(name) for name in names}
    return ASTSource(fn=kernel, signature=signature, constexprs={(names.index(name),): value for name, value in constants.items()})

def compiled(kernel, constants, labels=None, floats="*fp32"):
    missing = [name for name in kernel.arg_names if name.isupper() and name not in constants]
    assert not missing, f"{kernel.fn.__name__}: constexprs {missing} not set"
    return triton.compile(source(kernel, constants, labels, floats), target=GPUTarget("cuda", 90, 32)).asm

def shared(loss):
    parameters = tuple(loss.parameter_values[name] for name in loss.metric_parameters)
    return dict(FORMULA=formula.triton_formula(type(loss).formula_in_triton), EPS=loss.eps, PARAMETERS=parameters, SIGN=-1.0, OFFSET=1.0)

for kernel, constants, labels in [
    (kernels._soft_counts_kernel, dict(POOLED=True, HAS_MASK=True, LABELS=False, WITH_MASS=False, SIGMOID_LOGITS=True, KIND=0, BLOCK_N=256, BLOCK_C=4), None),
    (kernels._soft_counts_kernel, dict(POOLED=False, HAS_MASK=True, LABELS=True, WITH_MASS=True, SIGMOID_LOGITS=False, KIND=0, BLOCK_N=256, BLOCK_C=4), "*i64"),
    (kernels._soft_counts_kernel, dict(POOLED=True, HAS_MASK=False, LABELS=True, WITH_MASS=True, SIGMOID_LOGITS=False, KIND=2, BLOCK_N=256, BLOCK_C=4), "*i32"),
    (kernels._count_gradient_kernel, dict(HAS_MASK=True, LABELS=False, SIGMOID_LOGITS=False, KIND=2, BLOCK_N=256, BLOCK_C=4, HAS_GRAD=True), None),
    (kernels._count_gradient_kernel, dict(HAS_MASK=True, LABELS=True, SIGMOID_LOGITS=False, KIND=0, BLOCK_N=256, BLOCK_C=4, HAS_GRAD=False), "*i64"),
    (kernels._soft_matrix_kernel, dict(POOLED=False, HAS_MASK=True, LABELS=False, KIND=1, BLOCK_N=64, BLOCK_C=8), None),
    (kernels._soft_matrix_kernel, dict(POOLED=True, HAS_MASK=True, LABELS=True, KIND=0, BLOCK_N=64, BLOCK_C=8), "*i64"),
    (kernels._matrix_gradient_kernel, dict(HAS_MASK=False, LABELS=False, KIND=0, BLOCK_N=64, BLOCK_C=8, HAS_GRAD=False), None),
    (kernels._matrix_gradient_kernel, dict(HAS_MASK=True, LABELS=True, KIND=2, BLOCK_N=64, BLOCK_C=8, HAS_GRAD=True), "*i32"),
]:
    assert "cubin" in compiled(kernel, constants, labels)

# the loss kernels in float32 and float64, where eps (1e-50 here) and the parameters are exact float64 constants
for index, (text, options, pool_classes) in enumerate(FORMULAS):
    floats = "*fp64" if index % 2 else "*fp32"
    constants = dict(
        AVERAGE=index % 3, ABSENT=index % 3, ZERO_DIVISION=0.3 if index % 2 else None, HAS_CLASS_WEIGHTS=True,
        POOL_CLASSES=pool_classes, BLOCK_C=4, **shared(metricc.loss(text, **options)),
    )
    if floats == "*fp64":
        constants["EPS"] = 1e-50
    asm = compiled(formula._count_loss_kernel, constants, floats=floats)
    assert "cubin" in asm
    assert floats == "*fp32" or "dense<1.000000e-50> : tensor<4xf64>" in asm["ttir"], "eps is a float64 constant"

for index, text in enumerate(MATRIX_FORMULAS):
    constants = dict(EVERY_ROW_KEPT=index % 2 == 0, BLOCK_C=8, **shared(metricc.loss(text, task="multiclass", direction="maximize")))
    assert "cubin" in compiled(formula._matrix_loss_kernel, constants, floats="*fp64" if index % 2 else "*fp32")
"""


def test_the_kernels_compile_for_an_h100_without_one():
    """What the interpreter cannot check (Triton's types, shapes and lowering): each kernel, and the loss kernels
    with formulas that reach every branch of the Triton printer and every aggregate, compiles to a cubin for sm_90 with Triton's own
    compiler and ptxas, in a process without TRITON_INTERPRET."""
    if "nvidia" not in __import__("triton.backends", fromlist=["backends"]).backends:
        pytest.skip("this triton has no CUDA backend")
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    # between them every branch of the printer: powers, logs and exponentials, abs and sign, the signed guard, min
    # and Heaviside, a parameter (and a power of it); pooled over classes and not
    chosen = [PRINTER_FORMULAS[index] for index in (0, 2, 4, 5, 8)]
    formulas = [(text, options, index % 2 == 0) for index, (text, options) in enumerate(chosen)]
    matrix_formulas = [name for name, _ in MATRIX_FORMULAS.values()]  # between them, every aggregate
    script = f"FORMULAS = {formulas!r}\nMATRIX_FORMULAS = {matrix_formulas!r}\n" + _COMPILE_FOR_SM90
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
