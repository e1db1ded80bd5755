"""Tests of the figure helpers (twolayer.plots): the Marchenko–Pastur singular-value density the
spectrum figures overlay, the seed statistics behind every error bar, and the tick labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.integrate

from twolayer import plots
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


def test_standard_figures_draw_theory_predictions_as_lines(tmp_path, monkeypatch):
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
    drawn: dict[str, object] = {}

    def keep(fig, folder, stem):
        drawn[stem] = fig
        return tmp_path / f"{stem}.png"

    monkeypatch.setattr(standard.plots, "save", keep)
    standard.plot_store(tmp_path / "s.sqlite", tmp_path)
    ax = drawn["theory_lines_errors"].axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert "ridge_theory.test_mse" in lines  # a line through the 3 seed means
    assert len(lines["ridge_theory.test_mse"].get_xdata()) == 3
    measured = {c.get_label(): c for c in ax.containers}  # error bars
    assert "readout.test_mse" in measured and "ridge_theory.test_mse" not in measured
    # the prediction is drawn in the colour of what it predicts
    points = measured["readout.test_mse"].lines[0]
    assert lines["ridge_theory.test_mse"].get_color() == points.get_color()
    assert lines["ridge_theory.test_mse"].get_linestyle() == "--"


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
    theory = next(ln for ln in ax.get_lines() if ln.get_label() == "ridge_theory.test_mse")
    assert theory.get_linestyle() == "None" and list(theory.get_xdata()) == [0, 1, 2]
