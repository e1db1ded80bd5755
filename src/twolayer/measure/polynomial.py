"""Which Hermite degree each spike of the feature matrix carries (single-index teachers)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg

from twolayer.activations import hermite_basis
from twolayer.measure._common import features, probe, teacher_directions
from twolayer.measure._linalg import as_float64, check_method, top_singular_triplets
from twolayer.measure.registry import MeasureContext, at_least, choice, register_measurement

MATRICES = ("update", "features")


def hermite_degree_weights(U: np.ndarray, t: np.ndarray, degree_max: int) -> np.ndarray:
    """Squared projections of unit vectors on the empirical Hermite degrees of t.

    The columns h_0(t), ..., h_K(t) (orthonormal Hermite polynomials evaluated on the sample t,
    shape (n,)) are orthonormalised *on the sample* in that order (Gram–Schmidt, by QR), giving
    q_0, ..., q_K: q_k is the part of degree k orthogonal to the lower degrees. For a unit vector
    u in R^n the weight of degree k is ``<q_k, u>^2``; the weights add up to the squared norm of
    u's projection on span{h_0(t), ..., h_K(t)}.

    Parameters
    ----------
    U : (n, m) array
        Unit columns (e.g. left singular vectors).
    t : (n,) array
        The teacher's projection <x, beta> on each sample.
    degree_max : int
        K.

    Returns
    -------
    (m, K + 1) array of weights in [0, 1].
    """
    H = np.stack(hermite_basis(np.asarray(t, dtype=np.float64), degree_max), axis=1)
    Q, _ = scipy.linalg.qr(H, mode="economic")
    return (U.T @ Q) ** 2


def _direction(ctx: MeasureContext, direction: int | str, method: str) -> np.ndarray:
    """The unit vector beta (d,): a teacher direction, or the top right singular vector of
    Delta W (``"update"``)."""
    if direction == "update":
        dW = as_float64(ctx.student.W) - as_float64(ctx.student_init.W)
        if not np.any(dW):
            raise ValueError("polynomial: direction 'update' needs a trained W (Delta W = 0)")
        return top_singular_triplets(dW, 1, method)[2][0]
    B = teacher_directions(ctx, "polynomial")
    if isinstance(direction, str) or not 0 <= direction < B.shape[0]:
        raise ValueError(
            f"polynomial: direction must be 'update' or in [0, {B.shape[0]}), got {direction!r}"
        )
    return B[direction]


def _check(config: Any, o: dict[str, Any]) -> None:
    choice("polynomial: matrix", o["matrix"], MATRICES)
    at_least("polynomial: degree_max", o["degree_max"], 1)
    at_least("polynomial: top_k", o["top_k"], 1, optional=True)
    check_method(o["method"], 1)
    direction = o["direction"]
    if isinstance(direction, str):
        choice("polynomial: direction", direction, ("update",))
        if getattr(getattr(config, "train", None), "protocol", None) == "none":
            raise ValueError("polynomial: direction 'update' needs a trained W (train.protocol "
                             "is 'none')")
    else:
        at_least("polynomial: direction", direction, 0)


@register_measurement("polynomial", check=_check)
def polynomial(
    ctx: MeasureContext,
    degree_max: int = 4,
    top_k: int | None = None,
    matrix: str = "update",
    center: bool = True,
    direction: int | str = 0,
    n_probe: int | None = None,
    probe_stream: int = 0,
    method: str = "auto",
) -> dict[str, Any]:
    """Alignment of the top left singular vectors of F (or F - F_0) with h_k(<x, beta>), k <= K.

    On a probe X (n, d) with t = X beta (beta = the teacher's direction ``direction``, or the
    direction the step learned, ``direction="update"``), the matrix
    M = F - F_0 (``matrix="update"``, F = sigma(X W^T), F_0 = sigma(X W_0^T), unscaled) or M = F
    (``matrix="features"``), optionally column-centred, is divided by sqrt(n); its top left
    singular vectors u_j (unit vectors of R^n) are compared with the Hermite features
    h_k(t) = He_k(t)/sqrt(k!) through :func:`hermite_degree_weights`. Moniri et al. (2023): after
    one step with eta ~ n^alpha the j-th spike of F carries degree j, so u_j lies near
    span{h_0(t), ..., h_j(t)} with most weight on degree j.

    A unit vector unrelated to t has expected squared projection (K + 1)/n on that span (the
    ``chance`` level returned).

    Parameters
    ----------
    degree_max : int
        K >= 1.
    top_k : int, optional
        Number of singular vectors examined (default K).
    matrix : {"update", "features"}
    center : bool
        Subtract column means first (removes the constant direction, so degree 0 has weight 0).
    direction : int or "update"
        Which teacher direction is beta (0 for a single-index teacher); ``"update"``: the top
        right singular vector of Delta W = W - W_0 (the spike direction beta_hat of Moniri et al.,
        which after one step has only a partial overlap with the teacher's beta, so polynomials
        of <x, beta_hat>, not of <x, beta>, span the spikes).
    n_probe : int, optional
        Probe size n (default d).
    probe_stream : int
        Index k of the probe stream ("measure", k).
    method : str
        SVD method (see ``_linalg.top_singular_triplets``).

    Returns
    -------
    dict
        ``singular_values`` (top_k,) of M / sqrt(n); ``degree_weights`` (top_k, K + 1) squared
        projections on each degree; ``projection_norm`` (top_k,) norm of the projection on
        span{h_0..h_K} (sqrt of the row sums); ``dominant_degree`` (top_k,) degree of largest
        weight (as floats); ``chance`` = (K + 1)/n; scalars ``dominant_degree_j`` and
        ``projection_norm_j`` for j = 1..min(top_k, 3).
    """
    K = int(degree_max)
    beta = _direction(ctx, direction, method)
    k = K if top_k is None else int(top_k)
    X, _ = probe(ctx, n_probe, probe_stream)
    n = X.shape[0]
    t = as_float64(X) @ beta
    M = features(ctx.student, X)
    if matrix == "update":
        M -= features(ctx.student_init, X)
    if center:
        M -= M.mean(axis=0, keepdims=True)
    M /= math.sqrt(n)
    k = min(k, min(M.shape))
    U, s, _ = top_singular_triplets(M, k, method)
    weights = hermite_degree_weights(U, t, K)
    if not np.any(s > 0):
        weights = np.full_like(weights, np.nan)
    proj = np.sqrt(weights.sum(axis=1))
    dominant = np.full(k, np.nan)
    valid = ~np.isnan(proj)
    dominant[valid] = np.argmax(weights[valid], axis=1).astype(float)
    out: dict[str, Any] = {
        "singular_values": s,
        "degree_weights": weights,
        "projection_norm": proj,
        "dominant_degree": dominant,
        "chance": (K + 1) / n,
    }
    for j in range(min(k, 3)):
        out[f"dominant_degree_{j + 1}"] = float(dominant[j])
        out[f"projection_norm_{j + 1}"] = float(proj[j])
    return out
