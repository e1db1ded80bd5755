"""Recipe random-feature-amplification: XOR clusters with label noise (Frei, Chatterji &
Bartlett 2023). GD on a two-layer relu network with a fixed second layer reaches a test error
close to the noise rate p while every linear classifier is at 1/2; the neurons start as weak
random features (|cos(w_i, mu_k)| ~ 1/sqrt(d)) and GD amplifies them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.special

from twolayer import plots
from twolayer.recipes.base import (
    Claim,
    Recipe,
    RecipeData,
    claim_close,
    claim_greater,
    claim_true,
)
from twolayer.theory.xor import xor_bayes_error, xor_homogeneous_linear_error

P = "teacher.label_noise"
KIND = "teacher.noise_kind"
ALIGN = "neuron_alignment"
P_MODERATE = 0.2  # noise rates at which the excess error is a few per cent at every size

# median of max(|z_1|, |z_2|) for independent standard normals: (2 Phi(t) - 1)^2 = 1/2
MEDIAN_MAX_ABS2 = float(scipy.special.ndtri(0.5 * (1.0 + math.sqrt(0.5))))


def reference_error(data: RecipeData, p: float, kind: str) -> float:
    """Test error (against noisy labels) of the Bayes rule of the clean model, which ignores the
    direction u of adversarial flips: p + (1 - 2p) e_clean for random flips, and for half-space
    flips (a fraction p of the inputs, independent of the cluster) the same p + (1 - 2p) e_clean.
    """
    t = data.spec["teacher"]
    return xor_bayes_error(t["mu_norm"] / t.get("noise", 1.0), p)


def init_median_cos(d: int) -> float:
    """Median over random neurons of max_k |cos(w, mu_k)| ~ t / sqrt(d), (2 Phi(t) - 1)^2 = 1/2
    (the coordinates of a random unit vector along mu_1, mu_2 are ~ N(0, 1/d))."""
    return MEDIAN_MAX_ABS2 / math.sqrt(d)


def _trajectories(data: RecipeData) -> dict[tuple[str, float, int], pd.DataFrame]:
    out = {}
    for _, row in data.done.iterrows():
        out[(row[KIND], float(row[P]), int(row["seed"]))] = data.trajectory(row["id"])
    return out


def median_relative_se(n: int) -> float:
    """Relative standard error of the sample median of n independent max(|z_1|, |z_2|), z_k
    standard normal: sqrt(1/4 / n) / (f(t) t), f(t) = 4 (2 Phi(t) - 1) phi(t) the density at the
    median t (2 Phi(t) - 1 = sqrt(1/2) there)."""
    t = MEDIAN_MAX_ABS2
    phi = math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    density = 4.0 * math.sqrt(0.5) * phi
    return 0.5 / (density * math.sqrt(n)) / t


# Finite-size terms per mode (True: quick, False: full): for each quantity the upper 95% bound
# |bias| + 2 SE of its mean deviation from the closed form over 12 calibration seeds of that
# mode (200-211: twolayer reproduce random-feature-amplification [--quick] --seeds 200, 204,
# 208), rounded up to two significant digits; no claim is checked on those seeds
# (scripts/calibration/finite_terms.py prints them from finite_size_deviations;
# docs/recipes/random-feature-amplification.md, "Calibration"). Before, both modes used the
# largest deviation on the quick seeds 200-203 alone (0.004, 0.0005, 0.008): the 12 quick seeds
# include two whose training fell short (seed 210: +0.114 at p = 0.15; seed 204: slope +0.42),
# so the quick terms at p = 0.15 and of the slope grew; the full ones are measured at full size.
#: test error - (p + (1-2p) e_clean), per p <= P_MODERATE (the larger over the two flip kinds)
EXCESS_FINITE = {
    True: {0.05: 0.0033, 0.15: 0.033},
    False: {0.0: 0.0, 0.05: 0.0015, 0.1: 0.0028, 0.15: 0.005, 0.2: 0.012},
}
#: linear classifier with an intercept, err - 1/2
LINEAR_FINITE = {True: 0.003, False: 0.002}
#: slope of the test error in p minus 1 - 2 e_clean. Claimed only with at least SLOPE_MIN_RATES
#: moderate noise rates (full mode: 5). The quick grid has two (0.05, 0.15): its calibrated term,
#: 0.23, plus 3 sem reached 1.0 on a fresh range, a tolerance a flat error curve would pass, so
#: the quick slope is an observation (the page, "What does not hold").
SLOPE_FINITE = {True: 0.23, False: 0.028}
SLOPE_MIN_RATES = 3
CALIBRATION = {
    True: "quick-mode calibration seeds 200-211 (|bias| + 2 SE)",
    False: "full-mode calibration seeds 200-211 (|bias| + 2 SE)",
}


def excess_finite(quick: bool, p: float) -> float:
    """The finite-size term of the test error at noise rate p (the largest calibrated one for a
    p the calibration did not run)."""
    terms = EXCESS_FINITE[quick]
    return terms.get(round(float(p), 6), max(terms.values()))


def _seed_stats(frame: pd.DataFrame, column: str) -> tuple[float, float, int]:
    """Mean over seeds (each seed's runs averaged first), its standard error, number of seeds."""
    per_seed = frame.groupby("seed")[column].mean()
    k = len(per_seed)
    sem = float(per_seed.std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan
    return float(per_seed.mean()), sem, k


def _per_seed_slopes(data: RecipeData) -> tuple[list[float], pd.Series]:
    """The moderate noise rates of the random-flip runs and, per seed, the slope of its least-
    squares line of test error against p over them (empty with fewer than two rates)."""
    done = data.done
    rand = done[(done[KIND] == "random") & (done[P] <= P_MODERATE)]
    ps = sorted(float(p) for p in rand[P].unique())
    if len(ps) < 2:
        return ps, pd.Series(dtype=float)
    table = rand.pivot_table(index="seed", columns=P, values="network.test_err01")
    return ps, pd.Series({int(seed): float(np.polyfit(ps, row.to_numpy(), 1)[0])
                          for seed, row in table.iterrows()}).rename_axis("seed")


def _clean_error(data: RecipeData) -> float:
    t = data.spec["teacher"]
    return xor_bayes_error(t["mu_norm"] / t.get("noise", 1.0), 0.0)


def finite_size_deviations(data: RecipeData) -> dict[str, pd.Series]:
    """Per seed, the deviation from its closed form of each quantity an equality claim averages
    over seeds: ``excess-<kind>-p<p>`` (test error - (p + (1-2p) e_clean), p <= P_MODERATE),
    ``linear`` (the linear classifier's test error - 1/2, mean over the seed's runs) and
    ``slope`` (the seed's slope in p - (1 - 2 e_clean))."""
    done = data.done
    out: dict[str, pd.Series] = {}
    for kind in sorted(done[KIND].unique()):
        for p in sorted(done.loc[done[KIND] == kind, P].unique()):
            if p <= P_MODERATE:
                part = done[(done[KIND] == kind) & (done[P] == p)]
                out[f"excess-{kind}-p{p:g}"] = (part.groupby("seed")["network.test_err01"].mean()
                                                - reference_error(data, p, kind))
    linear = done.groupby("seed")["linear.test_err01"].mean()
    out["linear"] = linear - xor_homogeneous_linear_error()
    _, slopes = _per_seed_slopes(data)
    if len(slopes):
        out["slope"] = slopes - (1.0 - 2.0 * _clean_error(data))
    return out


def claims(data: RecipeData) -> list[Claim]:
    d = int(data.spec["teacher"]["d"])
    clean = _clean_error(data)
    done = data.done
    quick = bool(data.quick)
    calibration = CALIBRATION[quick]
    n_test = int(data.spec["evaluate"]["n_test"])
    out: list[Claim] = []
    for kind in sorted(done[KIND].unique()):
        worst, ok, parts = 0.0, True, []
        for p in sorted(done.loc[done[KIND] == kind, P].unique()):
            if p > P_MODERATE:
                continue
            mean, sem, _ = _seed_stats(done[(done[KIND] == kind) & (done[P] == p)],
                                       "network.test_err01")
            dev = mean - reference_error(data, p, kind)
            # one test point (1/n_test) is the resolution of a measured error: at p = 0 the
            # calibration saw no deviation at all
            tol = 3 * sem + max(excess_finite(quick, p), 1.0 / n_test)
            ok = ok and abs(dev) <= tol
            worst = max(worst, abs(dev) / tol)
            parts.append(f"p = {p:g}: {dev:+.4f} (tol {tol:.4f})")
        out.append(
            claim_true(
                f"test-error-close-to-p-{kind}",
                f"trained network, {kind} flips, every p <= {P_MODERATE:g}: test error (noisy "
                "labels, mean over seeds) = p + (1-2p) e_Bayes,clean; measured: largest "
                "|deviation| / tolerance (" + "; ".join(parts) + ")",
                worst,
                ok,
                "p + (1-2p) e_Bayes,clean (deviation / tolerance <= 1)",
                "3 sem over seeds + the calibrated term of each p",
                source="closed form: twolayer.theory.xor.xor_bayes_error(||mu||, p) from the "
                "spec (the error of the clean Bayes rule, the limit of Frei et al.)",
                derivation="3 standard errors over seeds (per p) + a finite-size excess term "
                "per p (" + ", ".join(f"{p:g}: {t:g}" for p, t in EXCESS_FINITE[quick].items())
                + f"; at least one test point, 1/n_test) measured on the {calibration}",
            )
        )
    mean, sem, k = _seed_stats(done, "linear.test_err01")
    out.append(
        claim_close(
            "linear-at-one-half",
            "linear ridge classifier (with intercept) on the same training set: test error "
            f"(mean over every run, {k} seeds) = 1/2",
            mean,
            xor_homogeneous_linear_error(),
            atol=3 * sem + LINEAR_FINITE[quick],
            source="closed form: a homogeneous linear classifier has error exactly 1/2 on XOR "
            "(x -> -x maps each class onto itself); twolayer.theory.xor",
            derivation=f"3 sem over seeds ({3 * sem:.3g}) + the intercept's finite-sample term "
            f"{LINEAR_FINITE[quick]:g} measured on the {calibration}",
        )
    )
    ps, slopes = _per_seed_slopes(data)
    if len(ps) >= SLOPE_MIN_RATES:
        slope = float(slopes.mean())
        sem = float(slopes.std(ddof=1) / math.sqrt(len(slopes)))
        out.append(
            claim_close(
                "error-tracks-p",
                f"slope of the test error against p in {ps} (random flips; mean over seeds of "
                "each seed's fit) = 1 - 2 e_clean",
                slope,
                1.0 - 2.0 * clean,
                atol=3 * sem + SLOPE_FINITE[quick],
                source="closed form: d/dp [p + (1-2p) e_clean] from the spec's ||mu||",
                derivation=f"3 sem of the per-seed slopes ({3 * sem:.3g}) + finite-size term "
                f"{SLOPE_FINITE[quick]:g} (the excess's change with p) measured on the "
                f"{calibration}",
            )
        )
    per_seed = done.groupby("seed")[f"train.final_{ALIGN}.init_cos_q50"].mean().astype(float)
    N = int(data.spec["student"]["N"])
    n_neurons = N * len(per_seed)  # one init per seed, shared by the sweep points
    rel = median_relative_se(N) / math.sqrt(len(per_seed))
    out.append(
        claim_close(
            "init-weak-random-features",
            "at init the median over neurons of max_k |cos(w_i, mu_k)| = 1.05/sqrt(d) "
            f"(random features, weakly correlated; mean over {len(per_seed)} seeds of the "
            f"median of {N} neurons)",
            float(per_seed.mean()),
            init_median_cos(d),
            rtol=3 * rel + 1.0 / d,
            source="closed form: median of max(|z_1|, |z_2|) / sqrt(d), z_k standard normal "
            "(the coordinates of a random direction along mu_1, mu_2)",
            derivation=f"3 x the standard error of a mean of {len(per_seed)} sample medians of "
            f"{N} neurons ({3 * rel:.3g} relative, from the density at the median; "
            f"{n_neurons} neurons) + 1/d for the Gaussian approximation of the coordinates "
            "(exact to O(1/d)); derived, not calibrated",
        )
    )
    trajs = _trajectories(data)
    peak = [tr[f"{ALIGN}.cos_frac_above_50"].max() for tr in trajs.values()]
    out.append(
        claim_greater(
            "amplified",
            "GD amplifies them: the largest fraction along training of neurons with "
            "max_k |cos(w_i, mu_k)| > 0.5 (mean over runs) is more than half",
            float(np.mean(peak)),
            0.5,
            "> 1/2 (from 0 at init)",
            kind="ordering",
            source="paper (qualitative: GD turns the weak random features into features "
            "strongly correlated with the cluster means; no fraction is given at these sizes)",
            derivation="no tolerance (an ordering: 'most neurons'); checked on fresh seeds",
        )
    )
    return out


def figures(data: RecipeData, folder: Path) -> list[Path]:
    written = []
    t = data.spec["teacher"]
    mu = t["mu_norm"] / t.get("noise", 1.0)
    fig, ax = plots.figure(1, width=5.2)
    err = data.over_seeds([KIND, P], "network.test_err01")
    lin = data.over_seeds([KIND, P], "linear.test_err01")
    for k, kind in enumerate(sorted(data.done[KIND].unique())):
        plots.measured(ax, err.xs(kind, level=KIND), label=f"two-layer net, {kind} flips",
                       marker="os"[k % 2], color=f"C{k}")
        plots.measured(ax, lin.xs(kind, level=KIND), label=f"linear ridge, {kind} flips",
                       marker="x+"[k % 2], color=f"C{k + 2}")
    grid = np.linspace(0, max(0.3, data.done[P].max()), 100)
    plots.theory_line(ax, grid, [xor_bayes_error(mu, p) for p in grid],
                      label="p + (1-2p) e_Bayes (clean)")
    ax.axhline(0.5, color="gray", ls=":", label="linear theory 1/2")
    ax.set_xlabel("label-noise rate p")
    ax.set_ylabel("test error (noisy labels)")
    ax.set_ylim(0, 0.6)
    ax.legend(fontsize=7)
    written.append(plots.save(fig, folder, "test_error_vs_p"))

    # distribution of the alignment over training (quantile bands) for each noise rate
    trajs = _trajectories(data)
    kinds = sorted({k for k, _, _ in trajs})
    fig, axes = plots.figure(3, width=4.4)
    ax_q, ax_f, ax_h = axes[0]
    ps = sorted({p for _, p, _ in trajs})
    for j, p in enumerate(ps):
        frames = [tr for (kind, pp, _), tr in trajs.items() if pp == p and kind == kinds[0]]
        tr = frames[0]
        step = tr["step"]
        ax_q.fill_between(step, tr[f"{ALIGN}.cos_q10"], tr[f"{ALIGN}.cos_q90"],
                          color=f"C{j}", alpha=0.2)
        ax_q.plot(step, tr[f"{ALIGN}.cos_q50"], color=f"C{j}", label=f"p = {p:g}")
        for fr in frames:
            ax_f.plot(fr["step"], fr[f"{ALIGN}.cos_frac_above_50"], color=f"C{j}", alpha=0.8,
                      label=f"p = {p:g}" if fr is tr else None)
    ax_q.axhline(init_median_cos(int(t["d"])), color="k", ls=":", lw=0.8,
                 label="random-feature level 1.05/sqrt(d)")
    ax_q.set_xlabel("GD step")
    ax_q.set_ylabel("max_k |cos(w_i, mu_k)|: median, 10-90% band")
    ax_q.set_title(f"{kinds[0]} flips, seed 0")
    ax_q.legend(fontsize=7)
    ax_f.set_xlabel("GD step")
    ax_f.set_ylabel("fraction of neurons with |cos| > 0.5")
    ax_f.legend(fontsize=7)
    row = data.done[data.done[KIND] == kinds[0]].sort_values([P, "seed"]).iloc[0]
    arrays = data.arrays(row["id"])
    bins = np.linspace(-1, 1, 41)
    ax_h.hist(arrays[f"{ALIGN}.init_cos"].ravel(), bins=bins, alpha=0.6, label="init")
    ax_h.hist(arrays[f"{ALIGN}.cos"].ravel(), bins=bins, alpha=0.6, label="after GD")
    ax_h.set_xlabel("cos(w_i, mu_k), k = 1, 2")
    ax_h.set_ylabel("count (neurons x 2)")
    ax_h.set_title(f"p = {row[P]:g}")
    ax_h.legend(fontsize=7)
    written.append(plots.save(fig, folder, "alignment_over_time"))
    return written


RECIPE = Recipe(
    name="random-feature-amplification",
    title="XOR with label noise: GD amplifies weak random features; test error ~ p, linear ~ 1/2",
    paper="Frei, Chatterji & Bartlett (2023), Random feature amplification: feature learning "
    "and generalization in neural networks",
    claims=claims,
    figures=figures,
)
