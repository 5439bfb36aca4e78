"""Which part of a question file this process answers: the whole (one process), a rank's under torchrun /
`accelerate launch`, or a shard of a job array (`--shard K/N`).

- torchrun: the ranks meet at two barriers (gloo, which runs on the CPU whatever the device): once after every
  rank has read what earlier runs answered, so they split the same remaining questions evenly (stride by rank),
  and once at the end, after which rank 0 merges the shards. A killed run resumes with any number of ranks.
- `--shard K/N`: processes that never meet (array tasks start and end at their own times). Shard K takes the
  questions whose position in the file is K modulo N, skipping those already answered; `scenes2real score`
  merges the shards once every one has ended.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from blender_scenes.batch import parse_shard
from blender_scenes.errors import InputError

# a rank waits at the final barrier for the slowest one; after a resume the split can be uneven for hours
BARRIER_TIMEOUT = timedelta(days=2)


@dataclass(frozen=True)
class Part:
    k: int = 0
    n: int = 1
    distributed: bool = False   # torchrun ranks (they meet at barriers), not array tasks

    @property
    def whole(self) -> bool:
        return self.n == 1

    @property
    def merges(self) -> bool:
        """This process writes the run's merged predictions.jsonl, run.json and metrics."""
        return self.whole or (self.distributed and self.k == 0)


def this_part(shard: str | None) -> Part:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if shard:
            raise InputError(f"--shard {shard}: this process is one of {world} torchrun ranks, which split the "
                             "questions already (expected --shard only for job-array tasks)")
        return Part(int(os.environ.get("RANK", "0")), world, distributed=True)
    k, n = parse_shard(shard)
    return Part(k, n)


def barrier(part: Part) -> None:
    """All ranks of a torchrun job reach this point before any goes on (nothing for other processes)."""
    if not part.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    dist.barrier()


def leave(part: Part) -> None:
    if part.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
