"""The asymptotic test error of the ridge readout on the run's spiked random features, conditional
on the run's W_0 and target (Cui et al. 2024, :mod:`twolayer.theory.spiked_rf`).

The theory is conditional on W_0: the fixed-point equations read the spectrum of
W Pi W^T (W = c_W W_0, Pi the projector orthogonal to the spike direction v) and the weights of
v and of the target in its eigenbasis. At moderate sizes (d = p = 300) the test error of one
realisation of W_0 and beta differs from another's by several percent (W_0 W_0^T has a hard
edge at 0 when p = d), so comparing a run with the prediction for ITS W_0 removes that part of
the scatter; what remains is the fluctuation of the readout batch and of the test set.

Beside a ``giant_steps`` run of one step in Cui et al.'s scaling (:func:`_check_giant_step`) the
prediction is that of the run's sRF model, (r, c_W, gamma) derived from the run's eta_tilde and
alpha_0 as the ``spiked`` protocol derives them; the network's readout error follows it on
average (docs/measurements.md: mean readout / theory - 1 of -0.021 over 30 seeds at d = p = 800,
single seeds scattering by 6%, as the network's spike direction is its own).
"""

from __future__ import annotations

import math
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
from twolayer.train.spiked import SPIKE_STREAM, SpikedOptions, spike_direction

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


#: Protocols whose first layer the equations describe.
PROTOCOLS = ("spiked", "giant_steps", "none")
#: Sizes S proportional to p = N in the proportional limit: eta = c S is eta = eta_tilde p.
PROPORTIONAL_SIZES = ("N", "d", "n")
#: Relative tolerance on a_scale = 1/sqrt(N) (a YAML file writes the number out).
A_SCALE_RTOL = 1e-6
#: |E sigma(z)| below this counts as an output of zero at init (tanh's quadrature gives 1e-17).
MU0_ATOL = 1e-8


def _check(config: Any, o: dict[str, Any]) -> None:
    """What the equations cover: a noiseless single-index teacher on isotropic inputs, W_0 with
    unit rows, the readout's 1/sqrt(p) features, the ``spiked`` or no training or one giant step
    in Cui et al.'s scaling (:func:`_check_giant_step`), and a ridge readout to predict."""
    require_readout(config, "spiked_rf_theory")
    require_single_index(config, "spiked_rf_theory")
    teacher = config.teacher.options
    if teacher.get("noise", 0.0) != 0.0:
        raise ValueError(
            "spiked_rf_theory: teacher.noise must be 0 (the equations are for a teacher without "
            f"label noise), got {teacher['noise']:g}"
        )
    if (teacher.get("input_spike") or {}).get("theta", 0.0) != 0.0:
        raise ValueError(
            "spiked_rf_theory: teacher.input_spike: the equations are for isotropic inputs "
            "x ~ N(0, I_d), got a spiked input covariance"
        )
    student = config.student
    if student.w_init != "sphere" or student.w_scale != 1.0:
        raise ValueError(
            "spiked_rf_theory: W_0 must have unit rows (student.w_init: sphere, w_scale: 1), "
            f"got w_init {student.w_init!r}, w_scale {student.w_scale:g}"
        )
    if student.scaling != "standard":
        raise ValueError(
            "spiked_rf_theory: student.scaling must be 'standard' (the readout's features "
            f"sigma(W x)/sqrt(p) of the equations), got {student.scaling!r}"
        )
    if config.train.protocol not in PROTOCOLS:
        raise ValueError(
            "spiked_rf_theory: needs train.protocol 'spiked', 'giant_steps' (one step in Cui et "
            f"al.'s scaling) or 'none', got {config.train.protocol!r}"
        )
    if config.train.protocol == "giant_steps":
        _check_giant_step(config)


def _check_giant_step(config: Any) -> None:
    """A ``giant_steps`` run is the step the sRF model stands for (Cui et al. 2024) when it has
    one step, on W (``both`` too: the W update is the same, computed at (W_0, a_0), and the
    readout refits a); the square loss; eta = eta_tilde p (alpha 1 and S = N, or d or n, which
    are proportional to p); a_0 = 1/sqrt(p) constant, so that the output f_0 at init is
    O(1/sqrt p) and each row moves by eta_tilde (1/n_0) sum_mu (y_mu - f_0) sigma'(<w_j, x_mu>)
    x_mu; an activation with E sigma(z) = 0, else f_0 ~ E sigma(z) enters the residual (a relu
    student, d = p = 600: the network 12% below the prediction on 6 seeds, sd 1.7%, its
    ``spiked`` model and a centred relu within 1.4%); a readout on a fresh batch (independent of
    W_1). Each refusal names the key and what is expected."""
    what = "spiked_rf_theory (train.protocol giant_steps: one step in Cui et al.'s scaling)"
    train, student, readout = config.train, config.student, config.readout
    if len(train.steps) != 1:
        raise ValueError(f"{what}: train.steps must hold one step, got {len(train.steps)}")
    step = train.steps[0]
    if step.layer not in ("W", "both"):
        raise ValueError(
            f"{what}: train.steps[0].layer must be 'W' (or 'both': the readout refits a), got "
            f"{step.layer!r}"
        )
    if train.loss != "square":
        raise ValueError(f"{what}: train.loss must be 'square', got {train.loss!r}")
    eta = step.eta
    if eta.alpha != 1.0 or eta.S not in PROPORTIONAL_SIZES or eta.c < 0:
        raise ValueError(
            f"{what}: train.steps[0].eta must be eta_tilde p, i.e. {{c: eta_tilde >= 0, alpha: 1, "
            f"S: N}} (or S: d or n, proportional to p), got {{c: {eta.c:g}, alpha: "
            f"{eta.alpha:g}, S: {eta.S}}}"
        )
    a0 = 1.0 / math.sqrt(student.N)
    if student.a_init != "constant" or not math.isclose(student.a_scale, a0, rel_tol=A_SCALE_RTOL):
        raise ValueError(
            f"{what}: the second layer must be a_0 = 1/sqrt(p) for every neuron (student.a_init: "
            f"constant, a_scale: {a0!r}), got a_init {student.a_init!r}, a_scale "
            f"{student.a_scale:g}"
        )
    mu0 = student.activation.build().constants.mu0
    if abs(mu0) > MU0_ATOL:
        raise ValueError(
            f"{what}: student.activation must have E sigma(z) = 0 (an odd one such as tanh, or "
            f"center: true), so that the output at init is ~0 as the step's sRF model assumes; "
            f"got E sigma(z) = {mu0:.4g}"
        )
    if readout.batch != "fresh":
        raise ValueError(
            f"{what}: readout.batch must be 'fresh' (the equations are for a readout batch "
            f"independent of W_1), got {readout.batch!r}"
        )


def _trained(ctx: MeasureContext, what: str) -> Any:
    """The protocol's result, which holds ``what``; a clear error for a context without it."""
    if ctx.trained is None:
        raise ValueError(
            f"spiked_rf_theory: needs the run's training result ({what}); run it through the "
            "pipeline (run_once), which passes it to the measurements"
        )
    return ctx.trained


def step_scaling(ctx: MeasureContext) -> tuple[float, float]:
    """(eta_tilde, alpha_0) of a ``giant_steps`` run in scope: alpha_0 = n_0 / d with n_0 the
    size of the batch the step used (``ctx.batches[0]``), eta_tilde = eta / p with eta the
    step size the protocol used (``ctx.trained.etas[0]``)."""
    N, d = ctx.student_init.N, ctx.student_init.d
    eta = _trained(ctx, "the step size it used").etas[0]
    n0 = int(ctx.batches[0][0].shape[-2])
    return eta / N, n0 / d


#: The last few spectra computed, with the W_0 they belong to (kept, so that an identity match
#: cannot be a recycled object): the runs of one trained student (a readout sweep) share W_0,
#: v and beta, and the (p, p) eigendecomposition is most of this measurement's cost.
_SPECTRA: list[tuple[Any, bytes, float, Any]] = []


def _spectrum(W0: np.ndarray, v: np.ndarray, beta: np.ndarray, c_w: float) -> Any:
    """:func:`spiked_rf_spectrum`, computed once per (W_0 object, v, beta, c_w)."""
    tag = np.concatenate([np.asarray(v, float), np.asarray(beta, float)]).tobytes()
    for W, key, c, spectrum in _SPECTRA:
        if W is W0 and key == tag and c == c_w:
            return spectrum
    spectrum = spiked_rf_spectrum(W0, v, beta, c_w)
    _SPECTRA.insert(0, (W0, tag, c_w, spectrum))
    del _SPECTRA[4:]
    return spectrum


@register_measurement("spiked_rf_theory", check=_check)
def spiked_rf_theory(
    ctx: MeasureContext,
    random_features: bool = False,
    n_k: int = 80,
    tol: float = 1e-8,
    spectrum: bool = False,
) -> dict[str, Any]:
    """Cui et al. (2024) prediction of the readout's test MSE for this run's W_0 and target.

    Needs: ``train.protocol`` ``spiked`` (the run's r, c_W, gamma and its spike direction v, as
    the protocol recorded them in ``ctx.trained.info``), ``giant_steps`` with one step in Cui
    et al.'s scaling (:func:`_check_giant_step`; (r, c_W, gamma) derived from the run's
    eta_tilde = eta / p, eta the step size the protocol used, and alpha_0 = n_0 / d exactly as
    the ``spiked`` protocol derives them; v is this measurement's draw of the model's spike
    from the stream "spike", the one the ``spiked`` protocol would draw: the prediction is that
    of the run's sRF model, the ``spiked`` run with the same seed, eta_tilde and alpha0) or
    ``none`` (r = 0, c_W = 1); a readout (n, lambdas, penalty: a
    mean penalty lam is the sum penalty n lam); W_0 with unit rows (``student.w_init: sphere``,
    ``w_scale: 1``) and the standard scaling; a single-index teacher without label noise on
    isotropic inputs.

    Parameters
    ----------
    random_features : bool
        Also predict plain random features on the same W_0 (r = 0, c_W = 1): the readout's
        ``random_features`` baseline.
    n_k : int
        Gauss–Hermite nodes over the spike coordinate.
    tol : float
        Tolerance of the fixed-point iteration.
    spectrum : bool
        Also store the spectral data the prediction used, at unit bulk scale (W = W_0):
        ``spectrum_D``, ``spectrum_F``, ``spectrum_H``, each (p,) (:class:`SpikedRFSpectrum`;
        at bulk scale c_W all three are multiplied by c_W^2). With them the equations can be
        solved again for other (r, alpha) on this run's W_0 and spike direction without
        rebuilding either from the random streams.

    Returns
    -------
    dict
        ``test_mse`` (smallest over the lambda grid, as ``readout.test_mse``), ``test_mse_path``
        (L,) when several lambdas; ``r``, ``c_w``, ``gamma``; ``converged`` (1 or 0: 0 means a
        point did not converge and is NaN); with ``random_features``: ``rf_test_mse`` (and
        ``rf_test_mse_path``); with ``spectrum``: ``spectrum_D``, ``spectrum_F``,
        ``spectrum_H``.
    """
    config = ctx.config
    readout = config.readout
    train = config.train
    teacher = ctx.teacher
    link = teacher.link
    beta = teacher_directions(ctx, "spiked_rf_theory")
    W0 = as_float64(ctx.student_init.W)
    step: dict[str, float] = {}
    d = W0.shape[1]
    v = None
    if train.protocol == "spiked":
        info = _trained(ctx, "the spike it drew").info
        params, v = info.params, np.asarray(info.direction, dtype=float)
    elif train.protocol == "giant_steps":
        eta_tilde, alpha0 = step_scaling(ctx)
        step = {"eta_tilde": eta_tilde, "alpha0": alpha0}
        params = SpikedOptions(eta_tilde=eta_tilde, alpha0=alpha0).resolve(ctx.student_init,
                                                                           teacher)
    else:
        params = SpikedRFParameters(0.0, 1.0, 0.0)
    if v is None:  # the model's own spike (no protocol drew one)
        v = spike_direction(beta[0], params.gamma, d, ctx.streams.generator(SPIKE_STREAM))
    n = int(readout.n or config.train_n)
    lams = np.asarray(readout.lambdas, dtype=float)
    lams_sum = lams * n if readout.penalty == "mean" else lams
    activation = ctx.student.activation
    errors, ok = _path(_spectrum(W0, v, beta[0], params.c_w), params, n, lams_sum,
                       activation, link, n_k, tol)
    out: dict[str, Any] = {
        "r": params.r,
        "c_w": params.c_w,
        "gamma": params.gamma,
        **step,
        "test_mse": float(np.nanmin(errors)) if np.any(np.isfinite(errors)) else float("nan"),
    }
    if lams.size > 1:
        out["test_mse_path"] = errors
    if random_features:
        rf_model = SpikedRFParameters(0.0, 1.0, params.gamma)
        rf, ok_rf = _path(_spectrum(W0, v, beta[0], 1.0), rf_model, n, lams_sum,
                          activation, link, n_k, tol)
        ok = ok and ok_rf
        out["rf_test_mse"] = float(np.nanmin(rf)) if np.any(np.isfinite(rf)) else float("nan")
        if lams.size > 1:
            out["rf_test_mse_path"] = rf
    if spectrum:  # D, F and H are each c_W^2 times those of W_0: no second eigh
        used, scale = _spectrum(W0, v, beta[0], params.c_w), params.c_w**2
        out.update(spectrum_D=used.D / scale, spectrum_F=used.F / scale,
                   spectrum_H=used.H / scale)
    out["converged"] = float(ok)
    return out
