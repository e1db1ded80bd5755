"""Axis and legend labels in words and symbols for the metrics and sweep keys of a store.

``metric_label("readout.test_mse")`` is "test MSE, ridge readout" rather than the column name;
``sweep_label("train.steps[0].eta.c", runs)`` is "step size eta / sqrt(N)" when the runs scale
eta as c sqrt(N). Names the tables do not know get a readable fallback that still names the
column, so that it can be found in ``twolayer export``'s table.

Which sections a metric depends on (:func:`readout_free`): a measurement that reads only the
trained first layer W (its spectrum, outliers, overlaps, the one-step theory) has the same value
for every readout of one trained student (docs/engine.md, "Shared stages"), so a figure draws it
once instead of once per readout size.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

#: Labels of known metric columns (measurement.key).
METRICS: dict[str, str] = {
    "readout.test_mse": "test MSE, ridge readout",
    "readout.test_err01": "test error (0-1), ridge readout",
    "readout.train_mse": "training MSE, ridge readout",
    "network.test_mse": "test MSE, trained network",
    "network.test_err01": "test error (0-1), trained network",
    "random_features.test_mse": "test MSE, random features (W_0)",
    "random_features.test_err01": "test error (0-1), random features (W_0)",
    "linear.test_mse": "test MSE, linear ridge on x",
    "linear.test_err01": "test error (0-1), linear ridge on x",
    "ridge_theory.test_mse": "Gaussian equivalence given W",
    "ridge_theory.rf_test_mse": "Gaussian equivalence given W_0",
    "spiked_rf_theory.test_mse": "spiked-RF theory (Cui et al.)",
    "spiked_rf_theory.rf_test_mse": "spiked-RF theory, random features",
    "outliers.W_top": "top singular value s_1(W)",
    "outliers.W_count": "outliers of W beyond the MP edge",
    "outliers.F_count": "outliers of the features beyond the bulk",
    "spectrum.W_top": "top singular value s_1(W)",
    "spectrum.dW_top": "top singular value s_1(Delta W)",
    "spike_theory.W_top": "BBP prediction of s_1(W)",
    "spike_theory.W_count": "predicted outlier count",
    "overlaps.W_top_overlap": "<v_1(W), beta>^2",
    "overlaps.dW_top_overlap": "<v_1(Delta W), beta>^2",
    "overlaps.W_subspace_overlap": "overlap of top-r(W) with the teacher subspace",
    "overlaps.dW_subspace_overlap": "overlap of top-r(Delta W) with the teacher subspace",
    "spike_theory.W_top_overlap": "BBP prediction of <v_1(W), beta>^2",
    "spike_theory.dW_top_overlap": "prediction of <v_1(Delta W), beta>^2",
}

#: y-axis labels of the standard figures, by kind (twolayer.plots.standard).
KIND_AXES: dict[str, str] = {
    "errors": "test error",
    "overlaps": "squared overlap with the teacher",
    "outliers": "number of outliers of W",
}

#: Labels of known sweep keys (spec paths, docs/spec.md), and their short legend symbols.
SWEEP_KEYS: dict[str, tuple[str, str]] = {
    "teacher.d": ("input dimension d", "d"),
    "teacher.noise": ("label noise sigma", "sigma"),
    "teacher.label_noise": ("label-noise rate p", "p"),
    "student.N": ("width N", "N"),
    "student.w_scale": ("initial row norm of W_0", "|w_0|"),
    "student.a_scale": ("initial second-layer scale", "a_0"),
    "student.activation": ("activation sigma", "sigma"),
    "student.activation.name": ("activation sigma", "sigma"),
    "train.n": ("training batch size n", "n"),
    "train.lr": ("learning rate", "lr"),
    "train.steps": ("number of steps", "steps"),
    "train.weight_decay.W": ("weight decay on W", "wd"),
    "readout.n": ("readout batch size n_r", "n_r"),
    "readout.lambdas": ("ridge penalty lambda", "lambda"),
    "evaluate.n_test": ("test set size", "n_test"),
}

#: Measurements that read only the trained first layer (and teacher, init, training batches),
#: never the readout or its evaluation: their values do not depend on readout.* or evaluate.*.
READOUT_FREE = (
    "spectrum.", "outliers.", "overlaps.", "spike_theory.", "polynomial.", "step_update.",
    "neuron_alignment.", "teacher_neurons.", "function_space.", "kernel.",
)

_STEP_ETA = re.compile(r"^train\.steps\[(\d+)\]\.eta(?:\.c)?$")


def _constant(runs: pd.DataFrame | None, column: str, default: Any) -> Any:
    """The one value of ``column`` over ``runs`` (``default`` when absent or not constant)."""
    if runs is None or column not in runs:
        return default
    values = runs[column].dropna().unique()
    return values[0] if len(values) == 1 else default


def _power(size: str, alpha: float) -> str:
    if alpha == 0:
        return ""
    if alpha == 0.5:
        return f"sqrt({size})"
    if alpha == 1:
        return size
    return f"{size}^{alpha:g}"


def step_size_label(runs: pd.DataFrame | None, step: int = 0) -> str:
    """``step size eta / sqrt(N)`` for a swept ``train.steps[k].eta.c`` with eta = c S^alpha,
    from the runs' (constant) alpha and S; ``step size eta`` when alpha = 0."""
    prefix = f"train.steps[{step}].eta"
    alpha = float(_constant(runs, f"{prefix}.alpha", 0.0))
    size = str(_constant(runs, f"{prefix}.S", "1"))
    which = "" if step == 0 else f" of step {step + 1}"
    scale = _power(size, alpha) if size != "1" else ""
    return f"step size{which} eta / {scale}" if scale else f"step size{which} eta"


def sweep_label(key: str, runs: pd.DataFrame | None = None) -> str:
    """Axis label of a sweep key: words and symbol; unknown keys read as their last part with
    the key in parentheses (``noise_rate (teacher.noise_rate)``)."""
    step = _STEP_ETA.match(key)
    if step:
        return step_size_label(runs, int(step.group(1)))
    if key in SWEEP_KEYS:
        return SWEEP_KEYS[key][0]
    last = re.sub(r"\[\d+\]", "", key).rsplit(".", 1)[-1].replace("_", " ")
    return f"{last} ({key})"


def sweep_symbol(key: str, runs: pd.DataFrame | None = None) -> str:
    """Short name of a sweep key for a legend entry (``n_r = 120``)."""
    step = _STEP_ETA.match(key)
    if step:
        return "c" if int(step.group(1)) == 0 else f"c_{int(step.group(1)) + 1}"
    if key in SWEEP_KEYS:
        return SWEEP_KEYS[key][1]
    return re.sub(r"\[\d+\]", "", key).rsplit(".", 1)[-1]


def metric_label(column: str) -> str:
    """Legend label of a metric column: :data:`METRICS`, else its key in words with the
    measurement in parentheses (``W top (outliers)``)."""
    if column in METRICS:
        return METRICS[column]
    measurement, _, key = column.partition(".")
    return f"{key.replace('_', ' ')} ({measurement})" if key else column


def readout_free(column: str) -> bool:
    """Whether a metric's measurement reads only the first layer (:data:`READOUT_FREE`)."""
    return column.startswith(READOUT_FREE)


def depends_on(runs: pd.DataFrame, column: str, key: str, others: list[str]) -> bool:
    """Whether ``column`` changes with sweep key ``key`` in ``runs``.

    By name first: a first-layer measurement (:func:`readout_free`) does not depend on
    ``readout.*`` or ``evaluate.*``. Otherwise by the data: runs that differ only in ``key``
    (same seed and same values of the ``others`` swept keys) are compared, and the column
    depends on ``key`` when any such group holds more than one value (relative 1e-9: runs that
    share a trained student share these numbers up to rounding).
    """
    if readout_free(column) and key.startswith(("readout.", "evaluate.")):
        return False
    by = [c for c in [*others, "seed"] if c in runs and c != key]
    values = runs[[*by, column]].dropna(subset=[column])
    if values.empty:
        return False
    if not by:
        spread = values[column].agg(["min", "max"]).to_frame().T
    else:
        grouped = values.astype({c: str for c in by if c != "seed"}).groupby(by)[column]
        spread = grouped.agg(["min", "max"])
    scale = spread.abs().max(axis=1).clip(lower=1e-300)
    return bool(((spread["max"] - spread["min"]) > 1e-9 * scale).any())


#: Labels of the columns of a training trajectory (``twolayer.load_trajectory``).
TRAJECTORY: dict[str, str] = {
    "step": "training step",
    "loss": "training loss",
    "train_loss": "training loss",
    "test_loss": "test loss",
    "test_mse": "test MSE",
    "test_err01": "test error (0-1)",
    "update_norm_W": "||W_{t+1} - W_t||_F",
    "eta": "step size eta",
}


def trajectory_label(column: str) -> str:
    """Axis label of a trajectory column (:data:`TRAJECTORY`, else its name in words)."""
    return TRAJECTORY.get(column, column.replace("_", " "))
