"""`vlmscope extract`: layer activations of a dataset into a sharded, resumable Zarr store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from vlmscope.cli.options import bind, bound_config
from vlmscope.cli.outdir import refuse_cwd_out
from vlmscope.cli.signature import config_options, field_options, option_names, with_options

__all__ = ["extract"]

_FIELDS = field_options(
    batch_size=int,
    positions=(str, "Comma list of last,text_mean,image_mean,image_last."),
    layers=(str, "'all' or comma list like 0,4,8 (0 = embedding output)."),
    attention=bool, mlp=bool, dtype=str, model_dtype=str, device=str,
    on_error=str, shard_samples=int, prefetch_batches=int, loader_threads=int, seed=int,
)  # fmt: skip
"""The extraction settings: options that are an ``ExtractConfig`` field and nothing more."""


@bind("vlmscope.activations.config:ExtractConfig", *option_names(_FIELDS))
@with_options(None, _FIELDS, config_options)
def extract(
    model: str = typer.Option(..., "--model", help="Hub id or local checkpoint directory."),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset directory (manifest.parquet + images)."),
    out: Path = typer.Option(..., "--out", callback=refuse_cwd_out, help="Store directory (created, or resumed if unfinished)."),
    family: str | None = typer.Option(None, "--family", help="Force the model family; unset: detected."),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision (commit, tag, branch) of a hub id."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store made for another extraction."),
    **options: Any,
) -> None:
    """Extract layer activations of DATASET through MODEL into the store OUT.

    Resumes an unfinished store of the same extraction; runs under
    `torchrun --nproc_per_node N` with ranks writing disjoint shards.
    """
    from vlmscope.activations.extract import extract as run_extract

    config = bound_config(extract, options)
    path = run_extract(
        config, model, dataset, out, family=family, revision=revision, overwrite=overwrite, progress=sys.stderr.isatty()
    )
    typer.echo(str(path))
