"""The family tables: adapters by family name and tiny-checkpoint builders by build name.

A leaf module on purpose: it imports nothing from ``families/`` or
``tiny``, so a family module can register itself here without importing
its siblings or the tiny-build driver, and the import graph inside
``vlmscope.models`` has no cycle. Whoever needs the tables filled imports
``vlmscope.models.families`` first (``vlmscope.models.load_model`` and
``vlmscope.models.tiny.build_tiny`` do).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vlmscope.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.models.adapter import ContrastiveAdapter, ModelAdapter

__all__ = ["ADAPTERS", "TINY", "TinyBuilder"]

ADAPTERS: Registry[type[ModelAdapter] | type[ContrastiveAdapter]] = Registry("model family")
"""Family name -> adapter class; families fill it with ``@ADAPTERS.register("<family>")``."""

TinyBuilder = Callable[[Path, int], None]
"""``(out_dir, seed)``: writes a complete tiny checkpoint into ``out_dir``."""

TINY: Registry[TinyBuilder] = Registry("tiny model family")
"""Tiny build name -> builder; a build name may differ from its adapter's family (``llava-mistral``)."""
