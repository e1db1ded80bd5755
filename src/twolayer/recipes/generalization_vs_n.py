"""Recipe generalization-vs-n: the generalisation gap of a two-layer relu network trained with a
Lipschitz loss (logistic), measured at several n and two d, against the norm-based bound of
:mod:`twolayer.theory.generalization` (path-norm Rademacher complexity; Neyshabur, Tomioka &
Srebro 2015; Golowich, Rakhlin & Shamir 2018).

The bound is E gap <= 2 L R with R <= 2 P rms(x) / sqrt(n), P the path norm. Two versions are
drawn and checked:

- per run ("data-dependent"): P = the trained network's own path norm, rms = the training set's
  (measurement ``norm_bound``, key ``norm_bound.bound``);
- fixed radius: P_max = the largest path norm over every run of one d, rms = sqrt(E ||x||^2)
  = sqrt(d noise^2 + ||mu||^2); this is a bound for the class that contains every trained network
  of that d, and it decays like n^-1/2 by construction.

The n^-1/2 and the absence of d are properties of the *bound*; the measured gap is the realised
quantity, and the claims compare the two without asserting that the gap follows the bound's rate.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from twolayer import plots
from twolayer.recipes.base import (
    Claim,
    Recipe,
    RecipeData,
    claim_close,
    claim_greater,
    claim_less,
    claim_true,
)
from twolayer.theory.generalization import (
    LIPSCHITZ_CONSTANTS,
    lipschitz_gap_bound,
    relu_rademacher_bound,
)

GAP = "generalisation_gap.gap"
BOUND = "norm_bound.bound"
PATH = "norm_bound.path_norm"
#: tolerance on the gap's fitted slope against the bound's -1/2: the claim is that the gap falls
#: at least as fast as n^-1/2; 0.1 allows for the seed-to-seed scatter of the mean gap at the
#: largest n (standard error 20-40% of the mean at the quick sizes), which moves a slope fitted
#: over a factor 16 in n by up to ~0.1.
SLOPE_TOL = 0.1
#: consecutive means (n -> 2n) may rise by at most this many standard errors of the difference
MONOTONE_Z = 2.0
#: the d/n collapse is checked at n/d >= 10, where both d are out of the interpolating regime
#: (train loss near 0 at d = 40, n <= 200); its tolerance 0.3 is about 3 standard errors of a
#: ratio of two 6-seed means (each 5-15% at the quick sizes)
MATCHED_MIN_N_OVER_D = 10.0
COLLAPSE_RTOL = 0.3


def _table(data: RecipeData) -> pd.DataFrame:
    frame = data.done.copy()
    frame["d"] = frame["teacher.d"].astype(int)
    frame["n"] = frame["train.n"].astype(int)
    frame["ratio"] = frame[GAP] / frame[BOUND]
    return frame


def _stats(part: pd.DataFrame, column: str) -> pd.DataFrame:
    stats = part.groupby("n")[column].agg(["mean", "std", "count"])
    stats["sem"] = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0)
    return stats.drop(columns="std")


def fit_slope(
    n: np.ndarray, values: np.ndarray, sem: np.ndarray | None = None
) -> tuple[float, float, float]:
    """Slope, its standard error and intercept of log(values) vs log(n), over the points with
    values > 0; weighted least squares with weights (value / sem)^2 (the inverse variance of
    log(value) by the delta method) when ``sem`` is given, so a mean that is not resolved from 0
    by its standard error counts little."""
    n, values = np.asarray(n, float), np.asarray(values, float)
    keep = values > 0
    x, y = np.log(n[keep]), np.log(values[keep])
    if x.size < 2:
        return math.nan, math.nan, math.nan
    if sem is None:
        w = np.ones_like(x)
    else:
        rel = np.asarray(sem, float)[keep] / values[keep]
        w = 1.0 / np.maximum(rel, 1e-3) ** 2
    sw = np.sqrt(w)
    A = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
    resid = (y - A @ coef) * sw
    dof = max(1, x.size - 2)
    xbar = float(np.sum(w * x) / np.sum(w))
    se = math.sqrt(float(resid @ resid) / dof / float(np.sum(w * (x - xbar) ** 2)))
    return float(coef[0]), se, float(coef[1])


def _input_rms(data: RecipeData, d: int) -> float:
    """sqrt(E ||x||^2) = sqrt(d noise^2 + ||mu||^2) for the Gaussian-mixture teacher."""
    teacher = data.spec["teacher"]
    noise = float(teacher.get("noise", 1.0))
    return math.sqrt(d * noise**2 + float(teacher.get("mean_norm", 3.0)) ** 2)


def fixed_radius_bound(data: RecipeData, part: pd.DataFrame, n: np.ndarray) -> np.ndarray:
    """2 L R(P_max, sqrt(E ||x||^2), n) with P_max the largest path norm over the runs in part."""
    d = int(part["d"].iloc[0])
    L = LIPSCHITZ_CONSTANTS[data.spec["train"]["loss"]]
    p_max = float(part[PATH].max())
    rms = _input_rms(data, d)
    return np.array([lipschitz_gap_bound(relu_rademacher_bound(p_max, rms, int(k)), L)
                     for k in n])


def claims(data: RecipeData) -> list[Claim]:
    frame = _table(data)
    out: list[Claim] = []
    dims = sorted(frame["d"].unique())
    means: dict[int, pd.Series] = {}
    for d in dims:
        part = frame[frame["d"] == d]
        gap = _stats(part, GAP)
        means[d] = gap["mean"]
        ns = gap.index.to_numpy(float)
        rise = (gap["mean"].diff() / np.sqrt(gap["sem"] ** 2 + gap["sem"].shift() ** 2)).iloc[1:]
        out.append(claim_less(
            f"gap-decreases-d{d}",
            f"d = {d}: the mean gap (over {int(gap['count'].min())} seeds) decreases from "
            f"{gap['mean'].iloc[0]:.3g} at n = {int(ns[0])} to {gap['mean'].iloc[-1]:.2g} at "
            f"n = {int(ns[-1])}; measured: the largest rise from n to 2n, in standard errors of "
            "the difference",
            float(rise.max()), MONOTONE_Z,
            f"no significant rise (< {MONOTONE_Z:g} SE; negative = every step falls)",
        ))
        out.append(claim_less(
            f"below-bound-d{d}",
            f"d = {d}: every run's gap is below its own path-norm bound 4 L P rms / sqrt(n) "
            f"(bound from {part[BOUND].min():.3g} to {part[BOUND].max():.3g}); measured: the "
            "largest gap / bound over runs",
            float(part["ratio"].max()), 1.0, "< 1 (the bound is an upper bound)",
        ))
        fixed = fixed_radius_bound(data, part, ns)
        out.append(claim_true(
            f"below-fixed-bound-d{d}",
            f"d = {d}: the mean gap is below the fixed-radius bound (P_max = "
            f"{part[PATH].max():.3g}, rms = sqrt(E||x||^2) = {_input_rms(data, d):.3g}) at "
            "every n; measured: the largest mean gap / bound over n",
            float((gap["mean"].to_numpy() / fixed).max()),
            bool(np.all(gap["mean"].to_numpy() < fixed)), "< 1 at every n", "none",
        ))
        b_slope, _, _ = fit_slope(ns, fixed)
        out.append(claim_close(
            f"fixed-bound-slope-d{d}",
            f"d = {d}: fitted log-log slope of the fixed-radius bound vs n (-1/2 by "
            "construction: P_max and rms do not depend on n)",
            b_slope, -0.5, atol=1e-9,
        ))
        bound = _stats(part, BOUND)
        pb_slope, _, _ = fit_slope(ns, bound["mean"].to_numpy())
        p_slope, _, _ = fit_slope(ns, _stats(part, PATH)["mean"].to_numpy())
        out.append(claim_less(
            f"run-bound-slope-d{d}",
            f"d = {d}: fitted slope of the mean per-run bound vs n = -1/2 + the slope of the "
            f"trained path norm (measured {p_slope:+.2f}); the path norm does not grow with n, "
            "so the data-dependent bound falls at least like n^-1/2",
            pb_slope, -0.5 + 0.05, "-1/2 + path-norm slope (<= -1/2 + 0.05)",
        ))
        slope, se, _ = fit_slope(ns, gap["mean"].to_numpy(), gap["sem"].to_numpy())
        out.append(claim_less(
            f"gap-slope-d{d}",
            f"d = {d}: fitted log-log slope of the mean gap vs n (weights (mean/sem)^2, standard "
            f"error {se:.2f}) is at most the bound's -1/2: the realised gap falls at least as "
            "fast as the bound",
            slope, -0.5 + SLOPE_TOL, f"<= -1/2 + {SLOPE_TOL:g}",
        ))
    if len(dims) >= 2:
        lo, hi = dims[0], dims[-1]
        ratio = (means[hi] / means[lo]).dropna()
        out.append(claim_greater(
            "gap-grows-with-d",
            f"the realised gap depends on d (the bound's d-independence is about norms): mean gap "
            f"at d = {hi} over mean gap at d = {lo}, smallest over n (ratios "
            + ", ".join(f"{r:.2g}" for r in ratio) + ")",
            float(ratio.min()), 1.0, "> 1 at every n",
        ))
        k = hi / lo
        sems = {d: _stats(frame[frame["d"] == d], GAP)["sem"] for d in (lo, hi)}
        pairs = []
        for n_lo in means[lo].index:
            n_hi = round(n_lo * k)
            if n_lo / lo < MATCHED_MIN_N_OVER_D or n_hi not in means[hi].index:
                continue
            g_lo, g_hi = means[lo][n_lo], means[hi][n_hi]
            if g_lo > 2 * sems[lo][n_lo] and g_hi > 2 * sems[hi][n_hi]:
                pairs.append((n_lo / lo, g_hi / g_lo))
        if pairs:
            geo = float(np.exp(np.mean(np.log([r for _, r in pairs]))))
            out.append(claim_close(
                "gap-scales-like-d-over-n",
                f"as measured, gap ~ c(n/d) d / n: at matched n/d >= {MATCHED_MIN_N_OVER_D:g} "
                f"the gap at d = {hi} is {k:g} times the gap at d = {lo}, i.e. n gap / d agrees; "
                "measured: geometric mean over matched n/d of gap(d_hi, k n) / gap(d_lo, n) "
                "(n/d: ratio " + ", ".join(f"{m:g}: {r:.2f}" for m, r in pairs)
                + "; only means resolved from 0 by 2 SE)",
                geo, 1.0, rtol=COLLAPSE_RTOL,
            ))
    return out


def figures(data: RecipeData, folder: Path) -> list[Path]:
    frame = _table(data)
    fig, axes = plots.figure(3, width=4.6, height=4.8)
    ax_gap, ax_scaled, ax_path = axes[0]
    for k, d in enumerate(sorted(frame["d"].unique())):
        part = frame[frame["d"] == d]
        color = f"C{k}"
        gap = _stats(part, GAP)
        ns = gap.index.to_numpy(float)
        grid = np.geomspace(ns.min(), ns.max(), 50)
        pos = gap[gap["mean"] > 0]
        plots.measured(ax_gap, pos, label=f"d = {d}: measured gap", color=color)
        slope, _, intercept = fit_slope(ns, gap["mean"].to_numpy(), gap["sem"].to_numpy())
        ax_gap.plot(grid, np.exp(intercept) * grid**slope, color=color, lw=1,
                    label=f"fit: slope {slope:.2f}")
        bound = _stats(part, BOUND)
        ax_gap.plot(ns, bound["mean"], color=color, ls=":", marker="v", ms=3,
                    label="per-run bound (own P)")
        plots.theory_line(ax_gap, grid, fixed_radius_bound(data, part, grid), color=color,
                          ls="--", label="fixed-radius bound ~ n^-1/2")
        scaled = pos.copy()
        scaled[["mean", "sem"]] = scaled[["mean", "sem"]].mul(scaled.index / d, axis=0)
        scaled.index = scaled.index / d
        plots.measured(ax_scaled, scaled, label=f"d = {d}", color=color)
        plots.measured(ax_path, _stats(part, PATH), label=f"d = {d}", color=color)
    for ax in (ax_gap, ax_scaled, ax_path):
        ax.set_xscale("log")
        ax.set_xlabel("n (training samples)")
    ax_scaled.set_xlabel("n / d")
    ax_gap.set_yscale("log")
    ax_gap.set_ylabel("test loss - train loss (logistic)")
    ax_gap.set_title("generalisation gap and path-norm bounds")
    ax_gap.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax_scaled.set_ylabel("n * gap / d")
    ax_scaled.set_title("gap rescaled: n * gap / d against n / d")
    ax_scaled.legend(fontsize=7)
    ax_path.set_yscale("log")
    ax_path.set_ylabel("path norm (1/N) sum |a_j| ||w_j||")
    ax_path.set_title("path norm of the trained network")
    ax_path.legend(fontsize=7)
    return [plots.save(fig, folder, "gap_vs_n")]


RECIPE = Recipe(
    name="generalization-vs-n",
    title="generalisation gap vs n with a Lipschitz loss, below the path-norm Rademacher bound "
    "(the bound ~ n^-1/2; the measured gap falls faster and grows with d)",
    paper="Neyshabur, Tomioka & Srebro (2015), Norm-based capacity control in neural networks; "
    "Golowich, Rakhlin & Shamir (2018), Size-independent sample complexity of neural networks; "
    "Bartlett & Mendelson (2002), Rademacher and Gaussian complexities",
    claims=claims,
    figures=figures,
)
