"""Finite-rank additive spikes of rectangular random matrices (BBP transition).

Model: ``M = W + sum_k theta_k u_k v_k^T`` with W of shape (N, d), iid centred entries of variance
``scale / d``, unit vectors u_k in R^N (left) and v_k in R^d (right), orthogonal families, distinct
strengths theta_k > 0, and c = N / d. As N, d -> infinity each spike acts independently
(Benaych-Georges & Nadakuditi 2012, J. Multivariate Anal. 111, 120–135, Section 3.1, Gaussian
noise; the formulas below are the scale-1 case rescaled by ``sqrt(scale)``):

- detection threshold ``theta_c = sqrt(scale) * c^(1/4)``;
- above it the spike creates an outlier singular value
  ``sqrt(scale) * sqrt((1 + t^2)(c + t^2)) / t`` with ``t = theta / sqrt(scale)``;
  below it the top singular values stick to the bulk edge ``sqrt(scale) (1 + sqrt c)``;
- squared overlaps of the outlier's singular vectors with the planted ones, above threshold,
  left (R^N) ``1 - c (1 + t^2) / (t^2 (t^2 + c))``, right (R^d) ``1 - (c + t^2) / (t^2 (t^2 + 1))``;
  both are 0 below threshold (the top singular vectors are delocalised, overlap O(1/N)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SpikeSpectrum",
    "bbp_outlier_singular_value",
    "bbp_overlaps",
    "bbp_spectrum",
    "bbp_threshold",
]


def _check(c: float, scale: float) -> None:
    if not c > 0:
        raise ValueError(f"aspect ratio c = N/d must be > 0, got {c}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")


def bbp_threshold(c: float, scale: float = 1.0) -> float:
    """Spike strength above which an outlier separates: ``sqrt(scale) * c^(1/4)``.

    Parameters
    ----------
    c : float
        N / d for M of shape (N, d).
    scale : float
        d times the entry variance of the noise W.
    """
    _check(c, scale)
    return math.sqrt(scale) * c**0.25


def bbp_outlier_singular_value(
    theta: np.ndarray | float, c: float, scale: float = 1.0
) -> np.ndarray:
    """Limit of the singular value created by a spike of strength theta (array, any shape).

    Returns ``sqrt(scale) sqrt((1 + t^2)(c + t^2)) / t`` (t = theta / sqrt(scale)) above
    threshold and the bulk edge ``sqrt(scale) (1 + sqrt c)`` at or below it.
    """
    _check(c, scale)
    t = np.asarray(theta, dtype=np.float64) / math.sqrt(scale)
    if np.any(t < 0):
        raise ValueError("spike strengths must be >= 0")
    edge = 1.0 + math.sqrt(c)
    above = t > c**0.25
    out = np.full_like(t, edge)
    ta = t[above]
    out[above] = np.sqrt((1.0 + ta**2) * (c + ta**2)) / ta
    return math.sqrt(scale) * out


def bbp_overlaps(
    theta: np.ndarray | float, c: float, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Limits of the squared overlaps <u, u_hat>^2 (left, R^N) and <v, v_hat>^2 (right, R^d).

    Parameters
    ----------
    theta : array_like
        Spike strengths (any shape).
    c, scale : float
        As in :func:`bbp_threshold`.

    Returns
    -------
    (left, right) : arrays, same shape as theta
        0 at or below the threshold.
    """
    _check(c, scale)
    t = np.asarray(theta, dtype=np.float64) / math.sqrt(scale)
    above = t > c**0.25
    left = np.zeros_like(t)
    right = np.zeros_like(t)
    t2 = t[above] ** 2
    left[above] = 1.0 - c * (1.0 + t2) / (t2 * (t2 + c))
    right[above] = 1.0 - (c + t2) / (t2 * (t2 + 1.0))
    return left, right


@dataclass(frozen=True)
class SpikeSpectrum:
    """Predicted outliers of a rank-r spiked matrix, spikes sorted by decreasing strength.

    Attributes
    ----------
    theta : (r,) array
        Strengths, decreasing.
    detected : (r,) bool array
        Above the threshold.
    singular_values : (r,) array
        Outlier location (bulk edge when not detected).
    left_overlap, right_overlap : (r,) arrays
        Squared overlaps (0 when not detected).
    n_outliers : int
        Number of detected spikes.
    bulk_edge : float
        ``sqrt(scale) (1 + sqrt c)``.
    """

    theta: np.ndarray
    detected: np.ndarray
    singular_values: np.ndarray
    left_overlap: np.ndarray
    right_overlap: np.ndarray
    n_outliers: int
    bulk_edge: float


def bbp_spectrum(thetas: np.ndarray | list[float], c: float, scale: float = 1.0) -> SpikeSpectrum:
    """Outliers and overlaps of ``W + sum_k theta_k u_k v_k^T`` (distinct strengths, see module)."""
    t = np.sort(np.atleast_1d(np.asarray(thetas, dtype=np.float64)))[::-1]
    left, right = bbp_overlaps(t, c, scale)
    detected = t > bbp_threshold(c, scale)
    return SpikeSpectrum(
        theta=t,
        detected=detected,
        singular_values=bbp_outlier_singular_value(t, c, scale),
        left_overlap=left,
        right_overlap=right,
        n_outliers=int(detected.sum()),
        bulk_edge=math.sqrt(scale) * (1.0 + math.sqrt(c)),
    )
