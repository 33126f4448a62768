"""`vlmscope lens`: (filled in by its issue)."""

from __future__ import annotations

import typer

app = typer.Typer(help="lens", no_args_is_help=True)
