"""Check an opened activation store: complete, and holding the variable a reader needs.

Every analysis (lens, FFN, probes, output-layer training) starts the same
way: open the store lazily (:func:`vlmscope.activations.store.open_store`),
then make sure the variable it needs is there with the dimensions it needs.
Doing the checks here gives one error that names the store and the variable
and says how to get it. (Opening itself lives with the store format in
``activations``, which sits above ``io`` in the package graph.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmscope.errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["require_complete", "require_variable"]


def require_complete(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` itself, unless its ``complete`` attribute is false (an interrupted or running extraction)."""
    if ds.attrs.get("complete") is False:
        raise StoreError(
            "the activation store is incomplete (complete=false): its extraction was interrupted "
            "or is still running; rerun `vlmscope extract` to finish it"
        )
    return ds


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
