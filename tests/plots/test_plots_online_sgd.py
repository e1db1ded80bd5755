"""`twolayer plot` draws the online-SGD ODE's prediction (measurement online_sgd_theory) as a
dashed line on the trajectory figure, over the monitored population error, one per run."""

from __future__ import annotations

import math

import numpy as np


def test_trajectory_figure_draws_the_ode_dashed(tmp_path, drawn_figures):
    from twolayer.experiment import load, load_arrays, run_spec
    from twolayer.plots import standard

    erf = {"name": "erf", "scale": 1 / math.sqrt(2)}
    spec = {
        "name": "ode_lines",
        "seeds": 2,
        "teacher": {"name": "multi_index", "d": 60, "r": 2, "link": "sum", "activation": erf,
                    "weights": [1.0, 1.0], "noise": 0.1},
        "student": {"N": 2, "activation": erf, "a_init": "constant", "a_scale": math.sqrt(2)},
        "train": {"protocol": "gd", "online": True, "n": 3, "steps": 60, "eta": 0.05,
                  "train": "W", "record_every": 10, "monitor": ["order_parameters"]},
        "evaluate": {"n_test": 200, "train_errors": False},
        "measure": ["online_sgd_theory"],
        "executor": {"kind": "serial"},
        "store": str(tmp_path / "o.sqlite"),
    }
    run_spec(spec)
    drawn = drawn_figures
    standard.plot_store(tmp_path / "o.sqlite", tmp_path)
    fig = drawn["ode_lines_trajectories"]
    ax = fig.axes[0]  # the column the ODE predicts comes first
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 2  # one per run
    runs = load(tmp_path / "o.sqlite")
    curves = [load_arrays(tmp_path / "o.sqlite", i) for i in runs["id"]]
    for line in dashed:
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert any(np.array_equal(x, c["online_sgd_theory.steps"])
                   and np.allclose(y, c["online_sgd_theory.test_mse_curve"]) for c in curves)
