"""Scores of per-layer predictions: accuracy, balanced accuracy, seeded bootstrap intervals.

Everything is vectorised over layers: predictions come as (L, M) class
indices against one (M,) truth vector.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "balanced_accuracy", "bootstrap_interval"]


def accuracy(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(L,) fraction of correct predictions; pred (L, M), truth (M,)."""
    return (pred == truth[None, :]).mean(1)


def balanced_accuracy(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(L,) mean per-class recall over the classes present in ``truth`` (sklearn's definition)."""
    classes = np.unique(truth)
    correct = pred == truth[None, :]
    recalls = [correct[:, truth == c].mean(1) for c in classes]
    return np.mean(np.stack(recalls, 1), 1)


def bootstrap_interval(
    correct: np.ndarray, *, n: int, level: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap of accuracy over test rows: (low, high, std), each (L,).

    ``correct`` (L, M) bool. The same ``n`` resamples of the M rows serve every
    layer, so intervals of two layers are comparable. ``n == 0`` gives NaNs.
    """
    L, M = correct.shape
    if n == 0 or M == 0:
        nan = np.full(L, np.nan)
        return nan, nan, nan
    rng = np.random.default_rng([seed, 0xB007])
    # resample counts (n, M): how often each test row is drawn in each resample
    idx = rng.integers(0, M, size=(n, M))
    counts = np.zeros((n, M), dtype=np.float32)
    np.add.at(counts, (np.repeat(np.arange(n), M), idx.ravel()), 1.0)
    accs = counts @ correct.T.astype(np.float32) / M  # (n, L)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(accs, [alpha, 1.0 - alpha], axis=0)
    return low, high, accs.std(0)
