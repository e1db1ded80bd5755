"""What the theory of one giant step predicts for the run's own sizes (Ba et al. 2022; BBP):
the strength of the step's rank-one part, the outlier it creates in W_1's spectrum and the
overlaps of the top right singular vectors of Delta W and W_1 with the target.

The keys carry the names of the measured quantities they predict (``W_top`` for
``outliers.W_top``, ``W_top_overlap`` and ``dW_top_overlap`` for ``overlaps``, ``dW_top`` for
``spectrum.dW_top``), so a sweep that also measures those has theory beside measurement, and
``twolayer plot`` draws these as lines.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twolayer.activations import constants_at_scales
from twolayer.measure._common import require_single_index
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, register_measurement
from twolayer.theory.spiked import bbp_outlier_singular_value, bbp_overlaps, bbp_threshold
from twolayer.theory.spikes import one_step_spike_overlap, one_step_spike_strength


def _check(config: Any, o: dict[str, Any]) -> None:
    """One giant step on W with the square loss, and a single-index teacher."""
    train = getattr(config, "train", None)
    if train is None or train.protocol != "giant_steps" or len(train.steps) != 1:
        raise ValueError("spike_theory: needs train.protocol 'giant_steps' with one step")
    if train.steps[0].layer == "a" or train.loss != "square":
        raise ValueError("spike_theory: the step must train W on the square loss")
    require_single_index(config, "spike_theory")


@register_measurement("spike_theory", check=_check)
def spike_theory(ctx: MeasureContext) -> dict[str, Any]:
    """Predicted rank-one strength, BBP outlier and overlaps of the run's one giant step.

    With s the output scale, r the rms row norm of W_0 (E[sigma'(<w, x>)] = mu_1(r) / r, the
    constants of z -> sigma(r z)), a the second layer at init, n the step's batch, c = N / d and
    the bulk of W_0 of entry variance v (measured on W_0): strength t = eta s E[sigma'] ||a||
    sqrt(c_1^2 + E[y^2] d/n) (:func:`twolayer.theory.spikes.one_step_spike_strength`); the BBP
    threshold, outlier location and right overlap of a rank-one spike t on that bulk
    (:mod:`twolayer.theory.spiked`, scale d v); the direction overlap c_1^2 / (c_1^2 + E[y^2]
    d/n) of X^T y / n with beta. First order in the step, with f ~ 0 at init (a second layer of
    scale 1/sqrt(N), as in Ba et al.): with a = N(0, 1) the residual's f term makes the rest of
    the step as large as its rank-one part.

    Returns
    -------
    dict
        ``strength`` (t), ``dW_top`` (= t: the top singular value of Delta W), ``threshold``,
        ``W_count`` (1 above the threshold, else 0), ``W_top`` (the outlier, or the bulk edge
        below threshold), ``dW_top_overlap`` (direction overlap), ``W_top_overlap`` (BBP right
        overlap x direction overlap).
    """
    W0 = as_float64(ctx.student_init.W)
    N, d = W0.shape
    n = int(ctx.batches[0][0].shape[-2])  # the batch the step used (its own n, or train.n)
    if ctx.trained is None:
        raise ValueError(
            "spike_theory: needs the run's training result (the step size it used); run it "
            "through the pipeline (run_once), which passes it to the measurements"
        )
    eta = float(ctx.trained.etas[0])  # the step size the protocol used
    student = ctx.student_init
    r = math.sqrt(float(np.mean(np.sum(W0**2, axis=1))))
    mu1 = float(constants_at_scales(student.activation, np.array([r]))[1][0])
    link = ctx.teacher.link.constants
    y2 = link.norm2 + float(ctx.teacher.noise) ** 2
    a_norm = float(np.linalg.norm(as_float64(student.a)))
    t = float(one_step_spike_strength(eta * float(student.scale), mu1 / r, a_norm, link.mu1, y2,
                                      n / d))
    bulk = d * float(np.mean(W0**2))  # d x the entry variance of W_0
    c = N / d
    threshold = bbp_threshold(c, bulk)
    direction = one_step_spike_overlap(link.mu1, y2, n / d)
    return {
        "strength": t,
        "dW_top": t,
        "threshold": threshold,
        "W_count": float(t > threshold),
        "W_top": float(bbp_outlier_singular_value(t, c, bulk)),
        "dW_top_overlap": direction,
        "W_top_overlap": float(bbp_overlaps(t, c, bulk)[1]) * direction,
    }
