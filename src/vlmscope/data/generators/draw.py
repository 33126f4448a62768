"""Drawing helpers shared by every synthetic kind: palette, shapes, arrows, PNG output.

Geometry convention: a shape of half-extent ``r`` centred at ``(x, y)`` lies
inside the box ``[x - r, x + r] x [y - r, y + r]`` (a rectangle is ``1.5``
times as tall as wide: ``[y - 1.5r, y + 1.5r]``). Placement code only needs
these boxes to guarantee that shapes never overlap. Vertices are pure
functions of ``(shape, x, y, r)`` so tests can check them without images.

Pixels use PIL's convention: ``(x, y)`` with ``y`` growing downwards, so
"above" means a smaller ``y``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

__all__ = [
    "PlacedShape",
    "render_shapes",
    "PALETTE",
    "SHAPES",
    "RECT_ASPECT",
    "BACKGROUND",
    "PNG_COMPRESS_LEVEL",
    "check_names",
    "half_extent",
    "shape_vertices",
    "draw_shape",
    "arrow_geometry",
    "draw_arrow",
    "new_canvas",
    "save_png",
]

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25),
    "green": (30, 160, 50),
    "blue": (30, 80, 230),
    "yellow": (245, 215, 0),
    "orange": (255, 135, 0),
    "purple": (125, 40, 175),
    "pink": (255, 110, 190),
    "brown": (135, 80, 30),
    "gray": (128, 128, 128),
    "black": (0, 0, 0),
    "magenta": (230, 0, 230),
    "cyan": (0, 200, 230),
}
"""Every colour name a generator may use, with the RGB it is drawn in."""

SHAPES: tuple[str, ...] = ("circle", "square", "rectangle", "triangle", "pentagon", "star")
"""Every shape name the renderer can draw."""

RECT_ASPECT = 1.5
"""Height / width of a ``rectangle`` (study B: h = 1.5 w)."""

BACKGROUND = (255, 255, 255)
PNG_COMPRESS_LEVEL = 3
"""Fixed zlib level: the same pixels always give the same PNG bytes."""

_STAR_INNER = 0.45  # inner / outer radius of the five-point star


def check_names(values: Iterable[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    """Return ``values`` as a tuple after checking each is known and none repeats.

    Raises ``ValueError`` (pydantic turns it into a ValidationError naming the
    field) with the unknown value and the valid list, so the fix is in the message.
    """
    out = tuple(values)
    for v in out:
        if v not in known:
            raise ValueError(f"unknown {what} {v!r}; known: {', '.join(known)}")
    dup = sorted({v for v in out if out.count(v) > 1})
    if dup:
        raise ValueError(f"{what}s must not repeat; repeated: {', '.join(dup)}")
    return out


def half_extent(shape: str, r: float) -> tuple[float, float]:
    """Half width and half height of the box a shape of half-extent ``r`` fits in."""
    return (r, RECT_ASPECT * r) if shape == "rectangle" else (r, r)


def _regular(x: float, y: float, r: float, k: int, start_deg: float = -90.0) -> list[tuple[float, float]]:
    return [
        (x + r * math.cos(math.radians(start_deg + 360.0 * i / k)),
         y + r * math.sin(math.radians(start_deg + 360.0 * i / k)))
        for i in range(k)
    ]


def shape_vertices(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    """Polygon vertices of ``shape`` (circles: a 64-gon, used only for geometry checks)."""
    if shape == "circle":
        return _regular(x, y, r, 64)
    if shape == "square":
        return [(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)]
    if shape == "rectangle":
        h = RECT_ASPECT * r
        return [(x - r, y - h), (x + r, y - h), (x + r, y + h), (x - r, y + h)]
    if shape == "triangle":
        # equilateral, base 2r, pointing up, vertically centred in its box
        h = math.sqrt(3.0) * r / 2.0
        return [(x, y - h), (x + r, y + h), (x - r, y + h)]
    if shape == "pentagon":
        return _regular(x, y, r, 5)
    if shape == "star":
        outer = _regular(x, y, r, 5)
        inner = _regular(x, y, r * _STAR_INNER, 5, start_deg=-90.0 + 36.0)
        return [p for pair in zip(outer, inner) for p in pair]
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    x: float,
    y: float,
    r: float,
    color: str,
    *,
    outline: str | None = None,
    outline_width: int = 1,
) -> None:
    """Fill ``shape`` in ``color`` (a PALETTE name), optionally with a thin outline."""
    fill = PALETTE[color]
    line = PALETTE[outline] if outline else None
    width = outline_width if outline else 0
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=line, width=width)
    else:
        draw.polygon(shape_vertices(shape, x, y, r), fill=fill, outline=line, width=width)


def arrow_geometry(
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    head_length: float,
    head_width: float,
) -> tuple[tuple[float, float], tuple[float, float], list[tuple[float, float]]]:
    """Shaft end points and arrowhead triangle of an arrow from ``start`` to ``end``.

    The shaft stops where the head begins so the tip stays sharp; the head's
    tip is exactly ``end``. Returns ``(shaft_start, shaft_end, head_polygon)``.
    """
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    if length == 0:
        raise ValueError("arrow start and end coincide")
    ux, uy = dx / length, dy / length
    hl = min(head_length, length)
    bx, by = end[0] - ux * hl, end[1] - uy * hl  # base centre of the head
    hw = head_width / 2.0
    head = [end, (bx - uy * hw, by + ux * hw), (bx + uy * hw, by - ux * hw)]
    return start, (bx, by), head


def draw_arrow(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    width: int = 2,
    head_length: float = 8.0,
    head_width: float = 8.0,
    color: str = "black",
) -> None:
    """A ``width``-px line from ``start`` with a filled arrowhead whose tip is ``end``."""
    s, e, head = arrow_geometry(start, end, head_length=head_length, head_width=head_width)
    fill = PALETTE[color]
    draw.line([s, e], fill=fill, width=width)
    draw.polygon(head, fill=fill)


def new_canvas(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A white RGB image and a drawing context on it."""
    img = Image.new("RGB", (width, height), BACKGROUND)
    return img, ImageDraw.Draw(img)


def save_png(img: Image.Image, path: str | os.PathLike[str]) -> None:
    """Write ``img`` as PNG with fixed settings and no metadata (byte-reproducible)."""
    img.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


@dataclass(frozen=True)
class PlacedShape:
    """A filled shape on a canvas: centre ``(x, y)`` and half-extent ``size`` in px."""

    shape: str
    color: str
    x: int
    y: int
    size: int

    @property
    def name(self) -> str:
        """How prompts refer to it: ``"red circle"``."""
        return f"{self.color} {self.shape}"

    def to_dict(self) -> dict[str, object]:
        return {"shape": self.shape, "color": self.color, "x": self.x, "y": self.y, "size": self.size}


def render_shapes(
    width: int,
    height: int,
    shapes: Sequence[PlacedShape],
    *,
    outline: str | None = None,
) -> Image.Image:
    """A white canvas with ``shapes`` drawn in order (later ones on top)."""
    img, draw = new_canvas(width, height)
    for s in shapes:
        draw_shape(draw, s.shape, s.x, s.y, s.size, s.color, outline=outline)
    return img
