"""Tiny random checkpoints of every family, written offline.

Each family module registers a builder in ``vlmscope.models.registry.TINY``; a
builder takes ``(out_dir, seed)`` and writes into ``out_dir`` a complete
checkpoint (``config.json``, safetensors weights, tokenizer, the family's
real processor classes) that ``load_model(out_dir)`` loads through the Auto
classes. :func:`build_tiny` adds the ``vlmscope.json`` sidecar (which
records the family, so detection never guesses) and writes atomically, so
a killed build never leaves a directory that looks complete.

Same family and seed give the same weight bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlmscope.errors import ConfigError
from vlmscope.io.atomic import atomic_dir
from vlmscope.models.registry import TINY, TinyBuilder
from vlmscope.models.sidecar import SIDECAR, read_sidecar, write_sidecar
from vlmscope.models.tiny_parts import seeded

__all__ = [
    "TINY",
    "SIDECAR",
    "TinyBuilder",
    "build_tiny",
    "write_sidecar",
    "read_sidecar",
    "seeded",
    "tiny_families",
]


def tiny_families() -> list[str]:
    """Families with a tiny builder."""
    import vlmscope.models.families  # noqa: F401  (fills TINY)

    return TINY.names()


def build_tiny(family: str, out: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write a tiny random checkpoint of ``family`` to ``out`` (replaced atomically); returns ``out``."""
    import vlmscope.models.families  # noqa: F401  (fills TINY)

    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    builder = TINY.get(family)
    out = Path(out)
    with atomic_dir(out, kind="model") as tmp:
        builder(tmp, seed)
        sidecar = read_sidecar(tmp) or {}
        adapter_family = sidecar.pop("family", family)  # a variant (llava-mistral) names its adapter's family
        sidecar.pop("vlmscope_version", None)
        sidecar.update(builder="tiny", tiny=family, seed=seed)
        write_sidecar(tmp, adapter_family, **sidecar)
    return out
