"""Session-wide fixtures: tiny checkpoints and tiny synthetic datasets, built once.

Everything is built offline from vlmscope's own builders, so the suite never
touches the network and each expensive artifact is made once per session.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_checkpoint(family) -> dir`` of a tiny random checkpoint (seed 0), cached per session."""
    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("tiny-models")

    def get(family: str) -> Path:
        if family not in cache:
            from vlmscope.models.tiny import build_tiny

            cache[family] = Path(build_tiny(family, root / family, seed=0))
        return cache[family]

    return get


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_dataset(kind, n=16, variant=None) -> dir`` of a synthetic dataset (seed 0), cached."""
    cache: dict[tuple[str, int, str | None], Path] = {}
    root = tmp_path_factory.mktemp("tiny-datasets")

    def get(kind: str, n: int = 16, variant: str | None = None) -> Path:
        key = (kind, n, variant)
        if key not in cache:
            from vlmscope.data.generators import generate_dataset

            out = root / f"{kind}-{variant or 'default'}-{n}"
            generate_dataset(kind, out, n=n, seed=0, variant=variant)
            cache[key] = out
        return cache[key]

    return get
