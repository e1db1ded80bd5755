"""Distribution over neurons of the alignment of w_i with the teacher (per step)."""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.measure._common import check_fraction_list, percent_key, teacher_directions
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, register_measurement
from twolayer.student import TwoLayer

DEFAULT_THRESHOLDS = (0.5, 0.9)
DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


def projection_ratio(W: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``||P_B w_i|| / ||w_i||`` for each row w_i of W (N, d); B (r, d) orthonormal rows.

    Returns
    -------
    (N,) array in [0, 1]; NaN for a zero row.
    """
    norms = np.linalg.norm(W, axis=1)
    proj = np.linalg.norm(W @ B.T, axis=1)
    out = np.full(W.shape[0], np.nan)
    ok = norms > 0
    out[ok] = proj[ok] / norms[ok]
    return out


def cosines(W: np.ndarray, means: np.ndarray) -> np.ndarray:
    """cos(w_i, mu_k) for rows of W (N, d) and of means (K, d); shape (N, K), NaN for zero rows."""
    norms = np.linalg.norm(W, axis=1)
    mnorms = np.linalg.norm(means, axis=1)
    out = np.full((W.shape[0], means.shape[0]), np.nan)
    ok = norms > 0
    out[ok] = (W[ok] @ means.T) / (norms[ok, None] * mnorms[None, :])
    return out


def _summary(
    prefix: str, values: np.ndarray, thresholds: tuple[float, ...], quantiles: tuple[float, ...]
) -> dict[str, float]:
    v = values[~np.isnan(values)]
    out: dict[str, float] = {}
    if v.size == 0:
        out[f"{prefix}_mean"] = float("nan")
        for q in quantiles:
            out[f"{prefix}_q{percent_key(q)}"] = float("nan")
        for th in thresholds:
            out[f"{prefix}_frac_above_{percent_key(th)}"] = float("nan")
        return out
    out[f"{prefix}_mean"] = float(v.mean())
    for q, value in zip(quantiles, np.quantile(v, quantiles), strict=True):
        out[f"{prefix}_q{percent_key(q)}"] = float(value)
    for th in thresholds:
        out[f"{prefix}_frac_above_{percent_key(th)}"] = float(np.mean(v > th))
    return out


@register_measurement("neuron_alignment", per_step=True)
def neuron_alignment(
    ctx: MeasureContext,
    thresholds: list[float] | tuple[float, ...] = DEFAULT_THRESHOLDS,
    quantiles: list[float] | tuple[float, ...] = DEFAULT_QUANTILES,
    include_init: bool = True,
    per_neuron: bool = False,
) -> dict[str, Any]:
    """Quantiles and threshold fractions over neurons of their alignment with the teacher.

    Two per-neuron statistics, each a number in [0, 1]:

    - ``proj``: ``||P_B w_i|| / ||w_i||`` with P_B the projector on the teacher span (rows of
      ``teacher.directions``, shape (r, d)); about sqrt(r/d) for a random neuron, 1 for a neuron in
      the span;
    - ``cos`` (cluster teachers with means ``teacher.mu``, shape (K, d), e.g. XOR):
      ``max_k |cos(w_i, mu_k)|``, the alignment with the nearest cluster axis (sign-free, since
      +mu and -mu are both clusters of XOR).

    Scalars (for each statistic S present, and with prefix ``init_`` for the student at
    initialisation when ``include_init``): ``S_mean``, ``S_q{100 q}`` for each quantile level q
    (``proj_q50`` is the median) and ``S_frac_above_{100 t}`` for each threshold t (fraction of
    neurons with S > t; ``proj_frac_above_50``). Dots in percentages become ``p`` (12.5 -> 12p5).

    Parameters
    ----------
    thresholds, quantiles : sequences of numbers in [0, 1]
    include_init : bool
        Also summarise the initial student.
    per_neuron : bool
        Also return the per-neuron arrays ``proj`` (N,) and ``cos`` (N, K) (signed cosines).
    """
    ths = check_fraction_list(thresholds, "neuron_alignment: thresholds")
    qs = check_fraction_list(quantiles, "neuron_alignment: quantiles")
    B = teacher_directions(ctx, "neuron_alignment")
    means = getattr(ctx.teacher, "mu", None)
    students: list[tuple[str, TwoLayer]] = [("", ctx.student)]
    if include_init:
        students.append(("init_", ctx.student_init))
    out: dict[str, Any] = {}
    for prefix, student in students:
        W = as_float64(student.W)
        proj = projection_ratio(W, B)
        out.update(_summary(f"{prefix}proj", proj, ths, qs))
        if per_neuron:
            out[f"{prefix}proj"] = proj
        if means is not None:
            cos = cosines(W, np.atleast_2d(np.asarray(means, dtype=np.float64)))
            best = np.max(np.abs(cos), axis=1)
            out.update(_summary(f"{prefix}cos", best, ths, qs))
            if per_neuron:
                out[f"{prefix}cos"] = cos
    return out
