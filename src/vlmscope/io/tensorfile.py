"""Check a safetensors file's structure before anything reads it as weights.

Why: safetensors and transformers report a truncated or garbled file as a
``SafetensorError`` / ``OSError`` deep in a traceback that never names the
file (or, for ``safe_open``, only when a tensor is first read). A
safetensors file is ``u64 little-endian header length`` + JSON header +
data, and the header says exactly where every tensor lies, so a few reads
and no tensor data tell whether the file is whole: the header parses, every
tensor's byte range matches its dtype and shape, and the data section ends
exactly where the file does. This catches truncation, zero-length files and
a corrupt header; a flipped bit inside tensor data needs a checksum (the
training checkpoints record one, see ``training.engine.checkpoint``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from vlmscope.errors import ModelError, NotFound, VlmscopeError

__all__ = ["check_safetensors", "check_safetensors_dir", "safetensors_problems"]

_MAX_HEADER = 100_000_000
"""The limit safetensors itself puts on the JSON header (bytes)."""

_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def _header(path: Path) -> tuple[dict[str, Any], int]:
    """(header, data section length); ValueError with the reason when it does not parse."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{size} bytes, too short for a safetensors header (zero-length or truncated)")
        n = int.from_bytes(head, "little")
        if n > min(size - 8, _MAX_HEADER):
            raise ValueError(f"header length {n} exceeds the file ({size} bytes; truncated or not safetensors)")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"header is not JSON ({e}); corrupt or not safetensors") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object; corrupt or not safetensors")
    return header, size - 8 - n


def safetensors_problems(path: str | os.PathLike[str]) -> tuple[list[str], set[str]]:
    """(problems, tensor names) of one file: the header parses and its byte ranges tile the data exactly.

    Problems do not repeat the path; callers prefix it. No tensor data is read.
    """
    try:
        header, data = _header(Path(path))
    except OSError as e:
        return [f"unreadable ({e.strerror or e})"], set()
    except ValueError as e:
        return [f"not a readable safetensors file: {e}"], set()
    problems: list[str] = []
    names: set[str] = set()
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        names.add(name)
        try:
            start, stop = (int(x) for x in info["data_offsets"])
            numel, itemsize = math.prod(int(d) for d in info["shape"]), _ITEMSIZE.get(str(info["dtype"]))
        except (KeyError, TypeError, ValueError) as err:
            problems.append(f"tensor {name!r} has a malformed header entry ({type(err).__name__}: {err})")
            continue
        if not 0 <= start <= stop:
            problems.append(f"tensor {name!r}: bad byte range {start}..{stop}")
        elif itemsize is not None and stop - start != numel * itemsize:  # sub-byte dtypes (F4, F6_*) unchecked
            problems.append(f"tensor {name!r} spans {stop - start} bytes, its dtype and shape need {numel * itemsize}")
        end = max(end, stop)
    if end > data:
        problems.append(f"truncated: the header needs {end} data bytes, the file holds {data}")
    elif end < data:
        problems.append(f"{data - end} bytes after the last tensor (the file was appended to or damaged)")
    return problems, names


def check_safetensors(path: str | os.PathLike[str], error: type[VlmscopeError] = ModelError) -> None:
    """Raise ``error`` (one line naming ``path``) unless it is a structurally whole safetensors file."""
    problems, _ = safetensors_problems(path)
    if problems:
        raise error(f"{path}: corrupt safetensors file: {problems[0]}")


def check_safetensors_dir(directory: str | os.PathLike[str], error: type[VlmscopeError] = ModelError) -> None:
    """Every weight file of a checkpoint directory is whole: the shards its index lists, and every ``*.safetensors``.

    A shard the index (``*.safetensors.index.json``) lists but that is missing
    is a :class:`~vlmscope.errors.NotFound` naming it; an unreadable index is left to the loader, which
    names it already.
    """
    d = Path(directory)
    files = set(d.glob("*.safetensors"))
    for index in d.glob("*.safetensors.index.json"):
        try:
            listed = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        for name in sorted(str(x) for x in listed):
            if not (d / name).is_file():
                raise NotFound(f"{d / name}: safetensors shard listed in {index.name} is missing")
            files.add(d / name)
    for f in sorted(files):
        check_safetensors(f, error)
