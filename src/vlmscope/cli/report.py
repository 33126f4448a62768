"""`vlmscope report`: (filled in by its issue)."""

from __future__ import annotations

import typer


def report() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
