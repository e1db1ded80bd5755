"""The online-SGD theory beside a run: order parameters along training, and the ODE's prediction.

Two measurements (docs/measurements.md, docs/theory.md "Online SGD in the teacher-student
setting"):

- ``order_parameters`` (per step, for ``train.monitor``): Q = W W^T, R = W B^T, the effective
  second layer v = scale * a, and the population test error of the current student computed
  from them (no test sample: closed form for erf, quadrature otherwise).
- ``online_sgd_theory``: integrates the ODEs of :mod:`twolayer.theory.online_sgd` from the run's
  own initial overlaps (W_0, a_0, B) and predicts the test error and the overlaps at every step
  the ``gd`` protocol records. Only for runs the theory describes: ``gd`` with ``online: true``
  and the square loss, a committee teacher (``multi_index`` with ``link: sum``, or
  ``single_index``) without input spike or label preprocessing; anything else is refused when
  the spec is validated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, register_measurement
from twolayer.theory.online_sgd import (
    GaussianIntegrals,
    OnlineSGDProblem,
    generalisation_error,
    integrate_online_sgd,
)

WHAT = "online_sgd_theory"


def committee_of(teacher: Any, what: str = WHAT) -> tuple[Any, np.ndarray, np.ndarray, float]:
    """(g, v*, B, noise) of a committee teacher y = sum_m v*_m g(<b_m, x>) + noise * xi.

    ``multi_index`` with ``link: sum`` gives its activation and weights; ``single_index`` is the
    committee of one unit with v* = 1. Raises ValueError for any other teacher.
    """
    inner = getattr(teacher, "inner", None)
    if inner is not None:
        raise ValueError(f"{what}: labels preprocessed on the sample (labels.center / "
                         "remove_linear) are not a committee teacher's labels")
    if getattr(getattr(teacher, "inputs", None), "theta", 0.0) != 0.0:
        raise ValueError(f"{what}: the theory needs x ~ N(0, I_d) (no input_spike)")
    committee = getattr(teacher, "committee", None)
    if committee is not None:
        g, weights = committee
        return g, np.asarray(weights, float), np.atleast_2d(teacher.directions), teacher.noise
    link = getattr(teacher, "link", None)
    if link is not None and getattr(teacher, "directions", None) is not None:
        return link, np.ones(1), np.atleast_2d(teacher.directions), teacher.noise
    raise ValueError(f"{what}: needs a committee teacher (multi_index with link 'sum', or "
                     f"single_index), got {type(teacher).__name__}")


def order_parameters_of(student: Any, B: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """(Q = W W^T (K, K), R = W B^T (K, M), v = scale * a (K,)) of a student (NumPy float64)."""
    W = as_float64(student.W)
    a = as_float64(student.a)
    return W @ W.T, W @ B.T, student.scale * a


@register_measurement("order_parameters", per_step=True)
def order_parameters(ctx: MeasureContext) -> dict[str, float]:
    """Overlaps Q_ik = <w_i, w_k>, R_im = <w_i, b_m>, second layer v_i = scale * a_i, and the
    population test error from them (committee teachers only).

    Returns
    -------
    dict
        ``Q_i_k`` (i <= k), ``R_i_m``, ``v_i`` (indices from 0) and ``test_mse``
        = E[(f - y)^2] over fresh data (label noise included), computed from the order
        parameters: exact (closed form) for erf, Gauss-Hermite quadrature otherwise; ``eg`` =
        (test_mse - noise^2) / 2, the generalisation error of Saad & Solla.
    """
    g, v_star, B, noise = committee_of(ctx.teacher, "order_parameters")
    Q, R, v = order_parameters_of(ctx.student, B)
    K, M = R.shape
    out: dict[str, float] = {}
    for i in range(K):
        for k in range(i, K):
            out[f"Q_{i}_{k}"] = float(Q[i, k])
        for m in range(M):
            out[f"R_{i}_{m}"] = float(R[i, m])
        out[f"v_{i}"] = float(v[i])
    integrals = GaussianIntegrals(ctx.student.activation, g)
    eg = generalisation_error(integrals, Q, R, B @ B.T, v, v_star)
    out["eg"] = eg
    out["test_mse"] = 2 * eg + noise**2
    return out


def recorded_steps(steps: int, record_every: int) -> np.ndarray:
    """The steps at which the ``gd`` protocol records its trajectory: every ``record_every``
    steps before the last, and the last (twolayer.train.gd)."""
    return np.array([*range(0, steps, record_every), steps], dtype=float)


def _check(config: Any, o: dict[str, Any]) -> None:
    if config is None:
        return
    train = config.train
    if getattr(train, "protocol", None) != "gd" or not getattr(train, "online", False):
        raise ValueError(f"{WHAT}: the ODEs describe one-pass SGD: needs train.protocol 'gd' "
                         "with train.online: true (a fresh batch every step)")
    if train.loss != "square":
        raise ValueError(f"{WHAT}: the ODEs are for the square loss, got train.loss "
                         f"{train.loss!r}")
    teacher = config.teacher
    options = teacher.options
    if teacher.name == "multi_index":
        if options.get("link", "sum") != "sum":
            raise ValueError(f"{WHAT}: needs a committee teacher: multi_index with link 'sum', "
                             f"got link {options.get('link')!r}")
    elif teacher.name != "single_index":
        raise ValueError(f"{WHAT}: needs a committee teacher (multi_index with link 'sum', or "
                         f"single_index), got teacher {teacher.name!r}")
    if options.get("input_spike"):
        raise ValueError(f"{WHAT}: the ODEs need x ~ N(0, I_d): drop teacher.input_spike")
    labels = getattr(config, "labels", None)
    if labels is not None and (labels.center or labels.remove_linear):
        raise ValueError(f"{WHAT}: labels.center / remove_linear change the teacher's labels; "
                         "the ODEs are for the committee's own labels")


def problem_for(ctx: MeasureContext) -> tuple[OnlineSGDProblem, int]:
    """The :class:`OnlineSGDProblem` of a run (its config, teacher and student) and its number
    of steps."""
    train = ctx.config.train
    g, v_star, B, noise = committee_of(ctx.teacher)
    student = ctx.student_init
    batch = int(train.batch_size or train.n)
    eta0 = train.eta.build().value(n=train.n, N=student.N, d=student.d)
    problem = OnlineSGDProblem(
        GaussianIntegrals(student.activation, g), B @ B.T, v_star, noise=float(noise),
        output_scale=float(student.scale), eta=float(eta0), batch=batch, d=int(student.d),
        decay=float(train.decay), train_a=train.train in ("a", "both"),
        train_W=train.train in ("W", "both"), wd_W=float(train.weight_decay.W),
        wd_a=float(train.weight_decay.a), temperature=float(train.temperature))
    return problem, int(train.steps)


@register_measurement(WHAT, check=_check)
def online_sgd_theory(ctx: MeasureContext, rtol: float = 1e-7) -> dict[str, Any]:
    """The ODEs of online SGD (Saad & Solla 1995; Goldt et al. 2019) integrated from the run's
    own W_0, a_0 and teacher: test error and overlaps at every recorded step.

    Parameters
    ----------
    rtol : float
        Relative tolerance of the adaptive integrator (``solve_ivp``, RK45).

    Returns
    -------
    dict
        Arrays (one entry per recorded step of the ``gd`` trajectory): ``steps``, ``t`` = steps
        x batch / d, ``test_mse_curve`` (E[(f - y)^2], label noise included), ``eg_curve``,
        ``Q_curve`` (n, K, K), ``R_curve`` (n, K, M), ``v_curve`` (n, K); scalars ``test_mse``
        and ``eg`` at the last step, ``lr`` (the ODE learning rate eta_0 d / b) and ``success``
        (1.0 when the integrator reached the last time).
    """
    if ctx.config is None:
        raise ValueError(f"{WHAT}: needs the run's configuration (train section)")
    _check(ctx.config, {})
    problem, steps = problem_for(ctx)
    _, _, B, _ = committee_of(ctx.teacher)
    Q0, R0, v0 = order_parameters_of(ctx.student_init, B)
    record = recorded_steps(steps, int(ctx.config.train.record_every))
    sol = integrate_online_sgd(problem, Q0, R0, v0, problem.time_of_step(record), rtol=rtol,
                               atol=1e-3 * rtol)
    return {
        "steps": record, "t": sol.t, "test_mse_curve": sol.test_mse, "eg_curve": sol.eg,
        "Q_curve": sol.Q, "R_curve": sol.R, "v_curve": sol.v,
        "test_mse": float(sol.test_mse[-1]), "eg": float(sol.eg[-1]),
        "lr": problem.lr(0.0), "success": float(sol.success),
    }
