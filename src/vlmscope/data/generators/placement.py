"""Non-overlapping placement of boxes on a canvas by seeded rejection sampling.

Shapes are placed by their bounding boxes (see ``draw.half_extent``), so two
placed shapes are at least ``clearance`` pixels apart along some axis and can
never touch, whatever their outline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["boxes_clear", "place_boxes"]


def boxes_clear(
    a: tuple[float, float, float, float],
    b: tuple[float, float, float, float],
    clearance: float,
) -> bool:
    """True iff boxes ``(x, y, hx, hy)`` are separated by at least ``clearance`` px on x or y."""
    ax, ay, ahx, ahy = a
    bx, by, bhx, bhy = b
    return abs(ax - bx) >= ahx + bhx + clearance or abs(ay - by) >= ahy + bhy + clearance


def place_boxes(
    extents: Sequence[tuple[float, float]],
    *,
    width: int,
    height: int,
    margin: float,
    clearance: float,
    rng: np.random.Generator,
    max_tries: int = 200,
    margin_from: Literal["edge", "centre"] = "edge",
) -> list[tuple[int, int]] | None:
    """Integer centres for boxes of half-extents ``extents``, or None if it did not fit.

    With ``margin_from="edge"`` each box stays ``margin`` px inside the canvas;
    with ``"centre"`` each centre does (study A's convention). Boxes are placed one at a
    time, each with up to ``max_tries`` uniform draws; the caller retries the
    whole scene (with fresh draws) when this returns None.
    """
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[int, int]] = []
    for hx, hy in extents:
        if margin_from == "centre":
            hx_m, hy_m = max(0.0, margin - hx), max(0.0, margin - hy)
        else:
            hx_m, hy_m = margin, margin
        x_lo, x_hi = math.ceil(hx_m + hx), math.floor(width - 1 - hx_m - hx)
        y_lo, y_hi = math.ceil(hy_m + hy), math.floor(height - 1 - hy_m - hy)
        if x_lo > x_hi or y_lo > y_hi:
            return None
        for _ in range(max_tries):
            x = int(rng.integers(x_lo, x_hi + 1))
            y = int(rng.integers(y_lo, y_hi + 1))
            box = (x, y, hx, hy)
            if all(boxes_clear(box, other, clearance) for other in placed):
                placed.append(box)
                out.append((x, y))
                break
        else:
            return None
    return out
