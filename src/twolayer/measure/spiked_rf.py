"""The asymptotic test error of the ridge readout on the run's spiked random features, conditional
on the run's W_0 and target (Cui et al. 2024, :mod:`twolayer.theory.spiked_rf`).

The theory is conditional on W_0: the fixed-point equations read the spectrum of
W Pi W^T (W = c_W W_0, Pi the projector orthogonal to the spike direction v) and the weights of
v and of the target in its eigenbasis. At moderate sizes (d = p = 300) the test error of one
realisation of W_0 and beta differs from another's by several percent (W_0 W_0^T has a hard
edge at 0 when p = d), so comparing a run with the prediction for ITS W_0 removes that part of
the scatter; what remains is the fluctuation of the readout batch and of the test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.activations import Activation
from twolayer.measure._common import require_readout, require_single_index, teacher_directions
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, register_measurement
from twolayer.theory.fixed_point import FixedPointError
from twolayer.theory.spiked_rf import (
    SpikedRFError,
    SpikedRFParameters,
    SpikedRFSpectrum,
    spiked_rf_error,
    spiked_rf_spectrum,
)
from twolayer.train.spiked import SPIKE_STREAM, spike_direction

#: Dampings tried in turn: 1/2 (the literature's) is fastest; stronger ones rescue the small-lambda
#: points near interpolation where the plain iteration overshoots.
DAMPINGS = (0.5, 0.8, 0.95)


def solve_with_fallback(
    spectrum: SpikedRFSpectrum,
    params: SpikedRFParameters,
    n: int,
    lam_sum: float,
    activation: Activation,
    link: Activation,
    *,
    n_k: int = 80,
    tol: float = 1e-8,
    init: np.ndarray | None = None,
) -> SpikedRFError | None:
    """:func:`twolayer.theory.spiked_rf.spiked_rf_error` with dampings 0.5, 0.8, 0.95 tried in
    turn; None if none converges (a non-converged number is never returned)."""
    for damping in DAMPINGS:
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging try is caught below
                result = spiked_rf_error(
                    spectrum, params, n, lam_sum, activation.fn, link.fn,
                    activation_kinks=activation.kinks, link_kinks=link.kinks, n_k=n_k,
                    damping=damping, tol=tol, max_iter=20_000,
                    init=init if damping == DAMPINGS[0] else None,
                )
        except FixedPointError:
            continue
        if np.isfinite(result.test_error):
            return result
    return None


def _path(
    spectrum: SpikedRFSpectrum, params: SpikedRFParameters, n: int, lams: np.ndarray,
    activation: Activation, link: Activation, n_k: int, tol: float,
) -> tuple[np.ndarray, bool]:
    """Test errors along the lambda grid (warm-started), and whether every point converged."""
    out, init, ok = np.full(lams.size, np.nan), None, True
    for j, lam in enumerate(lams):
        res = solve_with_fallback(spectrum, params, n, float(lam), activation, link, n_k=n_k,
                                  tol=tol, init=init)
        if res is None:
            ok = False
            continue
        out[j] = res.test_error
        init = np.array(list(res.order.values()))
    return out, ok


def _check(config: Any, o: dict[str, Any]) -> None:
    """What the equations cover: a noiseless single-index teacher, W_0 with unit rows, the
    ``spiked`` (or no) training, and a ridge readout to predict."""
    require_readout(config, "spiked_rf_theory")
    require_single_index(config, "spiked_rf_theory")
    if config.teacher.options.get("noise", 0.0) != 0.0:
        raise ValueError("spiked_rf_theory: the equations are for a teacher without label noise")
    student = config.student
    if student.w_init != "sphere" or student.w_scale != 1.0:
        raise ValueError(
            "spiked_rf_theory: W_0 must have unit rows (student.w_init: sphere, w_scale: 1), "
            f"got w_init {student.w_init!r}, w_scale {student.w_scale:g}"
        )
    if config.train.protocol not in ("spiked", "none"):
        raise ValueError(
            "spiked_rf_theory: needs train.protocol 'spiked' or 'none', "
            f"got {config.train.protocol!r}"
        )


@register_measurement("spiked_rf_theory", check=_check)
def spiked_rf_theory(
    ctx: MeasureContext, random_features: bool = False, n_k: int = 80, tol: float = 1e-8
) -> dict[str, Any]:
    """Cui et al. (2024) prediction of the readout's test MSE for this run's W_0 and target.

    Needs: ``train.protocol`` ``spiked`` (the run's r, c_W, gamma; v drawn again from the stream
    "spike", i.e. the protocol's v) or ``none`` (r = 0, c_W = 1); a readout (n, lambdas,
    penalty: a mean penalty lam is the sum penalty n lam); W_0 with unit rows
    (``student.w_init: sphere``, ``w_scale: 1``); a single-index teacher without label noise.

    Parameters
    ----------
    random_features : bool
        Also predict plain random features on the same W_0 (r = 0, c_W = 1): the readout's
        ``random_features`` baseline.
    n_k : int
        Gauss–Hermite nodes over the spike coordinate.
    tol : float
        Tolerance of the fixed-point iteration.

    Returns
    -------
    dict
        ``test_mse`` (smallest over the lambda grid, as ``readout.test_mse``), ``test_mse_path``
        (L,) when several lambdas; ``r``, ``c_w``, ``gamma``; ``converged`` (1 or 0: 0 means a
        point did not converge and is NaN); with ``random_features``: ``rf_test_mse`` (and
        ``rf_test_mse_path``).
    """
    config = ctx.config
    readout = config.readout
    train = config.train
    teacher = ctx.teacher
    link = teacher.link
    beta = teacher_directions(ctx, "spiked_rf_theory")
    W0 = as_float64(ctx.student_init.W)
    if train.protocol == "spiked":
        params = train.build().resolve(ctx.student_init, teacher)
    else:
        params = SpikedRFParameters(0.0, 1.0, 0.0)
    d = W0.shape[1]
    v = spike_direction(beta[0], params.gamma, d, ctx.streams.generator(SPIKE_STREAM))
    n = int(readout.n)
    lams = np.asarray(readout.lambdas, dtype=float)
    lams_sum = lams * n if readout.penalty == "mean" else lams
    activation = ctx.student.activation
    errors, ok = _path(spiked_rf_spectrum(W0, v, beta[0], params.c_w), params, n, lams_sum,
                       activation, link, n_k, tol)
    out: dict[str, Any] = {
        "r": params.r,
        "c_w": params.c_w,
        "gamma": params.gamma,
        "test_mse": float(np.nanmin(errors)) if np.any(np.isfinite(errors)) else float("nan"),
    }
    if lams.size > 1:
        out["test_mse_path"] = errors
    if random_features:
        rf_model = SpikedRFParameters(0.0, 1.0, params.gamma)
        rf, ok_rf = _path(spiked_rf_spectrum(W0, v, beta[0], 1.0), rf_model, n, lams_sum,
                          activation, link, n_k, tol)
        ok = ok and ok_rf
        out["rf_test_mse"] = float(np.nanmin(rf)) if np.any(np.isfinite(rf)) else float("nan")
        if lams.size > 1:
            out["rf_test_mse_path"] = rf
    out["converged"] = float(ok)
    return out
