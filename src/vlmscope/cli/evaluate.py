"""`vlmscope evaluate`: score a model on a dataset split; write predictions and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vlmscope.cli.options import bind, bound_config
from vlmscope.cli.outdir import refuse_cwd_out
from vlmscope.cli.signature import config_options, with_options

__all__ = ["evaluate"]


@bind(
    "vlmscope.evaluation.config:EvaluateConfig",
    "batch_size", "max_new_tokens", "mode", "split", "limit", "group_by", "class_column", "dtype", "device_map",
    "family", template="contrastive_template",
)  # fmt: skip
@with_options(None, config_options)
def evaluate(
    model: Annotated[str, typer.Option("--model", help="Hub id or local checkpoint directory.")],
    dataset: Annotated[Path, typer.Option("--dataset", help="Dataset directory (manifest.parquet + images/).")],
    out: Annotated[Path, typer.Option("--out", callback=refuse_cwd_out, help="Output directory (written atomically; an existing one is replaced only if it is an earlier output of this kind).")],
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="generate | option-loss | contrastive.")] = None,
    split: Annotated[str | None, typer.Option("--split", help="train | valid | test | all.")] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    template: Annotated[str | None, typer.Option("--template")] = None,
    group_by: Annotated[
        list[str] | None, typer.Option("--group-by", help="Label column to break accuracy down by (repeat).")
    ] = None,
    class_column: Annotated[str | None, typer.Option("--class-column")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32 | float16 | bfloat16 | auto.")] = None,
    device_map: Annotated[str | None, typer.Option("--device-map")] = None,
    family: Annotated[str | None, typer.Option("--family")] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Hub revision (commit, tag, branch) of a hub id.")
    ] = None,
    **options: Any,
) -> None:
    """Score a model on a dataset split: predictions.jsonl, metrics.json, per_group.csv in --out."""
    from vlmscope.evaluation import evaluate as run

    cfg = bound_config(
        evaluate, locals() | options, group_by=list(group_by) if group_by else None, template=template or None
    )
    metrics = run(model, dataset, out, cfg, revision=revision)
    head = ", ".join(
        f"{k} {metrics[k]:.4f}" if isinstance(metrics[k], float) else f"{k} {metrics[k]}"
        for k in ("accuracy", "macro_accuracy", "n", "n_unparsed", "count/mae", "grade/mae", "grade/unparsed_rate",
                  "paired/accuracy_drop")
        if k in metrics
    )
    typer.echo(head)
    typer.echo(f"wrote {out}")
