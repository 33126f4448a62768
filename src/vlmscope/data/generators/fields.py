"""Validated field types and checks that several generator configs share.

Every shape kind names its shapes and colours from the renderer's lists and
keeps its shapes inside a margin; the checks used to be repeated as
validators on each ``<Kind>Config``. Here they are field types
(``ShapeNames``, ``ColorNames``) and one model-level check, so a kind only
declares its defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator

from vlmscope.data.generators.draw import PALETTE, SHAPES, check_names, half_extent

__all__ = ["ShapeNames", "ColorNames", "check_shape_sizes"]

ShapeNames = Annotated[tuple[str, ...], AfterValidator(lambda v: check_names(v, SHAPES, "shape"))]
"""Shape names the renderer can draw, none repeated."""

ColorNames = Annotated[tuple[str, ...], AfterValidator(lambda v: check_names(v, tuple(PALETTE), "colour"))]
"""Colour names of the palette, none repeated."""


def check_shape_sizes(shapes: Iterable[str], size_min: int, size_max: int, margin: int) -> float:
    """Check ``size_min <= size_max`` and that ``margin`` keeps every shape on the canvas.

    Returns the largest half-extent of any shape at ``size_max`` (kinds use it
    for their own fit checks). Raises ``ValueError`` (a ValidationError in the
    config) whose message names the knobs to change.
    """
    if size_min > size_max:
        raise ValueError(f"size_min ({size_min}) must be <= size_max ({size_max})")
    ext = max(max(half_extent(s, size_max)) for s in shapes)
    if margin < ext:
        raise ValueError(f"margin ({margin}) must be >= the largest half-extent ({ext:g}) so shapes stay on the canvas")
    return ext
