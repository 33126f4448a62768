"""`vlmscope probe`: (filled in by its issue)."""

from __future__ import annotations

import typer


def probe() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
