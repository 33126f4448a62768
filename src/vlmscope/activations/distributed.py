"""Several processes on one store: ranks from ``torchrun``'s environment, gloo for coordination.

Under ``torchrun --nproc_per_node N`` every process reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; a gloo process group (CPU, works beside
CUDA) carries only tiny messages: rank 0's verdict on the store and the shard
plan, and the final barrier. Ranks write disjoint shards of the one store;
rank 0 alone holds the lock, writes metadata and sets ``complete``.
Without those variables (or with ``WORLD_SIZE=1``) everything is local.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from vlmscope.errors import ConfigError

__all__ = ["DistContext", "init_distributed"]


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False
    """Whether this context initialised the process group (and so destroys it)."""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} must be an integer") from None


def init_distributed(*, timeout_s: float = 24 * 3600) -> DistContext:
    """A context from the environment; joins (or reuses) a gloo group when ``WORLD_SIZE > 1``.

    The long default timeout covers ranks that finish their shards hours
    apart before the final barrier.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} / WORLD_SIZE={world} are inconsistent")
    if world == 1:
        return DistContext()
    import torch.distributed as dist

    owns = False
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise ConfigError(f"WORLD_SIZE={world} but MASTER_ADDR/MASTER_PORT are not set; launch with torchrun")
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
        owns = True
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, owns_group=owns)
