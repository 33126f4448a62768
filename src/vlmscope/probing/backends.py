"""One call that fits one-vs-rest probes for every layer and every label set, on torch or sklearn.

``fit_layers`` is what both the estimators and ``run_probes`` call: the real
labels and each control shuffle are *label sets* over the same training rows,
so the torch backend solves all of them (and all classes, and all layers of
the chunk) in one batched L-BFGS run, while the sklearn backend loops over
layers and label sets with the reference estimators (the original studies'
code path, kept for exact reproduction and for cross-checks).

Class encoding: labels are class indices 0..K-1. With K == 2 there is one
binary problem per label set (positive class 1), as in sklearn; with K > 2
there are K one-vs-rest problems. Weights apply to raw features (any
standardisation is folded in).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["LayerFits", "Method", "default_tol", "fit_layers", "n_problems", "ovr_targets", "predict_classes"]

Method = Literal["logreg", "svm"]


def default_tol(solver: Literal["torch", "sklearn"]) -> float:
    """Stopping tolerance when none is given: sklearn's own 1e-4 (the original studies'), 1e-5 for
    torch (relative gradient norm; tight enough that held-out predictions no longer move)."""
    return 1e-4 if solver == "sklearn" else 1e-5


@dataclass(frozen=True)
class LayerFits:
    """Probes of L layers x T label sets x P problems (P = 1 when binary, else K)."""

    coef: np.ndarray
    """(L, T, P, D) float32."""
    intercept: np.ndarray
    """(L, T, P) float32."""
    n_iter: np.ndarray
    """(L, T, P) int."""
    converged: np.ndarray
    """(L, T, P) bool."""


def n_problems(n_classes: int) -> int:
    return 1 if n_classes == 2 else n_classes


def ovr_targets(y: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, P) targets in {-1, +1} for class indices y (N,)."""
    if n_classes == 2:
        return np.where(y == 1, 1.0, -1.0).astype(np.float32)[:, None]
    return np.where(y[:, None] == np.arange(n_classes)[None, :], 1.0, -1.0).astype(np.float32)


def predict_classes(scores: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices from scores (..., P): argmax over problems, or the sign when binary."""
    if n_classes == 2:
        return (scores[..., 0] > 0).astype(np.int64)
    return scores.argmax(-1)


def fit_layers(
    X: np.ndarray,
    label_sets: np.ndarray,
    n_classes: int,
    *,
    method: Method = "logreg",
    C: float = 1.0,
    standardize: bool = True,
    max_iter: int = 1000,
    tol: float = 1e-5,
    solver: Literal["torch", "sklearn"] = "torch",
    overwrite_X: bool = False,
) -> LayerFits:
    """Fit probes for X (L, N, D) against label sets (T, N) of class indices in [0, n_classes).

    ``overwrite_X``: the torch solver may centre/scale a float32 ``X`` in place (saves a copy).
    """
    if solver == "sklearn":
        return _fit_sklearn(X, label_sets, n_classes, method=method, C=C, standardize=standardize,
                            max_iter=max_iter, tol=tol)
    return _fit_torch(X, label_sets, n_classes, method=method, C=C, standardize=standardize,
                      max_iter=max_iter, tol=tol, overwrite_X=overwrite_X)


def _fit_torch(
    X: np.ndarray, label_sets: np.ndarray, n_classes: int, *, method: Method, C: float,
    standardize: bool, max_iter: int, tol: float, overwrite_X: bool,
) -> LayerFits:
    import torch

    from vlmscope.probing.solver import fit_linear

    L, _, D = X.shape
    T = label_sets.shape[0]
    P = n_problems(n_classes)
    Y = np.concatenate([ovr_targets(ls, n_classes) for ls in label_sets], 1)  # (N, T*P)
    Xc = np.ascontiguousarray(X, dtype=np.float32)
    if not Xc.flags.writeable:  # torch wants writable memory; the copy is ours to centre in place
        Xc, overwrite_X = Xc.copy(), True
    fit = fit_linear(
        torch.from_numpy(Xc),
        torch.from_numpy(Y),
        loss="logistic" if method == "logreg" else "squared_hinge",
        intercept="free" if method == "logreg" else "penalized",
        C=C,
        standardize=standardize,
        max_iter=max_iter,
        tol=tol,
        overwrite_X=overwrite_X,
    )
    return LayerFits(
        coef=fit.coef.numpy().reshape(L, T, P, D),
        intercept=fit.intercept.numpy().reshape(L, T, P),
        n_iter=fit.n_iter.numpy().reshape(L, T, P),
        converged=fit.converged.numpy().reshape(L, T, P),
    )


def _sklearn_estimator(method: Method, C: float, max_iter: int, tol: float) -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    if method == "logreg":
        return OneVsRestClassifier(LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, tol=tol))
    return LinearSVC(C=C, max_iter=max_iter, tol=tol)


def _fit_sklearn(
    X: np.ndarray, label_sets: np.ndarray, n_classes: int, *, method: Method, C: float,
    standardize: bool, max_iter: int, tol: float,
) -> LayerFits:
    from threadpoolctl import threadpool_limits

    L, N, D = X.shape
    T = label_sets.shape[0]
    P = n_problems(n_classes)
    coef = np.zeros((L, T, P, D), np.float32)
    intercept = np.zeros((L, T, P), np.float32)
    n_iter = np.zeros((L, T, P), np.int64)
    converged = np.ones((L, T, P), bool)
    proto = _sklearn_estimator(method, C, max_iter, tol)
    # small problems: one BLAS thread; on 2 busy cores, BLAS threads fighting torch's spinning
    # OpenMP workers make scipy's lbfgs ~10x slower than single-threaded
    limit = threadpool_limits(limits=1, user_api="blas") if N * D < 2_000_000 else contextlib.nullcontext()
    with limit:
        _sklearn_loop(X, label_sets, proto, standardize, coef, intercept, n_iter, converged)
    return LayerFits(coef, intercept, n_iter, converged)


def _sklearn_loop(
    X: np.ndarray, label_sets: np.ndarray, proto: object, standardize: bool,
    coef: np.ndarray, intercept: np.ndarray, n_iter: np.ndarray, converged: np.ndarray,
) -> None:
    """Fill the output arrays layer by layer, label set by label set, with clones of ``proto``."""
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    L, T, P = coef.shape[:3]
    for li in range(L):
        x = np.asarray(X[li], dtype=np.float32)
        mean = x.mean(0) if standardize else None
        scale = None
        if standardize:
            scale = x.std(0)
            scale[scale == 0] = 1.0
            x = (x - mean) / scale
        for t in range(T):
            est = clone(proto)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                est.fit(x, label_sets[t])
            parts = est.estimators_ if hasattr(est, "estimators_") else [est]
            w = np.concatenate([p.coef_ for p in parts], 0)  # (P, D)
            b = np.concatenate([np.ravel(p.intercept_) for p in parts], 0)
            if scale is not None:
                w = w / scale
                b = b - w @ mean
            coef[li, t], intercept[li, t] = w, b
            its = [int(np.max(p.n_iter_)) for p in parts]
            n_iter[li, t] = its if len(its) == P else its[0]
            converged[li, t] = not any(issubclass(c.category, ConvergenceWarning) for c in caught)
