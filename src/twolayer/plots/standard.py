"""The standard figures of any store (``twolayer plot STORE``).

For each sweep of the store: every error metric against the swept parameter (mean and standard
error over seeds, one series per metric and per value of a second swept parameter; theory
predictions such as ``ridge_theory.test_mse`` as dashed lines of their seed means), overlaps and
outlier counts against it when measured, the singular-value histogram of W with the
Marchenko–Pastur density where a spectrum was stored, and training trajectories where recorded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from twolayer import plots
from twolayer.experiment import Store, flatten, load, load_arrays, load_trajectory

ERROR_METRIC = re.compile(r"\.(test|train)_(mse|err01)$")
#: Measurements whose values are theory predictions: drawn as lines beside the measured points.
THEORY_MEASUREMENTS = ("ridge_theory.", "spiked_rf_theory.", "spike_theory.")
MAX_SERIES = 6


def swept_columns(runs: pd.DataFrame, config_columns: list[str]) -> list[str]:
    """Config columns that vary across the runs (seed excluded), numeric ones first."""
    out = [c for c in config_columns if c in runs and runs[c].dropna().map(repr).nunique() > 1]
    numeric = [c for c in out if pd.api.types.is_numeric_dtype(runs[c])]
    return numeric + [c for c in out if c not in numeric]


def config_columns(store: str | Path, sweep: str) -> list[str]:
    """The flattened config columns of a sweep's runs (as ``twolayer.load`` names them)."""
    with Store(store, create=False) as st:
        records = st.records(sweep)
    names: dict[str, None] = {}
    for rec in records:
        names.update(dict.fromkeys(flatten(rec["config"])))
    return list(names)


def plot_store(store: str | Path, out: str | Path, sweep: str | None = None) -> list[Path]:
    """Draw the standard figures of ``store`` into ``out``; returns the PNG paths."""
    frame = load(store, sweep=sweep)
    done = frame[frame["status"] == "done"]
    written: list[Path] = []
    for name, runs in done.groupby("sweep"):
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))
        swept = swept_columns(runs, config_columns(store, str(name)))
        if swept and pd.api.types.is_numeric_dtype(runs[swept[0]]):
            written += _metric_figures(runs, swept, out, stem)
        written += _spectrum_figure(store, runs, out, stem)
        written += _trajectory_figure(store, runs, out, stem)
    return written


def _series(runs: pd.DataFrame, swept: list[str]) -> list[tuple[str, pd.DataFrame]]:
    if len(swept) < 2:
        return [("", runs)]
    second = swept[1]
    values = list(dict.fromkeys(runs[second].map(repr)))[:MAX_SERIES]
    return [(f"{second}={v}", runs[runs[second].map(repr) == v]) for v in values]


def _metric_figures(runs: pd.DataFrame, swept: list[str], out: str | Path, stem: str
                    ) -> list[Path]:
    x = swept[0]
    groups = {
        "errors": [c for c in runs.columns if ERROR_METRIC.search(c) and ".test_" in c],
        "overlaps": [c for c in runs.columns if c.endswith(("top_overlap", "subspace_overlap"))],
        "outliers": [c for c in runs.columns
                     if c.endswith("_count") and c.startswith(("outliers", "spike_theory"))],
    }
    written = []
    for kind, columns in groups.items():
        columns = [c for c in columns if runs[c].notna().any()]
        if not columns:
            continue
        fig, ax = plots.figure()
        for k, column in enumerate(columns[:MAX_SERIES]):
            theory = column.startswith(THEORY_MEASUREMENTS)
            for j, (label, part) in enumerate(_series(runs, swept)):
                stats = plots.mean_and_sem(part, x, column)
                name = f"{column} {label}".strip()
                if theory:  # a prediction: its seed mean as a line
                    plots.theory_line(ax, stats.index, stats["mean"], label=name,
                                      color=f"C{(k + j) % 10}", ls="--")
                else:
                    plots.measured(ax, stats, label=name, marker="os^vD<>"[k % 7])
        ax.set_xlabel(x)
        ax.set_ylabel(kind)
        if kind == "errors" and (runs[columns].to_numpy(float) > 0).all():
            ax.set_yscale("log")
        ax.legend(fontsize=6)
        ax.set_title(f"{stem}: {kind}")
        written.append(plots.save(fig, out, f"{stem}_{kind}"))
    return written


def _spectrum_figure(store: str | Path, runs: pd.DataFrame, out: str | Path, stem: str
                     ) -> list[Path]:
    if "spectrum.W_top" not in runs.columns or "student.N" not in runs.columns:
        return []
    row = runs.sort_values("spectrum.W_top").iloc[-1]
    arrays = load_arrays(store, row["id"])
    if "spectrum.W_sv" not in arrays:
        return []
    N, d = int(row["student.N"]), int(row["teacher.d"])
    scale = float(row.get("student.w_scale", 1.0)) ** 2
    fig, ax = plots.figure()
    plots.spectrum_histogram(ax, arrays["spectrum.W_sv"], N=N, d=d, scale=scale)
    ax.set_title(f"{stem}: singular values of W (run {row['id'][:8]})")
    ax.legend(fontsize=7)
    return [plots.save(fig, out, f"{stem}_spectrum")]


def _trajectory_figure(store: str | Path, runs: pd.DataFrame, out: str | Path, stem: str
                       ) -> list[Path]:
    frames = {}
    for _, row in runs.head(MAX_SERIES).iterrows():
        traj = load_trajectory(store, row["id"])
        if len(traj) > 1:
            frames[f"{row['id'][:8]} (seed {row['seed']})"] = traj
    if not frames:
        return []
    columns = [c for c in next(iter(frames.values())).columns if c != "step"][:3]
    fig, axes = plots.figure(len(columns))
    for ax, column in zip(axes[0] if len(columns) > 1 else [axes], columns, strict=True):
        positive = all((f[column] > 0).all() for f in frames.values() if column in f)
        plots.trajectories(ax, frames, column, logy=positive)
        ax.legend(fontsize=6)
    return [plots.save(fig, out, f"{stem}_trajectories")]
