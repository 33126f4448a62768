"""Output-layer fine-tuning (counting study): head accuracy before vs after, and its training curve.

Reads ``output_layer/<model>/<dataset>/metrics.json`` as
``vlmscope.training.trainers.output_layer`` writes it (``<split>_n``,
``<split>_accuracy_before``, ``<split>_accuracy_after`` for train / valid /
test / eval, plus ``best_epoch``, ``epochs``, ``trained_rows``) and
``history.csv`` (``epoch, train_loss, valid_accuracy``).
"""

from __future__ import annotations

import re

import polars as pl

from vlmscope.report.context import Context
from vlmscope.report.html import Cell, note, table
from vlmscope.report.inventory import Run
from vlmscope.report.parts.lens import stat_panels
from vlmscope.report.plots import layer_lines_plot
from vlmscope.report.readers import read_csv, read_metrics

__all__ = ["render_output_layer"]

_SPLIT_ORDER = ("train", "valid", "test", "eval")
_KEY = re.compile(r"^(?P<split>.+)_accuracy_(?P<when>before|after)$")


def _split_key(s: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.index(s) if s in _SPLIT_ORDER else len(_SPLIT_ORDER), s)


def render_output_layer(ctx: Context, runs: list[Run]) -> str:
    if not runs:
        return ""
    html: list[str] = []
    rows: list[list[Cell]] = []
    for r in runs:
        m = ctx.attempt(html, read_metrics, ctx.used(r.path / "metrics.json"))
        if m is None:
            continue
        splits = sorted({mt["split"] for k in m if (mt := _KEY.match(k))}, key=_split_key)
        for s in splits:
            before, after = m.get(f"{s}_accuracy_before"), m.get(f"{s}_accuracy_after")
            delta = after - before if isinstance(before, (int, float)) and isinstance(after, (int, float)) else None
            rows.append([r.model, r.dataset, s, m.get(f"{s}_n"), before, after, delta, m.get("best_epoch")])
        hist = r.path / "history.csv"
        if hist.is_file():
            df = ctx.attempt(html, read_csv, ctx.used(hist), required=("epoch",))
            if df is None:
                continue
            df = df.sort("epoch")
            panels = stat_panels(df, x="epoch")
            if df.height and panels:
                png = layer_lines_plot(
                    df["epoch"].cast(pl.Float64).to_numpy(),
                    panels,
                    xlabel="epoch",
                    title=f"{r.model} on {r.dataset}: output-layer fine-tuning",
                    dpi=ctx.cfg.dpi,
                )
                html.append(
                    ctx.picture(
                        png,
                        "output-layer",
                        r.model,
                        r.dataset,
                        alt=f"output-layer fine-tuning curve, {r.model} on {r.dataset}",
                        caption="Training loss and validation accuracy of the new output layer "
                        "per epoch (the best-validation epoch is kept).",
                    )
                )
    if rows:
        header = ["model", "dataset", "split", "n", "accuracy before", "accuracy after", "change", "best epoch"]
        html.insert(0, table(header, rows, caption="Output-layer fine-tuning: head accuracy before vs after"))
        html.insert(
            1,
            note(
                "Accuracy of the last-layer, last-token state read through the original unembedding "
                "(before) and the fine-tuned one (after)."
            ),
        )
    return "".join(html)
