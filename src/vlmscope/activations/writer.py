"""The background shard writer: buffers one shard, writes it once, records it durably.

The forward loop hands each batch's reductions to :meth:`ShardWriter.submit`
(a bounded queue); a writer thread casts them to the storage dtype (refusing
overflow, see :mod:`vlmscope.activations.encoding`), places them in an
in-memory buffer of one shard and, when the shard is full, writes every
variable's shard file once and then appends the shard's record (with each
file's size and CRC-32) to the progress log. Compression and disk writes thus overlap the next forward
pass, and memory is one shard plus a few batches, whatever the dataset size.

Stopping early (an error or Ctrl-C in the forward loop): :meth:`close` with
``flush=True`` writes the partly filled shard and records how many of its
rows are final; a resumed run reads those rows back and continues after them.

Test hook: with ``VLMSCOPE_TEST_HANG_BEFORE_RECORD=k`` in the environment the
writer sleeps forever after writing the data of its k-th shard (0-based) but
before recording it, so tests can SIGKILL a run at exactly that point.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from vlmscope.activations.encoding import count_nonfinite, to_storage
from vlmscope.activations.integrity import describe_shard
from vlmscope.activations.plan import ShardTask
from vlmscope.activations.progress import ProgressLog, ShardRecord
from vlmscope.activations.store import StoreWriter

__all__ = ["ShardWriter"]

_HANG_ENV = "VLMSCOPE_TEST_HANG_BEFORE_RECORD"


class _Shard:
    def __init__(self, writer: StoreWriter, task: ShardTask, record: ShardRecord | None) -> None:
        layout = writer.layout
        self.task = task
        self.buffers = {v.name: layout.empty_buffer(v.name, task.size) for v in layout.variables}
        self.valid = np.ones(task.size, dtype=bool)
        self.skipped: list[dict[str, str]] = []
        self.rows_done = task.resume_from
        if task.resume_from:
            # rows finished by an earlier run: read back in storage precision (bit-exact)
            old = writer.read_rows(task.start, task.start + task.resume_from, list(self.buffers))
            for name, values in old.items():
                self.buffers[name][: task.resume_from] = values
            if record is not None:
                self.skipped = list(record.skipped)
                ids = {s["sample_id"] for s in self.skipped}
                sample_ids = layout.coord("sample").values[task.start : task.start + task.resume_from]
                self.valid[: task.resume_from] = [str(s) not in ids for s in sample_ids]


class ShardWriter:
    """Thread that owns the store writes of one process; see the module docstring.

    ``nonfinite_mask``: per variable, a boolean mask over its layer axis of
    the entries that count as non-finite when NaN (attention/MLP at layer 0
    are NaN by definition and are excluded); None counts everything.
    """

    def __init__(
        self,
        store: StoreWriter,
        progress: ProgressLog,
        *,
        records: Mapping[int, ShardRecord],
        nonfinite_layers: Mapping[str, np.ndarray] | None = None,
        queue_size: int = 4,
    ) -> None:
        self.store = store
        self.progress = progress
        self._records = dict(records)
        self._nonfinite_layers = dict(nonfinite_layers or {})
        self._q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._current: _Shard | None = None
        self._written = 0
        hang = os.environ.get(_HANG_ENV)
        self._hang_at = int(hang) if hang not in (None, "") else None
        self.shards_completed: list[int] = []
        self._thread = threading.Thread(target=self._loop, name="vlmscope-writer", daemon=True)
        self._thread.start()

    # -- producer side (forward loop) ----------------------------------------
    def _put(self, item: Any) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(
        self,
        task: ShardTask,
        lo: int,
        hi: int,
        rows: list[int],
        arrays: Mapping[str, np.ndarray],
        skipped: list[dict[str, str]],
    ) -> None:
        """Hand over batch rows ``[lo, hi)``: ``arrays[name]`` (len(rows), ...) float32 for ``rows``."""
        self._put(("batch", task, lo, hi, rows, dict(arrays), list(skipped)))

    def close(self, *, flush: bool) -> None:
        """Finish: wait for queued batches; with ``flush`` write a partly filled shard too."""
        try:
            self._put(("close", flush))
        finally:
            self._thread.join()
        self._raise_if_failed()

    # -- writer thread ---------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                item = self._q.get()
                if item[0] == "close":
                    if (
                        item[1]
                        and self._current is not None
                        and self._current.rows_done > self._current.task.resume_from
                    ):
                        self._write(self._current)
                    return
                self._batch(*item[1:])
        except BaseException as e:  # noqa: BLE001 - re-raised in the producer
            self._error = e
            # drain so a producer blocked on put() wakes up and sees the error
            while True:
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break

    def _batch(
        self,
        task: ShardTask,
        lo: int,
        hi: int,
        rows: list[int],
        arrays: dict[str, np.ndarray],
        skipped: list[dict[str, str]],
    ) -> None:
        cur = self._current
        if cur is None or cur.task.shard != task.shard:
            cur = self._current = _Shard(self.store, task, self._records.get(task.shard))
        if lo - task.start != cur.rows_done:
            raise RuntimeError(f"shard {task.shard}: batch starts at row {lo}, expected {task.start + cur.rows_done}")
        dtype = self.store.layout.dtype
        local = np.asarray(rows, dtype=np.int64) - task.start
        for name, values in arrays.items():
            if self.store.layout.variable(name).is_float:
                values = to_storage(
                    np.asarray(values), dtype, name=name, where=f"{self.store.path} samples {lo}..{hi - 1}"
                )
            cur.buffers[name][local] = values
        if skipped:
            ids = {s["sample_id"] for s in skipped}
            sample_ids = self.store.layout.coord("sample").values
            for r in range(lo, hi):
                if str(sample_ids[r]) in ids:
                    cur.valid[r - task.start] = False
        cur.skipped.extend(skipped)
        cur.rows_done = hi - task.start
        if cur.rows_done >= task.size:
            self._write(cur)
            self._current = None

    def _write(self, cur: _Shard) -> None:
        task = cur.task
        complete = cur.rows_done >= task.size
        self.store.write_rows(task.start, cur.buffers)
        nonfinite = {}
        for v in self.store.layout.variables:
            if not v.is_float:
                continue
            values = cur.buffers[v.name][: cur.rows_done]
            mask = self._nonfinite_layers.get(v.name)
            if mask is not None:
                values = values[:, mask]
            nonfinite[v.name] = count_nonfinite(values, cur.valid[: cur.rows_done])
        if complete and self._hang_at is not None and self._written == self._hang_at:
            while True:  # test hook: wait here to be killed
                time.sleep(3600)
        files = describe_shard(self.store.path, cur.buffers, task.shard)  # just written: read from the page cache
        record = ShardRecord(task.shard, task.size, cur.rows_done, list(cur.skipped), nonfinite, files)
        self.progress.record(record)
        self._records[task.shard] = record
        if complete:
            self._written += 1
            self.shards_completed.append(task.shard)
