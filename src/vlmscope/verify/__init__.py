"""`vlmscope verify PATH`: check an activation store, a dataset or a checkpoint end to end.

:func:`verify_path` decides what ``PATH`` is (a Zarr group: a store;
``manifest.parquet`` or ``dataset.json``: a dataset; ``*.safetensors``: a
checkpoint, a training run or a single file) and runs that kind's checker,
which reads everything and reports every problem it finds instead of
stopping at the first: a user deciding whether to trust weeks of GPU output
wants the whole list. Nothing is repaired or written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vlmscope.errors import NotFound

__all__ = ["Verdict", "verify_path", "detect_kind"]


@dataclass
class Verdict:
    """What a check found: ``problems`` (one line each; empty means OK) and an OK ``summary``."""

    path: Path
    kind: str
    """``store``, ``dataset`` or ``checkpoint``."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Things the user should know that are not damage (an old store without a file record)."""
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def detect_kind(path: Path) -> str:
    """``store``, ``dataset`` or ``checkpoint``; NotFound when ``path`` is none of them."""
    from vlmscope.data.manifest import INFO, MANIFEST

    if not path.exists():
        raise NotFound(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix == ".safetensors":
            return "checkpoint"
    elif (path / "zarr.json").is_file():
        return "store"
    elif (path / MANIFEST).is_file() or (path / INFO).is_file():
        return "dataset"
    elif any(path.rglob("*.safetensors")) or any(path.rglob("*.safetensors.index.json")):
        return "checkpoint"
    raise NotFound(
        f"{path}: not an activation store (zarr.json), a dataset (manifest.parquet) or a checkpoint "
        "(*.safetensors); nothing to verify"
    )


def verify_path(path: str | os.PathLike[str]) -> Verdict:
    """Check ``path`` end to end; see the module docstring."""
    path = Path(path)
    kind = detect_kind(path)
    if kind == "store":
        from vlmscope.verify.store import verify_store

        return verify_store(path)
    if kind == "dataset":
        from vlmscope.verify.dataset import verify_dataset

        return verify_dataset(path)
    from vlmscope.verify.checkpoint import verify_checkpoint

    return verify_checkpoint(path)
