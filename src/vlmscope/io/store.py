"""Open an activation store and check a variable in it, with one error for every reader.

Every analysis (lens, FFN, probes, output-layer training) starts the same
way: open the store lazily with xarray, then make sure the variable it
needs is there with the dimensions it needs. Doing it here gives one error
that names the store and the variable and says how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vlmscope.errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["open_store", "require_variable"]


def open_store(source: xr.Dataset | str | os.PathLike[str]) -> xr.Dataset:
    """A complete store: a path opened lazily (``open_activations``), or a Dataset checked for completeness.

    Raises:
        NotFound: no store at the path.
        StoreError: not a vlmscope store, or incomplete (``complete`` false).
    """
    import xarray as xr

    if isinstance(source, xr.Dataset):
        if source.attrs.get("complete") is False:
            raise StoreError(
                "the activation store is incomplete (complete=false): its extraction was interrupted "
                "or is still running; rerun `vlmscope extract` to finish it"
            )
        return source
    from vlmscope.activations.store import open_activations

    return open_activations(Path(source))


def _how_to_get(name: str) -> str:
    if name == "mlp":
        return "re-extract the store with `vlmscope extract --mlp` (params.yaml extract.mlp: true)"
    if name.startswith("hidden_"):
        return f"re-extract with `vlmscope extract --positions {name[len('hidden_'):]}`"
    if name == "hidden":
        return "re-extract the store with `vlmscope extract` (which always stores the last-token position)"
    return "pick one of the store's variables"


def require_variable(
    ds: xr.Dataset,
    name: str,
    dims: tuple[str, ...] | None = None,
    *,
    path: object = None,
    exact: bool = True,
) -> xr.DataArray:
    """``ds[name]``, checked to exist and to have ``dims`` (all of them, or a leading prefix with ``exact=False``).

    Raises:
        StoreError: ``"<store>: no variable 'x' in the store (has: a, b); <how to get it>"``,
            or the dims received vs expected.
    """
    where = str(path) if path is not None else "the in-memory store"
    if name not in ds.data_vars:
        have = ", ".join(sorted(map(str, ds.data_vars))) or "none"
        raise StoreError(f"{where}: no variable {name!r} in the store (has: {have}); {_how_to_get(name)}")
    da = ds[name]
    if dims is not None:
        got = tuple(str(d) for d in da.dims)
        if (got != tuple(dims)) if exact else (got[: len(dims)] != tuple(dims)):
            want = tuple(dims) if exact else (*dims, "...")
            raise StoreError(f"{where}: variable {name!r} has dims {got}, expected {want}")
    return da
