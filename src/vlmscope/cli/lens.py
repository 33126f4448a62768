"""`vlmscope lens`: logit lens and FFN value-vector analysis off a cached activation store."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from vlmscope.cli.options import ConfigCommand, bind, bound_config
from vlmscope.cli.outdir import refuse_cwd_out
from vlmscope.cli.signature import config_options, field_options, option_names, with_options

__all__ = ["app"]

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help="Read a cached activation store through the model's output head (CPU, no model load).",
    no_args_is_help=True,
)


def _inputs(
    model: str = typer.Option(..., "--model", help="Checkpoint dir, vlmscope-ref.json pin dir, or cached hub id."),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision (commit, tag, branch) of a cached hub id."),
    out: Path = typer.Option(..., "--out", callback=refuse_cwd_out, help="Output directory (written atomically; an existing one is replaced only if it is an earlier output of this kind)."),
) -> None:
    """The model whose head reads the store, and the output directory, of both lens verbs."""


_LOGIT = field_options(top_k=int, target_column=str, final_norm=bool, variable=str, batch_size=int)
"""``lens logit`` settings: options that are a ``LogitLensConfig`` field and nothing more."""
_FFN = field_options(neurons=int, tokens=int, seed=int, label_column=str, batch_size=int)
"""``lens ffn`` settings: options that are an ``FfnConfig`` field and nothing more."""


def _verb(name: str, config: str, fields: Callable[..., None]) -> Callable[[F], F]:
    """Register ``lens NAME``: bound to ``config``, taking the shared inputs, its ``fields`` and --params/--set."""

    def deco(fn: F) -> F:
        fn = with_options(None, _inputs, fields, config_options)(fn)
        fn = bind(f"vlmscope.lens.config:{config}", *option_names(fields))(fn)
        app.command(name, cls=ConfigCommand)(fn)
        return fn

    return deco


def _run(fn: Any, analysis: Any, store: Path, options: dict[str, Any], summary: str) -> None:
    """Run a lens ``analysis`` of ``store`` with the verb's config; print ``summary`` filled from its metrics."""
    out = options["out"]
    config = bound_config(fn, options)
    metrics = analysis(store, options["model"], config, out, revision=options["revision"], progress=sys.stderr.isatty())
    typer.echo(summary.format_map({**metrics, "out": out}))


@_verb("logit", "LogitLensConfig", _LOGIT)
def logit(store: Path = typer.Argument(..., help="Activation store (vlmscope extract --out)."), **options: Any) -> None:
    """Logit lens of every stored layer: top-k tokens, target rank/probability, top-1 accuracy per layer.

    Writes topk.parquet, targets.parquet, summary.csv, metrics.json, rank_by_layer.png, config.json.
    """
    from vlmscope.lens.logit import logit_lens

    summary = (
        "{out}: best layer {best_layer} (top-1 {best_layer_top1_accuracy:.3f}), "
        "final layer {final_layer} (top-1 {final_layer_top1_accuracy:.3f})"
    )
    _run(logit, logit_lens, store, options, summary)


@_verb("ffn", "FfnConfig", _FFN)
def ffn(store: Path = typer.Argument(..., help="Activation store extracted with --mlp."), **options: Any) -> None:
    """FFN value vectors of the top neurons vs random neurons through the unembedding, per layer.

    Writes ffn.jsonl, summary.csv, metrics.json, ffn_by_layer.png, config.json.
    """
    from vlmscope.lens.ffn import ffn_analysis

    summary = (
        "{out}: label among top-neuron tokens {gt_in_top:.3f} vs random {gt_in_random:.3f}; "
        "first layer above baseline {first_layer_above_baseline}"
    )
    _run(ffn, ffn_analysis, store, options, summary)
