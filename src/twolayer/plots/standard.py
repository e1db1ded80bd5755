"""The standard figures of any store (``twolayer plot STORE``).

For each sweep of the store: every test error against the swept parameter with the most values
(a categorical axis when none is numeric, e.g. a sweep over activation names; mean and standard
error over seeds, one series per metric and per value of the next swept
parameter; theory predictions such as ``ridge_theory.test_mse`` or ``spike_theory.W_top_overlap``
as dashed lines of their seed means, in the colour of what they predict), overlaps and outlier
counts against it when measured, the singular-value histogram of W with the
Marchenko–Pastur density where a spectrum was stored, and training trajectories where recorded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from twolayer import plots
from twolayer.experiment import Store, flatten, load, load_arrays, load_trajectory

#: Test errors: ``readout.test_mse`` ..., and theory's ``ridge_theory.rf_test_mse``.
TEST_ERROR = re.compile(r"\.(rf_)?test_(mse|err01)$")
#: Measurements whose values are theory predictions: drawn as lines beside the measured points.
THEORY_MEASUREMENTS = ("ridge_theory.", "spiked_rf_theory.", "spike_theory.")
#: Theory columns whose measured counterpart has another name (the others share their key).
PREDICTS = {
    "ridge_theory.test_mse": "readout.test_mse",
    "ridge_theory.rf_test_mse": "random_features.test_mse",
    "spiked_rf_theory.test_mse": "readout.test_mse",
    "spiked_rf_theory.rf_test_mse": "random_features.test_mse",
}
MAX_SERIES = 6


def swept_columns(runs: pd.DataFrame, config_columns: list[str]) -> list[str]:
    """Config columns that vary across the runs (seed excluded): numeric ones first, those with
    more distinct values first (the first is the figures' x axis, the second their series)."""
    out = [c for c in config_columns if c in runs and runs[c].dropna().map(repr).nunique() > 1]
    numeric = [c for c in out if pd.api.types.is_numeric_dtype(runs[c])]
    numeric.sort(key=lambda c: -runs[c].dropna().nunique())  # stable: spec order among ties
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
        if swept:
            written += _metric_figures(runs, swept, out, stem)
        written += _spectrum_figure(store, runs, out, stem)
        written += _trajectory_figure(store, runs, out, stem)
    return written


def _series(runs: pd.DataFrame, swept: list[str]) -> list[tuple[str, pd.DataFrame]]:
    if len(swept) < 2:
        return [("", runs)]
    second = swept[1]
    short = second.rsplit(".", 1)[-1]
    values = list(dict.fromkeys(runs[second].map(repr)))[:MAX_SERIES]
    return [(f"{short}={v}", runs[runs[second].map(repr) == v]) for v in values]


def predicted_column(theory: str, columns: list[str]) -> str | None:
    """The measured column a theory column predicts: :data:`PREDICTS`, else the column with the
    same key after the measurement's name (``spike_theory.W_top`` -> ``outliers.W_top``)."""
    if theory in PREDICTS:
        return PREDICTS[theory] if PREDICTS[theory] in columns else None
    key = theory.split(".", 1)[1]
    return next((c for c in columns if not c.startswith(THEORY_MEASUREMENTS)
                 and c.split(".", 1)[1] == key), None)


def _categorical_axis(runs: pd.DataFrame, column: str) -> tuple[pd.DataFrame, str, list[str]]:
    """``runs`` with a column of positions 0, 1, ... for the values of a non-numeric ``column``
    (in order of appearance), its name and the values' labels (the x tick labels)."""
    labels = list(dict.fromkeys(runs[column].map(str)))
    position = f"{column} (position)"
    return runs.assign(**{position: runs[column].map(str).map(labels.index)}), position, labels


def _metric_figures(runs: pd.DataFrame, swept: list[str], out: str | Path, stem: str
                    ) -> list[Path]:
    x, ticks = swept[0], None
    if not pd.api.types.is_numeric_dtype(runs[x]):  # e.g. a sweep over activation names
        runs, x, ticks = _categorical_axis(runs, x)
    groups = {
        "errors": [c for c in runs.columns if TEST_ERROR.search(c)],
        "overlaps": [c for c in runs.columns if c.endswith(("top_overlap", "subspace_overlap"))],
        "outliers": [c for c in runs.columns
                     if c.endswith("_count") and c.startswith(("outliers", "spike_theory"))],
    }
    written = []
    for kind, columns in groups.items():
        columns = [c for c in columns if runs[c].notna().any()][: 2 * MAX_SERIES]
        measured = [c for c in columns if not c.startswith(THEORY_MEASUREMENTS)]
        theories = [c for c in columns if c.startswith(THEORY_MEASUREMENTS)]
        if not columns:
            continue
        series = _series(runs, swept)
        fig, ax = plots.figure(width=7.2)  # room for the legend beside the axes
        # one series: a colour per measured column, its theory in the same colour (dashed);
        # several: a colour per series, a marker per measured column, a dash per theory column
        for k, column in enumerate(measured):
            for j, (label, part) in enumerate(series):
                colour = f"C{(j if len(series) > 1 else k) % 10}"
                plots.measured(ax, plots.mean_and_sem(part, x, column), marker="os^vD<>"[k % 7],
                               label=f"{column} {label}".strip(), color=colour)
        for t, column in enumerate(theories):
            target = predicted_column(column, measured)
            for j, (label, part) in enumerate(series):
                if len(series) > 1:
                    colour, dash = f"C{j % 10}", ("--", ":", "-.")[t % 3]
                else:
                    index = measured.index(target) if target else len(measured) + t
                    colour, dash = f"C{index % 10}", "--"
                stats = plots.mean_and_sem(part, x, column)
                # categories are not a continuum: a bar per category instead of a line
                style = {"ls": dash} if ticks is None else {"ls": "none", "marker": "_",
                                                            "markersize": 18, "mew": 1.5}
                plots.theory_line(ax, stats.index, stats["mean"], color=colour,
                                  label=f"{column} {label}".strip(), **style)
        ax.set_xlabel(swept[0])
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(kind)
        if kind == "errors" and (runs[columns].to_numpy(float) > 0).all():
            ax.set_yscale("log")
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
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
    predicted = (  # the one-step theory's outlier for this run, when measured and above threshold
        [float(row["spike_theory.W_top"])]
        if row.get("spike_theory.W_count", 0.0) == 1.0 and pd.notna(row.get("spike_theory.W_top"))
        else []
    )
    fig, ax = plots.figure()
    threshold = row.get("outliers.W_threshold")
    plots.spectrum_histogram(ax, arrays["spectrum.W_sv"], N=N, d=d, scale=scale,
                             predicted_outliers=predicted,
                             threshold=float(threshold) if pd.notna(threshold) else None)
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
