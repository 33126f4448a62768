"""Tiny random checkpoints of every family, written offline.

Each family module registers a builder with ``@TINY.register("<family>")``; a
builder takes ``(out_dir, seed)`` and writes into ``out_dir`` a complete
checkpoint (``config.json``, safetensors weights, tokenizer, the family's
real processor classes) that ``load_model(out_dir)`` loads through the Auto
classes. :func:`build_tiny` adds the ``vlmscope.json`` sidecar (which
records the family, so detection never guesses) and writes atomically, so
a killed build never leaves a directory that looks complete.

Same family and seed give the same weight bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vlmscope import __version__
from vlmscope.errors import ConfigError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.registry import Registry

__all__ = ["TINY", "SIDECAR", "build_tiny", "write_sidecar", "read_sidecar", "seeded", "tiny_families"]

TinyBuilder = Callable[[Path, int], None]
TINY: Registry[TinyBuilder] = Registry("tiny model family")
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
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: not valid JSON ({e}); delete it or rebuild the checkpoint") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a JSON object, got {type(data).__name__}")
    return data


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator for deterministic init, restoring its state afterwards."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


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
    with atomic_dir(out) as tmp:
        builder(tmp, seed)
        sidecar = read_sidecar(tmp) or {}
        adapter_family = sidecar.pop("family", family)  # a variant (llava-mistral) names its adapter's family
        sidecar.pop("vlmscope_version", None)
        sidecar.update(builder="tiny", tiny=family, seed=seed)
        write_sidecar(tmp, adapter_family, **sidecar)
    return out
