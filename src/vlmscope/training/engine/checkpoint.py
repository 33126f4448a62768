"""Resumable training checkpoints: trainable weights, optimizer, scheduler, RNG, step.

A checkpoint is a directory ``<run_dir>/checkpoints/step-00000040/`` built
under a hidden temporary name and renamed into place only when complete
(:func:`vlmscope.io.atomic.atomic_dir`), so a run killed mid-write leaves at
most a hidden ``.step-*.tmp-*`` directory that :func:`last_checkpoint`
ignores and :func:`clean_partial` removes. Only the *trainable* tensors are
saved (by parameter name), which keeps projector-only checkpoints of a 7B
model at a few megabytes.

Nothing in a checkpoint is code: tensors are safetensors, the optimizer and
scheduler states are read with ``torch.load(weights_only=True)`` and the RNG
states are safetensors + JSON (:mod:`vlmscope.training.engine.rng`; an old
``rng.pkl`` is refused unread). ``state.json``, written last, records each
file's size and SHA-256, so a truncated or altered file is a
:class:`CorruptCheckpoint` naming it, and the loop falls back to the
previous checkpoint instead of training on garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vlmscope.errors import TrainingError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.io.tensorfile import check_safetensors
from vlmscope.training.engine.rng import capture_rng, load_rng, refuse_legacy_rng, restore_rng, save_rng

__all__ = [
    "CheckpointInfo",
    "CorruptCheckpoint",
    "LoadedCheckpoint",
    "capture_rng",
    "checkpoint_name",
    "clean_partial",
    "last_checkpoint",
    "list_checkpoints",
    "load_best",
    "load_checkpoint",
    "prune_checkpoints",
    "read_state",
    "record_files",
    "restore_rng",
    "save_best",
    "save_checkpoint",
    "verify_files",
]

STATE = "state.json"
TRAINABLE = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
FILES = "files"
"""Key of ``state.json`` mapping each file's relative path to ``{"size", "sha256"}``."""
_NAME = re.compile(r"^step-(\d{8})$")


class CorruptCheckpoint(TrainingError):
    """A checkpoint file is missing, truncated or altered since it was written (the file is named)."""


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    """Optimizer steps completed when the checkpoint was written."""


@dataclass
class LoadedCheckpoint:
    step: int
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: list[dict[str, Any]]
    """One RNG state per rank, in rank order."""
    meta: dict[str, Any]


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str | os.PathLike[str]) -> list[CheckpointInfo]:
    """Complete checkpoints under ``root``, oldest first (incomplete ones are invisible)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / STATE).is_file():
            out.append(CheckpointInfo(p, int(m.group(1))))
    return sorted(out, key=lambda c: c.step)


def last_checkpoint(root: str | os.PathLike[str]) -> CheckpointInfo | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def clean_partial(root: str | os.PathLike[str]) -> None:
    """Remove temporary directories left by a run killed while writing a checkpoint."""
    root = Path(root)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".step-") or p.name.startswith(".best"):
                shutil.rmtree(p, ignore_errors=True)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _digest(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return {"size": path.stat().st_size, "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}


def record_files(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under ``directory`` except ``state.json`` (relative path -> record)."""
    return {
        p.relative_to(directory).as_posix(): _digest(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).as_posix() != STATE
    }


def read_state(info: CheckpointInfo) -> dict[str, Any]:
    """``state.json`` of a checkpoint; unreadable is a :class:`CorruptCheckpoint`."""
    path = info.path / STATE
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
            raise ValueError("not an object with an integer 'step'")
    except (OSError, ValueError) as e:
        raise CorruptCheckpoint(f"{path}: unreadable checkpoint state ({e})") from e
    return meta


def verify_files(info: CheckpointInfo, meta: dict[str, Any]) -> None:
    """Every file ``state.json`` records is there with its size and SHA-256; the first that is not is named.

    A checkpoint written before files were recorded is not checked here (its
    safetensors headers still are, when it is loaded).
    """
    for rel, rec in (meta.get(FILES) or {}).items():
        path = info.path / rel
        if not path.is_file():
            raise CorruptCheckpoint(f"{path}: missing from checkpoint {info.path.name}")
        got = _digest(path)
        if got["size"] != rec.get("size"):
            raise CorruptCheckpoint(f"{path}: {got['size']} bytes, {rec.get('size')} when written (truncated?)")
        if got["sha256"] != rec.get("sha256"):
            raise CorruptCheckpoint(f"{path}: content changed since it was written (checksum mismatch)")


def save_checkpoint(
    root: str | os.PathLike[str],
    step: int,
    *,
    trainable: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    scheduler: dict[str, Any],
    rng: list[dict[str, Any]],
    meta: dict[str, Any],
) -> CheckpointInfo:
    """Write checkpoint ``step`` atomically; ``meta`` and the file records go into ``state.json`` (written last)."""
    final = Path(root) / checkpoint_name(step)
    with atomic_dir(final, resumes=True) as tmp:
        save_file(_contiguous(trainable), str(tmp / TRAINABLE))
        torch.save(optimizer, tmp / OPTIMIZER)
        torch.save(scheduler, tmp / SCHEDULER)
        save_rng(tmp, rng)
        write_json(tmp / STATE, {"step": step, **meta, FILES: record_files(tmp)}, default=str)
    return CheckpointInfo(final, step)


def load_checkpoint(info: CheckpointInfo) -> LoadedCheckpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file.

    Raises:
        CorruptCheckpoint: a file is missing, truncated, altered or unreadable.
        TrainingError: the checkpoint holds a legacy pickled ``rng.pkl`` (refused unread).
    """
    p = info.path
    meta = read_state(info)
    refuse_legacy_rng(p)  # an rng.pkl-only checkpoint: one line naming it, never unpickled
    verify_files(info, meta)
    check_safetensors(p / TRAINABLE, CorruptCheckpoint)
    try:
        trainable = load_file(str(p / TRAINABLE))
    except Exception as e:  # safetensors' own SafetensorError is no OSError
        raise CorruptCheckpoint(f"{p / TRAINABLE}: unreadable ({e})") from e
    states = []
    for name in (OPTIMIZER, SCHEDULER):
        try:
            states.append(torch.load(p / name, map_location="cpu", weights_only=True))
        except Exception as e:  # zip, unpickler and OS errors alike: the file is what is wrong
            raise CorruptCheckpoint(f"{p / name}: unreadable ({type(e).__name__}: {e})".splitlines()[0]) from e
    try:
        rng = load_rng(p)
    except TrainingError as e:
        raise CorruptCheckpoint(str(e)) from e
    return LoadedCheckpoint(int(meta["step"]), trainable, states[0], states[1], rng, meta)


def prune_checkpoints(root: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints."""
    for info in list_checkpoints(root)[:-keep]:
        shutil.rmtree(info.path, ignore_errors=True)


def save_best(root: str | os.PathLike[str], trainable: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Keep the best-so-far trainable tensors at ``<root>/best`` (atomic replace)."""
    with atomic_dir(Path(root) / "best") as tmp:
        save_file(_contiguous(trainable), str(tmp / TRAINABLE))
        write_json(tmp / STATE, meta)


def load_best(root: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The tensors :func:`save_best` kept; a corrupt file is a :class:`CorruptCheckpoint` naming it."""
    p = Path(root) / "best"
    if not (p / STATE).is_file():
        return None
    try:
        meta = json.loads((p / STATE).read_text())
    except (OSError, ValueError) as e:
        raise CorruptCheckpoint(f"{p / STATE}: unreadable ({e})") from e
    check_safetensors(p / TRAINABLE, CorruptCheckpoint)
    try:
        return load_file(str(p / TRAINABLE)), meta
    except Exception as e:  # safetensors' own SafetensorError is no OSError
        raise CorruptCheckpoint(f"{p / TRAINABLE}: unreadable ({e})") from e
