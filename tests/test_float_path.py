"""The single-count path (binary or micro-averaged, small CPU inputs: the formula on Python floats) against the
tensor formula of the same module, for every library metric, and its fallback where floats fail."""

import pytest
import torch

import metricc.runtime.loss as runtime_loss
from metricc.library import default_library
from losses import namespace_and_module, value_and_gradient


def batches():
    """Ordinary, all-positive, all-negative, perfectly and perfectly wrongly predicted batches, in float64."""
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(64, generator=g) > 0.5).double()
    probs = torch.rand(64, generator=g, dtype=torch.float64)
    ones, zeros = torch.ones(64, dtype=torch.float64), torch.zeros(64, dtype=torch.float64)
    return [(probs, target), (probs, ones), (probs, zeros), (target * 0.9 + 0.05, target), (0.95 - target * 0.9, target)]


def counting_float_losses(monkeypatch):
    """Count the losses the float path returns, so a test knows that path ran."""
    calls = []
    original = runtime_loss.loss_from_floats

    def spy(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(runtime_loss, "loss_from_floats", spy)
    return calls


@pytest.mark.parametrize("name", default_library().names())
@pytest.mark.parametrize("options", [dict(), dict(approximation="identity", zero_division=0.5)])
def test_float_path_matches_tensor_path_for_every_library_metric(name, options, monkeypatch):
    _, module = namespace_and_module(name, **options)
    calls = counting_float_losses(monkeypatch)
    on_floats = [value_and_gradient(module, preds, target) for preds, target in batches()]
    assert calls, "the float path never ran"
    monkeypatch.setattr(runtime_loss, "counts_fit_floats", lambda counts, leaf: False)
    for (preds, target), (value, gradient) in zip(batches(), on_floats):
        expected_value, expected_gradient = value_and_gradient(module, preds, target)
        torch.testing.assert_close(value, expected_value, rtol=1e-9, atol=1e-12, equal_nan=True)
        torch.testing.assert_close(gradient, expected_gradient, rtol=1e-9, atol=1e-9 * float(expected_gradient.abs().max()) + 1e-15)


def test_float_failure_falls_back_to_the_tensor_formula(monkeypatch):
    """math.exp overflows with an error where torch.exp returns inf: the tensor formula decides, as it does for
    large inputs."""
    _, module = namespace_and_module("exp(TP)", approximation="identity", direction="maximize")
    calls = counting_float_losses(monkeypatch)
    preds, target = torch.ones(1000, dtype=torch.float64), torch.ones(1000, dtype=torch.float64)
    value, _ = value_and_gradient(module, preds, target)
    assert not calls
    monkeypatch.setattr(runtime_loss, "counts_fit_floats", lambda counts, leaf: False)
    torch.testing.assert_close(value, value_and_gradient(module, preds, target)[0], equal_nan=True)


def test_float_path_is_only_for_one_count_on_small_cpu_inputs(monkeypatch):
    cases = [
        (dict(), torch.rand(100), (torch.rand(100) > 0.5).float(), True),
        (dict(), torch.rand(70_000), (torch.rand(70_000) > 0.5).float(), False),
        (dict(task="multilabel", average="macro"), torch.rand(10, 3), (torch.rand(10, 3) > 0.5).float(), False),
        (dict(task="multilabel", average="micro"), torch.rand(10, 3), (torch.rand(10, 3) > 0.5).float(), True),
    ]
    for options, preds, target, expected in cases:
        _, module = namespace_and_module("f1", **options)
        calls = counting_float_losses(monkeypatch)
        module(preds.requires_grad_(True), target).backward()
        assert bool(calls) == expected, options
