"""Per-layer pictures of the lens results (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_rank_by_layer", "plot_ffn_by_layer"]

_UNIT = (-0.02, 1.02)
"""y range of a fraction panel (a little room around 0 and 1)."""


def _figure(n_panels: int):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, n_panels, figsize=(5.2 * n_panels, 3.6), squeeze=False)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return plt, fig, axes[0]


def _two_lines(
    ax,
    layers: np.ndarray,
    solid: tuple[np.ndarray, str],
    dashed: tuple[np.ndarray, str],
    *,
    xlabel: str = "layer (0 = embeddings)",
    ylabel: str | None = None,
    ylim: tuple[float, float] | None = None,
    yscale: str | None = None,
) -> None:
    """One panel: a solid ("o-") and a dashed ("s--") series over layers, labelled and with a legend."""
    ax.plot(layers, solid[0], "o-", label=solid[1])
    ax.plot(layers, dashed[0], "s--", label=dashed[1])
    if yscale is not None:
        ax.set_yscale(yscale)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.legend()


def _save(plt, fig, title: str, out: Path) -> Path:
    """Title, lay out, write ``out`` as PNG and free the figure (every lens picture ends alike)."""
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_rank_by_layer(
    out: Path,
    layers: np.ndarray,
    mean_rank: np.ndarray,
    median_rank: np.ndarray,
    top1: np.ndarray,
    mean_prob: np.ndarray,
    *,
    title: str,
) -> Path:
    """Target rank per layer (log axis) beside top-1 accuracy and target probability."""
    plt, fig, (ax_rank, ax_acc) = _figure(2)
    rank_label = "target token rank (1 = top)"
    _two_lines(ax_rank, layers, (mean_rank, "mean rank"), (median_rank, "median rank"), yscale="log", ylabel=rank_label)
    _two_lines(ax_acc, layers, (top1, "top-1 accuracy"), (mean_prob, "mean target probability"), ylim=_UNIT)
    return _save(plt, fig, title, out)


def plot_ffn_by_layer(out: Path, layers: np.ndarray, in_top: np.ndarray, in_random: np.ndarray, *, title: str) -> Path:
    """Fraction of samples whose label is among the top-neuron vs random-neuron tokens, per layer."""
    plt, fig, (ax,) = _figure(1)
    labels = {"xlabel": "layer (MLP of block layer-1)", "ylabel": "fraction with the label among tokens"}
    _two_lines(ax, layers, (in_top, "top neurons"), (in_random, "random neurons"), ylim=_UNIT, **labels)
    return _save(plt, fig, title, out)
