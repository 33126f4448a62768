"""`vlmscope lens`: logit lens and FFN value-vector analysis off a cached activation store."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from vlmscope.cli.options import ConfigCommand, ParamsFile, Sets, bind, run_config

__all__ = ["app"]

app = typer.Typer(
    help="Read a cached activation store through the model's output head (CPU, no model load).",
    no_args_is_help=True,
)


@app.command("logit", cls=ConfigCommand)
@bind("vlmscope.lens.config:LogitLensConfig", "top_k", "target_column", "final_norm", "variable", "batch_size")
def logit(
    store: Path = typer.Argument(..., help="Activation store (vlmscope extract --out)."),
    model: str = typer.Option(..., "--model", help="Checkpoint dir, vlmscope-ref.json pin dir, or cached hub id."),
    out: Path = typer.Option(..., "--out", help="Output directory (replaced when finished)."),
    top_k: int | None = typer.Option(None, "--top-k"),
    target_column: str | None = typer.Option(None, "--target-column"),
    final_norm: bool | None = typer.Option(None, "--final-norm/--no-final-norm"),
    variable: str | None = typer.Option(None, "--variable"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    params: ParamsFile = None,
    set_: Sets = None,
) -> None:
    """Logit lens of every stored layer: top-k tokens, target rank/probability, top-1 accuracy per layer.

    Writes topk.parquet, targets.parquet, summary.csv, metrics.json, rank_by_layer.png, config.json.
    """
    from vlmscope.lens.logit import logit_lens

    config = run_config(
        logit, params, set_,
        top_k=top_k, target_column=target_column, final_norm=final_norm, variable=variable, batch_size=batch_size,
    )  # fmt: skip
    metrics = logit_lens(store, model, config, out, progress=sys.stderr.isatty())
    typer.echo(
        f"{out}: best layer {metrics['best_layer']} (top-1 {metrics['best_layer_top1_accuracy']:.3f}), "
        f"final layer {metrics['final_layer']} (top-1 {metrics['final_layer_top1_accuracy']:.3f})"
    )


@app.command("ffn", cls=ConfigCommand)
@bind("vlmscope.lens.config:FfnConfig", "neurons", "tokens", "seed", "label_column", "batch_size")
def ffn(
    store: Path = typer.Argument(..., help="Activation store extracted with --mlp."),
    model: str = typer.Option(..., "--model", help="Checkpoint dir, vlmscope-ref.json pin dir, or cached hub id."),
    out: Path = typer.Option(..., "--out", help="Output directory (replaced when finished)."),
    neurons: int | None = typer.Option(None, "--neurons"),
    tokens: int | None = typer.Option(None, "--tokens"),
    seed: int | None = typer.Option(None, "--seed"),
    label_column: str | None = typer.Option(None, "--label-column"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    params: ParamsFile = None,
    set_: Sets = None,
) -> None:
    """FFN value vectors of the top neurons vs random neurons through the unembedding, per layer.

    Writes ffn.jsonl, summary.csv, metrics.json, ffn_by_layer.png, config.json.
    """
    from vlmscope.lens.ffn import ffn_analysis

    config = run_config(
        ffn, params, set_,
        neurons=neurons, tokens=tokens, seed=seed, label_column=label_column, batch_size=batch_size,
    )  # fmt: skip
    metrics = ffn_analysis(store, model, config, out, progress=sys.stderr.isatty())
    typer.echo(
        f"{out}: label among top-neuron tokens {metrics['gt_in_top']:.3f} vs random {metrics['gt_in_random']:.3f}; "
        f"first layer above baseline {metrics['first_layer_above_baseline']}"
    )
