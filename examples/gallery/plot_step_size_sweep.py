"""
A sweep of the step size, with the BBP theory lines
===================================================

The same one-step experiment as a sweep through the engine: a spec with a ``sweep`` section,
run by :func:`twolayer.run_spec` into a store (a SQLite file; here a temporary one) and read
back as a pandas DataFrame by :func:`twolayer.load`. Seeds that share a step size share nothing
else; each point is the mean over three seeds with its standard error.

The theory lines come from the theory layer alone: the rank-one strength grows linearly in the
step (:func:`twolayer.theory.one_step_spike_strength`), and through the BBP transition
(:func:`twolayer.theory.bbp_outlier_singular_value`, :func:`twolayer.theory.bbp_overlaps`)
the top singular value of W_1 leaves the bulk edge and its singular vector turns towards beta.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from twolayer import get_activation, load, run_spec
from twolayer.plots import mean_and_sem, measured, theory_line
from twolayer.theory import (
    bbp_outlier_singular_value,
    bbp_overlaps,
    bbp_threshold,
    one_step_spike_overlap,
)

d, N, n = 100, 200, 300
steps = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]
spec = {
    "name": "step_size_sweep",
    "seeds": 3,
    "teacher": {"name": "single_index", "d": d, "link": "tanh", "noise": 0.0},
    "student": {"N": N, "activation": "relu", "a_scale": N**-0.5},
    "train": {
        "protocol": "giant_steps",
        "n": n,
        "steps": [{"eta": {"c": 1.0, "alpha": 0.5, "S": "N"}}],  # c is swept below
    },
    "readout": {"n": n, "lambdas": [1e-2]},
    "evaluate": {"n_test": 1000, "train_errors": False},
    "measure": [{"name": "spectrum", "features_spectrum": False}, "overlaps", "spike_theory"],
    "sweep": {"train.steps[0].eta.c": steps},
}
with tempfile.TemporaryDirectory() as folder:
    store = Path(folder) / "step_size_sweep.sqlite"
    run_spec(spec, store=store, executor="serial")
    frame = load(store)
print(f"{len(frame)} runs, {frame['status'].eq('done').sum()} done")

# %%
# The strength of the step's rank-one part is linear in c (eta = c sqrt(N) and the output scale
# 1/sqrt(N)): its slope is read off the ``spike_theory`` records, then the BBP formulas give the
# theory on a fine grid. W_0 has entries of variance 1/d, so the bulk's scale is 1. The singular
# vector's overlap with beta is the BBP overlap with the spike's direction X^T y / n times that
# direction's own overlap with beta, c_1^2 / (c_1^2 + E[y^2] d / n), with c_1 = E[z tanh(z)]
# and E[y^2] = E[tanh(z)^2] for z ~ N(0, 1), from the link's Gaussian constants.

key = "train.steps[0].eta.c"
stepped = frame[frame[key] > 0]
slope = float((stepped["spike_theory.strength"] / stepped[key]).mean())
grid = np.linspace(0.0, max(steps), 400)
ratio = N / d
top = bbp_outlier_singular_value(slope * grid, ratio)
link = get_activation("tanh").constants
direction = one_step_spike_overlap(link.mu1, link.norm2, n / d)
overlap = bbp_overlaps(slope * grid, ratio)[1] * direction

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8.4, 3.2))
measured(ax0, mean_and_sem(frame, key, "spectrum.W_top"), label="simulation (3 seeds)")
theory_line(ax0, grid, top, label="BBP theory")
ax0.axhline(1 + np.sqrt(ratio), color="gray", ls=":", lw=0.8, label=r"bulk edge $1 + \sqrt{N/d}$")
ax0.axvline(bbp_threshold(ratio) / slope, color="C3", ls="--", lw=0.8, label="BBP threshold")
ax0.set_xlabel(r"step size $c$, $\eta = c\sqrt{N}$")
ax0.set_ylabel(r"top singular value of $W_1$")
ax0.legend(fontsize=7)
measured(ax1, mean_and_sem(frame, key, "overlaps.W_top_overlap"), label="simulation (3 seeds)")
theory_line(ax1, grid, overlap, label="BBP theory")
theory_line(ax1, steps, mean_and_sem(frame, key, "spike_theory.W_top_overlap")["mean"],
            label="spike_theory (per run)", color="C2", lw=0, marker="x")
ax1.set_xlabel(r"step size $c$, $\eta = c\sqrt{N}$")
ax1.set_ylabel(r"overlap $\langle v_1(W_1), \beta\rangle^2$")
ax1.legend(fontsize=7)
fig.suptitle(f"one giant step: d = {d}, N = {N}, n = {n}, relu student, tanh teacher, 3 seeds")
fig.tight_layout()
