"""The ridge readout's test error predicted by Gaussian equivalence, conditional on the run's W
(:func:`twolayer.theory.ridge.rf_ridge_prediction_for`).

The readout fits the second layer by ridge on the features ``scale * sigma(X W^T)`` of a fresh
batch, W being the trained first layer (or W_0 when nothing is trained). Gaussian equivalence
replaces these features by Gaussian ones with the same first two moments given W, and the ridge
deterministic equivalent then gives the test error. For random features (W = W_0) this is the
theory of random-features ridge at finite W; after a first-layer step on another batch it still
applies in form, and the gap between it and ``readout.test_mse`` measures what the step taught
the features beyond a Gaussian model of them: small for a small step, large once a giant step's
spike has made the features non-linear in the target direction (docs/theory.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twolayer.measure._common import require_readout, require_single_index, teacher_directions
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, register_measurement
from twolayer.theory.ridge import penalty_sum_to_mean, rf_ridge_prediction_for


def _check(config: Any, o: dict[str, Any]) -> None:
    """The prediction needs a ridge readout on a batch independent of W, and the link of a
    single-index teacher."""
    require_readout(config, "ridge_theory")
    if config.readout.batch != "fresh":
        raise ValueError(
            "ridge_theory: needs readout.batch 'fresh' (the prediction is conditional on W, "
            "which a reused training batch is not independent of)"
        )
    require_single_index(config, "ridge_theory")


def _mean_penalties(ctx: MeasureContext, n: int) -> np.ndarray:
    """The readout's lambdas as penalties on the mean loss for features sigma(W x) / sqrt(N)."""
    readout = ctx.config.readout
    lams = np.asarray(readout.lambdas, dtype=float)
    if readout.penalty == "sum":
        lams = penalty_sum_to_mean(lams, n)
    # ridge on c * phi with penalty lam is ridge on phi with penalty lam / c^2
    c = float(ctx.student.scale) * math.sqrt(ctx.student.N)
    return lams / c**2


def _errors(W: np.ndarray, ctx: MeasureContext, n: int, lams: np.ndarray) -> np.ndarray:
    teacher = ctx.teacher
    beta = teacher_directions(ctx, "ridge_theory")[0]
    preds = rf_ridge_prediction_for(
        W, beta, n, list(lams), ctx.student.activation, teacher.link,
        noise_var=float(teacher.noise) ** 2,
    )
    return np.array([p.test_error for p in preds])


@register_measurement("ridge_theory", check=_check)
def ridge_theory(ctx: MeasureContext, random_features: bool = False) -> dict[str, Any]:
    """Gaussian-equivalence prediction of the readout's test error, conditional on the run's W.

    Parameters
    ----------
    random_features : bool
        Also predict the ``random_features`` baseline: the same readout on W_0.

    Returns
    -------
    dict
        ``test_mse`` (smallest over the lambda grid, as ``readout.test_mse``: noisy test labels),
        ``best_lambda`` (its lambda), ``test_mse_path`` (L,) when several lambdas; with
        ``random_features``: ``rf_test_mse`` (and ``rf_test_mse_path``).
    """
    readout = ctx.config.readout
    n = int(readout.n or ctx.config.train_n)
    lams = _mean_penalties(ctx, n)
    out: dict[str, Any] = {}
    for prefix, W in (("", ctx.student.W), ("rf_", ctx.student_init.W)):
        if prefix and not random_features:
            continue
        errors = _errors(as_float64(W), ctx, n, lams)
        out[f"{prefix}test_mse"] = float(errors.min())
        if not prefix:
            out["best_lambda"] = float(readout.lambdas[int(np.argmin(errors))])
        if lams.size > 1:
            out[f"{prefix}test_mse_path"] = errors
    return out
