"""Per-layer scores against sklearn's definitions; the bootstrap is seeded and shared across layers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from vlmscope.probing.metrics import accuracy, balanced_accuracy, bootstrap_interval


def test_accuracy_and_balanced_accuracy_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.choice(4, size=50, p=[0.55, 0.25, 0.15, 0.05])
    pred = np.where(rng.random((3, 50)) < 0.6, truth, rng.integers(0, 4, (3, 50)))
    np.testing.assert_allclose(accuracy(pred, truth), [accuracy_score(truth, p) for p in pred])
    np.testing.assert_allclose(balanced_accuracy(pred, truth), [balanced_accuracy_score(truth, p) for p in pred])


def test_balanced_accuracy_counts_classes_never_predicted() -> None:
    """A class the probe never predicts still weighs 1/K (its recall is 0): averaged over the true classes."""
    truth = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(balanced_accuracy(pred, truth), [2 / 3, 1 / 3])
    np.testing.assert_allclose(balanced_accuracy(pred, truth), [balanced_accuracy_score(truth, p) for p in pred])


@pytest.mark.parametrize("level", [0.5, 0.8, 0.95])
def test_bootstrap_interval_has_the_asked_coverage(level: float) -> None:
    """Width close to the normal approximation 2 z_{(1+level)/2} sqrt(p (1 - p) / M) at every level."""
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    correct = rng.random((2, 400)) < np.array([[0.4], [0.7]])
    lo, hi, _ = bootstrap_interval(correct, n=4000, level=level, seed=1)
    acc = correct.mean(1)
    z = norm.ppf(0.5 + level / 2)
    np.testing.assert_allclose(hi - lo, 2 * z * np.sqrt(acc * (1 - acc) / 400), rtol=0.15)
    np.testing.assert_allclose((lo + hi) / 2, acc, atol=0.01)


def test_bootstrap_is_seeded_and_brackets_the_accuracy() -> None:
    rng = np.random.default_rng(1)
    correct = rng.random((4, 200)) < np.array([[0.3], [0.5], [0.8], [0.95]])
    lo, hi, std = bootstrap_interval(correct, n=2000, level=0.95, seed=7)
    acc = correct.mean(1)
    assert np.all(lo <= acc) and np.all(acc <= hi)
    # width close to the normal approximation 2 * 1.96 * sqrt(p (1 - p) / n)
    np.testing.assert_allclose(hi - lo, 2 * 1.96 * np.sqrt(acc * (1 - acc) / 200), rtol=0.25)
    np.testing.assert_allclose(std, np.sqrt(acc * (1 - acc) / 200), rtol=0.15)
    again = bootstrap_interval(correct, n=2000, level=0.95, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip((lo, hi, std), again))
    assert not np.array_equal(std, bootstrap_interval(correct, n=2000, level=0.95, seed=8)[2])
    # the same resamples for every layer: identical rows give identical intervals
    twin = np.stack([correct[1], correct[1]])
    lo2, hi2, _ = bootstrap_interval(twin, n=500, level=0.9, seed=0)
    assert lo2[0] == lo2[1] and hi2[0] == hi2[1]
    nan = bootstrap_interval(correct, n=0, level=0.95, seed=0)
    assert all(np.isnan(x).all() for x in nan)
