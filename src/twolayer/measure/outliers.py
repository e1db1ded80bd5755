"""Outliers: singular values beyond the Marchenko–Pastur edge of W_0's bulk, with a margin.

The bulk reference is the initial matrix W_0, shape (N, d), treated as an iid matrix whose entry
variance ``v`` is estimated from W_0 itself (``v = ||W_0||_F^2 / (N d)``, which is ``w_scale^2/d``
for the project's Gaussian or spherical initialisations). Its largest singular value is, up to
Tracy–Widom fluctuations, the MP edge ``E = sqrt(v) (sqrt N + sqrt d)``
(:func:`twolayer.theory.marchenko_pastur.mp_singular_value_edge`), and it fluctuates on the scale
``tau = sqrt(v)/2 (1/sqrt N + 1/sqrt d)^(1/3)``
(:func:`twolayer.theory.marchenko_pastur.tracy_widom_scale`, Johnstone 2001). A singular value of
the current W is an *outlier* when it exceeds ``E + margin * tau``.

Default ``margin = 6``: in units of tau the largest singular value of pure noise is
TW_1-distributed (mean -1.21, standard deviation 1.27), and P(TW_1 > 6) is about 2e-6, so a
pure-noise matrix gives a false outlier far less than once in a thousand runs even after the
second-order corrections to the edge at N, d ~ 500 (tests/measure/test_measure_outliers.py checks
zero false outliers at N, d in 500–3000). The price is a detection loss of 6 tau, i.e. 0.04 at
N = d = 1000 (edge 2): spikes whose BBP outlier lies within that distance of the edge are not
counted.

The feature matrix F = sigma(X W^T) / sqrt(n) on a probe has no closed-form bulk edge; its
reference is the largest singular value of the *column-centred* F_0 = sigma(X W_0^T) / sqrt(n)
on the same probe (centring removes the mean spike mu_0 1 1^T, after which F_0 has no outliers
for isotropic Gaussian inputs), with a margin of ``feature_margin`` (default 20) Tracy–Widom
scales of an iid (n, N) matrix of F_0's entry variance. The larger default is measured: the top
singular values of the centred feature matrices of two independent random W differ by about
4 such scales (standard deviation over 6 seeds at n = N = d = 500; the bulk of F is not an iid
matrix), so 20 is ~5 standard deviations. This is an empirical edge: it is right only as far as
F_0's own top singular value sits at its bulk edge (not so for clustered inputs, whose F_0
already has outliers; those are then not counted).

After a large update the whole bulk of W can grow (e.g. the bulk scale c_W > 1 of Cui et al.
2024); with the default ``bulk="init"`` singular values of the grown bulk then count as outliers of
W_0's bulk, as that definition says. ``bulk="trained"`` measures against W's own bulk instead: the
entry variance is estimated from W without its outliers, ``v = (||W||_F^2 - sum_k s_k^2) / (N d)``
over the singular values s_k counted as outliers, iterated until the count is stable (each pass
can only lower v, so at most a handful of passes). This treats the grown bulk as an iid matrix
of that variance, i.e. it assumes the update's non-spike part is noise-like (for W_0 plus an
independent iid perturbation the law is exactly MP again); at N = d = 1500 after two giant steps it
moved the edge by 1.7% (variance +3.5%) and removed the bulk-edge singular values that W_0's edge
had counted (docs/recipes/two-step.md). Give ``variance`` to compare against any other bulk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twolayer.measure._common import features, probe
from twolayer.measure._linalg import as_float64, singular_values
from twolayer.measure.registry import MeasureContext, at_least, choice, register_measurement
from twolayer.theory.marchenko_pastur import mp_singular_value_edge, tracy_widom_scale

#: Default margin above the MP edge, in Tracy–Widom scales.
DEFAULT_MARGIN = 6.0
#: Default margin above the empirical edge of centred F_0, in Tracy–Widom scales of an iid matrix.
DEFAULT_FEATURE_MARGIN = 20.0


def outlier_threshold(
    N: int, d: int, variance: float, margin: float = DEFAULT_MARGIN
) -> tuple[float, float, float]:
    """MP edge, Tracy–Widom scale and outlier threshold of an (N, d) iid matrix.

    Parameters
    ----------
    N, d : int
        Shape.
    variance : float
        Entry variance.
    margin : float
        Number of Tracy–Widom scales added to the edge.

    Returns
    -------
    (edge, tw_scale, threshold) : floats, ``threshold = edge + margin * tw_scale``.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    edge = mp_singular_value_edge(N, d, variance)
    tw = tracy_widom_scale(N, d, variance)
    return edge, tw, edge + margin * tw


def count_above(M: np.ndarray, threshold: float, max_outliers: int) -> tuple[np.ndarray, float]:
    """Singular values of M above ``threshold`` (decreasing) and M's largest singular value.

    Computes the top ``max_outliers + 1`` singular values (Lanczos for big M); when all of them
    exceed the threshold, twice as many, and so on up to all of them, so the count is never
    truncated (:func:`_top_singular_values_to_below`).
    """
    s = _top_singular_values_to_below(M, threshold, int(max_outliers) + 1)
    return s[s > threshold], float(s[0])


def _top_singular_values_to_below(M: np.ndarray, threshold: float, k: int) -> np.ndarray:
    """The top singular values of M (decreasing), at least ``k`` and enough that the last is at
    or below ``threshold`` (or all of them): k doubles until then."""
    rank = min(M.shape)
    k = min(max(int(k), 1), rank)
    while True:
        s = singular_values(M, k)
        if s[-1] <= threshold or k == rank:
            return s
        k = min(2 * k, rank)


def self_bulk_threshold(
    M: np.ndarray, margin: float = DEFAULT_MARGIN, max_outliers: int = 20
) -> tuple[np.ndarray, float, float, float, float]:
    """Outliers of M against its own bulk, seen as an iid matrix (module docstring).

    ``max_outliers + 1`` singular values are computed first, more when all of them are outliers
    (as :func:`count_above`).

    Returns
    -------
    (positions, top, variance, edge, tw_scale) : the outlying singular values (decreasing), the
        largest singular value, the bulk's estimated entry variance, its MP edge and Tracy–Widom
        scale (the threshold is ``edge + margin * tw_scale``).
    """
    N, d = M.shape
    rank = min(N, d)
    total = float(np.sum(M * M))
    s = _top_singular_values_to_below(M, np.inf, int(max_outliers) + 1)
    count = 0
    while True:  # each pass lowers the variance or stops: at most rank + 1 passes
        variance = max(total - float(np.sum(s[:count] ** 2)), 0.0) / (N * d)  # >= 0: rounding
        edge, tw, threshold = outlier_threshold(N, d, variance, margin)
        if s[-1] > threshold and s.size < rank:  # the lower threshold needs more values
            s = _top_singular_values_to_below(M, threshold, 2 * s.size)
        above = s[s > threshold]
        if above.size == count:
            return above, float(s[0]), variance, edge, tw
        count = above.size


def _check(config: Any, o: dict[str, Any]) -> None:
    at_least("outliers: margin", o["margin"], 0.0)
    at_least("outliers: feature_margin", o["feature_margin"], 0.0)
    at_least("outliers: max_outliers", o["max_outliers"], 1)
    choice("outliers: bulk", o["bulk"], ("init", "trained"))
    if o["variance"] is not None:
        if o["bulk"] == "trained":
            raise ValueError("outliers: give either variance or bulk='trained', not both")
        if not o["variance"] > 0:
            raise ValueError(f"outliers: reference variance must be > 0, got {o['variance']}")


@register_measurement("outliers", check=_check)
def outliers(
    ctx: MeasureContext,
    margin: float = DEFAULT_MARGIN,
    feature_margin: float = DEFAULT_FEATURE_MARGIN,
    variance: float | None = None,
    bulk: str = "init",
    max_outliers: int = 20,
    features_outliers: bool = True,
    n_probe: int | None = None,
    probe_stream: int = 0,
) -> dict[str, Any]:
    """Number and positions of singular values of W (and of F) beyond W_0's bulk edge + margin.

    See the module docstring for the edge, the margin and why.

    Parameters
    ----------
    margin : float
        Tracy–Widom scales added to the MP edge (default 6).
    feature_margin : float
        Tracy–Widom scales (of an iid matrix) added to the edge of centred F_0 (default 20).
    variance : float, optional
        Entry variance of the reference bulk (default ``||W_0||_F^2 / (N d)``).
    bulk : {"init", "trained"}
        The reference bulk of W: W_0's (default), or W's own without its outliers (module
        docstring). ``variance`` and ``bulk="trained"`` exclude each other.
    max_outliers : int
        Outliers looked for in a first pass: the top max_outliers + 1 singular values are
        computed (Lanczos for big matrices); when all of them exceed the threshold, twice as many
        are, and so on, so the count is never truncated (a large value only saves passes).
    features_outliers : bool
        Also count outliers of the probe feature matrix F / sqrt(n) against centred F_0.
    n_probe : int, optional
        Probe size n (default d).
    probe_stream : int
        Index k of the probe stream ("measure", k).

    Returns
    -------
    dict
        ``W_count`` (scalar), ``W_positions`` ((W_count,) array, decreasing), ``W_top``,
        ``W_edge`` (MP edge), ``W_tw_scale``, ``W_threshold``, ``W_top_excess`` (``(W_top -
        W_edge) / W_tw_scale``: the largest singular value in Tracy–Widom units), ``W_variance``
        (the reference bulk's entry variance);
        with features: ``F_count``, ``F_positions``, ``F_top``, ``F_edge`` (top singular value of
        centred F_0 / sqrt(n)), ``F_tw_scale``, ``F_threshold``. F is column-centred as F_0.
    """
    W0 = as_float64(ctx.student_init.W)
    W = as_float64(ctx.student.W)
    N, d = W.shape
    if bulk == "trained":
        pos, top, var, edge, tw = self_bulk_threshold(W, margin, max_outliers)
        threshold = edge + margin * tw
    else:
        var = float(np.mean(W0**2)) if variance is None else float(variance)
        if not var > 0:  # W_0 = 0
            raise ValueError(f"outliers: reference variance must be > 0, got {var}")
        edge, tw, threshold = outlier_threshold(N, d, var, margin)
        pos, top = count_above(W, threshold, max_outliers)
    out: dict[str, Any] = {
        "W_count": float(pos.size),
        "W_positions": pos,
        "W_top": top,
        "W_edge": edge,
        "W_tw_scale": tw,
        "W_threshold": threshold,
        "W_top_excess": (top - edge) / tw,
        "W_variance": var,
    }
    if features_outliers:
        X, _ = probe(ctx, n_probe, probe_stream)
        n = X.shape[0]
        F0 = features(ctx.student_init, X)
        F0 -= F0.mean(axis=0, keepdims=True)
        F0 /= math.sqrt(n)
        F = features(ctx.student, X)
        F -= F.mean(axis=0, keepdims=True)
        F /= math.sqrt(n)
        edge_F = float(singular_values(F0, 1)[0])
        var_F = float(np.mean(F0**2))
        tw_F = tracy_widom_scale(n, F.shape[1], var_F) if var_F > 0 else 0.0
        threshold_F = edge_F + feature_margin * tw_F
        pos_F, top_F = count_above(F, threshold_F, max_outliers)
        out.update(
            F_count=float(pos_F.size),
            F_positions=pos_F,
            F_top=top_F,
            F_edge=edge_F,
            F_tw_scale=tw_F,
            F_threshold=threshold_F,
        )
    return out
