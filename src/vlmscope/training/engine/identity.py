"""Where a run keeps its checkpoints, and what must match for it to resume from them.

A run resumes only when its inputs fingerprint (config minus the knobs that
do not change the result, model, dataset contents) equals the one its
checkpoints were written under; every trainer derives both from here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from vlmscope.training.config import RESUME_NEUTRAL_FIELDS, config_fingerprint

__all__ = ["default_run_dir", "inputs_fingerprint"]


def default_run_dir(out: str | os.PathLike[str]) -> Path:
    """``<parent>/.<name>.run``: checkpoints live beside the output, outside what DVC deletes."""
    out = Path(out)
    return out.parent / f".{out.name}.run"


def _dataset_id(path: str | os.PathLike[str]) -> str:
    from vlmscope.data.manifest import INFO

    info = Path(path) / INFO
    if info.is_file():
        return str(json.loads(info.read_text()).get("fingerprint", path))
    return str(Path(path).resolve())


def inputs_fingerprint(
    cfg: BaseModel,
    model: str | os.PathLike[str],
    datasets: Sequence[str | os.PathLike[str]],
    *,
    revision: str | None = None,
) -> str:
    """Identity of (config minus resume-neutral knobs, model and its revision, dataset contents) for resume checks.

    The revision joins only when given, so runs without one keep the fingerprints they had.
    """
    parts: dict[str, object] = {
        "config": config_fingerprint(cfg, ignore=RESUME_NEUTRAL_FIELDS),
        "model": str(Path(model).resolve()) if Path(model).exists() else str(model),
        "datasets": [_dataset_id(d) for d in datasets],
    }
    if revision is not None:
        parts["revision"] = revision
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
