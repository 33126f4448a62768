"""vlmscope: find out what a vision-language model knows inside, at dataset scale.

Public entry points are re-exported lazily so that ``import vlmscope`` stays
cheap (no torch import) for the CLI's ``--help`` and for CPU-only analyses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "open_activations"]

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.activations.store import open_activations


def __getattr__(name: str) -> Any:
    if name == "open_activations":
        from vlmscope.activations.store import open_activations

        return open_activations
    raise AttributeError(f"module 'vlmscope' has no attribute {name!r}")
