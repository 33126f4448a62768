"""Verify an activation store: metadata, every recorded file's size and CRC-32, every shard decodes.

The open-time check (:func:`vlmscope.activations.integrity.check_files`)
only stats files; here every byte is read: the whole-file CRC-32s recorded
at write time, then every shard of every variable decoded through zarr
(which checks each chunk's CRC-32C).
"""

from __future__ import annotations

from pathlib import Path

from vlmscope.activations.integrity import FILES_ATTR, file_problems, unreadable_shards
from vlmscope.activations.store import FORMAT, read_store_attrs
from vlmscope.errors import StoreError
from vlmscope.verify import Verdict

__all__ = ["verify_store"]


def _variables(path: Path) -> list[str]:
    import zarr

    group = zarr.open_group(zarr.storage.LocalStore(path), mode="r")
    dims_of = {name: tuple(arr.metadata.dimension_names or ()) for name, arr in group.arrays()}
    return sorted(n for n, dims in dims_of.items() if dims and dims[0] == "sample" and n != "sample")


def verify_store(path: Path) -> Verdict:
    """Every problem of the store at ``path`` (see the module docstring)."""
    v = Verdict(path, "store")
    try:
        attrs = read_store_attrs(path) or {}
    except StoreError as e:
        v.problems.append(str(e))
        return v
    if attrs.get("format") != FORMAT:
        v.problems.append(f"{path}: not a vlmscope activation store (format {attrs.get('format')!r}, expected {FORMAT!r})")
        return v
    if not attrs.get("complete", False):
        v.problems.append(f"{path}: store is incomplete (complete=false); rerun the same `vlmscope extract` to finish it")
    if FILES_ATTR in attrs:
        v.problems.extend(file_problems(path, attrs, checksums=True))
    elif attrs.get("complete", False):
        v.notes.append(f"{path}: no record of its files (written by an older vlmscope): only decoding was checked")
    try:
        names = _variables(path)
    except Exception as e:  # noqa: BLE001 - zarr raises many kinds on damaged metadata
        v.problems.append(f"{path}: cannot open the store's arrays ({type(e).__name__}: {e})")
        return v
    for name in names:
        v.problems.extend(f"{path}: cannot read {line}" for line in unreadable_shards(path, name))
    n_files = len(attrs.get(FILES_ATTR) or {})
    v.summary = (
        f"store {path}: {attrs.get('n_samples')} samples, variables {', '.join(names)}, "
        f"{n_files} recorded files checked"
    )
    return v
