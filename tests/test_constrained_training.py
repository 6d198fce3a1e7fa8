"""Training under constraints (metricc.ConstrainedLoss): the Lagrangian's value and gradient against float64 autograd
through hand-written soft counts, the multipliers' dual ascent against the hard rates sklearn gives, checkpoints and
pickling in a fresh process, the typed errors, and a small training run where the constraint comes to hold."""

import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_score

import metricc
from metricc.constrained import COUNT_ORDER, undefined_counts, undefined_sets
from metricc.errors import MetricSyntaxError, OptionError, UnknownNameError
from oracles import anyloss_approximation, plain_soft_counts

ROOT = Path(__file__).resolve().parent.parent

#: The hand-written rates of the oracle, as a user writes them (unguarded: the test inputs keep every denominator > 0).
FORMULAS = {
    "recall": lambda tp, fp, fn, tn: tp / (tp + fn),
    "precision": lambda tp, fp, fn, tn: tp / (tp + fp),
    "f1": lambda tp, fp, fn, tn: 2 * tp / (2 * tp + fp + fn),
    "FP / (FP + TN)": lambda tp, fp, fn, tn: fp / (fp + tn),
    "specificity": lambda tp, fp, fn, tn: tn / (tn + fp),
}
MAXIMIZED = {"recall", "precision", "f1", "specificity"}
WIDTH = 0.5  # of the linear approximation's ramp: predictions in (0.3, 0.7) lie on it


def oracle_lagrangian(objective, constraints, multipliers, preds, target, from_logits, approximation, ce_weight=0.0):
    """objective loss (+ ce_weight x torch's BCE) + sum_k lambda_k * violation_k, every rate a formula of the plain
    soft counts of A(p)."""
    probs = torch.sigmoid(preds) if from_logits else preds
    if approximation == "anyloss":
        soft = anyloss_approximation(probs)
    elif approximation == "linear":
        soft = torch.clamp((probs - 0.5) / WIDTH + 0.5, 0, 1)
    else:
        soft = probs
    counts = plain_soft_counts(soft.reshape(-1), target.reshape(-1))
    value = FORMULAS[objective](*counts)
    total = 1 - value if objective in MAXIMIZED else value
    if ce_weight:
        bce = torch.nn.functional.binary_cross_entropy_with_logits if from_logits else torch.nn.functional.binary_cross_entropy
        total = total + ce_weight * bce(preds, target)
    for (metric, comparison, bound), multiplier in zip(constraints, multipliers):
        rate = FORMULAS[metric](*counts)
        total = total + multiplier * ((bound - rate) if comparison == ">=" else (rate - bound))
    return total


CASES = [
    ("recall", [("precision", ">=", 0.9)], None, "binary"),  # a constrained loss's defaults: identity, 1.0 x BCE
    ("recall", [("precision", ">=", 0.9)], "anyloss", "binary"),
    ("f1", [("FP / (FP + TN)", "<=", 0.01)], "anyloss", "binary"),
    ("recall", [("precision", ">=", 0.8), ("FP / (FP + TN)", "<=", 0.05)], "identity", "binary"),
    ("specificity", [("recall", ">=", 0.7)], "linear", "multilabel"),
]


def inputs(seed, from_logits, task):
    """float64 predictions near the approximation's threshold (where A'(p) is not negligible), both classes present."""
    g = torch.Generator().manual_seed(seed)
    shape = (12,) if task == "binary" else (6, 3)
    target = (torch.rand(shape, generator=g, dtype=torch.float64) < 0.4).double()
    target.view(-1)[:2] = torch.tensor([0.0, 1.0], dtype=torch.float64)
    probs = 0.3 + 0.4 * torch.rand(shape, generator=g, dtype=torch.float64)
    return (torch.logit(probs) if from_logits else probs), target


@pytest.mark.parametrize("from_logits", [False, True], ids=["probabilities", "logits"])
@pytest.mark.parametrize("objective, constraints, approximation, task", CASES, ids=lambda case: str(case))
def test_the_lagrangian_and_its_gradient_are_autograd_through_plain_soft_counts(objective, constraints, approximation, task, from_logits):
    texts = [f"{metric} {comparison} {bound}" for metric, comparison, bound in constraints]
    chosen = {} if approximation is None else {"approximation": approximation, "ce_weight": 0.0, "width": WIDTH}
    loss = metricc.loss(objective, constraints=texts, from_logits=from_logits, task=task, **chosen)
    multipliers = torch.tensor([0.7, 1.3][: len(texts)], dtype=torch.float64)
    loss.lagrange_multipliers = multipliers.clone()
    loss.eval()
    for seed in range(3):
        preds, target = inputs(seed, from_logits, task)
        leaf = preds.clone().requires_grad_(True)
        value = loss(leaf, target)
        (gradient,) = torch.autograd.grad(value, leaf)
        reference = preds.clone().requires_grad_(True)
        expected = oracle_lagrangian(objective, constraints, multipliers, reference, target, from_logits, approximation or "identity",
                                     0.0 if approximation else 1.0)
        (expected_gradient,) = torch.autograd.grad(expected, reference)
        torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gradient, expected_gradient, rtol=1e-9, atol=1e-12)
        assert gradient.abs().max() > 1e-3
        assert torch.equal(loss.lagrange_multipliers, multipliers)  # eval mode: the multipliers stay


def test_the_gradient_in_training_mode_is_at_the_multipliers_before_their_step():
    loss = metricc.loss("recall", constraints=["precision >= 0.9"], from_logits=True)
    loss.lagrange_multipliers = torch.tensor([2.0], dtype=torch.float64)
    preds, target = inputs(5, True, "binary")
    leaf = preds.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss.train()(leaf, target), leaf)
    reference = preds.clone().requires_grad_(True)
    expected = oracle_lagrangian("recall", [("precision", ">=", 0.9)], [2.0], reference, target, True, "identity", 1.0)
    (expected_gradient,) = torch.autograd.grad(expected, reference)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-9, atol=1e-12)
    assert loss.multipliers["precision >= 0.9"] != 2.0  # then the step


# ---- the multipliers --------------------------------------------------------------------------------------------


def hard_precision(preds, target, threshold=0.5):
    return precision_score(target.numpy().astype(int), (preds.numpy() > threshold).astype(int), zero_division=0)


def hard_fpr(preds, target, threshold=0.5):
    tn, fp, fn, tp = confusion_matrix(target.numpy().astype(int), (preds.numpy() > threshold).astype(int), labels=[0, 1]).ravel()
    return fp / (fp + tn)


def test_multipliers_rise_while_a_constraint_is_violated_and_fall_to_exactly_zero_once_it_is_slack():
    step = 0.25
    loss = metricc.loss("recall", constraints=["precision >= 0.9", "FP / (FP + TN) <= 0.2"], multiplier_step=step).train()
    target = torch.tensor([1.0] * 10 + [0.0] * 10)
    violating = torch.full((20,), 0.8)  # everything predicted positive: precision 0.5, FPR 1
    satisfying = torch.where(target > 0, 0.8, 0.2)  # precision 1, FPR 0
    slack = [hard_precision(violating, target) - 0.9, 0.2 - hard_fpr(violating, target)]
    assert slack[0] < 0 and slack[1] < 0
    expected = np.zeros(2)
    history = []
    for _ in range(6):
        loss(violating.clone().requires_grad_(True), target)
        expected = np.maximum(0.0, expected - step * np.array(slack))  # dual ascent on sklearn's hard rates
        history.append(list(loss.multipliers.values()))
        np.testing.assert_allclose(history[-1], expected, rtol=1e-6)
    assert all(np.diff(np.array(history), axis=0).min(axis=0) > 0)  # rising at every step
    assert loss.rates == pytest.approx({"precision >= 0.9": 0.5, "FP / (FP + TN) <= 0.2": 1.0})
    slack = [hard_precision(satisfying, target) - 0.9, 0.2 - hard_fpr(satisfying, target)]
    assert slack[0] > 0 and slack[1] > 0
    falling = []
    for _ in range(60):
        loss(satisfying.clone().requires_grad_(True), target)
        expected = np.maximum(0.0, expected - step * np.array(slack))
        falling.append(list(loss.multipliers.values()))
        np.testing.assert_allclose(falling[-1], expected, rtol=1e-6, atol=1e-12)
    assert all(np.diff(np.array(falling), axis=0).max(axis=0) <= 0)  # never rising while slack
    assert list(loss.multipliers.values()) == [0.0, 0.0]  # exactly zero, and it stays there
    before = loss.lagrange_multipliers.clone()
    loss.eval()(violating, target)
    assert torch.equal(loss.lagrange_multipliers, before)  # eval mode: no step


def test_reset_multipliers_starts_again_from_zero_and_forgets_the_running_counts():
    loss = metricc.loss("recall", constraints=["precision >= 0.9"], count_momentum=0.5).train()
    assert loss.rates is None
    target = torch.tensor([1.0, 0.0, 0.0, 0.0])
    loss(torch.full((4,), 0.8), target)
    assert loss.multipliers["precision >= 0.9"] > 0 and loss.hard_rates[0].running_counts.numel() == 4
    loss.reset_multipliers()
    assert loss.multipliers == {"precision >= 0.9": 0.0} and loss.rates is None
    assert all(module.running_counts.numel() == 0 for module in (loss.objective, loss.soft_rates[0], loss.hard_rates[0]))


def test_with_count_momentum_the_multipliers_see_the_running_hard_counts():
    momentum, step = 0.5, 1.0
    loss = metricc.loss("recall", constraints=["precision >= 0.9"], count_momentum=momentum, multiplier_step=step).train()
    target = torch.tensor([1.0] * 4 + [0.0] * 4)
    first = torch.tensor([0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.1, 0.1])  # TP 3, FP 2
    second = torch.tensor([0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1])  # TP 1, FP 1
    loss(first, target)
    loss(second, target)
    counts = [confusion_matrix(target.int().numpy(), (p.numpy() > 0.5).astype(int), labels=[0, 1]).ravel() for p in (first, second)]
    (tn1, fp1, fn1, tp1), (tn2, fp2, fn2, tp2) = counts
    tp, fp = (1 - momentum) * tp1 + momentum * tp2, (1 - momentum) * fp1 + momentum * fp2  # BatchNorm's mixing
    pooled = tp / (tp + fp)
    assert loss.rates["precision >= 0.9"] == pytest.approx(pooled)
    first_violation = 0.9 - tp1 / (tp1 + fp1)
    assert loss.multipliers["precision >= 0.9"] == pytest.approx(max(0.0, max(0.0, step * first_violation) + step * (0.9 - pooled)))


def test_logits_are_cut_where_the_probability_crosses_the_threshold():
    loss = metricc.loss("recall", constraints=["precision >= 0.9"], from_logits=True, threshold=0.3, multiplier_step=1.0).train()
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    probs = torch.tensor([0.35, 0.9, 0.32, 0.1])  # above 0.3: two positives, one negative
    loss(torch.logit(probs), target)
    assert loss.rates["precision >= 0.9"] == pytest.approx(hard_precision(probs, target, 0.3))


# ---- undefined hard rates --------------------------------------------------------------------------------------

UNDEFINED_FORMULAS = dict(FORMULAS, **{
    "PP / TOTAL": lambda tp, fp, fn, tn: (tp + fp) / (tp + fp + fn + tn),
    "mcc": lambda tp, fp, fn, tn: (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)),
    "cohen_kappa": lambda tp, fp, fn, tn: 2 * (tp * tn - fn * fp) / ((tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)),
})


@pytest.mark.parametrize("metric", list(UNDEFINED_FORMULAS))
def test_a_rate_is_undefined_exactly_where_its_plain_formula_divides_by_zero(metric):
    """Every pattern of zero counts (the rest 1 to 5): undefined where the hand-written float64 formula is not finite."""
    sets = undefined_sets(metric, "binary")
    rng = np.random.default_rng(0)
    for pattern in range(16):
        zero = [(pattern >> position) & 1 == 1 for position in range(4)]
        counts = [0.0 if is_zero else float(rng.integers(1, 6)) for is_zero in zero]
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = not np.isfinite(UNDEFINED_FORMULAS[metric](*np.array(counts)))
        found = undefined_counts([torch.tensor(count, dtype=torch.float64) for count in counts], sets)
        assert bool(found) == expected, (metric, dict(zip(COUNT_ORDER, counts)))


def test_a_matrix_metric_has_no_undefined_sets():
    assert undefined_sets("TRACE / SUM", "multiclass") == ()


def test_a_hard_rate_that_is_zero_over_zero_leaves_its_multiplier_and_a_defined_one_steps():
    """Nothing predicted positive: sklearn's precision is undefined (zero_division=nan), so its multiplier stays;
    the FPR is defined (0) there, so its multiplier falls by step times its slack."""
    step = 0.5
    loss = metricc.loss("recall", constraints=["precision >= 0.9", "FP / (FP + TN) <= 0.2"], multiplier_step=step).train()
    loss.lagrange_multipliers = torch.tensor([0.3, 0.3], dtype=torch.float64)
    target = torch.tensor([1.0] * 4 + [0.0] * 6)
    nothing_positive = torch.full((10,), 0.2)
    y, predicted = target.int().numpy(), (nothing_positive.numpy() > 0.5).astype(int)
    assert np.isnan(precision_score(y, predicted, zero_division=np.nan))
    loss(nothing_positive, target)
    assert loss.multipliers["precision >= 0.9"] == 0.3
    assert loss.multipliers["FP / (FP + TN) <= 0.2"] == pytest.approx(max(0.0, 0.3 - step * (0.2 - hard_fpr(nothing_positive, target))))
    assert loss.rates == {"precision >= 0.9": None, "FP / (FP + TN) <= 0.2": pytest.approx(0.0)}
    one_wrong = torch.tensor([0.9, 0.2, 0.2, 0.2, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2])  # TP 1, FP 1: precision 0.5
    loss(one_wrong, target)
    expected = 0.3 + step * (0.9 - precision_score(y, (one_wrong.numpy() > 0.5).astype(int), zero_division=np.nan))
    assert loss.multipliers["precision >= 0.9"] == pytest.approx(expected)


def test_with_running_counts_a_batch_with_nothing_predicted_positive_is_defined_by_the_earlier_ones():
    momentum, step = 0.5, 1.0
    loss = metricc.loss("recall", constraints=["precision >= 0.9"], count_momentum=momentum, multiplier_step=step).train()
    target = torch.tensor([1.0] * 4 + [0.0] * 4)
    first = torch.tensor([0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1])  # TP 2, FP 1
    loss(first, target)
    after_first = loss.multipliers["precision >= 0.9"]
    loss(torch.full((8,), 0.1), target)  # TP 0, FP 0 here; the running counts still hold the first batch's
    pooled = ((1 - momentum) * 2 + momentum * 0) / ((1 - momentum) * 3 + momentum * 0)
    assert loss.rates["precision >= 0.9"] == pytest.approx(pooled)
    assert loss.multipliers["precision >= 0.9"] == pytest.approx(after_first + step * (0.9 - pooled))


def test_a_per_label_rate_is_undefined_only_where_it_is_undefined_for_every_label():
    """Multi-label macro precision: one label with nothing predicted counts as 0 (sklearn's zero_division=0), so
    the rate is defined; with nothing predicted for any label it is undefined and the multiplier stays."""
    loss = metricc.loss("recall", constraints=["precision >= 0.9"], task="multilabel", average="macro", multiplier_step=1.0).train()
    target = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    preds = torch.tensor([[0.2, 0.9], [0.2, 0.9], [0.2, 0.2], [0.2, 0.2]])  # label 0: nothing predicted
    loss(preds, target)
    expected = precision_score(target.int().numpy(), (preds.numpy() > 0.5).astype(int), average="macro", zero_division=0)
    assert loss.rates["precision >= 0.9"] == pytest.approx(expected)
    assert loss.multipliers["precision >= 0.9"] == pytest.approx(0.9 - expected)
    before = loss.multipliers
    loss(torch.full((4, 2), 0.2), target)
    assert loss.rates == {"precision >= 0.9": None} and loss.multipliers == before


# ---- a constrained loss's defaults ------------------------------------------------------------------------------


def test_a_constrained_loss_defaults_to_identity_and_cross_entropy_and_a_user_set_option_wins():
    default = metricc.loss("recall", constraints=["precision >= 0.9"])
    assert (default.objective.approximation, default.objective.ce_weight) == ("identity", 1.0)
    assert all(rate.approximation == "identity" and rate.ce_weight == 0.0 for rate in default.soft_rates)
    assert "RecallLoss(approximation='identity', ce_weight=1.0)" in repr(default)
    chosen = metricc.loss("recall", constraints=["precision >= 0.9"], approximation="anyloss", ce_weight=0.0)
    assert (chosen.objective.approximation, chosen.objective.ce_weight, chosen.soft_rates[0].approximation) == ("anyloss", 0.0, "anyloss")
    shaped = metricc.loss("recall", constraints=["precision >= 0.9"], steepness=20.0)  # a steepness shapes anyloss
    assert (shaped.objective.approximation, shaped.objective.steepness, shaped.objective.ce_weight) == ("anyloss", 20.0, 1.0)
    assert metricc.loss("recall").approximation == "anyloss"  # the plain loss keeps the options table's defaults


# ---- checkpoints and pickling -----------------------------------------------------------------------------------

BUILD = "metricc.loss('recall', constraints=['precision >= 0.8', 'FP / (FP + TN) <= 0.1'], from_logits=True, count_momentum=0.5, multiplier_step=0.3)"


def build():
    return eval(BUILD, {"metricc": metricc})  # the same text the fresh process runs


def trained_steps(loss, seeds):
    values = []
    for seed in seeds:
        preds, target = inputs(seed, True, "binary")
        values.append(float(loss(preds.float(), target.float())))
    return values


def test_a_state_dict_round_trip_keeps_the_multipliers_and_resumes_exactly():
    loss = build()
    trained_steps(loss, range(4))
    assert min(loss.multipliers.values()) > 0
    buffer = io.BytesIO()
    torch.save(loss.state_dict(), buffer)
    buffer.seek(0)
    resumed = build()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.multipliers == loss.multipliers
    assert trained_steps(resumed, range(4, 7)) == trained_steps(loss, range(4, 7))
    assert resumed.multipliers == loss.multipliers


def test_a_state_dict_of_other_constraints_is_refused_naming_them():
    loss = build()
    trained_steps(loss, range(2))
    other = metricc.loss("recall", constraints=["precision >= 0.9", "FP / (FP + TN) <= 0.1"], from_logits=True, count_momentum=0.5)
    with pytest.raises(OptionError, match=r"another ConstrainedLoss \(constraints .*'precision >= 0.8'.* there, .*'precision >= 0.9'"):
        other.load_state_dict(loss.state_dict())


def test_a_pickled_loss_keeps_its_multipliers_and_its_next_step_in_a_fresh_process(tmp_path):
    loss = build()
    trained_steps(loss, range(3))
    (tmp_path / "loss.pkl").write_bytes(pickle.dumps(loss))
    copy = pickle.loads(pickle.dumps(loss))
    expected = {"multipliers": loss.multipliers, "next": trained_steps(copy, [3]), "after": copy.multipliers}
    script = (
        f"import sys, json, pickle\nsys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from test_constrained_training import trained_steps\n"
        f"loss = pickle.loads(open({str(tmp_path / 'loss.pkl')!r}, 'rb').read())\n"
        "before = loss.multipliers\n"
        "print(json.dumps({'multipliers': before, 'next': trained_steps(loss, [3]), 'after': loss.multipliers}))\n"
    )
    environment = {"PYTHONPATH": str(ROOT), "METRICC_CACHE_DIR": str(tmp_path / "empty-cache"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected


# ---- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "constraints, error, message",
    [
        ([], OptionError, r"constraints=\[\] gives nothing to train under"),
        (42, OptionError, r"constraints=42: give a list of texts"),
        ([0.9], OptionError, r"0.9 is not a text"),
        (["precision > 0.9"], MetricSyntaxError, r"line 1, column 11: .*by >= or <="),
        (["precison >= 0.9"], UnknownNameError, r"did you mean precision"),
        (["precision >= 90"], metricc.ConstraintError, r"a rate, not a percentage"),
    ],
)
def test_constraints_that_are_not_a_list_of_valid_texts_are_refused(constraints, error, message):
    with pytest.raises(error, match=message):
        metricc.loss("recall", constraints=constraints)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"task": "multilabel", "average": "none"}, r"average='none' gives one loss per class"),
        ({"multiplier_step": 0}, r"multiplier_step=0 must be a finite number > 0"),
        ({"multiplier_step": float("nan")}, r"multiplier_step=nan must be"),
        ({"multiplier_step": True}, r"multiplier_step=True must be"),
        ({"multiplier_step": "0.1"}, r"multiplier_step='0.1' must be"),
        ({"from_logit": True}, r"from_logit"),
    ],
)
def test_options_a_constrained_loss_cannot_train_under_are_refused(arguments, message):
    with pytest.raises(OptionError, match=message):
        metricc.loss("recall", constraints=["precision >= 0.9"], **arguments)


def test_without_constraints_the_loss_is_the_plain_one_and_multiplier_step_is_refused():
    assert not isinstance(metricc.loss("recall", constraints=None), metricc.ConstrainedLoss)
    with pytest.raises(OptionError, match="multiplier_step is the step of the constraints' multipliers"):
        metricc.loss("recall", multiplier_step=0.1)


def test_the_objective_takes_its_parameters_and_a_constraint_its_own():
    loss = metricc.loss("fbeta", constraints=["fbeta(beta=0.5) >= 0.6"], beta=2)
    assert loss.objective.parameter_values == {"beta": 2.0}
    tp, fp, fn, tn = (torch.tensor([value], dtype=torch.float64) for value in (6.0, 3.0, 2.0, 9.0))
    for beta, module in ((2.0, loss.objective), (0.5, loss.soft_rates[0]), (0.5, loss.hard_rates[0])):
        expected = (1 + beta**2) * tp / ((1 + beta**2) * tp + beta**2 * fn + fp)
        torch.testing.assert_close(module.metric_of_counts(tp, fp, fn, tn), expected, rtol=1e-12, atol=0)
    assert "multipliers={'fbeta(beta=0.5) >= 0.6': 0}" in repr(loss)


# ---- behaviour ----------------------------------------------------------------------------------------------------


def train_linear(criterion, seed, steps=200):
    """Full-batch Adam on a logistic model of 2-D data, 25 % positives with overlapping classes; the hard precision
    on the training data at logit 0 after each of the last 50 steps."""
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(400, generator=g) < 0.25).float()
    features = torch.randn(400, 2, generator=g) + 1.2 * target[:, None]
    model = torch.nn.Linear(2, 1)
    torch.manual_seed(seed)
    torch.nn.init.normal_(model.weight, std=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    precisions = []
    for step in range(steps):
        optimizer.zero_grad()
        logits = model(features).squeeze(1)
        criterion(logits, target).backward()
        optimizer.step()
        if step >= steps - 50:
            precisions.append(hard_precision(logits.detach(), target, 0.0))
    return precisions


def test_training_under_the_constraint_meets_it_on_the_training_data_far_more_often_than_without():
    """Recall alone is best predicting everything positive (precision = the prevalence, 0.25); under precision >=
    0.7 the multiplier rises until the model trades recall for precision. Soft rates of the probabilities
    (identity): the sharp default anyloss has no gradient left once a model predicts nothing positive."""
    bound, met = 0.7, {"plain": 0, "constrained": 0}
    for seed in range(3):
        plain = metricc.loss("recall", from_logits=True, approximation="identity")
        constrained = metricc.loss("recall", constraints=[f"precision >= {bound}"], from_logits=True, approximation="identity", ce_weight=0.0)
        met["plain"] += sum(p >= bound for p in train_linear(plain, seed))
        met["constrained"] += sum(p >= bound for p in train_linear(constrained, seed))
        assert constrained.multipliers[f"precision >= {bound}"] > 0
    assert met["plain"] == 0 and met["constrained"] >= 0.8 * 150, met
