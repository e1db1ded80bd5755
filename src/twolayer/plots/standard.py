"""The standard figures of any store (``twolayer plot STORE``; docs/cli.md, "Figures").

For each sweep of the store: every test error against the swept parameter with the most values
(a categorical axis when none is numeric, e.g. a sweep over activation names; mean and standard
error over seeds, one series per value of the next swept parameter for the metrics that depend
on it: a first-layer quantity is drawn once, not once per readout size; theory predictions such
as ``ridge_theory.test_mse`` or ``spike_theory.W_top_overlap`` as dashed lines of their seed
means, in the colour of what they predict, predicted counts as steps), overlaps and outlier
counts against it when measured, the singular-value histogram of W with the Marchenko–Pastur
density where a spectrum was stored, and training trajectories where recorded. Axes and legends
are labelled in words (:mod:`twolayer.plots.labels`), titles give the parameters the runs share.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.container import Container
from matplotlib.figure import Figure

from twolayer import plots
from twolayer.experiment import Store, flatten, load, load_arrays, load_trajectory
from twolayer.plots import labels

#: Test errors: ``readout.test_mse`` ..., and theory's ``ridge_theory.rf_test_mse``.
TEST_ERROR = re.compile(r"\.(rf_)?test_(mse|err01)$")
#: Measurements whose values are theory predictions: drawn as lines beside the measured points.
THEORY_MEASUREMENTS = ("ridge_theory.", "spiked_rf_theory.", "spike_theory.",
                       "online_sgd_theory.")
#: Theory columns whose measured counterpart has another name (the others share their key).
PREDICTS = {
    "ridge_theory.test_mse": "readout.test_mse",
    "ridge_theory.rf_test_mse": "random_features.test_mse",
    "spiked_rf_theory.test_mse": "readout.test_mse",
    "spiked_rf_theory.rf_test_mse": "random_features.test_mse",
    "online_sgd_theory.test_mse": "network.test_mse",
}
#: Trajectory columns with the online-SGD ODE's prediction (an array of the run, drawn dashed
#: against its own ``online_sgd_theory.steps``; twolayer.measure.online_sgd).
ODE_CURVES = {
    "order_parameters.test_mse": "online_sgd_theory.test_mse_curve",
    "test_mse": "online_sgd_theory.test_mse_curve",
    "order_parameters.eg": "online_sgd_theory.eg_curve",
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
    with plots.style():
        for name, runs in done.groupby("sweep"):
            stem = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))
            swept = swept_columns(runs, config_columns(store, str(name)))
            title = title_of(str(name), runs, swept)
            if swept:
                written += _metric_figures(runs, swept, out, stem, title)
            written += _spectrum_figure(store, runs, out, stem, swept)
            written += _trajectory_figure(store, runs, out, stem, swept)
    return written


def _series(runs: pd.DataFrame, swept: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """The runs split by the second swept key, each part labelled ``n_r = 120``."""
    if len(swept) < 2:
        return [("", runs)]
    second = swept[1]
    symbol = labels.sweep_symbol(second, runs)
    values = list(dict.fromkeys(runs[second].map(repr)))[:MAX_SERIES]
    return [(f"{symbol} = {_value_text(runs[second][runs[second].map(repr) == v].iloc[0])}",
             runs[runs[second].map(repr) == v]) for v in values]


def _value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


#: Parameters named in the title of a sweep's figures when they are the same for all its runs.
TITLE_KEYS = (
    ("teacher.d", "d"), ("student.N", "N"), ("train.n", "n"), ("readout.n", "n_r"),
    ("teacher.link", "link"), ("student.activation.name", "sigma"),
)


def title_of(name: str, runs: pd.DataFrame, swept: list[str]) -> str:
    """``sweep_eta: d = 60, N = 120, n = 240, link tanh, sigma relu; 3 seeds``: the sweep's
    name and the parameters its runs share (the swept ones are on the axes and in the legend).
    """
    parts = []
    for key, symbol in TITLE_KEYS:
        if key in runs and key not in swept and runs[key].map(repr).nunique() == 1:
            value = runs[key].iloc[0]
            if isinstance(value, str):
                parts.append(f"{symbol} {value}")
            elif pd.notna(value):
                parts.append(f"{symbol} = {_value_text(value)}")
    seeds = runs["seed"].nunique() if "seed" in runs else 1
    fixed = ", ".join(parts)
    return f"{name}: {fixed}; {seeds} seed{'s' if seeds > 1 else ''}".replace(": ;", ":")


def _point_text(row: pd.Series, swept: list[str]) -> str:
    """``c = 16, n_r = 120, seed 2``: where one run sits in its sweep."""
    parts = [f"{labels.sweep_symbol(k)} = {_value_text(row[k])}" for k in swept if k in row]
    return ", ".join([*parts, f"seed {row['seed']}"])


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


def _metric_figures(runs: pd.DataFrame, swept: list[str], out: str | Path, stem: str,
                    title: str) -> list[Path]:
    x, ticks = swept[0], None
    if not pd.api.types.is_numeric_dtype(runs[x]):  # e.g. a sweep over activation names
        runs, x, ticks = _categorical_axis(runs, x)
    groups = {
        "errors": [c for c in runs.columns if TEST_ERROR.search(c)],
        "overlaps": [c for c in runs.columns if c.endswith(("top_overlap", "subspace_overlap"))],
        "outliers": [c for c in runs.columns
                     if c.endswith("_count") and c.startswith(("outliers", "spike_theory"))],
    }
    series = _series(runs, swept)
    others = [x, *swept[2:]]
    written = []
    for kind, columns in groups.items():
        columns = [c for c in columns if runs[c].notna().any() and not _duplicate(runs, c)]
        columns = columns[: 2 * MAX_SERIES]
        if not columns:
            continue
        measured = [c for c in columns if not c.startswith(THEORY_MEASUREMENTS)]
        theories = [c for c in columns if c.startswith(THEORY_MEASUREMENTS)]

        def parts(column: str) -> list[tuple[str, pd.DataFrame]]:
            # a metric that does not change with the series key (a W-only quantity against
            # the readout size) is drawn once, from one series' runs (not their union: the
            # shared runs would be counted once per series in the error bar)
            if len(series) > 1 and labels.depends_on(runs, column, swept[1], others):
                return series
            return [("", series[0][1])]

        fig, ax = plots.figure()
        colours: dict[tuple[str, str], str] = {}
        for k, column in enumerate(measured):
            for label, part in parts(column):
                colour = colours[(column, label)] = f"C{len(colours) % 10}"
                plots.measured(ax, plots.mean_and_sem(part, x, column), marker="os^vD<>"[k % 7],
                               label=_legend(column, label), color=colour)
        for t, column in enumerate(theories):
            target = predicted_column(column, measured)
            for label, part in parts(column):
                colour = colours.get((target, label)) or colours.get((target, ""))
                if colour is None:
                    colour = colours[(column, label)] = f"C{len(colours) % 10}"
                dash = "--" if target else ("--", ":", "-.")[t % 3]
                part = _outside_domain(ax, part, x, column, _legend(column, label))
                if part.empty:
                    continue
                stats = plots.mean_and_sem(part, x, column)
                if ticks is not None:  # categories are not a continuum: a bar per category
                    style = {"ls": "none", "marker": "_", "markersize": 12, "mew": 1.2}
                elif column.endswith("_count"):  # an integer jumps between sweep points
                    style = {"ls": dash, "drawstyle": "steps-mid"}
                else:
                    style = {"ls": dash}
                plots.theory_line(ax, stats.index, stats["mean"], color=colour,
                                  label=_legend(column, label), **style)
        ax.set_xlabel(labels.sweep_label(swept[0], runs))
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks, rotation=30, ha="right")
        ax.set_ylabel(_y_label(kind, columns))
        if kind == "errors" and (runs[columns].to_numpy(float) > 0).all():
            ax.set_yscale("log")
        if kind == "outliers":
            ax.yaxis.get_major_locator().set_params(integer=True)
        _place_legend(fig, ax)
        ax.set_title(title)
        written.append(plots.save(fig, out, f"{stem}_{kind}"))
    return written


def _outside_domain(ax: Axes, part: pd.DataFrame, x: str, column: str, label: str
                    ) -> pd.DataFrame:
    """Runs whose theory says it is outside its domain (``<measurement>.in_domain`` = 0, e.g.
    ``ridge_theory`` after a large step: docs/measurements.md) are drawn as grey crosses, not as
    a prediction; the runs inside it are returned for the line."""
    flag = f"{column.split('.', 1)[0]}.in_domain"
    if flag not in part or not (part[flag] == 0.0).any():
        return part
    outside = plots.mean_and_sem(part[part[flag] == 0.0], x, column)
    ax.plot(outside.index, outside["mean"], ls="none", marker="x", color="0.6",
            label=f"{label} (outside its domain)")
    return part[part[flag] != 0.0]


def _duplicate(runs: pd.DataFrame, column: str) -> bool:
    """A subspace overlap equal to the top overlap in every run (a single-index teacher: r = 1)
    would hide under it: drawn once, as the top overlap."""
    twin = column.replace("_subspace_overlap", "_top_overlap")
    if twin == column or twin not in runs:
        return False
    a, b = runs[column].to_numpy(float), runs[twin].to_numpy(float)
    return bool(((a == b) | (abs(a - b) <= 1e-12) | (pd.isna(a) & pd.isna(b))).all())


def _legend(column: str, series_label: str) -> str:
    text = labels.metric_label(column)
    return f"{text}, {series_label}" if series_label else text


def _y_label(kind: str, columns: list[str]) -> str:
    if kind != "errors":
        return labels.KIND_AXES[kind]
    kinds = {c.rsplit("_", 1)[-1] for c in columns}
    return {"mse": "test MSE", "err01": "test error (0-1)"}.get(kinds.pop(), "test error") if (
        len(kinds) == 1) else labels.KIND_AXES[kind]


#: Legend entries that fit inside a single-column figure; more go beside the axes, in a figure
#: as wide as both columns.
LEGEND_INSIDE = 4


def _place_legend(fig: Figure, ax: Axes) -> None:
    handles, texts = ax.get_legend_handles_labels()
    # measurements (error bars) first, then the theory lines, each in drawing order
    order = sorted(range(len(texts)), key=lambda i: not isinstance(handles[i], tuple | Container))
    handles, texts = [handles[i] for i in order], [texts[i] for i in order]
    if len(texts) <= LEGEND_INSIDE:
        ax.legend(handles, texts, loc="best")
        return
    fig.set_size_inches(plots.DOUBLE_COLUMN, fig.get_size_inches()[1])
    ax.legend(handles, texts, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _spectrum_figure(store: str | Path, runs: pd.DataFrame, out: str | Path, stem: str,
                     swept: list[str]) -> list[Path]:
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
    # W does not depend on the readout: name only the keys the first layer depends on
    keys = [k for k in swept if not k.startswith(("readout.", "evaluate.", "measure"))
            and k not in ("student.N", "teacher.d")]
    ax.set_title(f"singular values of W: N = {N}, d = {d}, {_point_text(row, keys)}")
    ax.set_xlabel("singular value s of W")
    ax.legend()
    return [plots.save(fig, out, f"{stem}_spectrum")]


def _trajectory_figure(store: str | Path, runs: pd.DataFrame, out: str | Path, stem: str,
                       swept: list[str]) -> list[Path]:
    frames = {}
    for _, row in runs.head(MAX_SERIES).iterrows():
        traj = load_trajectory(store, row["id"])
        if len(traj) > 1:
            frames[_point_text(row, swept)] = traj
    if not frames:
        return []
    columns = [c for c in next(iter(frames.values())).columns if c != "step"]
    # a column the online-SGD ODE predicts comes first, so that its prediction is drawn
    columns = ([c for c in ODE_CURVES if c in columns][:1]
               + [c for c in columns if c not in ODE_CURVES])[:3]
    fig, axes = plots.figure(len(columns))
    for ax, column in zip(axes[0] if len(columns) > 1 else [axes], columns, strict=True):
        positive = all((f[column] > 0).all() for f in frames.values() if column in f)
        plots.trajectories(ax, frames, column, logy=positive)
        if column in ODE_CURVES:
            _ode_overlay(ax, store, runs, ODE_CURVES[column])
        ax.set_ylabel(labels.trajectory_label(column))
        ax.legend()
    return [plots.save(fig, out, f"{stem}_trajectories")]


def _ode_overlay(ax: Axes, store: str | Path, runs: pd.DataFrame, curve: str) -> None:
    """The online-SGD ODE's prediction for each drawn run, dashed, in its run's colour
    (plots.trajectories draws the runs in the colour cycle's order)."""
    for k, (_, row) in enumerate(runs.head(MAX_SERIES).iterrows()):
        arrays = load_arrays(store, row["id"])
        if curve in arrays and "online_sgd_theory.steps" in arrays:
            ax.plot(arrays["online_sgd_theory.steps"], arrays[curve], ls="--", lw=1.0,
                    color=f"C{k % 10}", label="ODE (online SGD)" if k == 0 else None)
