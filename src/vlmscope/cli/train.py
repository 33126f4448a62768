"""`vlmscope train`: (filled in by its issue)."""

from __future__ import annotations

import typer

app = typer.Typer(help="train", no_args_is_help=True)
TOP_LEVEL: dict = {}
