"""Overlaps of the top right singular vectors of Delta W and of W with the teacher directions."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from twolayer.measure._common import teacher_directions
from twolayer.measure._linalg import as_float64, check_method, top_singular_triplets
from twolayer.measure.registry import MeasureContext, at_least, register_measurement


def squared_overlaps(Vt: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared overlaps <v_j, b_l>^2 of unit rows of Vt (k, d) with orthonormal rows of B (r, d).

    Returns
    -------
    (k, r) array; row j sums to ||P_B v_j||^2 <= 1.
    """
    return (Vt @ B.T) ** 2


def principal_angles(Vt: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Principal angles (radians, increasing) between span of the rows of Vt and of B.

    Both are (k, d) / (r, d) arrays of orthonormal rows; min(k, r) angles are returned, computed
    by :func:`scipy.linalg.subspace_angles` (accurate for small angles, unlike arccos).
    """
    return np.sort(scipy.linalg.subspace_angles(Vt.T, B.T))


def _check(config: Any, o: dict[str, Any]) -> None:
    at_least("overlaps: top_k", o["top_k"], 1, optional=True)
    check_method(o["method"], 1)


@register_measurement("overlaps", check=_check)
def overlaps(ctx: MeasureContext, top_k: int | None = None, method: str = "auto") -> dict[str, Any]:
    """Squared overlaps of the top right singular vectors of Delta W and W with the teacher.

    For M in {Delta W = W - W_0, W}, shape (N, d), with right singular vectors v_1, v_2, ...
    (unit vectors of R^d, by decreasing singular value) and teacher directions b_1..b_r
    (orthonormal rows of ``teacher.directions``, shape (r, d)):

    - ``<v_j, b_l>^2`` for j <= top_k (sign-free; 1/d for a random direction);
    - the principal angles between span{v_1..v_r} and span{b_1..b_r} (0: the top-r subspace
      contains the teacher span; pi/2: orthogonal to it).

    Parameters
    ----------
    top_k : int, optional
        Number of singular vectors whose overlaps are reported (default r).
    method : {"auto", "direct", "lanczos", "gram"}
        How the top singular vectors are computed (see ``_linalg.top_singular_triplets``).

    Returns
    -------
    dict
        For P in {dW, W}: ``P_overlaps`` (top_k, r) array of squared overlaps;
        ``P_projection`` (top_k,) array ||P_B v_j||^2 (row sums);
        ``P_top_overlap`` scalar ||P_B v_1||^2; ``P_angles`` (r,) principal angles (radians);
        ``P_max_angle`` scalar, the largest principal angle; ``P_subspace_overlap`` scalar
        ``mean_l cos^2(angle_l) = ||V_r^T B^T||_F^2 / r``.
        Everything of dW is NaN when Delta W = 0 (no singular vectors).
    """
    B = teacher_directions(ctx, "overlaps")
    r = B.shape[0]
    k = r if top_k is None else int(top_k)
    W = as_float64(ctx.student.W)
    out: dict[str, Any] = {}
    for key, M in (("dW", W - as_float64(ctx.student_init.W)), ("W", W)):
        kk = min(max(k, r), min(M.shape))
        if not np.any(M):
            nan_k = np.full(min(k, kk), np.nan)
            out.update(
                {
                    f"{key}_overlaps": np.full((min(k, kk), r), np.nan),
                    f"{key}_projection": nan_k,
                    f"{key}_top_overlap": float("nan"),
                    f"{key}_angles": np.full(min(r, kk), np.nan),
                    f"{key}_max_angle": float("nan"),
                    f"{key}_subspace_overlap": float("nan"),
                }
            )
            continue
        _, _, Vt = top_singular_triplets(M, kk, method)
        ov = squared_overlaps(Vt[:k], B)
        angles = principal_angles(Vt[:r], B)
        out[f"{key}_overlaps"] = ov
        out[f"{key}_projection"] = ov.sum(axis=1)
        out[f"{key}_top_overlap"] = float(ov[0].sum())
        out[f"{key}_angles"] = angles
        out[f"{key}_max_angle"] = float(angles.max())
        out[f"{key}_subspace_overlap"] = float(np.mean(np.cos(angles) ** 2))
    return out
