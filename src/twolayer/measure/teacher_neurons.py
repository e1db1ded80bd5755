"""Where the student's output mass sits relative to the teacher's neurons (per step).

For relu-type students f(x) = scale * sum_j a_j sigma(<w_j, x>) learning a teacher
sum_i a*_i sigma(<w*_i, x>) (Zhou & Ge 2024), neuron j carries the "mass" scale |a_j| ||w_j||
(its contribution for a positively homogeneous sigma) in the direction w_j / ||w_j||.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.measure._common import teacher_directions
from twolayer.measure._linalg import as_float64, top_singular_triplets
from twolayer.measure.overlaps import principal_angles
from twolayer.measure.registry import MeasureContext, register_measurement


def neuron_directions(W: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest teacher direction of each neuron, by signed cosine.

    Parameters
    ----------
    W : (N, d) array
    B : (r, d) array, unit rows (teacher neuron directions)

    Returns
    -------
    norms : (N,) ||w_j||
    nearest : (N,) int, argmax_i cos(w_j, b_i)
    angle : (N,) float, the angle (radians) to that direction; pi/2 for a zero row.
    """
    norms = np.linalg.norm(W, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    cos = (W @ B.T) / safe[:, None]
    nearest = np.argmax(cos, axis=1)
    best = np.clip(cos[np.arange(W.shape[0]), nearest], -1.0, 1.0)
    angle = np.where(norms > 0, np.arccos(best), np.pi / 2)
    return norms, nearest, angle


def _check(config: Any, o: dict[str, Any]) -> None:
    if not 0.0 < o["angle"] < np.pi:
        raise ValueError(f"teacher_neurons: angle must be in (0, pi), got {o['angle']}")


@register_measurement("teacher_neurons", per_step=True, check=_check)
def teacher_neurons(ctx: MeasureContext, angle: float = 0.1) -> dict[str, Any]:
    """Output mass of the student near the teacher's neurons, and its learned subspace.

    With m_j = scale |a_j| ||w_j|| and theta_j the angle between w_j and its nearest teacher
    direction b_i (signed cosine: a relu neuron along -b_i computes something else):

    - ``on_target_mass``: fraction of the total mass sum_j m_j carried by neurons with
      theta_j < ``angle`` (1: every neuron sits on a teacher neuron);
    - ``off_target_mass``: the mass itself (not a fraction) of the other neurons;
    - ``weighted_angle``: sum_j m_j theta_j / sum_j m_j (radians);
    - ``mass_{i}`` for each teacher direction i: signed mass scale * sum a_j ||w_j|| of the
      neurons within ``angle`` of b_i (for a teacher sum_i a*_i relu(<b_i, x>) this tends to a*_i);
    - ``off_subspace``: ||W P_perp||_F^2 / ||W||_F^2, the energy of W outside span(B);
    - ``max_angle``: the largest principal angle between the span of the top-r right singular
      vectors of W and span(B) (the ``overlaps`` measurement's ``W_max_angle``, per step).

    Parameters
    ----------
    angle : float
        Radius (radians) of the cone around each teacher direction.
    """
    B = teacher_directions(ctx, "teacher_neurons")
    W = as_float64(ctx.student.W)
    a = as_float64(ctx.student.a)
    scale = float(ctx.student.scale)
    norms, nearest, theta = neuron_directions(W, B)
    mass = scale * np.abs(a) * norms
    total = float(mass.sum())
    on = theta < angle
    out: dict[str, Any] = {
        "on_target_mass": float(mass[on].sum() / total) if total > 0 else float("nan"),
        "off_target_mass": float(mass[~on].sum()),
        "weighted_angle": float((mass * theta).sum() / total) if total > 0 else float("nan"),
    }
    for i in range(B.shape[0]):
        sel = on & (nearest == i)
        out[f"mass_{i}"] = float(scale * (a[sel] * norms[sel]).sum())
    fro = float((W * W).sum())
    inside = float(((W @ B.T) ** 2).sum())
    out["off_subspace"] = max(fro - inside, 0.0) / fro if fro > 0 else float("nan")
    r = B.shape[0]
    if fro > 0 and min(W.shape) >= r:
        _, _, Vt = top_singular_triplets(W, r, "auto")
        out["max_angle"] = float(principal_angles(Vt[:r], B).max())
    else:
        out["max_angle"] = float("nan")
    return out
