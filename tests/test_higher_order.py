"""Derivatives beyond the first: double backward (on the predictions and through a model's parameters), Hessians,
forward mode, torch.export's gradient and torch.func.vmap, each against float64 autograd through a plain
soft-count (or soft-matrix) formula, at small N (the float path, the closed-form Function) and at N above the
block size (the Function over counts summed in blocks)."""

import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD

import metricc
from oracles import anyloss_approximation, plain_soft_counts, soft_count_loss, soft_matrix_loss
from test_closed_form import CUSTOM, inputs, module_for

COUNT_CASES = [
    ("f1", dict(), 300),  # binary micro: the formula on Python floats
    ("f1", dict(approximation="identity"), 300),
    ("mcc_ovr", dict(approximation="linear", from_logits=True), 300),
    (CUSTOM, dict(ignore_index=-1, zero_division=0.5), 300),
    ("f1", dict(task="multiclass", average="macro"), 300),
    (CUSTOM, dict(task="multiclass", average="weighted", from_logits=True), 300),
    ("mcc_ovr", dict(task="multilabel", average="macro", approximation="identity"), 300),
    ("f1", dict(task="multiclass", average="macro", multidim_average="samplewise", include_background=False), 300),
    ("f1", dict(), 140_000),  # above the block size: the Function over counts summed in blocks
    ("mcc_ovr", dict(task="multiclass", average="macro", from_logits=True), 140_000),
    (CUSTOM, dict(approximation="linear"), 140_000),
]
MATRIX_CASES = [("qwk", dict(), 40), ("mcc", dict(from_logits=True), 40), ("qwk", dict(from_logits=True), 30_000)]


def case_id(case):
    metric, options, n = case
    name = "custom" if metric == CUSTOM else metric
    return ",".join([name, f"n={n}"] + [f"{k}={v}" for k, v in options.items()])


def count_problem(case):
    """The loss, its plain oracle (a function of preds), and float64 inputs."""
    metric, options, n = case
    namespace, loss = module_for(metric, **options)
    preds, target = inputs(options, n=n)
    return loss, (lambda p: soft_count_loss(namespace, loss, p, target)), preds.detach(), target


def matrix_problem(case):
    metric, options, n = case
    classes = 4
    g = torch.Generator().manual_seed(n)
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    labels[:classes] = torch.arange(classes)
    loss = metricc.loss(metric, task="multiclass", direction="maximize", **options)
    preds = logits if options.get("from_logits") else torch.softmax(logits, 1)
    one_hot = torch.nn.functional.one_hot(labels, classes).double().reshape(n, 1, classes)
    mask = torch.ones(n, 1, 1, dtype=torch.float64)

    def oracle(p):
        probs = torch.softmax(p, 1) if options.get("from_logits") else p
        return soft_matrix_loss(metric, probs.reshape(n, 1, classes), one_hot, mask, False, -1)

    return loss, oracle, preds, labels


def gradient_and_hvp(function, preds, direction):
    """The gradient (with create_graph=True) and the Hessian-vector product by differentiating it again."""
    x = preds.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(function(x), x, create_graph=True)
    (product,) = torch.autograd.grad((gradient * direction).sum(), x)
    return gradient.detach(), product


def assert_close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9 * float(expected.abs().max()) + 1e-15)


def direction_like(preds, seed=1):
    return torch.randn(preds.shape, generator=torch.Generator().manual_seed(seed), dtype=preds.dtype)


@pytest.mark.parametrize("case", COUNT_CASES + MATRIX_CASES, ids=case_id)
def test_double_backward_equals_autograd_through_the_plain_formula(case):
    loss, oracle, preds, target = (matrix_problem if case in MATRIX_CASES else count_problem)(case)
    direction = direction_like(preds)
    gradient, product = gradient_and_hvp(lambda p: loss(p, target), preds, direction)
    expected_gradient, expected_product = gradient_and_hvp(oracle, preds, direction)
    assert_close(gradient, expected_gradient)
    assert_close(product, expected_product)
    assert float(expected_product.abs().max()) > 0.0


@pytest.mark.parametrize("case", COUNT_CASES[:8] + MATRIX_CASES[:2], ids=case_id)
def test_hessians_and_forward_mode_equal_the_plain_formula(case):
    metric, options, _ = case
    loss, oracle, preds, target = (matrix_problem if case in MATRIX_CASES else count_problem)((metric, options, 24))
    function = lambda p: loss(p, target)  # noqa: E731
    expected = torch.autograd.functional.hessian(oracle, preds)
    assert_close(torch.autograd.functional.hessian(function, preds), expected)
    assert_close(torch.func.hessian(function)(preds), expected)

    direction = direction_like(preds)
    x = preds.clone().requires_grad_(True)
    (expected_gradient,) = torch.autograd.grad(oracle(x), x)
    expected_tangent = (expected_gradient * direction).sum()
    value, tangent = torch.func.jvp(function, (preds,), (direction,))
    torch.testing.assert_close(value, oracle(preds))
    assert_close(tangent, expected_tangent)
    with fwAD.dual_level():
        dual = fwAD.make_dual(preds, direction)
        assert_close(fwAD.unpack_dual(loss(dual, target)).tangent, expected_tangent)


@pytest.mark.parametrize("n", [200, 140_000], ids=["float-path", "blocked"])
@pytest.mark.parametrize("metric", ["f1", "qwk"])
def test_gradient_penalty_through_a_model_equals_the_plain_formula(metric, n):
    """d ||d loss / d x|| / d W, as in WGAN-GP or input-gradient regularisation, and MAML's gradient of a loss
    after one inner step, through a model's parameters."""
    matrix = metric == "qwk"
    if matrix:
        n = n // 10
    g = torch.Generator().manual_seed(3)
    features = torch.randn(n, 3, generator=g, dtype=torch.float64)
    classes = 3 if matrix else 1
    target = torch.randint(0, classes, (n,), generator=g) if matrix else (torch.rand(n, generator=g) > 0.5).double()
    weight = torch.randn(3, classes, generator=g, dtype=torch.float64)
    if matrix:
        loss = metricc.loss("qwk", task="multiclass", direction="maximize", from_logits=True)
        one_hot = torch.nn.functional.one_hot(target, classes).double().reshape(n, 1, classes)
        mask = torch.ones(n, 1, 1, dtype=torch.float64)
        oracle = lambda z: soft_matrix_loss("qwk", torch.softmax(z, 1).reshape(n, 1, classes), one_hot, mask, False, -1)  # noqa: E731
        model = lambda x, w: x @ w  # noqa: E731
    else:
        namespace, loss = module_for("f1")
        oracle = lambda p: soft_count_loss(namespace, loss, p, target)  # noqa: E731
        model = lambda x, w: torch.sigmoid(x @ w).reshape(-1)  # noqa: E731

    def penalty_gradients(function):
        x = features.clone().requires_grad_(True)
        w = weight.clone().requires_grad_(True)
        (input_gradient,) = torch.autograd.grad(function(model(x, w)), x, create_graph=True)
        (penalty,) = torch.autograd.grad(input_gradient.norm(), w)
        (inner,) = torch.autograd.grad(function(model(features, w)), w, create_graph=True)
        (meta,) = torch.autograd.grad(function(model(features, w - 0.1 * inner)), w)
        return penalty, meta

    for actual, expected in zip(penalty_gradients(lambda z: loss(z, target)), penalty_gradients(oracle)):
        assert_close(actual, expected)


def test_torchscript_double_backward_is_exact():
    """TorchScript runs no custom Function: its loss is autograd through the formula, exact at every order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in (COUNT_CASES[4], MATRIX_CASES[1]):
            loss, oracle, preds, target = (matrix_problem if case in MATRIX_CASES else count_problem)(case)
            scripted = torch.jit.script(loss)
            direction = direction_like(preds)
            gradient, product = gradient_and_hvp(lambda p: scripted(p, target), preds, direction)
            expected_gradient, expected_product = gradient_and_hvp(oracle, preds, direction)
            assert_close(gradient, expected_gradient)
            assert_close(product, expected_product)


class Step(torch.nn.Module):
    def __init__(self, loss, classes=1):
        super().__init__()
        self.linear = torch.nn.Linear(4, classes)
        self.loss = loss
        self.classes = classes

    def forward(self, x, y):
        scores = self.linear(x)
        return self.loss(scores.reshape(-1) if self.classes == 1 else scores, y)


@pytest.mark.parametrize("metric", ["f1", "qwk"])
def test_exported_step_has_eager_parameter_gradients(metric):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    if metric == "qwk":
        step, y = Step(metricc.loss("qwk", task="multiclass", from_logits=True), 3), torch.randint(0, 3, (64,))
    else:
        step, y = Step(metricc.loss("f1", from_logits=True)), (torch.rand(64) > 0.5).float()
    step(x, y).backward()
    expected = [p.grad.clone() for p in step.parameters()]
    step.zero_grad()
    exported = torch.export.export(step, (x, y)).module()
    value = exported(x, y)
    assert value.requires_grad
    value.backward()
    parameters = dict(exported.named_parameters())
    for name, gradient in zip(dict(step.named_parameters()), expected):
        torch.testing.assert_close(parameters[name].grad, gradient, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("options", [dict(), dict(task="multiclass", average="macro"), dict(task="multiclass", metric="qwk")], ids=["binary", "macro", "qwk"])
def test_vmap_and_vmap_of_grad_equal_the_per_sample_loop(options):
    options = dict(options)
    metric = options.pop("metric", "f1")
    loss = metricc.loss(metric, validate_args=True, **options)
    g = torch.Generator().manual_seed(5)
    if options.get("task") == "multiclass":
        preds = torch.softmax(torch.randn(6, 20, 3, generator=g, dtype=torch.float64), -1)
        target = torch.randint(0, 3, (6, 20), generator=g)
    else:
        preds = torch.rand(6, 20, generator=g, dtype=torch.float64)
        target = (torch.rand(6, 20, generator=g) > 0.5).double()
    values = torch.func.vmap(loss)(preds, target)
    gradients = torch.func.vmap(torch.func.grad(loss))(preds, target)
    for i in range(preds.shape[0]):
        leaf = preds[i].clone().requires_grad_(True)
        value = loss(leaf, target[i])
        (gradient,) = torch.autograd.grad(value, leaf)
        torch.testing.assert_close(values[i], value.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gradients[i], gradient, rtol=1e-9, atol=1e-12)


def test_vmap_with_running_counts_in_training_is_a_clear_error():
    loss = metricc.loss("f1", count_momentum=0.1)
    with pytest.raises(RuntimeError, match="count_momentum"):
        torch.func.vmap(loss)(torch.rand(3, 10), (torch.rand(3, 10) > 0.5).float())


@pytest.mark.parametrize("metric", ["f1", "qwk"])
def test_export_with_running_counts_in_training_is_a_clear_error(metric):
    """An exported module cannot write the running counts: export refuses in training, and in eval mode (where
    the counts are read, not written) the exported loss equals eager's."""
    options = dict(task="multiclass") if metric == "qwk" else {}
    preds = torch.softmax(torch.randn(16, 3), 1) if metric == "qwk" else torch.rand(16)
    target = torch.randint(0, 3, (16,)) if metric == "qwk" else (torch.rand(16) > 0.5).float()
    loss = metricc.loss(metric, count_momentum=0.1, **options)
    with pytest.raises(RuntimeError, match="count_momentum.*torch.export"):
        torch.export.export(loss, (preds, target))
    loss(preds, target)
    loss.eval()
    exported = torch.export.export(loss, (preds, target)).module()
    torch.testing.assert_close(exported(preds, target), loss(preds, target))


def test_compiled_loss_refuses_double_backward_rather_than_dropping_it():
    torch._dynamo.reset()
    compiled = torch.compile(metricc.loss("f1"), fullgraph=True)
    preds = torch.rand(100, requires_grad=True)
    target = (torch.rand(100) > 0.5).float()
    with pytest.raises(RuntimeError, match="double backward"):
        (gradient,) = torch.autograd.grad(compiled(preds, target), preds, create_graph=True)
        gradient.sum().backward()


def test_in_place_change_of_the_predictions_is_refused_under_create_graph():
    x = torch.rand(300, dtype=torch.float64, requires_grad=True)
    preds = x * 1.0
    loss = module_for("f1", task="multiclass", average="macro")[1]
    value = loss(preds.reshape(100, 3), torch.randint(0, 3, (100,)))
    with torch.no_grad():
        preds.mul_(0.5)
    with pytest.raises(RuntimeError, match="modified in place"):
        torch.autograd.grad(value, x, create_graph=True)


def test_create_graph_after_a_retained_first_order_backward_is_a_clear_error():
    """A first-order backward lets go of the predictions (the loss keeps them no longer than its saved tensors);
    a later create_graph=True on the same graph says so instead of returning a constant gradient."""
    loss = module_for("f1")[1]
    preds = torch.rand(300, dtype=torch.float64, requires_grad=True)
    value = loss(preds, (torch.rand(300) > 0.5).double())
    torch.autograd.grad(value, preds, retain_graph=True)
    with pytest.raises(RuntimeError, match="create_graph=True to the first backward"):
        torch.autograd.grad(value, preds, create_graph=True)


@pytest.mark.parametrize("metric", ["f1", "qwk"])
def test_double_backward_with_running_counts_equals_the_plain_formula(metric):
    """count_momentum: the formula reads (1 - m) history + m batch; only the batch depends on the predictions."""
    momentum = 0.3
    g = torch.Generator().manual_seed(11)
    if metric == "qwk":
        loss = metricc.loss("qwk", task="multiclass", direction="maximize", count_momentum=momentum)
        first = torch.softmax(torch.randn(50, 3, generator=g, dtype=torch.float64), 1)
        preds = torch.softmax(torch.randn(50, 3, generator=g, dtype=torch.float64), 1)
        target = torch.randint(0, 3, (50,), generator=g)
        one_hot = torch.nn.functional.one_hot(target, 3).double()

        def oracle(p):
            matrix = (1 - momentum) * history + momentum * (one_hot.t() @ p)
            return soft_matrix_loss("qwk", matrix.reshape(1, 3, 3), torch.eye(3, dtype=torch.float64).reshape(1, 3, 3), torch.ones(1, 3, 1, dtype=torch.float64), False, -1)
    else:
        namespace, loss = module_for("f1", count_momentum=momentum)
        first, preds = torch.rand(200, generator=g, dtype=torch.float64), torch.rand(200, generator=g, dtype=torch.float64)
        target = (torch.rand(200, generator=g) > 0.5).double()

        def oracle(p):
            counts = torch.stack(plain_soft_counts(anyloss_approximation(p, loss.steepness, loss.threshold), target))
            tp, fp, fn, tn = (1 - momentum) * history.reshape(4) + momentum * counts
            return 1 - namespace.metric_value(tp, fp, fn, tn, loss.eps)

    loss.train()
    loss(first, target)  # the history
    history = loss.running_counts.clone().reshape(3, 3) if metric == "qwk" else loss.running_counts.clone()
    direction = direction_like(preds)
    x = preds.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss(x, target), x, create_graph=True)
    (product,) = torch.autograd.grad((gradient * direction).sum(), x)
    expected_gradient, expected_product = gradient_and_hvp(oracle, preds, direction)
    assert_close(gradient.detach(), expected_gradient)
    assert_close(product, expected_product)


@pytest.mark.parametrize("case", [COUNT_CASES[0], COUNT_CASES[2], COUNT_CASES[4], MATRIX_CASES[1]], ids=case_id)
def test_gradgradcheck_float64(case):
    """Second derivatives against finite differences of the first, on every eager Function (floats, weights kept
    from the forward pass) and forward mode through autograd's own check."""
    metric, options, _ = case
    loss, _, preds, target = (matrix_problem if case in MATRIX_CASES else count_problem)((metric, options, 24))
    x = preds.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda p: loss(p, target), (x,))
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (x,), check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False)
