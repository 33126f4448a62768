"""Turn user-fixable errors into one-line messages at the CLI edge only."""

from __future__ import annotations

from typing import Any

import click
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from vlmscope.errors import VlmscopeError

__all__ = ["VlmscopeGroup", "format_validation_error"]


def format_validation_error(err: ValidationError) -> str:
    """``--n: Input should be greater than 0 (got -5)``, one clause per bad field."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e.get("loc", ())) or err.title
        name = "--" + loc.replace("_", "-") if loc and "." not in loc else loc
        got = e.get("input")
        parts.append(f"{name}: {e.get('msg')} (got {got!r})")
    return "invalid parameter " + "; ".join(parts)


class VlmscopeGroup(TyperGroup):
    """Root click group that reports user errors in one line, exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VlmscopeError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except ValidationError as e:
            typer.echo(f"error: {format_validation_error(e)}", err=True)
            raise typer.Exit(1) from None
