"""The emitted module: self-contained, deterministic, readable, and usable by every PyTorch runtime."""

import ast
import os
import re
import subprocess
import sys
import warnings

import pytest
import sympy
import torch

import metricc
from metricc.emitter import class_name
from metricc.load import load_source
from losses import value_and_gradient
from oracles import batch_with_counts


def imported_modules(source):
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    return imported


def test_emitted_module_imports_torch_and_the_runtime_only():
    """The default form: the formula over metricc's torch-only runtime (the standalone form imports only torch)."""
    imported = imported_modules(metricc.emit("log_diagnostic_odds_ratio"))
    assert {"torch", "metricc.runtime", "metricc.runtime.loss"} <= imported
    assert {name.split(".")[0] for name in imported} <= {"torch", "typing", "math", "metricc"}
    assert all(name.startswith("metricc.runtime") for name in imported if name.startswith("metricc"))


def test_docstring_shows_formula_and_partials():
    source = metricc.emit("2*TP/(2*TP+FP+FN)", name="f1")
    docstring = ast.get_docstring(ast.parse(source))
    for partial in metricc.gradient("f1").values():
        assert sympy.sstr(partial) in docstring
    assert "f1 = 2*TP/(FN + FP + 2*TP)" in docstring
    assert "class F1Loss(CountLossBase)" in source


def test_same_input_gives_byte_identical_output_across_processes():
    script = "import metricc, sys; sys.stdout.write(metricc.emit('mcc') + metricc.emit('fbeta(beta=2) + kappa/3'))"
    outputs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outputs) == 1
    assert outputs.pop() == metricc.emit("mcc") + metricc.emit("fbeta(beta=2) + kappa/3")


def test_class_name_rejects_unsafe_names():
    assert class_name("balanced_accuracy") == "BalancedAccuracyLoss"
    for bad in ['x"""; import os #', "a\nb", "class", "1abc", "", "é"]:
        with pytest.raises(metricc.OptionError):
            class_name(bad)


def test_parameters_become_constructor_arguments():
    module = load_source(metricc.emit("fbeta"))
    loss = module.FbetaLoss(beta=2.0)
    preds, target = torch.rand(30, dtype=torch.float64), (torch.rand(30) < 0.5).double()
    assert loss.metric(preds, target).item() == pytest.approx(metricc.loss("f2").metric(preds, target).item())
    with pytest.raises(ValueError, match="beta"):
        module.FbetaLoss(beta=-1.0)


@pytest.fixture(scope="module")
def f1_and_batch():
    preds = torch.rand(64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    target = (torch.rand(64, generator=torch.Generator().manual_seed(1)) < 0.4).double()
    return metricc.loss("mcc"), preds, target


def test_torchscript_save_load_round_trip(f1_and_batch, tmp_path):
    module, preds, target = f1_and_batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(module)
        torch.jit.save(scripted, tmp_path / "loss.pt")
        loaded = torch.jit.load(tmp_path / "loss.pt")
    expected = value_and_gradient(module, preds, target)
    for candidate in (scripted, loaded):
        value, gradient = value_and_gradient(candidate, preds, target)
        torch.testing.assert_close(value, expected[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(gradient, expected[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(loaded.metric(preds, target), module.metric(preds, target))


def test_torch_compile_fullgraph(f1_and_batch):
    module, preds, target = f1_and_batch
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    value, gradient = value_and_gradient(compiled, preds, target)
    expected = value_and_gradient(module, preds, target)
    torch.testing.assert_close(value, expected[0])
    torch.testing.assert_close(gradient, expected[1])


def test_torch_export(f1_and_batch):
    module, preds, target = f1_and_batch
    exported = torch.export.export(module, (preds, target))
    torch.testing.assert_close(exported.module()(preds, target), module(preds, target))


def test_module_follows_the_inputs_device_and_dtype(f1_and_batch):
    module, preds, target = f1_and_batch
    assert module(preds.float(), target.float()).dtype == torch.float32
    source = metricc.emit("mcc", standalone=True)
    assert ".cuda(" not in source
    assert set(re.findall(r"device=([\w.]+)", source)) == {"labels.device", "like.device", "matrix.device", "soft.device"}, "a device is only ever taken from an input"


# Hypothesis: random formulas compiled end to end agree with SymPy's own evaluation at the same counts.

from hypothesis import assume, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_parse import random_expressions  # noqa: E402

from metricc.compiler import resolve  # noqa: E402
from metricc.parse import COUNTS  # noqa: E402


@given(random_expressions, st.tuples(*[st.integers(1, 12)] * 4))
def test_compiled_metric_equals_sympy_evaluation(pair, counts):
    text, _ = pair
    try:
        module = metricc.loss(text, direction="maximize", approximation="identity")
    except metricc.InvalidMetricError:
        return
    _, derivation = resolve(text)
    exact = derivation.value.subs(dict(zip(COUNTS, counts)))
    assume(exact.is_finite and exact.is_real)
    value = module.metric(*batch_with_counts(*counts)).item()
    assert value == pytest.approx(float(exact), rel=1e-9, abs=1e-9)
