"""Recipe online-sgd-plateau: the plateau of online SGD in the teacher-student setting and its
escape (Saad & Solla 1995; Biehl, Riegler & Wohler 1996; Goldt et al. 2019), simulated at two
sizes against the ODEs of :mod:`twolayer.theory.online_sgd`.

An erf soft committee machine (K = 2 units, second layer fixed at v = 1) learns an erf committee
teacher (M = 2, v* = 1, label noise 0.1) by one-pass SGD. Every run records its order parameters
and the population error computed from them (``order_parameters``, per step: no test-sample
noise) and the ODE's prediction from its own initial overlaps (``online_sgd_theory``).

Claims (docs/recipes/online-sgd-plateau.md):

- ``plateau-height``: the simulated error on the plateau (median over the records where the
  run's own ODE is within 5% of the fixed point) = the error at the symmetric fixed point of the
  ODEs at the run's learning rate (solved by :func:`plateau_fixed_point`).
- ``final-error``: the simulated error at the end (mean of the last 5 records) = the ODE's at the
  same times (the asymptotic error of constant-step SGD with label noise, O(lr zeta^2)).

Tolerances: 3 standard errors over the runs plus a finite-size term, both measured on the
calibration seeds 200-215 in quick mode (module constants below), never on the checked seeds.

Not a claim: the escape time against log(1 / delta_0), delta_0 = |R00 - R01 - R10 + R11| / 2 at
initialisation. The ODEs give a slope of 17.3 (:func:`ode_escape_slope`); the simulations, whose
escape is seeded by SGD noise as much as by delta_0 at every d, give 5.9 +- 1.4 over 32 quick
runs and 6.8 +- 2.0 over 32 full runs. A claim of the ODE's slope was calibrated (seeds
200-215: 16.3 +- 4.0, a spread of 7.8 between 8-run batches) and then withdrawn: its tolerance
admitted any slope between -7 and 42 (docs/recipes/online-sgd-plateau.md, "What does not
hold"). The figure shows the escape times against log(1 / delta_0) with the ODE's line.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from twolayer import plots
from twolayer.activations import get_activation
from twolayer.recipes.base import Claim, Recipe, RecipeData, claim_close
from twolayer.theory.online_sgd import (
    GaussianIntegrals,
    OnlineSGDProblem,
    integrate_online_sgd,
    plateau_fixed_point,
    unstable_rate,
)

EG = "order_parameters.eg"
ODE_EG = "online_sgd_theory.eg_curve"
ODE_R = "online_sgd_theory.R_curve"
#: The plateau window: records where the run's own ODE is within this relative distance of the
#: fixed point's error.
PLATEAU_BAND = 0.05
#: Escape: the error falls below this fraction of the plateau height.
ESCAPE_FRACTION = 0.5
#: Records averaged for the final error.
FINAL_RECORDS = 5

#: Tolerance terms per mode (True: quick, False: full), measured on calibration seeds that no
#: claim is checked on (scripts/calibration/online_sgd_plateau.py). Keys: claim id -> (per-run
#: SD, finite-size term = the mean deviation). Quick: seeds 200-215 (four batches of the recipe's
#: 4 seeds x 2 sizes = 32 runs): plateau height SD 4.8e-4, mean deviation from the fixed point
#: -4.0e-4 (-1.5%: the window catches the plateau on its way down); final error SD 3.9e-4 (the
#: late escapers at d = 800 have not settled), mean 1.1e-4. Full (d = 500, 2000): seeds 200-215
#: (16 seeds x 2 sizes = 32 runs, 2026-12-02; before, the full mode used the quick terms):
#: plateau SD 3.4e-4, mean -4.85e-4 (-1.8%); final error SD 1.25e-4, mean +1.07e-4.
CALIBRATION = {
    True: {"plateau-height": (4.8e-4, 4.0e-4), "final-error": (3.9e-4, 1.1e-4)},
    False: {"plateau-height": (3.4e-4, 4.85e-4), "final-error": (1.25e-4, 1.07e-4)},
}
CALIBRATION_SEEDS = {True: "calibration seeds 200-215 (quick mode)",
                     False: "calibration seeds 200-215 (full mode)"}
#: Initial specialisation overlaps at which the ODE's escape slope is taken (log(1/delta_0) =
#: 4 and 6, the middle of the runs' range 3-7); drawn in the figure, not claimed.
SLOPE_DELTAS = (math.exp(-4.0), math.exp(-6.0))


def _problem(spec: dict) -> OnlineSGDProblem:
    teacher, student, train = spec["teacher"], spec["student"], spec["train"]
    d, b = int(teacher["d"]), int(train["n"])
    act = get_activation(**student["activation"])
    g = get_activation(**teacher["activation"])
    return OnlineSGDProblem(GaussianIntegrals(act, g), np.eye(int(teacher["r"])),
                            np.asarray(teacher["weights"], float), noise=teacher["noise"],
                            eta=float(train["eta"]) * d / b, batch=1, d=1)


def ode_escape_slope(spec: dict, plateau: float) -> tuple[float, list[float]]:
    """d t_escape / d log(1 / delta_0) of the ODEs from the spec's initialisation in the
    d -> infinity limit: Q_0 = w_scale^2 I, R_0 = delta_0 (specialisation pattern
    [[1, -1], [-1, 1]] / 2, so that |R00 - R01 - R10 + R11| / 2 = delta_0), at the two
    :data:`SLOPE_DELTAS`; returns the slope and the two escape times."""
    problem = _problem(spec)
    K = int(spec["student"]["N"])
    Q0 = float(spec["student"]["w_scale"]) ** 2 * np.eye(K)
    pattern = 0.5 * np.array([[1.0, -1.0], [-1.0, 1.0]])
    t_end = float(spec["train"]["steps"]) * float(spec["train"]["n"]) / float(spec["teacher"]["d"])
    times = np.linspace(0.0, 2 * t_end, 1001)
    escapes = []
    for delta in SLOPE_DELTAS:
        sol = integrate_online_sgd(problem, Q0, delta * pattern, np.ones(K), times)
        escapes.append(_crossing(times, sol.eg, ESCAPE_FRACTION * plateau))
    logs = [math.log(1.0 / delta) for delta in SLOPE_DELTAS]
    return (escapes[1] - escapes[0]) / (logs[1] - logs[0]), escapes


def theory_of(spec: dict) -> dict[str, float]:
    """The fixed point and its unstable rate for the recipe's spec (erf K = M = 2, v = v* = 1):
    ``eg`` (plateau height), ``Q``, ``C``, ``R``, ``rate`` (largest eigenvalue of the Jacobian
    there), ``slope`` (:func:`ode_escape_slope`) and ``lr`` (the ODE learning rate eta d / b,
    the same at every size of the recipe). Computed once per spec (claims and figures share
    it)."""
    return dict(_theory_of(json.dumps(spec, sort_keys=True)))


@functools.lru_cache(maxsize=8)
def _theory_of(key: str) -> tuple[tuple[str, float], ...]:
    spec = json.loads(key)
    problem = _problem(spec)
    K = int(spec["student"]["N"])
    fixed = plateau_fixed_point(problem, K)
    slope, _ = ode_escape_slope(spec, fixed["eg"])
    out = {**fixed, "rate": unstable_rate(problem, K, fixed), "slope": slope, "lr": problem.eta}
    return tuple(out.items())


def _crossing(t: np.ndarray, y: np.ndarray, level: float) -> float:
    """First time y falls below ``level`` (linear interpolation between records), NaN if never."""
    below = np.flatnonzero(y < level)
    if below.size == 0 or below[0] == 0:
        return math.nan
    j = below[0]
    return float(t[j - 1] + (t[j] - t[j - 1]) * (y[j - 1] - level) / (y[j - 1] - y[j]))


def run_table(data: RecipeData, plateau: float) -> pd.DataFrame:
    """One row per run: d, seed, the simulated plateau height, escape and final errors, the
    ODE's escape and final errors, and delta_0."""
    rows = []
    for _, row in data.done.iterrows():
        traj = data.trajectory(row["id"])
        arrays = data.arrays(row["id"])
        d, b = float(row["teacher.d"]), float(row["train.n"])
        t = traj["step"].to_numpy(float) * b / d
        sim = traj[EG].to_numpy(float)
        ode = np.asarray(arrays[ODE_EG], float)
        window = np.abs(ode / plateau - 1.0) < PLATEAU_BAND
        first = traj.iloc[0]
        delta0 = 0.5 * abs(first["order_parameters.R_0_0"] - first["order_parameters.R_0_1"]
                           - first["order_parameters.R_1_0"] + first["order_parameters.R_1_1"])
        rows.append({
            "d": d, "seed": int(row["seed"]), "id": row["id"],
            "plateau_sim": float(np.median(sim[window])) if window.any() else math.nan,
            "window": int(window.sum()),
            "escape_sim": _crossing(t, sim, ESCAPE_FRACTION * plateau),
            "escape_ode": _crossing(t, ode, ESCAPE_FRACTION * plateau),
            "log_inv_delta0": math.log(1.0 / delta0),
            "final_sim": float(sim[-FINAL_RECORDS:].mean()),
            "final_ode": float(ode[-FINAL_RECORDS:].mean()),
        })
    return pd.DataFrame(rows)


def slope_and_se(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """OLS slope of y on x and its standard error (residual variance / sum of squares)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc))
    resid = y - y.mean() - slope * xc
    se = float(np.sqrt(resid @ resid / max(len(x) - 2, 1) / (xc @ xc)))
    return slope, se


def _sem(values: np.ndarray) -> float:
    values = np.asarray(values, float)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def claims(data: RecipeData) -> list[Claim]:
    theory = theory_of(data.spec)
    table = run_table(data, theory["eg"])
    n = len(table)
    cal = CALIBRATION[bool(data.quick)]
    where = CALIBRATION_SEEDS[bool(data.quick)]
    out = []

    plateau = table["plateau_sim"].to_numpy(float)
    sd, finite = cal["plateau-height"]
    tol = 3 * sd / math.sqrt(n) + finite
    out.append(claim_close(
        "plateau-height",
        f"error on the plateau (median over the records where the run's ODE is within "
        f"{PLATEAU_BAND:.0%} of the fixed point; mean over {n} runs at two sizes) = the error of "
        "the symmetric fixed point of the ODEs",
        float(np.mean(plateau)), theory["eg"], atol=tol,
        source=f"plateau_fixed_point at lr = {theory['lr']:g}, label noise included (Saad & "
        f"Solla 1995 with the O(lr) term): Q = {theory['Q']:.4f}, C = {theory['C']:.4f}, R = "
        f"{theory['R']:.4f}",
        derivation=f"3 x per-run SD {sd:.2g} / sqrt({n}) + finite-size term {finite:.2g} (the "
        f"mean deviation), both on {where}"))

    final = (table["final_sim"] - table["final_ode"]).to_numpy(float)
    sd, finite = cal["final-error"]
    tol = 3 * sd / math.sqrt(n) + finite
    out.append(claim_close(
        "final-error",
        f"final error (mean of the last {FINAL_RECORDS} records, t near the end) minus the "
        f"ODE's from the run's own init, mean over {n} runs",
        float(np.mean(final)), 0.0, atol=tol,
        source="online_sgd_theory (the ODEs integrated from the run's W_0, a_0 and teacher)",
        derivation=f"3 x per-run SD {sd:.2g} / sqrt({n}) + finite-size term {finite:.2g}, "
        f"{where}"))
    return out


def _best_overlap(R: np.ndarray) -> np.ndarray:
    """max_m R_im for each student unit i (the overlap with the teacher unit it specialises
    on; the ODE and the simulation may pick different permutations)."""
    return np.max(R, axis=-1)


def figures(data: RecipeData, folder: Path) -> list[Path]:
    theory = theory_of(data.spec)
    table = run_table(data, theory["eg"])
    sizes = sorted(table["d"].unique())
    fig, axes = plots.figure(3, width=4.8)
    ax_e, ax_r, ax_t = axes[0]
    for k, d in enumerate(sizes):
        for j, (_, row) in enumerate(table[table["d"] == d].iterrows()):
            traj = data.trajectory(row["id"])
            arrays = data.arrays(row["id"])
            b = float(data.done.set_index("id").loc[row["id"], "train.n"])
            t = traj["step"].to_numpy(float) * b / d
            label = f"d = {d:g}" if j == 0 else None
            ax_e.plot(t, traj[EG], color=f"C{k}", lw=0.9, alpha=0.8, label=label)
            ax_e.plot(t, arrays[ODE_EG], color=f"C{k}", ls="--", lw=0.9,
                      label=f"ODE, d = {d:g}" if j == 0 else None)
            R_sim = traj[[f"order_parameters.R_{i}_{m}" for i in range(2) for m in range(2)]]
            best = _best_overlap(R_sim.to_numpy(float).reshape(-1, 2, 2))
            ode_best = _best_overlap(np.asarray(arrays[ODE_R], float))
            for i in range(2):
                ax_r.plot(t, best[:, i], color=f"C{k}", lw=0.8, alpha=0.7,
                          label=label if i == 0 else None)
                ax_r.plot(t, ode_best[:, i], color=f"C{k}", ls="--", lw=0.8)
    ax_e.axhline(theory["eg"], color="k", ls=":", lw=1.0, label="fixed point")
    ax_e.set_yscale("log")
    ax_e.set_xlabel("t = steps x batch / d")
    ax_e.set_ylabel("generalisation error eps_g")
    ax_e.legend(fontsize=6)
    ax_r.axhline(theory["R"], color="k", ls=":", lw=1.0, label="fixed point R")
    ax_r.set_xlabel("t = steps x batch / d")
    ax_r.set_ylabel("max_m R_im (each student unit)")
    ax_r.legend(fontsize=6)
    # escape time against the initial specialisation: simulation, the ODE from each run's own
    # W_0, and the ODE's slope from the spec's start (not a claim: see the module docstring)
    for k, d in enumerate(sizes):
        part = table[table["d"] == d]
        ax_t.plot(part["log_inv_delta0"], part["escape_sim"], "o", color=f"C{k}", ms=4,
                  label=f"simulation, d = {d:g}")
        ax_t.plot(part["log_inv_delta0"], part["escape_ode"], "x", color=f"C{k}", ms=5,
                  label=f"ODE from the run's W_0, d = {d:g}")
    x = np.array([table["log_inv_delta0"].min(), table["log_inv_delta0"].max()])
    centre = np.mean(table["escape_ode"] - theory["slope"] * table["log_inv_delta0"])
    ax_t.plot(x, centre + theory["slope"] * x, "k--", lw=1.0,
              label=f"ODE slope {theory['slope']:.3g}")
    sim_slope, sim_se = slope_and_se(table["log_inv_delta0"], table["escape_sim"])
    ax_t.set_title(f"simulated slope {sim_slope:.3g} +- {sim_se:.2g}", fontsize=8)
    ax_t.set_xlabel("log(1 / delta_0), delta_0 = |R00 - R01 - R10 + R11| / 2 at init")
    ax_t.set_ylabel("escape time (eps_g < plateau / 2)")
    ax_t.legend(fontsize=6)
    return [plots.save(fig, folder, "error_and_overlaps")]


RECIPE = Recipe(
    name="online-sgd-plateau",
    title="online SGD, erf committee machine K = M = 2: plateau at the symmetric fixed point, "
    "escape, final error, simulation vs ODE at two sizes",
    paper="Saad & Solla, On-line learning in soft committee machines (PRE 1995); Biehl, Riegler "
    "& Wohler (J. Phys. A 1996); Goldt, Advani, Saxe, Krzakala & Zdeborova, Dynamics of "
    "stochastic gradient descent for two-layer neural networks in the teacher-student setup "
    "(NeurIPS 2019)",
    claims=claims,
    figures=figures,
)
