"""Check an opened activation store against the lens model, with errors that say how to fix.

Opening the store and checking a variable is :mod:`vlmscope.io.store`.

Store conventions relied on (``vlmscope.activations.capture``): layer 0 is
the embedding output, layer k >= 1 the residual stream after decoder block
k-1 *before* the final norm (also for the last layer), and ``mlp`` at layer
k is block k-1's down-projection input (NaN at layer 0, coordinate
``block`` = k - 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vlmscope.errors import StoreError, StoreMismatch

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from vlmscope.lens.weights import LensModel

__all__ = ["check_model", "label_values", "layer_blocks"]


def check_model(ds: xr.Dataset, model: LensModel, *, path: object, variable: str = "hidden") -> None:
    """Refuse a store that cannot come from ``model``: hidden size, layer range (both sides named)."""
    d_store = int(ds.sizes["dim"]) if "dim" in ds.sizes else None
    d_model = model.hidden_size
    if d_store is not None and d_store != d_model:
        raise StoreMismatch(
            f"{path}: hidden size {d_store} in the store ({variable!r}) vs {d_model} in the model {model.source} "
            f"(store extracted with model {ds.attrs.get('model', '?')!r}); pass the model the store was made with"
        )
    layers = np.asarray(ds["layer"].values)
    top = int(layers.max()) if layers.size else 0
    if top > model.num_layers:
        raise StoreMismatch(
            f"{path}: store has layer {top} but the model {model.source} has {model.num_layers} decoder blocks "
            f"(layers 0..{model.num_layers}); pass the model the store was made with"
        )
    n_store = ds.attrs.get("num_layers")
    if n_store is not None and int(n_store) != model.num_layers:
        raise StoreMismatch(
            f"{path}: store extracted from a {int(n_store)}-block LM vs {model.num_layers} blocks in {model.source}; "
            "pass the model the store was made with"
        )


def label_values(ds: xr.Dataset, column: str, *, path: object, option: str) -> list[str]:
    """The per-sample values of coordinate ``column`` as strings."""
    if column not in ds.coords or ds[column].dims != ("sample",):
        have = ", ".join(sorted(str(c) for c in ds.coords if ds[c].dims == ("sample",) and c != "sample"))
        raise StoreError(f"{path}: no label column {column!r} on 'sample' (has: {have}); pass {option} COLUMN")
    return [str(v) for v in ds[column].values.tolist()]


def layer_blocks(ds: xr.Dataset) -> np.ndarray:
    """(nL,) decoder block of each stored layer (``block`` coordinate, else ``layer - 1``)."""
    if "block" in ds.coords and ds["block"].dims == ("layer",):
        return np.asarray(ds["block"].values, dtype=np.int64)
    return np.asarray(ds["layer"].values, dtype=np.int64) - 1
