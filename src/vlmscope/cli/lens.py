"""`vlmscope lens`: logit lens and FFN value-vector analysis off a cached activation store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from vlmscope.cli.options import ConfigCommand, bind, bound_config
from vlmscope.cli.signature import config_options, field_options, option_names, with_options

__all__ = ["app"]

app = typer.Typer(
    help="Read a cached activation store through the model's output head (CPU, no model load).",
    no_args_is_help=True,
)


def _inputs(
    model: str = typer.Option(..., "--model", help="Checkpoint dir, vlmscope-ref.json pin dir, or cached hub id."),
    out: Path = typer.Option(..., "--out", help="Output directory (replaced when finished)."),
) -> None:
    """The model whose head reads the store, and the output directory, of both lens verbs."""


_LOGIT = field_options(top_k=int, target_column=str, final_norm=bool, variable=str, batch_size=int)
"""``lens logit`` settings: options that are a ``LogitLensConfig`` field and nothing more."""
_FFN = field_options(neurons=int, tokens=int, seed=int, label_column=str, batch_size=int)
"""``lens ffn`` settings: options that are an ``FfnConfig`` field and nothing more."""


def _read(fn: Any, analysis: Any, store: Path, options: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Run a lens ``analysis`` of ``store`` with the verb's config; its output directory and metrics."""
    out = options["out"]
    return out, analysis(store, options["model"], bound_config(fn, options), out, progress=sys.stderr.isatty())


@app.command("logit", cls=ConfigCommand)
@bind("vlmscope.lens.config:LogitLensConfig", *option_names(_LOGIT))
@with_options(None, _inputs, _LOGIT, config_options)
def logit(
    store: Path = typer.Argument(..., help="Activation store (vlmscope extract --out)."),
    **options: Any,
) -> None:
    """Logit lens of every stored layer: top-k tokens, target rank/probability, top-1 accuracy per layer.

    Writes topk.parquet, targets.parquet, summary.csv, metrics.json, rank_by_layer.png, config.json.
    """
    from vlmscope.lens.logit import logit_lens

    out, metrics = _read(logit, logit_lens, store, options)
    typer.echo(
        f"{out}: best layer {metrics['best_layer']} (top-1 {metrics['best_layer_top1_accuracy']:.3f}), "
        f"final layer {metrics['final_layer']} (top-1 {metrics['final_layer_top1_accuracy']:.3f})"
    )


@app.command("ffn", cls=ConfigCommand)
@bind("vlmscope.lens.config:FfnConfig", *option_names(_FFN))
@with_options(None, _inputs, _FFN, config_options)
def ffn(
    store: Path = typer.Argument(..., help="Activation store extracted with --mlp."),
    **options: Any,
) -> None:
    """FFN value vectors of the top neurons vs random neurons through the unembedding, per layer.

    Writes ffn.jsonl, summary.csv, metrics.json, ffn_by_layer.png, config.json.
    """
    from vlmscope.lens.ffn import ffn_analysis

    out, metrics = _read(ffn, ffn_analysis, store, options)
    typer.echo(
        f"{out}: label among top-neuron tokens {metrics['gt_in_top']:.3f} vs random {metrics['gt_in_random']:.3f}; "
        f"first layer above baseline {metrics['first_layer_above_baseline']}"
    )
