"""
One giant step: a spike beside the Marchenko–Pastur bulk
==========================================================

One full-batch gradient step of size eta = c sqrt(N) on the first layer of a two-layer relu
network (Ba et al. 2022) adds, to leading order, a rank-one matrix to W_0. Its strength is
predicted (:func:`twolayer.theory.one_step_spike_strength`); above the BBP threshold it pulls one
singular value of W_1 out of the Marchenko–Pastur bulk, to the position
:func:`twolayer.theory.bbp_outlier_singular_value` gives, and that singular vector aligns with
the teacher's direction beta (:func:`twolayer.theory.bbp_overlaps`).

Here d = 200, N = 400, a step on n = 600 samples with c = 8, one seed: the ``spike_theory``
measurement puts the predictions in the same record as the measured spectrum.
"""

import matplotlib.pyplot as plt
import numpy as np

from twolayer import RunConfig, run_once
from twolayer.plots import spectrum_histogram

d, N, n = 200, 400, 600
config = RunConfig.model_validate(
    {
        "teacher": {"name": "single_index", "d": d, "link": "tanh", "noise": 0.0},
        # a ~ N(0, 1/N): the small second layer of Ba et al., so that f(x) ~ 0 at the step
        "student": {"N": N, "activation": "relu", "a_scale": N**-0.5},
        "train": {
            "protocol": "giant_steps",
            "n": n,
            "steps": [{"eta": {"c": 8.0, "alpha": 0.5, "S": "N"}}],  # eta = 8 sqrt(N)
        },
        "readout": {"n": n, "lambdas": [1e-2]},
        "evaluate": {"n_test": 2000, "train_errors": False},
        "measure": [
            {"name": "spectrum", "features_spectrum": False},
            "overlaps",
            "spike_theory",
        ],
    }
)
result = run_once(config, seed=0)
s = result.scalars

# %%
# The singular values of W_0 (before the step) fill the Marchenko–Pastur bulk of an N x d
# matrix with entries of variance 1/d; those of W_1 keep the bulk and gain one outlier where the
# BBP formula puts it (dashed red line).

sv0 = np.linalg.svd(result.student_init.W, compute_uv=False)
sv1 = result.arrays["spectrum.W_sv"]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8.4, 3.2), sharey=True)
spectrum_histogram(ax0, sv0, N=N, d=d, bins=40, label=r"$W_0$ measured")
spectrum_histogram(
    ax1, sv1, N=N, d=d, bins=40, label=r"$W_1$ measured",
    predicted_outliers=[s["spike_theory.W_top"]],
)
ax0.set_title(r"before the step: $W_0$")
ax1.set_title(r"after one step $\eta = 8\sqrt{N}$: $W_1$")
ax1.legend(fontsize=7, loc="upper right")
fig.suptitle(f"singular values, d = {d}, N = {N}, n = {n}, relu student, tanh teacher")
fig.tight_layout()

# %%
# Measured beside predicted (one seed at moderate size: the outlier sits a few percent below its
# limit, a finite-size offset that shrinks with d; docs/recipes/one-step-spike.md measures it).

print(f"BBP threshold of the strength   {s['spike_theory.threshold']:.3f}")
print(f"strength of the rank-one part   {s['spike_theory.strength']:.3f} predicted, "
      f"top singular value of W_1 - W_0 {s['spectrum.dW_top']:.3f} measured")
print(f"top singular value of W_1       {s['spectrum.W_top']:.3f} measured, "
      f"{s['spike_theory.W_top']:.3f} predicted")
print(f"overlap <v_1, beta>^2           {s['overlaps.W_top_overlap']:.3f} measured, "
      f"{s['spike_theory.W_top_overlap']:.3f} predicted")
