"""Linear algebra shared by the spectral measurements (private).

Everything here works on NumPy float64 arrays: arrays of any backend are moved to NumPy first
(:func:`as_float64`), because LAPACK and ARPACK are called on them.

Singular values are computed from the eigenvalues of the *smaller* Gram matrix (``M M^T`` or
``M^T M``), or with Lanczos (ARPACK, ``scipy.sparse.linalg.svds``) when only the top k of a big
matrix are needed. The Gram path squares the condition number: a singular
value s is obtained with absolute error about ``eps * s_max^2 / s``, i.e. the small singular
values (below ``~1e-7 s_max``) are not resolved; every measurement of twolayer looks at the top of
the spectrum, where the Gram path is accurate to ~1e-15 relative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from twolayer.backend import to_numpy

#: Below this smaller dimension a dense method is always used.
LANCZOS_MIN_DIM = 1200
#: Lanczos is used when k <= this fraction of the smaller dimension.
LANCZOS_MAX_FRACTION = 0.05

METHODS = ("auto", "gram", "direct", "lanczos")


def as_float64(array: Any) -> np.ndarray:
    """A NumPy float64 copy/view of a NumPy array or a torch tensor."""
    return np.asarray(to_numpy(array), dtype=np.float64)


def check_method(method: str, k: int | None) -> None:
    """Raise ValueError unless ``method`` is one of :data:`METHODS` and usable with ``k``
    vectors (``None``: all of them)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if method == "lanczos" and k is None:
        raise ValueError("method 'lanczos' needs top_k")


def _use_lanczos(shape: tuple[int, int], k: int | None, method: str) -> bool:
    check_method(method, k)
    if method == "lanczos":
        return True
    if method != "auto" or k is None:
        return False
    small = min(shape)
    return small >= LANCZOS_MIN_DIM and k <= LANCZOS_MAX_FRACTION * small


def _check_k(k: int | None, M: np.ndarray) -> int:
    small = min(M.shape)
    if k is None:
        return small
    if not 1 <= int(k):
        raise ValueError(f"top_k must be a positive integer, got {k}")
    return min(int(k), small)


def singular_values(M: Any, top_k: int | None = None, method: str = "auto") -> np.ndarray:
    """Singular values of M in decreasing order.

    Parameters
    ----------
    M : (m, p) array (NumPy or torch)
    top_k : int, optional
        Keep only the k largest (all min(m, p) by default).
    method : {"auto", "gram", "direct", "lanczos"}
        ``gram``: eigvalsh of the smaller of M M^T, M^T M (clipped at 0, square root);
        ``direct``: LAPACK gesdd on M; ``lanczos``: ARPACK svds for the top_k only;
        ``auto``: lanczos when top_k is at most 5% of a smaller dimension >= 1200, gram otherwise.

    Returns
    -------
    (min(m, p),) or (top_k,) array, decreasing.
    """
    M = as_float64(M)
    if M.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {M.shape}")
    k = _check_k(top_k, M)
    if _use_lanczos(M.shape, top_k, method) and k < min(M.shape):
        s = _svds(M, k, vectors=False)[1]
        return s
    if method == "direct":
        s = scipy.linalg.svdvals(M)
    else:
        gram = M @ M.T if M.shape[0] <= M.shape[1] else M.T @ M
        m = gram.shape[0]
        subset = None if k == m else (m - k, m - 1)
        eig = scipy.linalg.eigvalsh(gram, subset_by_index=subset)
        s = np.sqrt(np.clip(eig[::-1], 0.0, None))
    return s[:k]


def _svds(M: np.ndarray, k: int, vectors: bool) -> tuple[Any, np.ndarray, Any]:
    """Top-k singular triplets by ARPACK, sorted decreasingly (deterministic start vector)."""
    small = min(M.shape)
    v0 = np.random.default_rng(0).standard_normal(small)  # fixed start: deterministic output
    # a Krylov space wider than ARPACK's default 2k + 1 converges much faster at the edge of a
    # continuous bulk, where the top singular values are not separated by a gap
    ncv = min(small, max(2 * k + 1, k + 24))
    import scipy.sparse.linalg  # here: importing it costs ~0.1 s at start-up

    out = scipy.sparse.linalg.svds(M, k=k, ncv=ncv, v0=v0, return_singular_vectors=vectors)
    if not vectors:
        return None, np.sort(out)[::-1], None
    U, s, Vt = out
    order = np.argsort(s)[::-1]
    return U[:, order], s[order], Vt[order]


def top_singular_triplets(
    M: Any, k: int, method: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k largest singular values of M with their left and right singular vectors.

    Parameters
    ----------
    M : (m, p) array
    k : int
        Number of triplets (capped at min(m, p)).
    method : {"auto", "direct", "lanczos", "gram"}
        ``gram`` diagonalises the smaller Gram matrix (eigh, top k only) and recovers the other
        side as ``M v / s`` (``M^T u / s``); ``direct``: full LAPACK SVD; ``lanczos``: ARPACK;
        ``auto``: lanczos as in :func:`singular_values`, gram otherwise. The vectors of
        singular values below ~1e-8 s_max are not resolved by the gram path.

    Returns
    -------
    U : (m, k) array
        Left singular vectors (orthonormal columns).
    s : (k,) array
        Singular values, decreasing.
    Vt : (k, p) array
        Right singular vectors (orthonormal rows).

    Notes
    -----
    Singular vectors are defined up to a sign (and up to a rotation within a repeated singular
    value); every quantity twolayer reports from them is invariant under that.
    """
    M = as_float64(M)
    k = _check_k(k, M)
    if _use_lanczos(M.shape, k, method) and k < min(M.shape):
        return _svds(M, k, vectors=True)
    if method in ("gram", "auto"):
        m, p = M.shape
        if m <= p:
            eig, U = scipy.linalg.eigh(M @ M.T, subset_by_index=(m - k, m - 1))
            order = np.argsort(eig)[::-1]
            s = np.sqrt(np.clip(eig[order], 0.0, None))
            U = U[:, order]
            Vt = (U.T @ M) / np.where(s > 0, s, 1.0)[:, None]
            return U, s, Vt
        eig, V = scipy.linalg.eigh(M.T @ M, subset_by_index=(p - k, p - 1))
        order = np.argsort(eig)[::-1]
        s = np.sqrt(np.clip(eig[order], 0.0, None))
        V = V[:, order]
        U = (M @ V) / np.where(s > 0, s, 1.0)[None, :]
        return U, s, V.T
    U, s, Vt = scipy.linalg.svd(M, full_matrices=False)
    return U[:, :k], s[:k], Vt[:k]


def stable_rank(s: np.ndarray) -> float:
    """``sum s^2 / s_max^2`` (NaN for the zero matrix); needs the full spectrum s."""
    if s.size == 0 or s[0] == 0:
        return float("nan")
    return float(np.sum(s**2) / s[0] ** 2)
