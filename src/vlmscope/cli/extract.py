"""`vlmscope extract`: layer activations of a dataset into a sharded, resumable Zarr store."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from vlmscope.cli.options import ParamsFile, Sets, bind, run_config

__all__ = ["extract"]

_FIELDS = (
    "batch_size", "positions", "layers", "attention", "mlp", "dtype", "model_dtype", "device", "on_error",
    "shard_samples", "prefetch_batches", "loader_threads", "seed",
)  # fmt: skip


@bind("vlmscope.activations.config:ExtractConfig", *_FIELDS)
def extract(
    model: str = typer.Option(..., "--model", help="Hub id or local checkpoint directory."),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset directory (manifest.parquet + images)."),
    out: Path = typer.Option(..., "--out", help="Store directory (created, or resumed if unfinished)."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    positions: str | None = typer.Option(None, "--positions", help="Comma list of last,text_mean,image_mean,image_last."),
    layers: str | None = typer.Option(None, "--layers", help="'all' or comma list like 0,4,8 (0 = embedding output)."),
    attention: bool | None = typer.Option(None, "--attention/--no-attention"),
    mlp: bool | None = typer.Option(None, "--mlp/--no-mlp"),
    dtype: str | None = typer.Option(None, "--dtype"),
    model_dtype: str | None = typer.Option(None, "--model-dtype"),
    device: str | None = typer.Option(None, "--device"),
    on_error: str | None = typer.Option(None, "--on-error"),
    shard_samples: int | None = typer.Option(None, "--shard-samples"),
    prefetch_batches: int | None = typer.Option(None, "--prefetch-batches"),
    loader_threads: int | None = typer.Option(None, "--loader-threads"),
    seed: int | None = typer.Option(None, "--seed"),
    family: str | None = typer.Option(None, "--family", help="Force the model family; unset: detected."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store made for another extraction."),
    params: ParamsFile = None,
    set_: Sets = None,
) -> None:
    """Extract layer activations of DATASET through MODEL into the store OUT.

    Resumes an unfinished store of the same extraction; runs under
    `torchrun --nproc_per_node N` with ranks writing disjoint shards.
    """
    from vlmscope.activations.extract import extract as run_extract

    config = run_config(
        extract, params, set_,
        batch_size=batch_size, positions=positions, layers=layers, attention=attention, mlp=mlp, dtype=dtype,
        model_dtype=model_dtype, device=device, on_error=on_error, shard_samples=shard_samples,
        prefetch_batches=prefetch_batches, loader_threads=loader_threads, seed=seed,
    )  # fmt: skip
    path = run_extract(config, model, dataset, out, family=family, overwrite=overwrite, progress=sys.stderr.isatty())
    typer.echo(str(path))
