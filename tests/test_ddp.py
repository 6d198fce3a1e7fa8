"""sync='ddp': with two gloo processes on CPU, every rank's loss and gradient equal one process on the whole batch."""

import pytest
import torch
import torch.distributed as dist

import metricc
from ranks import SPLIT, WORLD, on_ranks, shard

CASES = {
    "multiclass-macro": dict(task="multiclass", average="macro"),
    "multiclass-weighted-samplewise": dict(task="multiclass", average="weighted", multidim_average="samplewise", ignore_index=-1),
    "multiclass-none": dict(task="multiclass", average="none", include_background=False),
    "multilabel-samples": dict(task="multilabel", average="samples"),
    "multilabel-micro": dict(task="multilabel", average="micro", zero_division=1.0),
    "binary-samplewise": dict(task="binary", multidim_average="samplewise"),
    "multiclass-running": dict(task="multiclass", average="macro", count_momentum=0.5),
    # class 2 has no target and probability exactly 0 on rank 0 only: absent there, present in the global batch
    "multiclass-absent-on-rank-0": dict(task="multiclass", average="macro", approximation="anyloss", zero_division=1.0),
    # metrics of the whole confusion matrix: the matrix is summed over ranks
    "matrix-qwk": dict(task="multiclass"),
    "matrix-mcc-samplewise": dict(task="multiclass", multidim_average="samplewise", ignore_index=-1),
    "matrix-kappa-running": dict(task="multiclass", count_momentum=0.5),
}
MATRIX_METRICS = {"matrix-qwk": "qwk", "matrix-mcc-samplewise": "mcc", "matrix-kappa-running": "cohen_kappa"}


def metric_of(case):
    return MATRIX_METRICS.get(case, "mcc" if "micro" in case else "f1")


def batch(case, step=0):
    """The global batch of one step: logits (8, 3, 4) and targets, in float64."""
    generator = torch.Generator().manual_seed(100 * step + sorted(CASES).index(case))
    task = CASES[case]["task"]
    logits = torch.randn(sum(SPLIT), 1 if task == "binary" else 3, 4, generator=generator, dtype=torch.float64)
    if task == "multiclass":
        target = torch.randint(0, 3, (sum(SPLIT), 4), generator=generator)
        target[0, 0] = -1 if CASES[case].get("ignore_index") == -1 else target[0, 0]
        if case == "multiclass-absent-on-rank-0":
            target[target == 2] = 0
            logits[: SPLIT[0], 2] = -1000.0
    else:
        target = (torch.rand(logits.shape, generator=generator) < 0.5).long()
    return logits, target


def losses_and_gradients(loss, logits, target, steps):
    """Loss value and d loss / d logits of each step."""
    results = []
    for step in range(steps):
        leaf = logits[step].clone().requires_grad_(True)
        value = loss(leaf, target[step])
        (grad,) = torch.autograd.grad(value.sum(), leaf)
        results.append((value.detach(), grad))
    return results


def steps_of(case):
    return 2 if "count_momentum" in CASES[case] else 1


def worker(rank):
    """This rank's losses and gradients of every case on its shard, and its LearnedLoss history."""
    out = {}
    for case, options in CASES.items():
        loss = metricc.loss(metric_of(case), from_logits=True, sync="ddp", **options)
        batches = [batch(case, step) for step in range(steps_of(case))]
        out[case] = losses_and_gradients(loss, [b[0][shard(rank)] for b in batches], [b[1][shard(rank)] for b in batches], steps_of(case))
    out["learned"] = learned_history(rank)
    return out


def learned_history(rank):
    """A LearnedLoss trained and validated on data of this rank only: three checkpoints of two steps each."""
    learned = metricc.LearnedLoss("f1", from_logits=True, sync="ddp", feature_every=1, step=1.0)
    generator = torch.Generator().manual_seed(7 + rank)
    alternating = (torch.arange(20) % 3 == 0).float()  # both classes in every batch
    for _ in range(3):
        for _ in range(2):
            logits = torch.randn(20, generator=generator, requires_grad=True)
            learned(logits, alternating).backward()
        learned.validate(torch.randn(20, generator=generator) + 2 * alternating * rank, alternating)
    return learned.history


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return on_ranks(worker, tmp_path_factory.mktemp("ddp"))


def assert_ranks_equal_one_process(ranks, case):
    """Each rank's losses and gradients of a case equal one process's on the concatenated batch (its slice)."""
    loss = metricc.loss(metric_of(case), from_logits=True, **CASES[case])
    shards = [batch(case, step) for step in range(steps_of(case))]
    expected = losses_and_gradients(loss, [s[0] for s in shards], [s[1] for s in shards], steps_of(case))
    for rank in range(WORLD):
        for (value, grad), (expected_value, expected_grad) in zip(ranks[rank][case], expected):
            torch.testing.assert_close(value, expected_value, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(grad, expected_grad[shard(rank)], rtol=1e-9, atol=1e-14)
            assert grad.abs().max() > 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rank_equals_one_process_on_the_concatenated_batch(ranks, case):
    assert_ranks_equal_one_process(ranks, case)


def test_learned_loss_ranks_share_their_training_values_and_rank_zero_weights(ranks):
    """Each rank validates on different data (different scores); the recorded training values are averaged over
    ranks and every rank trains on rank 0's weights."""
    first, second = (ranks[rank]["learned"] for rank in range(WORLD))
    assert [entry["score"] for entry in first] != [entry["score"] for entry in second]
    for mine, theirs in zip(first, second):
        assert mine["weights"] == theirs["weights"]
        assert mine["losses"] == pytest.approx(theirs["losses"], rel=1e-12)


def test_sync_without_a_process_group_is_a_clear_error():
    assert not (dist.is_available() and dist.is_initialized())
    loss = metricc.loss("f1", task="multiclass", average="macro", from_logits=True, sync="ddp")
    with pytest.raises(RuntimeError, match=r"sync='ddp' needs an initialised torch.distributed process group.*init_process_group"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_sync_is_refused_in_torchscript():
    scripted = torch.jit.script(metricc.loss("f1", task="multiclass", average="macro", from_logits=True, sync="ddp"))
    with pytest.raises(Exception, match="TorchScript"):
        scripted(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
