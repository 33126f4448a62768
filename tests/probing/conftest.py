"""Fixtures for the probing tests: planted-signal stores, in memory and on disk."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import xarray as xr

from vlmscope.probing.synthetic import planted_dataset

SIGNAL_FROM = 3
"""Layer from which the planted label becomes linearly decodable."""


@pytest.fixture(scope="session")
def planted() -> xr.Dataset:
    """240 samples x 6 layers x 40 features, 4 balanced classes, signal from layer 3."""
    return planted_dataset(n_samples=240, n_layers=6, dim=40, n_classes=4, signal_from=SIGNAL_FROM, snr=1.5, seed=1)


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory: pytest.TempPathFactory, planted: xr.Dataset) -> Path:
    """The planted dataset written as a real (float16, sharded) activation store."""
    from vlmscope.activations.store import write_activations

    path = tmp_path_factory.mktemp("stores") / "planted"
    write_activations(path, planted, dtype="float16", shard_samples=100)
    return path


@pytest.fixture
def make_planted() -> Callable[..., xr.Dataset]:
    return planted_dataset


@pytest.fixture(autouse=True)
def _single_blas_thread() -> Iterator[None]:
    """sklearn reference fits with one BLAS thread: on 2 shared cores, OpenBLAS threads and torch's
    spinning OpenMP workers slow scipy's lbfgs down ~10x (timing only; results are the same)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
