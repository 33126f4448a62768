"""Batched L2-regularised linear classifiers on torch: many layers x many problems in one solve.

The numerics behind every probe. One call fits, for each of ``L`` layers, ``P``
binary problems that share the same training rows (the one-vs-rest columns of
the real labels and of every control shuffle), and returns weights in the
caller's feature space. The objectives are exactly sklearn's, so the (unique)
optimum is the one ``LogisticRegression``/``LinearSVC`` approach:

- ``logistic``: ``C * sum_i log(1 + exp(-y_i (x_i.w + b))) + 0.5 ||w||^2``,
  intercept not penalised (sklearn's lbfgs).
- ``squared_hinge``: ``C * sum_i max(0, 1 - y_i (x_i.w + b))^2 + 0.5 (||w||^2 + b^2)``,
  intercept penalised as a constant feature of value 1 (liblinear, ``intercept_scaling=1``).

Why it is fast. Hidden states are wide (D ~ 4096) and ill-conditioned, so a
plain first-order solver needs hundreds of passes over X per problem. Here:

1. When N <= D the solve runs in sample space: ``w = Xc^T a`` (the optimum
   lies in the row space of the training data), margins ``K a`` with the Gram
   ``K = Xc Xc^T`` (N, N) computed once per layer; every iteration then costs
   O(N^2 P), not O(N D P). When N > D it runs in feature space (D, D).
2. L-BFGS is preconditioned with the exact Hessian at ``w = 0``
   (``c K + I`` with c = 1/4 for logistic, 2 for squared hinge), factorised
   once per layer by Cholesky; this removes the ill-conditioning that makes
   sklearn's lbfgs run to ``max_iter``: tens of iterations instead of hundreds.
3. Line searches are free: margins are linear in the step, so trial points
   cost O(N P) elementwise work.

All vectors live in "parameter coordinates" ``theta`` with a metric ``G``
(sample space: G = K; feature space: G = I); the L-BFGS two-loop recursion
uses G-inner products, so the iterates are those of L-BFGS on w itself.

Shapes: L layers, N training rows, D features, P problems, n = N or D.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["Intercept", "LinearFit", "Loss", "decision_function", "fit_linear"]

Loss = Literal["logistic", "squared_hinge"]
Intercept = Literal["free", "penalized", "none"]

_FTOL = 1e-10
"""Relative objective decrease below which an iteration counts as no progress (float32 margins)."""

_HESSIAN_AT_ZERO = {"logistic": 0.25, "squared_hinge": 2.0}
"""Second derivative of the loss in the margin at margin 0: the preconditioner's scale."""


@dataclass(frozen=True)
class LinearFit:
    """Fitted weights of L x P binary problems, in the input feature space."""

    coef: torch.Tensor
    """(L, P, D) float32."""
    intercept: torch.Tensor
    """(L, P) float32."""
    n_iter: torch.Tensor
    """(L, P) int64: L-BFGS iterations each problem took."""
    converged: torch.Tensor
    """(L, P) bool: gradient norm reached ``tol`` (relative to C * N)."""


def decision_function(X: torch.Tensor, fit: LinearFit) -> torch.Tensor:
    """Scores (L, M, P) of rows X (L, M, D) under ``fit``."""
    return torch.baddbmm(fit.intercept.unsqueeze(1), X, fit.coef.transpose(1, 2))


def _slope(kind: Loss, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """dloss/dmargin (L, N, P) at margins m (L, N, P)."""
    if kind == "logistic":
        return -y * torch.sigmoid(-y * m)
    return -2.0 * y * torch.clamp(1.0 - y * m, min=0.0)


def _pointwise_loss(kind: Loss, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Elementwise loss (L, N, P), in the dtype of ``m``."""
    if kind == "logistic":
        return torch.nn.functional.softplus(-y * m)
    slack = torch.clamp(1.0 - y * m, min=0.0)
    return slack * slack


class _Space:
    """Parameter coordinates theta (L, n, P) [+ a free intercept row], margins, metric, preconditioner."""

    def __init__(
        self, Xc: torch.Tensor, *, ones_feature: bool, free_intercept: bool, centred: bool, c: float
    ) -> None:
        L, N, D = Xc.shape
        self.Xc = Xc
        self.free = free_intercept
        self.N = N
        self.kernel = N <= D + (1 if ones_feature else 0)
        if self.kernel:
            K = _gram(Xc)  # (L, N, N)
            if ones_feature:
                K += 1.0
            self.A = K
        else:
            A = torch.cat([Xc, Xc.new_ones(L, N, 1)], 2) if ones_feature else Xc  # (L, N, D')
            self.A = A
        self.ones = ones_feature
        # centred rows make the all-ones vector a null direction of K = Xc Xc^T: it changes
        # neither w = Xc^T a nor the margins, but float32 products with a large component
        # there make the tracked margins drift, so theta is kept orthogonal to it
        self.project = self.kernel and centred and not ones_feature
        n = self.A.shape[2]
        # Hessian at 0 in theta coordinates (G-metric): kernel c K + I, feature space c A^T A + I
        H0 = c * (self.A if self.kernel else torch.bmm(self.A.transpose(1, 2), self.A)).double()
        H0.diagonal(dim1=1, dim2=2).add_(1.0)
        # factorise in float64 (H0 can be ill-conditioned on raw hidden states), solve in float32:
        # any nonsingular factor gives an SPD preconditioner, so the cast costs speed of
        # convergence at worst, never correctness
        self.chol = torch.linalg.cholesky(H0).to(Xc.dtype)  # (L, n, n)
        del H0
        self.h_b = 1.0 / (c * N)  # free intercept: Hessian c*N (X is centred, no cross term)
        self.c = c
        self.n = n

    def margins(self, theta: torch.Tensor) -> torch.Tensor:
        """A theta (+ b): (L, N, P)."""
        core = theta[:, : self.n] if self.free else theta
        m = _skinny(self.A, core)
        if self.free:
            m = m + theta[:, self.n :]
        return m

    def metric(self, v: torch.Tensor) -> torch.Tensor:
        """G v, (L, n[+1], P)."""
        if not self.kernel:
            return v
        core = v[:, : self.n] if self.free else v
        Gv = _skinny(self.A, core)
        return torch.cat([Gv, v[:, self.n :]], 1) if self.free else Gv

    def metric_and_margins(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(G v, A v + b): one product with A in sample space, where G = A."""
        if not self.kernel:
            return v, self.margins(v)
        Gv = self.metric(v)
        core = Gv[:, : self.n] if self.free else Gv
        return Gv, (core + v[:, self.n :]) if self.free else core

    def h0_norm(self, d: torch.Tensor, Gd: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
        """<d, H0 d>_G (L, P) from d, G d and the margins A d (+ b) already at hand.

        H0 = c A^T A + I in the G-metric (kernel: c K^2 + K), plus c N for a free intercept.
        """
        core, Gcore = (d[:, : self.n], Gd[:, : self.n]) if self.free else (d, Gd)
        Ad = dm - d[:, self.n :] if self.free else dm  # (L, N, P): A d_core
        out = self.c * _dot(Ad, Ad) + _dot(core, Gcore)
        if self.free:
            out = out + self.c * self.N * d[:, self.n] ** 2
        return out

    def penalty(self, u: torch.Tensor, Gv: torch.Tensor) -> torch.Tensor:
        """<u, v>_G without the free intercept's row (it is in the metric, not in the penalty): (L, P)."""
        if self.free:
            return _dot(u[:, : self.n], Gv[:, : self.n])
        return _dot(u, Gv)

    def gradient(self, theta: torch.Tensor, dl: torch.Tensor, C: float) -> torch.Tensor:
        """G-representer of the objective's gradient, given C-free slopes dl (L, N, P)."""
        core = theta[:, : self.n] if self.free else theta
        g = C * dl + core if self.kernel else C * _skinny(self.A.transpose(1, 2), dl) + core
        g = self.orthogonal(g)
        if self.free:
            g = torch.cat([g, C * dl.sum(1, keepdim=True)], 1)
        return g

    def orthogonal(self, core: torch.Tensor) -> torch.Tensor:
        """Remove the component along the all-ones null direction (sample space, centred rows)."""
        return core - core.mean(1, keepdim=True) if self.project else core

    def precondition(self, q: torch.Tensor) -> torch.Tensor:
        core = q[:, : self.n] if self.free else q
        lo = torch.linalg.solve_triangular(self.chol, core, upper=False)
        r = self.orthogonal(torch.linalg.solve_triangular(self.chol.mT, lo, upper=True))
        if self.free:
            r = torch.cat([r, q[:, self.n :] * self.h_b], 1)
        return r

    def weights(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w (L, P, D), b (L, P)) of theta, in the (centred/scaled) training feature space."""
        core = theta[:, : self.n] if self.free else theta
        if self.kernel:
            w = _skinny(self.Xc.transpose(1, 2), core)  # (L, D, P)
            b = core.sum(1) if self.ones else torch.zeros_like(core[:, 0])
        elif self.ones:
            w, b = core[:, :-1], core[:, -1]
        else:
            w, b = core, torch.zeros_like(core[:, 0])
        if self.free:
            b = theta[:, self.n]
        return w.transpose(1, 2).contiguous(), b


def _gram(X: torch.Tensor) -> torch.Tensor:
    """X X^T (L, N, N) from its lower block triangle: about 5/8 of the GEMM work of ``X @ X^T``."""
    L, N, _ = X.shape
    K = X.new_empty(L, N, N)
    bs = max(256, -(-N // 4))
    for i in range(0, N, bs):
        block = torch.bmm(X[:, i:], X[:, i : i + bs].mT)  # rows i.. x columns i..i+bs
        K[:, i:, i : i + bs] = block
        K[:, i : i + bs, i:] = block.mT
    return K


def _skinny(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """A (L, m, k) @ B (L, k, P) for small P, computed as (B^T A^T)^T.

    With few right-hand columns the BLAS takes a slow path for ``A @ B``
    (2-20x slower on CPU than the transposed product, which streams A's rows
    once for all P columns); the result is the same.
    """
    return torch.matmul(B.mT, A.mT).mT


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Single intra-op thread for the iterations, restored afterwards.

    Each iteration is a handful of memory-bound (L, n, n) x (L, n, P) products
    and elementwise work: a second thread adds no bandwidth, and OpenMP
    fork/join latency on a busy 2-core machine made them 2-4x slower.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-problem inner product over dim 1: (L, P)."""
    return (u * v).sum(1)


def _lbfgs(
    space: _Space, yy: torch.Tensor, *, loss: Loss, C: float, max_iter: int, tol: float, history: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched L-BFGS in the G-metric from theta = 0: (theta, n_iter (L, P), converged (L, P))."""
    L, N, P = yy.shape
    rows = space.n + (1 if space.free else 0)
    theta = yy.new_zeros(L, rows, P)
    m = space.margins(theta)
    G_theta = space.metric(theta)
    dl = _slope(loss, yy, m)
    g = space.gradient(theta, dl, C)
    Gg = space.metric(g)

    # objective value at theta = 0 (all margins 0), then tracked by the accepted changes
    f = torch.full((L, P), C * N * (math.log(2.0) if loss == "logistic" else 1.0), dtype=torch.float64)
    # history of (s, G s, y, G y, rho, <s, H0 s>_G) pairs, newest last
    S: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    n_iter = torch.zeros(L, P, dtype=torch.int64)
    active = torch.ones(L, P, dtype=torch.bool)
    norm_scale = C * N
    converged = torch.zeros(L, P, dtype=torch.bool)
    for _ in range(max_iter):
        gnorm = _dot(g, Gg).clamp_min(0).sqrt() / norm_scale
        converged |= gnorm < tol
        active &= ~converged
        if not bool(active.any()):
            break
        # two-loop recursion in the G-metric
        q = g.clone()
        alphas = []
        for _s, Gs, yv, _Gy, rho, _sHs in reversed(S):
            a = rho * _dot(Gs, q)
            q -= a.unsqueeze(1) * yv
            alphas.append(a)
        r = space.precondition(q)
        if S:  # scale the preconditioner to the curvature seen last: gamma = <s, H0 s> / <s, y> (BB1)
            rho_last, sHs_last = S[-1][4], S[-1][5]
            gamma = torch.where((rho_last > 0) & (sHs_last > 0), sHs_last * rho_last, torch.ones_like(rho_last))
            r = r * gamma.unsqueeze(1)
        for (s, _Gs, _yv, Gy, rho, _sHs), a in zip(S, reversed(alphas)):
            b = rho * _dot(Gy, r)
            r += (a - b).unsqueeze(1) * s
        d = -r
        d = d * active.unsqueeze(1)  # frozen problems stay put
        Gd, dm = space.metric_and_margins(d)
        slope = _dot(g, Gd)  # directional derivative (L, P)
        bad = slope >= 0
        if bool((bad & active).any()):  # not a descent direction: restart from the preconditioned gradient
            d = torch.where(bad.unsqueeze(1), -space.precondition(g), d) * active.unsqueeze(1)
            Gd, dm = space.metric_and_margins(d)
            slope = _dot(g, Gd)
        # Armijo on the *change* of the objective, in float64: near the optimum the
        # decrease is far below float32 resolution of the objective's value itself
        pen1, pen2 = space.penalty(d, G_theta).double(), space.penalty(d, Gd).double()
        m64, dm64, y64 = m.double(), dm.double(), yy.double()
        base = _pointwise_loss(loss, y64, m64)
        slope64 = slope.double()
        t64 = active.double()
        ok = ~active
        for _ls in range(40):
            tt = t64.unsqueeze(1)
            change = C * (_pointwise_loss(loss, y64, m64 + tt * dm64) - base).sum(1) + t64 * pen1 + 0.5 * t64 * t64 * pen2
            ok = ok | ((change <= 1e-4 * t64 * slope64) & (change < 0))
            if bool(ok.all()):
                break
            t64 = torch.where(ok, t64, t64 * 0.5)
        t64 = torch.where(ok & active, t64, torch.zeros_like(t64))
        change = torch.where(ok & active, change, torch.zeros_like(change))
        # no strict decrease even at tiny steps, or a decrease below float32 resolution of the
        # margins: the solver's floor (scipy's lbfgs stops the same way, on factr * eps)
        flat = active & ok & (-change <= _FTOL * f.abs().clamp_min(1.0))
        stalled = (active & ~ok) | flat
        f = f + change
        t = t64.to(theta.dtype)
        tt = t.unsqueeze(1)
        theta = theta + tt * d
        G_theta = G_theta + tt * Gd
        m = m + tt * dm
        dl = _slope(loss, yy, m)
        g_new = space.gradient(theta, dl, C)
        Gg_new = space.metric(g_new)
        s_vec, Gs_vec = tt * d, tt * Gd
        sHs = t * t * space.h0_norm(d, Gd, dm)  # <s, H0 s>_G, no extra product with A
        y_vec, Gy_vec = g_new - g, Gg_new - Gg
        sy = _dot(Gs_vec, y_vec)
        keep = sy > 1e-10 * _dot(Gy_vec, y_vec).clamp_min(1e-30)
        rho = torch.where(keep, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))  # rho 0: pair is inert
        S.append((s_vec, Gs_vec, y_vec, Gy_vec, rho, sHs))
        if len(S) > history:
            S.pop(0)
        g, Gg = g_new, Gg_new
        n_iter += active.to(torch.int64)
        active &= ~stalled
        converged |= flat | (stalled & (_dot(g, Gg).clamp_min(0).sqrt() / norm_scale < 100 * tol))

    return theta, n_iter, converged


def fit_linear(
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: Loss = "logistic",
    C: float = 1.0,
    intercept: Intercept = "free",
    standardize: bool = False,
    max_iter: int = 1000,
    tol: float = 1e-4,
    history: int = 10,
    overwrite_X: bool = False,
) -> LinearFit:
    """Fit L x P binary linear classifiers sharing the training rows.

    Args:
        X: (L, N, D) float features of the training rows, one slab per layer.
        y: (N, P) targets in {-1, +1}, one column per binary problem.
        loss: ``logistic`` (sklearn LogisticRegression) or ``squared_hinge`` (LinearSVC).
        intercept: ``free`` (unpenalised), ``penalized`` (a constant feature, liblinear) or ``none``.
        standardize: scale features to zero mean and unit variance on these rows
            first (a zero-variance feature keeps scale 1); the returned weights
            are mapped back, so they apply to raw features.
        max_iter, tol: stop when ``||grad|| / (C N) < tol`` or after ``max_iter`` iterations.
        history: L-BFGS memory.
        overwrite_X: allow centring/scaling float32 ``X`` in place (saves a copy of X).

    Returns:
        :class:`LinearFit` with ``coef`` (L, P, D) and ``intercept`` (L, P) for raw X.
    """
    if X.ndim != 3 or y.ndim != 2 or y.shape[0] != X.shape[1]:
        raise ValueError(f"fit_linear: X must be (L, N, D) and y (N, P); got {tuple(X.shape)} and {tuple(y.shape)}")
    Xf = X.to(torch.float32)
    if Xf.data_ptr() == X.data_ptr() and not overwrite_X and (standardize or intercept == "free"):
        Xf = Xf.clone()  # centring below works in place
    return _fit(
        Xf, y, loss=loss, C=C, intercept=intercept, standardize=standardize,
        max_iter=max_iter, tol=tol, history=history,
    )


def _fit(
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: Loss,
    C: float,
    intercept: Intercept,
    standardize: bool,
    max_iter: int,
    tol: float,
    history: int,
) -> LinearFit:
    L, N, _ = X.shape
    P = y.shape[1]
    yy = y.to(torch.float32).unsqueeze(0).expand(L, N, P)

    # X is ours to modify (fit_linear copied it unless overwrite_X): centre and scale in place
    mean = X.mean(1, keepdim=True) if (standardize or intercept == "free") else None
    scale = None
    Xc = X.sub_(mean) if mean is not None else X
    if standardize:
        scale = torch.linalg.vector_norm(Xc, dim=1, keepdim=True) / math.sqrt(N)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        Xc = Xc.div_(scale)
    space = _Space(
        Xc,
        ones_feature=intercept == "penalized",
        free_intercept=intercept == "free",
        centred=mean is not None,
        c=_HESSIAN_AT_ZERO[loss] * C,
    )
    del Xc

    with _one_thread():
        theta, n_iter, converged = _lbfgs(space, yy, loss=loss, C=C, max_iter=max_iter, tol=tol, history=history)
    w, b = space.weights(theta)  # (L, P, D), (L, P) in the centred/scaled space
    if scale is not None:
        w = w / scale  # (L, 1, D) broadcasts over P
    if mean is not None:
        b = b - torch.bmm(w, mean.transpose(1, 2)).squeeze(2)
    return LinearFit(coef=w.contiguous(), intercept=b, n_iter=n_iter, converged=converged)
