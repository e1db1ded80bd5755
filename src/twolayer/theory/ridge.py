"""Ridge regression deterministic equivalent; random-features ridge through Gaussian equivalence.

Convention (used by every function here unless it says otherwise)
-----------------------------------------------------------------
Features phi in R^p, n training pairs (phi_i, y_i), estimator

    a_hat = argmin_a (1/n) sum_i (y_i - <a, phi_i>)^2 + lam ||a||^2
          = (Phi^T Phi + n lam I)^(-1) Phi^T y,

i.e. MEAN squared error plus lam times the squared norm. A penalty written on the SUM of squared
errors, ``sum_i (y_i - <a, phi_i>)^2 + lam_sum ||a||^2`` (Cui et al. 2024, sklearn's ``Ridge``),
is the same estimator with ``lam = lam_sum / n``: see :func:`penalty_sum_to_mean`.

Deterministic equivalent (Gaussian features phi ~ N(0, Sigma), y = <theta, phi> + eps,
Var eps = s^2; e.g. Hastie, Montanari, Rosset & Tibshirani, Ann. Statist. 50 (2022); Bach,
SIAM J. Math. Data Sci. 6 (2024); Atanasov, Zavatone-Veth & Pehlevan 2024):

    kappa = lam + (kappa / n) tr(Sigma (Sigma + kappa I)^-1)        (kappa > 0 the unique root)
    df1 = tr(Sigma (Sigma + kappa)^-1),   df2 = tr(Sigma^2 (Sigma + kappa)^-2)
    bias = kappa^2 theta^T Sigma (Sigma + kappa)^-2 theta / (1 - df2/n)
    variance = s^2 (df2 / n) / (1 - df2/n)
    excess risk = bias + variance,  test MSE (noisy labels) = excess risk + s^2.

lam -> 0+ with rank(Sigma) > n is the minimum-norm interpolator; with rank(Sigma) <= n and lam = 0
it is least squares (kappa = 0).

Random features conditional on W (Gaussian equivalence; Mei & Montanari 2019, Goldt et al. 2022,
Hu & Lu 2022): phi(x) = sigma(W x) / sqrt(N), W of shape (N, d) with rows of unit norm (rows of
other norms: each neuron's constants are those of z -> sigma(||w_i|| z), below),
x ~ N(0, I_d), y = f*(<beta, x>) + noise with ||beta|| = 1, ridge WITHOUT intercept in the
convention above. The features are replaced by Gaussian ones with the same second moments

    Omega = E[phi phi^T] ~= (mu_1^2 W W^T + mu_star^2 I + mu_0^2 1 1^T) / N,     (N, N)
    q = E[phi y]       ~= (mu_1 c_1 W beta + mu_0 c_0 1) / sqrt(N),             (N,)

(the mean direction 1 matters because no intercept is fitted), target theta = Omega^-1 q and
effective noise s^2 = noise^2 + ||f*||^2 - q^T Omega^-1 q (what phi cannot express acts as noise).
Here mu_k are the activation's and c_0 = E f*(z), c_1 = E[z f*(z)] the link's Hermite constants
(orthonormal convention, z ~ N(0, 1)). The corrections are O(1/d) per entry (higher Hermite
orders times (w_i . w_j)^k). For rows of any norms r_i = ||w_i||, with per-neuron constants
m0_i, m1_i, m*_i of z -> sigma(r_i z) and unit directions w_i / r_i,

    Omega_ij ~= (m0_i m0_j + m1_i m1_j <w_i, w_j> / (r_i r_j) + delta_ij m*_i^2) / N,
    q_i ~= (m1_i c_1 <w_i, beta> / r_i + m0_i c_0) / sqrt(N),

which is the formula above when every r_i = 1. The prediction is conditional on W and needs W
independent of the ridge's training data (a fresh readout batch): after a first-layer step on
another batch it still applies; how far it then is from the measured error shows how far the
step took the features beyond a Gaussian-equivalent model (a large step's spike does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twolayer.theory.fixed_point import OnFail, check_converged, iterate_fixed_point

__all__ = [
    "RFRidgePrediction",
    "RidgePrediction",
    "effective_regularization",
    "penalty_mean_to_sum",
    "penalty_sum_to_mean",
    "rf_gaussian_equivalent_covariance",
    "rf_ridge_prediction",
    "rf_ridge_prediction_for",
    "rf_target_correlation",
    "ridge_deterministic_equivalent",
    "ridge_deterministic_equivalent_from_covariance",
]


def penalty_sum_to_mean(lam_sum: float | np.ndarray, n: int) -> float | np.ndarray:
    """Convert a penalty on a SUM of squared errors to this module's MEAN convention.

    ``sum_i (y_i - <a, phi_i>)^2 + lam_sum ||a||^2`` and
    ``(1/n) sum_i (y_i - <a, phi_i>)^2 + lam ||a||^2`` have the same minimiser iff
    ``lam = lam_sum / n``. The features' scaling is unchanged (both with phi = sigma(W x)/sqrt(N)).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return lam_sum / n


def penalty_mean_to_sum(lam: float | np.ndarray, n: int) -> float | np.ndarray:
    """Inverse of :func:`penalty_sum_to_mean`: ``lam_sum = n * lam``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return lam * n


def _clean_eigenvalues(eigenvalues: np.ndarray) -> np.ndarray:
    ev = np.asarray(eigenvalues, dtype=np.float64)
    if ev.ndim != 1:
        raise ValueError(f"eigenvalues must be a 1-d array, got shape {ev.shape}")
    if ev.size and ev.min() < -1e-8 * max(1.0, float(np.abs(ev).max())):
        raise ValueError(f"covariance eigenvalues must be >= 0, got min {ev.min():.3g}")
    return np.clip(ev, 0.0, None)


def effective_regularization(
    eigenvalues: np.ndarray,
    n: int,
    lam: float,
    *,
    tol: float = 1e-13,
    max_iter: int = 500,
    on_fail: OnFail = "raise",
) -> float:
    """The effective regularisation kappa of ridge regression (mean-loss convention).

    Solves ``kappa = lam + (kappa/n) sum_j s_j / (s_j + kappa)``, equivalently
    ``G(kappa) = lam/kappa + df1(kappa)/n - 1 = 0``. G is convex and decreasing in kappa, so
    Newton's method started left of the root increases monotonically to it; the Newton map,
    written in log kappa, is passed to the shared
    :func:`~twolayer.theory.fixed_point.iterate_fixed_point` (no damping: it is monotone).

    Parameters
    ----------
    eigenvalues : (p,) array
        Eigenvalues s_j >= 0 of the feature covariance Sigma.
    n : int
        Number of training samples.
    lam : float
        Ridge penalty >= 0 (mean convention).

    Returns
    -------
    float
        kappa > 0; exactly 0 when lam = 0 and rank(Sigma) <= n (least squares).
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    ev = _clean_eigenvalues(eigenvalues)
    pos = ev[ev > 0]
    if pos.size == 0:
        return float(lam)
    if lam == 0 and pos.size <= n:
        return 0.0
    unit = float(pos.mean())
    s = pos / unit  # scale-free problem: kappa/unit solves it with lam/unit
    lam_u = lam / unit

    def g_and_slope(kappa: float) -> tuple[float, float]:
        r = s / (s + kappa)
        g = (lam_u / kappa if lam_u > 0 else 0.0) + r.sum() / n - 1.0
        slope = -(lam_u / kappa**2 if lam_u > 0 else 0.0) - np.sum(r / (s + kappa)) / n
        return g, slope

    def newton_log(u: np.ndarray) -> np.ndarray:
        kappa = math.exp(float(u[0]))
        g, slope = g_and_slope(kappa)
        return np.array([math.log(kappa - g / slope)])

    kappa0 = lam_u if lam_u > 0 else 1e-6 * float(s.min())
    result = iterate_fixed_point(newton_log, [math.log(kappa0)], damping=0.0, tol=tol,
                                 max_iter=max_iter)
    check_converged(result, f"effective_regularization(n={n}, lam={lam:g})", on_fail)
    return unit * math.exp(float(result.x[0]))


@dataclass(frozen=True)
class RidgePrediction:
    """Deterministic-equivalent prediction of ridge regression (mean-loss convention).

    Attributes
    ----------
    lam : float
        Penalty (mean convention).
    kappa : float
        Effective regularisation.
    df1, df2 : float
        ``tr(Sigma (Sigma + kappa)^-1)`` and ``tr(Sigma^2 (Sigma + kappa)^-2)``.
    bias, variance : float
        The two terms of the excess risk (variance includes the 1/(1 - df2/n) factor).
    excess_risk : float
        ``E(<theta - a_hat, phi>)^2`` = bias + variance.
    noise_var : float
        s^2.
    test_error : float
        ``E(y - <a_hat, phi>)^2`` on a fresh noisy label = excess_risk + noise_var.
    """

    lam: float
    kappa: float
    df1: float
    df2: float
    bias: float
    variance: float
    excess_risk: float
    noise_var: float
    test_error: float


def ridge_deterministic_equivalent(
    eigenvalues: np.ndarray,
    target_coefficients: np.ndarray,
    n: int,
    lam: float,
    noise_var: float = 0.0,
    *,
    on_fail: OnFail = "raise",
) -> RidgePrediction:
    """Deterministic equivalent of the ridge test error, from Sigma's eigendecomposition.

    Parameters
    ----------
    eigenvalues : (p,) array
        Eigenvalues s_j >= 0 of the feature covariance Sigma = U diag(s) U^T.
    target_coefficients : (p,) array
        ``U^T theta``: coordinates of the target vector theta (y = <theta, phi> + eps) in the
        eigenbasis; only their squares matter.
    n : int
        Number of training samples.
    lam : float
        Penalty of the mean-loss objective ``(1/n) sum (y - <a, phi>)^2 + lam ||a||^2``.
    noise_var : float
        Variance s^2 of the additive label noise eps.

    Returns
    -------
    RidgePrediction
        With ``variance = inf`` at the interpolation point (lam = 0, rank(Sigma) = n).
    """
    ev = _clean_eigenvalues(eigenvalues)
    coef2 = np.asarray(target_coefficients, dtype=np.float64) ** 2
    if coef2.shape != ev.shape:
        raise ValueError(f"target_coefficients has shape {coef2.shape}, expected {ev.shape}")
    if noise_var < 0:
        raise ValueError(f"noise_var must be >= 0, got {noise_var}")
    kappa = effective_regularization(ev, n, lam, on_fail=on_fail)
    pos = ev > 0
    s, t2 = ev[pos], coef2[pos]
    df1 = float(np.sum(s / (s + kappa)))
    df2 = float(np.sum((s / (s + kappa)) ** 2))
    denominator = 1.0 - df2 / n
    if denominator <= 1e-14:
        bias, variance = 0.0, math.inf if noise_var > 0 else 0.0
    else:
        bias = float(kappa**2 * np.sum(s * t2 / (s + kappa) ** 2)) / denominator
        variance = noise_var * (df2 / n) / denominator
    excess = bias + variance
    return RidgePrediction(
        lam=float(lam),
        kappa=kappa,
        df1=df1,
        df2=df2,
        bias=bias,
        variance=variance,
        excess_risk=excess,
        noise_var=float(noise_var),
        test_error=excess + noise_var,
    )


def ridge_deterministic_equivalent_from_covariance(
    covariance: np.ndarray,
    theta: np.ndarray,
    n: int,
    lam: float | Sequence[float],
    noise_var: float = 0.0,
) -> RidgePrediction | list[RidgePrediction]:
    """:func:`ridge_deterministic_equivalent` for a covariance matrix (p, p) and target theta (p,).

    One eigendecomposition (``numpy.linalg.eigh``) serves every value of ``lam``; a sequence of
    penalties returns a list of predictions.
    """
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance must be square, got shape {cov.shape}")
    ev, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    coef = vecs.T @ np.asarray(theta, dtype=np.float64)
    if np.ndim(lam) == 0:
        return ridge_deterministic_equivalent(ev, coef, n, float(lam), noise_var)
    return [ridge_deterministic_equivalent(ev, coef, n, float(lv), noise_var) for lv in lam]


# ----------------------------------------------------------------------------------------------
# Random features, conditional on W


def _unit_rows(W: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    return np.divide(W, norms, out=np.zeros_like(W), where=norms > 0)


def _per_row(value: Any, N: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (N,))


def rf_gaussian_equivalent_covariance(
    W: np.ndarray, mu0: Any, mu1: Any, mu_star: Any
) -> np.ndarray:
    """Second-moment matrix of phi = sigma(W x)/sqrt(N) under Gaussian equivalence.

    Parameters
    ----------
    W : (N, d) array
        First-layer weights. With scalar constants the rows must have unit norm; with per-row
        constants (those of z -> sigma(||w_i|| z), :func:`twolayer.activations.constants_at_scales`)
        any norms: only the directions w_i / ||w_i|| enter the correlations.
    mu0, mu1, mu_star : float or (N,) arrays
        Activation constants E sigma(z), E z sigma(z), sqrt(E sigma^2 - mu0^2 - mu1^2), for all
        rows or per row.

    Returns
    -------
    (N, N) array
        ``(m0 m0^T + D1 R D1 + diag(m*^2)) / N`` with R_ij = <w_i, w_j> / (||w_i|| ||w_j||) and
        D1 = diag(m1); for unit rows and scalar constants ``(mu1^2 W W^T + mu_star^2 I +
        mu0^2 1 1^T) / N``.
    """
    W = np.asarray(W, dtype=np.float64)
    N = W.shape[0]
    m0, m1, ms = (_per_row(v, N) for v in (mu0, mu1, mu_star))
    Wh = _unit_rows(W)
    omega = np.outer(m1, m1) * (Wh @ Wh.T) + np.outer(m0, m0)
    omega[np.diag_indices(N)] += ms**2
    return omega / N


def rf_target_correlation(
    W: np.ndarray, beta: np.ndarray, mu0: Any, mu1: Any, c0: float, c1: float
) -> np.ndarray:
    """``q = E[phi y] = (m1 c1 <w_i/||w_i||, beta> + m0 c0) / sqrt(N)``, shape (N,), for unit
    beta (d,); constants scalar (unit rows) or per row, as in
    :func:`rf_gaussian_equivalent_covariance`."""
    W = np.asarray(W, dtype=np.float64)
    N = W.shape[0]
    m0, m1 = _per_row(mu0, N), _per_row(mu1, N)
    return (m1 * c1 * (_unit_rows(W) @ np.asarray(beta, dtype=np.float64)) + m0 * c0) / math.sqrt(N)


@dataclass(frozen=True)
class RFRidgePrediction:
    """Gaussian-equivalence prediction of random-features ridge, conditional on W.

    Attributes
    ----------
    ridge : RidgePrediction
        The deterministic equivalent with Sigma = Omega, theta = Omega^-1 q and the effective noise.
    label_noise_var : float
        Variance of the additive label noise.
    effective_noise_var : float
        ``label_noise_var + ||f*||^2 - q^T Omega^-1 q``.
    test_error : float
        ``E(y - f_hat(x))^2`` on a fresh noisy label.
    risk : float
        ``E(f*(<beta, x>) - f_hat(x))^2`` against the noiseless target = test_error - label noise.
    """

    ridge: RidgePrediction
    label_noise_var: float
    effective_noise_var: float
    test_error: float
    risk: float


def rf_ridge_prediction(
    W: np.ndarray,
    beta: np.ndarray,
    n: int,
    lam: float | Sequence[float],
    *,
    mu0: float,
    mu1: float,
    mu_star: float,
    c0: float,
    c1: float,
    target_norm2: float,
    noise_var: float = 0.0,
) -> RFRidgePrediction | list[RFRidgePrediction]:
    """Random-features ridge test error conditional on W (see the module docstring).

    Parameters
    ----------
    W : (N, d) array
        Features phi = sigma(W x) / sqrt(N), no intercept. Rows of unit norm, unless the
        constants are given per row (see :func:`rf_gaussian_equivalent_covariance`).
    beta : (d,) array
        Unit teacher direction; y = f*(<beta, x>) + noise, x ~ N(0, I_d).
    n : int
        Number of training samples.
    lam : float or sequence of float
        Penalty in the mean convention ``(1/n) sum (y - <a, phi>)^2 + lam ||a||^2`` (use
        :func:`penalty_sum_to_mean` for a penalty on the sum). One eigendecomposition of Omega
        serves all values.
    mu0, mu1, mu_star : float or (N,) arrays
        Activation constants (orthonormal Hermite convention), for all rows or per row.
    c0, c1, target_norm2 : float
        Link constants E f*(z), E[z f*(z)], E f*(z)^2.
    noise_var : float
        Variance of the additive label noise.

    Returns
    -------
    RFRidgePrediction, or a list of them when ``lam`` is a sequence.
    """
    omega = rf_gaussian_equivalent_covariance(W, mu0, mu1, mu_star)
    q = rf_target_correlation(W, beta, mu0, mu1, c0, c1)
    ev, vecs = np.linalg.eigh(omega)
    ev = np.clip(ev, 0.0, None)
    qt = vecs.T @ q
    pos = ev > 1e-14 * ev.max()
    coef = np.zeros_like(qt)
    coef[pos] = qt[pos] / ev[pos]  # U^T Omega^-1 q
    explained = float(np.sum(qt[pos] ** 2 / ev[pos]))  # q^T Omega^-1 q
    s2 = noise_var + max(target_norm2 - explained, 0.0)

    def one(lv: float) -> RFRidgePrediction:
        pred = ridge_deterministic_equivalent(ev, coef, n, lv, s2)
        return RFRidgePrediction(
            ridge=pred,
            label_noise_var=float(noise_var),
            effective_noise_var=s2,
            test_error=pred.test_error,
            risk=pred.test_error - noise_var,
        )

    if np.ndim(lam) == 0:
        return one(float(lam))
    return [one(float(lv)) for lv in lam]


def rf_ridge_prediction_for(
    W: np.ndarray,
    beta: np.ndarray,
    n: int,
    lam: float | Sequence[float],
    activation: Any,
    link: Any,
    noise_var: float = 0.0,
) -> RFRidgePrediction | list[RFRidgePrediction]:
    """:func:`rf_ridge_prediction` with constants computed from registered activations.

    ``activation`` and ``link`` are given in any form a spec accepts: names (``"relu"``),
    mappings (``{name: hermite_poly, coefficients: [...]}``) or
    :class:`twolayer.activations.Activation` objects; their constants come from
    :mod:`twolayer.activations` (quadrature). W may have rows
    of any norm (Gaussian initialisation, a trained first layer): each row gets the constants of
    z -> sigma(||w_i|| z) (:func:`twolayer.activations.constants_at_scales`); rows of norm 0
    give the constant feature sigma(0).
    """
    from twolayer.activations import activation_from, constants_at_scales

    act = activation_from(activation)
    g = activation_from(link)
    cg = g.constants
    W = np.asarray(W, dtype=np.float64)
    norms = np.linalg.norm(W, axis=1)
    live = norms > 0
    m0 = np.full(norms.shape, float(act(np.zeros(1))[0]))  # sigma(0 z) = sigma(0)
    m1, norm2 = np.zeros_like(norms), m0**2
    if np.any(live):
        m0[live], m1[live], norm2[live] = constants_at_scales(act, norms[live])
    mu_star = np.sqrt(np.clip(norm2 - m0**2 - m1**2, 0.0, None))
    return rf_ridge_prediction(
        W, beta, n, lam, mu0=m0, mu1=m1, mu_star=mu_star,
        c0=cg.mu0, c1=cg.mu1, target_norm2=cg.norm2, noise_var=noise_var,
    )
