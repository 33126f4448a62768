"""The I/O edge of probing: labels from store coordinates, features one layer chunk at a time.

A store is opened lazily (:func:`vlmscope.activations.store.open_store`) and features are
read as (Lc, N, F) float32 slabs of a few layers, so a probe run never holds
more than a chunk (plus the one being prefetched) of a store that may be many
times larger than RAM. Variables are any ``(sample, layer, ...)`` array;
trailing dimensions (``stat x patch`` of attention maps) are flattened.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from vlmscope.errors import ConfigError, StoreError
from vlmscope.io.store import require_variable

__all__ = ["ProbeData", "chunk_layers_for", "iter_layer_chunks", "label_classes", "probe_data"]

_MISSING = ("", "nan", "None")


@dataclass(frozen=True)
class ProbeData:
    """What a probing run reads: labels of the kept rows and a lazy handle on the features."""

    values: xr.DataArray
    """The variable, lazily indexed: (sample, layer, ...)."""
    rows: np.ndarray
    """(N,) positions in the store's ``sample`` axis of the rows with a label."""
    sample_ids: np.ndarray
    """(N,) sample ids of those rows."""
    y: np.ndarray
    """(N,) class index of each row."""
    classes: list[str]
    """Class names, index order."""
    groups: np.ndarray | None
    """(N,) image path of each row (rows sharing an image share a control label), or None."""
    layers: np.ndarray
    """Layer coordinate values to probe."""
    layer_positions: np.ndarray
    """Their positions along the ``layer`` axis."""
    feature_shape: tuple[int, ...]
    feature_dims: tuple[str, ...]
    n_dropped: int
    """Rows left out because their label is missing."""
    attrs: dict[str, Any]
    """The store's attributes (provenance)."""

    @property
    def n_features(self) -> int:
        return int(np.prod(self.feature_shape)) if self.feature_shape else 1


def _label_strings(values: np.ndarray) -> np.ndarray:
    """Label values as strings; integer-valued floats print as ints (NaN-filled int columns)."""
    if values.dtype.kind == "f":
        out = []
        for v in values.tolist():
            if math.isnan(v):
                out.append("")
            elif float(v).is_integer():
                out.append(str(int(v)))
            else:
                out.append(repr(float(v)))
        return np.asarray(out, dtype=object)
    if values.dtype.kind == "b":
        return np.asarray([str(bool(v)) for v in values.tolist()], dtype=object)
    return np.asarray(["" if v is None else str(v) for v in values.tolist()], dtype=object)


def label_classes(values: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(kept row mask, class names, class index per kept row) of a raw label coordinate.

    Missing labels ("" / NaN / None) are dropped. Numeric labels sort numerically.
    """
    strings = _label_strings(np.asarray(values))
    keep = np.array([s not in _MISSING for s in strings.tolist()], dtype=bool)
    kept = strings[keep]
    uniq = sorted(set(kept.tolist()))
    try:
        uniq = sorted(uniq, key=float)
    except ValueError:
        pass
    index = {c: i for i, c in enumerate(uniq)}
    y = np.array([index[s] for s in kept.tolist()], dtype=np.int64)
    return keep, uniq, y


def probe_data(ds: xr.Dataset, *, label: str, variable: str, layers: Sequence[int] | None) -> ProbeData:
    """Validate the store against a probing request and collect labels (no feature is read)."""
    da = require_variable(ds, variable, ("sample", "layer"), exact=False)
    label_coords = [str(n) for n, c in ds.coords.items() if c.dims == ("sample",) and n != "sample"]
    if label not in label_coords:
        raise StoreError(
            f"label column {label!r} is not a coordinate on 'sample' of the store; available: {', '.join(sorted(label_coords))}"
        )
    keep, classes, y = label_classes(ds[label].values)
    if len(classes) < 2:
        shown = repr(classes[0]) if classes else "none"
        raise ConfigError(
            f"label column {label!r} has a single class ({shown}) among its {int(keep.sum())} labelled samples; "
            "a probe needs at least two classes"
        )
    rows = np.flatnonzero(keep)
    sample_ids = np.asarray([str(s) for s in ds["sample"].values[rows].tolist()], dtype=object)
    groups = None
    if "image" in label_coords:
        groups = np.asarray([str(s) for s in ds["image"].values[rows].tolist()], dtype=object)
    stored = np.asarray(ds["layer"].values) if "layer" in ds.coords else np.arange(da.sizes["layer"])
    if layers is None:
        positions = np.arange(len(stored))
    else:
        lookup = {int(v): i for i, v in enumerate(stored.tolist())}
        missing = [lay for lay in layers if lay not in lookup]
        if missing:
            raise ConfigError(f"layer(s) {missing} are not in the store; stored layers: {stored.tolist()}")
        positions = np.array([lookup[lay] for lay in layers], dtype=np.int64)
    return ProbeData(
        values=da,
        rows=rows,
        sample_ids=sample_ids,
        y=y,
        classes=classes,
        groups=groups,
        layers=stored[positions],
        layer_positions=positions,
        feature_shape=tuple(int(s) for s in da.shape[2:]),
        feature_dims=tuple(str(d) for d in da.dims[2:]),
        n_dropped=int((~keep).sum()),
        attrs=dict(ds.attrs),
    )


def chunk_layers_for(n_rows: int, n_train: int, n_features: int, memory_mb: int) -> int:
    """Layers per chunk that keep the working set within ``memory_mb``.

    Per layer: the float32 slab read and the one prefetched (2 N F), the training
    copy and its centred copy (2 Ntr F), and the Gram, its Cholesky factor and the
    float64 Hessian it is factorised from (4 n^2, n = min(Ntr, F)).
    """
    n = min(n_train, n_features)
    per_layer = 4 * (2 * n_rows * n_features + 2 * n_train * n_features + 4 * n * n)
    return max(1, int(memory_mb * 2**20 // per_layer))


def _read_chunk(data: ProbeData, positions: np.ndarray, variable: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept-layer mask, (Lc', N, F) float32) for layer positions; all-NaN layers are dropped."""
    n_all = data.values.sizes["sample"]
    full_rows = len(data.rows) == n_all
    out = np.empty((len(positions), len(data.rows), data.n_features), dtype=np.float32)
    keep = np.ones(len(positions), dtype=bool)
    for j, pos in enumerate(positions.tolist()):
        # one integer layer index per read: zarr then decodes only that layer's inner chunk of
        # each shard (a list index makes the lazy indexer decode whole shards: the whole store)
        raw = np.asarray(data.values.isel(layer=int(pos)).values).reshape(n_all, -1)  # (N_all, F)
        out[j] = raw if full_rows else raw[data.rows]
        del raw
        finite = np.isfinite(out[j])
        if finite.all():
            continue
        bad_rows = ~finite.all(1)
        if bad_rows.all() and not finite.any():
            keep[j] = False  # e.g. attention/mlp at layer 0 (the embedding output has no block)
            continue
        first = str(data.sample_ids[np.flatnonzero(bad_rows)[0]])
        layer = data.layers[np.flatnonzero(data.layer_positions == positions[j])[0]]
        raise StoreError(
            f"variable {variable!r} at layer {layer} has NaN/inf values in {int(bad_rows.sum())} sample(s) "
            f"(first: {first!r}); re-extract those samples or drop them from the dataset"
        )
    return keep, (out if keep.all() else out[keep])


def iter_layer_chunks(
    data: ProbeData, chunk: int, *, variable: str, prefetch: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (layer values, (Lc, N, F) float32) chunk by chunk, reading the next chunk meanwhile.

    All-NaN layers (attention/mlp at layer 0) are skipped.
    """
    groups = [data.layer_positions[i : i + chunk] for i in range(0, len(data.layer_positions), chunk)]
    values = [data.layers[i : i + chunk] for i in range(0, len(data.layers), chunk)]
    if not prefetch or len(groups) == 1:
        for pos, lays in zip(groups, values):
            keep, X = _read_chunk(data, pos, variable)
            if keep.any():
                yield lays[keep], X
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_read_chunk, data, groups[0], variable)
        for k in range(len(groups)):
            keep, X = future.result()
            if k + 1 < len(groups):
                future = pool.submit(_read_chunk, data, groups[k + 1], variable)
            if keep.any():
                yield values[k][keep], X
            del X
