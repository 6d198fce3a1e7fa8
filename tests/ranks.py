"""Ranks of torch.distributed for the sync='ddp' tests: gloo processes on CPU, each computing on its shard of a batch."""

import datetime
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
SPLIT = [5, 3]  # uneven shards: rank 0 holds 5 samples, rank 1 holds 3


def shard(rank: int) -> slice:
    """The samples of a global batch that `rank` holds."""
    return slice(sum(SPLIT[:rank]), sum(SPLIT[: rank + 1]))


def on_ranks(work, directory: Path) -> list:
    """work(rank) in each of WORLD gloo processes (a file rendezvous under directory): what each returned, by rank.
    work is a module-level function, which the spawned processes import."""
    mp.spawn(_rank, args=(work, str(directory)), nprocs=WORLD, join=True)
    return [torch.load(directory / f"results.{rank}") for rank in range(WORLD)]


def _rank(rank: int, work, directory: str) -> None:
    # A rank that fails leaves the other waiting in a collective: a minute, not gloo's default half hour.
    dist.init_process_group(
        "gloo", init_method=f"file://{directory}/rendezvous", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60)
    )
    try:
        torch.save(work(rank), f"{directory}/results.{rank}")
    finally:
        dist.destroy_process_group()
