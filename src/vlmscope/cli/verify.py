"""`vlmscope verify PATH`: check a store, dataset or checkpoint end to end (one line per problem)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["verify"]


def verify(
    path: Path = typer.Argument(..., help="An activation store, a dataset directory or a checkpoint."),
) -> None:
    """Read every byte of PATH and say what is wrong (exit 1), or print one OK line (exit 0)."""
    from vlmscope.verify import verify_path

    verdict = verify_path(path)
    for note in verdict.notes:
        typer.echo(f"note: {note}", err=True)
    if not verdict.ok:
        for line in verdict.problems:
            typer.echo(line)
        typer.echo(f"{len(verdict.problems)} problem(s) in {verdict.kind} {path}", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK: {verdict.summary}")
