"""Per-layer pictures of the lens results (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_rank_by_layer", "plot_ffn_by_layer"]


def _figure(n_panels: int):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, n_panels, figsize=(5.2 * n_panels, 3.6), squeeze=False)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return plt, fig, axes[0]


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
    ax_rank.plot(layers, mean_rank, "o-", label="mean rank")
    ax_rank.plot(layers, median_rank, "s--", label="median rank")
    ax_rank.set_yscale("log")
    ax_rank.set_xlabel("layer (0 = embeddings)")
    ax_rank.set_ylabel("target token rank (1 = top)")
    ax_rank.legend()
    ax_acc.plot(layers, top1, "o-", label="top-1 accuracy")
    ax_acc.plot(layers, mean_prob, "s--", label="mean target probability")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_xlabel("layer (0 = embeddings)")
    ax_acc.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_ffn_by_layer(out: Path, layers: np.ndarray, in_top: np.ndarray, in_random: np.ndarray, *, title: str) -> Path:
    """Fraction of samples whose label is among the top-neuron vs random-neuron tokens, per layer."""
    plt, fig, (ax,) = _figure(1)
    ax.plot(layers, in_top, "o-", label="top neurons")
    ax.plot(layers, in_random, "s--", label="random neurons")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("layer (MLP of block layer-1)")
    ax.set_ylabel("fraction with the label among tokens")
    ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
