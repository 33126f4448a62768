"""Durable per-shard progress of an extraction, so a killed run resumes exactly.

Each writing process keeps its own JSON file under ``STORE/.vlmscope-progress/``
(named by run id and rank, rewritten atomically after every shard it
finishes), so ranks of a distributed run never write the same file. A shard
record says how many of the shard's rows are final (``rows_done``): a shard
is complete when ``rows_done == size``; a run stopped by an error or Ctrl-C
flushes its partly filled shard and records the rows it finished. A shard
written to the store but not yet recorded (SIGKILL between the two) is
simply redone. Readers take, per shard, the record with the most rows done.

The directory is removed when the store completes; the final skipped list
and non-finite counts move into the store's attributes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlmscope.activations.store import PROGRESS_DIR
from vlmscope.errors import StoreError
from vlmscope.io.atomic import atomic_write_text

__all__ = ["ShardRecord", "ProgressLog", "load_progress", "clear_progress"]


@dataclass
class ShardRecord:
    """What is final in one shard."""

    shard: int
    size: int
    """Number of samples in the shard."""
    rows_done: int
    """Rows ``[start, start + rows_done)`` of the shard are written and final."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """``{"sample_id", "reason"}`` of samples skipped so far in this shard (``--on-error skip``)."""
    nonfinite: dict[str, int] = field(default_factory=dict)
    """Per variable NaN/inf counts over the shard's finished rows."""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Size and CRC-32 of each file of the shard as just written (see :mod:`vlmscope.activations.integrity`)."""

    @property
    def complete(self) -> bool:
        return self.rows_done >= self.size


def _dir(store: Path) -> Path:
    return Path(store) / PROGRESS_DIR


class ProgressLog:
    """This process's progress file; :meth:`record` persists one shard record atomically."""

    def __init__(self, store: str | os.PathLike[str], *, run_id: str, rank: int) -> None:
        self.path = _dir(Path(store)) / f"{run_id}-rank{rank}.json"
        self._records: dict[int, ShardRecord] = {}

    def record(self, rec: ShardRecord) -> None:
        self._records[rec.shard] = rec
        payload = {"records": [asdict(r) for r in sorted(self._records.values(), key=lambda r: r.shard)]}
        atomic_write_text(self.path, json.dumps(payload, sort_keys=True))


def load_progress(store: str | os.PathLike[str]) -> dict[int, ShardRecord]:
    """Best record per shard over every progress file of ``store`` (empty when none)."""
    d = _dir(Path(store))
    best: dict[int, ShardRecord] = {}
    if not d.is_dir():
        return best
    for f in sorted(d.glob("*.json")):
        if f.name.startswith("."):
            continue  # a temporary file of an interrupted atomic write
        try:
            payload = json.loads(f.read_text())
            records = [ShardRecord(**r) for r in payload["records"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{f}: unreadable progress record ({e}); delete {store} and extract again") from e
        for r in records:
            cur = best.get(r.shard)
            if cur is None or r.rows_done > cur.rows_done:
                best[r.shard] = r
    return best


def clear_progress(store: str | os.PathLike[str]) -> None:
    shutil.rmtree(_dir(Path(store)), ignore_errors=True)
