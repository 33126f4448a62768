"""``write_json``: every JSON artifact vlmscope writes, in one format.

One function so that metrics, summaries and configs are byte-for-byte
predictable (two-space indent, sorted keys unless the order is part of the
record, a trailing newline) and never half-written (atomic rename), whoever
writes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmscope.errors import VlmscopeError
from vlmscope.io.atomic import atomic_write_text

__all__ = ["dump_json", "read_json_object", "write_json"]


def dump_json(
    data: Any,
    *,
    sort_keys: bool = True,
    allow_nan: bool = True,
    default: Callable[[Any], Any] | None = None,
    indent: int = 2,
) -> str:
    """``data`` as the text ``write_json`` puts in a file (``indent`` spaces, trailing newline).

    Args:
        sort_keys: False keeps the dict's order (for records whose order is
            meant to be read, e.g. a probe run's ``metrics.json``).
        allow_nan: False refuses NaN/inf (``ValueError``): metrics read by
            ``dvc metrics`` must be plain numbers; map them to None first.
        default: called on objects json cannot encode (``str`` for paths).
    """
    return json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan, default=default) + "\n"


def write_json(path: str | os.PathLike[str], data: Any, **options: Any) -> Path:
    """Write ``data`` to ``path`` atomically as :func:`dump_json` text (same ``options``); return ``path``."""
    path = Path(path)
    atomic_write_text(path, dump_json(data, **options))
    return path


def read_json_object(path: str | os.PathLike[str], error: type[VlmscopeError], *, hint: str = "") -> dict[str, Any]:
    """The JSON object in ``path``; broken JSON or another type is one ``error`` line naming the file.

    ``hint`` is appended to the broken-JSON message (what the user can do about it).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e}){hint}") from e
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
