"""Recipe adversarial-one-step: a single gradient step flips the sign of a random two-layer
network, with a perturbation of relative size ~ 1/sqrt(d) (Bubeck, Cherapanamjeri, Gidel &
Tachet des Combes 2021), for undercomplete (N << d) and overcomplete (N >> d) widths, smooth
(tanh) and relu activations.

The measurement is :func:`twolayer.measure.adversarial.adversarial` (keys
``adversarial.success_rate``, ``adversarial.median_ratio``, ``adversarial.flip_rate_eta1``, arrays
``adversarial.ratio``): for each point x the smallest eta <= 2 with
sign f(x + delta) != sign f(x), delta = -eta f grad f / ||grad f||^2, and ratio = ||delta|| / ||x||.

Gaussian heuristic for the constant: over x and the network, f(x) ~ N(0, E psi(G)^2) and
||grad f(x)|| -> sqrt(E psi'(G)^2) (Bubeck et al. 2021), and the flipping eta is ~ 1 (f is nearly
linear along the step), so the median of ratio * sqrt(d) is about
0.6745 sqrt(E psi^2 / E psi'^2) (0.6745 = median of |N(0, 1)|).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from twolayer import plots
from twolayer.activations import gaussian_expectation, get_activation
from twolayer.recipes.base import (
    Claim,
    Recipe,
    RecipeData,
    claim_close,
)

MEDIAN_ABS_NORMAL = 0.6744897501960817
#: k of the tolerances: k standard errors over networks (docs/recipes/README.md).
K_SE = 3.0
#: Finite-size terms, measured in quick mode on networks (seeds) 200-215 and 300-315 (32 per
#: size; none of them the recipe's own 0-7 nor the fresh ranges 1000, 2000, 3000): the
#: deviation of the 32-network estimate from the prediction, beyond which only k standard errors
#: of the checked run are allowed. Keys: "slope-<regime>-<activation>" (fitted slope + 1/2),
#: "constant-<activation>" (relative deviation of the pooled median from the heuristic),
#: "success" (1 - success rate at the largest d, pooled). Full size: FINITE_SIZE_FULL below.
FINITE_SIZE_QUICK: dict[str, float] = {
    # 32-network fits: -0.5446 (SE 0.027), -0.5305 (0.013), -0.5322 (0.034), -0.4905 (0.014)
    "slope-undercomplete-relu": 0.045,
    "slope-undercomplete-tanh": 0.031,
    "slope-overcomplete-relu": 0.032,
    "slope-overcomplete-tanh": 0.010,
    # pooled medians over 256 runs: +3.2% (relu), +0.6% (tanh)
    "constant-relu": 0.032,
    "constant-tanh": 0.006,
    # 0 of 12800 points unflipped at the largest d (128 networks x 100 points): the 3-sigma
    # (99.73%) upper limit of the rate, -ln(0.0027) / 12800
    "success": 4.6e-4,
}
#: Standard deviation of one network's value, same calibration: "constant-<activation>" (one
#: network's median ratio sqrt(d), relative to the heuristic), "success" (one network's
#: 1 - success rate at the largest d).
NETWORK_SD_QUICK: dict[str, float] = {
    # per run, over the 256 runs of an activation (every d and regime; the spread of pooled
    # medians of 8-network blocks, 0.042 relu and 0.006 tanh, agrees or is smaller)
    "constant-relu": 0.345,
    "constant-tanh": 0.122,
    "success": 0.0,  # no network of the calibration left a point unflipped at the largest d
}
#: The same quantities at the full size (200 points per network, d up to 3200), measured the
#: same way on 32 full-mode networks, seeds 200-231 (twolayer reproduce adversarial-one-step
#: --seeds 200, 208, 216, 224; scripts/calibration/adversarial_one_step.py, which also gives the
#: quick numbers above from the quick calibration stores), 2026-12-02. Before, the full mode used
#: the quick terms.
FINITE_SIZE_FULL: dict[str, float] = {
    # 32-network fits: -0.5229 (SE 0.013), -0.4977 (0.004), -0.5011 (0.017), -0.4981 (0.005)
    "slope-undercomplete-relu": 0.023,
    "slope-undercomplete-tanh": 0.0023,
    "slope-overcomplete-relu": 0.0012,
    "slope-overcomplete-tanh": 0.0019,
    # pooled medians over 384 runs: +3.2% (relu, as at the quick size), +1.5% (tanh)
    "constant-relu": 0.033,
    "constant-tanh": 0.015,
    # 0 of 25600 points unflipped at the largest d (128 networks x 200 points)
    "success": 2.4e-4,
}
NETWORK_SD_FULL: dict[str, float] = {
    "constant-relu": 0.314,  # per run, over the 384 runs of an activation
    "constant-tanh": 0.078,
    "success": 0.0,
}
FINITE_SIZE = {True: FINITE_SIZE_QUICK, False: FINITE_SIZE_FULL}
NETWORK_SD = {True: NETWORK_SD_QUICK, False: NETWORK_SD_FULL}
CALIBRATION_SEEDS = {True: "networks (seeds) 200-215 and 300-315, quick mode",
                     False: "networks (seeds) 200-231, full mode"}
#: Demoted to observations (docs/recipes/adversarial-one-step.md, "What does not hold"): each
#: failed on a fresh seed range at the calibrated tolerance, for the reason given.
DEMOTED = {
    "slope-overcomplete-relu": "failed on seeds 2000-2007 (-0.70 against -0.5 +- 0.19): a relu "
    "network's offset mu_0 sum a / sqrt(N) makes the per-network medians heavy-tailed, so the "
    "regression standard error understates the scatter of the slope",
    "constant-tanh": "failed on the recipe's own seeds (+5.5% against 5.2%): over six fresh "
    "ranges the pooled median is +1.9% +- 2.3% off the heuristic, a larger spread than the "
    "calibration's 1.5% and a bias of the heuristic (median flipping eta 1.00-1.06)",
}


def _activation_column(frame: pd.DataFrame) -> str:
    for col in ("student.activation.name", "student.activation"):
        if col in frame:
            return col
    raise KeyError("no student.activation column in the results")


def _table(data: RecipeData) -> pd.DataFrame:
    frame = data.done.copy()
    frame["activation"] = frame[_activation_column(frame)]
    frame["d"] = frame["teacher.d"].astype(float)
    frame["regime"] = np.where(frame["student.N"] < frame["teacher.d"], "undercomplete",
                               "overcomplete")
    return frame


def heuristic_constant(activation: str) -> float:
    """0.6745 sqrt(E psi(G)^2 / E psi'(G)^2): the predicted median of ratio * sqrt(d)."""
    act = get_activation(activation)
    m2 = gaussian_expectation(lambda z: act(z) ** 2, act.kinks)
    g2 = gaussian_expectation(lambda z: act.derivative(z) ** 2, act.kinks)
    return MEDIAN_ABS_NORMAL * math.sqrt(m2 / g2)


def fit_slope(frame: pd.DataFrame) -> tuple[float, float, float]:
    """Least-squares slope, its standard error and intercept of log(median_ratio) vs log(d),
    one point per run (seed)."""
    x = np.log(frame["d"].to_numpy())
    y = np.log(frame["adversarial.median_ratio"].to_numpy())
    A = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(1, len(x) - 2)
    se = math.sqrt(float(resid @ resid) / dof / float(((x - x.mean()) ** 2).sum()))
    return float(coef[0]), se, float(coef[1])


def pooled_median(data: RecipeData, frame: pd.DataFrame) -> float:
    """Median over every point of every run of ratio * sqrt(d)."""
    values = []
    for _, run in frame.iterrows():
        ratio = data.arrays(run["id"])["adversarial.ratio"]
        values.append(ratio[np.isfinite(ratio)] * math.sqrt(run["d"]))
    return float(np.median(np.concatenate(values)))


def constant_table(frame: pd.DataFrame, data: RecipeData) -> pd.DataFrame:
    """One row per run: its median ratio sqrt(d) relative to the heuristic constant, minus 1."""
    out = frame[["activation", "d", "seed"]].copy()
    const = {act: heuristic_constant(act) for act in out["activation"].unique()}
    out["rel"] = [
        row["adversarial.median_ratio"] * math.sqrt(row["d"]) / const[row["activation"]] - 1.0
        for _, row in frame.iterrows()
    ]
    return out


def largest_d(frame: pd.DataFrame) -> pd.Series:
    """Runs at the largest d of their regime and activation."""
    return frame.groupby(["regime", "activation"])["d"].transform("max") == frame["d"]


def claims(data: RecipeData) -> list[Claim]:
    frame = _table(data)
    out: list[Claim] = []
    at_largest = frame[largest_d(frame)]
    unflipped = 1.0 - at_largest["adversarial.success_rate"]
    nets = int(at_largest.groupby(["regime", "activation"]).size().min())
    quick = bool(data.quick)
    finite, network_sd, where = FINITE_SIZE[quick], NETWORK_SD[quick], CALIBRATION_SEEDS[quick]
    tol = K_SE * network_sd["success"] / math.sqrt(len(at_largest)) + finite["success"]
    out.append(claim_close(
        "all-flipped-at-largest-d",
        "at the largest d of each regime and activation one step (eta <= 2) flips every point: "
        f"fraction not flipped, mean over the {len(at_largest)} networks ({nets} per group)",
        float(unflipped.mean()), 0.0, atol=tol,
        source="Bubeck et al. 2021 (Daniely & Schacham 2020 for N << d): with probability "
        "-> 1 as d -> infinity a single step flips the sign",
        derivation=f"{K_SE:g} SE over networks ({K_SE:g} x {network_sd['success']:.3g} / "
        f"sqrt({len(at_largest)})) + finite-size term {finite['success']:.3g}; "
        f"calibrated on {where}",
    ))
    for regime in ("undercomplete", "overcomplete"):
        for act in sorted(frame["activation"].unique()):
            part = frame[(frame["regime"] == regime) & (frame["activation"] == act)]
            slope, se, _ = fit_slope(part)
            ratio = part["student.N"] / part["teacher.d"]
            key = f"slope-{regime}-{act}"
            if key in DEMOTED:
                continue
            fs = finite[key]
            out.append(claim_close(
                key,
                f"{regime} ({act}, N/d = {ratio.iloc[0]:g}, d = {part['d'].min():g}-"
                f"{part['d'].max():g}): fitted log-log slope of the median ||delta||/||x|| vs d "
                f"(one point per network; regression standard error {se:.3f})",
                slope, -0.5, atol=K_SE * se + fs,
                source="Bubeck et al. 2021: ||delta|| = O(1) while ||x|| = sqrt(d), so "
                "||delta||/||x|| ~ d^-1/2",
                derivation=f"{K_SE:g} x the fit's standard error over the run's networks "
                f"({K_SE * se:.3f}) + finite-size term {fs:.3f}; calibrated on {where}",
            ))
    for act in sorted(frame["activation"].unique()):
        part = frame[frame["activation"] == act]
        key = f"constant-{act}"
        if key in DEMOTED:
            continue
        predicted = heuristic_constant(act)
        fs = finite[key]
        rtol = K_SE * network_sd[key] / math.sqrt(len(part)) + fs
        out.append(claim_close(
            key,
            f"{act}: median over all points, d and networks of ||delta||/||x|| * sqrt(d) = "
            "0.6745 sqrt(E psi^2 / E psi'^2) (Gaussian heuristic)",
            pooled_median(data, part), predicted, rtol=rtol,
            source="closed form: f(x) ~ N(0, E psi^2), ||grad f|| -> sqrt(E psi'^2), flipping "
            "eta ~ 1 (Gaussian heuristic, Bubeck et al. 2021), evaluated for the activation",
            derivation=f"relative: {K_SE:g} SE over the {len(part)} runs ({K_SE:g} x "
            f"{network_sd[key]:.3g} / sqrt({len(part)})) + finite-size term {fs:.3f}; "
            f"calibrated on {where}",
        ))
    return out


def figures(data: RecipeData, folder: Path) -> list[Path]:
    frame = _table(data)
    fig, axes = plots.figure(2, width=5.0, height=4.0)
    for ax, regime in zip(axes[0], ("undercomplete", "overcomplete"), strict=True):
        part_r = frame[frame["regime"] == regime]
        ds = np.geomspace(part_r["d"].min(), part_r["d"].max(), 50)
        for k, act in enumerate(sorted(part_r["activation"].unique())):
            part = part_r[part_r["activation"] == act]
            stats = part.groupby("d")["adversarial.median_ratio"].agg(["mean", "std", "count"])
            stats["sem"] = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0)
            slope, _, intercept = fit_slope(part)
            plots.measured(ax, stats, label=f"{act}: median ||delta||/||x||", color=f"C{k}")
            ax.plot(ds, np.exp(intercept) * ds**slope, color=f"C{k}", lw=1,
                    label=f"fit: slope {slope:.2f}")
            plots.theory_line(ax, ds, heuristic_constant(act) / np.sqrt(ds), color=f"C{k}",
                              ls=":", label=f"{heuristic_constant(act):.2f} / sqrt(d)")
        ratio = part_r["student.N"].iloc[0] / part_r["teacher.d"].iloc[0]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted(part_r["d"].unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xticks([], minor=True)
        ax.set_xlabel("d")
        ax.set_ylabel("||delta|| / ||x|| (flipping step)")
        ax.set_title(f"{regime}: N = {ratio:g} d")
        ax.legend(fontsize=7)
    return [plots.save(fig, folder, "ratio_vs_d")]


RECIPE = Recipe(
    name="adversarial-one-step",
    title="one gradient step flips the sign of a random two-layer net with ||delta||/||x|| "
    "~ d^-1/2 (under- and overcomplete, relu and tanh)",
    paper="Bubeck, Cherapanamjeri, Gidel & Tachet des Combes (2021), A single gradient step "
    "finds adversarial examples on random two-layers neural networks",
    claims=claims,
    figures=figures,
)
