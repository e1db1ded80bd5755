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


def claims(data: RecipeData) -> list[Claim]:
    runs = _runs(data)
    weights = np.asarray(data.spec["teacher"]["weights"], float)
    out: list[Claim] = []
    first = [_stage_end(tr, 0)["train_loss"] / tr["train_loss"].iloc[0] for tr in runs.values()]
    out.append(
        claim_less(
            "stage1-low-loss",
            "stage 1 (plain GD) reaches a low loss: train loss at its end / at init (largest)",
            float(np.max(first)),
            1e-2,
            "< 1e-2",
        )
    )
    for reg, label in ((True, "regularised"), (False, "control")):
        end1 = _mean(runs, reg, lambda tr: _stage_end(tr, 0)[f"{TN}.max_angle"])
        last = _mean(runs, reg, lambda tr: tr[f"{TN}.max_angle"].iloc[-1])
        out.append(
            claim_less(
                f"angles-shrink-late-{label}",
                f"{label}: largest principal angle between the top-r right singular subspace of "
                "W and the teacher span, end of training (radians, mean over seeds), below its "
                "value at the end of stage 1",
                last,
                end1,
                f"end of stage 1: {end1:.4g}",
            )
        )
    final = {
        reg: {
            key: _mean(runs, reg, lambda tr, k=key: tr[f"{TN}.{k}"].iloc[-1])
            for key in ("on_target_mass", "off_target_mass", "weighted_angle", "off_subspace")
        }
        for reg in (True, False)
    }
    out.append(
        claim_greater(
            "mass-concentrates",
            "fraction of the output mass scale |a_j| ||w_j|| within 0.1 rad of a teacher neuron "
            "at the end: regularised (measured) vs control (expected column)",
            final[True]["on_target_mass"],
            final[False]["on_target_mass"],
            f"control {final[False]['on_target_mass']:.4g}",
        )
    )
    out.append(
        claim_less(
            "off-target-mass-shrinks",
            "output mass off the teacher neurons at the end: regularised vs control",
            final[True]["off_target_mass"],
            final[False]["off_target_mass"],
            f"control {final[False]['off_target_mass']:.4g}",
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
        )
    )

    def mass_error(tr: pd.DataFrame) -> float:
        m = np.array([tr[f"{TN}.mass_{i}"].iloc[-1] for i in range(len(weights))])
        return float(np.max(np.abs(m - weights)))

    err_reg, err_ctl = _mean(runs, True, mass_error), _mean(runs, False, mass_error)
    out.append(
        claim_less(
            "mass-recovers-teacher-weights",
            "signed mass within 0.1 rad of each teacher neuron vs its weight a*_i: largest "
            "|error| at the end (mean over seeds), regularised vs control",
            err_reg,
            err_ctl,
            f"control {err_ctl:.4g}",
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
        for (reg, seed), tr in sorted(runs.items()):
            ax.plot(tr["step"], tr[column], color="C3" if reg else "C0", alpha=0.8,
                    label=("weight decay" if reg else "no regulariser") if seed == 0 else None)
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
