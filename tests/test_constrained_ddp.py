"""Training under constraints with sync='ddp': on two gloo processes on CPU, every rank's multipliers and hard rates
equal each other's and one process's on the whole batch, step after step (tests/test_ddp.py does the same for the
losses)."""

import pytest
import torch

import metricc
from ranks import SPLIT, on_ranks, shard

STEPS = 4

CASES = {
    "binary": dict(metric="recall", constraints=["precision >= 0.9", "FP / (FP + TN) <= 0.2"], options={}),
    "binary-running": dict(metric="recall", constraints=["precision >= 0.9"], options=dict(count_momentum=0.5)),
    "multiclass": dict(
        metric="recall", constraints=["precision >= 0.8", "cohen_kappa >= 0.6"],
        options=dict(task="multiclass", average="macro", ignore_index=-1),
    ),
}


def batch(case, step):
    """The global batch of one step. Two-class: at step 1 rank 1 predicts nothing positive (the pooled precision is
    still defined), at step 2 no rank does (undefined everywhere: no step). Multi-class: (8, 3) logits."""
    generator = torch.Generator().manual_seed(10 * step + sorted(CASES).index(case))
    if CASES[case]["options"].get("task") == "multiclass":
        target = torch.randint(0, 3, (sum(SPLIT),), generator=generator)
        target[0] = -1
        return torch.randn(sum(SPLIT), 3, generator=generator, dtype=torch.float64), target
    target = (torch.arange(sum(SPLIT)) % 2).double()
    logits = torch.randn(sum(SPLIT), generator=generator, dtype=torch.float64) + 1.0
    if step == 1:
        logits[SPLIT[0]:] = -5.0
    if step == 2:
        logits[:] = -5.0
    return logits, target


def history(loss, shards):
    """The multipliers and hard rates after each training step on these shards."""
    seen = []
    for logits, target in shards:
        loss(logits.clone().requires_grad_(True), target)
        seen.append((loss.multipliers, loss.rates))
    return seen


def build(case, **extra):
    spec = CASES[case]
    return metricc.loss(spec["metric"], constraints=spec["constraints"], from_logits=True, multiplier_step=0.5, **spec["options"], **extra)


def worker(rank):
    """This rank's multipliers and hard rates of every case, trained on its shard of each step."""
    batches = {case: [batch(case, step) for step in range(STEPS)] for case in CASES}
    return {case: history(build(case, sync="ddp").train(), [(x[shard(rank)], y[shard(rank)]) for x, y in batches[case]]) for case in CASES}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return on_ranks(worker, tmp_path_factory.mktemp("constrained-ddp"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rank_takes_the_multiplier_steps_of_one_process_on_the_whole_batch(ranks, case):
    expected = history(build(case).train(), [batch(case, step) for step in range(STEPS)])
    assert ranks[0][case] == ranks[1][case]  # the same pooled counts, the same step, bit for bit
    for (multipliers, rates), (expected_multipliers, expected_rates) in zip(ranks[0][case], expected):
        assert multipliers == pytest.approx(expected_multipliers, rel=1e-6, abs=1e-9)
        assert rates.keys() == expected_rates.keys()
        for text, rate in rates.items():
            assert (rate is None) == (expected_rates[text] is None)
            assert rate is None or rate == pytest.approx(expected_rates[text], rel=1e-6)
    assert any(max(multipliers.values()) > 0 for multipliers, _ in expected)


def test_the_two_class_steps_cover_a_rank_with_nothing_predicted_positive_and_a_batch_with_none_at_all(ranks):
    (_, after_one_rank_empty), (_, after_all_empty) = ranks[1]["binary"][1], ranks[1]["binary"][2]
    assert after_one_rank_empty["precision >= 0.9"] is not None  # rank 0's positives define the pooled precision
    assert after_all_empty["precision >= 0.9"] is None
    assert ranks[1]["binary"][2][0]["precision >= 0.9"] == ranks[1]["binary"][1][0]["precision >= 0.9"]
    assert ranks[1]["binary-running"][2][1]["precision >= 0.9"] is not None  # the running counts define it
