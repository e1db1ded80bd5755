"""Path-norm generalisation bound of the trained network (twolayer.theory.generalization)."""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.activations import Activation
from twolayer.measure._linalg import as_float64
from twolayer.measure.gap import _default_loss
from twolayer.measure.registry import MeasureContext, register_measurement
from twolayer.theory.generalization import (
    LIPSCHITZ_CONSTANTS,
    lipschitz_gap_bound,
    path_norm,
    relu_rademacher_bound,
    rms_norm,
)

_GRID = np.linspace(-5.0, 5.0, 2001)


def check_homogeneous(act: Activation) -> None:
    """Raise ValueError unless sigma is positively homogeneous, 1-Lipschitz and 0 at 0 (checked
    on a grid of [-5, 5]: relu, leaky relu with |slope| <= 1, linear pass; a centred relu fails)."""
    z = _GRID
    ok = (
        abs(float(act(np.zeros(1))[0])) < 1e-12
        and np.allclose(act(2.5 * z), 2.5 * act(z), rtol=1e-12, atol=1e-12)
        and float(np.max(np.abs(np.diff(act(z)) / np.diff(z)))) <= 1.0 + 1e-9
    )
    if not ok:
        raise ValueError(
            f"norm_bound: the path-norm bound needs a positively homogeneous, 1-Lipschitz "
            f"activation with sigma(0) = 0 (relu); got {act.name}"
        )


def _check_lipschitz(loss: str) -> None:
    if loss not in LIPSCHITZ_CONSTANTS:
        raise ValueError(
            f"norm_bound: loss {loss!r} is not Lipschitz; use one of "
            f"{', '.join(sorted(LIPSCHITZ_CONSTANTS))}"
        )


def _check(config: Any, o: dict[str, Any]) -> None:
    if config is None:
        return
    train = config.train
    loss = o["loss"] or getattr(train, "loss", None)
    if loss is not None:
        _check_lipschitz(loss)
    if train.protocol in ("none", "spiked") or getattr(train, "online", False):
        raise ValueError(
            f"norm_bound: needs the training set, and train.protocol {train.protocol!r}"
            + (" (online)" if getattr(train, "online", False) else "") + " has none"
        )
    check_homogeneous(config.student.activation.build())


@register_measurement("norm_bound", per_step=False, check=_check)
def norm_bound(ctx: MeasureContext, loss: str | None = None) -> dict[str, Any]:
    """Path norm of the trained network and the Rademacher bound on its generalisation gap.

    With P = s sum_j |a_j| ||w_j|| (s the output scale) and rms = sqrt(mean_i ||x_i||^2) over the
    training set ``ctx.batches[0]``, the empirical Rademacher complexity of the class of networks
    of path norm <= P is at most R = 2 P rms / sqrt(n), and the expected generalisation gap of a
    loss that is L-Lipschitz in f is at most 2 L R (:mod:`twolayer.theory.generalization`; the
    radius is the trained network's own path norm, see the caveat there). The loss is the run's
    ``train.loss`` unless given, and must be Lipschitz (logistic, hinge, absolute).

    Returns
    -------
    dict
        ``path_norm``, ``path_norm_init`` (of the initial student), ``input_rms``, ``n``,
        ``rademacher`` (R), ``lipschitz`` (L), ``bound`` (2 L R).
    """
    loss_name = loss or _default_loss(ctx)
    _check_lipschitz(loss_name)
    if 0 not in ctx.batches:
        raise ValueError("norm_bound: needs the training set (ctx.batches[0]); online SGD has none")
    check_homogeneous(ctx.student.activation)
    X = as_float64(ctx.batches[0][0])
    n = X.shape[0]
    s = ctx.student
    P = path_norm(as_float64(s.W), as_float64(s.a), s.scale)
    P0 = path_norm(as_float64(ctx.student_init.W), as_float64(ctx.student_init.a),
                   ctx.student_init.scale)
    rms = rms_norm(X)
    rad = relu_rademacher_bound(P, rms, n)
    L = LIPSCHITZ_CONSTANTS[loss_name]
    return {
        "path_norm": P,
        "path_norm_init": P0,
        "input_rms": rms,
        "n": float(n),
        "rademacher": rad,
        "lipschitz": L,
        "bound": lipschitz_gap_bound(rad, L),
    }
