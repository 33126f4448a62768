"""The dataset directory contract every generator, importer and stage shares.

A dataset directory holds ``manifest.parquet`` (one row per sample),
``annotations.csv`` (the same rows for people and spreadsheets; see
:mod:`vlmscope.data.annotations`), ``images/`` and ``dataset.json`` (who
made it, with which params, and a content fingerprint that downstream
artifacts record as provenance).

Required columns: ``sample_id`` (unique str), ``image`` (path relative to the
directory), ``prompt``, ``answer``, ``split``. Task label columns (``relation``,
``color``, ``count``, ``query_type``, ...) and ``choices`` (list[str], for
multiple choice) are optional and become coordinates on activation stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl

from vlmscope import __version__
from vlmscope.data.annotations import ANNOTATIONS, write_annotations
from vlmscope.errors import DatasetError, NotFound
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.fingerprint import fingerprint_dir
from vlmscope.io.jsonfile import dump_json, read_json_object

__all__ = [
    "REQUIRED_COLUMNS",
    "SPLITS",
    "MANIFEST",
    "INFO",
    "DatasetInfo",
    "read_manifest",
    "write_dataset",
    "load_dataset_info",
    "resolve_image",
]

REQUIRED_COLUMNS: dict[str, type[pl.DataType]] = {
    "sample_id": pl.String,
    "image": pl.String,
    "prompt": pl.String,
    "answer": pl.String,
    "split": pl.String,
}
SPLITS: tuple[str, ...] = ("train", "valid", "test")
"""The only values ``split`` may take."""
MANIFEST = "manifest.parquet"
INFO = "dataset.json"


@dataclass(frozen=True)
class DatasetInfo:
    """What ``dataset.json`` records about a dataset directory."""

    generator: str
    """Generator or importer name (``spatial``, ``vrd``, ...)."""
    params: dict[str, Any]
    """The validated params the dataset was made with."""
    seed: int | None
    fingerprint: str
    """SHA-256 over every file but ``dataset.json`` (manifest, annotations, images): changes iff the content does."""
    n_samples: int
    vlmscope_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return dump_json(self.__dict__, default=str)


def _check_columns(df: pl.DataFrame, where: str) -> None:
    for col, dtype in REQUIRED_COLUMNS.items():
        if col not in df.columns:
            raise DatasetError(f"{where}: missing required column {col!r} (columns: {', '.join(df.columns)})")
        if df.schema[col] != dtype:
            raise DatasetError(f"{where}: column {col!r} must be {dtype}, got {df.schema[col]}")
    dup = df.filter(pl.col("sample_id").is_duplicated())["sample_id"]
    if len(dup):
        raise DatasetError(f"{where}: sample_id must be unique; duplicated: {dup.unique().head(5).to_list()}")
    for col in REQUIRED_COLUMNS:
        nulls = df.filter(pl.col(col).is_null())
        if len(nulls):
            first = nulls["sample_id"][0] if col != "sample_id" else None
            at = f" (first: sample {first!r})" if first is not None else ""
            raise DatasetError(f"{where}: column {col!r} is null in {len(nulls)} row(s){at}")
    bad_split = df.filter(~pl.col("split").is_in(list(SPLITS)))
    if len(bad_split):
        row = bad_split.row(0, named=True)
        raise DatasetError(
            f"{where}: split must be one of {', '.join(SPLITS)}; sample {row['sample_id']!r} has {row['split']!r}"
        )
    bad = df.filter(
        pl.col("image").str.starts_with("/") | pl.col("image").str.contains(r"(^|/)\.\.(/|$)")
    )
    if len(bad):
        row = bad.row(0, named=True)
        raise DatasetError(
            f"{where}: image paths must be relative and stay inside the dataset; "
            f"sample {row['sample_id']!r} has {row['image']!r}"
        )


def read_manifest(dataset_dir: str | os.PathLike[str]) -> pl.DataFrame:
    """Read and validate ``DIR/manifest.parquet``; errors name the file and field."""
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise NotFound(f"{path}: no manifest; is {dataset_dir} a vlmscope dataset directory?")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several kinds
        raise DatasetError(f"{path}: unreadable parquet: {e}") from e
    _check_columns(df, str(path))
    return df


def load_dataset_info(dataset_dir: str | os.PathLike[str]) -> DatasetInfo:
    """Read ``DIR/dataset.json``; a malformed file raises DatasetError naming it."""
    path = Path(dataset_dir) / INFO
    if not path.is_file():
        raise NotFound(f"{path}: no dataset.json; is {dataset_dir} a vlmscope dataset directory?")
    data = read_json_object(path, DatasetError)
    known = set(DatasetInfo.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    missing = sorted(k for k in ("generator", "params", "seed", "fingerprint", "n_samples") if k not in data)
    if unknown or missing:
        raise DatasetError(
            f"{path}: unexpected keys {unknown} / missing keys {missing}; "
            "regenerate the dataset with this vlmscope version"
        )
    return DatasetInfo(**data)


def resolve_image(dataset_dir: str | os.PathLike[str], rel: str) -> Path:
    """Absolute path of a manifest ``image`` entry, refusing escapes from the directory."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise DatasetError(f"image path {rel!r} must be relative and inside {dataset_dir}")
    return Path(dataset_dir) / p


def _check_images(df: pl.DataFrame, root: Path, where: str) -> None:
    """Every distinct ``image`` must be a file under ``root`` (links to files are fine)."""
    for rel in df["image"].unique(maintain_order=True).to_list():
        if not resolve_image(root, rel).is_file():
            sid = df.filter(pl.col("image") == rel)["sample_id"][0]
            raise DatasetError(f"{where}: sample {sid!r} names image {rel!r}, which the build did not write")


def write_dataset(
    out: str | os.PathLike[str],
    *,
    generator: str,
    params: Mapping[str, Any],
    seed: int | None,
    build: Callable[[Path], pl.DataFrame],
    extra: Mapping[str, Any] | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> DatasetInfo:
    """Build a dataset atomically: ``build(tmpdir)`` writes images and returns the manifest.

    The manifest is validated (columns, splits, every image present), written,
    fingerprinted and ``dataset.json`` is written last; only then is the
    directory renamed to ``out``. A crash at any point leaves ``out`` as it
    was before. ``out`` must be new, empty or a dataset, and must not overlap
    ``inputs`` (the files and folders an importer reads).
    """
    with atomic_dir(out, kind="dataset", inputs=inputs) as tmp:
        (tmp / "images").mkdir(exist_ok=True)
        df = build(tmp)
        _check_columns(df, f"{generator} manifest")
        _check_images(df, tmp, f"{generator} manifest")
        df.write_parquet(tmp / MANIFEST, compression="zstd", statistics=False)
        write_annotations(df, tmp / ANNOTATIONS)
        fp = fingerprint_dir(tmp, exclude={INFO})
        info = DatasetInfo(
            generator=generator,
            params=dict(params),
            seed=seed,
            fingerprint=fp,
            n_samples=len(df),
            extra=dict(extra or {}),
        )
        (tmp / INFO).write_text(info.to_json())
    return info
