"""`vlmscope models`: list the families, build tiny checkpoints and composites."""

from __future__ import annotations

from pathlib import Path

import typer

from vlmscope.models.families.composite import LMS, TOWERS

__all__ = ["app"]

app = typer.Typer(help="Model families, tiny offline checkpoints and tower + LM composites.", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """Print every family with what it supports and the hub ids the studies used."""
    from rich.console import Console
    from rich.table import Table

    from vlmscope.models import family_info, tiny_owner
    from vlmscope.models.tiny import TINY

    table = Table(title="vlmscope model families")
    for col in ("family", "generation", "attention", "mlp", "contrastive", "model_type", "tiny", "examples"):
        table.add_column(col)
    yes = {True: "yes", False: "-"}
    for f in family_info():  # imports every family, which fills TINY
        c = f.capabilities
        table.add_row(
            f.name, yes[c.generation], yes[c.attention], yes[c.mlp], yes[c.contrastive],
            ", ".join(f.model_types), ", ".join(f.tiny_builds) or "-", "\n".join(f.examples),
        )  # fmt: skip
    extra = [t for t in TINY.names() if tiny_owner(t) is None]
    Console(width=160).print(table)
    if extra:
        typer.echo("other tiny builds: " + ", ".join(extra))


@app.command("tiny")
def tiny(
    family: str = typer.Argument(..., help="Tiny build name (`vlmscope models list` shows them)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint directory to write (replaced atomically)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Weight initialisation seed; same seed, same bytes."),
) -> None:
    """Write a tiny random checkpoint of FAMILY offline (config, safetensors, tokenizer, processor)."""
    from vlmscope.models.tiny import build_tiny

    path = build_tiny(family, out, seed=seed)
    typer.echo(f"wrote tiny {family} checkpoint to {path}")


@app.command("composite")
def composite(
    vision: str = typer.Option(
        ..., "--vision", help=f"Vision tower: hub id or local dir ({', '.join(TOWERS)})."
    ),
    lm: str = typer.Option(..., "--lm", help=f"Decoder LM: hub id or local dir ({', '.join(LMS)}, ...)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint directory to write (replaced atomically)."),
    projector: str = typer.Option("linear", "--projector", help="linear or mlp2x_gelu."),
    feature_layer: int = typer.Option(-2, "--feature-layer", help="Tower hidden-state index fed to the projector."),
    keep_cls: bool = typer.Option(False, "--keep-cls", help="Keep the tower's CLS token (dropped by default)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 or bfloat16."),
    seed: int = typer.Option(0, "--seed", min=0, help="Projector initialisation seed."),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision for both parts."),
) -> None:
    """Assemble a pretrained tower + projector + pretrained LM into a LLaVA checkpoint."""
    from vlmscope.models.families.composite import build_composite

    path = build_composite(
        vision, lm, out=out, projector=projector, feature_layer=feature_layer,
        drop_cls=False if keep_cls else None, dtype=dtype, seed=seed, revision=revision,
    )  # fmt: skip
    typer.echo(f"wrote composite checkpoint to {path}")
