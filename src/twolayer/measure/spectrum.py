"""Singular values of the first layer W, of its update Delta W = W - W_0, and of the features."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twolayer.measure._common import features, probe
from twolayer.measure._linalg import as_float64, check_method, singular_values, stable_rank
from twolayer.measure.registry import MeasureContext, at_least, register_measurement


def _check(config: Any, o: dict[str, Any]) -> None:
    at_least("spectrum: top_k", o["top_k"], 1, optional=True)
    check_method(o["method"], o["top_k"])


@register_measurement("spectrum", check=_check)
def spectrum(
    ctx: MeasureContext,
    top_k: int | None = None,
    n_probe: int | None = None,
    probe_stream: int = 0,
    features_spectrum: bool = True,
    center_features: bool = False,
    method: str = "auto",
) -> dict[str, Any]:
    """Singular values of W, of Delta W = W - W_0 and of the probe feature matrix F / sqrt(n).

    Normalisation: W and Delta W as they are (W_0 with entries N(0, 1/d) has its bulk in
    ``[|1 - sqrt(N/d)|, 1 + sqrt(N/d)]``). The feature matrix is ``F = sigma(X W^T)`` on a probe
    set X of n fresh samples (unscaled features, as :meth:`TwoLayer.features`), divided by
    sqrt(n), so that its bulk is O(1) (at most ``~ ||sigma||_{L2} (1 + sqrt(N/n))``); its mean
    part ``mu_0 1 1^T`` gives one outlier of size ``~ |mu_0| sqrt(N)`` unless
    ``center_features`` subtracts the column means. ``F0`` is the same matrix for the student at
    initialisation, on the same probe.

    Parameters
    ----------
    top_k : int, optional
        Keep the k largest singular values of each matrix (all by default). A small top_k of a big
        matrix is computed by Lanczos; the full spectrum by eigvalsh of the smaller Gram matrix.
    n_probe : int, optional
        Probe size n (default d).
    probe_stream : int
        Index k of the probe stream ("measure", k).
    features_spectrum : bool
        Also compute the spectra of F and F0 (costs a probe pass of n x N x d).
    center_features : bool
        Subtract each feature's (column's) mean over the probe before the SVD.
    method : {"auto", "gram", "direct", "lanczos"}
        See :func:`twolayer.measure._linalg.singular_values`.

    Returns
    -------
    dict
        ``W_sv``, ``dW_sv`` : (min(N, d),) or (top_k,) arrays, decreasing;
        ``F_sv``, ``F0_sv`` : (min(n, N),) or (top_k,) arrays of F / sqrt(n) and F0 / sqrt(n);
        ``W_top``, ``dW_top``, ``F_top``, ``F0_top`` : largest singular values (scalars);
        ``dW_fro`` : Frobenius norm of Delta W;
        ``dW_stable_rank`` : ||Delta W||_F^2 / ||Delta W||_2^2
        (only without top_k; NaN when Delta W = 0).
    """
    W = as_float64(ctx.student.W)
    dW = W - as_float64(ctx.student_init.W)
    out: dict[str, Any] = {}
    s_W = singular_values(W, top_k, method)
    s_dW = singular_values(dW, top_k, method)
    out["W_sv"], out["dW_sv"] = s_W, s_dW
    out["W_top"], out["dW_top"] = float(s_W[0]), float(s_dW[0])
    out["dW_fro"] = float(np.linalg.norm(dW))
    if top_k is None:
        out["dW_stable_rank"] = stable_rank(s_dW)
    if features_spectrum:
        X, _ = probe(ctx, n_probe, probe_stream)
        n = X.shape[0]
        for key, student in (("F", ctx.student), ("F0", ctx.student_init)):
            F = features(student, X)
            if center_features:
                F -= F.mean(axis=0, keepdims=True)
            s_F = singular_values(F / math.sqrt(n), top_k, method)
            out[f"{key}_sv"] = s_F
            out[f"{key}_top"] = float(s_F[0])
    return out
