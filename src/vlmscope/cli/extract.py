"""`vlmscope extract`: layer activations of a dataset into a sharded, resumable Zarr store."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

__all__ = ["extract"]


def extract(
    model: str = typer.Option(..., "--model", help="Hub id or local checkpoint directory."),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset directory (manifest.parquet + images)."),
    out: Path = typer.Option(..., "--out", help="Store directory (created, or resumed if unfinished)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Samples per forward pass."),
    positions: str = typer.Option(
        "last", "--positions", help="Comma list of last,text_mean,image_mean,image_last ('last' is always stored)."
    ),
    layers: str = typer.Option("all", "--layers", help="'all' or comma list like 0,4,8 (0 = embedding output)."),
    attention: bool = typer.Option(False, "--attention", help="Store last-token attention to image patches."),
    mlp: bool = typer.Option(False, "--mlp", help="Store the FFN activation at the last token."),
    dtype: str = typer.Option("bfloat16", "--dtype", help="Storage dtype: float16, bfloat16 or float32."),
    model_dtype: str = typer.Option("auto", "--model-dtype", help="Compute dtype: auto, float32, bfloat16, float16."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    on_error: str = typer.Option("stop", "--on-error", help="Unreadable image: stop or skip."),
    shard_samples: int = typer.Option(1024, "--shard-samples", help="Samples per shard file (unit of resume)."),
    prefetch_batches: int = typer.Option(2, "--prefetch-batches", help="Batches loaded ahead of the model."),
    loader_threads: int = typer.Option(4, "--loader-threads", help="Threads decoding images."),
    seed: int = typer.Option(0, "--seed", help="Torch seed (recorded)."),
    family: str | None = typer.Option(None, "--family", help="Force the model family (default: detected)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store made for another extraction."),
) -> None:
    """Extract layer activations of DATASET through MODEL into the store OUT.

    Resumes an unfinished store of the same extraction; runs under
    `torchrun --nproc_per_node N` with ranks writing disjoint shards.
    """
    from vlmscope.activations.config import ExtractConfig
    from vlmscope.activations.extract import extract as run_extract

    config = ExtractConfig(
        batch_size=batch_size,
        positions=positions,  # type: ignore[arg-type]  (split by the validator)
        layers=layers,  # type: ignore[arg-type]
        attention=attention,
        mlp=mlp,
        dtype=dtype,  # type: ignore[arg-type]
        model_dtype=model_dtype,  # type: ignore[arg-type]
        device=device,  # type: ignore[arg-type]
        on_error=on_error,  # type: ignore[arg-type]
        shard_samples=shard_samples,
        prefetch_batches=prefetch_batches,
        loader_threads=loader_threads,
        seed=seed,
    )
    path = run_extract(config, model, dataset, out, family=family, overwrite=overwrite, progress=sys.stderr.isatty())
    typer.echo(str(path))
