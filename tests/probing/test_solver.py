"""The batched torch solver against sklearn's reference estimators on the same splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from vlmscope.probing.backends import fit_layers, ovr_targets, predict_classes
from vlmscope.probing.solver import fit_linear
from vlmscope.probing.synthetic import planted_dataset


def _layers(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ds = planted_dataset(n_samples=n, n_layers=4, dim=dim, signal_from=2, snr=1.0, seed=seed)
    X = ds["hidden"].values.transpose(1, 0, 2).astype(np.float32)  # (L, N, D)
    y = np.unique(ds["relation"].values, return_inverse=True)[1]
    return X, y


def _logistic_objective(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, C: float) -> float:
    m = X.astype(np.float64) @ w.astype(np.float64) + b
    return float(C * np.logaddexp(0, -y * m).sum() + 0.5 * w.astype(np.float64) @ w.astype(np.float64))


@pytest.mark.parametrize(
    ("n", "dim"),
    [(160, 200), (300, 24)],
    ids=["sample-space (N <= D)", "feature-space (N > D)"],
)
def test_logistic_matches_sklearn_per_layer(n: int, dim: int) -> None:
    X, y = _layers(n, dim)
    idx_tr, idx_te = train_test_split(np.arange(n), test_size=0.25, random_state=0, stratify=y)
    ours = fit_layers(X[:, idx_tr], y[idx_tr][None], 4, method="logreg", standardize=False, tol=1e-6)
    for layer in range(X.shape[0]):
        ref = OneVsRestClassifier(LogisticRegression(C=1.0, solver="lbfgs", max_iter=3000, tol=1e-6))
        ref.fit(X[layer, idx_tr], y[idx_tr])
        scores = X[layer, idx_te] @ ours.coef[layer, 0].T + ours.intercept[layer, 0]
        acc_ours = float((predict_classes(scores, 4) == y[idx_te]).mean())
        acc_ref = float((ref.predict(X[layer, idx_te]) == y[idx_te]).mean())
        # one test sample of slack: on a near-tie a less converged reference flips it
        # (sklearn 1.9's lbfgs stops at 3.8976 where ours reaches 3.8909 on layer 3);
        # the objective check below is the sharp one
        assert abs(acc_ours - acc_ref) <= 1 / len(idx_te) + 1e-9, (layer, acc_ours, acc_ref)
        # the same optimum, not just the same accuracy: objectives agree to 1e-3 relative
        for k, est in enumerate(ref.estimators_):
            yk = np.where(y[idx_tr] == k, 1.0, -1.0)
            f_ours = _logistic_objective(X[layer, idx_tr], yk, ours.coef[layer, 0, k], ours.intercept[layer, 0, k], 1.0)
            f_ref = _logistic_objective(X[layer, idx_tr], yk, est.coef_[0], est.intercept_[0], 1.0)
            assert f_ours <= f_ref * (1 + 1e-3), (layer, k, f_ours, f_ref)


def test_standardized_logistic_matches_sklearn_pipeline() -> None:
    X, y = _layers(200, 64, seed=3)
    idx_tr, idx_te = train_test_split(np.arange(200), test_size=0.3, random_state=1, stratify=y)
    ours = fit_layers(X[:, idx_tr], y[idx_tr][None], 4, method="logreg", C=0.5, standardize=True, tol=1e-6)
    for layer in range(X.shape[0]):
        ref = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=0.5, max_iter=3000, tol=1e-6)))
        ref.fit(X[layer, idx_tr], y[idx_tr])
        ref_scores = ref.decision_function(X[layer, idx_te])
        scores = X[layer, idx_te] @ ours.coef[layer, 0].T + ours.intercept[layer, 0]
        np.testing.assert_allclose(scores, ref_scores, atol=2e-2 * np.abs(ref_scores).max())


@pytest.mark.parametrize(("n", "dim"), [(150, 120), (300, 16)])
def test_linear_svm_matches_linearsvc(n: int, dim: int) -> None:
    X, y = _layers(n, dim, seed=5)
    idx_tr, idx_te = train_test_split(np.arange(n), test_size=0.3, random_state=2, stratify=y)
    ours = fit_layers(X[:, idx_tr], y[idx_tr][None], 4, method="svm", standardize=True, tol=1e-6)
    for layer in range(X.shape[0]):
        ref = make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=20_000, tol=1e-6))
        ref.fit(X[layer, idx_tr], y[idx_tr])
        scores = X[layer, idx_te] @ ours.coef[layer, 0].T + ours.intercept[layer, 0]
        acc_ours = float((predict_classes(scores, 4) == y[idx_te]).mean())
        acc_ref = float((ref.predict(X[layer, idx_te]) == y[idx_te]).mean())
        assert abs(acc_ours - acc_ref) <= 0.01, (layer, acc_ours, acc_ref)


def test_binary_problem_is_one_column_like_sklearn() -> None:
    X, y = _layers(120, 30, seed=7)
    yb = (y >= 2).astype(np.int64)
    ours = fit_layers(X, yb[None], 2, method="logreg", standardize=False, tol=1e-7)
    assert ours.coef.shape == (4, 1, 1, 30)
    ref = LogisticRegression(C=1.0, max_iter=3000, tol=1e-6).fit(X[3], yb)
    ys = np.where(yb == 1, 1.0, -1.0)
    f_ours = _logistic_objective(X[3], ys, ours.coef[3, 0, 0], ours.intercept[3, 0, 0], 1.0)
    f_ref = _logistic_objective(X[3], ys, ref.coef_[0], ref.intercept_[0], 1.0)
    assert f_ours <= f_ref * (1 + 1e-4), (f_ours, f_ref)
    # a flat optimum: coefficients agree to a few per cent, predictions exactly
    np.testing.assert_allclose(ours.coef[3, 0, 0], ref.coef_[0], rtol=0, atol=2e-2 * np.abs(ref.coef_).max())
    scores = X[3] @ ours.coef[3, 0, 0] + ours.intercept[3, 0, 0]
    assert ((scores > 0) == ref.predict(X[3]).astype(bool)).mean() >= 0.99


def test_label_sets_are_independent_problems() -> None:
    """Fitting two label sets together gives what fitting each alone gives."""
    X, y = _layers(100, 50, seed=9)
    rng = np.random.default_rng(0)
    other = rng.permutation(y)
    both = fit_layers(X, np.stack([y, other]), 4, method="logreg", tol=1e-7)
    alone = fit_layers(X, other[None], 4, method="logreg", tol=1e-7)
    np.testing.assert_allclose(both.coef[:, 1], alone.coef[:, 0], atol=1e-3 * np.abs(alone.coef).max())


def test_fit_linear_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"X must be \(L, N, D\) and y \(N, P\)"):
        fit_linear(torch.zeros(5, 3), torch.zeros(5, 1))
    Y = torch.from_numpy(ovr_targets(np.array([0, 1, 2, 0]), 3))
    assert Y.shape == (4, 3) and set(Y.unique().tolist()) == {-1.0, 1.0}


def test_inputs_are_left_untouched_unless_overwrite_is_allowed() -> None:
    X, y = _layers(60, 20, seed=11)
    X = np.ascontiguousarray(X)
    before = X.copy()
    fit_layers(X, y[None], 4, method="logreg", standardize=True)
    np.testing.assert_array_equal(X, before)
    fit_layers(X, y[None], 4, method="logreg", standardize=True, overwrite_X=True)
    assert not np.array_equal(X, before)  # centred and scaled in place
