"""Lazy re-exports for package ``__init__`` modules (PEP 562).

Several packages re-export public names from submodules that import heavy
dependencies (torch, matplotlib, polars); importing the package must stay
cheap, so each name is imported on first attribute access instead. Every
package used to spell out the same name -> module map and ``__getattr__``;
this helper builds both from one ``{submodule: names}`` table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, by_module: Mapping[str, Sequence[str]]
) -> tuple[dict[str, str], Callable[[str], Any]]:
    """Return ``(_WHERE, __getattr__)`` for ``package`` serving ``by_module``'s names lazily.

    ``by_module`` maps a submodule (relative to ``package``) to the names it
    defines. ``_WHERE`` maps each name to its absolute module; it is kept as a
    module attribute because the static import graph
    (:mod:`vlmscope.io.import_graph`) reads it to resolve constants.
    """
    where = {name: f"{package}.{module}" for module, names in by_module.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return where, __getattr__
