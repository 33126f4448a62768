"""Evaluation fixtures: a tiny generative model loaded once, and tiny datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GENERATIVE_FAMILY = "llava"
"""Tiny family the runner tests use (LLaVA wrapper around a 2-layer Llama)."""


@pytest.fixture(scope="session")
def tiny_generative(tiny_checkpoint: Callable[[str], Path]) -> tuple[Path, Any]:
    """``(checkpoint dir, loaded adapter)`` of the tiny generative model, loaded once."""
    from vlmscope.models import load_model

    path = tiny_checkpoint(GENERATIVE_FAMILY)
    return path, load_model(path)


@pytest.fixture(scope="session")
def relations_dataset(tiny_dataset: Callable[..., Path]) -> Path:
    """Lettered MCQA rows with original/masked pairs (study B), a few source images."""
    return tiny_dataset("relations", n=2)
