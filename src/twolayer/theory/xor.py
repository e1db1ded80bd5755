"""XOR cluster model (Frei, Chatterji & Bartlett, COLT 2023): Bayes error and linear classifiers.

Model: mu_1 orthogonal to mu_2 in R^d with ||mu_1|| = ||mu_2|| = m; clean label +1 for the clusters
+-mu_1 and -1 for +-mu_2, the four clusters equally likely, x = mean + N(0, I_d); each label is then
flipped independently with probability p (the label-noise rate). Errors are 0-1 errors against the
observed (noisy) labels: a classifier with clean error e has error p + (1 - 2p) e.

Only u = <x, mu_1>/m and v = <x, mu_2>/m matter. The class likelihoods are proportional to
cosh(m u) phi(u) phi(v) and cosh(m v) phi(u) phi(v), so the Bayes rule (for p < 1/2) predicts +1
iff |u| > |v|, and its clean error is

    e_Bayes(m) = P(|v| > |u|) = E_{u ~ N(m, 1)} [2 (1 - Phi(|u|))],      (1-D quadrature)

1/2 at m = 0, decreasing to 0 like exp(-m^2/4).

Linear classifiers. A homogeneous one, sign(<w, x>), has clean error exactly 1/2 for every w: the
law of <w, x> given either label is symmetric about 0. With a bias, sign(<w, x> - t) can do
better (take w = mu_1/m and a threshold t ~ m/2: the cluster +mu_1 is right, -mu_1 wrong, the -1
clusters right: error -> 1/4 as m grows); :func:`xor_best_affine_error` computes the optimum over
directions in span(mu_1, mu_2) (components outside add independent noise and cannot help) and
thresholds.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "xor_bayes_error",
    "xor_best_affine_error",
    "xor_homogeneous_linear_error",
    "xor_noisy_error",
]


def _check(mean_norm: float, noise_rate: float) -> None:
    if mean_norm < 0:
        raise ValueError(f"mean_norm must be >= 0, got {mean_norm}")
    if not 0.0 <= noise_rate <= 0.5:
        raise ValueError(f"noise_rate must be in [0, 1/2], got {noise_rate}")


def xor_noisy_error(clean_error: float, noise_rate: float) -> float:
    """Error against labels flipped with probability p of a classifier with clean error e."""
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}")
    return noise_rate + (1.0 - 2.0 * noise_rate) * clean_error


def xor_bayes_error(mean_norm: float, noise_rate: float = 0.0) -> float:
    """Bayes 0-1 error of the XOR cluster model, against labels with flip rate p.

    Parameters
    ----------
    mean_norm : float
        m = ||mu_1|| = ||mu_2|| >= 0 (identity noise covariance).
    noise_rate : float in [0, 1/2]
        Label-flip probability p.

    Returns
    -------
    float
        ``p + (1 - 2p) e_Bayes(m)``; tends to p as m grows (the clusters well separated).
    """
    _check(mean_norm, noise_rate)

    def integrand(u: float) -> float:
        density = math.exp(-0.5 * (u - mean_norm) ** 2) / math.sqrt(2.0 * math.pi)
        return density * math.erfc(abs(u) / math.sqrt(2.0))  # 2 (1 - Phi(|u|))

    import scipy.integrate  # here, not at the top: it costs ~0.3 s of every start-up

    clean = 0.0
    lo, hi = mean_norm - 40.0, mean_norm + 40.0
    for a, b in ((lo, min(0.0, hi)), (max(0.0, lo), hi)):
        if b > a:
            value, _ = scipy.integrate.quad(integrand, a, b, epsabs=1e-15, epsrel=1e-12,
                                            limit=400)
            clean += value
    return xor_noisy_error(clean, noise_rate)


def xor_homogeneous_linear_error(noise_rate: float = 0.0) -> float:
    """Error of any homogeneous linear classifier sign(<w, x>): exactly 1/2 (any p, any m)."""
    _check(0.0, noise_rate)
    return 0.5


def _affine_clean_error(angle: float, threshold: float, mean_norm: float) -> float:
    """Clean error of 'predict +1 iff <w, x> > t' for w = cos(angle) e_1 + sin(angle) e_2."""
    import scipy.special  # here: importing it costs ~0.3 s at start-up

    a, b = mean_norm * math.cos(angle), mean_norm * math.sin(angle)
    ndtr = scipy.special.ndtr
    cdf_plus = 0.5 * (ndtr(threshold - a) + ndtr(threshold + a))  # P(<w,x> <= t | +1)
    cdf_minus = 0.5 * (ndtr(threshold - b) + ndtr(threshold + b))
    return 0.5 * (cdf_plus + 1.0 - cdf_minus)


def xor_best_affine_error(mean_norm: float, noise_rate: float = 0.0) -> float:
    """Smallest 0-1 error of an affine classifier sign(<w, x> - t) on XOR clusters.

    The optimum is taken over the direction angle in [0, pi/2] (by symmetry) and t >= 0, for both
    orientations of the prediction, by a grid search refined with Nelder–Mead. Tends to 1/4 as m
    grows (one of the two +1 clusters is given up); 1/2 at m = 0.

    Returns
    -------
    float
        ``p + (1 - 2p) e_affine(m)``.
    """
    _check(mean_norm, noise_rate)
    if mean_norm == 0:
        return 0.5

    def objective(params: np.ndarray) -> float:
        angle, threshold = float(params[0]), float(params[1])
        e = _affine_clean_error(angle, threshold, mean_norm)
        return min(e, 1.0 - e)  # the opposite orientation has error 1 - e

    best = (math.inf, None)
    for angle in np.linspace(0.0, 0.5 * math.pi, 31):
        for threshold in np.linspace(0.0, mean_norm + 4.0, 41):
            value = objective(np.array([angle, threshold]))
            if value < best[0]:
                best = (value, np.array([angle, threshold]))
    import scipy.optimize  # here, not at the top: it costs ~0.2 s of every start-up

    res = scipy.optimize.minimize(objective, best[1], method="Nelder-Mead",
                                  options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
    clean = min(best[0], float(res.fun))
    return xor_noisy_error(clean, noise_rate)
