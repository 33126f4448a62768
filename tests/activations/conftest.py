"""Fixtures for the activation store and extraction tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import xarray as xr


def make_activations(
    n: int = 20, layers: int = 4, dim: int = 8, *, seed: int = 0, dtype: type = np.float32
) -> xr.Dataset:
    """A random in-memory store: ``hidden`` (n, layers, dim) plus string/int/float/bool labels."""
    rng = np.random.default_rng(seed)
    colors = np.array(["red", "green", "blue", ""], dtype=object)[np.arange(n) % 4]
    return xr.Dataset(
        {
            "hidden": (("sample", "layer", "dim"), rng.standard_normal((n, layers, dim)).astype(dtype)),
            "mlp": (("sample", "layer", "ffn"), rng.standard_normal((n, layers, 2 * dim)).astype(dtype)),
        },
        coords={
            "sample": np.array([f"s{i:03d}" for i in range(n)], dtype=object),
            "layer": np.arange(layers),
            "color": ("sample", colors),
            "count": ("sample", np.arange(n) % 5),
            "score": ("sample", np.where(np.arange(n) % 3 == 0, np.nan, np.arange(n) / 10)),
            "flag": ("sample", np.arange(n) % 2 == 0),
        },
        attrs={"model": "random", "positions": ["last"], "layers": list(range(layers))},
    )


@pytest.fixture
def activations() -> Callable[..., xr.Dataset]:
    return make_activations


FAMILY = "composite"
"""Tiny family the extraction tests run on: the pipeline's embedded default (CLIP-style tower, Llama LM)."""


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    """(checkpoint dir, adapter loaded once with eager attention) for the extraction tests."""
    from vlmscope.models import LoadOptions, load_model

    path = tiny_checkpoint(FAMILY)
    adapter = load_model(path, options=LoadOptions(attn_implementation="eager"))
    return path, adapter


@pytest.fixture(scope="session")
def spatial12(tiny_dataset):
    """A 12-sample synthetic spatial dataset."""
    return tiny_dataset("spatial", 12)
