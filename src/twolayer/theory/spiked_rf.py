"""Spiked random features after one giant step (Cui, Pesce, Dandi, Krzakala, Lu, Zdeborová &
Loureiro 2024, "Asymptotics of feature learning in two-layer networks after one gradient-step",
ICML 2024, arXiv:2402.04980): the sRF parameters and the conditional Gaussian-equivalence
fixed-point equations for the test error of the ridge readout.

Setting and conventions (as in the authors' public notebooks)
------------------------------------------------------------
Teacher y = g(<theta, x>) with a unit direction theta, x ~ N(0, I_d), no label noise. Student
f(x) = a^T sigma(W x) / sqrt(p), W_0 of shape (p, d) with unit rows, a_0 = 1/sqrt(p) fixed. One
full-batch step on n_0 = alpha_0 d samples with learning rate eta_tilde:
W_1 = W_0 + eta_tilde p G^T, G the gradient of (1/2 n_0) sum (y - f)^2 (each row moves by
eta_tilde (1/n_0) sum_mu (y_mu - f_mu) sigma'(<w_j, x_mu>) x_mu). To leading order

    W_1 ~= c_W W_0 + r 1 v^T,    v a unit vector with <v, theta> = gamma,
    r = eta_tilde mu_1 sqrt(g2 / alpha_0 + c_1^2),
    c_W = sqrt((1 + eta_tilde m_y e_2)^2 + eta_tilde^2 g2 s2 / alpha_0),
    gamma = c_1 / sqrt(g2 / alpha_0 + c_1^2),   rho = sqrt(1 - gamma^2),

with mu_1 = E[z sigma(z)], c_1 = E[z g(z)], g2 = E y^2, s2 = E(sigma'(z) - mu_1)^2, m_y = E y and
e_2 = E sigma''(z) = E[z sigma'(z)] (this assumes the network output at initialisation is
negligible, e.g. sigma odd). The term m_y e_2 is Stein's lemma on the row itself: for a unit row
w nearly orthogonal to theta, E[y sigma'(<w, x>) x] = c_1 mu_1 theta + m_y e_2 w, so each row
also moves along itself and the bulk is scaled by 1 + eta_tilde m_y e_2 before the fluctuations
add in quadrature; it vanishes when the target is centred or sigma'' has mean zero (sigma odd),
which is the setting of Cui et al. Readout: ridge on
n = alpha d fresh samples, features phi = sigma(X W^T) / sqrt(p), objective on the SUM:
sum_mu (y_mu - <a, phi_mu>)^2 + lam ||a||^2 (mean convention: lam / n,
:func:`twolayer.theory.ridge.penalty_sum_to_mean`); test MSE against the noiseless target.

Equations (k = <v, x> ~ N(0,1); s = r k; z ~ N(0,1))
----------------------------------------------------
mu_0(k) = E_z sigma(s + c_W z), mu_1(k) = E_z[z sigma(s + c_W z)] / c_W,
mu_2(k)^2 = E_z sigma(s + c_W z)^2 - mu_0(k)^2 - c_W^2 mu_1(k)^2;
h(k) = E_z g(gamma k + rho z), h_1(k) = E_z[z g(gamma k + rho z)], hh(k) = E_z g(gamma k + rho z)^2.
Spectral data: W = c_W W_0, Pi = I - v v^T, Omega = W Pi W^T = U diag(D) U^T (p eigenvalues),
F_j = d (U^T W v)_j^2, H_j = d (U^T W zeta)_j^2 with zeta the unit vector along the part of theta
orthogonal to v. With psi = p / d and <.> = (1/p) sum_j, the order parameters solve

    S_j = psi lam + V^_1 D_j + V^_2
    V_1 = psi <D/S>,  V_2 = psi <1/S>,  theta = theta^ psi <F/S>,  psi_ = psi^ psi <H/S>
    q_1 = psi <D/S^2 (q^_1 D + q^_2 + theta^^2 F + psi^^2 H)>,  q_2 = psi <1/S^2 (same)>
    V(k) = mu_1^2 V_1 + mu_2^2 V_2,  c(k) = mu_0 m + mu_1 k theta,
    E(k) = hh + c^2 - 2 c h - 2 mu_1 psi_ h_1 + mu_1^2 q_1 + mu_2^2 q_2
    m = E_k[mu_0 (h - mu_1 k theta)/(1+V)] / (E_k[mu_0^2/(1+V)] + lam/n)
    q^_i = alpha E_k[mu_i^2 E / (1+V)^2],  V^_i = alpha E_k[mu_i^2 / (1+V)]   (i = 1, 2)
    theta^ = alpha E_k[k mu_1 (h - c)/(1+V)],  psi^ = alpha E_k[h_1 mu_1 / (1+V)]
    test MSE = E_k E(k).

For p = d (psi = 1), and without the lam/n in the equation for m, these are exactly the notebook
equations (the "mean over j" there). For p != d the factors psi come from writing the replica
equations with the sum over the p features and the scale d; they make r -> 0 agree with
:mod:`twolayer.theory.ridge` for every p/d, which the tests check. The lam/n in the equation for m
is the penalty on the mean direction 1 of feature space (||1||^2 = p): negligible when
E mu_0(k)^2 >> lam/n, it keeps m finite (0) for an odd sigma at r = 0, where the notebook form
divides 0 by 0. E_k is a Gauss–Hermite rule; the inner E_z use
:func:`twolayer.theory.hermite.shifted_gaussian_moments` (split at kinks). Solved with the shared
damped iterator (damping 1/2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twolayer.theory.fixed_point import OnFail, check_converged, iterate_fixed_point
from twolayer.theory.hermite import gauss_hermite_rule, shifted_gaussian_moments

__all__ = [
    "SpikedRFError",
    "SpikedRFParameters",
    "SpikedRFSpectrum",
    "spiked_rf_error",
    "spiked_rf_parameters",
    "spiked_rf_parameters_for",
    "spiked_rf_spectrum",
]

ArrayFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SpikedRFParameters:
    """Spike strength r, bulk scale c_W > 0 and alignment gamma in [-1, 1] of the sRF (a
    negative r is the spike along -v: it arises from an activation with mu_1 < 0)."""

    r: float
    c_w: float
    gamma: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.r):
            raise ValueError(f"spike strength r must be finite, got {self.r}")
        if not (math.isfinite(self.c_w) and self.c_w > 0):
            raise ValueError(f"bulk scale c_w must be finite and > 0, got {self.c_w}")
        if not -1.0 <= self.gamma <= 1.0:
            raise ValueError(f"alignment gamma must be in [-1, 1], got {self.gamma}")

    @property
    def rho(self) -> float:
        """sqrt(1 - gamma^2): the weight of the spike direction orthogonal to the target."""
        return math.sqrt(max(0.0, 1.0 - self.gamma**2))


def spiked_rf_parameters(
    eta_tilde: float,
    alpha0: float,
    *,
    mu1: float,
    c1: float,
    g2: float,
    s2: float,
    y_mean: float = 0.0,
    e2: float = 0.0,
) -> SpikedRFParameters:
    """sRF parameters after one step (Cui et al. 2024; see the module docstring).

    Parameters
    ----------
    eta_tilde : float
        Learning rate in their scaling (W_1 = W_0 + eta_tilde p G^T), >= 0.
    alpha0 : float
        n_0 / d for the batch of the step, > 0.
    mu1 : float
        Student E[z sigma(z)].
    c1, g2 : float
        Teacher E[z g(z)] and E[y^2] (= E g(z)^2 without label noise; >= c1^2).
    s2 : float
        E (sigma'(z) - mu1)^2.
    y_mean, e2 : float
        The target's mean E y and the student's E sigma''(z) = E[z sigma'(z)]; their product
        scales each row along itself (module docstring). Both default to 0, Cui et al.'s setting.

    Returns
    -------
    SpikedRFParameters
        r = eta_tilde mu1 sqrt(g2/alpha0 + c1^2),
        c_W = sqrt((1 + eta_tilde y_mean e2)^2 + eta_tilde^2 g2 s2 / alpha0),
        gamma = c1 / sqrt(g2/alpha0 + c1^2).
    """
    if not alpha0 > 0:
        raise ValueError(f"alpha0 must be > 0, got {alpha0}")
    if not eta_tilde >= 0:
        raise ValueError(f"eta_tilde must be >= 0, got {eta_tilde}")
    if g2 < c1**2 or s2 < 0:
        raise ValueError(f"need g2 >= c1^2 and s2 >= 0, got g2={g2}, c1={c1}, s2={s2}")
    spread = math.sqrt(g2 / alpha0 + c1**2)
    return SpikedRFParameters(
        r=eta_tilde * mu1 * spread,
        c_w=math.sqrt((1.0 + eta_tilde * y_mean * e2) ** 2 + eta_tilde**2 * g2 * s2 / alpha0),
        gamma=c1 / spread if spread > 0 else 0.0,
    )


def spiked_rf_parameters_for(
    eta_tilde: float, alpha0: float, activation: Any, link: Any, noise: float = 0.0
) -> SpikedRFParameters:
    """:func:`spiked_rf_parameters` with constants from :mod:`twolayer.activations`.

    ``activation`` (the student's sigma) and ``link`` (the teacher's g) are names or
    Activations; label noise of standard deviation ``noise`` enters through
    E[y^2] = E g(z)^2 + noise^2 (the gradient's data term X^T y / n_0 has squared norm
    c_1^2 + E[y^2] d / n_0). The target's mean E g(z) and E sigma''(z) = E[z sigma'(z)] give the
    bulk's scaling along each row (module docstring).
    """
    from twolayer.activations import gaussian_expectation, get_activation

    act, g = get_activation(activation), get_activation(link)
    mu1 = act.constants.mu1
    s2 = gaussian_expectation(lambda z: (act.derivative(z) - mu1) ** 2, act.kinks)
    e2 = gaussian_expectation(lambda z: z * act.derivative(z), act.kinks)
    return spiked_rf_parameters(eta_tilde, alpha0, mu1=mu1, c1=g.constants.mu1,
                                g2=g.constants.norm2 + float(noise) ** 2, s2=s2,
                                y_mean=g.constants.mu0, e2=e2)


@dataclass(frozen=True)
class SpikedRFSpectrum:
    """Spectral data of the bulk: D (p,), F (p,), H (p,) and the dimensions p, d (see module)."""

    D: np.ndarray
    F: np.ndarray
    H: np.ndarray
    p: int
    d: int


def spiked_rf_spectrum(
    W0: np.ndarray, v: np.ndarray, target: np.ndarray, c_w: float = 1.0
) -> SpikedRFSpectrum:
    """Spectral data for :func:`spiked_rf_error` from a realisation of W_0.

    Parameters
    ----------
    W0 : (p, d) array
        Initial weights, unit rows.
    v : (d,) array
        Spike direction (normalised here).
    target : (d,) array
        Teacher direction theta; only its part orthogonal to v is used (zeta, normalised here).
    c_w : float
        Bulk scale: W = c_w W0.

    Returns
    -------
    SpikedRFSpectrum
        One ``eigh`` of the (p, p) matrix Omega = W Pi W^T.
    """
    W = c_w * np.asarray(W0, dtype=np.float64)
    p, d = W.shape
    v = np.asarray(v, dtype=np.float64)
    v = v / np.linalg.norm(v)
    zeta = np.asarray(target, dtype=np.float64)
    zeta = zeta - (zeta @ v) * v
    norm = np.linalg.norm(zeta)
    if norm < 1e-12:  # target along the spike: any orthogonal unit vector (it carries no weight)
        zeta = np.zeros(d)
        zeta[int(np.argmin(np.abs(v)))] = 1.0
        zeta -= (zeta @ v) * v
        norm = np.linalg.norm(zeta)
    zeta = zeta / norm
    Wv = W @ v
    W_perp = W - np.outer(Wv, v)  # W Pi
    D, U = np.linalg.eigh(W_perp @ W_perp.T)
    return SpikedRFSpectrum(
        D=np.clip(D, 0.0, None), F=d * (U.T @ Wv) ** 2, H=d * (U.T @ (W @ zeta)) ** 2, p=p, d=d
    )


@dataclass(frozen=True)
class SpikedRFError:
    """Solution of the sRF equations.

    Attributes
    ----------
    test_error : float
        E (g(<theta, x>) - f_hat(x))^2.
    order : dict
        q_1, q_2, V_1, V_2, theta, psi, m at the fixed point.
    converged : bool
    n_iter : int
    residual : float
    """

    test_error: float
    order: dict
    converged: bool
    n_iter: int
    residual: float


def spiked_rf_error(
    spectrum: SpikedRFSpectrum,
    params: SpikedRFParameters,
    n: int,
    lam: float,
    activation: ArrayFn,
    link: ArrayFn,
    *,
    activation_kinks: Sequence[float] = (),
    link_kinks: Sequence[float] = (),
    n_k: int = 80,
    damping: float = 0.5,
    tol: float = 1e-9,
    max_iter: int = 20_000,
    init: np.ndarray | None = None,
    on_fail: OnFail = "raise",
) -> SpikedRFError:
    """Test error of the ridge readout on spiked random features (Cui et al. 2024).

    Parameters
    ----------
    spectrum : SpikedRFSpectrum
        From :func:`spiked_rf_spectrum` (same W_0, v and teacher direction as the model).
    params : SpikedRFParameters
        r, c_W, gamma (:func:`spiked_rf_parameters`, or chosen directly).
    n : int
        Number of readout samples (alpha = n / d).
    lam : float
        Penalty on the SUM of squared errors (see module), > 0 or = 0 when p < n.
    activation, link : callable
        Elementwise sigma and g (numpy); pass ``act.fn`` and ``act.kinks`` of a registered
        :class:`twolayer.activations.Activation`.
    activation_kinks, link_kinks : sequence of float
        Non-smooth points of sigma and g (quadrature is split there).
    n_k : int
        Gauss–Hermite nodes for the integral over k.
    init : (7,) array, optional
        Warm start (q_1, q_2, V_1, V_2, theta, psi, m), e.g. the ``order`` of a neighbouring point.

    Returns
    -------
    SpikedRFError
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    p, d = spectrum.p, spectrum.d
    alpha, psi_ratio = n / d, p / d
    r, c_w, gamma, rho = params.r, params.c_w, params.gamma, params.rho
    k, wk = gauss_hermite_rule(n_k)
    a0, a1, a2 = shifted_gaussian_moments(activation, r * k, c_w, activation_kinks)
    mu0_k, mu1_k = a0, a1 / c_w
    mu2sq_k = np.clip(a2 - a0**2 - c_w**2 * mu1_k**2, 0.0, None)
    if rho > 0:
        h, h1, hh = shifted_gaussian_moments(link, gamma * k, rho, link_kinks)
    else:
        h = link(gamma * k)
        h1, hh = np.zeros_like(k), h**2
    D, F, H = spectrum.D, spectrum.F, spectrum.H
    mu1sq = mu1_k**2

    def pieces(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q1, q2, v1, v2, th, ps, m = x
        vk = mu1sq * v1 + mu2sq_k * v2
        ck = mu0_k * m + mu1_k * k * th
        ek = hh + ck**2 - 2.0 * ck * h - 2.0 * mu1_k * ps * h1 + mu1sq * q1 + mu2sq_k * q2
        return vk, ck, ek

    def update(x: np.ndarray) -> np.ndarray:
        vk, ck, ek = pieces(x)
        inv = 1.0 / (1.0 + vk)
        hat_v1 = alpha * wk @ (mu1sq * inv)
        hat_v2 = alpha * wk @ (mu2sq_k * inv)
        hat_q1 = alpha * wk @ (mu1sq * ek * inv**2)
        hat_q2 = alpha * wk @ (mu2sq_k * ek * inv**2)
        hat_th = alpha * wk @ (k * mu1_k * (h - ck) * inv)
        hat_ps = alpha * wk @ (h1 * mu1_k * inv)
        s = psi_ratio * lam + hat_v1 * D + hat_v2  # (p/d) lam: lam on the sum, phi/sqrt(p)
        source = hat_q1 * D + hat_q2 + hat_th**2 * F + hat_ps**2 * H
        v1 = np.sum(D / s) / d
        v2 = np.sum(1.0 / s) / d
        th = hat_th * np.sum(F / s) / d
        ps = hat_ps * np.sum(H / s) / d
        q1 = np.sum(D * source / s**2) / d
        q2 = np.sum(source / s**2) / d
        # the mean direction 1 of feature space: its coefficient m = <b, 1> carries the penalty
        # lam / n (lam on the sum, ||1||^2 = p), negligible unless mu_0(k) ~ 0 (odd sigma, r = 0)
        m = (wk @ (mu0_k * (h - mu1_k * k * th) * inv)) / (wk @ (mu0_k**2 * inv) + lam / n)
        return np.array([q1, q2, v1, v2, th, ps, m])

    x0 = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]) if init is None else np.asarray(init)
    result = iterate_fixed_point(update, x0, damping=damping, tol=tol, max_iter=max_iter)
    check_converged(result, f"spiked_rf_error(r={r:g}, c_w={c_w:g}, n={n}, lam={lam:g})", on_fail)
    _, _, ek = pieces(result.x)
    names = ("q1", "q2", "V1", "V2", "theta", "psi", "m")
    return SpikedRFError(
        test_error=float(wk @ ek),
        order=dict(zip(names, (float(v) for v in result.x), strict=True)),
        converged=result.converged,
        n_iter=result.n_iter,
        residual=result.residual,
    )
