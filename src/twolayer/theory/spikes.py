"""Spike counts and overlaps after one or two large gradient steps on the first layer.

Three statements, each with its own convention (see docs/theory.md):

1. One step with eta = c n^alpha (Moniri, Lee, Hassani & Dobriban 2023, arXiv:2310.07891,
   Theorem 3.x). Student f(x) = a^T sigma(W x) with rows ||w_i|| = 1, a ~ N(0, I_N / N), loss
   (1/2n) sum (y - f)^2, W_1 = W_0 - eta grad_W (no sqrt(N) factors), n, N, d proportional; the
   feature matrix F = sigma(X W_1^T) (n x N) on fresh data. Power counting: the k-th Taylor term of
   F in the (rank-one) update has operator norm ~ n^(1 + k(alpha - 1/2)) against a bulk ~ sqrt(n),
   so the k-th spike separates iff alpha > (k - 1) / (2k): ell spikes for
   (ell - 1)/(2 ell) < alpha < ell/(2 ell + 2) (1 spike for alpha < 1/4, 2 for 1/4 < alpha < 1/3,
   3 for 1/3 < alpha < 3/8, ...). The k-th spike's left singular vector aligns with
   He_k(<x, beta>) (degree k in the projection of the data on the update's direction); a degree
   whose coefficient E[sigma^(k)(z)] (the student's Hermite coefficient) vanishes gives no spike.
   At alpha = 0 the first term is at the bulk's scale: whether it separates is a BBP question
   (:mod:`twolayer.theory.spiked`); the count returned is 0.
2. Two steps at linear width with eta_k ~ N^(alpha_k), alpha_k in [0, 1/2): the paper's count of
   outliers is floor(alpha_2 / (1/2 - alpha_1)). Power counting: the j-th order term of eta_2 G_1
   in the step-1 displacement (each neuron moved ~ N^(alpha_1 - 1/2)) has norm
   ~ N^(alpha_2 - j (1/2 - alpha_1)) and is an outlier iff j < alpha_2 / (1/2 - alpha_1); for
   non-integer ratios floor(.) counts the orders j >= 1, i.e. it does NOT include the plain step-2
   gradient spike (j = 0), which :func:`two_step_outlier_orders` lists separately. Not checked
   against simulation in this package (documented as such in docs/theory.md).
3. One giant step (Ba, Erdogdu, Suzuki, Wang, Wu & Yang 2022, NeurIPS, Proposition 2 / Section 3):
   the rank-one approximation of the first gradient has right direction X^T y / n, whose squared
   overlap with the teacher direction beta tends to c_1^2 / (c_1^2 + E[y^2] d / n), with
   c_1 = E[z f*(z)] (orthonormal Hermite convention, z ~ N(0, 1)) and E[y^2] including label noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "moniri_spike_count",
    "moniri_spike_degrees",
    "moniri_term_exponent",
    "moniri_thresholds",
    "one_step_spike_overlap",
    "two_step_outlier_orders",
    "two_step_spike_count",
]


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0.0 <= alpha < 0.5:
        raise ValueError(f"{name} must be in [0, 1/2), got {alpha}")


def moniri_thresholds(kmax: int) -> np.ndarray:
    """Thresholds (k - 1)/(2k), k = 1..kmax: the k-th spike exists iff alpha exceeds entry k-1.

    Returns
    -------
    (kmax,) array
        0, 1/4, 1/3, 3/8, 2/5, ...
    """
    if kmax < 1:
        raise ValueError(f"kmax must be >= 1, got {kmax}")
    k = np.arange(1, kmax + 1, dtype=np.float64)
    return (k - 1.0) / (2.0 * k)


def moniri_term_exponent(k: int, alpha: float) -> float:
    """Exponent e of the operator norm n^e of the k-th Taylor term of F (bulk: 1/2).

    ``1 + k (alpha - 1/2)``; the term is a spike iff it exceeds 1/2.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return 1.0 + k * (alpha - 0.5)


def moniri_spike_count(alpha: float) -> int:
    """Number of spikes of the feature matrix after one step with eta ~ n^alpha, alpha in [0, 1/2).

    The number of integers k >= 1 with (k - 1)/(2k) < alpha, i.e. k < 1 / (1 - 2 alpha):
    ``ceil(1 / (1 - 2 alpha)) - 1`` (0 at alpha = 0, see the module docstring). At a threshold
    alpha = (k-1)/(2k) exactly the k-th term is at the bulk scale and is not counted.
    """
    _check_alpha(alpha)
    bound = 1.0 / (1.0 - 2.0 * alpha)
    count = math.ceil(bound) - 1
    # guard against rounding when 1/(1 - 2 alpha) is (numerically) an integer
    if abs(bound - round(bound)) < 1e-12:
        count = round(bound) - 1
    return int(count)


def moniri_spike_degrees(
    alpha: float, student_coefficients: Sequence[float] | np.ndarray | None = None,
    tol: float = 1e-10,
) -> list[int]:
    """Hermite degrees carried by the spikes after one step with eta ~ n^alpha.

    Parameters
    ----------
    alpha : float in [0, 1/2)
    student_coefficients : (K + 1,) array, optional
        Orthonormal Hermite coefficients mu_0..mu_K of the student activation (e.g.
        ``twolayer.activations.hermite_coefficients(act, K)``); degree k is dropped when
        ``|mu_k| <= tol``, and degrees above K are dropped. mu_1 = 0 gives no spike at all (the
        gradient itself has no rank-one part).

    Returns
    -------
    list of int
        [1, 2, ..., ell] with ell = :func:`moniri_spike_count`, filtered as above; the k-th spike's
        left singular vector aligns with He_k(<x, beta>).
    """
    degrees = list(range(1, moniri_spike_count(alpha) + 1))
    if student_coefficients is None:
        return degrees
    mu = np.asarray(student_coefficients, dtype=np.float64)
    if mu.size < 2 or abs(mu[1]) <= tol:
        return []
    return [k for k in degrees if k < mu.size and abs(mu[k]) > tol]


def two_step_spike_count(alpha1: float, alpha2: float) -> int:
    """Outliers after two steps with eta_k ~ N^(alpha_k): ``floor(alpha2 / (1/2 - alpha1))``.

    Counts the orders j >= 1 of the power counting (see :func:`two_step_outlier_orders`).
    """
    _check_alpha(alpha1, "alpha1")
    _check_alpha(alpha2, "alpha2")
    return math.floor(alpha2 / (0.5 - alpha1) + 1e-12)


def two_step_outlier_orders(alpha1: float, alpha2: float) -> list[int]:
    """Orders j >= 0 of the second update whose norm N^(alpha2 - j (1/2 - alpha1)) exceeds O(1).

    j = 0 is the plain step-2 gradient spike (present whenever alpha2 > 0); j >= 1 are the
    higher-order terms counted by :func:`two_step_spike_count`.
    """
    _check_alpha(alpha1, "alpha1")
    _check_alpha(alpha2, "alpha2")
    ratio = alpha2 / (0.5 - alpha1)
    return [j for j in range(0, math.floor(ratio) + 1) if j < ratio - 1e-12]


def one_step_spike_overlap(c1: float, y_second_moment: float, n_over_d: float) -> float:
    """Squared overlap of the one-step spike direction X^T y / n with beta (Ba et al. 2022).

    Parameters
    ----------
    c1 : float
        E[z f*(z)], z ~ N(0, 1).
    y_second_moment : float
        E[y^2] (link's ||f*||^2 plus the label-noise variance).
    n_over_d : float
        n / d for the batch of the step.

    Returns
    -------
    float
        ``c1^2 / (c1^2 + E[y^2] / (n/d))``.
    """
    if not n_over_d > 0:
        raise ValueError(f"n_over_d must be > 0, got {n_over_d}")
    if y_second_moment < c1**2:
        raise ValueError("E[y^2] must be >= c1^2")
    if c1 == 0:
        return 0.0
    return c1**2 / (c1**2 + y_second_moment / n_over_d)


def one_step_spike_strength(
    step: float | np.ndarray, mean_derivative: float, a_norm: float, c1: float,
    y_second_moment: float, n_over_d: float,
) -> float | np.ndarray:
    """Operator norm of the rank-one part of one giant step on the square loss (Ba et al. 2022).

    At initialisation with f(x) ~ 0 (a small second layer), the mean-loss gradient in W is, to
    leading order, -s E[sigma'] a (X^T y / n)^T (s the output scale), so the step eta adds a
    rank-one matrix of operator norm

        eta s E[sigma'(<w, x>)] ||a|| ||X^T y / n||,   ||X^T y / n||^2 -> c1^2 + E[y^2] d / n.

    Parameters
    ----------
    step : float or array
        eta times the output scale s (for eta = c sqrt(N) and s = 1/sqrt(N): c).
    mean_derivative : float
        E[sigma'(<w, x>)]; for rows of unit norm the activation's mu_1 (Stein's identity).
    a_norm : float
        ||a|| of the second layer at initialisation.
    c1, y_second_moment, n_over_d : float
        As in :func:`one_step_spike_overlap`.
    """
    if not n_over_d > 0:
        raise ValueError(f"n_over_d must be > 0, got {n_over_d}")
    if y_second_moment < c1**2:
        raise ValueError("E[y^2] must be >= c1^2")
    return (
        np.asarray(step, dtype=np.float64) * mean_derivative * a_norm
        * math.sqrt(c1**2 + y_second_moment / n_over_d)
    )
