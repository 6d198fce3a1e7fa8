"""metricc.LearnedLoss: the weight rule on constructed checkpoints whose answer is known, the module against
oracles (metricc's own losses and torch for the combination, sklearn for the validation metric), every task, and
resuming from a state_dict."""

import io
import itertools
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score, f1_score

import metricc
from metricc.errors import OptionError
from metricc.learned import LearnedLoss, best_checkpoint, preferring_weights


# the rule


def test_weights_that_already_prefer_the_best_checkpoint_stay():
    losses = np.array([[1.0, 1.0], [0.5, 0.6], [0.2, 0.3]])  # training lowers both; the last is best
    weights = np.array([0.3, 0.7])
    assert preferring_weights(losses, [0.1, 0.5, 0.9], weights) is weights


def test_the_nearest_weights_that_prefer_the_best_checkpoint():
    # ranges 1 and 1, so distances are in the losses' own units. The best checkpoint (1) beats checkpoint 2 only if
    # w0 >= w1; from (0, 1) the nearest such point of the simplex is (0.5, 0.5)
    losses = np.array([[1.0, 1.0], [0.0, 0.5], [0.5, 0.0]])
    moved = preferring_weights(losses, [0.1, 0.9, 0.5], np.array([0.0, 1.0]))
    np.testing.assert_allclose(moved, [0.5, 0.5], atol=1e-7)


def test_where_no_weights_prefer_the_best_the_base_that_fell_least_wins():
    # checkpoint 2 has lower training values than the best one (1) on both bases: pure overfitting. In units of each
    # base's range (1 and 0.8) base 0 fell by 0.5, base 1 by 0.375: all weight on base 1 comes closest
    losses = np.array([[1.0, 1.0], [0.5, 0.5], [0.0, 0.2]])
    moved = preferring_weights(losses, [0.1, 0.9, 0.5], np.array([1.0, 0.0]))
    np.testing.assert_allclose(moved, [0.0, 1.0], atol=1e-7)


@pytest.mark.parametrize("vertex", [0, 1])
def test_the_rule_can_reach_either_base_alone(vertex):
    # only base `vertex` rates the later, worse checkpoint as worse; the other rates it better: the one weight
    # vector that prefers the best checkpoint is that base alone, reached from the half-and-half start
    later = np.array([0.5, 0.5])
    later[1 - vertex] = 0.0
    losses = np.array([[1.0, 1.0], [0.5, 0.5], later, [0.5, 0.5]])
    losses[3, vertex] = 1.0
    moved = preferring_weights(losses, [0.1, 0.9, 0.5, 0.4], np.array([0.5, 0.5]))
    np.testing.assert_allclose(moved, np.eye(2)[vertex], atol=1e-7)


def test_a_metric_to_minimise_prefers_its_lowest_score():
    losses = np.array([[1.0, 1.0], [0.0, 0.5], [0.5, 0.0]])
    np.testing.assert_allclose(preferring_weights(losses, [0.9, 0.1, 0.5], np.array([0.0, 1.0]), maximize=False), [0.5, 0.5], atol=1e-7)
    assert best_checkpoint([0.2, 0.1, 0.1], maximize=False) == 2  # ties go to the latest


def _grid(bases: int, steps: int):
    """Every point of the simplex with coordinates in multiples of 1/steps."""
    for point in itertools.product(range(steps + 1), repeat=bases):
        if sum(point) == steps:
            yield np.array(point, dtype=float) / steps


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 3).flatmap(lambda k: st.tuples(
        st.just(k),
        st.lists(st.lists(st.integers(0, 6), min_size=k, max_size=k), min_size=2, max_size=6),
        st.lists(st.integers(0, 4), min_size=6, max_size=6),
        st.lists(st.integers(0, 4), min_size=k, max_size=k).filter(any),
    ))
)
def test_the_rule_against_a_brute_force_search_of_the_simplex(case):
    """Brute force over a grid of the simplex: the rule's weights prefer the best checkpoint whenever some grid
    point does, and are no farther (in range units, L1) from the start than the nearest such grid point."""
    bases, rows, scores, start = case
    losses = np.array(rows, dtype=float)
    scores = scores[: len(losses)]
    start = np.array(start, dtype=float) / sum(start)
    moved = preferring_weights(losses, scores, start)
    assert moved.min() >= 0.0 and abs(moved.sum() - 1.0) < 1e-9
    best = best_checkpoint(scores, True)
    spread = np.ptp(losses, axis=0)
    spread[spread == 0] = 1.0
    differences = np.delete(losses - losses[best], best, axis=0) / spread
    scaled = lambda w: w * spread / np.dot(w, spread)  # noqa: E731
    preferring = [w for w in _grid(bases, 12) if (differences @ w >= -1e-12).all()]
    if preferring:
        assert (differences @ scaled(moved) >= -1e-7).all()
        nearest = min(np.abs(w - scaled(start)).sum() for w in preferring)
        assert np.abs(scaled(moved) - scaled(start)).sum() <= nearest + 1e-7


# the module


def _binary_data(seed=0, rows=240):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 6, generator=generator)
    y = ((x[:, 0] + 0.7 * torch.randn(rows, generator=generator)) > 1.2).float()
    return x, y


def _train(criterion, model, x, y, epochs, batch=60, validate_on=None, optimizer=None):
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(epochs):
        for start in range(0, len(x), batch):
            optimizer.zero_grad()
            loss = criterion(model(x[start : start + batch]).squeeze(-1), y[start : start + batch])
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            criterion.validate(model(validate_on[0]).squeeze(-1), validate_on[1])
    return losses


def test_the_loss_is_the_weighted_sum_of_the_base_losses_with_their_gradient():
    criterion = LearnedLoss("f1", from_logits=True, initial={"bce": 1.0, "anyloss-30": 2.0, "identity": 1.0})
    assert criterion.weights == {"bce": 0.25, "anyloss-10": 0.0, "anyloss-30": 0.5, "anyloss-73": 0.0, "identity": 0.25}
    x, y = _binary_data()
    logits = torch.randn(len(y), dtype=torch.float64, requires_grad=True)
    expected = (
        0.25 * torch.nn.functional.binary_cross_entropy_with_logits(logits, y.double())
        + 0.5 * metricc.loss("f1", from_logits=True, steepness=30.0)(logits, y)
        + 0.25 * metricc.loss("f1", from_logits=True, approximation="identity")(logits, y)
    )
    value = criterion(logits, y)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(torch.autograd.grad(value, logits)[0], torch.autograd.grad(expected, logits)[0])


def test_the_default_start_is_cross_entropy_plus_the_default_metric_loss():
    assert LearnedLoss("f1").weights == {"bce": 0.5, "anyloss-10": 0.0, "anyloss-30": 0.0, "anyloss-73": 0.5, "identity": 0.0}
    assert LearnedLoss("f1", task="multiclass", average="macro").weights == {
        "ce": 0.5, "identity": 0.5, "anyloss-10": 0.0, "anyloss-30": 0.0, "anyloss-73": 0.0,
    }
    assert LearnedLoss("f1", base=("ce", "anyloss-30")).weights == {"bce": 0.5, "anyloss-30": 0.5}  # no default metric loss: equal


@pytest.mark.parametrize("arguments, message", [
    ({"ce_weight": 1.0}, "learns ce_weight"),
    ({"steepness": 30.0, "approximation": "anyloss"}, "learns approximation, steepness"),
    ({"base": ("bce", "anyloss-0")}, "anyloss-L"),
    ({"base": ("bce", "softmax")}, "'softmax' is not one"),
    ({"base": ("bce", "ce")}, "more than once"),
    ({"base": "bce"}, "sequence"),
    ({"initial": {"dice": 1.0}}, "not in the family"),
    ({"initial": {"bce": -1.0}}, ">= 0"),
    ({"initial": {"bce": 0.0}}, "not all zero"),
    ({"feature_every": 0}, "positive integer"),
    ({"step": 0.0}, "step=0.0"),
    ({"count_momentum": 0.5}, "count_momentum"),
    ({"task": "multilabel", "average": "none"}, "average='none'"),
    ({"averag": "macro"}, "averag"),
])
def test_bad_arguments_are_clear_errors(arguments, message):
    with pytest.raises(OptionError, match=message):
        LearnedLoss("f1", **arguments)


def test_validate_is_the_hard_metric_at_its_best_threshold():
    """sklearn's F1 at every candidate threshold (each distinct score and below all) is the oracle."""
    criterion = LearnedLoss("f1", from_logits=True)
    logits = torch.randn(300, generator=torch.Generator().manual_seed(1))
    target = (torch.rand(300, generator=torch.Generator().manual_seed(2)) < 0.2).float()
    score = criterion.validate(logits, target)
    cuts = np.r_[logits.min().item() - 1.0, np.unique(logits.numpy())]
    best = max(f1_score(target.numpy(), logits.numpy() > cut) for cut in cuts)
    assert score == pytest.approx(best, abs=1e-6)
    assert f1_score(target.numpy(), logits.numpy() > criterion.latest_threshold) == pytest.approx(best, abs=1e-6)


def test_multiclass_validation_is_the_metric_of_the_arg_max():
    generator = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(200, 4, generator=generator), torch.randint(0, 4, (200,), generator=generator)
    macro = LearnedLoss("f1", task="multiclass", average="macro", from_logits=True)
    assert macro.validate(logits, labels) == pytest.approx(f1_score(labels, logits.argmax(1), average="macro"), abs=1e-6)
    assert macro.latest_threshold is None and macro.best_threshold is None
    qwk = LearnedLoss("qwk", task="multiclass", from_logits=True)
    assert qwk.validate(logits, labels) == pytest.approx(cohen_kappa_score(labels, logits.argmax(1), weights="quadratic"), abs=1e-6)


def test_multilabel_macro_thresholds_are_per_label():
    generator = torch.Generator().manual_seed(4)
    scores, target = torch.rand(150, 3, generator=generator), (torch.rand(150, 3, generator=generator) < 0.3).float()
    criterion = LearnedLoss("f1", task="multilabel", average="macro")
    score = criterion.validate(scores, target)
    best_per_label = [
        max(f1_score(target[:, j], scores[:, j] > cut) for cut in np.r_[-1.0, np.unique(scores[:, j].numpy())]) for j in range(3)
    ]
    assert score == pytest.approx(np.mean(best_per_label), abs=1e-6)
    assert criterion.latest_threshold.shape == (3,)


def test_dense_samplewise_dice_is_the_mean_per_image_dice_at_its_threshold():
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 1, 8, 8, generator=generator)
    masks = (torch.rand(6, 1, 8, 8, generator=generator) < 0.3).float()
    criterion = LearnedLoss("dice", from_logits=True, multidim_average="samplewise")
    score = criterion.validate(logits, masks)
    predicted = (logits > criterion.latest_threshold).numpy().reshape(6, -1)
    truth = masks.numpy().reshape(6, -1)
    per_image = [f1_score(t, p, zero_division=1.0) for t, p in zip(truth, predicted)]
    assert score == pytest.approx(np.mean(per_image), abs=1e-6)
    pooled = LearnedLoss("dice", from_logits=True).validate(logits, masks)  # global: exact over every cut
    cuts = np.r_[logits.min().item() - 1, np.unique(logits.numpy())]
    assert pooled == pytest.approx(max(f1_score(masks.numpy().ravel(), logits.numpy().ravel() > c) for c in cuts), abs=1e-6)


@pytest.mark.parametrize("task, arguments, make", [
    ("binary", {}, lambda g: (torch.randn(64, generator=g), (torch.rand(64, generator=g) < 0.3).float())),
    ("multilabel", {"average": "macro"}, lambda g: (torch.randn(64, 3, generator=g), (torch.rand(64, 3, generator=g) < 0.4).float())),
    ("multiclass", {"average": "macro"}, lambda g: (torch.randn(64, 4, generator=g), torch.randint(0, 4, (64,), generator=g))),
    ("dense", {"multidim_average": "samplewise"}, lambda g: (torch.randn(4, 1, 6, 6, generator=g), (torch.rand(4, 1, 6, 6, generator=g) < 0.3).float())),
    ("dense-multiclass", {"task": "multiclass", "average": "macro", "include_background": False, "ignore_index": 255},
     lambda g: (torch.randn(4, 3, 6, 6, generator=g), torch.randint(0, 3, (4, 6, 6), generator=g).masked_fill(torch.rand(4, 6, 6, generator=g) < 0.1, 255))),
])
def test_every_task_trains_and_validates(task, arguments, make):
    metric = "dice" if task.startswith("dense") else "f1"
    options = dict(arguments)
    if task in ("multilabel", "multiclass"):
        options["task"] = task
    criterion = LearnedLoss(metric, from_logits=True, feature_every=1, **options)
    generator = torch.Generator().manual_seed(6)
    for step in range(3):
        preds, target = make(generator)
        preds.requires_grad_(True)
        loss = criterion(preds, target)
        (gradient,) = torch.autograd.grad(loss, preds)
        assert torch.isfinite(loss) and torch.isfinite(gradient).all() and gradient.abs().sum() > 0
        with torch.no_grad():
            score = criterion.validate(*make(generator))
        assert np.isfinite(score) and len(criterion.history) == step + 1
        weights = criterion.weights
        assert min(weights.values()) >= 0.0 and sum(weights.values()) == pytest.approx(1.0)
        assert set(criterion.history[-1]["losses"]) == set(criterion.base_names)


def test_validation_never_moves_the_model():
    x, y = _binary_data()
    model = torch.nn.Linear(6, 1)
    before = [p.detach().clone() for p in model.parameters()]
    criterion = LearnedLoss("f1", from_logits=True)
    criterion.validate(model(x).squeeze(-1), y)  # with gradients enabled, on outputs that require grad
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_validate_before_training_records_the_score_and_keeps_the_weights():
    criterion = LearnedLoss("f1", from_logits=True)
    x, y = _binary_data()
    start = criterion.weights
    criterion.validate(torch.randn(len(y)), y)
    assert criterion.history[0]["losses"] is None and criterion.weights == start


def test_only_training_steps_with_gradients_are_recorded():
    criterion = LearnedLoss("f1", from_logits=True, feature_every=1)
    x, y = _binary_data()
    with torch.no_grad():
        criterion(torch.randn(len(y)), y)  # a validation loss, say
    criterion.eval()
    criterion(torch.randn(len(y), requires_grad=True), y)
    assert int(criterion.get_extra_state()["samples"]) == 0


def test_a_checkpoint_resumes_bit_for_bit():
    """Two epochs, a checkpoint (model, optimizer, loss) through torch.save and weights_only=True, two more: the
    same losses, weights and history as four epochs without the interruption."""
    x, y = _binary_data()
    validation = _binary_data(seed=1)

    def fresh():
        torch.manual_seed(0)
        model = torch.nn.Linear(6, 1)
        return model, torch.optim.Adam(model.parameters(), lr=0.02), LearnedLoss("f1", from_logits=True, feature_every=2)

    model, optimizer, criterion = fresh()
    straight = _train(criterion, model, x, y, 4, validate_on=validation, optimizer=optimizer)

    model, optimizer, criterion = fresh()
    first = _train(criterion, model, x, y, 2, validate_on=validation, optimizer=optimizer)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "loss": criterion.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model, optimizer, resumed = fresh()
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["loss"])
    assert resumed.weights == criterion.weights and resumed.history == criterion.history
    rest = _train(resumed, model, x, y, 2, validate_on=validation, optimizer=optimizer)

    model, optimizer, uninterrupted = fresh()
    _train(uninterrupted, model, x, y, 4, validate_on=validation, optimizer=optimizer)
    assert first + rest == straight
    assert resumed.history == uninterrupted.history and resumed.weights == uninterrupted.weights


@pytest.mark.parametrize("other, named", [
    (dict(metric="f1", base=("bce", "identity")), "base"),
    (dict(metric="recall"), "metric"),
    (dict(metric="f1", from_logits=False), "from_logits"),
    (dict(metric="fpr"), "maximize"),
])
def test_a_checkpoint_of_another_learned_loss_is_refused(other, named):
    state = LearnedLoss("f1", from_logits=True).state_dict()
    metric = other.pop("metric")
    with pytest.raises(OptionError, match=f"another LearnedLoss \\(.*{named} .* there"):
        LearnedLoss(metric, **{"from_logits": True, **other}).load_state_dict(state)


def test_it_pickles_with_what_it_learned():
    x, y = _binary_data()
    torch.manual_seed(0)
    model, criterion = torch.nn.Linear(6, 1), LearnedLoss("f1", from_logits=True)
    _train(criterion, model, x, y, 2, validate_on=_binary_data(seed=1))
    copy = pickle.loads(pickle.dumps(criterion))
    assert copy.weights == criterion.weights and copy.history == criterion.history
    logits = torch.randn(len(y))
    torch.testing.assert_close(copy(logits, y), criterion(logits, y))


def test_validate_moves_the_weights_a_step_towards_the_rule_and_drops_negligible_ones():
    """Checkpoints from a state_dict (the ones of test_the_nearest_weights...): the rule says (0.5, 0.5) from
    (0, 1); with step 0.5 the weights go half-way, to (0.25, 0.75); a weight the rule lowers under 0.02 is dropped."""
    from metricc.learned import damped_step

    criterion = LearnedLoss("f1", base=("bce", "identity"), initial={"identity": 1.0}, step=0.5)
    state = criterion.state_dict()
    state["_extra_state"]["history"] = [
        {"score": 0.1, "threshold": 0.5, "losses": {"bce": 1.0, "identity": 1.0}, "weights": None, "steps": 1},
        {"score": 0.9, "threshold": 0.5, "losses": {"bce": 0.0, "identity": 0.5}, "weights": None, "steps": 1},
    ]
    state["_extra_state"]["samples"] = 1
    state["_extra_state"]["steps"] = 1
    state["_extra_state"]["sums"] = [0.5, 0.0]  # the third checkpoint's training values
    criterion.load_state_dict(state)
    target = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # its F1 (0.8) ranks this checkpoint between the two
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1, 0.6, 0.2])
    assert criterion.validate(scores, target) == pytest.approx(f1_score(target, scores > criterion.latest_threshold))
    np.testing.assert_allclose(list(criterion.weights.values()), [0.25, 0.75], atol=1e-7)
    np.testing.assert_allclose(damped_step(np.array([0.03, 0.47, 0.5]), np.array([0.0, 0.5, 0.5]), 0.5), [0.0, 0.485 / 0.985, 0.5 / 0.985])


def test_docs_learned_states_the_defaults_of_the_code():
    """docs/learned.md quotes the default family, step, feature_every and the negligible weight: the code's."""
    import inspect
    from pathlib import Path

    from metricc.learned import NEGLIGIBLE_WEIGHT, RULE_CHECKPOINTS, SIGMOID_FAMILY, SOFTMAX_FAMILY
    from metricc.threshold import QUANTILE_CUTS

    text = Path(__file__).resolve().parents[1].joinpath("docs", "learned.md").read_text()
    defaults = inspect.signature(LearnedLoss).parameters
    assert f"`step` (default {defaults['step'].default:g})" in text
    assert f"`feature_every`-th (default {defaults['feature_every'].default})" in text
    assert f"below {NEGLIGIBLE_WEIGHT:g}" in text
    assert f"latest {RULE_CHECKPOINTS} checkpoints" in text
    assert f"best of {QUANTILE_CUTS + 1} cuts" in text and f"{QUANTILE_CUTS} at quantiles" in text
    for name in SIGMOID_FAMILY + SOFTMAX_FAMILY:
        assert f"`{name}`" in text


def test_it_pickles_into_a_fresh_process():
    import subprocess
    import sys

    x, y = _binary_data()
    torch.manual_seed(0)
    model, criterion = torch.nn.Linear(6, 1), LearnedLoss("f1", from_logits=True)
    _train(criterion, model, x, y, 2, validate_on=_binary_data(seed=1))
    script = "import pickle, sys; c = pickle.loads(sys.stdin.buffer.read()); print(repr((c.weights, len(c.history))))"
    shown = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(criterion), capture_output=True, check=True).stdout
    assert shown.decode().strip() == repr((criterion.weights, len(criterion.history)))


@pytest.mark.parametrize("preds, target, message", [
    (torch.tensor([0.2, float("nan"), 0.4]), torch.tensor([0.0, 1.0, 1.0]), "NaN|nan"),
    (torch.tensor([-3.0, 2.0, 7.0]), torch.tensor([0.0, 1.0, 1.0]), "from_logits"),
    (torch.rand(4), torch.tensor([0.0, 1.0]), "shape"),
    (torch.zeros(0), torch.zeros(0), "empty"),
])
def test_validate_checks_its_inputs(preds, target, message):
    with pytest.raises(ValueError, match=message):
        LearnedLoss("f1").validate(preds, target)


def test_multilabel_macro_with_ignore_index_and_a_one_class_label_against_sklearn():
    generator = torch.Generator().manual_seed(8)
    scores = torch.rand(120, 3, generator=generator, dtype=torch.float64)
    target = (torch.rand(120, 3, generator=generator) < 0.4).long()
    target[:, 2] = 0  # label 2 has no positives: predicting none of it is right
    target[::7, 0] = -1  # ignored positions of label 0
    criterion = LearnedLoss("f1", task="multilabel", average="macro", ignore_index=-1, zero_division=1.0)
    score = criterion.validate(scores, target)
    thresholds = criterion.latest_threshold
    assert thresholds.dtype == torch.float64
    per_label = []
    for label in range(3):
        kept = target[:, label] != -1
        truth, predicted = target[kept, label].numpy(), (scores[kept, label] > thresholds[label]).numpy()
        per_label.append(f1_score(truth, predicted, zero_division=1.0))
        cuts = np.r_[-1.0, np.unique(scores[kept, label].numpy())]
        assert per_label[-1] == pytest.approx(max(f1_score(truth, scores[kept, label].numpy() > c, zero_division=1.0) for c in cuts))
    assert score == pytest.approx(np.mean(per_label), abs=1e-6)


def test_a_base_the_rule_raises_a_little_can_enter_the_loss():
    """The rule asks for a small weight on a new base: damping keeps it, where pruning would have dropped it for ever."""
    from metricc.learned import damped_step

    current, target = np.array([0.5, 0.5, 0.0]), np.array([0.43, 0.52, 0.05])
    moved = damped_step(current, target, 0.25)
    np.testing.assert_allclose(moved, current + 0.25 * (target - current))
    assert moved[2] > 0
    np.testing.assert_allclose(damped_step(np.array([0.03, 0.97]), np.array([0.0, 1.0]), 0.5), [0.0, 1.0])


def test_a_non_finite_training_value_is_an_error_naming_the_base_and_the_next_checkpoint_works():
    criterion = LearnedLoss("f1", from_logits=True, base=("bce", "identity"))
    state = criterion.state_dict()
    state["_extra_state"].update(samples=1, steps=1, sums=[float("inf"), 0.5])
    criterion.load_state_dict(state)
    logits, target = torch.tensor([-1.0, 2.0, 0.5, -0.3]), torch.tensor([0.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="base loss bce was not finite"):
        criterion.validate(logits, target)
    assert criterion.history == []
    criterion.validate(logits, target)
    assert len(criterion.history) == 1 and criterion.history[0]["losses"] is None


def test_casting_the_module_keeps_the_recorded_values_exact():
    criterion = LearnedLoss("f1", from_logits=True, feature_every=1)
    logits = torch.randn(50, dtype=torch.float64, requires_grad=True)
    criterion(logits, (torch.arange(50) % 3 == 0).double())
    before = criterion.get_extra_state()["sums"]
    criterion.half()
    assert criterion.get_extra_state()["sums"] == before


@pytest.mark.parametrize("shape, target_shape", [((40,), (40,)), ((8, 3), (8, 3)), ((2, 1, 4, 4), (2, 4, 4)), ((2, 1, 4, 4), (2, 1, 4, 4))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_cross_entropy_base_is_metricc_compound_term(shape, target_shape, dtype):
    from metricc.learned import CrossEntropyBase
    from metricc.runtime.compound import cross_entropy

    generator = torch.Generator().manual_seed(9)
    preds = torch.randn(shape, generator=generator, dtype=dtype, requires_grad=True)
    target = (torch.rand(target_shape, generator=generator) < 0.3).float()
    task = "multilabel" if len(shape) == 2 else "binary"
    value, expected = CrossEntropyBase(task, True, None)(preds, target), cross_entropy(preds, target, task, True, None)
    torch.testing.assert_close(value, expected.to(dtype))
    torch.testing.assert_close(torch.autograd.grad(value, preds)[0], torch.autograd.grad(expected, preds)[0].to(dtype))
