"""Training results of checkpoints under ``models/``: final metrics and curves.

Reads ``models/<model>/metrics.json`` (flat numbers; nested objects are
joined with ``/``) and, when the training run kept them, dvclive's curves
``models/<model>/dvclive/plots/metrics/**/*.tsv`` (columns ``step`` and the
metric), drawn one panel per metric.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from vlmscope.report.context import Context
from vlmscope.report.html import Cell, esc, table
from vlmscope.report.inventory import ModelEntry
from vlmscope.report.plots import layer_lines_plot
from vlmscope.report.readers import read_metrics

__all__ = ["render_training"]

_MAX_CURVES = 6


def _curves(ctx: Context, m: ModelEntry) -> str:
    base = m.path / "dvclive" / "plots" / "metrics"
    if not base.is_dir():
        return ""
    html = []
    for tsv in sorted(base.rglob("*.tsv"))[:_MAX_CURVES]:
        try:
            df = pl.read_csv(ctx.used(tsv), separator="\t")
        except Exception as e:  # polars raises several kinds
            html.append(ctx.problem(f"{tsv}: unreadable ({e})"))
            continue
        name = tsv.relative_to(base).with_suffix("").as_posix()
        value = name.rsplit("/", 1)[-1]
        if "step" not in df.columns or value not in df.columns or df.height == 0:
            continue
        step = df["step"].cast(pl.Float64).to_numpy()
        v = df[value].cast(pl.Float64).to_numpy()
        png = layer_lines_plot(
            step,
            [(name, [(name, v, "-")], bool(np.all(v > 0)) and "loss" in name)],
            title=f"{m.name}: {name}",
            dpi=ctx.cfg.dpi,
            xlabel="step",
        )
        html.append(ctx.picture(png, "training", m.name, name, alt=f"{name} during training of {m.name}"))
    return "".join(html)


def render_training(ctx: Context, models: list[ModelEntry]) -> str:
    if not models:
        return ""
    html = []
    for m in models:
        metrics = ctx.attempt(html, read_metrics, ctx.used(m.path / "metrics.json"))
        if metrics is None:
            continue
        rows: list[list[Cell]] = [
            [k, v if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)]
            for k, v in sorted(metrics.items())
        ]
        fam = f" ({m.family})" if m.family else ""
        html.append(f"<h4>{esc(m.name)}{esc(fam)}</h4>")
        html.append(table(["metric", "value"], rows, max_rows=ctx.cfg.max_table_rows))
        html.append(_curves(ctx, m))
    return "".join(html)
