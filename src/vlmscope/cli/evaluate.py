"""`vlmscope evaluate`: score a model on a dataset split; write predictions and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["evaluate"]


def evaluate(
    model: Annotated[str, typer.Option("--model", help="Hub id or local checkpoint directory.")],
    dataset: Annotated[Path, typer.Option("--dataset", help="Dataset directory (manifest.parquet + images/).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")],
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples (option-loss: pairs) per pass.")] = 8,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Generation budget per answer.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="generate | option-loss | contrastive.")] = "generate",
    split: Annotated[str, typer.Option("--split", help="train | valid | test | all.")] = "test",
    limit: Annotated[int | None, typer.Option("--limit", help="Score only the first N rows.")] = None,
    template: Annotated[
        str | None, typer.Option("--template", help="Contrastive text per option, with {option}.")
    ] = None,
    group_by: Annotated[
        list[str] | None, typer.Option("--group-by", help="Label column to break accuracy down by (repeat).")
    ] = None,
    class_column: Annotated[
        str | None, typer.Option("--class-column", help="Ground-truth class column for macro accuracy.")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="float32 | float16 | bfloat16 | auto.")] = "float32",
    device_map: Annotated[str | None, typer.Option("--device-map", help="cuda, auto, ... (default CPU).")] = None,
    family: Annotated[str | None, typer.Option("--family", help="Model family (default: detected).")] = None,
) -> None:
    """Score a model on a dataset split: predictions.jsonl, metrics.json, per_group.csv in --out."""
    from vlmscope.evaluation import EvaluateConfig
    from vlmscope.evaluation import evaluate as run

    extra = {"contrastive_template": template} if template else {}
    cfg = EvaluateConfig(
        mode=mode,  # type: ignore[arg-type]  (pydantic validates the literal)
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        split=split,  # type: ignore[arg-type]
        limit=limit,
        group_by=list(group_by) if group_by else None,
        class_column=class_column,
        dtype=dtype,  # type: ignore[arg-type]
        device_map=device_map,
        family=family,
        **extra,
    )
    metrics = run(model, dataset, out, cfg)
    head = ", ".join(
        f"{k} {metrics[k]:.4f}" if isinstance(metrics[k], float) else f"{k} {metrics[k]}"
        for k in ("accuracy", "macro_accuracy", "n", "n_unparsed", "count/mae", "paired/accuracy_drop")
        if k in metrics
    )
    typer.echo(head)
    typer.echo(f"wrote {out}")
