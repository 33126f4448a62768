"""Small output helper shared by the logit lens and the FFN analysis writers."""

from __future__ import annotations

import math

__all__ = ["finite"]


def finite(v: float) -> float | None:
    """JSON-safe float: NaN/inf become None (``null``)."""
    v = float(v)
    return v if math.isfinite(v) else None
