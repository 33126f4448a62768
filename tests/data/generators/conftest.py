"""Fixtures for the generator tests: small datasets rendered once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vlmscope.data.generators import generate_dataset


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``rendered(kind, n=40, variant=None, seed=0, **params) -> dataset dir``, cached per session."""
    cache: dict[tuple[Any, ...], Path] = {}
    root = tmp_path_factory.mktemp("generators")

    def get(kind: str, n: int = 40, variant: str | None = None, seed: int = 0, **params: Any) -> Path:
        key = (kind, n, variant, seed, tuple(sorted(params.items())))
        if key not in cache:
            out = root / f"{kind}-{variant or 'default'}-{n}-{seed}-{len(cache)}"
            generate_dataset(kind, out, n=n, seed=seed, variant=variant, **params)
            cache[key] = out
        return cache[key]

    return get
