"""Which rows each process extracts, in which batches: pure functions, no I/O.

Work is cut into shards (``shard_samples`` consecutive manifest rows); a
shard is the unit of writing, of resumption and of distribution. Batches
never cross a shard boundary and always start at ``shard start + i *
batch_size``, so a resumed or distributed run forms exactly the batches of an
uninterrupted single-process run (same padding, same numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ShardTask", "plan_shards", "split_ranks", "batch_bounds"]


class _Record(Protocol):
    rows_done: int


@dataclass(frozen=True)
class ShardTask:
    """One shard still to (finish) extracting: rows ``[start + resume_from, stop)``."""

    shard: int
    start: int
    stop: int
    resume_from: int = 0

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_shards(n_samples: int, shard_samples: int, done: Mapping[int, _Record]) -> list[ShardTask]:
    """Shards not complete yet, in order, with the rows already final in each."""
    tasks = []
    for k, start in enumerate(range(0, max(n_samples, 1), shard_samples)):
        stop = min(start + shard_samples, n_samples)
        rec = done.get(k)
        rows = min(rec.rows_done, stop - start) if rec is not None else 0
        if rows < stop - start:
            tasks.append(ShardTask(k, start, stop, rows))
    return tasks


def split_ranks(tasks: Sequence[ShardTask], world_size: int) -> list[list[ShardTask]]:
    """Contiguous blocks of shards per rank, balanced by rows still to do (rank r gets block r)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    remaining = [t.size - t.resume_from for t in tasks]
    total = sum(remaining)
    blocks: list[list[ShardTask]] = [[] for _ in range(world_size)]
    acc = 0
    for t, r in zip(tasks, remaining):
        # rank whose share [rank*total/W, (rank+1)*total/W) holds this shard's midpoint
        mid = acc + r / 2
        rank = min(int(mid * world_size / total), world_size - 1) if total else 0
        blocks[rank].append(t)
        acc += r
    return blocks


def batch_bounds(task: ShardTask, batch_size: int) -> list[tuple[int, int]]:
    """Absolute ``[lo, hi)`` rows of the batches still to run in ``task``.

    Batches are aligned to the shard start; a resume point inside a batch
    (never produced by the extractor, which records whole batches) starts a
    short batch there.
    """
    out = []
    lo = task.start + task.resume_from
    while lo < task.stop:
        aligned = task.start + ((lo - task.start) // batch_size + 1) * batch_size
        hi = min(aligned, task.stop)
        out.append((lo, hi))
        lo = hi
    return out
