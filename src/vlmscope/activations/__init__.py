"""Activation extraction into, and reading from, sharded Zarr v3 stores.

``open_activations``/``write_activations`` (cheap: numpy, zarr, xarray) and
``extract``/``ExtractConfig`` (imports torch) are re-exported lazily so that
reading a store never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ExtractConfig", "extract", "open_activations", "write_activations"]

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.activations.extract import ExtractConfig, extract
    from vlmscope.activations.store import open_activations, write_activations

_WHERE = {
    "open_activations": "vlmscope.activations.store",
    "write_activations": "vlmscope.activations.store",
    "ExtractConfig": "vlmscope.activations.config",
    "extract": "vlmscope.activations.extract",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'vlmscope.activations' has no attribute {name!r}")
