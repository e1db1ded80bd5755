"""
A learning curve: the readout after one step against random features
====================================================================

Test error of the ridge readout against the number n of readout samples, for the network after
one giant step (features sigma(W_1 x)) and for random features (sigma(W_0 x), no step), with
the Gaussian-equivalence prediction for each run's own W beside the measurement (the
``ridge_theory`` measurement: the deterministic equivalent of ridge regression on the features'
Gaussian equivalent, :func:`twolayer.theory.rf_ridge_prediction`).

The seeds of one sweep point share one trained student across the readout sizes (the readout
batches of a seed are nested), so the curve costs one step per seed.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from twolayer import load, run_spec
from twolayer.plots import mean_and_sem, measured, plain_log_ticks, theory_line

d, N = 100, 200
sizes = [50, 100, 200, 400, 800]
spec = {
    "name": "learning_curve",
    "seeds": 2,
    "teacher": {"name": "single_index", "d": d, "link": "tanh", "noise": 0.1},
    "student": {"N": N, "activation": "relu", "a_scale": 1.0},
    "train": {
        "protocol": "giant_steps",
        "n": 3 * d,
        "steps": [{"eta": {"c": 2.0, "alpha": 0.5, "S": "N"}}],  # eta = 2 sqrt(N)
    },
    "readout": {"lambdas": [1e-3, 1e-2, 1e-1], "baselines": ["random_features"]},
    "evaluate": {"n_test": 2000, "train_errors": False},
    "measure": [{"name": "ridge_theory", "random_features": True}],
    "sweep": {"readout.n": sizes},
}
with tempfile.TemporaryDirectory() as folder:
    store = Path(folder) / "learning_curve.sqlite"
    run_spec(spec, store=store, executor="serial")
    frame = load(store)

# %%
# Each point is the mean over two seeds (error bar: standard error) at the best lambda of the
# grid; the theory lines are the prediction for the same runs' W, averaged the same way. The
# noise floor is the Bayes risk 0.1^2. (The prediction costs about half a second per run: the
# activation's Gaussian constants at each row norm of W, by quadrature. This is why this example
# keeps two seeds.)

fig, ax = plt.subplots(figsize=(5.0, 3.4))
for column, theory, label, color in [
    ("readout.test_mse", "ridge_theory.test_mse", "after one step", "C0"),
    ("random_features.test_mse", "ridge_theory.rf_test_mse", "random features", "C1"),
]:
    measured(ax, mean_and_sem(frame, "readout.n", column), label=f"{label}: simulation",
             color=color)
    line = mean_and_sem(frame, "readout.n", theory)["mean"]
    theory_line(ax, line.index, line.values, label=f"{label}: theory", color=color, ls="--")
ax.axhline(0.1**2, color="gray", ls=":", lw=0.8, label="Bayes risk")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel(r"readout samples $n$")
ax.set_ylabel("test MSE")
ax.set_title(
    rf"learning curve: $d = {d}$, $N = {N}$, $\eta = 2\sqrt{{N}}$, tanh teacher", fontsize=9
)
plain_log_ticks(ax)  # 50, 100, 200, ... rather than 5 x 10^1, 10^2, 2 x 10^2
ax.legend(fontsize=7)
fig.tight_layout()

best = frame.groupby("readout.n")[["readout.test_mse", "ridge_theory.test_mse"]].mean()
print(best.round(4).to_string())
