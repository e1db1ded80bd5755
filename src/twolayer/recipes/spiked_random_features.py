"""Recipe spiked-random-features: the spiked random-features model of one giant step against the
trained network, and the conditional Gaussian-equivalence theory of its test error (Cui et al.
2024).

Three kinds of runs (see the YAML): the trained one-step network (``giant_steps``), its sRF model
with the matching (r, c_W, gamma) (``spiked`` with eta_tilde, alpha0; these runs also fit the
random-features baseline on the same W_0 and readout batch), and the sRF at alpha = 2 over a range
of spike strengths r. The theory (measurement ``spiked_rf_theory``) is computed in each sRF run
for that run's W_0, v and target, and plain Gaussian equivalence given W_1 (``ridge_theory``) in
each network run; the claims compare means over seeds. The figures draw the same
theory on a dense grid for the runs' own W_0 (from the spectral data the runs stored),
averaged over seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from twolayer import plots
from twolayer.activations import get_activation
from twolayer.measure.spiked_rf import solve_with_fallback
from twolayer.plots import mean_and_sem
from twolayer.recipes.base import (
    Claim,
    Recipe,
    RecipeData,
    claim_close,
    claim_greater,
    claim_less,
    claim_true,
)
from twolayer.theory.spiked_rf import SpikedRFParameters, SpikedRFSpectrum

ERR = "readout.test_mse"
RF = "random_features.test_mse"
THEORY = "spiked_rf_theory.test_mse"
THEORY_RF = "spiked_rf_theory.rf_test_mse"
PLAIN_GE = "ridge_theory.test_mse"
#: Plain Gaussian equivalence given the network's W_1 must overestimate its error by at least this
#: factor at every alpha >= 1 (a bound, reported with its slack; the paper states only that the
#: plain equivalence misses the spike). Fixed before the first full run from an exploration at
#: d = 300 and 600 (seeds 0-2): 1.16 / 1.30 / 1.35 at alpha = 0.5 / 2 / 4 (d = 300), 1.15 / 1.33 /
#: 1.38 (d = 600), 1.20 at alpha = 1 in quick mode (the smallest); a seed mean of the network's
#: error scatters by 2-3%, so 1.10 sits about 3 standard errors below the smallest.
PLAIN_GE_MARGIN = 1.10

#: Tolerances (relative differences of means over seeds), by mode: 3 standard errors of the mean
#: over the recipe's seeds (the per-seed standard deviation, pooled over the points, divided by
#: sqrt(seeds)) plus the finite-size term (the largest |mean deviation| over the points). Quick
#: (d = 300, 3 seeds): both measured on calibration seeds 200-211 (12 seeds), disjoint from the
#: checked ones; per-seed SDs 0.101 (network vs sRF), 0.068 (sRF vs theory), 0.067 (random
#: features vs theory), 0.053 (error vs r), 0.075 (RF/sRF ratio), 0.072 (spike gain); mean
#: deviations 0.042, 0.042, 0.022, 0.039, 0.046, 0.028. Full (d = 800, 4 seeds): the per-seed
#: SDs measured at d = 600 (seeds 10-14: ~6% network vs sRF, ~5% theory) scaled by
#: sqrt(600/800), or the quick ones by sqrt(300/800) for the two ratios, plus the finite-size
#: terms of the size sweep (network vs sRF +3.7% at d = 600; small-r excess of the simulation
#: over the theory +10 / +6 / +2% at d = 300 / 600 / 1200, ~4% at 800).
TOLERANCES = {
    "quick": {"network_vs_srf": 0.22, "srf_theory": 0.16, "rf_theory": 0.14, "r_theory": 0.13,
              "rf_ratio": 0.18, "spike_gain": 0.15},
    "full": {"network_vs_srf": 0.12, "srf_theory": 0.11, "rf_theory": 0.11, "r_theory": 0.11,
             "rf_ratio": 0.12, "spike_gain": 0.10},
}
#: How each tolerance was derived (printed with the claim).
DERIVATION = {
    "quick": "3 x per-seed SD / sqrt(3) + largest |mean deviation|, both on calibration seeds "
             "200-211 (12 seeds, d = 300); checked on the recipe's seeds 0-2 and fresh ranges",
    "full": "3 x per-seed SD / sqrt(4) (SD measured at d = 600, seeds 10-14, or at d = 300, "
            "scaled as d^-1/2) + the finite-size term of the size sweep d = 300 / 600 / 1200",
}
#: In r, the measured curve must move in the theory's direction wherever the theory moves by more
#: than this fraction between neighbouring r (smaller steps are within the noise).
SHAPE_THRESHOLD = 0.05
#: Where the theory comes from (the claims' source).
SOURCE = ("Cui et al. 2024 conditional Gaussian equivalence (twolayer.theory.spiked_rf, "
          "measurement spiked_rf_theory) evaluated for each run's W_0, spike direction and "
          "teacher, with (r, c_W, gamma) from the spec's eta_tilde, alpha_0")


def parts(data: RecipeData) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The done runs split into (network, sRF with derived parameters, sRF over r), each with
    a column ``alpha`` = readout.n / d."""
    done = data.done.copy()
    done["alpha"] = done["readout.n"].astype(float) / float(data.spec["teacher"]["d"])
    net = done[done["train.protocol"] == "giant_steps"]
    spiked = done[done["train.protocol"] == "spiked"]
    srf = spiked[spiked["train.eta_tilde"].notna()] if "train.eta_tilde" in spiked else spiked[:0]
    sweep = spiked[spiked["train.r"].notna()] if "train.r" in spiked else spiked[:0]
    sweep = sweep.assign(r=sweep["train.r"].astype(float))
    return net, srf, sweep


def _relative(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """|mean_a / mean_b - 1| on the common index."""
    common = a.index.intersection(b.index)
    return (a.loc[common, "mean"] / b.loc[common, "mean"] - 1.0).abs()


def statistics(data: RecipeData) -> dict[str, float]:
    """The claims' measured statistics and their predictions, from means over seeds.

    ``network_vs_srf``, ``srf_vs_theory``, ``rf_vs_theory``, ``r_vs_theory``: largest relative
    difference of means over the points; ``rf_ratio`` / ``rf_ratio_theory``: smallest over alpha
    of mean RF / mean sRF, measured and predicted; ``spike_gain`` / ``spike_gain_theory``: the
    smallest error over r > 0 divided by the error at r = 0, measured and predicted."""
    net, srf, sweep = parts(data)
    m_net = mean_and_sem(net, "alpha", ERR)
    m_srf = mean_and_sem(srf, "alpha", ERR)
    t_srf = mean_and_sem(srf, "alpha", THEORY)
    m_rf = mean_and_sem(srf, "alpha", RF)
    t_rf = mean_and_sem(srf, "alpha", THEORY_RF)
    m_r = mean_and_sem(sweep, "r", ERR)
    t_r = mean_and_sem(sweep, "r", THEORY)
    out = {
        "network_vs_srf": float(_relative(m_net, m_srf).max()),
        "srf_vs_theory": float(_relative(m_srf, t_srf).max()),
        "rf_vs_theory": float(_relative(m_rf, t_rf).max()),
        "r_vs_theory": float(_relative(m_r, t_r).max()),
        "rf_ratio": float((m_rf["mean"] / m_srf["mean"]).min()),
        "rf_ratio_theory": float((t_rf["mean"] / t_srf["mean"]).min()),
    }
    if 0.0 in m_r.index and len(m_r) > 1:
        out["spike_gain"] = float(m_r.drop(index=0.0)["mean"].min() / m_r.loc[0.0, "mean"])
        out["spike_gain_theory"] = float(t_r.drop(index=0.0)["mean"].min() / t_r.loc[0.0, "mean"])
    return out


def claims(data: RecipeData) -> list[Claim]:
    mode = "quick" if data.quick else "full"
    tol, derivation = TOLERANCES[mode], DERIVATION[mode]
    net, _srf, sweep = parts(data)
    stats = statistics(data)
    out = []
    alphas = ", ".join(f"{a:g}" for a in sorted(net["alpha"].unique()))
    out.append(claim_less(
        "network-matches-srf",
        "learning curves: the trained one-step network and its sRF model (same W_0, readout "
        "batch and test set) have the same test MSE: largest |mean net / mean sRF - 1| over "
        f"alpha = {alphas}",
        stats["network_vs_srf"], tol["network_vs_srf"], "0 (relative difference)",
        kind="equality",
        source="Cui et al. 2024: the one-step network is equivalent to its sRF model; the "
        "prediction is the sRF run with (r, c_W, gamma) derived from the spec",
        derivation=derivation,
    ))
    out.append(claim_less(
        "srf-matches-theory",
        "learning curve of the sRF against the conditional Gaussian-equivalence prediction "
        "(spiked_rf_error for each run's W_0): largest |mean measured / mean theory - 1|",
        stats["srf_vs_theory"], tol["srf_theory"], "0 (relative difference)",
        kind="equality", source=SOURCE, derivation=derivation,
    ))
    out.append(claim_less(
        "random-features-match-theory",
        "learning curve of plain random features (same W_0) against the same equations at "
        "r = 0, c_W = 1: largest |mean measured / mean theory - 1|",
        stats["rf_vs_theory"], tol["rf_theory"], "0 (relative difference)",
        kind="equality", source=SOURCE + "; at r = 0, c_W = 1", derivation=derivation,
    ))
    out.append(claim_close(
        "random-features-worse",
        "plain random features are worse than the sRF by the factor the theory predicts: "
        "smallest over alpha of mean RF error / mean sRF error",
        stats["rf_ratio"], stats["rf_ratio_theory"], rtol=tol["rf_ratio"],
        source=SOURCE + "; the same smallest ratio of the two predictions",
        derivation=derivation,
    ))
    g_net = mean_and_sem(net, "alpha", PLAIN_GE)
    m_net = mean_and_sem(net, "alpha", ERR)
    over = (g_net["mean"] / m_net["mean"]).loc[lambda r: r.index >= 1.0]
    out.append(claim_greater(
        "plain-gaussian-equivalence-misses-the-spike",
        "plain Gaussian equivalence given the network's own W_1 (ridge_theory: Gaussian features "
        "with W_1's second moments) overestimates its test MSE, which the conditional "
        "equivalence of the sRF captures: smallest mean ratio plain GE / network over alpha >= 1",
        float(over.min()), PLAIN_GE_MARGIN, f"> {PLAIN_GE_MARGIN:g}",
        kind="bound",
        source="Cui et al. 2024 state that plain Gaussian equivalence does not describe the "
        "network after a giant step (no number); the margin is from an exploration",
        derivation="margin 1.10 fixed before the full run: ~3 standard errors (2-3% per seed "
        "mean) below the smallest ratio of the exploration (1.15, d = 300 and 600, seeds 0-2)",
    ))
    out.append(claim_less(
        "error-vs-r-matches-theory",
        f"test MSE of the sRF against r (alpha = {_alpha_of(sweep):g}, c_W and gamma fixed) "
        "against the prediction: largest |mean measured / mean theory - 1| over r",
        stats["r_vs_theory"], tol["r_theory"], "0 (relative difference)",
        kind="equality", source=SOURCE, derivation=derivation,
    ))
    if "spike_gain" in stats:
        out.append(claim_close(
            "spike-helps",
            "the best spike strength of the grid lowers the test MSE below r = 0 (random "
            "features with the same c_W) by the factor the theory predicts: min_r>0 error / "
            "error at r = 0",
            stats["spike_gain"], stats["spike_gain_theory"], rtol=tol["spike_gain"],
            source=SOURCE + "; the same ratio of the predictions", derivation=derivation,
        ))
    m_r = mean_and_sem(sweep, "r", ERR)
    t_r = mean_and_sem(sweep, "r", THEORY)
    steps_t = np.diff(t_r["mean"].to_numpy())
    steps_m = np.diff(m_r["mean"].to_numpy())
    clear = np.abs(steps_t) > SHAPE_THRESHOLD * t_r["mean"].to_numpy()[:-1]
    mismatches = int(np.sum(np.sign(steps_t[clear]) != np.sign(steps_m[clear])))
    shape = "".join("-" if s < 0 else "+" for s in steps_t[clear])
    out.append(claim_true(
        "error-vs-r-shape",
        "between neighbouring r where the theory changes by more than "
        f"{SHAPE_THRESHOLD:.0%}, the measured mean moves the same way (theory's signs there: "
        f"{shape}; tanh saturates, so the error rises again at large r with c_W and lambda "
        "fixed): number of disagreements",
        float(mismatches), mismatches == 0 and clear.sum() > 0, "0",
        kind="ordering", source=SOURCE + "; the signs of its steps in r",
        derivation=f"steps where the theory moves by less than {SHAPE_THRESHOLD:.0%} (about 3 "
        "standard errors of a difference of two seed means) are not compared",
    ))
    return out


def _alpha_of(sweep: pd.DataFrame) -> float:
    values = sweep["alpha"].unique()
    return float(values[0]) if len(values) == 1 else float("nan")


def run_spectra(
    data: RecipeData, seeds: list[int], gamma: float, c_w: float
) -> list[SpikedRFSpectrum]:
    """Spectral data of the runs' own realisations, one per seed, at bulk scale ``c_w``: read from
    the arrays ``spiked_rf_theory`` stored (``spectrum: true``; W_0, the teacher direction and
    the spike direction v the ``spiked`` protocol drew, at unit bulk scale) of a run of that seed
    with this ``gamma``, so nothing is rebuilt from the random streams. The curves drawn from
    them pass through the ``spiked_rf_theory`` values stored by the runs."""
    done = data.done
    d = int(data.spec["teacher"]["d"])
    scale = c_w**2
    out = []
    for seed in seeds:
        runs = done[(done["seed"] == seed)
                    & np.isclose(done["spiked_rf_theory.gamma"], gamma, rtol=0, atol=1e-12)]
        for run_id in runs["id"]:
            arrays = data.arrays(run_id)
            if "spiked_rf_theory.spectrum_D" in arrays:
                out.append(SpikedRFSpectrum(
                    D=arrays["spiked_rf_theory.spectrum_D"] * scale,
                    F=arrays["spiked_rf_theory.spectrum_F"] * scale,
                    H=arrays["spiked_rf_theory.spectrum_H"] * scale,
                    p=len(arrays["spiked_rf_theory.spectrum_D"]), d=d))
                break
        else:
            raise ValueError(f"no run of seed {seed} with gamma = {gamma} stored the spectral "
                             "data (measurement spiked_rf_theory with spectrum: true)")
    return out


def dense_theory(
    data: RecipeData, spectrum: SpikedRFSpectrum, params: list[SpikedRFParameters],
    alphas: np.ndarray,
) -> np.ndarray:
    """sRF predictions for the pairs (params[j], alphas[j]) on ``spectrum`` (warm-started in
    order), shape (len(alphas),); NaN where the iteration does not converge."""
    s = data.spec
    lam = float(s["readout"]["lambdas"][0])
    act, link = get_activation(s["student"]["activation"]), get_activation(s["teacher"]["link"])
    out, init = np.full(len(alphas), np.nan), None
    for j, (par, alpha) in enumerate(zip(params, alphas, strict=True)):
        res = solve_with_fallback(spectrum, par, max(1, round(alpha * spectrum.d)), lam, act,
                                  link, init=init)
        if res is not None:
            out[j], init = res.test_error, np.array(list(res.order.values()))
    return out


def mean_theory(
    data: RecipeData, seeds: list[int], params: list[SpikedRFParameters], alphas: np.ndarray
) -> np.ndarray:
    """:func:`dense_theory` on each seed's own realisation (:func:`run_spectra`), averaged over
    the seeds: the theory curve of the runs on a grid, shape (len(alphas),). All ``params``
    share c_W and gamma."""
    spectra = run_spectra(data, seeds, params[0].gamma, params[0].c_w)
    return np.mean([dense_theory(data, sp, params, alphas) for sp in spectra], axis=0)


def _params_of(frame: pd.DataFrame) -> SpikedRFParameters:
    first = frame.iloc[0]
    return SpikedRFParameters(float(first["spiked_rf_theory.r"]),
                              float(first["spiked_rf_theory.c_w"]),
                              float(first["spiked_rf_theory.gamma"]))


def figures(data: RecipeData, folder: Path) -> list[Path]:
    net, srf, sweep = parts(data)
    written = []
    fig, axes = plots.figure(2)
    ax = axes[0][0]
    plots.measured(ax, mean_and_sem(net, "alpha", ERR), label="trained network (one step)",
                   color="C0")
    plots.measured(ax, mean_and_sem(srf, "alpha", ERR), label="spiked RF (matching r, c_W, gamma)",
                   marker="s", color="C1")
    plots.measured(ax, mean_and_sem(srf, "alpha", RF), label="random features (same W_0)",
                   marker="^", color="C2")
    if PLAIN_GE in net and net[PLAIN_GE].notna().any():
        g = mean_and_sem(net, "alpha", PLAIN_GE)
        plots.theory_line(ax, g.index, g["mean"], ls=":", color="C0",
                          label="plain Gaussian equivalence given W_1")
    if len(srf):
        seeds = sorted(int(x) for x in srf["seed"].unique())
        params = _params_of(srf)
        grid = np.linspace(srf["alpha"].min(), srf["alpha"].max(), 13)
        plots.theory_line(ax, grid, mean_theory(data, seeds, [params] * len(grid), grid),
                          label="sRF theory (Cui et al.)")
        rf = [SpikedRFParameters(0.0, 1.0, params.gamma)] * len(grid)
        plots.theory_line(ax, grid, mean_theory(data, seeds, rf, grid), ls="--", color="gray",
                          label="same equations at r = 0, c_W = 1")
    ax.set_xlabel("alpha = n / d (readout samples)")
    ax.set_ylabel("test MSE")
    ax.set_yscale("log")
    ax.set_title("learning curves")
    ax.legend(fontsize=7)

    ax = axes[0][1]
    plots.measured(ax, mean_and_sem(sweep, "r", ERR), label="spiked RF", marker="s", color="C1")
    alpha = _alpha_of(sweep)
    if len(sweep):
        seeds = sorted(int(x) for x in sweep["seed"].unique())
        base = _params_of(sweep)
        # finer near r = 0, where the error drops fastest
        r_max = float(sweep["r"].max())
        grid = np.unique(np.concatenate([np.linspace(0.0, min(0.5, r_max), 6),
                                         np.linspace(min(0.5, r_max), r_max, 15)]))
        params = [SpikedRFParameters(float(r), base.c_w, base.gamma) for r in grid]
        plots.theory_line(ax, grid, mean_theory(data, seeds, params, np.full(len(grid), alpha)),
                          label="sRF theory (Cui et al.)")
    at = net[np.isclose(net["alpha"], alpha)]
    if len(at) and len(srf):
        m = mean_and_sem(at.assign(r=_params_of(srf).r), "r", ERR)
        plots.measured(ax, m, label="trained network at its r (its c_W, gamma)", marker="D",
                       color="C0")
    ax.set_xlabel("spike strength r (c_W, gamma fixed)")
    ax.set_ylabel("test MSE")
    ax.set_title(f"error vs spike strength, alpha = {alpha:g}")
    ax.legend(fontsize=7)
    written.append(plots.save(fig, folder, "learning_curves_and_spike"))
    return written


RECIPE = Recipe(
    name="spiked-random-features",
    title="spiked random features vs the one-step network: learning curves, error vs spike "
    "strength, conditional Gaussian-equivalence theory",
    paper="Cui, Pesce, Dandi, Krzakala, Lu, Zdeborova, Loureiro (2024), Asymptotics of feature "
    "learning in two-layer networks after one gradient-step (ICML 2024)",
    claims=claims,
    figures=figures,
)
