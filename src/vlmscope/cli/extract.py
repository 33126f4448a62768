"""`vlmscope extract`: (filled in by its issue)."""

from __future__ import annotations

import typer


def extract() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
