"""`vlmscope lens`: logit lens and FFN value-vector analysis off a cached activation store."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Read a cached activation store through the model's output head (CPU, no model load).",
    no_args_is_help=True,
)


@app.command("logit")
def logit(
    store: Path = typer.Argument(..., help="Activation store (vlmscope extract --out)."),
    model: str = typer.Option(..., "--model", help="Checkpoint dir, vlmscope-ref.json pin dir, or cached hub id."),
    out: Path = typer.Option(..., "--out", help="Output directory (replaced when finished)."),
    top_k: int = typer.Option(10, "--top-k", help="Tokens kept per sample and layer."),
    target_column: str = typer.Option("answer", "--target-column", help="Label column whose first token is the target."),
    final_norm: bool = typer.Option(
        True, "--final-norm/--no-final-norm", help="Apply the LM's final norm before the unembedding."
    ),
    variable: str = typer.Option("hidden", "--variable", help="Store variable: hidden or hidden_<position>."),
    batch_size: int = typer.Option(256, "--batch-size", help="Samples per matmul (memory: batch x vocabulary)."),
) -> None:
    """Logit lens of every stored layer: top-k tokens, target rank/probability, top-1 accuracy per layer.

    Writes topk.parquet, targets.parquet, summary.csv, metrics.json, rank_by_layer.png, config.json.
    """
    from vlmscope.lens.config import LogitLensConfig
    from vlmscope.lens.logit import logit_lens

    config = LogitLensConfig(
        top_k=top_k, target_column=target_column, final_norm=final_norm, variable=variable, batch_size=batch_size
    )
    metrics = logit_lens(store, model, config, out, progress=sys.stderr.isatty())
    typer.echo(
        f"{out}: best layer {metrics['best_layer']} (top-1 {metrics['best_layer_top1_accuracy']:.3f}), "
        f"final layer {metrics['final_layer']} (top-1 {metrics['final_layer_top1_accuracy']:.3f})"
    )


@app.command("ffn")
def ffn(
    store: Path = typer.Argument(..., help="Activation store extracted with --mlp."),
    model: str = typer.Option(..., "--model", help="Checkpoint dir, vlmscope-ref.json pin dir, or cached hub id."),
    out: Path = typer.Option(..., "--out", help="Output directory (replaced when finished)."),
    neurons: int = typer.Option(3, "--neurons", help="Top (and random) neurons per sample and layer."),
    tokens: int = typer.Option(3, "--tokens", help="Top tokens per neuron value vector."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random-neuron baseline."),
    label_column: str = typer.Option("answer", "--label-column", help="Label column with the ground-truth class."),
    batch_size: int = typer.Option(1024, "--batch-size", help="Value vectors per matmul."),
) -> None:
    """FFN value vectors of the top neurons vs random neurons through the unembedding, per layer.

    Writes ffn.jsonl, summary.csv, metrics.json, ffn_by_layer.png, config.json.
    """
    from vlmscope.lens.config import FfnConfig
    from vlmscope.lens.ffn import ffn_analysis

    config = FfnConfig(neurons=neurons, tokens=tokens, seed=seed, label_column=label_column, batch_size=batch_size)
    metrics = ffn_analysis(store, model, config, out, progress=sys.stderr.isatty())
    typer.echo(
        f"{out}: label among top-neuron tokens {metrics['gt_in_top']:.3f} vs random {metrics['gt_in_random']:.3f}; "
        f"first layer above baseline {metrics['first_layer_above_baseline']}"
    )
