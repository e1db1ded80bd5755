"""Recipe early-stage: early-stage convergence of GD/SGD on mildly parameterised two-layer
networks (square and logistic losses): most of the loss decrease and most of the change of the
activation patterns happen in the first few percent of the steps; with the logistic loss on
separable data the training loss keeps going to 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from twolayer import plots
from twolayer.recipes.base import Claim, Recipe, RecipeData, claim_greater, claim_less

LOSS = "train.loss"
BATCH = "train.batch_size"
PAT = "activation_patterns.frac_entries_changed"
EARLY = 0.1  # "early": the first 10% of the steps


def _label(row: pd.Series) -> str:
    bs = row[BATCH]
    algo = "GD" if bs is None or (isinstance(bs, float) and np.isnan(bs)) else f"SGD (batch {bs:g})"
    return f"{algo}, {row[LOSS]}"


def _runs(data: RecipeData) -> list[tuple[pd.Series, pd.DataFrame]]:
    return [(row, data.trajectory(row["id"])) for _, row in data.done.iterrows()]


def _at(tr: pd.DataFrame, fraction: float, column: str) -> float:
    step = fraction * tr["step"].max()
    return float(tr.loc[tr["step"] <= step, column].iloc[-1])


def claims(data: RecipeData) -> list[Claim]:
    runs = _runs(data)
    drop, pattern, late = [], [], []
    for _, tr in runs:
        loss = tr["train_loss"]
        drop.append((loss.iloc[0] - _at(tr, EARLY, "train_loss")) / (loss.iloc[0] - loss.iloc[-1]))
        pattern.append(_at(tr, EARLY, PAT) / tr[PAT].iloc[-1])
        late.append((tr[PAT].iloc[-1] - _at(tr, 0.5, PAT)) / tr[PAT].iloc[-1])
    out = [
        claim_greater(
            "loss-drops-early",
            f"fraction of the total training-loss decrease reached in the first {EARLY:.0%} "
            "of the steps (smallest over GD/SGD x square/logistic)",
            float(np.min(drop)),
            0.8,
            "> 0.8",
        ),
        claim_greater(
            "patterns-change-early",
            "fraction of the final changed (sample, neuron) activation signs already changed "
            f"after {EARLY:.0%} of the steps (smallest over runs)",
            float(np.min(pattern)),
            0.6,
            "> 0.6",
        ),
        claim_less(
            "patterns-settle",
            "share of the pattern change that happens in the second half of training (largest)",
            float(np.max(late)),
            0.2,
            "< 0.2",
        ),
    ]
    logistic = [tr for row, tr in runs if row[LOSS] == "logistic"]
    final = float(np.max([tr["train_loss"].iloc[-1] for tr in logistic]))
    ratio = float(np.max([tr["train_loss"].iloc[-1] / _at(tr, 0.5, "train_loss")
                          for tr in logistic]))
    out.append(
        claim_less(
            "logistic-loss-to-zero",
            "logistic loss on separable data: final training loss (largest over runs) small "
            "and still decreasing",
            final,
            0.02,
            "< 0.02",
        )
    )
    out.append(
        claim_less(
            "logistic-still-decreasing",
            "logistic: final training loss / loss at half of the steps (largest; ~1/2 for a "
            "1/t decay)",
            ratio,
            0.8,
            "< 0.8",
        )
    )
    return out


def figures(data: RecipeData, folder: Path) -> list[Path]:
    runs = _runs(data)
    fig, axes = plots.figure(2, width=4.8)
    ax_l, ax_p = axes[0]
    seen = set()
    for row, tr in sorted(runs, key=lambda rt: _label(rt[0])):
        label = _label(row)
        k = sorted({_label(r) for r, _ in runs}).index(label)
        first = label not in seen
        seen.add(label)
        ax_l.plot(tr["step"] + 1, tr["train_loss"], color=f"C{k}", label=label if first else None)
        ax_p.plot(tr["step"] + 1, tr[PAT], color=f"C{k}", label=label if first else None)
    ax_l.set_xscale("log")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("step + 1")
    ax_l.set_ylabel("training loss")
    ax_l.legend(fontsize=7)
    ax_p.set_xscale("log")
    ax_p.set_xlabel("step + 1")
    ax_p.set_ylabel("activation signs changed since init")
    ax_p.legend(fontsize=7)
    return [plots.save(fig, folder, "loss_and_patterns")]


RECIPE = Recipe(
    name="early-stage",
    title="early-stage convergence: GD/SGD, square/logistic; the loss and the activation "
    "patterns change mostly early; logistic loss -> 0 on separable data",
    paper="Early stage convergence and global convergence of training mildly parameterized "
    "neural networks (NeurIPS 2022)",
    claims=claims,
    figures=figures,
)
