"""Work shared between the runs of one trained student, nested readout batches, stages held
fixed across seeds (draws.fixed), and labels preprocessed on the sample (labels.*).

Every shared path is checked against a run that shares nothing (run_once without a cache),
which computes each quantity directly: equal to rounding (1e-12 relative; the cumulative Gram
matrix sums the same products in another order).
"""

import numpy as np
import pytest

from twolayer import RunConfig, run_once
from twolayer.backend import RunStreams
from twolayer.pipeline import (
    StageCache,
    build_teacher,
    draw_test_set,
    run_streams,
    training_key,
)
from twolayer.teachers import preprocess_labels, sample_blocks
from twolayer.train.readout import ridge_path

BASE = {
    "teacher": {"name": "single_index", "d": 40, "link": "tanh", "noise": 0.2},
    "student": {"N": 30, "activation": "tanh"},
    "train": {"protocol": "giant_steps", "n": 50,
              "steps": [{"eta": {"c": 1.0, "alpha": 0.5, "S": "N"}}]},
    "readout": {"n": 20, "lambdas": [1e-3, 1e-1], "baselines": ["random_features", "linear"]},
    "evaluate": {"n_test": 1500, "chunk": 500},
}


def config(**changes):
    data = {k: dict(v) for k, v in BASE.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    return RunConfig.model_validate(data)


@pytest.mark.parametrize("name", ["single_index", "xor"])
def test_readout_batches_are_nested_noise_included(name):
    """The batch of size n is the first n samples of any larger one, for a noisy index teacher
    and for XOR clusters with label noise (which draw per-sample labels before the inputs)."""
    from twolayer.teachers import get_teacher

    options = {"noise": 0.5} if name == "single_index" else {"label_noise": 0.2}
    teacher = get_teacher(name, d=12, rng=np.random.default_rng(0), **options)
    streams = RunStreams(3)
    X_small, y_small = sample_blocks(teacher, streams, "readout", 700, full=True)
    X_big, y_big = sample_blocks(teacher, streams, "readout", 2500, full=True)
    np.testing.assert_array_equal(X_big[:700], X_small)
    np.testing.assert_array_equal(y_big[:700], y_small)


def test_a_learning_curve_shares_everything_and_equals_separate_runs():
    """Readout sizes on both sides of p = 30 (a kernel Gram below, F^T F above), fitted in
    increasing order with one cache: each run equals the run computed alone, the trained
    student is trained once, and the test features and network errors are computed once."""
    sizes = [10, 25, 45, 90, 200]
    cache = StageCache(maxsize=2)
    shared = [run_once(config(readout__n=n), 1, cache=cache) for n in sizes]
    alone = [run_once(config(readout__n=n), 1) for n in sizes]
    for a, b in zip(shared, alone, strict=True):
        assert a.scalars.keys() == b.scalars.keys()
        for k in a.scalars:
            assert a.scalars[k] == pytest.approx(b.scalars[k], rel=1e-10, abs=1e-14), k
        np.testing.assert_allclose(a.readout_coef, b.readout_coef, rtol=1e-9, atol=1e-12)
    # the network's own errors: the very same numbers (computed once, not recomputed)
    assert len({r.scalars["network.test_mse"] for r in shared}) == 1
    # computed once each: the training, the test set, the test features of the trained and
    # the initial student, the network's test and train errors, and one readout pool
    assert cache.misses == 7


def test_the_readout_matches_a_direct_ridge_on_its_nested_batch():
    """The pool's coefficients are ridge_path on the batch's first n samples."""
    cache = StageCache(maxsize=2)
    run_once(config(readout__n=90), 2, cache=cache)
    r = run_once(config(readout__n=25), 2, cache=cache)  # smaller after larger: recomputed Gram
    streams = RunStreams(2)
    X, y = sample_blocks(r.teacher, streams, "readout", 25, full=True)
    s = r.student
    coef = ridge_path(s.scale * s.features(X), y, [1e-3, 1e-1])
    np.testing.assert_allclose(r.readout_coef, coef, rtol=1e-10, atol=1e-13)


def test_fixed_stages_are_bit_identical_across_seeds_and_the_rest_differs():
    cfg = RunConfig.model_validate(
        {**BASE, "draws": {"fixed": ["teacher", "init", "train"], "seed": 7}}
    )
    cache = StageCache(maxsize=2)
    runs = [run_once(cfg, seed, cache=cache) for seed in (0, 1, 2)]
    assert training_key(cfg, 0) == training_key(cfg, 2)
    for r in runs[1:]:
        np.testing.assert_array_equal(r.teacher.beta, runs[0].teacher.beta)
        np.testing.assert_array_equal(r.student_init.W, runs[0].student_init.W)
        np.testing.assert_array_equal(r.student.W, runs[0].student.W)
    # trained once: the three runs hold the very same student object
    assert runs[1].student is runs[0].student is runs[2].student
    # readout batches and test sets follow the seed
    X0, _ = sample_blocks(runs[0].teacher, run_streams(cfg, 0), "readout", 20, full=True)
    X1, _ = sample_blocks(runs[1].teacher, run_streams(cfg, 1), "readout", 20, full=True)
    assert not np.allclose(X0, X1)
    assert len({r.scalars["readout.test_mse"] for r in runs}) == 3
    # and equal those of fixed_seed's own seed for the fixed stages: seed 7 unfixed
    plain = run_once(RunConfig.model_validate(BASE), 7)
    np.testing.assert_array_equal(runs[0].student.W, plain.student.W)


def test_fixed_test_set_is_shared_across_seeds():
    cfg = RunConfig.model_validate({**BASE, "draws": {"fixed": ["test"]}})
    teacher = build_teacher(cfg, run_streams(cfg, 0))
    t0 = draw_test_set(teacher, run_streams(cfg, 0), 300)
    t1 = draw_test_set(teacher, run_streams(cfg, 5), 300)
    np.testing.assert_array_equal(t0[0], t1[0])
    assert training_key(cfg, 0) != training_key(cfg, 5)


def test_sample_label_preprocessing_on_every_batch():
    """labels.center/remove_linear: the step's batch, the readout batch and the test set each
    lose their own sample mean and linear part; the test error is scored on the preprocessed
    test labels (computed here directly on the materialised set)."""
    cfg = RunConfig.model_validate(
        {**BASE, "teacher": {**BASE["teacher"], "noise": 0.0},
         "labels": {"center": True, "remove_linear": True}}
    )
    r = run_once(cfg, 4)
    streams = RunStreams(4)
    inner = r.teacher.inner
    # the training batch the step used
    X_b, y_b = inner.sample_numpy(50, streams.generator("batch", 0))
    np.testing.assert_allclose(
        r.teacher.sample_numpy(50, streams.generator("batch", 0))[1],
        preprocess_labels(X_b, y_b, center=True, remove_linear=True), rtol=1e-12,
    )
    # the test set, preprocessed as a whole with its own statistics
    X_t, y_t = sample_blocks(inner, streams, "test", 1500)
    y_t = y_t - y_t.mean() - X_t @ (X_t.T @ y_t / 1500)
    net = np.mean((r.student.forward(X_t) - y_t) ** 2)
    assert r.scalars["network.test_mse"] == pytest.approx(net, rel=1e-12)
    # the readout's batch: its own statistics
    X_r, y_r = sample_blocks(inner, streams, "readout", 20, full=True)
    y_r = y_r - y_r.mean() - X_r @ (X_r.T @ y_r / 20)
    s = r.student
    coef = ridge_path(s.scale * s.features(X_r), y_r, [1e-3, 1e-1])
    np.testing.assert_allclose(r.readout_coef, coef, rtol=1e-10, atol=1e-13)
    # the same numbers with a cache (materialised, cached test set)
    cached = run_once(cfg, 4, cache=StageCache(maxsize=2))
    assert cached.scalars["readout.test_mse"] == pytest.approx(
        r.scalars["readout.test_mse"], rel=1e-12)


def test_preprocess_labels_removes_the_sample_statistics():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 6))
    y = 1.0 + X @ np.arange(6.0) + rng.standard_normal(500)
    centred = preprocess_labels(X, y, center=True, remove_linear=False)
    assert abs(centred.mean()) < 1e-12
    linear = preprocess_labels(X, y, center=False, remove_linear=True)
    np.testing.assert_allclose(linear, y - X @ (X.T @ y) / 500)
    stack = preprocess_labels(np.stack([X, X]), np.stack([y, y]), center=True, remove_linear=True)
    np.testing.assert_allclose(stack[1], preprocess_labels(X, y, center=True, remove_linear=True))


@pytest.mark.parametrize(
    "readout, train, match",
    [
        ({"batch": "reuse", "n": 40}, None, "readout.n = 40"),
        ({"batch": "reuse"}, {"protocol": "gd", "n": 50, "online": True}, "online"),
    ],
)
def test_silent_readout_cases_are_spec_errors(readout, train, match):
    data = {**BASE, "readout": readout}
    if train is not None:
        data["train"] = train
    with pytest.raises(ValueError, match=match):
        RunConfig.model_validate(data)


def test_cache_budget_keeps_big_arrays_out():
    """A budget below the test features streams the test set as without a cache (same
    numbers)."""
    small = StageCache(maxsize=2, budget_bytes=10_000)
    a = run_once(config(), 3, cache=small)
    b = run_once(config(), 3)
    assert a.scalars["readout.test_mse"] == pytest.approx(b.scalars["readout.test_mse"], rel=1e-12)
    assert all(size < 10_000 for size in small._sizes.values())


def test_shared_learning_curve_on_torch_equals_numpy():
    """The readout pool's growing buffers and Gram matrices on torch tensors: the numbers of
    NumPy runs that share nothing (1e-10: the same float64 algebra in another library)."""
    pytest.importorskip("torch")
    cache = StageCache(maxsize=2)
    for n in (10, 45, 90):
        numpy_run = run_once(config(readout__n=n), 5)
        data = {k: dict(v) for k, v in BASE.items()}
        data["readout"]["n"] = n
        torch_run = run_once(
            RunConfig.model_validate({**data, "backend": {"name": "torch"}}), 5, cache=cache
        )
        for k, v in numpy_run.scalars.items():
            assert torch_run.scalars[k] == pytest.approx(v, rel=1e-10, abs=1e-14), (n, k)


def test_a_student_used_by_one_run_keeps_no_arrays_but_shares_the_test_set():
    """The engine says how many runs use each trained student (StageCache.expect): a student
    of one run gets its errors chunk by chunk over the held test set (no whole feature matrix,
    no readout pool kept), with the numbers of a run that shares nothing; the test set is
    still kept for the next student of the seed."""
    cfg = config()
    cache = StageCache(maxsize=2)
    cache.expect([(training_key(cfg, 6), 20)])
    shared = run_once(cfg, 6, cache=cache)
    alone = run_once(cfg, 6)
    for k, v in alone.scalars.items():
        assert shared.scalars[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k
    stages = {key[0] for key in cache._data if isinstance(key, tuple)}
    assert "test" in stages
    assert "test-features" not in stages and "readout" not in stages


def test_a_planned_readout_pool_is_allocated_once_with_the_same_numbers():
    """Told the largest readout size to come, the pool allocates its buffers once (features
    written in place) and gives the numbers of a pool grown by doubling."""
    sizes = [10, 45, 90, 200]
    cfg0 = config(readout__n=sizes[0])
    planned = StageCache(maxsize=2)
    planned.expect([(training_key(cfg0, 1), max(sizes))] * len(sizes))
    grown = StageCache(maxsize=2)
    for n in sizes:
        a = run_once(config(readout__n=n), 1, cache=planned)
        b = run_once(config(readout__n=n), 1, cache=grown)
        np.testing.assert_array_equal(a.readout_coef, b.readout_coef)
    pool = next(v for k, v in planned._data.items() if k[0] == "readout")
    F, rows = pool._features["trained"]
    assert rows == 200 and F.shape[0] == max(sizes)  # allocated once, never grown
