"""Same seed -> identical numbers; stages draw from independent streams."""

import numpy as np
import pytest

from twolayer import RunConfig, RunStreams, run_once
from twolayer.measure.errors import SAMPLE_BLOCK
from twolayer.teachers import sample_blocks
from twolayer.train.readout import ridge_path

BASE = dict(
    teacher=dict(name="single_index", d=30, link="tanh", noise=0.1),
    student=dict(N=40, activation="relu"),
    train=dict(protocol="giant_steps", n=60, steps=[dict(eta=dict(c=1.0, alpha=0.5, S="N"))]),
    readout=dict(n=60, lambdas=[1e-3, 1e-1]),
    evaluate=dict(n_test=2500, chunk=4096),
)


def _cfg(**changes):
    spec = {k: dict(v) for k, v in BASE.items()}
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        spec[section][key] = value
    return RunConfig.model_validate(spec)


def test_same_seed_identical_numbers():
    a, b = run_once(_cfg(), 3), run_once(_cfg(), 3)
    assert a.scalars == b.scalars
    np.testing.assert_array_equal(a.student.W, b.student.W)


def test_different_seed_different_numbers():
    assert run_once(_cfg(), 3).scalars != run_once(_cfg(), 4).scalars


def test_changing_n_test_does_not_change_training():
    a, b = run_once(_cfg(), 1), run_once(_cfg(**{"evaluate.n_test": 3000}), 1)
    np.testing.assert_array_equal(a.student.W, b.student.W)
    np.testing.assert_array_equal(a.readout_coef, b.readout_coef)
    assert a.scalars["readout.train_mse"] == b.scalars["readout.train_mse"]
    assert a.scalars["readout.test_mse"] != b.scalars["readout.test_mse"]


def test_test_error_does_not_depend_on_chunk_size():
    a, b = run_once(_cfg(), 1), run_once(_cfg(**{"evaluate.chunk": 1024}), 1)
    for k in a.scalars:
        assert np.isclose(a.scalars[k], b.scalars[k], rtol=1e-12, atol=1e-14), k


def test_adding_a_step_does_not_change_the_first_batch_or_init():
    # A second step with eta = 0 leaves W where the first step put it, so the two-step run's W
    # equals the one-step run's W exactly only if step 0 used the same batch (W_1 = W_0 - eta
    # grad L(batch 0)); the loss recorded before step 0 is the loss of the same init on that
    # batch, so it must be equal too, and so must the readout data (its own stream).
    one = run_once(_cfg(), 2)
    first = BASE["train"]["steps"][0]
    two = run_once(_cfg(**{"train.steps": [dict(first), dict(eta=0.0)]}), 2)
    np.testing.assert_array_equal(one.student_init.W, two.student_init.W)
    assert one.trajectory[0]["loss"] == two.trajectory[0]["loss"]
    np.testing.assert_array_equal(one.student.W, two.student.W)
    assert not np.array_equal(one.student.W, one.student_init.W)  # the step did move W
    assert one.teacher.beta.tolist() == two.teacher.beta.tolist()
    assert one.scalars["readout.train_mse"] == two.scalars["readout.train_mse"]
    # and a different first batch (another seed's batch stream) would have changed W_1
    other = run_once(_cfg(), 3)
    assert not np.array_equal(one.student.W, other.student.W)


def test_streams_are_independent_and_stable():
    s = RunStreams(11)
    draws = {
        name: s.generator(name).standard_normal(5)
        for name in ("teacher", "init", "readout", "test", "measure")
    }
    draws["batch0"] = s.generator("batch", 0).standard_normal(5)
    draws["batch1"] = s.generator("batch", 1).standard_normal(5)
    values = list(draws.values())
    for i in range(len(values)):
        for j in range(i):
            assert not np.allclose(values[i], values[j])
    np.testing.assert_array_equal(s.generator("batch", 1).standard_normal(5), draws["batch1"])


def test_float32_numpy_backend_stays_float32():
    cfg = _cfg(**{"evaluate.n_test": 1024})
    spec = cfg.model_dump()
    spec["backend"] = {"name": "numpy", "dtype": "float32"}
    r32 = run_once(RunConfig.model_validate(spec), 1)
    r64 = run_once(cfg, 1)
    assert r32.student.W.dtype == np.float32
    assert r32.readout_coef.dtype == np.float32
    # float32 rounding accumulated over sums of ~40 terms and an eigendecomposition
    assert np.isclose(r32.scalars["readout.test_mse"], r64.scalars["readout.test_mse"], rtol=1e-3)


def test_monitored_generalisation_gap_sees_the_training_set():
    spec = {k: dict(v) for k, v in BASE.items()}
    spec["train"] = dict(protocol="gd", n=60, steps=20, eta=0.5, record_every=10,
                         monitor=["generalisation_gap"], monitor_n=200)
    spec["readout"] = None
    result = run_once(RunConfig.model_validate(spec), 0)
    rows = result.trajectory
    assert all(np.isfinite(r["generalisation_gap.train_loss"]) for r in rows)
    # the monitored train loss is the protocol's own train loss on the same data
    assert np.isclose(rows[-1]["generalisation_gap.train_loss"], rows[-1]["train_loss"],
                      rtol=1e-12)


def test_test_errors_equal_a_direct_evaluation_on_the_materialised_test_set():
    # the network, the readout and the random-features baseline share features per test chunk
    # (computed once): their errors must be those of separate predictions on the whole test set
    n_test = 2500
    cfg = RunConfig.model_validate(
        {**BASE, "readout": {**BASE["readout"], "baselines": ["random_features"]}}
    )
    r = run_once(cfg, 2)
    streams = RunStreams(2)
    blocks = [
        r.teacher.sample_numpy(min(SAMPLE_BLOCK, n_test - j * SAMPLE_BLOCK),
                               streams.generator("test", j))
        for j in range(-(-n_test // SAMPLE_BLOCK))
    ]
    X = np.concatenate([b[0] for b in blocks])
    y = np.concatenate([b[1] for b in blocks])
    network = np.mean((r.student.forward(X) - y) ** 2)
    assert r.scalars["network.test_mse"] == pytest.approx(network, rel=1e-12)
    F = r.student.scale * r.student.features(X)
    readout = np.mean((F @ r.readout_coef - y[:, None]) ** 2, 0)
    np.testing.assert_allclose(r.arrays["readout.test_mse_path"], readout, rtol=1e-12)
    s0 = r.student_init
    F0 = s0.scale * s0.features(X)
    rf = r.arrays["random_features.test_mse_path"]
    assert rf.shape == readout.shape and not np.allclose(rf, readout)
    # the baseline's coefficients are not returned: check it against its own ridge fit
    # the readout batch: the first 60 samples of the readout stream's whole blocks
    Xr, yr = sample_blocks(r.teacher, streams, "readout", 60, full=True)
    coef0 = ridge_path(s0.scale * s0.features(Xr), yr, np.asarray([1e-3, 1e-1]), "mean")
    np.testing.assert_allclose(rf, np.mean((F0 @ coef0 - y[:, None]) ** 2, 0), rtol=1e-10)
