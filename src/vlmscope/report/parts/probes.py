"""Per-layer probe curves with their control task, one plot per model x dataset.

Reads ``probes/<model>/<dataset>/<label>/per_layer.csv`` (``layer, accuracy,
balanced_accuracy, accuracy_std, ci_low, ci_high, control_accuracy,
selectivity, n_train, n_test``; only ``layer`` and ``accuracy`` are required)
and the probe's ``metrics.json`` when present. The best layer is the probe
writer's ``best_layer`` when it recorded one, else the first layer of highest
test accuracy.
"""

from __future__ import annotations

from itertools import groupby

import numpy as np
import polars as pl

from vlmscope.report.context import Context
from vlmscope.report.html import Cell, note, table
from vlmscope.report.inventory import ProbeRun
from vlmscope.report.plots import ProbeCurve, probe_plot
from vlmscope.report.readers import ReportInputError, Scalar, read_csv, read_metrics

__all__ = ["probe_curve", "render_probes"]


def _col(df: pl.DataFrame, name: str) -> np.ndarray | None:
    if name not in df.columns:
        return None
    return df[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def probe_curve(label: str, per_layer: pl.DataFrame, metrics: dict[str, Scalar]) -> ProbeCurve:
    """A ``ProbeCurve`` from one ``per_layer.csv`` (rows sorted by layer) and its metrics."""
    df = per_layer.sort("layer")
    layer = df["layer"].cast(pl.Int64).to_numpy()
    acc = _col(df, "accuracy")
    if acc is None:
        raise ReportInputError(f"probe {label!r}: per_layer.csv has no 'accuracy' column")
    best = metrics.get("best_layer")
    if isinstance(best, (int, float)) and not isinstance(best, bool) and int(best) in set(layer.tolist()):
        best_layer = int(best)
    else:
        best_layer = int(layer[int(np.nanargmax(acc))]) if np.isfinite(acc).any() else int(layer[0])
    best_acc = float(acc[list(layer).index(best_layer)])
    return ProbeCurve(
        label=label,
        layer=layer,
        accuracy=acc,
        ci_low=_col(df, "ci_low"),
        ci_high=_col(df, "ci_high"),
        control=_col(df, "control_accuracy"),
        best_layer=best_layer,
        best_accuracy=best_acc,
    )


def _at(df: pl.DataFrame, layer: int, col: str) -> Cell:
    if col not in df.columns:
        return None
    row = df.filter(pl.col("layer") == layer)
    if row.height == 0:
        return None
    v = row[col][0]
    return v if isinstance(v, (int, float)) else None


def _read_probe(ctx: Context, p: ProbeRun) -> list[tuple[str, pl.DataFrame, dict[str, Scalar]]]:
    """(label, per-layer rows, metrics) of each probe in ``p``'s directory.

    A per-label directory holds one probe; a per-dataset one may hold several
    (a ``label`` column in ``per_layer.csv``) or one whose label its
    ``metrics.json`` names (``label``), else the dataset's name is used.
    """
    df = read_csv(ctx.used(p.path / "per_layer.csv"), required=("layer", "accuracy"))
    mpath = p.path / "metrics.json"
    metrics = read_metrics(ctx.used(mpath)) if mpath.is_file() else {}
    if df.height == 0:
        raise ReportInputError(f"{p.path / 'per_layer.csv'}: no rows")
    if p.label is None and "label" in df.columns:
        out = []
        for label in sorted(df["label"].cast(pl.String).unique().to_list()):
            sub = df.filter(pl.col("label").cast(pl.String) == label)
            sub_metrics = {k[len(label) + 1 :]: v for k, v in metrics.items() if k.startswith(f"{label}/")}
            out.append((label, sub, sub_metrics))
        return out
    label = p.label or next(
        (str(metrics[k]) for k in ("label", "config/label", "probe/label") if isinstance(metrics.get(k), str)),
        p.dataset,
    )
    return [(label, df, metrics)]


def render_probes(ctx: Context, runs: list[ProbeRun]) -> str:
    """One plot per model x dataset (all its labels) and a best-layer summary table."""
    if not runs:
        return ""
    html: list[str] = []
    rows: list[list[Cell]] = []
    for (model, ds), group in groupby(runs, key=lambda p: (p.model, p.dataset)):
        curves = []
        for p in group:
            probes = ctx.attempt(html, _read_probe, ctx, p)
            if probes is None:
                continue
            for label, df, metrics in probes:
                c = probe_curve(label, df, metrics)
                curves.append(c)
                control = _at(df, c.best_layer, "control_accuracy")
                sel = _at(df, c.best_layer, "selectivity")
                if sel is None and isinstance(control, float):
                    sel = c.best_accuracy - control
                rows.append(
                    [
                        model,
                        ds,
                        label,
                        c.best_layer,
                        c.best_accuracy,
                        _at(df, c.best_layer, "balanced_accuracy"),
                        _at(df, c.best_layer, "ci_low"),
                        _at(df, c.best_layer, "ci_high"),
                        control,
                        sel,
                        _at(df, c.best_layer, "n_train"),
                        _at(df, c.best_layer, "n_test"),
                    ]
                )
        if curves:
            png = probe_plot(curves, title=f"{model} on {ds}: per-layer probe accuracy", dpi=ctx.cfg.dpi)
            html.append(
                ctx.picture(
                    png,
                    "probe",
                    model,
                    ds,
                    alt=f"per-layer probe accuracy of {model} on {ds}",
                    caption=(
                        f"{ds} ({model}): test accuracy per layer (band: confidence interval), "
                        "control task dashed, best layer starred."
                    ),
                )
            )
    if rows:
        header = [
            "model",
            "dataset",
            "label",
            "best layer",
            "accuracy",
            "balanced acc.",
            "CI low",
            "CI high",
            "control",
            "selectivity",
            "n train",
            "n test",
        ]
        html.append(table(header, rows, caption="Probes at their best layer"))
        html.append(note("selectivity = probe accuracy − control-task accuracy at the same layer."))
    return "".join(html)
