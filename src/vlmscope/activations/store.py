"""The activation store: a sharded Zarr v3 group that xarray opens lazily.

Layout (``N`` samples, ``L`` stored layers, ``S`` samples per shard)::

    STORE/zarr.json                group attrs: provenance, ``complete`` (set last)
    STORE/sample, layer, <labels>  small coordinate arrays (one chunk each)
    STORE/hidden/c/<k>/0/0         one file per shard k: samples [k*S, (k+1)*S)

Every data variable has ``sample`` as its first dimension. It is sharded
along samples only (a shard = ``S`` samples x all layers x all features, one
file) and chunked inside the shard as ``(S, 1, ...)`` when its second
dimension is ``layer``: reading one layer for all samples is then one
contiguous chunk per shard, and a store is a handful of files. Each shard is
written once, from an in-memory buffer of ``S`` samples (zarr's local store
writes files atomically: temp file + rename).

Each data file's size and CRC-32 are recorded in the group attribute
``files`` before ``complete`` is set, and every chunk carries a CRC-32C:
:func:`open_activations` refuses a missing, empty or truncated shard and
reads raise on changed bytes, naming the store and the shard (see
:mod:`vlmscope.activations.integrity`).

Floating variables are stored in one storage dtype (``float32``, ``float16``
or ``bfloat16``; see :mod:`vlmscope.activations.encoding` for the overflow
policy). :func:`open_activations` decodes bfloat16 lazily to float32.

Public entry points: :func:`open_activations`, :func:`write_activations` and,
for incremental writers, :class:`StoreLayout` + :class:`StoreWriter`.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from vlmscope import __version__
from vlmscope.activations.encoding import (
    BF16_ENCODING,
    count_nonfinite,
    decode_bfloat16,
    fill_value,
    storage_dtype_of,
    to_storage,
    to_zarr_bits,
    zarr_dtype,
)
from vlmscope.activations.integrity import FILES_ATTR, GuardedArray, check_files, describe_arrays, describe_shard
from vlmscope.activations.layout import (
    Coordinate,
    StoreLayout,
    VariableSpec,
    chunk_shapes,
    compressors,
    json_safe,
)
from vlmscope.errors import ConfigError, NotFound, StoreError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.store import require_complete

__all__ = [
    "FORMAT",
    "LOCK_NAME",
    "PROGRESS_DIR",
    "Coordinate",
    "VariableSpec",
    "StoreLayout",
    "StoreWriter",
    "open_activations",
    "open_store",
    "write_activations",
    "read_store_attrs",
    "store_files",
]

FORMAT = "vlmscope-activations/1"
"""Value of the ``format`` group attribute; bumps when the layout changes incompatibly."""
LOCK_NAME = ".vlmscope.lock"
"""Writer lock file inside the store (removed when the store completes)."""
PROGRESS_DIR = ".vlmscope-progress"
"""Durable per-shard progress records inside the store (removed when the store completes)."""


def _coord_array(values: np.ndarray) -> tuple[np.ndarray, Any]:
    """(values, zarr dtype) for a coordinate: strings as variable-length UTF-8."""
    values = np.asarray(values)
    if values.dtype.kind in ("U", "O", "T"):
        from zarr.dtype import VariableLengthUTF8

        return np.array([("" if v is None else str(v)) for v in values.tolist()], dtype=object), VariableLengthUTF8()
    return values, values.dtype


def _clear_dir(path: Path) -> None:
    """Remove everything in ``path`` except the lock file (held by this process)."""
    for child in path.iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


class StoreWriter:
    """Writes one store incrementally: create (or reopen), write rows/shards, finalize.

    Not thread-safe; one writer per process, and one process per store unless
    the processes write disjoint shards (ranks of a distributed run).
    """

    def __init__(self, path: Path, group: Any, layout: StoreLayout) -> None:
        self.path = path
        self._group = group
        self.layout = layout
        self._arrays: dict[str, Any] = {}

    # -- creation -----------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], layout: StoreLayout, attrs: Mapping[str, Any]) -> StoreWriter:
        """Create the empty store at ``path`` (contents other than the lock file are removed).

        The group is marked ``complete=false``, ``initialized=false`` until every
        array exists, so a crash during creation is detected and redone.
        """
        import zarr

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        _clear_dir(path)
        base = {
            **json_safe(dict(attrs)),
            "format": FORMAT,
            "vlmscope_version": __version__,
            "dtype": layout.dtype,
            "shard_samples": layout.shard_samples,
            "n_samples": layout.n_samples,
            "complete": False,
            "initialized": False,
        }
        group = zarr.create_group(zarr.storage.LocalStore(path), attributes=base)
        sample_coords = [c.name for c in layout.coords if c.dims == ("sample",) and c.name != "sample"]
        other_coords = [c.name for c in layout.coords if c.dims != ("sample",) and c.name not in c.dims]
        for c in layout.coords:
            values, dt = _coord_array(c.values)
            if values.shape[0] == 0:
                raise ConfigError(f"coordinate {c.name!r} is empty")
            arr = group.create_array(
                name=c.name,
                shape=values.shape,
                dtype=dt,
                chunks=values.shape,
                dimension_names=c.dims,
                compressors="auto",
                overwrite=True,
            )
            arr[...] = values
        shard = min(layout.shard_samples, max(layout.n_samples, 1))
        for v in layout.variables:
            chunks, shards = chunk_shapes(v, shard)
            dt = zarr_dtype(layout.dtype) if v.is_float else np.dtype(v.dtype)
            fv = fill_value(layout.dtype) if v.is_float else 0
            var_attrs: dict[str, Any] = {**json_safe(dict(v.attrs))}
            coords_here = [n for n in sample_coords] + [
                n for n in other_coords if set(layout.coord(n).dims) <= set(v.dims)
            ]
            if coords_here:
                var_attrs["coordinates"] = " ".join(coords_here)
            if v.is_float and layout.dtype == "bfloat16":
                var_attrs["vlmscope_encoding"] = BF16_ENCODING
            group.create_array(
                name=v.name,
                shape=(layout.n_samples, *v.shape),
                dtype=dt,
                chunks=chunks,
                shards=shards,
                fill_value=fv,
                dimension_names=v.dims,
                compressors=compressors(),
                attributes=var_attrs,
                overwrite=True,
            )
        group.attrs.update({"initialized": True})
        return cls(path, group, layout)

    @classmethod
    def reopen(cls, path: str | os.PathLike[str], layout: StoreLayout) -> StoreWriter:
        """Reopen an initialized store for more writes (resume); ``layout`` must be the one it was made with."""
        import zarr

        path = Path(path)
        group = zarr.open_group(zarr.storage.LocalStore(path), mode="r+")
        if not group.attrs.get("initialized", False):
            raise StoreError(f"{path}: store was never fully created; create it again")
        for v in layout.variables:
            if v.name not in group:
                raise StoreError(f"{path}: variable {v.name!r} missing from the store")
            shape = tuple(group[v.name].shape)
            if shape != (layout.n_samples, *v.shape):
                raise StoreError(
                    f"{path}: variable {v.name!r} has shape {shape}, expected {(layout.n_samples, *v.shape)}"
                )
        return cls(path, group, layout)

    def _array(self, name: str) -> Any:
        if name not in self._arrays:
            self._arrays[name] = self._group[name]
        return self._arrays[name]

    # -- writing ------------------------------------------------------------
    def write_rows(self, start: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write rows ``[start, start + n)`` of each variable; floats already in storage precision.

        Callers write whole shards (``start`` a multiple of ``shard_samples``,
        ``n`` the shard's size) so every shard file is written exactly once.
        """
        for name, values in arrays.items():
            spec = self.layout.variable(name)
            if spec.is_float:
                bits = to_zarr_bits(values, self.layout.dtype)
            else:
                bits = values.astype(np.dtype(spec.dtype), copy=False)
            self._array(name)[start : start + values.shape[0]] = bits

    def read_rows(self, start: int, stop: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Rows ``[start, stop)`` in storage precision (for resuming a partly written shard)."""
        from vlmscope.activations.encoding import storage_numpy_dtype

        out = {}
        for name in names:
            raw = np.asarray(self._array(name)[start:stop])
            spec = self.layout.variable(name)
            if spec.is_float and self.layout.dtype == "bfloat16":
                raw = raw.view(storage_numpy_dtype("bfloat16"))
            out[name] = raw
        return out

    def update_attrs(self, attrs: Mapping[str, Any]) -> None:
        self._group.attrs.update(json_safe(dict(attrs)))

    def finalize(self, attrs: Mapping[str, Any], files: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        """Write the final attributes and the file record, then ``complete=true`` in a separate, last write.

        ``files``: per shard, what :func:`~vlmscope.activations.integrity.describe_shard` recorded right
        after writing it; a shard without an entry is described now (from disk), and so are the
        coordinate arrays.
        """
        files = dict(files or {})
        record: dict[str, Any] = describe_arrays(self.path, [c.name for c in self.layout.coords])
        names = [v.name for v in self.layout.variables]
        for k in range(self.layout.n_shards):
            shard = files.get(k)
            record.update(describe_shard(self.path, names, k) if shard is None else shard)
        self.update_attrs({**{k: v for k, v in attrs.items() if k != "complete"}, FILES_ATTR: dict(sorted(record.items()))})
        self._group.attrs.update({"complete": True})


# -- reading ----------------------------------------------------------------


def read_store_attrs(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The group attributes of a store, or None when ``path`` holds no Zarr group yet."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"{meta}: unreadable store metadata ({e}); delete {path} and extract again") from e
    if data.get("node_type") != "group":
        raise StoreError(f"{path}: not a vlmscope activation store (root is a Zarr {data.get('node_type')})")
    return dict(data.get("attributes", {}))


def store_files(path: str | os.PathLike[str]) -> list[Path]:
    """Every regular file under a store (what the ``<= 100 files`` goal counts)."""
    return sorted(p for p in Path(path).rglob("*") if p.is_file())


def open_activations(
    path: str | os.PathLike[str],
    *,
    allow_incomplete: bool = False,
    include_skipped: bool = False,
    decode_bfloat16_to_float32: bool = True,
    chunks: Any = None,
) -> xr.Dataset:
    """Open an activation store lazily as an ``xarray.Dataset``.

    Nothing is read until values are asked for: ``ds.hidden.sel(layer=12).values``
    reads only layer 12's chunk of each shard. String coordinates come back
    as ``object`` arrays of ``str``.

    Args:
        allow_incomplete: open a store whose ``complete`` attribute is false
            (an extraction interrupted or still running); unwritten rows are NaN.
        include_skipped: keep samples the extraction skipped (``--on-error skip``,
            all-NaN rows; listed in ``attrs["skipped"]``). By default they are dropped.
        decode_bfloat16_to_float32: bfloat16 stores come back as float32
            (lazily, on read); with False the raw uint16 bits are returned.
        chunks: passed to ``xr.open_zarr`` (None: no dask, lazy indexing). With dask chunks a
            chunk failing its checksum surfaces as zarr's ``ValueError`` at compute time rather
            than as ``ShardCorrupt`` (the open-time size check still applies).

    Raises:
        NotFound: ``path`` does not exist or holds no store.
        StoreError: not a vlmscope store, or incomplete without ``allow_incomplete``.
        ShardCorrupt: (a StoreError) a complete store's shard file is missing, truncated or
            empty (checked on open), or fails its checksum (checked on read); names the file.
    """
    path = Path(path)
    if not path.exists():
        raise NotFound(f"{path}: no activation store here; create it with `vlmscope extract --out {path}`")
    attrs = read_store_attrs(path)
    if attrs is None:
        raise NotFound(f"{path}: no zarr.json; not an activation store (run `vlmscope extract --out {path}`)")
    if attrs.get("format") != FORMAT:
        raise StoreError(
            f"{path}: not a vlmscope activation store (format {attrs.get('format')!r}, expected {FORMAT!r})"
        )
    if not attrs.get("complete", False) and not allow_incomplete:
        raise StoreError(
            f"{path}: store is incomplete (complete=false): its extraction was interrupted or is still "
            "running. Rerun the same `vlmscope extract` command to resume it, or pass "
            "allow_incomplete=True to read what is there (unwritten rows are NaN)"
        )
    if attrs.get("complete", False):
        check_files(path, attrs)
    with warnings.catch_warnings():
        # an incomplete store carries the lock file and progress records beside the arrays
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy.*")
        try:
            ds = xr.open_zarr(path, consolidated=False, chunks=chunks, zarr_format=3)
        except Exception as e:  # zarr/xarray raise many kinds on a damaged store
            raise StoreError(f"{path}: cannot open the store ({type(e).__name__}: {e})") from e
    if chunks is None:
        ds = _guard(ds, path)
    ds = _decode(ds, decode_bfloat16_to_float32)
    skipped = attrs.get("skipped") or []
    if skipped and not include_skipped:
        ids = {s["sample_id"] for s in skipped}
        keep = np.array([s not in ids for s in ds["sample"].values.tolist()], dtype=bool)
        ds = ds.isel(sample=np.flatnonzero(keep))
    return ds


def open_store(source: xr.Dataset | str | os.PathLike[str]) -> xr.Dataset:
    """A complete store for a reader: a path opened lazily (:func:`open_activations`), or a Dataset checked.

    Raises:
        NotFound: no store at the path.
        StoreError: not a vlmscope store, or incomplete (``complete`` false).
    """
    if isinstance(source, xr.Dataset):
        return require_complete(source)
    return open_activations(Path(source))


def _guard(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Data variables whose reads raise ShardCorrupt naming the store and shard (see ``integrity``)."""
    for name in list(ds.data_vars):
        var = ds[name].variable
        ds[name] = xr.Variable(var.dims, GuardedArray(var._data, path, str(name)), var.attrs, encoding=var.encoding)
    return ds


def _decode(ds: xr.Dataset, bf16_to_f32: bool) -> xr.Dataset:
    from xarray.coding.common import lazy_elemwise_func

    # string coordinates: numpy StringDType -> object (what pandas/sklearn/polars expect)
    str_coords = {n: c for n, c in ds.coords.items() if c.dtype.kind in ("T", "U")}
    if str_coords:
        ds = ds.assign_coords({n: (c.dims, c.values.astype(object), c.attrs) for n, c in str_coords.items()})
    if bf16_to_f32:
        for name in list(ds.data_vars):
            var = ds[name].variable
            if var.attrs.get("vlmscope_encoding") != BF16_ENCODING:
                continue
            attrs = {k: v for k, v in var.attrs.items() if k != "vlmscope_encoding"}
            attrs["stored_as"] = "bfloat16"
            data = lazy_elemwise_func(var._data, decode_bfloat16, np.float32)
            ds[name] = xr.Variable(var.dims, data, attrs, encoding=var.encoding)
    return ds


# -- writing a whole in-memory Dataset ---------------------------------------


def _layout_from_dataset(
    ds: xr.Dataset, dtype: str | None, shard_samples: int
) -> tuple[StoreLayout, dict[str, np.ndarray]]:
    if "sample" not in ds.dims:
        raise ConfigError(f"write_activations: dataset has no 'sample' dimension (dims: {dict(ds.sizes)})")
    float_dtypes = set()
    variables, data = [], {}
    for name, da in ds.data_vars.items():
        if da.dims[0] != "sample":
            raise ConfigError(f"write_activations: variable {name!r} must have 'sample' first, has {da.dims}")
        values = np.asarray(da.values)
        sdt = storage_dtype_of(values)
        if sdt is not None:
            float_dtypes.add(sdt)
            kind = "float"
        elif values.dtype.kind in ("b", "i", "u"):
            kind = values.dtype.name
        else:
            raise ConfigError(f"write_activations: variable {name!r} has unsupported dtype {values.dtype}")
        attrs = {k: v for k, v in da.attrs.items() if k not in ("coordinates", "vlmscope_encoding", "stored_as")}
        variables.append(VariableSpec(str(name), tuple(map(str, da.dims)), tuple(values.shape[1:]), kind, attrs))
        data[str(name)] = values
    if dtype is None:
        if len(float_dtypes) > 1:
            raise ConfigError(
                f"write_activations: floating variables mix dtypes {sorted(float_dtypes)}; pass dtype= to pick one"
            )
        dtype = float_dtypes.pop() if float_dtypes else "float32"
    coords = []
    for name, c in ds.coords.items():
        if c.ndim != 1:
            raise ConfigError(f"write_activations: coordinate {name!r} must be 1-D, has dims {c.dims}")
        coords.append(Coordinate(str(name), (str(c.dims[0]),), np.asarray(c.values)))
    if "sample" not in ds.coords:
        coords.append(Coordinate("sample", ("sample",), np.array([str(i) for i in range(ds.sizes["sample"])])))
    return StoreLayout(tuple(coords), tuple(variables), dtype, shard_samples), data


def _nan_by_design(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Per non-``hidden`` variable on ``layer``: the layers that count (``block >= 0``; attention and
    MLP values do not exist at the embedding layer, whose ``block`` is -1)."""
    if "block" not in ds.coords or ds["block"].dims != ("layer",):
        return {}
    keep = np.asarray(ds["block"].values) >= 0
    return {
        str(n): keep
        for n, da in ds.data_vars.items()
        if not str(n).startswith("hidden") and len(da.dims) >= 2 and da.dims[1] == "layer"
    }


def write_activations(
    path: str | os.PathLike[str],
    ds: xr.Dataset,
    *,
    dtype: str | None = None,
    shard_samples: int = 1024,
) -> Path:
    """Write an in-memory Dataset as a complete store in the sharded layout (atomically).

    For tests, benchmarks and derived stores. Every data variable must have
    ``sample`` first; floating variables are stored in ``dtype`` (default:
    their own, float64 as float32), other attrs are kept, and ``complete`` is
    set last. ``path`` is replaced only once the new store is finished.

    Raises:
        StoreError: a value overflows the storage dtype (see
            :mod:`vlmscope.activations.encoding`).
        ConfigError: the Dataset does not fit the layout.
    """
    layout, data = _layout_from_dataset(ds, dtype, shard_samples)
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("complete", "initialized")}
    path = Path(path)
    with atomic_dir(path, kind="activations") as tmp:
        writer = StoreWriter.create(tmp, layout, attrs)
        valid = np.ones(layout.n_samples, dtype=bool)
        if attrs.get("skipped"):
            ids = {s["sample_id"] for s in attrs["skipped"]}
            valid = np.array([str(s) not in ids for s in layout.coord("sample").values.tolist()])
        nonfinite = {v.name: 0 for v in layout.variables if v.is_float}
        by_design = _nan_by_design(ds)
        files = {}
        for k in range(layout.n_shards):
            lo, hi = layout.shard_bounds(k)
            block = {}
            for v in layout.variables:
                values = data[v.name][lo:hi]
                if v.is_float:
                    values = to_storage(values, layout.dtype, name=v.name, where=f"{path} rows {lo}..{hi - 1}")
                    keep = by_design.get(v.name)
                    counted = values if keep is None else values[:, keep]
                    nonfinite[v.name] += count_nonfinite(counted, valid[lo:hi])
                block[v.name] = values
            writer.write_rows(lo, block)
            files[k] = describe_shard(tmp, block, k)
        writer.finalize({"nonfinite": nonfinite}, files)
    return path
