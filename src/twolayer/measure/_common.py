"""Helpers shared by the measurements (private): probe sets, features, teacher directions."""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext
from twolayer.student import TwoLayer


def probe_size(ctx: MeasureContext, n_probe: int | None) -> int:
    """``n_probe``, or d (the proportional regime n ~ d) when None."""
    n = ctx.student.d if n_probe is None else int(n_probe)
    if n < 1:
        raise ValueError(f"n_probe must be a positive integer, got {n_probe}")
    return n


def probe(ctx: MeasureContext, n_probe: int | None, probe_stream: int) -> tuple[Any, Any]:
    """The probe sample (X (n, d), y (n,)) of stream ("measure", probe_stream), on the backend."""
    return ctx.probe(probe_size(ctx, n_probe), int(probe_stream))


def features(student: TwoLayer, X: Any) -> np.ndarray:
    """Unscaled features sigma(X W^T) of a student as a NumPy float64 array, shape (n, N)."""
    return as_float64(student.features(X))


def teacher_directions(ctx: MeasureContext, what: str) -> np.ndarray:
    """The teacher's directions (r, d), orthonormal rows; a clear error when it has none."""
    B = ctx.teacher.directions
    if B is None:
        raise ValueError(f"{what}: teacher {type(ctx.teacher).__name__} has no target directions")
    return np.atleast_2d(np.asarray(B, dtype=np.float64))


def require_readout(config: Any, what: str) -> None:
    """Spec-time check of a measurement that predicts the readout: the run must have one."""
    if config is None or config.readout is None:
        raise ValueError(f"{what}: the run needs a readout section")


def require_single_index(config: Any, what: str) -> None:
    """Spec-time check of a measurement whose theory is for a single-index teacher."""
    if config.teacher.name != "single_index":
        raise ValueError(f"{what}: needs a single-index teacher, got {config.teacher.name!r}")


def check_fraction_list(values: Any, what: str) -> tuple[float, ...]:
    """A sequence of numbers in [0, 1] (thresholds, quantile levels)."""
    out = tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=float)))
    if not out or any(not 0.0 <= v <= 1.0 for v in out):
        raise ValueError(f"{what} must be numbers in [0, 1], got {values}")
    return out


def percent_key(value: float) -> str:
    """0.5 -> "50", 0.25 -> "25", 0.125 -> "12p5" (store keys without dots)."""
    p = 100.0 * value
    text = f"{p:.6g}"
    return text.replace(".", "p")
