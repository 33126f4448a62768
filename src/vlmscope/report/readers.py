"""Readers for the small result files the report shows (JSON, CSV, JSONL).

Each raises ``ReportInputError`` naming the file and what is wrong, so the
report can print the problem in place of the broken part and go on with the
rest of the page instead of failing the whole pipeline.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

from vlmscope.errors import VlmscopeError

__all__ = ["ReportInputError", "Scalar", "read_metrics", "read_csv", "read_jsonl_head", "flatten"]

Scalar = float | int | str | bool | None


class ReportInputError(VlmscopeError, ValueError):
    """A result file exists but cannot be used; shown on the page, never raised to the user."""


def flatten(obj: Any, prefix: str = "") -> dict[str, Scalar]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; lists are kept only when short and scalar (as text)."""
    out: dict[str, Scalar] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        if len(obj) <= 8 and all(isinstance(x, (int, float, str)) for x in obj):
            out[prefix] = ", ".join(str(x) for x in obj)
    elif obj is None or isinstance(obj, (bool, int, str)):
        out[prefix] = obj
    elif isinstance(obj, float):
        out[prefix] = None if math.isnan(obj) else obj
    return out


def read_metrics(path: Path) -> dict[str, Scalar]:
    """A ``metrics.json`` as a flat ``{key: value}`` (nested objects joined with ``/``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportInputError(f"{path}: not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return flatten(data)


def read_csv(path: Path, *, required: tuple[str, ...] = ()) -> pl.DataFrame:
    """A CSV table; ``required`` columns must be present (the message lists what is there)."""
    try:
        df = pl.read_csv(path, infer_schema_length=10_000)
    except Exception as e:  # polars raises several kinds
        raise ReportInputError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: missing column(s) {', '.join(missing)}; columns: {', '.join(df.columns)}")
    return df


def read_jsonl_head(path: Path, k: int) -> list[dict[str, Any]]:
    """The first ``k`` records of a JSON-lines file (reads no further than it needs); ``k < 0``: all."""
    out: list[dict[str, Any]] = []
    if k == 0:
        return out
    try:
        with path.open() as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    raise ReportInputError(f"{path}:{lineno}: not a JSON line ({e})") from e
                if isinstance(rec, dict):
                    out.append(rec)
                if 0 < k <= len(out):
                    break
    except OSError as e:
        raise ReportInputError(f"{path}: not readable ({e})") from e
    return out
