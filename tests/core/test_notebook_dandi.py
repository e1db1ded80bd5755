"""The Dandi et al. notebook benchmark (benchmarks/notebook_dandi.py) computes the equations of
examples/dandi_one_step.yaml: the notebook's NumPy functions, fed the very arrays a twolayer run
draws (its W_0, a_0, teacher directions, batch and test set), give twolayer's W_1, readout
coefficients, training and test errors to 1e-10. Tiny sizes; no timing.
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from twolayer import RunConfig, run_once
from twolayer.pipeline import run_streams
from twolayer.teachers import SampleLabels, sample_blocks

ROOT = Path(__file__).resolve().parents[2]
RUN_SECTIONS = ("teacher", "student", "train", "readout", "evaluate", "labels", "draws")


def _load_benchmark():
    path = ROOT / "benchmarks" / "notebook_dandi.py"
    spec = importlib.util.spec_from_file_location("notebook_dandi", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nb = _load_benchmark()


def example_spec():
    return yaml.safe_load((ROOT / "examples" / "dandi_one_step.yaml").read_text())


def tiny_config(d, p, n, n_test):
    """The example spec's run sections at a tiny size."""
    spec = example_spec()
    data = {k: spec[k] for k in RUN_SECTIONS}
    data["teacher"]["d"] = d
    data["student"]["N"] = p
    data["student"]["a_scale"] = 1 / math.sqrt(p)
    data["train"]["n"] = n
    data["train"]["steps"][0]["eta"]["c"] = 10 * math.sqrt(p)
    data["evaluate"]["n_test"] = n_test
    return RunConfig.model_validate(data)


def test_example_spec_is_the_notebook():
    spec = example_spec()
    p, d = spec["student"]["N"], spec["teacher"]["d"]
    assert spec["train"]["steps"][0]["eta"] == {"c": pytest.approx(10 * math.sqrt(p)),
                                                 "alpha": 0.5, "S": "n"}
    assert spec["student"]["a_scale"] == pytest.approx(1 / math.sqrt(p))
    kappas = np.linspace(1.3, 2, 6)
    assert spec["sweep"]["train.n"] == [int(d**k) for k in kappas]
    assert spec["evaluate"]["n_test"] == 100_000
    # the teacher's link is the notebook's He_1 + He_2/2 + He_4/24 on each direction, halved
    cfg = tiny_config(d, p, 50, 10)
    teacher = cfg.teacher.build(np.random.default_rng(3))
    Z = np.random.default_rng(4).standard_normal((200, d))
    np.testing.assert_allclose(
        teacher.target(Z), nb.teacher_labels(Z, teacher.B[0], teacher.B[1]), rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("p", [12, 40])  # ridge in the primal (n >= p) and the dual (n < p)
def test_notebook_equations_equal_twolayer(p):
    d, n, n_test, seed = 8, 30, 3000, 2
    cfg = tiny_config(d, p, n, n_test)
    res = run_once(cfg, seed)
    streams = run_streams(cfg, seed)
    assert isinstance(res.teacher, SampleLabels)
    raw = res.teacher.inner
    # the arrays twolayer drew: W_0, a_0, the step's batch (raw labels) and the test set
    W0, a0 = np.asarray(res.student_init.W), np.asarray(res.student_init.a)
    Z, Y = raw.sample_numpy(n, streams.generator("batch", 0))
    Ztest, Ytest = sample_blocks(raw, streams, "test", n_test)
    np.testing.assert_allclose(Y, nb.teacher_labels(Z, raw.B[0], raw.B[1]), rtol=1e-12)

    params = nb.notebook_params({**example_spec(), **{k: getattr(cfg, k).model_dump()
                                                      for k in ("teacher", "student", "train",
                                                                "readout", "evaluate")}})
    eta = params["eta_c"] * np.sqrt(n) * np.sqrt(p)
    assert eta == pytest.approx(res.trajectory[0]["eta"], rel=1e-14)
    out = nb.run_point(Z, Y, Ztest, Ytest, W0, a0, eta, params["lamb"])

    W1 = np.asarray(res.student.W)
    np.testing.assert_allclose(out["W"], W1, rtol=1e-10, atol=1e-10 * np.abs(W1).max())
    coef = res.readout_coef[:, 0]
    np.testing.assert_allclose(out["w"], coef, rtol=1e-10, atol=1e-10 * np.abs(coef).max())
    assert out["train_mse"] == pytest.approx(res.scalars["readout.train_mse"], rel=1e-10)
    assert out["test_mse"] == pytest.approx(res.scalars["readout.test_mse"], rel=1e-10)
    assert np.isfinite(out["test_mse"]) and out["test_mse"] > 0


@pytest.mark.parametrize("per_seed", [False, True])
def test_notebook_loops_run(per_seed):
    params = {"d": 6, "p": 10, "ns": [12, 20], "nseeds": 2, "ntest": 500, "lamb": 1.0,
              "eta_c": 10.0, "per_seed": per_seed}
    rows = nb.notebook(params)
    assert [(r["n"], r["seed"]) for r in rows] == [(12, 0), (12, 1), (20, 0), (20, 1)]
    assert all(np.isfinite(r["test_mse"]) for r in rows)
    assert rows == nb.notebook(params)  # deterministic


@pytest.mark.parametrize("design", ["notebook", "per-seed"])
def test_benchmark_designs(design):
    spec = nb.load_spec_dict("small", design)
    params = nb.notebook_params(spec)
    assert params["per_seed"] == (design == "per-seed")
    assert params["d"] == 40 and params["p"] == 80 and len(params["ns"]) == 6
    assert params["eta_c"] == pytest.approx(10.0)
