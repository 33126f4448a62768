"""`vlmscope models`: list the families, build tiny checkpoints and composites."""

from __future__ import annotations

from pathlib import Path

import typer

from vlmscope.cli.options import ConfigCommand, bind
from vlmscope.cli.outdir import refuse_cwd_out
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
    out: Path = typer.Option(..., "--out", callback=refuse_cwd_out, help="Checkpoint directory to write (written atomically; an existing one is replaced only if it is an earlier output of this kind)."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Weight initialisation seed; same seed, same bytes."),
) -> None:
    """Write a tiny random checkpoint of FAMILY offline (config, safetensors, tokenizer, processor)."""
    from vlmscope.models.tiny import build_tiny

    path = build_tiny(family, out, **({} if seed is None else {"seed": seed}))
    typer.echo(f"wrote tiny {family} checkpoint to {path}")


@app.command("composite", cls=ConfigCommand)
@bind("vlmscope.models.families.composite:CompositeConfig", "projector", "feature_layer", "dtype", "seed")
def composite(
    vision: str = typer.Option(
        ..., "--vision", help=f"Vision tower: hub id or local dir ({', '.join(TOWERS)})."
    ),
    lm: str = typer.Option(..., "--lm", help=f"Decoder LM: hub id or local dir ({', '.join(LMS)}, ...)."),
    out: Path = typer.Option(..., "--out", callback=refuse_cwd_out, help="Checkpoint directory to write (written atomically; an existing one is replaced only if it is an earlier output of this kind)."),
    projector: str | None = typer.Option(None, "--projector", help="linear or mlp2x_gelu."),
    feature_layer: int | None = typer.Option(None, "--feature-layer", help="Tower hidden-state index fed to the projector."),
    keep_cls: bool = typer.Option(False, "--keep-cls", help="Keep the tower's CLS token (sets drop_cls false)."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, float16 or bfloat16."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Projector initialisation seed."),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision for both parts."),
) -> None:
    """Assemble a pretrained tower + projector + pretrained LM into a LLaVA checkpoint."""
    from vlmscope.models.families.composite import build_composite

    given = {"projector": projector, "feature_layer": feature_layer, "dtype": dtype, "seed": seed}
    path = build_composite(
        vision, lm, out=out, drop_cls=False if keep_cls else None, revision=revision,
        **{k: v for k, v in given.items() if v is not None},
    )  # fmt: skip
    typer.echo(f"wrote composite checkpoint to {path}")


@app.command("compose", cls=ConfigCommand)
@bind("vlmscope.models.compose:ComposeConfig", "tower", "lm", "projector", "feature_layer", "dtype", "seed", "revision")
def compose(
    tower: str = typer.Option(..., "--tower", help=f"Tiny tower kind ({', '.join(TOWERS)}) or hub id / local dir."),
    lm: str = typer.Option(..., "--lm", help=f"Tiny LM kind ({', '.join(LMS)}) or hub id / local dir."),
    out: Path = typer.Option(..., "--out", callback=refuse_cwd_out, help="Checkpoint directory to write (written atomically; an existing one is replaced only if it is an earlier output of this kind)."),
    projector: str | None = typer.Option(None, "--projector", help="linear or mlp2x_gelu."),
    feature_layer: int | None = typer.Option(None, "--feature-layer", help="Tower hidden-state index fed to the projector."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, float16 or bfloat16."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Projector and tiny-part initialisation seed."),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision of the real parts."),
) -> None:
    """Join a tower and an LM, each a tiny random stand-in (by kind) or a real checkpoint, into a LLaVA checkpoint."""
    from vlmscope.models.compose import ComposeConfig
    from vlmscope.models.compose import compose as run_compose

    given = {"projector": projector, "feature_layer": feature_layer, "dtype": dtype, "seed": seed, "revision": revision}
    cfg = ComposeConfig(tower=tower, lm=lm, **{k: v for k, v in given.items() if v is not None})
    typer.echo(f"wrote composite checkpoint to {run_compose(cfg, out)}")
