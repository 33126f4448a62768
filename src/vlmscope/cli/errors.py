"""Turn user-fixable errors into one-line messages, and vlmscope's warnings into ``warning:`` lines, at the CLI edge only."""

from __future__ import annotations

import warnings
from typing import Any

import click
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from vlmscope.errors import VlmscopeError, VlmscopeWarning

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


def _show_own_warnings() -> None:
    """Print every :class:`VlmscopeWarning` as one ``warning: ...`` line (each time, not once per place).

    Why: Python's default format (``file:line: Category: text`` plus the
    source line) reads as a crash to a CLI user; other warnings keep it.
    Call inside ``warnings.catch_warnings()``, which restores both settings.
    """
    warnings.simplefilter("always", VlmscopeWarning)
    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if issubclass(category, VlmscopeWarning):
            typer.echo(f"warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


class VlmscopeGroup(TyperGroup):
    """Root click group that reports user errors in one line, exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            _show_own_warnings()
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VlmscopeError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except ValidationError as e:
            typer.echo(f"error: {format_validation_error(e)}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            # the exit status stays the shell's (130); the user learns what was kept
            typer.echo("interrupted: no half-written output was kept; rerun the same command "
                       "(extract and train resume where they stopped)", err=True)  # fmt: skip
            raise
