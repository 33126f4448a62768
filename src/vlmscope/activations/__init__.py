"""Activation extraction into, and reading from, sharded Zarr v3 stores.

``open_activations``/``write_activations`` (numpy, zarr, xarray) and
``ExtractConfig`` are re-exported lazily, so reading a store never imports
torch. The extraction itself is ``vlmscope.activations.extract.extract``
(the submodule ``extract`` shadows any package attribute of that name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmscope._lazy import lazy_exports

__all__ = ["ExtractConfig", "open_activations", "write_activations"]

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.activations.config import ExtractConfig
    from vlmscope.activations.store import open_activations, write_activations

_WHERE, __getattr__ = lazy_exports(
    __name__,
    {
        "store": ("open_activations", "write_activations"),
        "config": ("ExtractConfig",),
    },
)
