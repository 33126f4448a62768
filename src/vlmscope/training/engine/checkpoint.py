"""Resumable training checkpoints: trainable weights, optimizer, scheduler, RNG, step.

A checkpoint is a directory ``<run_dir>/checkpoints/step-00000040/`` built
under a hidden temporary name and renamed into place only when complete
(:func:`vlmscope.io.atomic.atomic_dir`), so a run killed mid-write leaves at
most a hidden ``.step-*.tmp-*`` directory that :func:`last_checkpoint`
ignores and :func:`clean_partial` removes. Only the *trainable* tensors are
saved (by parameter name), which keeps projector-only checkpoints of a 7B
model at a few megabytes.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vlmscope.errors import TrainingError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json

__all__ = [
    "CheckpointInfo",
    "LoadedCheckpoint",
    "capture_rng",
    "checkpoint_name",
    "clean_partial",
    "last_checkpoint",
    "list_checkpoints",
    "load_best",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng",
    "save_best",
    "save_checkpoint",
]

STATE = "state.json"
TRAINABLE = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
RNG = "rng.pkl"
_NAME = re.compile(r"^step-(\d{8})$")


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


def capture_rng() -> dict[str, Any]:
    """This process's Python, NumPy and torch (CPU and CUDA) generator states."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


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
    """Write checkpoint ``step`` atomically; ``meta`` goes into ``state.json`` (written last)."""
    final = Path(root) / checkpoint_name(step)
    with atomic_dir(final, resumes=True) as tmp:
        save_file(_contiguous(trainable), str(tmp / TRAINABLE))
        torch.save(optimizer, tmp / OPTIMIZER)
        torch.save(scheduler, tmp / SCHEDULER)
        (tmp / RNG).write_bytes(pickle.dumps(rng))
        write_json(tmp / STATE, {"step": step, **meta}, default=str)
    return CheckpointInfo(final, step)


def load_checkpoint(info: CheckpointInfo) -> LoadedCheckpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file."""
    p = info.path
    try:
        meta = json.loads((p / STATE).read_text())
        trainable = load_file(str(p / TRAINABLE))
        optimizer = torch.load(p / OPTIMIZER, map_location="cpu", weights_only=True)
        scheduler = torch.load(p / SCHEDULER, map_location="cpu", weights_only=True)
        rng = pickle.loads((p / RNG).read_bytes())  # written by this module only
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
        raise TrainingError(
            f"{p}: unreadable checkpoint ({e}); delete it to resume from an older one or start afresh"
        ) from e
    return LoadedCheckpoint(int(meta["step"]), trainable, optimizer, scheduler, rng, meta)


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
    p = Path(root) / "best"
    if not (p / STATE).is_file():
        return None
    return load_file(str(p / TRAINABLE)), json.loads((p / STATE).read_text())
