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

from vlmscope.errors import ModelError, NotFound, VlmscopeError

__all__ = ["check_safetensors", "check_safetensors_dir"]

_MAX_HEADER = 100_000_000
"""The limit safetensors itself puts on the JSON header (bytes)."""

_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def _problem(path: Path) -> str | None:
    """What is wrong with the file at ``path`` (``None`` when it is a whole safetensors file)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{size} bytes, too short for a safetensors header (zero-length or truncated)"
            n = int.from_bytes(head, "little")
            if n > _MAX_HEADER or 8 + n > size:
                return f"header claims {n} bytes but the file has {size} (truncated or not safetensors)"
            raw = fh.read(n)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"header is not valid JSON ({e}); corrupt or not safetensors"
    if not isinstance(header, dict):
        return "header is not a JSON object; corrupt or not safetensors"
    data_len, end = size - 8 - n, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, stop) = info["dtype"], info["shape"], info["data_offsets"]
            want = math.prod(int(s) for s in shape) * _ITEMSIZE.get(dtype, 0)
            start, stop = int(start), int(stop)
        except (KeyError, TypeError, ValueError):
            return f"tensor {name!r} has a malformed header entry"
        if dtype in _ITEMSIZE and stop - start != want:
            return f"tensor {name!r}: {stop - start} bytes for {dtype} {list(shape)} (corrupt header)"
        if not 0 <= start <= stop:
            return f"tensor {name!r}: bad byte range {start}..{stop} (corrupt header)"
        if stop > data_len:
            return f"tensor {name!r} ends at byte {stop} of the data but the file holds {data_len} (truncated)"
        end = max(end, stop)
    if end != data_len:
        return f"data section is {data_len} bytes but the tensors cover {end} (truncated or trailing garbage)"
    return None


def check_safetensors(path: str | os.PathLike[str], error: type[VlmscopeError] = ModelError) -> None:
    """Raise ``error`` (one line naming ``path``) unless it is a structurally whole safetensors file."""
    p = Path(path)
    problem = _problem(p)
    if problem is not None:
        raise error(f"{p}: corrupt safetensors file: {problem}")


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
