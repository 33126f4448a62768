"""`vlmscope importers`: (filled in by its issue)."""

from __future__ import annotations

import typer

app = typer.Typer(help="importers", no_args_is_help=True)
