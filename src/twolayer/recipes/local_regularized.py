"""Recipe local-regularized: feature learning late in training through a regularised objective
(Zhou & Ge 2024). After a first stage of plain GD reaches a low loss, GD with weight decay
(lambda halved from stage to stage) moves the output mass onto the teacher's neurons; the same
continuation without the regulariser is run beside it (zip axis: weight decay 0 = control)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from twolayer import plots
from twolayer.recipes.base import (
    Claim,
    Recipe,
    RecipeData,
    claim_greater,
    claim_less,
    claim_true,
)

WD = "train.stages[1].weight_decay.W"
TN = "teacher_neurons"


def _runs(data: RecipeData) -> dict[tuple[bool, int], pd.DataFrame]:
    """Trajectory of each run, keyed by (regularised, seed)."""
    return {
        (bool(row[WD] > 0), int(row["seed"])): data.trajectory(row["id"])
        for _, row in data.done.iterrows()
    }


def _stage_end(traj: pd.DataFrame, stage: int) -> pd.Series:
    return traj[traj["stage"] == stage].iloc[-1]


def _mean(runs: dict, reg: bool, fn) -> float:
    return float(np.mean([fn(tr) for (r, _), tr in runs.items() if r == reg]))


#: Finite-size terms of the signed-mass equality, per teacher neuron (the spec's order), per mode
#: (True: quick, False: full): the upper 95% bound |bias| + 2 SE of the mean deviation of the
#: signed mass from a*_i over the calibration seeds of that mode (full: 200-208, biases -0.024,
#: +0.012, -0.028; twolayer reproduce local-regularized --seeds 200, 203, 206), rounded up to
#: two significant digits; no claim is checked on those seeds (scripts/calibration/
#: finite_terms.py; docs/recipes/local-regularized.md, "Calibration"). The quick mode has none:
#: it is too short for the mass to reach a*_i (biases -0.29, +0.10, -0.28 on seeds 200-211,
#: terms 0.40, 0.14, 0.35), and a claim with those terms would pass a mass of half the teacher's,
#: so in quick mode the mass is an observation. (Before: quick 0.3 from seeds 200-203; full 0.05
#: set on the recipe's own seeds.)
MASS_FINITE: dict[bool, tuple[float, ...]] = {False: (0.031, 0.013, 0.04)}
PAPER = "Zhou & Ge (2024)"


def _final_masses(runs: dict[tuple[bool, int], pd.DataFrame], r: int) -> pd.DataFrame:
    """Regularised runs: the signed output mass within 0.1 rad of each teacher neuron at the end
    (rows: seeds, columns: teacher neurons 0..r-1)."""
    return pd.DataFrame(
        {seed: [tr[f"{TN}.mass_{i}"].iloc[-1] for i in range(r)]
         for (reg, seed), tr in sorted(runs.items()) if reg}
    ).T.rename_axis("seed")


def finite_size_deviations(data: RecipeData) -> dict[str, pd.Series]:
    """Per seed, the signed mass at teacher neuron i minus its weight a*_i (keys ``mass-<i>``):
    the bias that MASS_FINITE covers."""
    weights = np.asarray(data.spec["teacher"]["weights"], float)
    masses = _final_masses(_runs(data), len(weights))
    return {f"mass-{i}": masses[i] - weights[i] for i in range(len(weights))}


def claims(data: RecipeData) -> list[Claim]:
    runs = _runs(data)
    weights = np.asarray(data.spec["teacher"]["weights"], float)
    quick = bool(data.quick)
    out: list[Claim] = []
    first = [_stage_end(tr, 0)["train_loss"] / tr["train_loss"].iloc[0] for tr in runs.values()]
    out.append(
        claim_less(
            "stage1-low-loss",
            "stage 1 (plain GD) reaches a low loss: train loss at its end / at init (largest)",
            float(np.max(first)),
            1e-2,
            "< 1e-2",
            source=f"{PAPER}: the local analysis starts below a small loss threshold (not given "
            "numerically); 1e-2 is this recipe's precondition",
            derivation="a precondition of the setup, not a prediction; slack reported",
        )
    )
    end1 = _mean(runs, True, lambda tr: _stage_end(tr, 0)[f"{TN}.max_angle"])
    last = _mean(runs, True, lambda tr: tr[f"{TN}.max_angle"].iloc[-1])
    out.append(
        claim_less(
            "angles-shrink-late-regularised",
            "regularised: largest principal angle between the top-r right singular subspace of "
            "W and the teacher span, end of training (radians, mean over seeds), below its "
            "value at the end of stage 1",
            last,
            end1,
            f"end of stage 1: {end1:.4g}",
            kind="ordering",
            source=f"{PAPER}: with lambda -> 0 the regularised dynamics converges locally to the "
            "teacher's neurons (the angle goes to 0; no rate at these sizes)",
            derivation="no tolerance (an ordering of two means over seeds); checked on fresh "
            "seeds",
        )
    )
    final = {
        reg: {
            key: _mean(runs, reg, lambda tr, k=key: tr[f"{TN}.{k}"].iloc[-1])
            for key in ("on_target_mass", "off_target_mass", "weighted_angle", "off_subspace")
        }
        for reg in (True, False)
    }
    order = (f"{PAPER}: the weight decay is what removes the off-target neurons (ordering: "
             "the paper gives no number for the run without it)")
    order_derivation = "no tolerance (an ordering of means over seeds); checked on fresh seeds"
    out.append(
        claim_greater(
            "mass-concentrates",
            "fraction of the output mass scale |a_j| ||w_j|| within 0.1 rad of a teacher neuron "
            "at the end: regularised (measured) vs control (expected column)",
            final[True]["on_target_mass"],
            final[False]["on_target_mass"],
            f"control {final[False]['on_target_mass']:.4g}",
            kind="ordering", source=order, derivation=order_derivation,
        )
    )
    out.append(
        claim_less(
            "off-target-mass-shrinks",
            "output mass off the teacher neurons at the end: regularised vs control",
            final[True]["off_target_mass"],
            final[False]["off_target_mass"],
            f"control {final[False]['off_target_mass']:.4g}",
            kind="ordering", source=order, derivation=order_derivation,
        )
    )
    out.append(
        claim_less(
            "off-subspace-energy",
            "||W P_perp||_F^2 / ||W||_F^2 (energy of W outside the teacher span) at the end: "
            "regularised vs control",
            final[True]["off_subspace"],
            final[False]["off_subspace"],
            f"control {final[False]['off_subspace']:.4g}",
            kind="ordering", source=order, derivation=order_derivation,
        )
    )

    if quick not in MASS_FINITE:
        return out
    masses = _final_masses(runs, len(weights)).to_numpy()
    mean = masses.mean(axis=0)
    k = masses.shape[0]
    sem = masses.std(axis=0, ddof=1) / np.sqrt(k) if k > 1 else np.full(len(weights), np.nan)
    finite = np.asarray(MASS_FINITE[quick], float)
    tol = 3 * sem + finite
    dev = np.abs(mean - weights)
    out.append(
        claim_true(
            "mass-recovers-teacher-weights",
            "regularised: signed mass within 0.1 rad of each teacher neuron w*_i at the end "
            f"(mean over {k} seeds) = its weight a*_i = {weights.tolist()}; measured: largest "
            "|error| (" + ", ".join(f"{m:.3f}" for m in mean) + ")",
            float(dev.max()),
            bool(np.all(dev <= tol)),
            "a*_i for every i",
            "3 sem over seeds + per neuron " + ", ".join(f"{t:g}" for t in finite)
            + f" (largest {tol.max():.3g})",
            source=f"{PAPER}: the regularised network converges to the teacher, so the mass "
            "on w*_i tends to a*_i (the spec's teacher weights)",
            derivation="3 standard errors over seeds per teacher neuron + a finite-size term "
            "per neuron (the bias of the last lambda and the finite steps): |bias| + 2 SE "
            "on the full-mode calibration seeds 200-208",
        )
    )
    return out


def figures(data: RecipeData, folder: Path) -> list[Path]:
    runs = _runs(data)
    fig, axes = plots.figure(4, width=3.9)
    panels = [
        ("train_loss", "training loss", True),
        (f"{TN}.max_angle", "largest principal angle (rad)", True),
        (f"{TN}.on_target_mass", "mass fraction within 0.1 rad", False),
        (f"{TN}.off_subspace", "energy of W off the teacher span", True),
    ]
    for ax, (column, label, logy) in zip(axes[0], panels, strict=True):
        first_seed = min(seed for _, seed in runs)
        for (reg, seed), tr in sorted(runs.items()):
            ax.plot(tr["step"], tr[column], color="C3" if reg else "C0", alpha=0.8,
                    label=("weight decay" if reg else "no regulariser")
                    if seed == first_seed else None)
        bounds = [tr.loc[tr["stage"].diff() > 0, "step"] for tr in runs.values()]
        for b in bounds[0]:
            ax.axvline(b, color="gray", ls=":", lw=0.8)
        ax.set_xlabel("GD step (dotted: stage boundaries)")
        ax.set_ylabel(label)
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    written = [plots.save(fig, folder, "stages")]

    weights = np.asarray(data.spec["teacher"]["weights"], float)
    fig, ax = plots.figure(1, width=4.6)
    x = np.arange(len(weights))
    for k, reg in enumerate((False, True)):
        masses = np.array([[tr[f"{TN}.mass_{i}"].iloc[-1] for i in x]
                           for (r, _), tr in runs.items() if r == reg])
        ax.bar(x + (k - 0.5) * 0.35, masses.mean(axis=0), 0.35,
               yerr=masses.std(axis=0), label="weight decay" if reg else "no regulariser",
               color="C3" if reg else "C0")
    ax.scatter(x, weights, color="k", marker="_", s=400, zorder=3, label="teacher a*_i")
    ax.set_xticks(x)
    ax.set_xticklabels([f"w*_{i + 1}" for i in x])
    ax.set_ylabel("signed mass within 0.1 rad")
    ax.legend(fontsize=7)
    written.append(plots.save(fig, folder, "teacher_mass"))
    return written


RECIPE = Recipe(
    name="local-regularized",
    title="regularised local convergence: weight decay after a low loss moves the output mass "
    "onto the teacher's neurons (beside the same run without it)",
    paper="Zhou & Ge (2024), How does gradient descent learn features -- a local analysis for "
    "regularized two-layer neural networks (arXiv 2406.01766)",
    claims=claims,
    figures=figures,
)
