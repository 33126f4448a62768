"""``extract``: a dataset through a model into a sharded, resumable activation store.

One forward pass per batch with hooks (:mod:`~vlmscope.activations.capture`),
data loading in a prefetch thread (:mod:`~vlmscope.activations.loader`),
writing in a writer thread, one shard file per variable and shard
(:mod:`~vlmscope.activations.writer`). Memory stays flat in the dataset size.

Resumable: shards are recorded durably as they finish; a run killed at any
point and restarted with the same arguments redoes only unfinished work and
ends with exactly the arrays of an uninterrupted run (batches are aligned to
shard starts, see :mod:`~vlmscope.activations.plan`). A store made for
another model, dataset or capture spec is refused (:class:`StoreMismatch`),
and a second process on one store gets :class:`StoreLocked`.

Distributed: under ``torchrun --nproc_per_node N`` the pending shards are
split into contiguous blocks, one per rank; rank 0 prepares the store, and
after a barrier writes the final attributes and sets ``complete``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmscope import __version__
from vlmscope.activations.capture import ActivationCapture, CaptureSpec
from vlmscope.activations.config import ExtractConfig
from vlmscope.activations.distributed import DistContext, init_distributed
from vlmscope.activations.layout import StoreLayout, json_safe
from vlmscope.activations.loader import Prefetcher, SampleTable, iter_batches
from vlmscope.activations.lock import StoreLock
from vlmscope.activations.plan import ShardTask, plan_shards, split_ranks
from vlmscope.activations.prepare import (
    IDENTITY_KEYS,
    RESIDUAL_NOTE,
    build_layout,
    check_adapter,
    load_adapter,
    prepare_store,
    probe_grid,
    resolve_device,
)
from vlmscope.activations.progress import ProgressLog, ShardRecord, clear_progress, load_progress
from vlmscope.activations.provenance import dataset_fingerprint, label_coordinates, weights_hash
from vlmscope.activations.store import LOCK_NAME, PROGRESS_DIR, StoreWriter, read_store_attrs
from vlmscope.activations.writer import ShardWriter
from vlmscope.errors import DatasetError, StoreError
from vlmscope.io.atomic import atomic_write_text
from vlmscope.io.diskspace import disk_full_as_error
from vlmscope.io.import_graph import code_hash
from vlmscope.io.outguard import check_out
from vlmscope.io.progress import track

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.models.adapter import ModelAdapter

__all__ = ["ExtractConfig", "extract", "skipped_csv_path", "IDENTITY_KEYS"]

log = logging.getLogger(__name__)


def skipped_csv_path(out: str | os.PathLike[str]) -> Path:
    """``<store stem>.skipped.csv`` beside the store (written with ``on_error="skip"``)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.skipped.csv")


# -- the run -----------------------------------------------------------------------


def _bytes_left(layout: StoreLayout, tasks: list[ShardTask]) -> int:
    """Uncompressed bytes of the rows ``tasks`` still have to write (an upper bound for the disk-full message)."""
    from vlmscope.activations.encoding import storage_numpy_dtype

    per_row = 0
    for spec in layout.variables:
        item = storage_numpy_dtype(layout.dtype).itemsize if spec.is_float else np.dtype(spec.dtype).itemsize
        per_row += item * int(np.prod(spec.shape, dtype=np.int64))
    return per_row * sum(t.size - t.resume_from for t in tasks)


def _run_shards(
    config: ExtractConfig,
    adapter: ModelAdapter,
    table: SampleTable,
    writer: StoreWriter,
    tasks: list[ShardTask],
    records: dict[int, ShardRecord],
    log_: ProgressLog,
    *,
    show_progress: bool,
) -> None:
    layout = writer.layout
    layers = np.asarray(layout.coord("layer").values)
    after_embedding = layers > 0
    nonfinite_layers = {
        v.name: after_embedding for v in layout.variables if v.name in ("attention", "attention_entropy", "mlp")
    }
    spec = CaptureSpec(
        layers=tuple(int(x) for x in layers),
        positions=config.positions,
        attention=config.attention,
        mlp=config.mlp,
        patches=int(layout.variable("attention").shape[-1]) if config.attention else 0,
    )
    shard_writer = ShardWriter(writer, log_, records=records, nonfinite_layers=nonfinite_layers)
    batches = iter_batches(
        table,
        tasks,
        batch_size=config.batch_size,
        encode=adapter.encode,
        on_error=config.on_error,
        threads=config.loader_threads,
    )
    prefetch = Prefetcher(batches, maxsize=config.prefetch_batches)
    total = sum(t.size - t.resume_from for t in tasks)
    ok = False
    try:
        with ActivationCapture(adapter, spec) as capture, _progress(show_progress, total) as advance:
            for lb in prefetch:
                arrays: dict[str, np.ndarray] = {}
                if lb.encoded is not None:
                    arrays = {k: v.numpy() for k, v in capture.run(lb.encoded).items()}
                shard_writer.submit(lb.task, lb.lo, lb.hi, lb.rows, arrays, lb.skipped)
                advance(lb.hi - lb.lo)
        ok = True
    finally:
        prefetch.close()
        # on failure keep what is finished: flush the partly filled shard
        shard_writer.close(flush=not ok)


def _progress(show: bool, total: int) -> Any:
    """The shard bar (kept when done, shown also off a terminal when asked: extraction runs are long)."""
    return track(total, "extract", enabled=show, transient=False)


def _finalize(out: Path, writer: StoreWriter, config: ExtractConfig, table: SampleTable) -> dict[str, Any]:
    layout = writer.layout
    records = load_progress(out)
    missing = [k for k in range(layout.n_shards) if k not in records or not records[k].complete]
    if missing:
        raise StoreError(
            f"{out}: shards {missing[:10]} are not finished after all ranks stopped; rerun the same command to resume"
        )
    order = {str(s): i for i, s in enumerate(table.sample_ids)}
    skipped = sorted(
        (s for k in range(layout.n_shards) for s in records[k].skipped), key=lambda s: order[s["sample_id"]]
    )
    nonfinite = {v.name: 0 for v in layout.variables if v.is_float}
    for rec in records.values():
        for name, count in rec.nonfinite.items():
            nonfinite[name] = nonfinite.get(name, 0) + int(count)
    bad = {k: v for k, v in nonfinite.items() if v}
    if bad:
        log.warning("%s: the model produced non-finite values (stored as they are): %s", out, bad)
    final = {
        "skipped": skipped,
        "n_skipped": len(skipped),
        "nonfinite": nonfinite,
        "extract_config": config.model_dump(mode="json"),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if config.on_error == "skip":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["sample_id", "reason"])
        for s in skipped:
            w.writerow([s["sample_id"], s["reason"]])
        atomic_write_text(skipped_csv_path(out), buf.getvalue())
    writer.finalize(final, {k: rec.files for k, rec in records.items() if rec.files})
    clear_progress(out)
    return final


def extract(
    config: ExtractConfig,
    model: str | os.PathLike[str],
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    adapter: ModelAdapter | None = None,
    family: str | None = None,
    revision: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Extract ``dataset`` through ``model`` into the store ``out``; returns ``out``.

    Args:
        config: what to capture (see :class:`ExtractConfig`).
        model: hub id or local checkpoint directory (recorded as given).
        dataset: a vlmscope dataset directory (``manifest.parquet`` + images).
        out: the store directory; resumed when it holds an unfinished store
            of the same extraction, returned at once when finished.
        adapter: an already-loaded adapter for ``model`` (skips loading).
        family: force the model family (default: detected).
        revision: hub revision to load (a ``pin_model`` pin's); recorded as ``model_revision``.
        overwrite: replace a store made for another extraction instead of refusing.
        progress: show a rich progress bar (rank 0).

    Raises:
        StoreMismatch, StoreLocked, DatasetError (unreadable image, named),
        ModelError, ConfigError.
    """
    import torch

    out, dataset = Path(out), Path(dataset)
    dist = init_distributed()
    try:
        torch.manual_seed(config.seed)
        return _extract(config, str(model), dataset, out, adapter, family, revision, overwrite, progress, dist)
    finally:
        dist.close()


def _extract(
    config: ExtractConfig,
    model: str,
    dataset: Path,
    out: Path,
    adapter: ModelAdapter | None,
    family: str | None,
    revision: str | None,
    overwrite: bool,
    progress: bool,
    dist: DistContext,
) -> Path:
    from vlmscope.data.reader import read_rows

    # before the model loads: never write into user data, an input, or another artifact (--overwrite or not)
    check_out(out, "activations", [dataset, model], ignore=(LOCK_NAME, PROGRESS_DIR))
    df = read_rows(dataset)
    if len(df) == 0:
        raise DatasetError(f"{dataset}: the manifest has no rows; nothing to extract")
    coords = label_coordinates(df, where=str(dataset / "manifest.parquet"))
    table = SampleTable(
        dataset,
        df["sample_id"].to_list(),
        df["image"].to_list(),
        df["prompt"].to_list(),
        max_pixels=config.max_image_pixels,
    )
    device = resolve_device(config.device, dist.local_rank)
    if adapter is None:
        adapter = load_adapter(config, model, family, device, revision)
    check_adapter(adapter, config)
    layers = config.resolve_layers(adapter.num_layers)
    grid = probe_grid(adapter, table, config.on_error) if config.attention else None
    layout = build_layout(config, coords, layers, adapter, grid)
    revision = adapter.revision or adapter.commit_hash or ""
    model_dtype = str(next(adapter.model.parameters()).dtype).replace("torch.", "")
    identity: dict[str, Any] = json_safe(
        {
            "model": model,
            "model_revision": revision,
            "weights_hash": weights_hash(model) if dist.is_main else "",
            "family": adapter.family,
            "dataset": str(dataset),
            "dataset_fingerprint": dataset_fingerprint(dataset) if dist.is_main else "",
            "n_samples": layout.n_samples,
            "positions": list(config.positions),
            "layers": list(layers),
            "attention": config.attention,
            "mlp": config.mlp,
            "dtype": config.dtype,
            "model_dtype": model_dtype,
            "shard_samples": layout.shard_samples,
            "patch_grid": list(grid) if grid else None,
            "num_layers": adapter.num_layers,
            "hidden_size": adapter.hidden_size,
            "residual": RESIDUAL_NOTE,
            "seed": config.seed,
            "vlmscope_version": __version__,
            "code_hash": code_hash(__name__),
        }
    )

    lock = StoreLock(out / LOCK_NAME, store=out)
    verdict: dict[str, Any]
    if dist.is_main:
        created = not out.exists()
        try:
            with disk_full_as_error(out, resumes=True):
                out.mkdir(parents=True, exist_ok=True)
                lock.acquire()
                status, records = prepare_store(out, layout, identity, overwrite=overwrite)
            tasks = plan_shards(layout.n_samples, layout.shard_samples, records) if status == "run" else []
            run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"  # never reuses a file
            verdict = {"status": status, "records": records, "tasks": tasks, "run_id": run_id}
        except BaseException as e:
            if lock.held:
                _release(lock, out, created)
            dist.broadcast({"status": "error", "message": f"{type(e).__name__}: {e}"})
            raise
        dist.broadcast(verdict)
    else:
        verdict = dist.broadcast(None)
        if verdict["status"] == "error":
            raise StoreError(f"rank 0 could not prepare {out}: {verdict['message']}")

    try:
        if verdict["status"] == "done":
            log.info("%s: already complete for this extraction; nothing to do", out)
            return out
        writer = StoreWriter.reopen(out, layout)
        mine = split_ranks(verdict["tasks"], dist.world_size)[dist.rank]
        plog = ProgressLog(out, run_id=verdict["run_id"], rank=dist.rank)
        with disk_full_as_error(out, needed=_bytes_left(layout, mine), resumes=True):
            _run_shards(
                config, adapter, table, writer, mine, verdict["records"], plog, show_progress=progress and dist.is_main
            )
        dist.barrier()
        if dist.is_main:
            with disk_full_as_error(out, resumes=True):
                _finalize(out, writer, config, table)
        dist.barrier()
        return out
    finally:
        if dist.is_main:
            _release(lock, out, False)


def _release(lock: StoreLock, out: Path, created: bool) -> None:
    """Release the lock; a finished store keeps no lock file, a directory made for nothing is removed."""
    try:
        attrs = read_store_attrs(out)
    except StoreError:
        attrs = None
    lock.release(remove=bool(attrs and attrs.get("complete")) or created)
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()  # only succeeds when nothing was written
