"""Activation extraction into, and reading from, sharded Zarr v3 stores.

``open_activations``/``write_activations`` (numpy, zarr, xarray) and
``ExtractConfig`` are re-exported lazily, so reading a store never imports
torch. The extraction itself is ``vlmscope.activations.extract.extract``
(the submodule ``extract`` shadows any package attribute of that name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ExtractConfig", "open_activations", "write_activations"]

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.activations.config import ExtractConfig
    from vlmscope.activations.store import open_activations, write_activations

_WHERE = {
    "open_activations": "vlmscope.activations.store",
    "write_activations": "vlmscope.activations.store",
    "ExtractConfig": "vlmscope.activations.config",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'vlmscope.activations' has no attribute {name!r}")
