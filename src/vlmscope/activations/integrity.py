"""What each file of an activation store holds, recorded when written and checked on open and read.

A store is a handful of shard files; losing or damaging one must be an
error that names it, never NaN rows or garbage values. Three layers:

- **Record** (:func:`describe_shard`, :func:`describe_arrays`): right after a
  shard is written, each of its files' byte size and CRC-32 go into the
  writer's progress record; :meth:`StoreWriter.finalize` puts the union in
  the group attribute ``files`` (``{"hidden/c/0/0/0": {"size", "crc32"}}``)
  before it sets ``complete``. A shard whose rows are all fill value is
  written by zarr as no file at all, so it has no entry, and no file is
  expected for it.
- **Open** (:func:`check_files`, cheap: one ``stat`` per file): every
  recorded file exists with its recorded size; a truncated, zero-length or
  deleted shard raises :class:`StoreError` naming the store and the file.
- **Read**: every inner chunk carries a CRC-32C (zarr's ``crc32c`` codec, see
  :func:`vlmscope.activations.layout.compressors`) and the shard index
  another, so zarr itself refuses changed bytes; :class:`GuardedArray` turns
  that refusal (or any other read failure) into a :class:`StoreError` naming
  the store and the shard file(s) that fail. Whole-file CRC-32s are checked
  by :func:`file_problems` with ``checksums=True`` (``vlmscope verify``).

Stores written before the record existed have no ``files`` attribute: they
open as before, with a warning that they cannot be checked.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from xarray.core import indexing

from vlmscope.errors import ShardCorrupt, StoreError

__all__ = [
    "FILES_ATTR",
    "describe_file",
    "describe_shard",
    "describe_arrays",
    "file_problems",
    "check_files",
    "unreadable_shards",
    "GuardedArray",
]

FILES_ATTR = "files"
"""Group attribute: ``{relative path: {"size": bytes, "crc32": "8 hex digits"}}`` of every data file."""

_BLOCK = 8 << 20
_SHARD_RE = re.compile(r"^(?P<var>[^/]+)/c/(?P<shard>\d+)(/|$)")


def describe_file(path: Path) -> dict[str, Any]:
    """``{"size", "crc32"}`` of one file (CRC-32 of the whole file, read in 8 MiB blocks)."""
    crc = 0
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return {"size": size, "crc32": f"{crc:08x}"}


def _describe_under(store: Path, where: Path) -> dict[str, dict[str, Any]]:
    """``where`` itself when it is a file (the chunk of a 1-D array), else every file below it."""
    files = [where] if where.is_file() else sorted(where.rglob("*")) if where.is_dir() else []
    return {
        p.relative_to(store).as_posix(): describe_file(p)
        for p in files
        if p.is_file() and not p.name.startswith(".")
    }


def describe_shard(store: Path, names: Iterable[str], shard: int) -> dict[str, dict[str, Any]]:
    """The files of shard ``shard`` of variables ``names`` (shards split samples only: ``<var>/c/<shard>/...``)."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        out.update(_describe_under(store, store / name / "c" / str(shard)))
    return out


def describe_arrays(store: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Every chunk file of arrays ``names`` (the small coordinate arrays, written once at creation)."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        out.update(_describe_under(store, store / name / "c"))
    return out


def _what(rel: str) -> str:
    m = _SHARD_RE.match(rel)
    if m is None:
        return f"file {rel}"
    return f"shard {m['shard']} of {m['var']!r} ({rel})"


def file_problems(store: Path, attrs: Mapping[str, Any], *, checksums: bool) -> list[str]:
    """One line per recorded file that is missing, has another size or (``checksums``) another CRC-32."""
    problems = []
    for rel, want in sorted(dict(attrs.get(FILES_ATTR) or {}).items()):
        p = store / rel
        if not p.is_file():
            problems.append(f"{store}: {_what(rel)} is missing (recorded {want['size']} bytes)")
            continue
        size = p.stat().st_size
        if size != want["size"]:
            kind = "empty" if size == 0 else "truncated" if size < want["size"] else "too long"
            problems.append(f"{store}: {_what(rel)} is {kind}: {size} bytes, recorded {want['size']}")
        elif checksums:
            got = describe_file(p)["crc32"]
            if got != want["crc32"]:
                problems.append(f"{store}: {_what(rel)} fails its checksum (crc32 {got}, recorded {want['crc32']})")
    return problems


_FIX = "the store is damaged: restore it (dvc pull / checkout) or delete it and rerun `vlmscope extract`"


def check_files(store: Path, attrs: Mapping[str, Any]) -> None:
    """On open: every recorded file present with its size (no reads); warn when nothing is recorded.

    Raises:
        ShardCorrupt: naming the store and each bad file.
    """
    if FILES_ATTR not in attrs:
        warnings.warn(
            f"{store}: written by an older vlmscope without a record of its shard files; missing or "
            "damaged shards cannot be detected (re-extract it to get the record)",
            UserWarning,
            stacklevel=3,
        )
        return
    problems = file_problems(store, attrs, checksums=False)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ShardCorrupt("; ".join(problems[:3]) + more + f"; {_FIX}")


def unreadable_shards(store: Path, name: str) -> list[str]:
    """Files of variable ``name`` whose shard zarr cannot decode, each with zarr's reason (reads every shard)."""
    import zarr

    arr = zarr.open_array(zarr.storage.LocalStore(store), path=name, mode="r")
    step = arr.shards[0] if arr.shards is not None else arr.chunks[0]
    bad = []
    for k, lo in enumerate(range(0, arr.shape[0], step)):
        try:
            np.asarray(arr[lo : lo + step])
        except Exception as e:  # noqa: BLE001 - zarr/numcodecs raise many kinds on damaged bytes
            files = sorted(_describe_under(store, store / name / "c" / str(k)))
            bad.append(f"shard {k} of {name!r} ({', '.join(files) or 'no file'}): {type(e).__name__}: {str(e).rstrip('.')}")
    return bad


class GuardedArray(indexing.ExplicitlyIndexedNDArrayMixin):
    """A lazy backend array whose reads raise :class:`ShardCorrupt` naming the store and the shard.

    Wraps the array xarray builds for one variable of an opened store;
    indexing stays lazy, and only a failing read pays for locating the bad
    shard(s) (:func:`unreadable_shards`).
    """

    def __init__(self, array: Any, store: Path, name: str) -> None:
        self.array = indexing.as_indexable(array)
        self.store = store
        self.name = name

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def _wrap(self, array: Any) -> GuardedArray:
        return type(self)(array, self.store, self.name)

    def transpose(self, order: Any) -> GuardedArray:
        return self._wrap(self.array.transpose(order))

    def _oindex_get(self, key: Any) -> GuardedArray:
        return self._wrap(self.array.oindex[key])

    def _vindex_get(self, key: Any) -> GuardedArray:
        return self._wrap(self.array.vindex[key])

    def __getitem__(self, key: Any) -> GuardedArray:
        return self._wrap(self.array[key])

    def _fail(self, e: Exception) -> ShardCorrupt:
        try:
            bad = unreadable_shards(self.store, self.name)
        except Exception:  # noqa: BLE001 - the original error is what matters then
            bad = []
        where = "; ".join(bad[:3]) if bad else f"variable {self.name!r}: {type(e).__name__}: {e}"
        return ShardCorrupt(f"{self.store}: cannot read {where}; {_FIX}")

    def get_duck_array(self) -> Any:
        try:
            return self.array.get_duck_array()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - zarr/numcodecs raise many kinds on damaged bytes
            raise self._fail(e) from e

    async def async_get_duck_array(self) -> Any:
        try:
            return await self.array.async_get_duck_array()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001
            raise self._fail(e) from e

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.array!r}, store={str(self.store)!r}, name={self.name!r})"
