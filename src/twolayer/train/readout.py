"""Ridge readout of the second layer over a grid of lambda (one Cholesky factorisation per
lambda for a short grid, one eigendecomposition for a long one), plus the baselines: linear
ridge on x and kernel ridge with the conjugate kernel at init.

Every fit also takes a stack of S problems (batched seeds): arrays with a leading S axis,
solved by the same code (``@`` with :func:`~twolayer.backend.mT`; ``eigh`` decomposes each
matrix of a stack), giving results with a leading S axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twolayer.activations import Activation
from twolayer.backend import matvec, mT, namespace_of, to_numpy
from twolayer.losses import PENALTIES

#: Eigenvalues below this fraction of the largest count as zero in the min-norm (lambda = 0) limit.
PINV_RTOL = 1e-12


def _penalty_shift(lambdas: np.ndarray, n: int, penalty: str) -> np.ndarray:
    if penalty == "mean":
        return n * lambdas
    if penalty == "sum":
        return lambdas
    raise ValueError(f"ridge penalty must be one of {PENALTIES}, got {penalty!r}")


def _inverse_shifted(s: Any, shift: np.ndarray) -> Any:
    """1 / (s + shift) per (eigenvalue, lambda), with the pseudo-inverse rule at shift 0.

    s is (p,) or a stack (S, p) (each member's cutoff relative to its own largest eigenvalue);
    returns (p, L) or (S, p, L).
    """
    xp = namespace_of(s)
    if s.ndim == 1:
        cutoff = PINV_RTOL * float(s.max()) if s.shape[0] else 0.0
    elif s.shape[-1]:
        top = s.max(axis=-1, keepdims=True) if xp is np else s.amax(dim=-1, keepdim=True)
        cutoff = PINV_RTOL * top[..., None]
    else:
        cutoff = 0.0
    shift_b = (
        xp.asarray(shift, dtype=s.dtype)
        if xp is np
        else xp.as_tensor(shift, dtype=s.dtype, device=s.device)
    )
    denom = s[..., :, None] + shift_b[None, :]
    keep = (s[..., :, None] > cutoff) | (shift_b[None, :] > 0)
    safe = xp.where(keep, denom, denom * 0 + 1.0)
    return xp.where(keep, 1.0 / safe, safe * 0)


#: Grids of at most this many lambdas are solved by one Cholesky factorisation per lambda;
#: longer grids by one eigendecomposition for the whole grid. Measured (docs/performance.md,
#: case (k)): an ``eigh`` costs 6.5 Cholesky factor-and-solves at p = 1000 and 8.5 at p = 2000;
#: 8 lambdas by Cholesky took 0.52x (p = 1000) and 0.74x (p = 2000) the time of one eigh, 16
#: lambdas 0.96x and 1.15x.
CHOLESKY_MAX_LAMBDAS = 8

SOLVERS = ("auto", "cholesky", "eigh")


def _solve_eigh(G: Any, b: Any, shift: np.ndarray) -> Any:
    """(G + shift_j I)^{-1} b for every j from one eigendecomposition (pinv rule at 0)."""
    s, V = namespace_of(G).linalg.eigh(G)
    return V @ (_inverse_shifted(s, shift) * matvec(mT(V), b)[..., :, None])


def _cholesky_numpy(G: np.ndarray, b: np.ndarray, shift: float) -> np.ndarray | None:
    """(G + shift I)^{-1} b by Cholesky (SciPy), or None if G + shift I is not numerically PD."""
    import scipy.linalg

    A = G.copy()  # one new array (G + shift * eye would make two, each faulted in afresh)
    A.flat[:: A.shape[-1] + 1] += shift
    try:
        factor = scipy.linalg.cho_factor(A, lower=True, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    return scipy.linalg.cho_solve(factor, b, overwrite_b=False, check_finite=False)


def _solve_cholesky(G: Any, b: Any, shift: np.ndarray) -> Any:
    """(G + shift_j I)^{-1} b, one Cholesky factor-and-solve per lambda.

    A shift of 0 (the min-norm limit) and a system that is not numerically positive definite
    are solved by the eigendecomposition route instead, so the answer is always the one
    :func:`_solve_eigh` gives.
    """
    xp = namespace_of(G)
    stacked = G.ndim == 3
    columns = []
    for j, sh in enumerate(shift):
        col = None
        if sh > 0:
            if xp is np:
                if stacked:
                    parts = [_cholesky_numpy(G[i], b[i], float(sh)) for i in range(G.shape[0])]
                    col = None if any(c is None for c in parts) else np.stack(parts)
                else:
                    col = _cholesky_numpy(G, b, float(sh))
            else:
                eye = xp.eye(G.shape[-1], dtype=G.dtype, device=G.device)
                L, info = xp.linalg.cholesky_ex(G + float(sh) * eye)
                if not bool((info != 0).any()):
                    col = xp.cholesky_solve(b[..., :, None], L)[..., 0]
        if col is None:
            col = _solve_eigh(G, b, shift[j : j + 1])[..., 0]
        columns.append(col)
    return xp.stack(columns, axis=-1) if xp is np else xp.stack(columns, dim=-1)


def solve_shifted(G: Any, b: Any, shift: Sequence[float], solver: str = "auto") -> Any:
    """Solutions of (G + shift_j I) x_j = b for a grid of shifts, with the cheapest exact solver.

    Parameters
    ----------
    G : (m, m) symmetric PSD array, or a stack (S, m, m)
    b : (m,) array, or (S, m)
    shift : sequence of L floats >= 0
        A shift of 0 gives the minimum-norm solution pinv(G) b (eigenvalues below
        ``PINV_RTOL`` times the largest count as zero).
    solver : {"auto", "cholesky", "eigh"}
        ``eigh``: one eigendecomposition for the whole grid; ``cholesky``: one Cholesky
        factorisation per shift (an eigendecomposition only for a zero shift or a system that
        is not numerically positive definite); ``auto``: Cholesky for at most
        ``CHOLESKY_MAX_LAMBDAS`` shifts, else eigh.

    Returns
    -------
    (m, L) array, or (S, m, L)
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    shift = np.asarray(shift, dtype=float)
    if solver == "auto":
        solver = "cholesky" if shift.size <= CHOLESKY_MAX_LAMBDAS else "eigh"
    if solver == "cholesky":
        return _solve_cholesky(G, b, shift)
    return _solve_eigh(G, b, shift)


def check_lambdas(lambdas: Sequence[float]) -> np.ndarray:
    """The lambda grid as a float array; ValueError unless a non-empty list of finite values
    >= 0."""
    lam = np.asarray(lambdas, dtype=float)
    if lam.ndim != 1 or lam.size == 0 or np.any(lam < 0) or not np.all(np.isfinite(lam)):
        raise ValueError(f"lambdas must be a non-empty list of finite values >= 0, got {lambdas}")
    return lam


def ridge_path(
    F: Any, y: Any, lambdas: Sequence[float], penalty: str = "mean", solver: str = "auto"
) -> Any:
    """Ridge coefficients for every lambda of a grid.

    Solves, for each lambda,

        a(lambda) = argmin_a  L(a) + lambda ||a||^2,
        L(a) = (1/n) ||y - F a||^2  (penalty="mean")  or  ||y - F a||^2  (penalty="sum"),

    i.e. a = (F^T F + s lambda I)^{-1} F^T y with s = n or 1. lambda = 0 gives the min-norm
    least-squares solution pinv(F) y. The system is the smaller Gram matrix: F^T F (p x p) when
    n >= p, F F^T (n x n) otherwise (then a = F^T (F F^T + s lambda I)^{-1} y). It is solved
    by :func:`solve_shifted`: one Cholesky factorisation per lambda for a short grid, one
    eigendecomposition for a long one; both give the same coefficients to rounding.

    Parameters
    ----------
    F : (n, p) array, or (S, n, p) for a stack of S problems
        Features (for the second layer of a student: scale * sigma(X W^T)).
    y : (n,) array, or (S, n)
    lambdas : sequence of L floats >= 0
    penalty : {"mean", "sum"}
    solver : {"auto", "cholesky", "eigh"}
        See :func:`solve_shifted`.

    Returns
    -------
    (p, L) array, or (S, p, L)
        Column j holds a(lambdas[j]).
    """
    lam = check_lambdas(lambdas)
    if F.ndim not in (2, 3) or tuple(y.shape) != tuple(F.shape[:-1]):
        raise ValueError(
            f"ridge_path needs F of shape (n, p) or (S, n, p) and y of shape F.shape[:-1], got "
            f"F {tuple(F.shape)} and y {tuple(y.shape)}"
        )
    n, p = F.shape[-2:]
    shift = _penalty_shift(lam, n, penalty)
    if n >= p:
        return solve_shifted(mT(F) @ F, matvec(mT(F), y), shift, solver)
    return mT(F) @ solve_shifted(F @ mT(F), y, shift, solver)


@dataclass(frozen=True)
class LinearRidge:
    """Linear ridge on the raw inputs with an unpenalised intercept: y ~ b + <w, x>.

    ``coef`` is (d, L) and ``intercept`` is (L,), one column per lambda (a stack of S fits,
    from X of shape (S, n, d): (S, d, L) and (S, L)).
    """

    coef: Any
    intercept: Any

    @classmethod
    def fit(cls, X: Any, y: Any, lambdas: Sequence[float], penalty: str = "mean") -> LinearRidge:
        if X.ndim == 2:
            x_mean, y_mean = X.mean(axis=0), y.mean()
            coef = ridge_path(X - x_mean, y - y_mean, lambdas, penalty)
            return cls(coef, y_mean - x_mean @ coef)
        # a stack: means per member, kept as (S, 1, d) and (S, 1) so that they broadcast
        x_mean, y_mean = X.mean(-2, keepdims=True), y.mean(-1, keepdims=True)
        coef = ridge_path(X - x_mean, y - y_mean, lambdas, penalty)
        return cls(coef, y_mean - (x_mean @ coef)[..., 0, :])

    def predict(self, X: Any) -> Any:
        """(n, L) predictions (a stack: (S, n, L))."""
        return X @ self.coef + self.intercept[..., None, :]


def conjugate_kernel(
    X1: np.ndarray, X2: np.ndarray, activation: Activation, *, w_scale: float = 1.0, kmax: int = 20
) -> np.ndarray:
    """Infinite-width conjugate kernel at init, K(x, x') = E_w[sigma(<w, x>) sigma(<w, x'>)].

    w ~ N(0, w_scale^2 I / d). For relu the arc-cosine closed form is exact for any norms;
    for other activations the Hermite series sum_k mu_k^2 rho^k is used with inputs projected
    to the sphere of radius sqrt(d) / w_scale (exact there; Gaussian inputs concentrate on it).

    Returns
    -------
    (n1, n2) array (a stack of inputs, (S, n1, d) and (S, n2, d): (S, n1, n2))
    """
    X1, X2 = to_numpy(X1), to_numpy(X2)
    d = X1.shape[-1]
    q1 = np.sum(X1 * X1, axis=-1) * w_scale**2 / d
    q2 = np.sum(X2 * X2, axis=-1) * w_scale**2 / d
    cross = (X1 @ mT(X2)) * w_scale**2 / d
    norms = np.sqrt(q1[..., :, None] * q2[..., None, :])
    rho = np.clip(cross / np.where(norms > 0, norms, 1.0), -1.0, 1.0)
    if activation.name == "relu":
        theta = np.arccos(rho)
        return norms * (np.sin(theta) + (math.pi - theta) * np.cos(theta)) / (2.0 * math.pi)
    mu = activation.hermite(kmax)
    return np.polynomial.polynomial.polyval(rho, mu**2)


@dataclass(frozen=True)
class KernelRidge:
    """Kernel ridge regression with the conjugate kernel at init, for a grid of lambda.

    Objective (1/n) sum (y - f)^2 + lambda ||f||_H^2 (``penalty="mean"``), so the dual
    coefficients are (K + n lambda I)^{-1} y (:func:`solve_shifted`).
    A stack of S problems (X of shape (S, n, d)) gives duals of shape (S, n, L).
    """

    X_train: np.ndarray
    dual: np.ndarray  # (n, L) or (S, n, L)
    activation: Activation
    w_scale: float = 1.0

    @classmethod
    def fit(
        cls,
        X: Any,
        y: Any,
        lambdas: Sequence[float],
        activation: Activation,
        *,
        w_scale: float = 1.0,
        penalty: str = "mean",
    ) -> KernelRidge:
        X, y = to_numpy(X), to_numpy(y)
        K = conjugate_kernel(X, X, activation, w_scale=w_scale)
        shift = _penalty_shift(check_lambdas(lambdas), X.shape[-2], penalty)
        return cls(X, solve_shifted(K, y, shift), activation, w_scale)

    def predict(self, X: Any) -> np.ndarray:
        """(n, L) predictions (a stack: (S, n, L))."""
        K = conjugate_kernel(to_numpy(X), self.X_train, self.activation, w_scale=self.w_scale)
        return K @ self.dual
