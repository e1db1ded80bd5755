"""Recipe two-step: two giant steps at linear width — the outliers of W_2 and what a reused batch
learns (the two-step analysis with eta_k ~ N^(alpha_k), alpha_k in [0, 1/2)).

Convention found by simulation (docs/recipes/two-step.md): with fresh batches the rank-one parts
of both steps are mu_1 a (X_k^T y / n)^T / sqrt(N), with the *same* left vector a, so the plain
step-2 spike (order j = 0 of the power counting) does not add an outlier: it merges with the
step-1 spike into one outlier of strength ~ mu_1 ||a|| ||eta_1 u_1 + eta_2 u_2||. The count of W_2
is therefore 1 + floor(alpha_2 / (1/2 - alpha_1)): the formula counts the orders j >= 1 only
(:func:`twolayer.theory.two_step_spike_count`).

Batch reuse: on the batch of step 1 each neuron's pre-activation carries a term ~ a_k y_i, so the
order-1 part of the second gradient is ~ a^2 (X_0^T T(y) / n)^T with T(y) ~ y^2: a new spike
whose right vector has a beta component E[T(y) z]. That is non-zero for a target of information
exponent 2 that is not even (here relu(z - 1) without its mean and linear part) and zero for
every even target (He_2), whatever T. A fresh batch has no such term.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from twolayer import plots
from twolayer.activations import Activation, get_activation
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
LINK_OPTIONS = ("shift", "center", "remove_linear", "normalize")
# part 2 of the recipe: the two targets of information exponent 2, by their link's name
IE2, HE2 = "relu", "hermite"


def _link(row: pd.Series) -> Activation:
    """The teacher's link of one run, with the options the recipe sweeps."""
    options = {}
    for key in LINK_OPTIONS:
        value = row.get(f"teacher.link.{key}")
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            options[key] = bool(value) if key != "shift" else float(value)
    return get_activation(row[LINK], **options)


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
        link = _link(row).constants
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


def _part2(t: pd.DataFrame) -> pd.DataFrame:
    """The runs of part 2 (the two IE-2 targets), with a column batch = fresh | reused."""
    part2 = t[t[LINK].isin([IE2, HE2])].copy()
    part2["batch"] = np.where(part2[BATCH].astype(str) == "fresh", "fresh", "reused")
    return part2


def _update_table(t: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Mean over seeds of step_update.subspace_projection for (target, batch) of part 2."""
    means = _part2(t).groupby([LINK, "batch"])["step_update.subspace_projection"].mean()
    return {
        (link, b): float(means.get((link, b), math.nan))
        for link in (IE2, HE2)
        for b in ("fresh", "reused")
    }


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
    part2 = _update_table(t)
    ie2_reuse = part2[(IE2, "reused")]
    ie2_fresh = part2[(IE2, "fresh")]
    he2_reuse = part2[(HE2, "reused")]
    out.append(
        claim_true(
            "reuse-learns-ie2-direction",
            "target of information exponent 2, not even (relu(z - 1) without mean and linear "
            "part), reused second batch: ||P beta||^2 on the top-3 right singular vectors of "
            "W_2 - W_1 (mean over seeds) >= 0.1, i.e. >= 30x the random level 3/d",
            ie2_reuse,
            bool(ie2_reuse >= max(0.1, 30 * 3.0 / d)),
            ">= 0.1",
        )
    )
    out.append(
        claim_less(
            "fresh-learns-no-ie2-direction",
            "same target and step sizes, fresh second batch: the same projection / the reused "
            "batch's (the fresh level is a finite-size remainder, ~N^(alpha_2 - 1/2))",
            ie2_fresh / ie2_reuse,
            1.0 / 3.0,
            "< 1/3 (reused is at least 3x fresh)",
        )
    )
    out.append(
        claim_less(
            "even-target-gains-nothing-from-reuse",
            "He_2 target (even: E[T(y) z] = 0 for every T), reused second batch: the same "
            "projection / the one of the non-even target with reuse",
            he2_reuse / ie2_reuse,
            0.5,
            "< 1/2",
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
    part2 = _part2(t)
    labels = {IE2: "IE2", HE2: "He2"}
    x = 0
    ticks, names = [], []
    for link in (IE2, HE2):
        for j, batch in enumerate(("fresh", "reused")):
            group = part2[(part2[LINK] == link) & (part2["batch"] == batch)]
            values = group["step_update.subspace_projection"]
            ax.bar(
                x,
                values.mean(),
                yerr=values.std() if len(values) > 1 else 0,
                color=f"C{j}",
                label=f"{batch} second batch" if link == IE2 else None,
            )
            ax.plot([x] * len(values), values, "k.", ms=4)
            ticks.append(x)
            names.append(f"{labels[link]}\n{batch}")
            x += 1
        x += 0.5
    ax.axhline(3.0 / d, color="k", ls=":", label="3/d (random)")
    ax.set_xticks(ticks, names, fontsize=6)
    ax.set_ylabel("||P_top-3(W_2 - W_1) beta||^2")
    ax.set_title(
        "second step: IE2 = relu(z-1) w/o mean, linear part (not even); He2 (even)", fontsize=7
    )
    ax.legend(fontsize=7)
    written.append(plots.save(fig, folder, "two_step"))
    return written


RECIPE = Recipe(
    name="two-step",
    title="two giant steps at linear width: outliers of W_2 vs 1 + floor(alpha_2/(1/2-alpha_1)), "
    "the merged plain spike; a reused batch learns an information-exponent-2 direction",
    paper="Feature learning in linear-width two-layer networks: two vs. one step of gradient "
    "descent (2025); Ba et al. (2022) for the one-step spike",
    claims=claims,
    figures=figures,
)
