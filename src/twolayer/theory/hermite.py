"""Gaussian quadrature helpers for the theory layer (orthonormal Hermite convention).

The project's convention, everywhere: Hermite polynomials are the probabilists' He_k normalised to
h_k = He_k / sqrt(k!), so E[h_j(z) h_k(z)] = delta_jk for z ~ N(0, 1) and the coefficients of a
function are mu_k = E[f(z) h_k(z)]. The activation-level coefficients live in
:mod:`twolayer.activations`; this module adds the *shifted and rescaled* expectations needed by
the conditional Gaussian-equivalence equations (:mod:`twolayer.theory.spiked_rf`):
E_z f(s + c z) for many shifts s at once, split at the kinks of f so that piecewise-smooth
functions (relu) are integrated to ~1e-12.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

__all__ = ["gauss_hermite_rule", "shifted_gaussian_moments"]

ArrayFn = Callable[[np.ndarray], np.ndarray]


@cache
def gauss_hermite_rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) of the n-point rule for E f(z), z ~ N(0, 1).

    Returns
    -------
    nodes, weights : (n_nodes,) arrays (read-only copies are not made: do not modify)
    """
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    return nodes, weights / weights.sum()


@cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _piecewise_rule(breaks: Sequence[float], half_width: float, n_per_piece: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre rule for E f(z) on [-L, L], split at ``breaks`` (Gaussian weight included)."""
    cuts = sorted({-half_width, half_width, *(b for b in breaks if -half_width < b < half_width)})
    x, w = _legendre(n_per_piece)
    nodes, weights = [], []
    for lo, hi in itertools.pairwise(cuts):
        mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
        z = mid + rad * x
        nodes.append(z)
        weights.append(rad * w * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))
    return np.concatenate(nodes), np.concatenate(weights)


def shifted_gaussian_moments(
    fn: ArrayFn,
    shifts: np.ndarray,
    scale: float,
    kinks: Sequence[float] = (),
    *,
    n_nodes: int = 160,
    half_width: float = 12.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E_z f(s + c z), E_z[z f(s + c z)] and E_z f(s + c z)^2 for each shift s, z ~ N(0, 1).

    Parameters
    ----------
    fn : callable
        Elementwise function f (numpy).
    shifts : (m,) array
        The shifts s.
    scale : float
        c > 0.
    kinks : sequence of float
        Points where f is not smooth. Empty: Gauss–Hermite with ``n_nodes`` nodes. Otherwise
        Gauss–Legendre with ``n_nodes // 2`` nodes on each piece of [-L, L] cut at (kink - s)/c.

    Returns
    -------
    m0, m1, m2 : (m,) arrays
        Note that m1 is E[z f(s + c z)], not divided by c.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    shifts = np.atleast_1d(np.asarray(shifts, dtype=np.float64))
    if not kinks:
        z, w = gauss_hermite_rule(n_nodes)
        values = fn(shifts[:, None] + scale * z[None, :])
        return values @ w, values @ (w * z), (values**2) @ w
    m0 = np.empty_like(shifts)
    m1 = np.empty_like(shifts)
    m2 = np.empty_like(shifts)
    for i, s in enumerate(shifts):
        z, w = _piecewise_rule([(k - s) / scale for k in kinks], half_width, max(n_nodes // 2, 8))
        values = fn(s + scale * z)
        m0[i], m1[i], m2[i] = values @ w, values @ (w * z), (values**2) @ w
    return m0, m1, m2
