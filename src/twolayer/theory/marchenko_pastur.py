"""Marchenko–Pastur law and the Tracy–Widom scale of the largest singular value.

Convention: W is an (N, d) matrix with iid centred entries of variance ``scale / d`` (the project's
default initialisation has ``scale = 1``: entries N(0, 1/d), or rows uniform on the unit sphere,
which has the same limit). The aspect ratio is ``c = N / d``. The eigenvalues of the (N, N) matrix
W W^T then follow, as N, d -> infinity with N/d -> c, the Marchenko–Pastur law

    rho(x) = sqrt((b - x)(x - a)) / (2 pi c scale x)   on [a, b],
    a = scale (1 - sqrt c)^2,  b = scale (1 + sqrt c)^2,

plus an atom of mass 1 - 1/c at 0 when c > 1 (W W^T has rank d < N). The non-zero singular values
of W fill [sqrt(scale) |1 - sqrt c|, sqrt(scale) (1 + sqrt c)].

Source: V. A. Marchenko and L. A. Pastur, Math. USSR Sbornik 1 (1967); Tracy–Widom fluctuations
of the largest eigenvalue: I. M. Johnstone, Ann. Statist. 29 (2001) 295–327 (real case, TW_1).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "TRACY_WIDOM1_MEAN",
    "TRACY_WIDOM1_STD",
    "mp_atom",
    "mp_cdf",
    "mp_density",
    "mp_eigenvalue_edges",
    "mp_singular_value_edge",
    "mp_singular_value_edges",
    "tracy_widom_scale",
]

#: Mean of the Tracy–Widom distribution TW_1 (real, beta = 1).
TRACY_WIDOM1_MEAN = -1.2065335745820
#: Standard deviation of TW_1 (variance 1.6077810345810).
TRACY_WIDOM1_STD = math.sqrt(1.6077810345810)


def _check(c: float, scale: float) -> None:
    if not c > 0:
        raise ValueError(f"aspect ratio c = N/d must be > 0, got {c}")
    if not scale > 0:
        raise ValueError(f"scale (d times the entry variance) must be > 0, got {scale}")


def mp_eigenvalue_edges(c: float, scale: float = 1.0) -> tuple[float, float]:
    """Edges (a, b) of the continuous part of the MP law of the eigenvalues of W W^T.

    Parameters
    ----------
    c : float
        Aspect ratio N / d of W, shape (N, d).
    scale : float
        d times the entry variance of W (1 for entries N(0, 1/d)).

    Returns
    -------
    (a, b) : tuple of float
        ``scale * (1 - sqrt c)^2`` and ``scale * (1 + sqrt c)^2``.
    """
    _check(c, scale)
    r = math.sqrt(c)
    return scale * (1.0 - r) ** 2, scale * (1.0 + r) ** 2


def mp_singular_value_edges(c: float, scale: float = 1.0) -> tuple[float, float]:
    """Edges of the non-zero singular values of W: ``sqrt(scale) * (|1 - sqrt c|, 1 + sqrt c)``.

    For c > 1 the lower edge is that of the d non-zero singular values (there are min(N, d)).
    """
    a, b = mp_eigenvalue_edges(c, scale)
    return math.sqrt(a), math.sqrt(b)


def mp_atom(c: float) -> float:
    """Mass of the atom at 0 of the eigenvalue law of W W^T (N x N): ``max(0, 1 - 1/c)``."""
    _check(c, 1.0)
    return max(0.0, 1.0 - 1.0 / c)


def mp_density(x: np.ndarray | float, c: float, scale: float = 1.0) -> np.ndarray:
    """Density of the continuous part of the MP law (eigenvalues of W W^T, W of shape (N, d)).

    Parameters
    ----------
    x : array_like
        Points (any shape).
    c : float
        N / d.
    scale : float
        d times the entry variance.

    Returns
    -------
    array, same shape as x
        ``sqrt((b - x)(x - a)) / (2 pi c scale x)`` inside (a, b), 0 outside. It integrates to
        ``min(1, 1/c)``; the rest is the atom at 0 (:func:`mp_atom`).
    """
    a, b = mp_eigenvalue_edges(c, scale)
    x = np.asarray(x, dtype=np.float64)
    inside = (x > a) & (x < b) & (x > 0)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = np.sqrt((b - xi) * (xi - a)) / (2.0 * math.pi * c * scale * xi)
    return out


def _continuous_mass_below(x: float, c: float) -> float:
    """Integral of the scale-1 MP density from a to x, with x = m + h cos t (smooth in t)."""
    a, b = mp_eigenvalue_edges(c, 1.0)
    if x <= a:
        return 0.0
    if x >= b:
        return min(1.0, 1.0 / c)
    m, h = 1.0 + c, 2.0 * math.sqrt(c)
    t_x = math.acos(min(1.0, max(-1.0, (x - m) / h)))

    def integrand(t: float) -> float:
        # density(x) dx with x = m + h cos t; sin^2 t / (m + h cos t) stays bounded at c = 1
        return h * h * math.sin(t) ** 2 / (2.0 * math.pi * c * (m + h * math.cos(t)))

    import scipy.integrate  # here, not at the top: it costs ~0.3 s of every start-up

    value, _ = scipy.integrate.quad(integrand, t_x, math.pi, epsabs=1e-14, epsrel=1e-12)
    return value


def mp_cdf(x: np.ndarray | float, c: float, scale: float = 1.0) -> np.ndarray:
    """Cumulative distribution function of the MP law of the eigenvalues of W W^T (atom included).

    Parameters
    ----------
    x : array_like
        Points (any shape).
    c, scale : float
        As in :func:`mp_density`.

    Returns
    -------
    array, same shape as x
        F(x) = P(lambda <= x), accurate to ~1e-12 (adaptive quadrature in the angle variable
        x = (1 + c) + 2 sqrt(c) cos t, where the integrand is smooth).
    """
    _check(c, scale)
    x = np.asarray(x, dtype=np.float64)
    atom = mp_atom(c)
    flat = [
        (0.0 if xi < 0 else atom + _continuous_mass_below(xi / scale, c)) for xi in x.reshape(-1)
    ]
    return np.asarray(flat, dtype=np.float64).reshape(x.shape)


def mp_singular_value_edge(N: int, d: int, variance: float | None = None) -> float:
    """Upper edge of the singular values of an (N, d) matrix with iid entries of given variance.

    Parameters
    ----------
    N, d : int
        Shape of W.
    variance : float, optional
        Entry variance (default ``1/d``, the project's initialisation).

    Returns
    -------
    float
        ``sqrt(variance) * (sqrt N + sqrt d)``, which is ``1 + sqrt(N/d)`` for variance 1/d.
    """
    if N < 1 or d < 1:
        raise ValueError(f"N and d must be >= 1, got N={N}, d={d}")
    var = 1.0 / d if variance is None else float(variance)
    if not var > 0:
        raise ValueError(f"variance must be > 0, got {variance}")
    return math.sqrt(var) * (math.sqrt(N) + math.sqrt(d))


def tracy_widom_scale(N: int, d: int, variance: float | None = None) -> float:
    """Fluctuation scale of the largest singular value of an (N, d) Gaussian matrix.

    Johnstone (2001): for X (n x p) with iid N(0, 1) entries, (lambda_max(X^T X) - mu) / s -> TW_1
    with mu = (sqrt n + sqrt p)^2 and s = (sqrt n + sqrt p)(1/sqrt n + 1/sqrt p)^(1/3). For the
    singular value sqrt(lambda_max) this gives, to first order, fluctuations
    ``s / (2 sqrt mu) * TW_1``; multiplied by ``sqrt(variance)``.

    Parameters
    ----------
    N, d : int
        Shape of W.
    variance : float, optional
        Entry variance (default 1/d).

    Returns
    -------
    float
        ``sqrt(variance) / 2 * (1/sqrt N + 1/sqrt d)^(1/3)``; for variance 1/d and N ~ d this is of
        order d^(-2/3). The largest singular value is approximately
        ``mp_singular_value_edge + tracy_widom_scale * TW_1`` (mean offset ``TRACY_WIDOM1_MEAN``,
        standard deviation ``TRACY_WIDOM1_STD`` in these units); a finite-size outlier margin of
        a few (e.g. 4-6) scales above the edge leaves a pure-noise false-positive rate below 1e-3.
    """
    if N < 1 or d < 1:
        raise ValueError(f"N and d must be >= 1, got N={N}, d={d}")
    var = 1.0 / d if variance is None else float(variance)
    if not var > 0:
        raise ValueError(f"variance must be > 0, got {variance}")
    return 0.5 * math.sqrt(var) * (1.0 / math.sqrt(N) + 1.0 / math.sqrt(d)) ** (1.0 / 3.0)
