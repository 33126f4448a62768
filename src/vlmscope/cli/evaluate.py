"""`vlmscope evaluate`: (filled in by its issue)."""

from __future__ import annotations

import typer


def evaluate() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
