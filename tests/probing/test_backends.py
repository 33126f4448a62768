"""Both probe backends give raw-feature probes: scores = x @ coef.T + intercept, standardisation folded in.

The stored probes are applied to raw activations (``probes/config.json`` says so), so the
standardisation a backend fits on must be folded back into ``coef`` and ``intercept`` exactly; checked
here against sklearn's own StandardScaler + estimator pipeline on features with a large offset, where
a wrong fold moves every score.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vlmscope.probing.backends import fit_layers, predict_classes


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 120)
    centers = rng.normal(0, 1.5, (3, 6))
    x = centers[y] + rng.normal(0, 1, (120, 6))
    x = x * np.array([1, 5, 0.2, 2, 1, 3]) + np.array([10, -4, 3, 0, 7, -20])  # offsets and scales differ per dim
    return x.astype(np.float32)[None], y[None]  # (L=1, N, D), (T=1, N)


@pytest.mark.parametrize("solver", ["sklearn", "torch"])
def test_standardized_probe_scores_raw_features_like_the_sklearn_pipeline(solver: str) -> None:
    X, y = _data()
    fits = fit_layers(X, y, 3, method="logreg", C=0.5, standardize=True, solver=solver, max_iter=5000, tol=1e-8)
    scores = X[0] @ fits.coef[0, 0].T + fits.intercept[0, 0]  # (N, P) on raw features
    ref = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=0.5, max_iter=5000, tol=1e-8)))
    ref.fit(X[0].astype(np.float64), y[0])
    want = ref.decision_function(X[0].astype(np.float64))
    np.testing.assert_allclose(scores, want, atol=2e-2, rtol=1e-2)
    assert (predict_classes(scores, 3) == ref.predict(X[0])).mean() >= 0.99


def test_binary_scores_read_by_their_sign() -> None:
    scores = np.array([[[-2.0], [0.5], [3.0]]])  # (L=1, N=3, P=1)
    assert predict_classes(scores, 2).tolist() == [[0, 1, 1]]
    multi = np.array([[0.1, 0.9, -1.0], [2.0, 0.0, 1.0]])
    assert predict_classes(multi, 3).tolist() == [1, 0]
