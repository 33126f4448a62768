"""Root of the ``vlmscope`` command; mounts one module per verb."""

from __future__ import annotations

import typer

from vlmscope import __version__
from vlmscope.cli import evaluate, extract, generate, importers, lens, models, probe, report, train, verify
from vlmscope.cli.errors import VlmscopeGroup
from vlmscope.cli.options import ConfigCommand

__all__ = ["app", "main"]

app = typer.Typer(
    cls=VlmscopeGroup,
    name="vlmscope",
    help=(
        "Find out what a vision-language model knows inside, at dataset scale.\n\n"
        "Generate or import a dataset, extract layer activations once into a Zarr "
        "store, then probe, lens and report off the store in seconds. Every verb is "
        "also a DVC stage: `dvc repro` runs the whole pipeline."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vlmscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Find out what a vision-language model knows inside, at dataset scale."""


app.add_typer(generate.app, name="generate")
app.add_typer(importers.app, name="import")
app.add_typer(models.app, name="models")
app.add_typer(lens.app, name="lens")
app.add_typer(train.app, name="train")
app.command("extract", cls=ConfigCommand)(extract.extract)
app.command("probe", cls=ConfigCommand)(probe.probe)
app.command("evaluate", cls=ConfigCommand)(evaluate.evaluate)
app.command("report", cls=ConfigCommand)(report.report)
app.command("verify")(verify.verify)
for _name, _fn in train.TOP_LEVEL.items():
    app.command(_name, cls=ConfigCommand)(_fn)


def main() -> None:
    app()
