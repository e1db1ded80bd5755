"""Conjugate-kernel and empirical-NTK Gram matrices on a probe: spectra and target alignment."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from twolayer.measure._common import probe
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, register_measurement
from twolayer.student import TwoLayer


def conjugate_kernel(student: TwoLayer, X: Any) -> np.ndarray:
    """CK Gram matrix ``F F^T / N`` with F = sigma(X W^T) unscaled; shape (n, n)."""
    F = as_float64(student.features(X))
    return F @ F.T / student.N


def ntk_gram(student: TwoLayer, X: Any) -> np.ndarray:
    """Empirical NTK Gram matrix of f over all parameters (W and a); shape (n, n).

    With f(x) = s sum_i a_i sigma(<w_i, x>) (s = ``student.scale``):
    ``K(x, x') = <grad_theta f(x), grad_theta f(x')> = s^2 [ sum_i sigma_i(x) sigma_i(x')
    + <x, x'> sum_i a_i^2 sigma'_i(x) sigma'_i(x') ]``, i.e.
    ``s^2 [F F^T + (X X^T) * (G diag(a^2) G^T)]`` with G = sigma'(X W^T) and * the entrywise
    product. In the standard scaling s^2 = 1/N, so the first term is the conjugate kernel.
    """
    P = student.preactivations(X)
    F = as_float64(student.activation(P))
    G = as_float64(student.activation.derivative(P))
    Xn = as_float64(X)
    a = as_float64(student.a)
    Ga = G * a[None, :]
    return student.scale**2 * (F @ F.T + (Xn @ Xn.T) * (Ga @ Ga.T))


def kernel_target_alignment(K: np.ndarray, y: np.ndarray, center: bool = False) -> float:
    """``<K, y y^T>_F / (||K||_F ||y||^2) = y^T K y / (||K||_F ||y||^2)``, in [-1, 1].

    With ``center`` both K and y are centred first (H K H and H y, H = I - 1 1^T / n; the
    "centred kernel alignment" of Cortes et al. 2012).
    """
    y = np.asarray(y, dtype=np.float64)
    if center:
        y = y - y.mean()
        K = K - K.mean(axis=0, keepdims=True)
        K = K - K.mean(axis=1, keepdims=True)
    norm_K = np.linalg.norm(K)
    norm_y2 = float(y @ y)
    if norm_K == 0 or norm_y2 == 0:
        return float("nan")
    return float(y @ K @ y / (norm_K * norm_y2))


@register_measurement("kernel")
def kernel(
    ctx: MeasureContext,
    n_probe: int = 500,
    probe_stream: int = 0,
    ntk: bool = True,
    top_k: int | None = None,
    center: bool = False,
) -> dict[str, Any]:
    """Spectra and kernel–target alignment of the CK and empirical NTK, at init and now.

    On a probe (X, y) of n samples: CK = F F^T / N (F = sigma(X W^T) unscaled, so the CK does
    not depend on the output scaling), NTK as :func:`ntk_gram` (includes the output scale s^2).
    Eigenvalues are those of the (n, n) Gram matrix itself (not divided by n; divide by n for the
    spectrum of the kernel integral operator). Alignment as :func:`kernel_target_alignment`
    against the probe labels y (noisy labels included).

    Parameters
    ----------
    n_probe : int
        Probe size n (the Gram matrices are n x n).
    probe_stream : int
        Index k of the probe stream ("measure", k).
    ntk : bool
        Also compute the NTK (costs an extra n x n x N product).
    top_k : int, optional
        Keep only the k largest eigenvalues in the returned arrays.
    center : bool
        Centred kernel alignment.

    Returns
    -------
    dict
        For G in {ck, ck0, ntk, ntk0} (0: at initialisation): ``G_eigs`` (n,) or (top_k,)
        eigenvalues decreasing; ``G_top`` largest eigenvalue; ``G_alignment`` scalar.
    """
    X, y = probe(ctx, n_probe, probe_stream)
    y_np = as_float64(y)
    grams = {"ck": conjugate_kernel(ctx.student, X), "ck0": conjugate_kernel(ctx.student_init, X)}
    if ntk:
        grams["ntk"] = ntk_gram(ctx.student, X)
        grams["ntk0"] = ntk_gram(ctx.student_init, X)
    out: dict[str, Any] = {}
    for key, K in grams.items():
        eigs = scipy.linalg.eigvalsh(K)[::-1]
        out[f"{key}_eigs"] = eigs if top_k is None else eigs[: int(top_k)]
        out[f"{key}_top"] = float(eigs[0])
        out[f"{key}_alignment"] = kernel_target_alignment(K, y_np, center)
    return out
