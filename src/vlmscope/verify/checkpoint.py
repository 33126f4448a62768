"""Verify a checkpoint: safetensors headers match their files, indexes point at real tensors, JSON parses.

A safetensors file is an 8-byte little-endian header length, a JSON header
(``name -> {dtype, shape, data_offsets}``), then the data. The header is read
without loading any tensor, so a 7B checkpoint verifies in seconds; a
truncated file shows up as data offsets past its end.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from vlmscope.verify import Verdict

__all__ = ["verify_checkpoint", "safetensors_problems"]

_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
_MAX_HEADER = 100 << 20


def _header(path: Path) -> tuple[dict[str, Any], int]:
    """(header, first data byte); ValueError with the reason when it does not parse."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{size} bytes, too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _MAX_HEADER):
            raise ValueError(f"header length {n} exceeds the file ({size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, 8 + n


def safetensors_problems(path: Path) -> tuple[list[str], set[str]]:
    """(problems, tensor names) of one safetensors file: header parses, offsets tile the data exactly."""
    try:
        header, start = _header(path)
    except (OSError, ValueError) as e:
        return [f"{path}: not a readable safetensors file: {e}"], set()
    data = path.stat().st_size - start
    problems, names, end = [], set(), 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        names.add(name)
        try:
            b, e = (int(x) for x in t["data_offsets"])
            want = math.prod(int(d) for d in t["shape"]) * _ITEMSIZE[t["dtype"]]
        except (KeyError, TypeError, ValueError) as err:
            problems.append(f"{path}: tensor {name!r} has a malformed header entry ({type(err).__name__}: {err})")
            continue
        if e - b != want:
            problems.append(f"{path}: tensor {name!r} spans {e - b} bytes, its dtype and shape need {want}")
        end = max(end, e)
    if end > data:
        problems.append(f"{path}: truncated: the header needs {end} data bytes, the file holds {data}")
    elif end < data:
        problems.append(f"{path}: {data - end} bytes after the last tensor (the file was appended to or damaged)")
    return problems, names


def _index_problems(index: Path, names_of: dict[Path, set[str]]) -> list[str]:
    try:
        wm = json.loads(index.read_text())["weight_map"]
        if not isinstance(wm, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        return [f"{index}: malformed safetensors index ({type(e).__name__}: {e})"]
    problems = []
    for name, file in sorted(wm.items()):
        target = index.parent / str(file)
        if not target.is_file():
            problems.append(f"{index}: tensor {name!r} is in {file}, which does not exist")
        elif target in names_of and names_of[target] and name not in names_of[target]:
            problems.append(f"{index}: tensor {name!r} is not in {file}")
    return problems


def _json_problems(files: list[Path]) -> list[str]:
    """``config.json``, ``state.json`` and the like must parse (a half-written one breaks loading or resume)."""
    problems = []
    for f in files:
        try:
            json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(f"{f}: not valid JSON ({type(e).__name__}: {e})")
    return problems


def verify_checkpoint(path: Path) -> Verdict:
    """Every problem of the safetensors files (and their indexes and JSON files) at or under ``path``."""
    v = Verdict(path, "checkpoint")
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    names_of: dict[Path, set[str]] = {}
    for f in files:
        problems, names = safetensors_problems(f)
        v.problems.extend(problems)
        names_of[f] = names
    indexes = [] if path.is_file() else sorted(path.rglob("*.safetensors.index.json"))
    for index in indexes:
        v.problems.extend(_index_problems(index, names_of))
    others = [] if path.is_file() else sorted(set(path.rglob("*.json")) - set(indexes))
    v.problems.extend(_json_problems(others))
    n = sum(len(s) for s in names_of.values())
    v.summary = (
        f"checkpoint {path}: {len(files)} safetensors files, {n} tensors, {len(indexes)} index files, "
        f"{len(others)} JSON files"
    )
    return v
