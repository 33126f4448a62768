"""The report's pictures: pure functions from arrays to PNG bytes.

Figures are built on matplotlib's object API (``Figure`` + Agg canvas), never
through ``pyplot``'s global state, under matplotlib's default style so a user's
matplotlibrc cannot change the bytes; PNG metadata (software version) is
stripped. The same inputs therefore give byte-identical PNGs, and a second
``dvc repro`` of the report stage changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "ProbeCurve",
    "render_png",
    "probe_plot",
    "layer_lines_plot",
    "grouped_bars_plot",
    "attention_overlay_plot",
]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def render_png(draw: Callable[[Figure], None], *, size: tuple[float, float], dpi: int) -> bytes:
    """Draw on a fresh figure of ``size`` inches and return deterministic PNG bytes."""
    with matplotlib.style.context("default"):
        fig = Figure(figsize=size, dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


@dataclass(frozen=True)
class ProbeCurve:
    """One probe's per-layer results; arrays all of shape (L,)."""

    label: str
    layer: np.ndarray
    accuracy: np.ndarray
    ci_low: np.ndarray | None
    ci_high: np.ndarray | None
    control: np.ndarray | None
    best_layer: int
    best_accuracy: float


def probe_plot(curves: Sequence[ProbeCurve], *, title: str, dpi: int, chance: float | None = None) -> bytes:
    """Accuracy per layer with its CI band, the control task dashed, best layer starred."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for i, c in enumerate(curves):
            color = _COLORS[i % len(_COLORS)]
            ax.plot(c.layer, c.accuracy, color=color, lw=1.8, marker="o", ms=3, label=f"{c.label}")
            if c.ci_low is not None and c.ci_high is not None:
                ax.fill_between(c.layer, c.ci_low, c.ci_high, color=color, alpha=0.18, lw=0)
            if c.control is not None:
                ax.plot(c.layer, c.control, color=color, lw=1.2, ls="--", label=f"{c.label} control")
            ax.plot([c.best_layer], [c.best_accuracy], marker="*", ms=14, color=color, mec="black", mew=0.6)
            ax.annotate(
                f"best L{c.best_layer}: {c.best_accuracy:.2f}",
                (c.best_layer, c.best_accuracy),
                textcoords="offset points",
                xytext=(6, 6 + 11 * i),
                fontsize=8,
                color=color,
            )
        if chance is not None:
            ax.axhline(chance, color="grey", lw=1, ls=":", label=f"chance {chance:.2f}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylabel("probe accuracy (test)")
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", ncols=2 if len(curves) > 2 else 1)

    return render_png(draw, size=(7.0, 3.8), dpi=dpi)


def layer_lines_plot(
    layer: np.ndarray,
    panels: Sequence[tuple[str, Sequence[tuple[str, np.ndarray, str]], bool]],
    *,
    title: str,
    dpi: int,
    xlabel: str = "layer",
) -> bytes:
    """Side-by-side panels of per-layer lines.

    ``panels``: ``(y label, [(series name, values (L,), line style)], log y)``;
    e.g. lens accuracy / target probability in one panel, mean target rank
    (log scale) in another.
    """

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (ylabel, series, logy) in zip(axes, panels, strict=True):
            for i, (name, values, style) in enumerate(series):
                ax.plot(layer, values, ls=style, marker="o", ms=3, color=_COLORS[i % len(_COLORS)], label=name)
            if logy:
                ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=10)

    return render_png(draw, size=(max(6.0, 4.2 * len(panels)), 3.4), dpi=dpi)


def grouped_bars_plot(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    ylabel: str,
    dpi: int,
) -> bytes:
    """Bars per group, one colour per series (e.g. original vs masked accuracy per query type)."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        x = np.arange(len(groups))
        width = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series):
            vals = np.asarray(values, dtype=float)
            ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name, color=_COLORS[i % len(_COLORS)])
        ax.set_xticks(x, list(groups), rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)

    return render_png(draw, size=(max(5.0, 0.9 * len(groups) + 2.5), 3.6), dpi=dpi)


def attention_overlay_plot(
    images: Sequence[np.ndarray],
    maps: np.ndarray,
    *,
    row_titles: Sequence[str],
    col_titles: Sequence[str],
    title: str,
    dpi: int,
) -> bytes:
    """Each sample's image with its patch-grid attention stretched over it, one column per layer.

    ``images``: S arrays (H, W, 3) uint8; ``maps``: (S, K, rows, cols), NaN
    where a sample has no patch. Each map is min-max normalised on its own
    so the pattern shows even when the mass on image tokens is small.
    """
    n_s, n_k = maps.shape[0], maps.shape[1]

    def draw(fig: Figure) -> None:
        axes = fig.subplots(n_s, n_k + 1, squeeze=False)
        for s in range(n_s):
            img = images[s]
            h, w = img.shape[:2]
            axes[s][0].imshow(img)
            axes[s][0].set_title(row_titles[s], fontsize=7)
            for k in range(n_k):
                ax = axes[s][k + 1]
                m = maps[s, k]
                finite = np.isfinite(m)
                lo = float(np.min(m[finite])) if finite.any() else 0.0
                hi = float(np.max(m[finite])) if finite.any() else 1.0
                norm = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
                ax.imshow(img)
                ax.imshow(
                    np.ma.masked_invalid(norm),
                    cmap="inferno",
                    alpha=0.55,
                    extent=(0, w, h, 0),
                    interpolation="nearest",
                    vmin=0.0,
                    vmax=1.0,
                )
                if s == 0:
                    ax.set_title(col_titles[k], fontsize=8)
        for row in axes:
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
        fig.suptitle(title, fontsize=10)

    return render_png(draw, size=(1.7 * (n_k + 1), 1.8 * n_s + 0.4), dpi=dpi)
