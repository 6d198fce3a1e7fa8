"""Pickling and checkpoints: a compiled loss, and a model holding one, survive pickle, torch.save/torch.load,
mp.spawn and spawn-mode DataLoader workers in a fresh process with an empty cache; state_dict carries the running
counts, so a run resumed from a checkpoint continues exactly. The oracle is the original object's next step."""

import copy
import importlib.util
import io
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Tuple

import pytest
import torch

import metricc
import metricc.recipe

ROOT = Path(__file__).resolve().parent.parent
STEPS = 3


def count_loss():
    """A four-count loss with options of every kind: running counts, class weights, an ignored index, logits."""
    return metricc.loss(
        "f1", task="multiclass", average="macro", from_logits=True, count_momentum=0.25, class_weights=[1.0, 2.0, 0.5],
        ignore_index=-1,
    )


def parameter_loss():
    """A loss with a metric parameter set on construction."""
    return type(metricc.loss("fbeta", task="multiclass", average="weighted", from_logits=True))(beta=2.0)


def matrix_loss():
    """A metric of the whole confusion matrix, with running counts."""
    return metricc.loss("qwk", task="multiclass", from_logits=True, count_momentum=0.5)


BUILDERS = {"count": count_loss, "parameter": parameter_loss, "matrix": matrix_loss}


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 3, (12,), generator=g)
    target[0] = -1
    return torch.randn(12, 3, generator=g, dtype=torch.float64), target


def step(loss, seed):
    """One training step's loss and its gradient with respect to the predictions."""
    preds, target = batch(seed)
    leaf = preds.requires_grad_(True)
    value = loss(leaf, target if loss.ignore_index is not None else target.clamp(min=0))
    (gradient,) = torch.autograd.grad(value, leaf)
    return value.detach(), gradient


def trained(builder):
    """A loss after STEPS training steps: its running counts hold history."""
    loss = builder()
    for seed in range(STEPS):
        step(loss, seed)
    return loss


def assert_same_step(left, right):
    for a, b in zip(left, right):
        assert torch.equal(a, b), (a, b)


# ---- checkpoints ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["count", "matrix"])
def test_resuming_from_a_state_dict_continues_the_run_exactly(kind):
    running = trained(BUILDERS[kind])
    buffer = io.BytesIO()
    torch.save(running.state_dict(), buffer)
    uninterrupted = step(running, STEPS)
    resumed = BUILDERS[kind]()
    assert not torch.equal(step(copy.deepcopy(resumed), STEPS)[0], uninterrupted[0])  # the history matters
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert_same_step(step(resumed, STEPS), uninterrupted)


def test_state_dict_holds_running_counts_only_with_count_momentum():
    assert list(metricc.loss("f1").state_dict()) == []
    assert list(parameter_loss().state_dict()) == []
    fresh = count_loss()
    assert fresh.state_dict()["running_counts"].shape == (0,)
    used = trained(count_loss)
    used.load_state_dict(fresh.state_dict())  # the empty history of a fresh loss: as reset_running_counts()
    assert used.running_counts.shape == (0,)
    model = torch.nn.ModuleDict({"loss": trained(count_loss)})
    assert model.state_dict()["loss.running_counts"].numel() == 12
    on_meta = count_loss().to("meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copying into a meta tensor is a no-op, and torch says so
        on_meta.load_state_dict(model["loss"].state_dict())
    saved = model["loss"].running_counts
    assert (on_meta.running_counts.device.type, on_meta.running_counts.dtype) == ("meta", saved.dtype)
    assert on_meta.running_counts.shape == saved.shape


def test_a_checkpoint_from_before_running_counts_were_saved_loads_strictly():
    model = torch.nn.ModuleDict({"linear": torch.nn.Linear(3, 3), "loss": trained(count_loss)})
    old = model.state_dict()
    del old["loss.running_counts"]
    old._metadata["loss"]["version"] = 1
    model.load_state_dict(old)
    assert model["loss"].running_counts.shape == (0,)
    old._metadata["loss"]["version"] = 2
    with pytest.raises(RuntimeError, match="running_counts"):
        model.load_state_dict(old)  # a version-2 checkpoint without them is an error, as any missing buffer


def test_reset_running_counts_still_forgets_the_history():
    loss = trained(count_loss)
    loss.reset_running_counts()
    assert_same_step(step(loss, STEPS), step(count_loss(), STEPS))


def test_a_scripted_loss_keeps_its_running_counts_through_torchscript_save_and_load():
    scripted = torch.jit.script(trained(count_loss))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    assert_same_step(step(loaded, STEPS), step(scripted, STEPS))


# ---- pickling in this process ---------------------------------------------------------------------------------


def halved(module, inputs: Tuple[torch.Tensor, torch.Tensor], output: torch.Tensor) -> torch.Tensor:
    """A forward hook (TorchScript scripts it with the loss), to see that hooks survive a copy."""
    return output / 2


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_pickle_and_deepcopy_give_an_independent_loss_of_the_same_class(kind):
    original = trained(BUILDERS[kind])
    original.eval()
    original.register_forward_hook(halved)
    original.spare_slopes.append(torch.zeros(3))
    copies = (pickle.loads(pickle.dumps(original)), copy.deepcopy(original))
    original.train()
    for copied in copies:
        assert type(copied) is type(original)
        assert copied.spare_slopes == [] and len(original.spare_slopes) == 1
        assert not copied.training and copied.parameter_values == original.parameter_values
        assert list(copied._forward_hooks.values()) == [halved]
        copied.train()
        assert_same_step(step(copied, STEPS), step(copy.deepcopy(original), STEPS))
        if original.running_counts.numel() > 0:
            assert copied.running_counts.data_ptr() != original.running_counts.data_ptr()
        torch.jit.script(copied)


def minimized_loss():
    """A minimised metric (the loss is the metric itself) with a linear ramp."""
    return metricc.loss("error_rate", task="multiclass", average="macro", from_logits=True, approximation="linear", width=0.3)


@pytest.mark.parametrize("builder", [count_loss, matrix_loss, minimized_loss])
def test_a_loss_pickled_by_metricc_0_2_loads_with_its_options(builder):
    """metricc 0.2 kept A(p)'s options as four attributes and the direction as sign and offset (the loss was
    sign * metric + offset); such a pickle's state loads as the loss it was."""
    original = trained(builder)
    state = copy.deepcopy(original.__getstate__())  # its own buffers, as a pickle's
    spec = state.pop("approximation_spec")
    state.update(approximation=spec.kind, steepness=spec.steepness, threshold=spec.threshold, width=spec.width)
    maximize = state.pop("maximize")
    state.update(sign=-1.0 if maximize else 1.0, offset=1.0 if maximize else 0.0)
    loaded = type(original).__new__(type(original))
    loaded.__setstate__(state)
    assert loaded.option_values() == original.option_values() and loaded.maximize is maximize
    assert_same_step(step(loaded, STEPS), step(original, STEPS))


def imported(monkeypatch, name, path):
    """The module of a file, imported under `name` as a user's import would."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_a_compiled_loss_pickles_as_its_recipe_and_an_importable_class_by_reference(monkeypatch, tmp_path):
    assert b"rebuild_loss" in pickle.dumps(count_loss())
    standalone = tmp_path / "standalone_f1.py"
    standalone.write_text(metricc.emit("f1", standalone=True), encoding="utf-8")
    for name, path in (("metricc_test_generated_f1", ROOT / "generated" / "f1.py"), ("metricc_test_standalone_f1", standalone)):
        module = imported(monkeypatch, name, path)
        data = pickle.dumps(module.F1Loss())
        assert b"rebuild_loss" not in data and name.encode() in data
        assert type(pickle.loads(data)) is module.F1Loss


def test_a_pickle_rebuilds_its_class_from_the_cache_when_this_process_has_not_seen_the_recipe(monkeypatch):
    original = trained(count_loss)
    data = pickle.dumps(original)
    monkeypatch.setattr(metricc.recipe, "_classes", {})
    rebuilt = pickle.loads(data)
    assert type(rebuilt) is type(original)  # the same source: load_source imports it once per process
    assert_same_step(step(rebuilt, STEPS), step(original, STEPS))


class SubclassedLoss(type(metricc.loss("f1"))):
    """A user's subclass of a compiled class: it is importable, so it pickles by reference, not as the recipe."""


def test_a_subclass_of_a_compiled_class_pickles_as_itself():
    data = pickle.dumps(SubclassedLoss())
    assert b"rebuild_loss" not in data
    assert type(pickle.loads(data)) is SubclassedLoss


# ---- a fresh process ------------------------------------------------------------------------------------------


def spawned_step(rank, loss, directory):
    """mp.spawn's target: the next step of a loss that came in as an argument."""
    torch.save(step(loss, STEPS), Path(directory) / "spawned.pt")


class LossDataset(torch.utils.data.Dataset):
    """A dataset whose items are the next step of the loss it holds, for a spawn-mode DataLoader worker."""

    def __init__(self, loss):
        self.loss = loss

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return step(self.loss, STEPS)


def unpickled(directory):
    with open(directory / "losses.pkl", "rb") as stream:
        return pickle.load(stream)


def check_in_fresh_process(directory):
    """Run in a new interpreter with an empty cache: every saved form of each loss gives the original's next step."""
    expected = torch.load(directory / "expected.pt", weights_only=True)
    pickled = unpickled(directory)
    model = torch.load(directory / "model.pt", weights_only=False)
    assert torch.equal(model["linear"].weight, expected["weight"])
    state = torch.load(directory / "state.pt", weights_only=True)
    for kind, builder in BUILDERS.items():
        resumed = builder()
        resumed.load_state_dict(state[kind])
        for loss in (pickled[kind], model["losses"][kind], resumed):
            assert_same_step(step(loss, STEPS), expected[kind])
    assert not model["losses"]["parameter"].training and model["losses"]["count"].training
    os.environ["METRICC_CACHE_DIR"] = str(directory / "spawn-cache")  # the children compile again
    pickled = unpickled(directory)  # again: the steps above moved the running counts on
    torch.multiprocessing.spawn(spawned_step, args=(pickled["count"], str(directory)), nprocs=1)
    assert_same_step(torch.load(directory / "spawned.pt", weights_only=True), expected["count"])
    loader = torch.utils.data.DataLoader(
        LossDataset(pickled["matrix"]), batch_size=None, num_workers=1, multiprocessing_context="spawn"
    )
    (from_worker,) = list(loader)
    assert_same_step(from_worker, expected["matrix"])


@pytest.mark.slow
def test_losses_and_a_model_holding_them_load_in_a_fresh_process_with_an_empty_cache(tmp_path):
    losses = {kind: trained(builder) for kind, builder in BUILDERS.items()}
    losses["parameter"].eval()
    model = torch.nn.ModuleDict({"linear": torch.nn.Linear(3, 3), "losses": torch.nn.ModuleDict(losses)})
    with open(tmp_path / "losses.pkl", "wb") as stream:
        pickle.dump(losses, stream)
    torch.save(model, tmp_path / "model.pt")
    torch.save({kind: loss.state_dict() for kind, loss in losses.items()}, tmp_path / "state.pt")
    losses["parameter"].train()
    expected = {kind: step(loss, STEPS) for kind, loss in losses.items()}
    torch.save({**expected, "weight": model["linear"].weight.detach()}, tmp_path / "expected.pt")
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    script = (
        "import sys\nfrom pathlib import Path\n"
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from test_serialization import check_in_fresh_process\n"
        f"check_in_fresh_process(Path({str(tmp_path)!r}))\n"
    )
    environment = {**os.environ, "METRICC_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300
    )
    assert result.returncode == 0, result.stderr
