"""Everything before the first forward pass: device, model, layout, and the store's verdict.

:func:`prepare_store` decides what a run does with ``out``: create a new
store, resume an unfinished one of the same extraction, return at once for a
finished one, or refuse one made for another extraction
(:class:`StoreMismatch`, listing every differing attribute as "store has A,
this run B") or a directory that is not a store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmscope.activations.config import ExtractConfig, position_variable
from vlmscope.activations.layout import Coordinate, StoreLayout, VariableSpec
from vlmscope.activations.loader import SampleTable
from vlmscope.activations.progress import ShardRecord, load_progress
from vlmscope.activations.store import FORMAT, LOCK_NAME, PROGRESS_DIR, StoreWriter, read_store_attrs
from vlmscope.errors import ConfigError, DatasetError, ModelError, OutputRefused, StoreError, StoreMismatch

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.models.adapter import ModelAdapter

__all__ = [
    "IDENTITY_KEYS",
    "CODE_KEYS",
    "RESIDUAL_NOTE",
    "ENTROPY_NOTE",
    "resolve_device",
    "load_adapter",
    "check_adapter",
    "probe_grid",
    "build_layout",
    "mismatches",
    "prepare_store",
]

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
"""Attributes that must match for a run to resume (or accept) an existing store; plus the model and the code."""

CODE_KEYS: tuple[str, ...] = ("vlmscope_version", "code_hash")
"""The code that wrote the store: package version and a hash of every module extraction runs.

A persisted store (DVC ``persist: true``) made by other capture code is
rebuilt, never reused: a fix to capture must reach the numbers.
"""

RESIDUAL_NOTE = (
    "residual stream before the final norm; layer 0 = embedding output, layer k = output of decoder "
    "block k-1 (coordinate 'block'); attention/mlp at layer k come from block k-1 and are NaN at layer 0"
)
ENTROPY_NOTE = (
    "entropy in nats of the head-mean attention of the last prompt token over the image tokens, "
    "renormalised to sum to 1 over them (0 = one patch, log(P) = uniform)"
)


def resolve_device(device: str, local_rank: int) -> str:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


def load_adapter(
    config: ExtractConfig, model: str, family: str | None, device: str, revision: str | None = None
) -> ModelAdapter:
    from vlmscope.models import LoadOptions, load_model

    model_dtype = config.model_dtype
    if model_dtype == "auto":
        model_dtype = "float32" if device == "cpu" else "bfloat16"
    options = LoadOptions(
        dtype=model_dtype,
        device_map=None if device == "cpu" else device,
        attn_implementation="eager" if config.attention else None,
        revision=revision,
    )
    return load_model(model, family=family, options=options)  # type: ignore[return-value]


def check_adapter(adapter: Any, config: ExtractConfig) -> None:
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
        adapter.use_eager_attention()


def probe_grid(adapter: ModelAdapter, table: SampleTable, on_error: str) -> tuple[int, int]:
    """(rows, cols) of the image tokens, from the first readable sample."""
    for row in range(len(table.sample_ids)):
        try:
            image = table.image(row)
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


def build_layout(
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


def mismatches(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
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
    if any(existing.get(k) != wanted.get(k) for k in CODE_KEYS):
        def code(d: dict[str, Any]) -> str:
            return f"vlmscope {d.get('vlmscope_version')}, code sha256 {str(d.get('code_hash'))[:12]}"

        diffs.append(f"code: store was written by {code(existing)}, this run is {code(wanted)}")
    return diffs


def remove_partials(out: Path) -> None:
    """Temporary files of zarr writes a SIGKILL interrupted (zarr writes ``<name>.<uuid>.partial``)."""
    for p in out.rglob("*.partial"):
        p.unlink(missing_ok=True)


def prepare_store(
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
        ours = existing is not None or not any(p.name not in (LOCK_NAME, PROGRESS_DIR) for p in out.iterdir())
        if not ours:  # --overwrite never deletes what vlmscope did not write
            raise OutputRefused(
                f"--out {out} exists and is not an activation store; it would be deleted, so vlmscope refuses "
                "(--overwrite does not change this): choose another --out or remove it yourself"
            )
        StoreWriter.create(out, layout, identity)
        return "run", {}
    diffs = (
        []
        if existing.get("format") == FORMAT
        else [f"format: store has {existing.get('format')!r}, expected {FORMAT!r}"]
    )
    diffs += mismatches(existing, identity)
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
    remove_partials(out)
    return "run", load_progress(out)
