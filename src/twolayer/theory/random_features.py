"""Random-features ridge regression asymptotics (Mei & Montanari 2019, arXiv:1908.05355, CPAM 2022).

Model and conventions (their Section 2; Theorem 1 and the ridgeless Theorem 2 / Section 5.3):

- x uniform on the sphere of radius sqrt(d) (Gaussian x ~ N(0, I_d) gives the same limit);
  first-layer weights theta_a uniform on the same sphere, features ``sigma(<theta_a, x>/sqrt d)``
  = ``sigma(<w_a, x>)`` with unit-norm w_a;
- target y = beta_0 + <beta_1, x> + f_NL(x) + eps with ||beta_1||^2 -> F_1^2 (``signal_linear``),
  E f_NL^2 -> F_*^2 (``signal_nonlinear``, orthogonal to polynomials of degree <= 1),
  E eps^2 = tau^2 (``noise_var``);
- estimator a = argmin (1/n) sum_i (y_i - sum_j a_j sigma_ij)^2 + (N lam / d) ||a||^2, features NOT
  divided by sqrt(N). With phi = sigma(W x)/sqrt(N) and b = sqrt(N) a this is the mean-loss ridge of
  :mod:`twolayer.theory.ridge` with penalty ``lam / d`` (:func:`mei_montanari_penalty_to_mean`);
- risk R = E_x (f(x) - f_hat(x))^2 (excess risk: no label noise in the test point);
- limit N/d -> psi_1, n/d -> psi_2; activation constants mu_1 = E[z sigma(z)], mu_star^2 =
  E sigma^2 - mu_0^2 - mu_1^2.
- the target's constant beta_0: when mu_0 = E sigma(z) != 0 the mean feature absorbs it and it
  does not enter the risk (the theorem's setting). When mu_0 = 0 (tanh, erf, any odd or centred
  activation) every feature is orthogonal to constants, so beta_0 is a component the features
  cannot represent, exactly like f_NL: it adds beta_0^2 to F_*^2 (the risk is then at least
  beta_0^2). :func:`mei_montanari_risk_for` takes ``mean_signal`` = beta_0 and does this;
  the functions taking mu_1 and mu_star know nothing of mu_0 and assume beta_0 = 0 or mu_0 != 0.

With lam_bar = lam / mu_star^2 and zeta = mu_1 / mu_star, the fixed point is written on the
imaginary axis (nu_j = i b_j, xi = i s, s = sqrt(psi_1 psi_2 lam_bar)):

    b_1 = psi_1 / (s + b_2 + zeta^2 b_2 / (1 + zeta^2 b_1 b_2))
    b_2 = psi_2 / (s + b_1 + zeta^2 b_1 / (1 + zeta^2 b_1 b_2)),     chi = -b_1 b_2,

and R = F_1^2 B + (tau^2 + F_*^2) V + F_*^2 with B = E_1/E_0, V = E_2/E_0 (polynomials in chi,
zeta, psi_1, psi_2; see :func:`_mm_polynomials`). Ridgeless (lam -> 0+): with psi = min(psi_1,
psi_2), chi = -(q + sqrt(q^2 + 4 zeta^2 psi)) / (2 zeta^2), q = psi zeta^2 - zeta^2 - 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from twolayer.theory.fixed_point import OnFail, check_converged, iterate_fixed_point

__all__ = [
    "MMRisk",
    "mei_montanari_penalty_to_mean",
    "mei_montanari_ridgeless",
    "mei_montanari_risk",
    "mei_montanari_risk_for",
]


def mei_montanari_penalty_to_mean(lam_mm: float, d: int) -> float:
    """Mei–Montanari's penalty (N lam / d on unnormalised features) -> mean-convention penalty.

    ``(1/n) sum (y - sum_j a_j sigma_ij)^2 + (N lam_mm / d) ||a||^2`` equals, with
    ``phi = sigma / sqrt(N)`` and ``b = sqrt(N) a``,
    ``(1/n) sum (y - <b, phi>)^2 + (lam_mm / d) ||b||^2``.
    """
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    return lam_mm / d


@dataclass(frozen=True)
class MMRisk:
    """Mei–Montanari asymptotic risk of random-features ridge.

    Attributes
    ----------
    psi1, psi2, lam : float
        N/d, n/d, penalty (Mei–Montanari convention).
    chi : float
        nu_1 nu_2 at the fixed point (real, negative).
    e0, e1, e2 : float
        The polynomials E_0, E_1, E_2.
    bias, variance : float
        B = E_1/E_0 and V = E_2/E_0.
    risk : float
        F_1^2 B + (tau^2 + F_*^2) V + F_*^2.
    converged : bool
        Whether the fixed point converged (always True for the ridgeless closed form).
    n_iter : int
        Fixed-point iterations used (0 for the closed form).
    """

    psi1: float
    psi2: float
    lam: float
    chi: float
    e0: float
    e1: float
    e2: float
    bias: float
    variance: float
    risk: float
    converged: bool
    n_iter: int


def _mm_polynomials(chi: float, z: float, psi1: float, psi2: float) -> tuple[float, float, float]:
    """E_0, E_1, E_2 of Mei & Montanari (2019), Definition 1, with z = zeta = mu_1/mu_star."""
    z2, z4, z6 = z**2, z**4, z**6
    p12 = psi1 * psi2
    e0 = (
        -(chi**5) * z6
        + 3 * chi**4 * z4
        + (p12 - psi2 - psi1 + 1) * chi**3 * z6
        - 2 * chi**3 * z4
        - 3 * chi**3 * z2
        + (psi1 + psi2 - 3 * p12 + 1) * chi**2 * z4
        + 2 * chi**2 * z2
        + chi**2
        + 3 * p12 * chi * z2
        - p12
    )
    e1 = psi2 * chi**3 * z4 - psi2 * chi**2 * z2 + p12 * chi * z2 - p12
    e2 = (
        chi**5 * z6
        - 3 * chi**4 * z4
        + (psi1 - 1) * chi**3 * z6
        + 2 * chi**3 * z4
        + 3 * chi**3 * z2
        - (psi1 + 1) * chi**2 * z4
        - 2 * chi**2 * z2
        - chi**2
    )
    return e0, e1, e2


def _check(psi1: float, psi2: float, mu1: float, mu_star: float) -> None:
    if not (psi1 > 0 and psi2 > 0):
        raise ValueError(f"psi1 = N/d and psi2 = n/d must be > 0, got {psi1}, {psi2}")
    if not mu_star > 0:
        raise ValueError(f"mu_star must be > 0 (a non-linear activation), got {mu_star}")
    if mu1 == 0:
        raise ValueError("mu1 = 0: the formulas of Mei & Montanari assume mu1 != 0")


def _assemble(psi1, psi2, lam, chi, zeta, signal_linear, signal_nonlinear, noise_var,
              converged, n_iter) -> MMRisk:
    e0, e1, e2 = _mm_polynomials(chi, zeta, psi1, psi2)
    bias, variance = e1 / e0, e2 / e0
    risk = signal_linear * bias + (noise_var + signal_nonlinear) * variance + signal_nonlinear
    return MMRisk(psi1=psi1, psi2=psi2, lam=lam, chi=chi, e0=e0, e1=e1, e2=e2, bias=bias,
                  variance=variance, risk=risk, converged=converged, n_iter=n_iter)


def mei_montanari_risk(
    psi1: float,
    psi2: float,
    lam: float,
    *,
    mu1: float,
    mu_star: float,
    signal_linear: float = 1.0,
    signal_nonlinear: float = 0.0,
    noise_var: float = 0.0,
    tol: float = 1e-13,
    max_iter: int = 200_000,
    on_fail: OnFail = "raise",
) -> MMRisk:
    """Asymptotic excess risk of random-features ridge regression (Mei & Montanari 2019, Thm 1).

    Parameters
    ----------
    psi1, psi2 : float
        N/d (features per dimension) and n/d (samples per dimension).
    lam : float
        Penalty > 0 in Mei–Montanari's convention ``(N lam / d) ||a||^2`` on unnormalised
        features (see the module docstring); use :func:`mei_montanari_ridgeless` for lam = 0.
    mu1, mu_star : float
        Activation constants (mu1 = E z sigma(z), mu_star^2 = E sigma^2 - mu0^2 - mu1^2).
    signal_linear, signal_nonlinear, noise_var : float
        F_1^2, F_*^2 and tau^2.

    Returns
    -------
    MMRisk
        Raises :class:`~twolayer.theory.fixed_point.FixedPointError` if the damped iteration
        (damping 1/2, from b_j = psi_j / s) does not converge, unless ``on_fail`` says otherwise.
    """
    _check(psi1, psi2, mu1, mu_star)
    if not lam > 0:
        raise ValueError(f"lam must be > 0 here (use mei_montanari_ridgeless), got {lam}")
    zeta = mu1 / mu_star
    z2 = zeta**2
    s = math.sqrt(psi1 * psi2 * lam / mu_star**2)

    def update(b: np.ndarray) -> np.ndarray:
        b1, b2 = b
        coupling = 1.0 + z2 * b1 * b2
        return np.array([
            psi1 / (s + b2 + z2 * b2 / coupling),
            psi2 / (s + b1 + z2 * b1 / coupling),
        ])

    # the b_j can be large (~ 1/s): iterate on a relative scale by using log coordinates
    def update_log(u: np.ndarray) -> np.ndarray:
        return np.log(update(np.exp(u)))

    result = iterate_fixed_point(update_log, np.log([psi1 / s, psi2 / s]), damping=0.5, tol=tol,
                                 max_iter=max_iter)
    check_converged(result, f"mei_montanari_risk(psi1={psi1:g}, psi2={psi2:g}, lam={lam:g})",
                    on_fail)
    b1, b2 = np.exp(result.x)
    return _assemble(psi1, psi2, lam, -b1 * b2, zeta, signal_linear, signal_nonlinear, noise_var,
                     result.converged, result.n_iter)


def mei_montanari_ridgeless(
    psi1: float,
    psi2: float,
    *,
    mu1: float,
    mu_star: float,
    signal_linear: float = 1.0,
    signal_nonlinear: float = 0.0,
    noise_var: float = 0.0,
) -> MMRisk:
    """Ridgeless limit lam -> 0+ (minimum-norm interpolator when N > n), closed form.

    chi = -(q + sqrt(q^2 + 4 zeta^2 psi)) / (2 zeta^2), q = psi zeta^2 - zeta^2 - 1,
    psi = min(psi1, psi2). Diverges (E_0 = 0) at psi1 = psi2, the interpolation peak: the returned
    risk is then ``inf``.
    """
    _check(psi1, psi2, mu1, mu_star)
    zeta = mu1 / mu_star
    z2 = zeta**2
    psi = min(psi1, psi2)
    q = psi * z2 - z2 - 1.0
    chi = -(q + math.sqrt(q * q + 4.0 * z2 * psi)) / (2.0 * z2)
    if psi1 == psi2:
        e0, e1, e2 = _mm_polynomials(chi, zeta, psi1, psi2)
        return MMRisk(psi1=psi1, psi2=psi2, lam=0.0, chi=chi, e0=e0, e1=e1, e2=e2,
                      bias=math.inf, variance=math.inf, risk=math.inf, converged=True, n_iter=0)
    return _assemble(psi1, psi2, 0.0, chi, zeta, signal_linear, signal_nonlinear, noise_var,
                     True, 0)


def mei_montanari_risk_for(
    psi1: float,
    psi2: float,
    lam: float,
    activation: Any,
    *,
    signal_linear: float = 1.0,
    signal_nonlinear: float = 0.0,
    noise_var: float = 0.0,
    mean_signal: float = 0.0,
) -> MMRisk:
    """:func:`mei_montanari_risk` (ridgeless form when lam == 0) for an activation given in any
    form a spec accepts (name, mapping or Activation).

    ``mean_signal`` is the target's constant beta_0: absorbed by the mean feature when the
    activation has mu_0 != 0, and added to the part the features cannot represent
    (F_*^2 += beta_0^2, see the module docstring) when mu_0 = 0 (``|mu_0| < 1e-12``).
    """
    from twolayer.activations import activation_from

    c = activation_from(activation).constants
    if mean_signal and abs(c.mu0) < 1e-12:
        signal_nonlinear = signal_nonlinear + float(mean_signal) ** 2
    kwargs = dict(mu1=c.mu1, mu_star=c.mu_star, signal_linear=signal_linear,
                  signal_nonlinear=signal_nonlinear, noise_var=noise_var)
    if lam == 0:
        return mei_montanari_ridgeless(psi1, psi2, **kwargs)
    return mei_montanari_risk(psi1, psi2, lam, **kwargs)
