"""Recipe two-step: two giant steps at linear width — the outliers of W_2 and what a reused batch
learns (the two-step analysis with eta_k ~ N^(alpha_k), alpha_k in [0, 1/2)).

Convention found by simulation (docs/recipes/two-step.md): with fresh batches the rank-one parts
of both steps are mu_1 a (X_k^T y / n)^T / sqrt(N), with the *same* left vector a, so the plain
step-2 spike (order j = 0 of the power counting) does not add an outlier: it merges with the
step-1 spike into one outlier of strength ~ mu_1 ||a|| ||eta_1 u_1 + eta_2 u_2||. The count of W_2
is therefore 1 + floor(alpha_2 / (1/2 - alpha_1)): the formula counts the orders j >= 1 only
(:func:`twolayer.theory.two_step_spike_count`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from twolayer import plots
from twolayer.activations import get_activation
from twolayer.recipes.base import (
    Claim,
    Recipe,
    RecipeData,
    claim_close,
    claim_less,
    claim_true,
)
from twolayer.theory.spiked import bbp_outlier_singular_value, bbp_threshold
from twolayer.theory.spikes import two_step_spike_count

A1 = "train.steps[0].eta.alpha"
A2 = "train.steps[1].eta.alpha"
BATCH = "train.steps[1].batch"
LINK = "teacher.link.name"


def combined_spike(
    c: tuple[float, float],
    alphas: tuple[float, float],
    *,
    N: int,
    n: int,
    d: int,
    mu1: float,
    c1: float,
    y2: float,
    a_norm: float,
    reuse: bool = False,
) -> float:
    """Operator norm of the merged rank-one part of Delta W after two steps.

    Delta W ~ mu_1 a (eta_1 u_1 + eta_2 u_2)^T in Ba et al.'s units (eta_k = c_k N^(alpha_k)),
    u_k = X_k^T y / n with ||u_k||^2 -> c_1^2 + E[y^2] d / n and <u_1, u_2> -> c_1^2 for
    independent batches (||u||^2 for a reused one). Returns
    mu_1 ||a|| sqrt(eta_1^2 U^2 + eta_2^2 U^2 + 2 eta_1 eta_2 <u_1, u_2>).
    """
    e1, e2 = (ck * N**ak for ck, ak in zip(c, alphas, strict=True))
    U2 = c1**2 + y2 * d / n
    cross = U2 if reuse else c1**2
    return mu1 * a_norm * math.sqrt(e1**2 * U2 + e2**2 * U2 + 2 * e1 * e2 * cross)


def _table(data: RecipeData) -> pd.DataFrame:
    s = data.spec
    N, n, d = s["student"]["N"], s["train"]["n"], s["teacher"]["d"]
    mu1 = get_activation(s["student"]["activation"]).constants.mu1
    a_norm = s["student"]["a_scale"] * math.sqrt(N)
    frame = data.done.copy()
    frame["alpha1"] = frame[A1].astype(float) - 0.5  # Ba et al.'s exponent (see the YAML)
    frame["alpha2"] = frame[A2].astype(float) - 0.5
    frame["ratio"] = frame["alpha2"] / (0.5 - frame["alpha1"])
    frame["formula"] = [
        two_step_spike_count(a, b) for a, b in zip(frame["alpha1"], frame["alpha2"], strict=True)
    ]
    preds = []
    for _, row in frame.iterrows():
        link = get_activation(row[LINK]).constants
        preds.append(
            combined_spike(
                (row["train.steps[0].eta.c"], row["train.steps[1].eta.c"]),
                (row["alpha1"], row["alpha2"]),
                N=N,
                n=n,
                d=d,
                mu1=mu1,
                c1=link.mu1,
                y2=link.norm2,
                a_norm=a_norm,
                reuse=str(row[BATCH]) != "fresh",
            )
        )
    frame["theta"] = preds
    frame["theta_c"] = bbp_threshold(N / d)
    return frame


def claims(data: RecipeData) -> list[Claim]:
    t = _table(data)
    d = data.spec["teacher"]["d"]
    grid = t[t[LINK] == "tanh"]
    out = []
    above = grid[grid["theta"] > 1.5 * grid["theta_c"]]
    zero = above[above["formula"] == 0]
    out.append(
        claim_true(
            "plain-step-2-spike-merges",
            "where floor(alpha_2/(1/2 - alpha_1)) = 0 and the merged spike is above the BBP "
            "threshold, W_2 has exactly one outlier: the plain step-2 spike shares the left "
            "vector a with the step-1 spike (convention: count = 1 + floor)",
            float(zero["outliers.W_count"].mean()) if len(zero) else math.nan,
            bool(len(zero) and (zero["outliers.W_count"] == 1).all()),
            "1 outlier",
        )
    )
    excess = (grid["outliers.W_count"] - (1 + grid["formula"])).max()
    out.append(
        claim_true(
            "count-at-most-formula",
            "no run has more outliers than 1 + floor(alpha_2/(1/2 - alpha_1))",
            float(excess),
            bool(excess <= 0),
            "<= 0 (count - 1 - floor)",
        )
    )
    ratio = (grid["spectrum.dW_top"] / grid["theta"]).to_numpy()
    out.append(
        claim_close(
            "merged-spike-strength",
            "||Delta W||_op / (mu_1 ||a|| ||eta_1 u_1 + eta_2 u_2||) (mean over the grid)",
            float(ratio.mean()),
            1.0,
            atol=0.1,  # the rank-one approximation's remainder is O(N^-1/2) (0.04 at N = 1200)
        )
    )
    loc = above["outliers.W_top"] / bbp_outlier_singular_value(
        above["spectrum.dW_top"].to_numpy(), data.spec["student"]["N"] / d
    )
    out.append(
        claim_less(
            "outlier-location",
            "top singular value of W_2 = BBP location for strength ||Delta W||_op (largest "
            "relative error)",
            float(np.abs(loc - 1.0).max()),
            0.06,  # as one-step-spike: O(N^-1/2) fluctuation, 3% seen at N = 400
            "0 (relative error)",
        )
    )
    he2 = t[t[LINK] == "hermite"]
    # the reused-batch runs are reported in the figure and the doc, not claimed: at N <= 1000 their
    # overlap stays at the random level too (docs/recipes/two-step.md)
    fresh = he2[he2[BATCH].astype(str) == "fresh"]["overlaps.W_top_overlap"]
    out.append(
        claim_less(
            "he2-fresh-learns-nothing",
            "He_2 target (information exponent 2), fresh second batch: <v_1(W_2), beta>^2 "
            "(largest over seeds) stays at the random level",
            float(fresh.max()),
            10.0 / d,
            "< 10/d (a random direction: 1/d)",
        )
    )
    return out


def figures(data: RecipeData, folder: Path) -> list[Path]:
    t = _table(data)
    s = data.spec
    N, d = s["student"]["N"], s["teacher"]["d"]
    grid = t[t[LINK] == "tanh"]
    written = []
    fig, axes = plots.figure(3)
    ax = axes[0][0]
    stats = grid.groupby("ratio")["outliers.W_count"].agg(["mean", "std", "count"])
    stats["sem"] = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0)
    plots.measured(ax, stats, label="outliers of W_2 (tanh target)")
    r = np.linspace(0.0, max(3.0, grid["ratio"].max() * 1.1), 400)
    ax.step(
        r,
        1 + np.floor(r + 1e-12),
        where="post",
        color="k",
        lw=1.2,
        label="1 + floor(alpha_2/(1/2 - alpha_1))",
    )
    ax.set_xlabel("alpha_2 / (1/2 - alpha_1)")
    ax.set_ylabel("number of outliers")
    ax.legend(fontsize=7)

    ax = axes[0][1]
    ax.plot(grid["theta"], grid["spectrum.dW_top"], "o", ms=4, label="||Delta W||_op")
    ax.plot(grid["theta"], grid["outliers.W_top"], "s", ms=4, label="top singular value of W_2")
    th = np.linspace(grid["theta"].min() * 0.9, grid["theta"].max() * 1.1, 200)
    plots.theory_line(ax, th, th, label="merged spike (prediction)", ls="--")
    plots.theory_line(ax, th, bbp_outlier_singular_value(th, N / d), label="BBP location")
    ax.axhline(1 + math.sqrt(N / d), color="gray", ls=":", label="MP edge")
    ax.set_xlabel("predicted merged spike strength")
    ax.legend(fontsize=7)

    ax = axes[0][2]
    he2 = t[t[LINK] == "hermite"].copy()
    he2["batch"] = np.where(he2[BATCH].astype(str) == "fresh", "fresh", "reused")
    for i, (name, group) in enumerate(he2.groupby("batch")):
        ax.bar(
            i,
            group["overlaps.W_top_overlap"].mean(),
            yerr=group["overlaps.W_top_overlap"].std() if len(group) > 1 else 0,
            color=f"C{i}",
            label=f"{name} second batch",
        )
    ax.axhline(10.0 / d, color="k", ls=":", label="10/d")
    ax.set_xticks([0, 1], ["fresh", "reused"])
    ax.set_ylabel("<v_1(W_2), beta>^2, He_2 target")
    ax.legend(fontsize=7)
    written.append(plots.save(fig, folder, "two_step"))
    return written


RECIPE = Recipe(
    name="two-step",
    title="two giant steps at linear width: outliers of W_2 vs 1 + floor(alpha_2/(1/2-alpha_1)), "
    "the merged plain spike; fresh batches learn no He_2 direction",
    paper="Feature learning in linear-width two-layer networks: two vs. one step of gradient "
    "descent (2025); Ba et al. (2022) for the one-step spike",
    claims=claims,
    figures=figures,
)
