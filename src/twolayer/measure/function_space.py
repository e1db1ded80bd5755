"""Function-space view of a trained first layer: the conjugate kernel along the target's
harmonics, and its distance to the kernel of a spiked Gaussian covariance of the weights.

After one large gradient step W_1 = W_0 + Delta W with a (nearly) rank-one Delta W, the rows of
W_1 look like draws from N(0, Sigma) with a spiked covariance Sigma = s^2 (I - v v^T) +
tau^2 v v^T (v the spike's direction): the conjugate kernel of the network is then close to the
kernel K_Sigma(x, x') = E_{w ~ N(0, Sigma)} sigma(<w, x>) sigma(<w, x'>) of that distribution,
which amplifies the eigenvalues of the harmonics of <v, x> ("How does feature learning reshape
the function space?", 2025). This measurement builds that spiked Gaussian surrogate from the
moments of W_1 and compares kernels on a probe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.measure._common import probe, teacher_directions
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, register_measurement
from twolayer.student import TwoLayer


def spiked_covariance_fit(W: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Moment fit of the rows of W (N, d) by N(0, s^2 (I - v v^T) + tau^2 v v^T), unit v.

    Returns ``(s2, tau2)``: tau^2 = ||W v||^2 / N (second moment of the rows along v) and
    s^2 = ||W (I - v v^T)||_F^2 / (N (d - 1)) (mean second moment across v).
    """
    N, d = W.shape
    Wv = W @ v
    tau2 = float(Wv @ Wv) / N
    s2 = (float((W * W).sum()) - float(Wv @ Wv)) / (N * (d - 1))
    return s2, tau2


def gaussian_weights(Z: np.ndarray, s2: float, tau2: float, v: np.ndarray | None) -> np.ndarray:
    """Rows Z Sigma^{1/2}, Z (m, d) standard normal, Sigma = s2 (I - v v^T) + tau2 v v^T."""
    W = np.sqrt(s2) * Z
    if v is not None:
        W = W + (np.sqrt(tau2) - np.sqrt(s2)) * np.outer(Z @ v, v)
    return W


def rayleigh_quotient(K: np.ndarray, phi: np.ndarray) -> float:
    """``phi^T K phi / phi^T phi`` with phi centred on the probe (phi - mean phi: the constant
    mode, the CK's largest, would otherwise leak in through the sample mean of phi)."""
    phi = phi - phi.mean()
    return float(phi @ K @ phi / (phi @ phi))


def target_block(K: np.ndarray, t: np.ndarray, degree: int) -> np.ndarray:
    """The Gram matrix on the target's harmonics: ``M_jk = phi_j^T K phi_k / n^2`` for
    phi_j = He_j(t) / sqrt(j!), j = 1..degree, centred on the probe (the constant mode
    excluded); shape (degree, degree)."""
    phis = [t]
    prev, cur = np.ones_like(t), t
    for j in range(2, degree + 1):
        prev, cur = cur, t * cur - (j - 1) * prev
        phis.append(cur / np.sqrt(float(np.prod(np.arange(1, j + 1)))))
    P = np.stack(phis, axis=1)
    P = P - P.mean(axis=0, keepdims=True)
    return P.T @ K @ P / t.shape[0] ** 2


def relative_distance(K: np.ndarray, L: np.ndarray) -> float:
    """``||K - L||_F / ||K||_F``."""
    return float(np.linalg.norm(K - L) / np.linalg.norm(K))


def _ck(student: TwoLayer, W: np.ndarray, X: np.ndarray) -> np.ndarray:
    F = as_float64(student.activation(X @ W.T))
    return F @ F.T / W.shape[0]


@register_measurement("function_space")
def function_space(
    ctx: MeasureContext,
    n_probe: int = 500,
    probe_stream: int = 0,
    surrogate_width: int | None = None,
    degree: int = 3,
    top_k: int = 20,
) -> dict[str, Any]:
    """CK along target harmonics and its distance to a spiked-Gaussian-weight kernel.

    On a probe X (n, d) (stream ("measure", probe_stream)), with CK = sigma(X W^T) sigma(X W^T)^T
    / N as in the ``kernel`` measurement (Gram matrix, eigenvalues not divided by n):

    - Rayleigh quotients phi^T K phi / phi^T phi of the CK at init (K_0) and now (K) along the
      target's first two Hermite harmonics, phi = He_1(t) = t and He_2(t)/sqrt(2) with
      t = <beta, x> (beta the teacher's first direction), and along the same harmonics of a
      control direction b orthogonal to beta (drawn from stream ("measure", probe_stream + 1)).
    - The spiked Gaussian surrogate: v = top right singular vector of Delta W = W - W_0 (sign
      irrelevant); (s^2, tau^2) from :func:`spiked_covariance_fit` of W; its kernel K_spiked is
      the CK of m = ``surrogate_width`` (default 8 N) Gaussian rows of covariance
      s^2 (I - v v^T) + tau^2 v v^T. K_iso uses the same rows with isotropic covariance of the
      same trace (no spike), K_0,iso the isotropic fit of W_0. Relative Frobenius distances
      ||K - L||_F / ||K||_F (double-centred with ``center``: the constant mode, which no
      covariance changes much, would otherwise dominate):
      ``dist_spiked`` (K vs K_spiked), ``dist_isotropic`` (K vs K_iso), ``dist_init``
      (K vs K_0), ``dist_floor`` (K_0 vs K_0,iso: the finite-width distance of a network whose
      weights ARE Gaussian, the level a perfect surrogate reaches).

    Returns
    -------
    dict
        ``rq_{target,control}{1,2}`` and ``..._init`` (Rayleigh quotients),
        ``rq_target{1,2}_spiked`` (of K_spiked), the four distances, ``spike_var`` (tau^2),
        ``bulk_var`` (s^2 d), ``spike_overlap`` (<v, beta>^2), and the array ``spiked_eigs``
        (top_k eigenvalues of
        K_spiked, decreasing).
    """
    X = as_float64(probe(ctx, n_probe, probe_stream)[0])
    d = X.shape[1]
    beta = teacher_directions(ctx, "function_space")[0]
    beta = beta / np.linalg.norm(beta)
    rng = ctx.streams.generator("measure", int(probe_stream) + 1)
    b = rng.standard_normal(d)
    b -= (b @ beta) * beta
    b /= np.linalg.norm(b)

    W = as_float64(ctx.student.W)
    W0 = as_float64(ctx.student_init.W)
    N = W.shape[0]
    K = _ck(ctx.student, W, X)
    K0 = _ck(ctx.student_init, W0, X)

    dW = W - W0
    if np.linalg.norm(dW) > 0:
        _, vecs = np.linalg.eigh(dW.T @ dW)
        v = vecs[:, -1]
    else:
        v = beta.copy()
    s2, tau2 = spiked_covariance_fit(W, v)
    trace = float((W * W).sum()) / (N * d)
    m = int(surrogate_width) if surrogate_width else 8 * N
    Z = rng.standard_normal((m, d))
    K_spiked = _ck(ctx.student, gaussian_weights(Z, s2, tau2, v), X)
    K_iso = _ck(ctx.student, gaussian_weights(Z, trace, trace, None), X)
    trace0 = float((W0 * W0).sum()) / (N * d)
    K0_iso = _ck(ctx.student, gaussian_weights(Z, trace0, trace0, None), X)

    out: dict[str, Any] = {}
    for name, direction in (("target", beta), ("control", b)):
        t = X @ direction
        for k, phi in ((1, t), (2, (t**2 - 1.0) / np.sqrt(2.0))):
            out[f"rq_{name}{k}"] = rayleigh_quotient(K, phi)
            out[f"rq_{name}{k}_init"] = rayleigh_quotient(K0, phi)
            if name == "target":
                out[f"rq_{name}{k}_spiked"] = rayleigh_quotient(K_spiked, phi)
    t = X @ beta
    blocks = {key: target_block(G, t, int(degree))
              for key, G in (("K", K), ("spiked", K_spiked), ("iso", K_iso), ("K0", K0),
                             ("K0_iso", K0_iso))}
    out["dist_spiked"] = relative_distance(blocks["K"], blocks["spiked"])
    out["dist_isotropic"] = relative_distance(blocks["K"], blocks["iso"])
    out["dist_init"] = relative_distance(blocks["K"], blocks["K0"])
    out["dist_floor"] = relative_distance(blocks["K0"], blocks["K0_iso"])
    out["spike_var"] = tau2
    out["bulk_var"] = s2 * d
    out["spike_overlap"] = float((v @ beta) ** 2)
    out["spiked_eigs"] = np.linalg.eigvalsh(K_spiked)[::-1][: int(top_k)]
    return out
