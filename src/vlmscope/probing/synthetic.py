"""Synthetic activation stores with a planted, linearly decodable signal from one layer on.

For tests and benchmarks of the probes: layers before ``signal_from`` hold
label-free structure only (a shared low-rank component, noise, a large
offset and a few high-variance "outlier" features, as LLM residual streams
have), so a correct probe is at chance there and well above it from
``signal_from`` on.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["planted_dataset"]


def planted_dataset(
    *,
    n_samples: int = 200,
    n_layers: int = 6,
    dim: int = 32,
    n_classes: int = 4,
    signal_from: int = 3,
    snr: float = 1.0,
    rank: int = 8,
    outliers: int = 2,
    seed: int = 0,
    dtype: str = "float32",
    label: str = "relation",
    images_per_group: int = 1,
) -> xr.Dataset:
    """An in-memory store: ``hidden`` (sample, layer, dim) and a label coordinate.

    Class c adds ``snr`` times a fixed random unit direction (scaled to the
    noise level) to the features of layers >= ``signal_from``. With
    ``images_per_group > 1`` consecutive rows share an ``image`` coordinate
    (as several questions about one image do). Labels are balanced.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    names = np.array([f"class_{c}" for c in range(n_classes)], dtype=object)
    hidden = np.empty((n_samples, n_layers, dim), dtype=np.dtype(dtype))
    for layer in range(n_layers):
        lr = np.random.default_rng([seed, layer])
        z = lr.standard_normal((n_samples, rank)).astype(np.float32)
        basis = lr.standard_normal((rank, dim)).astype(np.float32) * 0.5
        scale = np.ones(dim, np.float32)
        offset = lr.standard_normal(dim).astype(np.float32) * 2.0
        if outliers:
            idx = lr.choice(dim, size=min(outliers, dim), replace=False)
            scale[idx] = 20.0
            offset[idx] *= 25.0
        x = offset + (z @ basis + lr.standard_normal((n_samples, dim)).astype(np.float32)) * scale
        if layer >= signal_from:
            directions = np.random.default_rng([seed, 7919]).standard_normal((n_classes, dim)).astype(np.float32)
            directions /= np.linalg.norm(directions, axis=1, keepdims=True)
            x += snr * 3.0 * directions[y]
        hidden[:, layer] = x.astype(hidden.dtype)
    ids = np.array([f"s{i:05d}" for i in range(n_samples)], dtype=object)
    images = np.array([f"images/{i // images_per_group:05d}.png" for i in range(n_samples)], dtype=object)
    return xr.Dataset(
        {"hidden": (("sample", "layer", "dim"), hidden)},
        coords={
            "sample": ids,
            "layer": np.arange(n_layers),
            label: ("sample", names[y]),
            "image": ("sample", images),
            "split": ("sample", np.where(np.arange(n_samples) % 5 == 0, "test", "train").astype(object)),
        },
        attrs={
            "model": "synthetic",
            "family": "synthetic",
            "dataset": "planted",
            "positions": ["last"],
            "dtype": dtype,
            "complete": True,
            "signal_from": signal_from,
        },
    )
