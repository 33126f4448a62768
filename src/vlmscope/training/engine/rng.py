"""Each rank's RNG states saved as data, never as code: safetensors + JSON.

A checkpoint is a file a user may copy from elsewhere, and the old
``rng.pkl`` was read with ``pickle.loads``: a crafted one ran code at the
next resume. Here torch's CPU (and CUDA) generator states, which are uint8
tensors, go to ``rng.safetensors``; Python's ``random.getstate()`` and
NumPy's legacy ``get_state()``, which are integers plus one float, go to
``rng.json``. Both round-trip exactly, so a resumed run stays bit-identical.
Every state is validated on load by restoring it into a throwaway generator,
so a malformed file is an error naming it, not a traceback at resume.
A checkpoint that holds only the legacy ``rng.pkl`` is refused, unread.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vlmscope.errors import TrainingError
from vlmscope.io.jsonfile import write_json

__all__ = ["LEGACY_RNG", "RNG_JSON", "RNG_TENSORS", "capture_rng", "load_rng", "refuse_legacy_rng", "restore_rng", "save_rng"]

RNG_TENSORS = "rng.safetensors"
RNG_JSON = "rng.json"
LEGACY_RNG = "rng.pkl"
_FORMAT = 1


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


def save_rng(directory: str | os.PathLike[str], states: list[dict[str, Any]]) -> None:
    """Write one state per rank (rank order) as ``rng.safetensors`` + ``rng.json`` in ``directory``."""
    d = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    ranks = []
    for r, st in enumerate(states):
        version, internal, gauss_next = st["python"]
        name, key, pos, has_gauss, cached = st["numpy"]
        ranks.append({
            "python": {"version": int(version), "internal": [int(x) for x in internal], "gauss_next": gauss_next},
            "numpy": {"bit_generator": str(name), "key": [int(x) for x in key], "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "cuda_devices": len(st.get("cuda", ())),
        })  # fmt: skip
        tensors[f"rank{r}.torch"] = st["torch"].detach().cpu().contiguous().clone()
        for i, t in enumerate(st.get("cuda", ())):
            tensors[f"rank{r}.cuda{i}"] = t.detach().cpu().contiguous().clone()
    save_file(tensors, str(d / RNG_TENSORS))
    write_json(d / RNG_JSON, {"format": _FORMAT, "ranks": ranks})


def refuse_legacy_rng(directory: str | os.PathLike[str]) -> None:
    """Raise ``TrainingError`` naming ``rng.pkl`` when that is the only RNG state in ``directory`` (never reads it)."""
    d = Path(directory)
    if not (d / RNG_JSON).exists() and (d / LEGACY_RNG).exists():
        raise TrainingError(
            f"{d / LEGACY_RNG}: RNG state in pickle format (written by an older vlmscope) is never loaded, "
            "since a pickle can run code; resume is impossible from this checkpoint: pass --no-resume "
            f"(or delete {d.parent}) to start the run afresh"
        )


def _rank_state(r: int, entry: Any, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One rank's state in the shapes ``restore_rng`` takes; anything malformed raises ``ValueError``/``TypeError``."""
    py, npy = entry["python"], entry["numpy"]
    state: dict[str, Any] = {
        "python": (int(py["version"]), tuple(int(x) for x in py["internal"]),
                   None if py["gauss_next"] is None else float(py["gauss_next"])),
        "numpy": (str(npy["bit_generator"]), np.asarray([int(x) for x in npy["key"]], dtype=np.uint32),
                  int(npy["pos"]), int(npy["has_gauss"]), float(npy["cached_gaussian"])),
        "torch": tensors[f"rank{r}.torch"],
    }  # fmt: skip
    n_cuda = int(entry.get("cuda_devices", 0))
    if n_cuda:
        state["cuda"] = [tensors[f"rank{r}.cuda{i}"] for i in range(n_cuda)]
    # restore into throwaway generators: the same checks the real restore makes, made now
    random.Random().setstate(state["python"])
    np.random.RandomState().set_state(state["numpy"])
    for t in [state["torch"], *state.get("cuda", [])]:
        if t.dtype != torch.uint8 or t.dim() != 1:
            raise ValueError(f"tensor of rank {r} is {t.dtype} {tuple(t.shape)}, not a 1-d uint8 generator state")
    torch.Generator().set_state(state["torch"])
    return state


def load_rng(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-rank states :func:`save_rng` wrote; errors name the file and never unpickle anything.

    Raises:
        TrainingError: the checkpoint only has the legacy ``rng.pkl`` (refused unread),
            or ``rng.json`` / ``rng.safetensors`` is missing or malformed.
    """
    d = Path(directory)
    refuse_legacy_rng(d)
    try:
        doc = json.loads((d / RNG_JSON).read_text())
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or not isinstance(doc.get("ranks"), list):
            raise ValueError(f"not a format-{_FORMAT} RNG record")
    except (OSError, ValueError) as e:
        raise TrainingError(f"{d / RNG_JSON}: unreadable RNG state ({e})") from e
    try:
        tensors = load_file(str(d / RNG_TENSORS))
    except Exception as e:  # safetensors raises its own SafetensorError, not an OSError
        raise TrainingError(f"{d / RNG_TENSORS}: unreadable RNG state ({e})") from e
    states = []
    for r, entry in enumerate(doc["ranks"]):
        try:
            states.append(_rank_state(r, entry, tensors))
        except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as e:
            raise TrainingError(f"{d / RNG_JSON}: RNG state of rank {r} is malformed ({e!r})") from e
    return states
