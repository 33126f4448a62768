"""Logit-lens and FFN-neuron summaries per layer, with a few FFN example rows.

Reads ``lens/<model>/<dataset>/logit/summary.csv`` and
``lens/<model>/<dataset>/ffn/summary.csv`` (one row per ``layer``; every other
numeric column is a per-layer statistic) and the first rows of
``ffn/ffn.jsonl``. Statistics are split into panels by their scale: ranks
(log axis), fractions and probabilities in [0, 1], and anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from vlmscope.report.context import Context
from vlmscope.report.html import Cell, esc, note, table
from vlmscope.report.inventory import Run
from vlmscope.report.plots import layer_lines_plot
from vlmscope.report.readers import ReportInputError, read_csv, read_jsonl_head

__all__ = ["stat_panels", "render_logit_lens", "render_ffn", "pick_layers"]

_SKIP = {"layer", "n", "n_samples", "count"}


def stat_panels(df: pl.DataFrame, x: str = "layer") -> list[tuple[str, list[tuple[str, np.ndarray, str]], bool]]:
    """Group a table's numeric columns (but ``x`` and counts) into plot panels: [0, 1] values, ranks (log), the rest."""
    unit: list[tuple[str, np.ndarray, str]] = []
    ranks: list[tuple[str, np.ndarray, str]] = []
    other: list[tuple[str, np.ndarray, str]] = []
    for col in df.columns:
        if col == x or col in _SKIP or not df.schema[col].is_numeric():
            continue
        v = df[col].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        style = "--" if ("random" in col or "baseline" in col or "control" in col) else "-"
        finite = v[np.isfinite(v)]
        if "rank" in col:
            ranks.append((col, v, style))
        elif finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            unit.append((col, v, style))
        else:
            other.append((col, v, style))
    panels = []
    if unit:
        panels.append(("fraction / probability", unit, False))
    if ranks:
        logy = all(np.nanmin(v) > 0 for _, v, _ in ranks if np.isfinite(v).any())
        panels.append(("rank" + (" (log)" if logy else ""), ranks, logy))
    if other:
        panels.append(("value", other, False))
    return panels


def _summary(ctx: Context, run: Run, kind: str, what: str) -> str:
    path = run.path / "summary.csv"
    if not path.is_file():
        return ctx.problem(f"{path}: missing (the {what} directory has no summary.csv)")
    try:
        df = read_csv(ctx.used(path), required=("layer",))
    except ReportInputError as e:
        return ctx.problem(str(e))
    df = df.sort("layer")
    panels = stat_panels(df)
    if df.height == 0 or not panels:
        return ctx.problem(f"{path}: no numeric per-layer column to show")
    layer = df["layer"].cast(pl.Float64).to_numpy()
    png = layer_lines_plot(layer, panels, title=f"{run.model} on {run.dataset}: {what}", dpi=ctx.cfg.dpi)
    fig = ctx.picture(
        png,
        kind,
        run.model,
        run.dataset,
        alt=f"{what} of {run.model} on {run.dataset}",
        caption=f"{what}, {run.model} on {run.dataset}, per layer.",
    )
    cols = [c for c in df.columns if c == "layer" or df.schema[c].is_numeric()]
    rows: list[list[Cell]] = [list(r) for r in df.select(cols).iter_rows()]
    return fig + table(
        cols, rows, caption=f"{what} per layer: {run.model} on {run.dataset}", max_rows=ctx.cfg.max_table_rows
    )


def render_logit_lens(ctx: Context, runs: list[Run]) -> str:
    if not runs:
        return ""
    return "".join(_summary(ctx, r, "logit-lens", "logit lens") for r in runs)


def pick_layers(layers: Sequence[Any], k: int) -> list[Any]:
    """``k`` evenly spaced entries of ``layers`` (first and last included), in order."""
    if len(layers) <= k:
        return list(layers)
    idx = np.unique(np.linspace(0, len(layers) - 1, k).round().astype(int))
    return [layers[i] for i in idx]


def _tokens(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return " · ".join(_tokens(x) for x in v)
    if isinstance(v, dict):
        return " · ".join(f"{k}: {_tokens(x)}" for k, x in v.items())
    return repr(v) if isinstance(v, str) else str(v)


def _example(rec: dict[str, Any], k_layers: int) -> str:
    """One ``ffn.jsonl`` record: its scalar fields, then top vs random tokens at a few layers."""
    scalars = {k: v for k, v in rec.items() if not isinstance(v, (list, dict))}
    head = "; ".join(f"{k}: {v}" for k, v in scalars.items())
    per_layer = {k: v for k, v in rec.items() if isinstance(v, (list, dict))}
    layered = [v for v in per_layer.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
    if layered:
        rows_in = layered[0]
        layer_key = next((k for k in ("layer", "l") if k in rows_in[0]), None)
        chosen = pick_layers(rows_in, k_layers)
        cols = [c for c in rows_in[0] if c != layer_key]
        rows: list[list[Cell]] = [
            [r.get(layer_key) if layer_key else i, *(_tokens(r.get(c)) for c in cols)] for i, r in enumerate(chosen)
        ]
        body = table(["layer", *cols], rows, cell_class=[None, *["tokens"] * len(cols)])
    elif per_layer:
        keys = sorted(per_layer)
        body = table(["field", "value"], [[k, _tokens(per_layer[k])] for k in keys], cell_class=[None, "tokens"])
    else:
        body = ""
    return f"<h4>{esc(head) if head else 'example'}</h4>{body}"


def render_ffn(ctx: Context, runs: list[Run]) -> str:
    """FFN top-neuron vs random-neuron token match per layer, and a few example prompts."""
    if not runs:
        return ""
    html = []
    for r in runs:
        html.append(_summary(ctx, r, "ffn", "FFN top-neuron tokens vs random neurons"))
        jl = r.path / "ffn.jsonl"
        if ctx.cfg.ffn_examples and jl.is_file():
            recs = ctx.attempt(html, read_jsonl_head, ctx.used(jl), ctx.cfg.ffn_examples)
            if recs is None:
                continue
            if recs:
                html.append(note(f"First {len(recs)} record(s) of {r.model}/{r.dataset}/ffn/ffn.jsonl:"))
                html.extend(_example(rec, ctx.cfg.ffn_layers) for rec in recs)
    return "".join(html)
