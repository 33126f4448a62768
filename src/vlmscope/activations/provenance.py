"""Where a store's numbers came from: weights hash, dataset fingerprint, label coordinates."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from vlmscope.activations.store import Coordinate
from vlmscope.errors import DatasetError
from vlmscope.io.fingerprint import fingerprint_dir, fingerprint_files

__all__ = ["RESERVED_NAMES", "weights_hash", "dataset_fingerprint", "label_coordinates"]

RESERVED_NAMES = frozenset(
    {
        "sample",
        "layer",
        "block",
        "dim",
        "ffn",
        "stat",
        "patch",
        "patch_row",
        "patch_col",
        "mlp",
        "attention",
        "attention_entropy",
    }
)
"""Names a manifest column may not take (they are dimensions/variables of the store)."""

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def weights_hash(source: str | os.PathLike[str]) -> str:
    """SHA-256 over a local checkpoint's weight files and config; "" for a hub id.

    Hub checkpoints are identified by ``model`` plus ``model_revision``
    instead (hashing would need the download).
    """
    d = Path(source)
    if not d.is_dir():
        return ""
    files = [
        p.relative_to(d)
        for p in d.rglob("*")
        if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json")
    ]
    return fingerprint_files(d, files) if files else ""


def dataset_fingerprint(dataset_dir: str | os.PathLike[str]) -> str:
    """The fingerprint ``dataset.json`` records, else one computed over the directory."""
    from vlmscope.data.manifest import INFO, load_dataset_info

    d = Path(dataset_dir)
    if (d / INFO).is_file():
        return load_dataset_info(d).fingerprint
    return fingerprint_dir(d, exclude={INFO})


def _column_values(s: pl.Series) -> np.ndarray | None:
    """A manifest column as a 1-D numpy array for a coordinate; None for list/struct columns."""
    dt = s.dtype
    if dt.is_nested():
        return None
    if dt == pl.Boolean:
        if s.null_count():
            return np.array(["" if v is None else str(v) for v in s.to_list()], dtype=object)
        return s.to_numpy()
    if dt.is_integer() or dt.is_float():
        if s.null_count():
            return s.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        return s.to_numpy()
    # strings, categoricals, enums, dates ...: strings, null as ""
    return np.array(["" if v is None else str(v) for v in s.cast(pl.String).to_list()], dtype=object)


def label_coordinates(df: pl.DataFrame, *, where: str = "manifest") -> list[Coordinate]:
    """``sample`` (the sample ids) plus every non-list manifest column as a coordinate on ``sample``.

    Nulls become ``""`` in string columns and NaN in numeric ones; list
    columns (``choices``) are left out.
    """
    clash = sorted(RESERVED_NAMES & set(df.columns))
    clash += sorted(c for c in df.columns if c.startswith("hidden"))
    if clash:
        raise DatasetError(f"{where}: column(s) {clash} clash with activation store names; rename them")
    coords = [Coordinate("sample", ("sample",), np.array(df["sample_id"].to_list(), dtype=object))]
    for name in df.columns:
        if name == "sample_id":
            continue
        values = _column_values(df[name])
        if values is not None:
            coords.append(Coordinate(name, ("sample",), values))
    return coords
