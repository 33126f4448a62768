"""``annotations.csv``: the manifest's rows as a spreadsheet, for people.

Every dataset directory (generated or imported) carries this CSV beside
``manifest.parquet`` so its labels can be read in a spreadsheet or with
``csv`` without parquet tooling, the way the spatial study's
``relationships.csv`` was. Parquet stays the format the code reads; nothing
in vlmscope reads this file back. List and struct columns (``choices``,
``points``) are written as JSON text, since CSV has no nesting; nulls are
empty cells. The file is part of the dataset's content, so the fingerprint
covers it and ``vlmscope verify`` notices if it is edited.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

__all__ = ["ANNOTATIONS", "annotations_frame", "write_annotations"]

ANNOTATIONS = "annotations.csv"


def annotations_frame(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with every nested column turned into JSON text (one string per cell, null stays null)."""
    nested = [name for name, dtype in df.schema.items() if dtype.is_nested()]
    if not nested:
        return df
    return df.with_columns(
        pl.Series(
            name,
            [None if v is None else json.dumps(v, ensure_ascii=False) for v in df[name].to_list()],
            dtype=pl.String,
        )
        for name in nested
    )


def write_annotations(df: pl.DataFrame, path: Path) -> None:
    """Write ``df`` (a manifest) to ``path`` as UTF-8 CSV with a header row."""
    annotations_frame(df).write_csv(path)
