"""
Tutorial: port a notebook, sweep it, put the theory beside it
=============================================================

A paper's notebook usually holds its simulation as a loop of NumPy lines. This tutorial takes
such a loop — the one-step learning curve of Cui et al. (2024), "Asymptotics of feature learning
in two-layer networks after one gradient-step", at a small size — writes it as a twolayer spec,
checks that both give the same numbers (within seed noise: they draw from different random
streams), sweeps the spec over the readout size, and plots the simulation beside the theory that
twolayer computes for every run (the ``spiked_rf_theory`` measurement).

docs/notebook-port.md does the same at the paper's size (d = p = 2000) with
``examples/notebook_port.yaml``; the table there maps every notebook line to its spec key.
"""

# %%
# The notebook
# ------------
# A tanh network of width p on d-dimensional Gaussian inputs, rows of W_0 on the unit sphere,
# a_0 = 1/sqrt(p), f(x) = sum_i a_i tanh(<w_i, x>) / sqrt(p). One full-batch gradient step on
# W with n_0 = d/2 samples and learning rate eta = p on the square loss 0.5 (f - y)^2 averaged
# over the batch; then ridge regression (penalty 0.01 on the sum of squared errors) of the
# second layer on n fresh samples, and the test error on 5000 more.
#
# The published notebook draws W_0, theta and the step's batch once and repeats only the
# readout; at d = 200 that one draw moves the error by about 10% (from one draw to the next),
# more than the readout's seeds do. So that the comparison below has error bars that include
# every random draw, this version draws everything again for each seed. (The spec key
# ``draws: {fixed: [teacher, init, train]}`` reproduces the notebook's single draw;
# docs/notebook-port.md uses it.)

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from twolayer import load, run_spec
from twolayer.plots import mean_and_sem, measured, theory_line

d = p = 200
n0, lam, n_test = d // 2, 0.01, 5000
sizes = [40, 100, 160, 200, 240, 320, 400, 600]


def notebook_step(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """theta (d,) and W_1 (p, d) after the notebook's one step."""
    theta = rng.standard_normal(d)
    theta /= np.linalg.norm(theta)
    W0 = rng.standard_normal((p, d))
    W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    a0 = np.ones(p) / np.sqrt(p)
    X0 = rng.standard_normal((n0, d))
    y0 = np.tanh(X0 @ theta)
    pre = X0 @ W0.T  # (n0, p)
    residual = np.tanh(pre) @ a0 / np.sqrt(p) - y0
    # gradient of 0.5 mean (f - y)^2 in W: (1/n0) sum_j r_j (a_i / sqrt p) tanh'(<w_i, x_j>) x_j
    grad = ((residual[:, None] * (1 - np.tanh(pre) ** 2)) * (a0 / np.sqrt(p))).T @ X0 / n0
    return theta, W0 - p * grad  # eta = p


def notebook_test_error(theta: np.ndarray, W1: np.ndarray, n: int, seed: int) -> float:
    """The readout's test error at readout size n for one seed."""
    rng = np.random.default_rng(1000 + seed)
    X, X_test = rng.standard_normal((n, d)), rng.standard_normal((n_test, d))
    F, F_test = np.tanh(X @ W1.T) / np.sqrt(p), np.tanh(X_test @ W1.T) / np.sqrt(p)
    a = np.linalg.solve(F.T @ F + lam * np.eye(p), F.T @ np.tanh(X @ theta))  # no inverse
    return float(np.mean((F_test @ a - np.tanh(X_test @ theta)) ** 2))


seeds = 4
steps = [notebook_step(np.random.default_rng(seed)) for seed in range(seeds)]
notebook = {
    n: [notebook_test_error(theta, W1, n, seed) for seed, (theta, W1) in enumerate(steps)]
    for n in sizes
}

# %%
# The same experiment as a spec
# -----------------------------
# Each notebook line becomes a key; the comments say which. The spec is a dict here; the same
# text in a YAML file runs with ``twolayer run FILE``. ``sweep`` replaces the notebook's loop
# over readout sizes and ``seeds`` its loop over seeds. The runs of one seed share their trained
# student across the readout sizes (the step is computed once per seed).

spec = {
    "name": "notebook_port_tutorial",
    "seeds": seeds,
    "teacher": {"name": "single_index", "d": d, "link": "tanh"},  # y = tanh(<theta, x>)
    "student": {
        "N": p,
        "activation": "tanh",
        "w_init": "sphere",  # rows of W_0 on the unit sphere
        "a_init": "constant",
        "a_scale": p**-0.5,  # a_0 = 1/sqrt(p); the 1/sqrt(p) output scale is the default
    },
    "train": {
        "protocol": "giant_steps",
        "n": n0,
        "steps": [{"eta": {"c": 1.0, "alpha": 1.0, "S": "N"}}],  # eta = 1 * p^1
    },
    "readout": {"lambdas": [lam], "penalty": "sum"},  # ||y - F a||^2 + lam ||a||^2
    "evaluate": {"n_test": n_test, "train_errors": False},
    "measure": ["spiked_rf_theory"],  # Cui et al.'s prediction for each run
    "sweep": {"readout.n": sizes},
}
with tempfile.TemporaryDirectory() as folder:
    store = Path(folder) / "tutorial.sqlite"  # every run is stored as it finishes
    result = run_spec(spec, store=store, executor="serial")
    frame = load(store)  # one row per run: the spec's keys, the measurements, the status
print(f"{result.total} runs; measured: {[c for c in frame.columns if c.endswith('test_mse')]}")

# %%
# Same numbers?
# -------------
# The notebook and twolayer draw from different random streams, so they agree in distribution,
# not digit by digit: at each size the difference of the two means over four seeds should be
# within a few of its standard errors.

sim = mean_and_sem(frame, "readout.n", "readout.test_mse")
for n in sizes:
    mine = np.array(notebook[n])
    se = np.hypot(sim.loc[n, "sem"], mine.std(ddof=1) / np.sqrt(mine.size))
    print(f"n = {n:4d}: notebook {mine.mean():.4f}, twolayer {sim.loc[n, 'mean']:.4f}, "
          f"difference {(mine.mean() - sim.loc[n, 'mean']) / se:+.1f} standard errors")

# %%
# Theory beside simulation
# ------------------------
# The theory is computed for every run from the run's own W_0 and step (so it needs no
# separate script) and sits in the same row of the store; the line is its mean over the seeds.
# At this size the readout's error stays near that of few samples until n reaches about the
# width p, then falls as n grows; the theory follows it.

fig, ax = plt.subplots(figsize=(5.2, 3.4))
measured(ax, sim, label=f"twolayer ({seeds} seeds)")
nb = {n: (np.mean(v), np.std(v, ddof=1) / np.sqrt(len(v))) for n, v in notebook.items()}
ax.errorbar(list(nb), [m for m, _ in nb.values()], yerr=[s for _, s in nb.values()], fmt="x",
            color="C1", capsize=2, label=f"notebook ({seeds} seeds)")
line = mean_and_sem(frame, "readout.n", "spiked_rf_theory.test_mse")["mean"]
theory_line(ax, line.index, line.values, label="sRF theory (Cui et al. 2024)", ls="--")
ax.axvline(p, color="gray", ls=":", lw=0.8, label=r"$n = p$")
ax.set_xlabel(r"readout samples $n$")
ax.set_ylabel("test MSE")
ax.set_title(
    rf"one step $\eta = p$, ridge $\lambda = {lam}$: $d = p = {d}$, $n_0 = {n0}$", fontsize=9
)
ax.legend(fontsize=7)
fig.tight_layout()
