"""Verify a checkpoint: safetensors headers match their files, indexes point at real tensors, JSON parses.

A safetensors file is an 8-byte little-endian header length, a JSON header
(``name -> {dtype, shape, data_offsets}``), then the data. The header is read
without loading any tensor, so a 7B checkpoint verifies in seconds; a
truncated file shows up as data offsets past its end.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlmscope.io.tensorfile import safetensors_problems as file_problems
from vlmscope.verify import Verdict

__all__ = ["verify_checkpoint", "safetensors_problems"]

def safetensors_problems(path: Path) -> tuple[list[str], set[str]]:
    """(problems naming ``path``, tensor names) of one safetensors file (:mod:`vlmscope.io.tensorfile`)."""
    problems, names = file_problems(path)
    return [f"{path}: {p}" for p in problems], names


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
