"""Probe estimators with sklearn's contract, batched over layers.

``LogisticProbe`` (one-vs-rest L2 logistic regression, as sklearn's
``LogisticRegression`` with lbfgs) and ``LinearSVMProbe`` (as ``LinearSVC``)
take keyword-only hyperparameters that ``__init__`` only stores; ``fit``
validates them, returns ``self`` and sets attributes ending in ``_``.

``X`` may be (N, D), one layer, or (L, N, D), L layers fitted at once; every
learned array then gains a leading L axis and ``predict``/``score`` answer
per layer.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from vlmscope.errors import ConfigError
from vlmscope.probing.backends import (
    Method,
    default_tol,
    fit_layers,
    n_problems,
    predict_classes,
)

__all__ = ["LinearSVMProbe", "LogisticProbe"]


class _LinearProbe(ClassifierMixin, BaseEstimator):
    _method: ClassVar[Method]

    def __init__(
        self,
        *,
        C: float = 1.0,
        standardize: bool = True,
        max_iter: int = 1000,
        tol: float | None = None,
        solver: Literal["torch", "sklearn"] = "torch",
    ) -> None:
        self.C = C
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver

    def _validate(self) -> None:
        if not isinstance(self.C, (int, float)) or isinstance(self.C, bool) or not self.C > 0:
            raise ConfigError(f"C must be a float > 0, got {self.C!r}")
        if not isinstance(self.max_iter, int) or isinstance(self.max_iter, bool) or self.max_iter < 1:
            raise ConfigError(f"max_iter must be an int >= 1, got {self.max_iter!r}")
        if self.tol is not None and (not isinstance(self.tol, (int, float)) or not self.tol > 0):
            raise ConfigError(f"tol must be a float > 0 or None, got {self.tol!r}")
        if not isinstance(self.standardize, bool):
            raise ConfigError(f"standardize must be a bool, got {self.standardize!r}")
        if self.solver not in ("torch", "sklearn"):
            raise ConfigError(f"solver must be 'torch' or 'sklearn', got {self.solver!r}")

    def _tol(self) -> float:
        """``tol`` or the solver's default: 1e-4 for sklearn (its own), 1e-5 for torch."""
        return float(self.tol) if self.tol is not None else default_tol(self.solver)

    @staticmethod
    def _as_3d(X: object) -> tuple[np.ndarray, bool]:
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim == 2:
            return arr[None], False
        if arr.ndim == 3:
            return arr, True
        raise ConfigError(f"X must be (n_samples, n_features) or (n_layers, n_samples, n_features); got shape {arr.shape}")

    def fit(self, X: object, y: object) -> _LinearProbe:
        """Fit on X (N, D) or (L, N, D) and labels y (N,); returns self."""
        self._validate()
        X3, batched = self._as_3d(X)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != X3.shape[1]:
            raise ConfigError(f"y must be 1-D with one label per sample ({X3.shape[1]}); got shape {y.shape}")
        if not np.isfinite(X3).all():
            raise ConfigError("X contains NaN or infinite values")
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ConfigError(f"y has a single class ({classes[0].item()!r}); a probe needs at least two")
        fits = fit_layers(
            X3, y_idx[None], len(classes), method=self._method, C=float(self.C), standardize=self.standardize,
            max_iter=self.max_iter, tol=self._tol(), solver=self.solver,
        )
        self.classes_ = classes
        self.n_features_in_ = X3.shape[2]
        self.batched_ = batched
        coef, intercept = fits.coef[:, 0], fits.intercept[:, 0]  # (L, P, D), (L, P)
        self.coef_ = coef if batched else coef[0]
        self.intercept_ = intercept if batched else intercept[0]
        self.n_iter_ = fits.n_iter[:, 0] if batched else fits.n_iter[0, 0]
        self.converged_ = fits.converged[:, 0] if batched else fits.converged[0, 0]
        return self

    def decision_function(self, X: object) -> np.ndarray:
        """Scores (M, P) or (L, M, P) for batched fits; (M,) / (L, M) when binary."""
        X3, batched = self._as_3d(X)
        coef = self.coef_ if self.batched_ else self.coef_[None]
        intercept = self.intercept_ if self.batched_ else self.intercept_[None]
        if batched != self.batched_ or X3.shape[0] != coef.shape[0] or X3.shape[2] != coef.shape[2]:
            raise ConfigError(f"X of shape {np.shape(X)} does not match the fitted probe ({coef.shape[0]} layer(s), "
                              f"{coef.shape[2]} features)")
        scores = np.einsum("lmd,lpd->lmp", X3, coef) + intercept[:, None, :]
        if n_problems(len(self.classes_)) == 1:
            scores = scores[..., 0]
        return scores if batched else scores[0]

    def predict(self, X: object) -> np.ndarray:
        """Labels (M,) or (L, M)."""
        scores = self.decision_function(X)
        if n_problems(len(self.classes_)) == 1:
            scores = scores[..., None]
        return self.classes_[predict_classes(scores, len(self.classes_))]

    def score(self, X: object, y: object, sample_weight: object = None) -> float | np.ndarray:  # type: ignore[override]
        """Accuracy; an (L,) array for batched fits."""
        pred = self.predict(X)
        correct = pred == np.asarray(y)
        return correct.mean(-1) if self.batched_ else float(correct.mean())


class LogisticProbe(_LinearProbe):
    """One-vs-rest L2 logistic regression (sklearn ``LogisticRegression(solver="lbfgs")`` per class)."""

    _method = "logreg"


class LinearSVMProbe(_LinearProbe):
    """One-vs-rest linear SVM, squared hinge, intercept penalised (sklearn ``LinearSVC``)."""

    _method = "svm"
