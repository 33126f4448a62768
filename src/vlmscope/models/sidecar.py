"""``vlmscope.json``: the sidecar that names a checkpoint's family, so detection never guesses.

Written by every vlmscope builder and by ``ImageTextAdapter.save_pretrained``;
read by family detection. Its own module so that adapters, tiny builders and
loading can all use it without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vlmscope import __version__
from vlmscope.errors import ConfigError
from vlmscope.io.jsonfile import read_json_object, write_json

__all__ = ["SIDECAR", "read_sidecar", "write_sidecar"]

SIDECAR = "vlmscope.json"


def write_sidecar(out: str | os.PathLike[str], family: str, **extra: Any) -> None:
    """Write ``vlmscope.json``: ``{"family": ..., "vlmscope_version": ..., **extra}``."""
    payload = {"family": family, "vlmscope_version": __version__, **extra}
    write_json(Path(out) / SIDECAR, payload)


def read_sidecar(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The parsed ``vlmscope.json`` of a local checkpoint directory, or None."""
    p = Path(directory) / SIDECAR
    if not p.is_file():
        return None
    return read_json_object(p, ConfigError, hint="; delete it or rebuild the checkpoint")
