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

import csv
import io
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmscope import __version__
from vlmscope.activations.capture import ActivationCapture, CaptureSpec
from vlmscope.activations.config import ExtractConfig, position_variable
from vlmscope.activations.distributed import DistContext, init_distributed
from vlmscope.activations.loader import Prefetcher, SampleTable, iter_batches, load_image
from vlmscope.activations.lock import StoreLock
from vlmscope.activations.plan import ShardTask, plan_shards, split_ranks
from vlmscope.activations.progress import ProgressLog, ShardRecord, clear_progress, load_progress
from vlmscope.activations.provenance import dataset_fingerprint, label_coordinates, weights_hash
from vlmscope.activations.store import (
    FORMAT,
    LOCK_NAME,
    PROGRESS_DIR,
    Coordinate,
    StoreLayout,
    StoreWriter,
    VariableSpec,
    _json_safe,
    read_store_attrs,
)
from vlmscope.activations.writer import ShardWriter
from vlmscope.errors import ConfigError, DatasetError, ModelError, StoreError, StoreMismatch
from vlmscope.io.atomic import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.models.adapter import ModelAdapter

__all__ = ["ExtractConfig", "extract", "skipped_csv_path", "IDENTITY_KEYS"]

log = logging.getLogger(__name__)

IDENTITY_KEYS: tuple[str, ...] = (
    "family",
    "dataset_fingerprint",
    "n_samples",
    "positions",
    "layers",
    "attention",
    "mlp",
    "dtype",
    "model_dtype",
    "shard_samples",
    "patch_grid",
)
"""Attributes that must match for a run to resume (or accept) an existing store; plus the model."""

RESIDUAL_NOTE = (
    "residual stream before the final norm; layer 0 = embedding output, layer k = output of decoder "
    "block k-1 (coordinate 'block'); attention/mlp at layer k come from block k-1 and are NaN at layer 0"
)
ENTROPY_NOTE = (
    "entropy in nats of the head-mean attention of the last prompt token over the image tokens, "
    "renormalised to sum to 1 over them (0 = one patch, log(P) = uniform)"
)


def skipped_csv_path(out: str | os.PathLike[str]) -> Path:
    """``<store stem>.skipped.csv`` beside the store (written with ``on_error="skip"``)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.skipped.csv")


# -- setup -----------------------------------------------------------------------


def _resolve_device(device: str, local_rank: int) -> str:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


def _load_adapter(config: ExtractConfig, model: str, family: str | None, device: str) -> ModelAdapter:
    from vlmscope.models import LoadOptions, load_model

    model_dtype = config.model_dtype
    if model_dtype == "auto":
        model_dtype = "float32" if device == "cpu" else "bfloat16"
    options = LoadOptions(
        dtype=model_dtype,
        device_map=None if device == "cpu" else device,
        attn_implementation="eager" if config.attention else None,
    )
    return load_model(model, family=family, options=options)  # type: ignore[return-value]


def _check_adapter(adapter: Any, config: ExtractConfig) -> None:
    from vlmscope.models.adapter import ModelAdapter

    if not isinstance(adapter, ModelAdapter):
        raise ModelError(
            f"{getattr(adapter, 'source', adapter)}: {type(adapter).__name__} is not an image-text-to-text "
            "adapter; extract needs a generative VLM (contrastive models have no decoder layers)"
        )
    caps = adapter.capabilities
    if config.attention and not caps.attention:
        raise ModelError(f"family {adapter.family!r} does not support --attention")
    if config.mlp and not caps.mlp:
        raise ModelError(f"family {adapter.family!r} does not support --mlp")
    if config.attention:
        model = adapter.model
        if getattr(model.config, "_attn_implementation", "eager") != "eager":
            if not hasattr(model, "set_attn_implementation"):
                raise ModelError("--attention needs eager attention; load the model with attn_implementation='eager'")
            model.set_attn_implementation("eager")


def _probe_grid(adapter: ModelAdapter, table: SampleTable, on_error: str) -> tuple[int, int]:
    """(rows, cols) of the image tokens, from the first readable sample."""
    for row in range(len(table.sample_ids)):
        try:
            image = load_image(table, row)
        except DatasetError:
            if on_error == "stop":
                raise
            continue
        enc = adapter.encode([image], [table.prompts[row]])
        rows, cols = enc.patch_grids[0]
        n = int(enc.image_mask[0].sum())
        if rows * cols != n:
            raise ModelError(f"patch grid {rows}x{cols} does not match the {n} image tokens of sample {row}")
        return int(rows), int(cols)
    raise DatasetError(f"{table.dataset_dir}: no readable image at all; nothing to extract")


def _build_layout(
    config: ExtractConfig,
    coords: list[Coordinate],
    layers: tuple[int, ...],
    adapter: ModelAdapter,
    grid: tuple[int, int] | None,
) -> StoreLayout:
    n = len(coords[0].values)
    nL, D = len(layers), adapter.hidden_size
    all_coords = list(coords) + [
        Coordinate("layer", ("layer",), np.asarray(layers, dtype=np.int64)),
        Coordinate("block", ("layer",), np.asarray(layers, dtype=np.int64) - 1),
    ]
    variables = [VariableSpec(position_variable(p), ("sample", "layer", "dim"), (nL, D)) for p in config.positions]
    if config.attention:
        assert grid is not None
        rows, cols = grid
        P = rows * cols
        all_coords += [
            Coordinate("stat", ("stat",), np.array(["mean", "max"], dtype=object)),
            Coordinate("patch_row", ("patch",), np.repeat(np.arange(rows), cols)),
            Coordinate("patch_col", ("patch",), np.tile(np.arange(cols), rows)),
        ]
        variables += [
            VariableSpec("attention", ("sample", "layer", "stat", "patch"), (nL, 2, P)),
            VariableSpec("attention_entropy", ("sample", "layer"), (nL,), attrs={"definition": ENTROPY_NOTE}),
        ]
    if config.mlp:
        F = int(adapter.mlp_down_proj(0).in_features)
        variables.append(VariableSpec("mlp", ("sample", "layer", "ffn"), (nL, F)))
    return StoreLayout(tuple(all_coords), tuple(variables), config.dtype, min(config.shard_samples, max(n, 1)))


def _mismatches(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    diffs = []
    if existing.get("weights_hash") and wanted.get("weights_hash"):
        if existing["weights_hash"] != wanted["weights_hash"]:
            diffs.append(
                f"model weights: store has {existing.get('model')!r} (sha256 {existing['weights_hash'][:12]}), "
                f"this run {wanted.get('model')!r} (sha256 {wanted['weights_hash'][:12]})"
            )
    else:
        for key in ("model", "model_revision"):
            if existing.get(key) != wanted.get(key):
                diffs.append(f"{key}: store has {existing.get(key)!r}, this run {wanted.get(key)!r}")
    for key in IDENTITY_KEYS:
        if existing.get(key) != wanted.get(key):
            diffs.append(f"{key}: store has {existing.get(key)!r}, this run {wanted.get(key)!r}")
    return diffs


def _remove_partials(out: Path) -> None:
    """Temporary files of zarr writes a SIGKILL interrupted (zarr writes ``<name>.<uuid>.partial``)."""
    for p in out.rglob("*.partial"):
        p.unlink(missing_ok=True)


def _prepare_store(
    out: Path, layout: StoreLayout, identity: dict[str, Any], *, overwrite: bool
) -> tuple[str, dict[int, ShardRecord]]:
    """Create, validate or reopen the store; ``("done" | "run", records)``. Caller holds the lock."""
    try:
        existing = read_store_attrs(out)
    except StoreError:
        if not overwrite:
            raise
        existing = None
    if existing is None or not existing.get("initialized", False):
        ours = existing is not None or not any(
            p.name not in (LOCK_NAME, PROGRESS_DIR) for p in out.iterdir()
        )
        if not ours and not overwrite:
            raise StoreError(
                f"{out}: exists and is not an activation store; choose another --out, delete it, or pass --overwrite"
            )
        StoreWriter.create(out, layout, identity)
        return "run", {}
    diffs = [] if existing.get("format") == FORMAT else [f"format: store has {existing.get('format')!r}, expected {FORMAT!r}"]
    diffs += _mismatches(existing, identity)
    if diffs:
        if not overwrite:
            raise StoreMismatch(
                f"{out}: this store was made for another extraction ("
                + "; ".join(diffs)
                + "). Use another --out, delete it, or pass --overwrite to replace it"
            )
        StoreWriter.create(out, layout, identity)
        return "run", {}
    if existing.get("complete", False):
        return "done", {}
    _remove_partials(out)
    return "run", load_progress(out)


# -- the run -----------------------------------------------------------------------


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
    batches = iter_batches(table, tasks, batch_size=config.batch_size, encode=adapter.encode, on_error=config.on_error)
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


class _NullProgress:
    def __enter__(self) -> Any:
        return lambda n: None

    def __exit__(self, *exc: object) -> None:
        return None


class _RichProgress:
    def __init__(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("extract"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=False
        )
        self._total = total

    def __enter__(self) -> Any:
        self._p.__enter__()
        task = self._p.add_task("extract", total=self._total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        self._p.__exit__(*exc)


def _progress(show: bool, total: int) -> Any:
    return _RichProgress(total) if show else _NullProgress()


def _finalize(
    out: Path, writer: StoreWriter, config: ExtractConfig, table: SampleTable
) -> dict[str, Any]:
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
    writer.finalize(final)
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
        return _extract(config, str(model), dataset, out, adapter, family, overwrite, progress, dist)
    finally:
        dist.close()


def _extract(
    config: ExtractConfig,
    model: str,
    dataset: Path,
    out: Path,
    adapter: ModelAdapter | None,
    family: str | None,
    overwrite: bool,
    progress: bool,
    dist: DistContext,
) -> Path:
    from vlmscope.data.manifest import read_manifest

    df = read_manifest(dataset)
    if len(df) == 0:
        raise DatasetError(f"{dataset}: the manifest has no rows; nothing to extract")
    coords = label_coordinates(df, where=str(dataset / "manifest.parquet"))
    table = SampleTable(dataset, df["sample_id"].to_list(), df["image"].to_list(), df["prompt"].to_list())
    device = _resolve_device(config.device, dist.local_rank)
    if adapter is None:
        adapter = _load_adapter(config, model, family, device)
    _check_adapter(adapter, config)
    layers = config.resolve_layers(adapter.num_layers)
    grid = _probe_grid(adapter, table, config.on_error) if config.attention else None
    layout = _build_layout(config, coords, layers, adapter, grid)
    revision = adapter.revision or getattr(adapter.model.config, "_commit_hash", None) or ""
    model_dtype = str(next(adapter.model.parameters()).dtype).replace("torch.", "")
    identity: dict[str, Any] = _json_safe(
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
        }
    )

    lock = StoreLock(out / LOCK_NAME, store=out)
    verdict: dict[str, Any]
    if dist.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            status, records = _prepare_store(out, layout, identity, overwrite=overwrite)
            tasks = plan_shards(layout.n_samples, layout.shard_samples, records) if status == "run" else []
            verdict = {"status": status, "records": records, "tasks": tasks, "run_id": f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"}
        except BaseException as e:
            lock.release()
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
        _run_shards(
            config, adapter, table, writer, mine, verdict["records"], plog, show_progress=progress and dist.is_main
        )
        dist.barrier()
        if dist.is_main:
            _finalize(out, writer, config, table)
        dist.barrier()
        return out
    finally:
        if dist.is_main:
            attrs = read_store_attrs(out) if out.exists() else None
            lock.release(remove=bool(attrs and attrs.get("complete")))
