"""The shape of an activation store: coordinates, variables, storage dtype, shard size.

Pure descriptions (no I/O): :class:`StoreLayout` is what
:class:`vlmscope.activations.store.StoreWriter` creates on disk, and
:func:`chunk_shapes` is the one place that decides chunking and sharding:
shards along samples only (``S`` samples x all layers x all features, one
file each), inner chunks ``(S, 1, ...)`` when the second dimension is
``layer`` so one layer of all samples is one contiguous chunk per shard.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlmscope.activations.encoding import zarr_dtype
from vlmscope.errors import ConfigError

__all__ = ["Coordinate", "VariableSpec", "StoreLayout", "chunk_shapes", "compressors", "json_safe"]


@dataclass(frozen=True)
class Coordinate:
    """A coordinate array: ``dims`` is ``("sample",)`` for labels, ``("layer",)`` for ``layer`` ..."""

    name: str
    dims: tuple[str, ...]
    values: np.ndarray


@dataclass(frozen=True)
class VariableSpec:
    """A data variable: ``dims[0]`` is ``sample``; ``shape`` is the trailing (per-sample) shape.

    ``dtype`` ``"float"`` means the store's storage dtype; anything else
    (``"bool"``, ``"int64"``) is stored as that numpy dtype.
    """

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str = "float"
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.dims or self.dims[0] != "sample":
            raise ConfigError(f"variable {self.name!r}: first dimension must be 'sample', got {self.dims}")
        if len(self.dims) != len(self.shape) + 1:
            raise ConfigError(f"variable {self.name!r}: dims {self.dims} do not match shape (N, *{self.shape})")

    @property
    def is_float(self) -> bool:
        return self.dtype == "float"


@dataclass(frozen=True)
class StoreLayout:
    """Everything needed to create the empty store: coordinates, variables, dtype, shard size."""

    coords: tuple[Coordinate, ...]
    """Must include ``sample`` (dims ``("sample",)``), the sample ids."""
    variables: tuple[VariableSpec, ...]
    dtype: str
    """Storage dtype of floating variables: ``float32``, ``float16`` or ``bfloat16``."""
    shard_samples: int

    def __post_init__(self) -> None:
        names = [c.name for c in self.coords] + [v.name for v in self.variables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"store layout: names used twice: {dup}")
        if "sample" not in {c.name for c in self.coords}:
            raise ConfigError("store layout: a 'sample' coordinate (the sample ids) is required")
        if self.shard_samples < 1:
            raise ConfigError(f"shard_samples must be >= 1, got {self.shard_samples}")
        zarr_dtype(self.dtype)  # validates

    @property
    def n_samples(self) -> int:
        return len(self.coord("sample").values)

    @property
    def n_shards(self) -> int:
        return max(1, -(-self.n_samples // self.shard_samples))

    def coord(self, name: str) -> Coordinate:
        for c in self.coords:
            if c.name == name:
                return c
        raise KeyError(name)

    def shard_bounds(self, k: int) -> tuple[int, int]:
        """``[start, stop)`` sample rows of shard ``k``."""
        if not 0 <= k < self.n_shards:
            raise IndexError(f"shard {k} out of range 0..{self.n_shards - 1}")
        start = k * self.shard_samples
        return start, min(start + self.shard_samples, self.n_samples)

    def variable(self, name: str) -> VariableSpec:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(name)

    def empty_buffer(self, name: str, rows: int) -> np.ndarray:
        """A NaN-filled (rows, *shape) buffer in storage precision for variable ``name``."""
        from vlmscope.activations.encoding import storage_numpy_dtype

        spec = self.variable(name)
        if spec.is_float:
            buf = np.empty((rows, *spec.shape), dtype=storage_numpy_dtype(self.dtype))
            buf[...] = np.nan
            return buf
        return np.zeros((rows, *spec.shape), dtype=np.dtype(spec.dtype))


def chunk_shapes(spec: VariableSpec, shard: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(inner chunk shape, shard shape) of a variable."""
    shard_shape = (shard, *spec.shape)
    if len(spec.dims) >= 2 and spec.dims[1] == "layer":
        return (shard, 1, *spec.shape[1:]), shard_shape
    return shard_shape, shard_shape


def compressors() -> list[Any]:
    from zarr.codecs import BloscCodec, Crc32cCodec

    # byte shuffle groups exponent bytes together: floats compress, fast enough to hide behind the GPU;
    # a CRC-32C per chunk makes zarr refuse changed bytes on read instead of decoding garbage
    return [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"), Crc32cCodec()]


def json_safe(value: Any) -> Any:
    """Attributes must be JSON: numpy scalars/arrays and paths become plain values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ConfigError(f"store attribute value {value!r} ({type(value).__name__}) is not JSON-serialisable")
