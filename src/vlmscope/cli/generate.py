"""`vlmscope generate`: (filled in by its issue)."""

from __future__ import annotations

import typer

app = typer.Typer(help="generate", no_args_is_help=True)
