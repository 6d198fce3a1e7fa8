"""Any parameter name the grammar accepts either compiles to the exact gradient or is refused by the rule in
docs/language.md: no user-chosen name can shadow a name the emitted code relies on."""

import inspect
import keyword

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import metricc
from metricc.language import COUNT_NAMES, DERIVED, FUNCTIONS
from metricc.parse import API_KEYWORDS
from metricc.runtime.options import OPTION_NAMES
from oracles import plain_soft_counts

# names the emitted code, the runtime or nn.Module use, and a few more that shadowing would hurt
ADVERSARIAL = [
    "positive", "negative", "value", "tp", "fp", "fn", "tn", "eps", "x0", "x1", "torch", "math", "Tensor", "Tuple",
    "self", "float", "max", "abs", "signed_clamp", "metric_value", "metric_value_and_weights", "param_beta", "param",
    "CountLossBase", "ParameterSpec", "require_runtime", "super", "parameter_values", "metric_parameters", "defaults", "training",
    "cuda", "forward", "formula", "sign", "offset", "print", "lambda", "class", "task", "average", "P", "TOTAL", "sqrt",
    "f1", "_private", "__init__", "name", "standalone", "expression",
]
GRAMMAR_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


def refused_by_the_rule(name):
    """docs/language.md: a keyword, a loss option, or a count, total, function or statement word."""
    return keyword.iskeyword(name) or name in OPTION_NAMES or name in API_KEYWORDS or name in set(COUNT_NAMES) | set(DERIVED) | set(FUNCTIONS) | {"param", "in", "inf"}


def formula(name):
    return f"param {name} = 2 in (0, inf); TP/(TP+FP) + {name}*FP/(FP+TN)"


def reference_loss(probs, one_hot, weight):
    """1 - metric per class (averaged over classes), autograd through plain torch."""
    tp, fp, _, tn = plain_soft_counts(probs, one_hot, dims=0)
    return 1 - (tp / (tp + fp) + weight * fp / (fp + tn)).mean()


def batch(task, seed=0):
    g = torch.Generator().manual_seed(seed)
    if task == "binary":
        probs = torch.rand(40, generator=g, dtype=torch.float64)
        target = (torch.arange(40) % 3 == 0).double()
        return probs, target, probs.reshape(-1, 1), target.reshape(-1, 1)
    probs = torch.softmax(torch.randn(40, 3, generator=g, dtype=torch.float64), 1)
    labels = torch.arange(40) % 3
    return probs, labels, probs, torch.nn.functional.one_hot(labels, 3).double()


def check_name(name):
    if refused_by_the_rule(name):
        with pytest.raises(metricc.MetricError, match="keyword|loss option|built-in name"):
            metricc.emit(formula(name), name="m", direction="maximize")
        return
    for task, options in (("binary", {}), ("multiclass", dict(task="multiclass", average="macro"))):
        loss = metricc.loss(formula(name), name="m", direction="maximize", approximation="identity", **options)
        assert loss.parameter_values == {name: 2.0}
        preds, target, probs, one_hot = batch(task)
        leaf = preds.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(loss(leaf, target), leaf)
        reference = leaf.detach().clone().requires_grad_(True)
        view = reference.reshape(-1, 1) if task == "binary" else reference
        (expected,) = torch.autograd.grad(reference_loss(view, one_hot, 2.0), reference)
        torch.testing.assert_close(gradient, expected, rtol=1e-9, atol=1e-12)
        other = type(loss)(**{name: 3.0})
        assert other.parameter_values == {name: 3.0}
        assert inspect.signature(type(loss)).parameters[name].default == 2.0
        assert repr(other).startswith(f"MLoss({name}=3.0")
        if name != "name":  # metricc.loss's own `name` argument: such a parameter is set on the class, as above
            keyword = metricc.loss(formula(name), name="m", direction="maximize", approximation="identity", **options, **{name: 3.0})
            assert keyword.parameter_values == {name: 3.0}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_names_the_emitter_uses_compile_exactly_or_are_refused_by_the_rule(name):
    check_name(name)


@settings(max_examples=25)
@given(GRAMMAR_NAMES)
def test_any_grammar_name_compiles_exactly_or_is_refused_by_the_rule(name):
    check_name(name)


def test_parameter_named_positive_gets_the_autograd_gradient():
    """The reported case: a parameter `positive` once read the emitted code's own per-sample weight."""
    assert not refused_by_the_rule("positive")
    check_name("positive")
