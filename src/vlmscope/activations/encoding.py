"""Storage dtypes of activation stores: casting, overflow refusal, non-finite counts.

Activations are computed in float32 (or the model's dtype) and stored as
``float32``, ``float16`` or ``bfloat16``. Zarr v3 has no bfloat16 data type,
so bfloat16 values are stored as their raw ``uint16`` bits with the array
attribute ``vlmscope_encoding = "bfloat16"``; :func:`decode_bfloat16` turns
them back into float32 (exactly: every bfloat16 is a float32).

Policy for values the storage dtype cannot hold (documented, tested):

- a value that is finite in float32 but becomes ``inf`` in the storage dtype
  (float16 saturates above 65504) is **refused** with :class:`StoreError`
  naming the variable, the count and the largest magnitude, and telling to use
  ``bfloat16`` (same exponent range as float32). A store never holds an
  ``inf`` that the model did not produce.
- values that are already NaN/inf in float32 (the model produced them) are
  stored as they are and **counted** per variable; the counts end up in the
  store's ``nonfinite`` attribute.
"""

from __future__ import annotations

from typing import Literal

import ml_dtypes
import numpy as np

from vlmscope.errors import ConfigError, StoreError

__all__ = [
    "STORAGE_DTYPES",
    "BF16_ENCODING",
    "BF16_NAN_BITS",
    "StorageDtype",
    "storage_numpy_dtype",
    "zarr_dtype",
    "fill_value",
    "to_storage",
    "to_zarr_bits",
    "count_nonfinite",
    "decode_bfloat16",
    "storage_dtype_of",
]

StorageDtype = Literal["float32", "float16", "bfloat16"]
STORAGE_DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")
BF16_ENCODING = "bfloat16"
"""Value of the ``vlmscope_encoding`` array attribute for bfloat16-as-uint16 arrays."""
BF16_NAN_BITS = 0x7FC0
"""The canonical bfloat16 quiet NaN, used as the fill value of bfloat16 arrays."""


def _check(dtype: str) -> None:
    if dtype not in STORAGE_DTYPES:
        raise ConfigError(f"storage dtype must be one of {', '.join(STORAGE_DTYPES)}, got {dtype!r}")


def storage_numpy_dtype(dtype: str) -> np.dtype:
    """The in-memory numpy dtype of values in storage precision (bfloat16 via ml_dtypes)."""
    _check(dtype)
    return np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)


def zarr_dtype(dtype: str) -> np.dtype:
    """The dtype the Zarr array is declared with (``uint16`` for bfloat16)."""
    _check(dtype)
    return np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)


def fill_value(dtype: str) -> float | int:
    """NaN in the Zarr dtype, so rows never written read back as NaN."""
    _check(dtype)
    return BF16_NAN_BITS if dtype == "bfloat16" else float("nan")


def storage_dtype_of(array: np.ndarray) -> str | None:
    """``float32``/``float16``/``bfloat16`` for floating arrays that can be stored as such, else None.

    float64 inputs map to float32 (activation stores never hold float64).
    """
    dt = array.dtype
    if dt == np.dtype(ml_dtypes.bfloat16):
        return "bfloat16"
    if dt == np.float16:
        return "float16"
    if dt in (np.float32, np.float64):
        return "float32"
    return None


def to_storage(values: np.ndarray, dtype: str, *, name: str, where: str = "") -> np.ndarray:
    """Cast ``values`` to storage precision, refusing overflow (see the module docstring).

    Returns an array of :func:`storage_numpy_dtype` (ml_dtypes bfloat16 for
    ``bfloat16``) with the same shape. ``name``/``where`` only feed the error.
    """
    target = storage_numpy_dtype(dtype)
    if values.dtype == target:
        return values
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype(target)
    src_finite = np.isfinite(values)
    overflow = src_finite & ~np.isfinite(out)
    n_over = int(overflow.sum())
    if n_over:
        biggest = float(np.abs(values[src_finite]).max())
        hint = (
            "use --dtype bfloat16 (float32's exponent range) or float32"
            if dtype == "float16"
            else "use --dtype float32"
        )
        raise StoreError(
            f"{where + ': ' if where else ''}{n_over} value(s) of {name!r} overflow {dtype} "
            f"(largest magnitude {biggest:.6g}; {dtype} max is {float(np.finfo(target).max):.6g}); "
            f"refusing to store inf. Delete the store and {hint}"
        )
    return out


def to_zarr_bits(values: np.ndarray, dtype: str) -> np.ndarray:
    """View storage-precision values as what the Zarr array holds (uint16 bits for bfloat16)."""
    if dtype == "bfloat16":
        return values.view(np.uint16)
    return values


def count_nonfinite(values: np.ndarray, valid_rows: np.ndarray | None = None) -> int:
    """Number of NaN/inf entries, over rows (axis 0) where ``valid_rows`` is True."""
    if valid_rows is not None:
        values = values[np.asarray(valid_rows, dtype=bool)]
    if values.size == 0:
        return 0
    if values.dtype == np.dtype(np.uint16):
        values = values.view(ml_dtypes.bfloat16)
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def decode_bfloat16(bits: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bits -> float32 (exact)."""
    bits = np.asarray(bits)
    return bits.view(ml_dtypes.bfloat16).astype(np.float32)
