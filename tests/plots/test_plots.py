"""Tests of the figure helpers (twolayer.plots): the Marchenko–Pastur singular-value density the
spectrum figures overlay, the seed statistics behind every error bar, and the tick labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.integrate

from twolayer import plots
from twolayer.plots.labels import METRICS
from twolayer.theory.marchenko_pastur import mp_singular_value_edges


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_mp_singular_value_density_has_mass_one(c: float, scale: float) -> None:
    lo, hi = mp_singular_value_edges(c, scale)
    mass, _ = scipy.integrate.quad(plots.mp_singular_value_density, lo, hi, args=(c, scale),
                                   limit=200)
    assert mass == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("N", "d"), [(600, 300), (300, 600)])
def test_mp_singular_value_density_matches_a_gaussian_matrix(N: int, d: int) -> None:
    # Fraction of the min(N, d) singular values of one N x d matrix (entries N(0, 1/d)) below
    # each quartile of the density: the empirical CDF of a Wigner-type matrix fluctuates by
    # O(1/min(N, d)), so 0.02 is ~6x the fluctuation at these sizes and would catch a density
    # off by a factor 2 in s or in c.
    rng = np.random.default_rng(0)
    sv = np.linalg.svd(rng.standard_normal((N, d)) / np.sqrt(d), compute_uv=False)
    c = N / d
    lo, hi = mp_singular_value_edges(c)
    for q in np.linspace(lo, hi, 6)[1:-1]:
        expected, _ = scipy.integrate.quad(plots.mp_singular_value_density, lo, q, args=(c,))
        assert np.mean(sv <= q) == pytest.approx(expected, abs=0.02)


def test_mean_and_sem_over_seeds() -> None:
    frame = pd.DataFrame({"x": [1, 1, 1, 2], "seed": [0, 1, 2, 0], "err": [1.0, 2.0, 4.0, 3.0]})
    stats = plots.mean_and_sem(frame, "x", "err")
    assert stats.loc[1, "mean"] == pytest.approx(7 / 3)
    assert stats.loc[1, "sem"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1) / np.sqrt(3))
    assert stats.loc[1, "count"] == 3
    assert stats.loc[2, "sem"] == 0.0  # one seed: no error bar, not NaN


def _tick_labels(fig, axis) -> list[str]:
    fig.canvas.draw()
    ticks = axis.get_majorticklabels() + axis.get_minorticklabels()
    return [t.get_text() for t in ticks if t.get_text()]


def test_short_log_axis_gets_plain_labels_and_wide_one_keeps_powers_of_ten() -> None:
    fig, axes = plots.figure(2)
    short, wide = axes[0]
    short.plot([0, 1], [0.95, 1.35], "o")
    wide.plot([0, 1], [1e-4, 1e-1], "o")
    for ax in (short, wide):
        ax.set_yscale("log")
        plots.plain_log_ticks(ax)
    short_labels = _tick_labels(fig, short.yaxis)
    assert short_labels and all("times" not in t and "^" not in t for t in short_labels)
    assert {float(t) for t in short_labels} >= {1.0, 1.2}
    assert all("10^" in t for t in _tick_labels(fig, wide.yaxis))


def test_save_writes_png_and_pdf(tmp_path) -> None:
    fig, ax = plots.figure()
    ax.semilogy([1, 2], [0.2, 0.3])
    png = plots.save(fig, tmp_path / "figs", "demo")
    assert png == tmp_path / "figs" / "demo.png"
    assert png.stat().st_size > 0 and (tmp_path / "figs" / "demo.pdf").stat().st_size > 0


def test_standard_figures_draw_theory_predictions_as_lines(tmp_path, drawn_figures):
    from twolayer.experiment import run_spec
    from twolayer.plots import standard

    spec = {
        "name": "theory_lines",
        "seeds": 2,
        "teacher": {"name": "single_index", "d": 20, "link": "tanh", "noise": 0.1},
        "student": {"N": 40},
        "train": {"protocol": "giant_steps", "n": 60, "steps": [{"eta": {"c": 1.0}}]},
        "readout": {"n": 60, "lambdas": [1e-2]},
        "evaluate": {"n_test": 200},
        "measure": ["ridge_theory"],
        "sweep": {"train.steps[0].eta.c": [0.5, 1.0, 2.0]},
        "executor": {"kind": "serial"},
        "store": str(tmp_path / "s.sqlite"),
    }
    run_spec(spec)
    drawn = drawn_figures
    standard.plot_store(tmp_path / "s.sqlite", tmp_path)
    ax = drawn["theory_lines_errors"].axes[0]
    theory, readout = METRICS["ridge_theory.test_mse"], METRICS["readout.test_mse"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert theory in lines  # a line through the 3 seed means
    assert len(lines[theory].get_xdata()) == 3
    measured = {c.get_label(): c for c in ax.containers}  # error bars
    assert readout in measured and theory not in measured
    # the prediction is drawn in the colour of what it predicts
    points = measured[readout].lines[0]
    assert lines[theory].get_color() == points.get_color()
    assert lines[theory].get_linestyle() == "--"


def test_swept_columns_put_the_longest_numeric_axis_first_and_theory_finds_its_counterpart():
    from twolayer.plots.standard import predicted_column, swept_columns

    runs = pd.DataFrame({"readout.n": [1, 2] * 3, "train.c": [0.0, 0.0, 1.0, 1.0, 2.0, 2.0],
                         "name": ["a", "b"] * 3, "fixed": [5] * 6})
    assert swept_columns(runs, ["readout.n", "fixed", "name", "train.c"]) == [
        "train.c", "readout.n", "name"]
    measured = ["outliers.W_top", "readout.test_mse", "random_features.test_mse"]
    assert predicted_column("spike_theory.W_top", measured) == "outliers.W_top"
    assert predicted_column("ridge_theory.test_mse", measured) == "readout.test_mse"
    assert predicted_column("ridge_theory.rf_test_mse", measured) == "random_features.test_mse"
    assert predicted_column("spike_theory.W_count", measured) is None


def test_a_sweep_over_names_gets_a_categorical_axis(tmp_path, monkeypatch):
    from twolayer.experiment import run_spec
    from twolayer.plots import standard

    spec = {
        "name": "names",
        "teacher": {"name": "single_index", "d": 10, "link": "tanh"},
        "student": {"N": 20},
        "train": {"protocol": "giant_steps", "n": 30},
        "readout": {"n": 30, "lambdas": [1e-2]},
        "evaluate": {"n_test": 100},
        "measure": ["ridge_theory"],
        "sweep": {"student.activation": ["relu", "tanh", "erf"]},
        "executor": {"kind": "serial"},
        "store": str(tmp_path / "n.sqlite"),
    }
    run_spec(spec)
    drawn: dict[str, object] = {}
    monkeypatch.setattr(standard.plots, "save",
                        lambda fig, folder, stem: drawn.setdefault(stem, fig) and tmp_path)
    standard.plot_store(tmp_path / "n.sqlite", tmp_path)
    ax = drawn["names_errors"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["relu", "tanh", "erf"]
    theory = next(ln for ln in ax.get_lines()
                  if ln.get_label() == METRICS["ridge_theory.test_mse"])
    # at d = 10 the tanh and erf students' rows overlap the target enough for the features'
    # shared h_k(<beta, x>) to matter (ridge_theory.in_domain = 0: measured 0.04 against 0.07
    # predicted): drawn as grey crosses, not as a prediction (docs/measurements.md)
    assert theory.get_linestyle() == "None" and list(theory.get_xdata()) == [0]
    outside = next(ln for ln in ax.get_lines() if ln.get_label().endswith("outside its domain)"))
    assert outside.get_marker() == "x" and list(outside.get_xdata()) == [1, 2]


# --------------------------------------------------------------------------------------------
# figures a paper can use (issue 18): labels in words, W-only quantities not split by the
# readout size, parameters in titles, counts as steps, column widths


def _drawn_figures(tmp_path, monkeypatch, spec) -> dict:
    from twolayer.experiment import run_spec
    from twolayer.plots import standard

    run_spec(spec)
    drawn: dict[str, object] = {}

    def keep(fig, folder, stem):  # the figure as save() gets it; one is really saved
        drawn[stem] = (fig, fig.get_size_inches().copy())  # (300 dpi PNGs cost ~1 s each)
        return save(fig, folder, stem) if stem.endswith("_errors") else Path(folder) / stem

    save = standard.plots.save
    monkeypatch.setattr(standard.plots, "save", keep)
    standard.plot_store(spec["store"], tmp_path / "figs")
    return drawn


def test_standard_figures_are_labelled_in_words_and_do_not_split_w_only_quantities(
        tmp_path, monkeypatch):
    from twolayer.plots.labels import KIND_AXES

    spec = {
        "name": "eta_readout",
        "seeds": 2,
        "teacher": {"name": "single_index", "d": 20, "link": "tanh", "noise": 0.1},
        "student": {"N": 40},
        "train": {"protocol": "giant_steps", "n": 60},  # the default single step, swept below
        "readout": {"n": 30, "lambdas": [1e-2], "baselines": ["random_features"]},
        "evaluate": {"n_test": 200},
        "measure": [{"name": "spectrum", "features_spectrum": False},
                    {"name": "outliers", "features_outliers": False},
                    "overlaps", "spike_theory", "ridge_theory"],
        "sweep": {"train.steps[0].eta.c": [0.5, 4.0, 16.0], "readout.n": [30, 60]},
        "executor": {"kind": "serial"},
        "store": str(tmp_path / "s.sqlite"),
    }
    spec["train"]["steps"] = [{"eta": {"c": 1.0, "alpha": 0.5, "S": "N"}}]
    drawn = _drawn_figures(tmp_path, monkeypatch, spec)
    assert set(drawn) >= {"eta_readout_errors", "eta_readout_overlaps", "eta_readout_outliers",
                          "eta_readout_spectrum"}
    for stem, (fig, size) in drawn.items():
        ax = fig.axes[0]
        assert ax.get_xlabel() and "." not in ax.get_xlabel().split("(")[0], stem
        assert ax.get_ylabel() and "_" not in ax.get_ylabel(), stem
        # parameters in the title, never a run hash
        assert "d = 20" in ax.get_title() or "d = 20" in ax.get_title().replace(",", ""), stem
        assert all(rid[:8] not in ax.get_title() for rid in _run_ids(spec["store"])), stem
        # a single column (3.25 in) or both columns (6.75 in) of a paper
        assert size[0] in (plots.SINGLE_COLUMN, plots.DOUBLE_COLUMN), (stem, size)
        if stem.endswith("_errors"):
            assert (tmp_path / "figs" / f"{stem}.pdf").stat().st_size > 0
    errors = drawn["eta_readout_errors"][0].axes[0]
    assert errors.get_xlabel() == "step size eta / sqrt(N)"
    assert errors.get_ylabel() == "test MSE"
    legend = [t.get_text() for t in errors.get_legend().get_texts()]
    # the readout error depends on the readout size: one entry per size
    assert f"{METRICS['readout.test_mse']}, n_r = 30" in legend
    assert f"{METRICS['readout.test_mse']}, n_r = 60" in legend
    overlaps = drawn["eta_readout_overlaps"][0].axes[0]
    assert overlaps.get_ylabel() == KIND_AXES["overlaps"]
    entries = [t.get_text() for t in overlaps.get_legend().get_texts()]
    assert all("n_r" not in e for e in entries)  # W-only: drawn once, not per readout size
    assert METRICS["overlaps.W_top_overlap"] in entries
    assert len(entries) == len(set(entries)) <= 6
    outliers = drawn["eta_readout_outliers"][0].axes[0]
    count = next(ln for ln in outliers.get_lines()
                 if ln.get_label() == METRICS["spike_theory.W_count"])
    assert count.get_drawstyle() == "steps-mid"  # an integer count jumps, it does not ramp
    assert [c.get_label() for c in outliers.containers] == [METRICS["outliers.W_count"]]


def _run_ids(store) -> list[str]:
    from twolayer.experiment import load

    return list(load(store)["id"])


def test_depends_on_follows_the_data_and_the_measurement_name():
    from twolayer.plots.labels import depends_on

    runs = pd.DataFrame({
        "c": [0, 0, 1, 1] * 2, "readout.n": [10, 20] * 4, "seed": [0] * 4 + [1] * 4,
        "readout.test_mse": [1.0, 0.5, 0.8, 0.4, 1.1, 0.6, 0.7, 0.3],
        "custom.w_norm": [1.0, 1.0, 2.0, 2.0, 1.5, 1.5, 2.5, 2.5],  # same for both sizes
        "outliers.W_top": [1.0, 1.0 + 1e-3, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0],
    })
    assert depends_on(runs, "readout.test_mse", "readout.n", ["c"])
    assert not depends_on(runs, "custom.w_norm", "readout.n", ["c"])
    assert depends_on(runs, "custom.w_norm", "c", ["readout.n"])
    # a first-layer measurement never depends on the readout, whatever rounding says
    assert not depends_on(runs, "outliers.W_top", "readout.n", ["c"])


def test_labels_of_sweep_keys_and_metrics():
    from twolayer.plots.labels import metric_label, step_size_label, sweep_label

    runs = pd.DataFrame({"train.steps[0].eta.alpha": [1.0], "train.steps[0].eta.S": ["n"]})
    assert step_size_label(runs) == "step size eta / n"
    assert sweep_label("train.steps[1].eta.c") == "step size of step 2 eta"
    assert sweep_label("readout.n") == "readout batch size n_r"
    assert sweep_label("teacher.noise_rate") == "noise rate (teacher.noise_rate)"
    assert metric_label("readout.test_mse") == "test MSE, ridge readout"
    assert metric_label("kernel.top_eig") == "top eig (kernel)"
