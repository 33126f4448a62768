"""Small output helpers shared by the logit lens and the FFN analysis (JSON, progress bar)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["write_json", "finite", "layer_progress"]


def finite(v: float) -> float | None:
    """JSON-safe float: NaN/inf become None (``null``)."""
    v = float(v)
    return v if math.isfinite(v) else None


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


@contextmanager
def layer_progress(total: int, label: str, enabled: bool) -> Iterator[Callable[[], None]]:
    """A rich progress bar over layers on stderr; silent when disabled or not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=True,
    )
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda: bar.advance(task, 1)
