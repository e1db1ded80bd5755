"""Activation patterns: which neurons changed their on/off pattern on a probe since init."""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.measure._common import probe
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, register_measurement


def active(student: Any, X: Any) -> np.ndarray:
    """Boolean (n, N) array: neuron i is active (<w_i, x> > 0) on sample x."""
    return as_float64(student.preactivations(X)) > 0


def class_selectivity(F: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Contrast of the mean activation of each neuron between the classes +1 and -1.

    Parameters
    ----------
    F : (n, N) array
        Activations sigma(X W^T).
    labels : (n,) array of +-1

    Returns
    -------
    (N,) array in [-1, 1]: ``(m(+1) - m(-1)) / (|m(+1)| + |m(-1)|)``, 0 where both means are 0,
    NaN if a class is absent from the probe.
    """
    pos, neg = labels > 0, labels < 0
    if not (pos.any() and neg.any()):
        return np.full(F.shape[1], np.nan)
    m_pos, m_neg = F[pos].mean(axis=0), F[neg].mean(axis=0)
    denom = np.abs(m_pos) + np.abs(m_neg)
    out = np.zeros(F.shape[1])
    ok = denom > 0
    out[ok] = (m_pos[ok] - m_neg[ok]) / denom[ok]
    return out


def _check(config: Any, o: dict[str, Any]) -> None:
    if not 0.0 <= o["selectivity"] <= 1.0:
        raise ValueError(
            f"activation_patterns: selectivity must be in [0, 1], got {o['selectivity']}"
        )


@register_measurement("activation_patterns", per_step=True, check=_check)
def activation_patterns(
    ctx: MeasureContext,
    n_probe: int = 1000,
    probe_stream: int = 0,
    selectivity: float = 0.1,
    per_neuron: bool = False,
) -> dict[str, Any]:
    """Fraction of neurons whose activation pattern on a probe changed since initialisation.

    A neuron is *active* on x when ``<w_i, x> > 0`` (the half-space of relu-like activations;
    for any activation it is the sign pattern of the preactivation). On the probe X (n, d) (the
    same samples at every call: stream ("measure", probe_stream)), the pattern of neuron i is the
    vector of signs over the n samples.

    For classification teachers (labels +-1), the *per-class partition*: with m_i(c) the mean
    activation sigma(<w_i, x>) of neuron i over the class-c probe samples, its selectivity is the
    contrast ``s_i = (m_i(+1) - m_i(-1)) / (|m_i(+1)| + |m_i(-1)|)`` in [-1, 1] (0 when both are
    0); a neuron prefers +1 if s_i > ``selectivity``, -1 if s_i < -``selectivity``, and is neutral
    otherwise. Mean activations rather than activity rates: on XOR clusters a relu neuron along
    mu_1 is active on half of each class, but its mean activation is ~ ||mu|| / 2 on class +1
    against ~ 0.4 noise on class -1.

    Parameters
    ----------
    n_probe : int
    probe_stream : int
    selectivity : float
        Threshold in [0, 1] of the class partition.
    per_neuron : bool
        Also return the arrays ``changed_fraction`` (N,) and, for classification,
        ``selectivity`` (N,).

    Returns
    -------
    dict
        ``frac_neurons_changed`` (neurons with at least one sign change), ``frac_entries_changed``
        (changed (sample, neuron) pairs), ``mean_active`` and ``init_mean_active`` (fraction of
        active pairs); for classification teachers: ``frac_prefer_pos``, ``frac_prefer_neg``,
        ``frac_neutral``, ``frac_prefer_matches_a`` (among non-neutral neurons, the fraction
        whose preferred class has the sign of their outer weight a_i; NaN if none), and
        ``init_``-prefixed ``frac_prefer_pos`` / ``frac_prefer_neg``.
    """
    X, y = probe(ctx, n_probe, probe_stream)
    S = active(ctx.student, X)
    S0 = active(ctx.student_init, X)
    changed = S != S0
    per = changed.mean(axis=0)
    out: dict[str, Any] = {
        "frac_neurons_changed": float(np.mean(per > 0)),
        "frac_entries_changed": float(changed.mean()),
        "mean_active": float(S.mean()),
        "init_mean_active": float(S0.mean()),
    }
    if per_neuron:
        out["changed_fraction"] = per
    if ctx.teacher.task == "classification":
        labels = as_float64(y)
        a = as_float64(ctx.student.a)
        for prefix, student in (("", ctx.student), ("init_", ctx.student_init)):
            sel = class_selectivity(as_float64(student.features(X)), labels)
            prefer_pos = sel > selectivity
            prefer_neg = sel < -selectivity
            out[f"{prefix}frac_prefer_pos"] = float(np.mean(prefer_pos))
            out[f"{prefix}frac_prefer_neg"] = float(np.mean(prefer_neg))
            if prefix == "":
                out["frac_neutral"] = float(np.mean(~prefer_pos & ~prefer_neg))
                decided = prefer_pos | prefer_neg
                out["frac_prefer_matches_a"] = (
                    float(np.mean(np.sign(sel[decided]) == np.sign(a[decided])))
                    if decided.any()
                    else float("nan")
                )
                if per_neuron:
                    out["selectivity"] = sel
    return out
