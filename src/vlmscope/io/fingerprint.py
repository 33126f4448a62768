"""Content fingerprints for datasets and checkpoints (recorded in artifacts)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["fingerprint_dir", "fingerprint_files"]


def fingerprint_files(root: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]) -> str:
    """SHA-256 over (relative path, bytes) of ``files`` in sorted order."""
    root = Path(root)
    h = hashlib.sha256()
    for rel in sorted(str(Path(f)) for f in files):
        h.update(rel.encode())
        h.update(b"\0")
        with open(root / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def fingerprint_dir(root: str | os.PathLike[str], *, exclude: Iterable[str] = ()) -> str:
    """Fingerprint every regular file under ``root`` except top-level names in ``exclude``."""
    root = Path(root)
    skip = set(exclude)
    files = [
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in skip
    ]
    return fingerprint_files(root, files)
