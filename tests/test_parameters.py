"""Metric parameters as keywords everywhere: metricc.loss, emit, threshold_curve, the CLI's --param, the emitted
constructor's signature and help(), and a repr that shows what sets a loss apart."""

import inspect
import pydoc
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import fbeta_score

import metricc
from losses import value_and_gradient
from metricc.cli import main
from metricc.compiler import compile_metric
from metricc.load import load_file, load_source
from metricc.plots import weight_curves
from metricc.runtime.options import OPTION_NAMES
from oracles import plain_soft_counts


def soft_fbeta_loss(probs, target, beta):
    """1 - F-beta of the soft counts, autograd through plain torch: the oracle of the gradient."""
    tp, fp, fn, _ = plain_soft_counts(probs, target)
    return 1 - (1 + beta**2) * tp / ((1 + beta**2) * tp + beta**2 * fn + fp)


def batch(n=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    probs = torch.rand(n, generator=generator, dtype=torch.float64)
    return probs, (torch.arange(n) % 3 == 0).double()


def hard_labels(seed=1, n=60):
    generator = np.random.default_rng(seed)
    return (generator.random(n) < 0.4).astype(int), (generator.random(n) < 0.5).astype(int)


# metricc.loss


@pytest.mark.parametrize("beta", [0.5, 2, 3.0])
def test_loss_takes_a_parameter_as_a_keyword(beta):
    loss = metricc.loss("fbeta", beta=beta, approximation="identity")
    assert loss.parameter_values == {"beta": float(beta)}
    probs, target = batch()
    value, gradient = value_and_gradient(loss, probs, target)
    reference = probs.clone().requires_grad_(True)
    expected = soft_fbeta_loss(reference, target, float(beta))
    (expected_gradient,) = torch.autograd.grad(expected, reference)
    torch.testing.assert_close(value, expected.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-9, atol=1e-12)
    y_true, y_pred = hard_labels()
    metric = loss.metric(torch.tensor(y_pred, dtype=torch.float64), torch.tensor(y_true, dtype=torch.float64))
    assert float(metric) == pytest.approx(fbeta_score(y_true, y_pred, beta=beta), rel=1e-12)


def test_two_parameters_and_an_option_together():
    loss = metricc.loss("tversky", alpha=0.2, beta=0.9, from_logits=True)
    assert loss.parameter_values == {"alpha": 0.2, "beta": 0.9} and loss.from_logits
    assert type(loss)().parameter_values == {"alpha": 0.5, "beta": 0.5}, "a parameter given to loss() is the instance's, not the class's"


@pytest.mark.parametrize("value, shown", [(-1, "-1"), (0, "0"), (float("inf"), "'inf'|inf"), (float("nan"), "nan"), ("2", "'2'"), (True, "True"), (None, "None")])
def test_a_value_outside_the_domain_names_the_parameter_and_its_domain(value, shown):
    with pytest.raises(metricc.ParameterError, match=rf"parameter beta of fbeta = ({shown}) .*\(0, inf\)"):
        metricc.loss("fbeta", beta=value)


def test_an_unknown_keyword_lists_every_accepted_name_and_suggests_the_closest():
    with pytest.raises(metricc.OptionError) as caught:
        metricc.loss("fbeta", bta=2)
    message = str(caught.value)
    assert "bta (did you mean beta?)" in message
    assert all(name in message for name in OPTION_NAMES + ("beta",))
    with pytest.raises(metricc.OptionError, match="from_logit \\(did you mean from_logits\\?\\)"):
        metricc.loss("f1", from_logit=True)
    with pytest.raises(metricc.OptionError, match="no metric parameters"):
        metricc.loss("f1", beta=2)
    with pytest.raises(ValueError, match="bta \\(did you mean beta\\?\\)"):
        type(metricc.loss("fbeta"))(bta=2)


def test_a_library_metric_with_its_parameter_bound_has_none_left():
    with pytest.raises(metricc.OptionError, match="no metric parameters"):
        metricc.loss("fbeta(beta=2)", beta=3)


# threshold_curve


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_threshold_curve_with_a_parameter_matches_sklearn_at_every_cut(beta):
    generator = np.random.default_rng(3)
    target = (generator.random(200) < 0.3).astype(int)
    scores = np.round(np.clip(generator.random(200) * 0.7 + 0.3 * target, 0, 1) * 40) / 40  # ties
    curve = metricc.threshold_curve("fbeta", torch.tensor(scores), torch.tensor(target), beta=beta)
    thresholds = curve.thresholds.numpy()
    expected = [fbeta_score(target, (scores > t).astype(int), beta=beta, zero_division=0) for t in thresholds]
    np.testing.assert_allclose(curve.values.numpy(), expected, atol=1e-12)
    assert curve.best_value == pytest.approx(max(expected), abs=1e-12)


def test_threshold_curve_refuses_a_bad_parameter():
    scores, target = [0.2, 0.7, 0.4], [0, 1, 1]
    with pytest.raises(metricc.ParameterError, match="beta of fbeta = -2"):
        metricc.threshold_curve("fbeta", scores, target, beta=-2)
    with pytest.raises(metricc.ParameterError, match=r"beta of fbeta = \[2\] is not a finite number"):
        metricc.threshold_curve("fbeta", scores, target, beta=[2])
    with pytest.raises(metricc.OptionError, match="bta"):
        metricc.threshold_curve("fbeta", scores, target, bta=2)


# emit and compile: a parameter's value is the emitted default


@pytest.mark.parametrize("standalone", [False, True])
def test_emit_with_a_parameter_makes_it_the_class_default(standalone):
    source = metricc.emit("fbeta", beta=2, approximation="identity", standalone=standalone)
    assert source == metricc.emit("fbeta", beta=2.0, approximation="identity", standalone=standalone), "deterministic, 2 is 2.0"
    loss_class = load_source(source).FbetaLoss
    assert loss_class.metric_parameters["beta"][0] == 2.0
    assert inspect.signature(loss_class).parameters["beta"].default == 2.0
    y_true, y_pred = hard_labels(seed=4)
    metric = loss_class().metric(torch.tensor(y_pred, dtype=torch.float64), torch.tensor(y_true, dtype=torch.float64))
    assert float(metric) == pytest.approx(fbeta_score(y_true, y_pred, beta=2), rel=1e-12)
    assert loss_class(beta=1.0).parameter_values == {"beta": 1.0}, "the constructor still takes any value in the domain"


def test_emit_without_parameters_is_unchanged_and_a_bad_one_is_refused():
    assert metricc.emit("fbeta") == compile_metric("fbeta").source
    assert "beta = 1.0, domain (0, inf)" in metricc.emit("fbeta")
    with pytest.raises(metricc.ParameterError, match=r"beta of fbeta = 0 lies outside its domain \(0, inf\)"):
        metricc.emit("fbeta", beta=0)
    with pytest.raises(metricc.OptionError, match="gamma"):
        metricc.emit("fbeta", gamma=2)


# the constructor's signature and help()


def test_signature_lists_every_option_then_the_parameters_with_the_compiled_defaults():
    loss_class = type(metricc.loss("tversky", task="multiclass", average="macro", from_logits=True))
    signature = inspect.signature(loss_class)
    assert tuple(signature.parameters) == OPTION_NAMES + tuple(loss_class.metric_parameters)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())
    plain = loss_class()
    explicit = loss_class(**{name: p.default for name, p in signature.parameters.items()})
    assert explicit.option_values() == plain.option_values(), "the signature's defaults are the ones the constructor uses"
    assert explicit.parameter_values == plain.parameter_values
    options = plain.option_values()
    assert options["task"] == "multiclass" and options["average"] == "macro" and options["from_logits"] is True
    assert [signature.parameters[name].default for name in plain.parameter_values] == list(plain.parameter_values.values())
    with pytest.raises(TypeError):
        loss_class(0.5)


def test_help_shows_the_constructor():
    loss_class = type(metricc.loss("fbeta"))
    text = pydoc.render_doc(loss_class, renderer=pydoc.plaintext)
    assert "FbetaLoss(*, task: str = 'binary'," in text
    assert "direction: str = 'maximize'" in text and "beta: float = 1.0)" in text


def test_an_instance_keeps_the_signature_of_its_call():
    assert "task" not in inspect.signature(metricc.loss("fbeta")).parameters


# repr


def test_repr_shows_the_parameters_and_options_that_set_a_loss_apart():
    assert repr(metricc.loss("fbeta")) == "FbetaLoss()"
    assert repr(metricc.loss("fbeta", beta=2, from_logits=True)) == "FbetaLoss(beta=2.0, from_logits=True)"
    assert repr(type(metricc.loss("fbeta"))(beta=2, from_logits=True)) == "FbetaLoss(beta=2.0, from_logits=True)"
    weighted = metricc.loss("f1", task="multiclass", average="macro", class_weights=[1, 2, 0.3])
    assert repr(weighted) == "F1Loss(task='multiclass', average='macro', class_weights=(1.0, 2.0, 0.3))"
    assert repr(metricc.loss("f1", approximation="linear", eps=1e-5)) == "F1Loss(approximation='linear', eps=1e-05)"
    model = torch.nn.ModuleDict({"loss": metricc.loss("fbeta", beta=0.5)})
    assert "(loss): FbetaLoss(beta=0.5)" in repr(model)


# TorchScript, torch.compile and torch.export keep the parameter


def test_torchscript_compile_and_export_keep_the_parameter(tmp_path):
    loss = metricc.loss("fbeta", beta=2, approximation="identity")
    probs, target = batch(seed=5)
    expected = value_and_gradient(loss, probs, target)
    oracle = soft_fbeta_loss(probs, target, 2.0)
    torch.testing.assert_close(expected[0], oracle, rtol=1e-12, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(loss)
        torch.jit.save(scripted, tmp_path / "loss.pt")
        loaded = torch.jit.load(tmp_path / "loss.pt")
    compiled = torch.compile(loss, fullgraph=True, backend="eager")
    for candidate in (scripted, loaded, compiled):
        value, gradient = value_and_gradient(candidate, probs, target)
        torch.testing.assert_close(value, expected[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(gradient, expected[1], rtol=0, atol=1e-12)
    exported = torch.export.export(loss, (probs, target))
    torch.testing.assert_close(exported.module()(probs, target), expected[0], rtol=0, atol=1e-12)


# the CLI's --param


def test_cli_compile_param_becomes_the_emitted_default(tmp_path):
    output = tmp_path / "f2.py"
    assert main(["compile", "fbeta", "--param", "beta=2", "--approximation", "identity", "-o", str(output)]) == 0
    assert output.read_text() == metricc.emit("fbeta", beta=2, approximation="identity")
    assert load_file(output).FbetaLoss().parameter_values == {"beta": 2.0}


def test_cli_threshold_param_matches_sklearn(tmp_path, capsys):
    generator = np.random.default_rng(6)
    target = (generator.random(80) < 0.4).astype(int)
    scores = np.round(np.clip(generator.random(80) * 0.6 + 0.4 * target, 0, 1), 2)
    path = tmp_path / "scores.csv"
    path.write_text("score,target\n" + "".join(f"{s},{t}\n" for s, t in zip(scores, target)))
    assert main(["threshold", "fbeta", str(path), "--param", "beta=2"]) == 0
    best = max(fbeta_score(target, (scores > t).astype(int), beta=2, zero_division=0) for t in np.concatenate([[-1.0], scores]))
    assert re.search(rf"fbeta at best\s+{re.escape(f'{best:.6g}')}\s", capsys.readouterr().out)


def test_explain_takes_parameters_as_the_values_it_samples_at():
    explained = metricc.explain("fbeta", beta=2)
    assert [float(p.default) for p in explained.parameters] == [2.0]
    curves, bound = weight_curves(explained, (20, 10, 10, 60)), weight_curves(metricc.explain("fbeta(beta=2)"), (20, 10, 10, 60))
    for key in curves:
        np.testing.assert_allclose(curves[key], bound[key], rtol=1e-12, err_msg=key)
    with pytest.raises(metricc.ParameterError, match="outside its domain"):
        metricc.explain("fbeta", beta=-1)
    with pytest.raises(metricc.OptionError, match="bta \\(did you mean beta\\?\\)"):
        metricc.explain("fbeta", bta=2)


@pytest.mark.parametrize("command", [["grad", "fbeta"], ["explain", "fbeta"]])
def test_cli_reports_take_param_as_the_default(command, capsys):
    assert main([*command, "--param", "beta=2", "--format", "json"]) == 0
    assert '"default": 2.0' in capsys.readouterr().out


@pytest.mark.parametrize(
    "command, params, message",
    [
        (["compile", "fbeta"], ["beta"], "--param 'beta' is not NAME=VALUE"),
        (["compile", "fbeta"], ["=2"], "is not NAME=VALUE"),
        (["compile", "fbeta"], ["beta=x"], "--param beta=x: 'x' is not a number"),
        (["compile", "fbeta"], ["beta=-1"], r"--param beta=-1: parameter beta of fbeta = -1 lies outside its domain (0, inf)"),
        (["compile", "fbeta"], ["beta=nan"], "is not a finite number"),
        (["compile", "fbeta"], ["gamma=2"], "--param gamma: fbeta has no parameter 'gamma' (its parameters are beta)"),
        (["compile", "fbeta"], ["beta=1", "beta=2"], "--param beta is given twice"),
        (["grad", "f1"], ["beta=2"], "f1 has no parameter 'beta' (it has none)"),
        (["explain", "fbeta"], ["beta=0"], "lies outside its domain"),
    ],
)
def test_cli_bad_param_is_one_error_line_and_exit_2(command, params, message, capsys):
    flags = [part for text in params for part in ("--param", text)]
    assert main([*command, *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("metricc: error: ") and message in error
    assert error.count("\n") == 1


def test_cli_threshold_bad_param_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "scores.csv"
    path.write_text("score,target\n0.2,0\n0.8,1\n")
    assert main(["threshold", "fbeta", str(path), "--param", "beta=-3"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("metricc: error: --param beta=-3") and error.count("\n") == 1


def test_a_subclass_with_its_own_constructor_is_described_by_it():
    """The options signature describes the compiled classes; a user's subclass that takes more arguments shows its own."""
    base = type(metricc.loss("f1"))

    class WithGamma(base):
        def __init__(self, gamma: float = 2.0, **options):
            super().__init__(**options)
            self.gamma = gamma

    assert list(inspect.signature(WithGamma).parameters) == ["gamma", "options"]
    assert "from_logits" in inspect.signature(base).parameters


def test_the_api_keywords_a_parameter_may_not_take_are_those_of_the_signatures():
    """A parameter is a keyword of metricc.loss and emit beside their own: the parser refuses exactly those names."""
    from metricc.parse import API_KEYWORDS

    own = set()
    for function in (metricc.loss, metricc.emit, metricc.threshold_curve):
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD or parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                own.add(parameter.name)
    assert own == set(API_KEYWORDS)
    for word in API_KEYWORDS:
        with pytest.raises(metricc.MetricSyntaxError, match="keyword of metricc.loss"):
            metricc.emit(f"param {word} = 2 in (0, inf); TP/(TP + {word}*FP)")


def test_explain_refuses_a_loss_option_saying_what_it_takes():
    with pytest.raises(metricc.OptionError, match=r"parameters, not loss options \(from_logits\)"):
        metricc.explain("fbeta", from_logits=True)
    with pytest.raises(metricc.OptionError, match=r"task='segmentation' is not one of"):
        metricc.explain("fbeta", task="segmentation")


def test_numpy_and_torch_numbers_are_the_numbers_they_hold():
    """class_weights as a tensor or an array, options and parameters as numpy or 0-d torch scalars: the same loss as
    with Python numbers (a tensor of several numbers, or a bool, stays an error)."""
    given = dict(
        task="multiclass", average="macro", class_weights=torch.tensor([1.0, 2.0, 3.0]), steepness=np.float32(10.0),
        ignore_index=np.int64(-1), ce_weight=torch.tensor(0.5), beta=torch.tensor(2.0),
    )
    plain = dict(task="multiclass", average="macro", class_weights=[1.0, 2.0, 3.0], steepness=10.0, ignore_index=-1, ce_weight=0.5, beta=2.0)
    preds, labels = torch.softmax(torch.randn(12, 3, generator=torch.Generator().manual_seed(0)), 1), torch.arange(12) % 3 - (torch.arange(12) == 5).long() * 3
    loss, expected = metricc.loss("fbeta", **given), metricc.loss("fbeta", **plain)
    assert repr(loss) == repr(expected) and type(loss.ignore_index) is int
    torch.testing.assert_close(loss(preds, labels), expected(preds, labels), rtol=0.0, atol=0.0)
    assert metricc.loss("f1", task="multilabel", average="macro", class_weights=np.array([1, 2], dtype=np.float32)).class_weights.tolist() == [1.0, 2.0]
    for bad, match in ((dict(steepness=torch.tensor([1.0, 2.0])), "steepness=tensor"), (dict(ignore_index=torch.tensor(True)), "ignore_index=True")):
        with pytest.raises(metricc.OptionError, match=match):
            metricc.loss("f1", **bad)
