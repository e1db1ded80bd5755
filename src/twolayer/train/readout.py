"""Ridge readout of the second layer over a whole grid of lambda from one eigendecomposition,
plus the baselines: linear ridge on x and kernel ridge with the conjugate kernel at init.

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

PENALTIES = ("mean", "sum")
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


def ridge_path(F: Any, y: Any, lambdas: Sequence[float], penalty: str = "mean") -> Any:
    """Ridge coefficients for every lambda of a grid, from ONE eigendecomposition.

    Solves, for each lambda,

        a(lambda) = argmin_a  L(a) + lambda ||a||^2,
        L(a) = (1/n) ||y - F a||^2  (penalty="mean")  or  ||y - F a||^2  (penalty="sum"),

    i.e. a = (F^T F + s lambda I)^{-1} F^T y with s = n or 1. lambda = 0 gives the min-norm
    least-squares solution pinv(F) y. The eigendecomposition is of the smaller Gram matrix:
    F^T F (p x p) when n >= p, F F^T (n x n) otherwise.

    Parameters
    ----------
    F : (n, p) array, or (S, n, p) for a stack of S problems
        Features (for the second layer of a student: scale * sigma(X W^T)).
    y : (n,) array, or (S, n)
    lambdas : sequence of L floats >= 0
    penalty : {"mean", "sum"}

    Returns
    -------
    (p, L) array, or (S, p, L)
        Column j holds a(lambdas[j]).
    """
    lam = np.asarray(lambdas, dtype=float)
    if lam.ndim != 1 or lam.size == 0 or np.any(lam < 0) or not np.all(np.isfinite(lam)):
        raise ValueError(f"lambdas must be a non-empty list of finite values >= 0, got {lambdas}")
    if F.ndim not in (2, 3) or tuple(y.shape) != tuple(F.shape[:-1]):
        raise ValueError(
            f"ridge_path needs F of shape (n, p) or (S, n, p) and y of shape F.shape[:-1], got "
            f"F {tuple(F.shape)} and y {tuple(y.shape)}"
        )
    xp = namespace_of(F)
    n, p = F.shape[-2:]
    shift = _penalty_shift(lam, n, penalty)
    if n >= p:
        s, V = xp.linalg.eigh(mT(F) @ F)
        b = matvec(mT(V), matvec(mT(F), y))
        return V @ (_inverse_shifted(s, shift) * b[..., :, None])
    s, U = xp.linalg.eigh(F @ mT(F))
    c = matvec(mT(U), y)
    return mT(F) @ (U @ (_inverse_shifted(s, shift) * c[..., :, None]))


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
    coefficients are (K + n lambda I)^{-1} y, computed from one eigendecomposition of K.
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
        s, U = np.linalg.eigh(K)
        shift = _penalty_shift(np.asarray(lambdas, float), X.shape[-2], penalty)
        dual = U @ (_inverse_shifted(s, shift) * matvec(mT(U), y)[..., :, None])
        return cls(X, dual, activation, w_scale)

    def predict(self, X: Any) -> np.ndarray:
        """(n, L) predictions (a stack: (S, n, L))."""
        K = conjugate_kernel(to_numpy(X), self.X_train, self.activation, w_scale=self.w_scale)
        return K @ self.dual
