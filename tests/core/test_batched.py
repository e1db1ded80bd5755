"""Batched seeds: a stacked run of S seeds equals S separate run_once calls.

The oracle is exact up to rounding: every member draws its numbers from its own RunStreams, so
the only difference from run_once is the summation order of batched BLAS/LAPACK calls; in
float64 that is ~1e-15 relative for NumPy and ~1e-12 for torch (whose batched kernels block
differently), hence rtol 1e-10 (atol 1e-12 for values that are zero up to rounding)."""

import math

import numpy as np
import pytest

from twolayer import RunConfig, TwoLayer, run_batch, run_once
from twolayer.activations import get_activation
from twolayer.backend import RunStreams, StreamStack, matvec, mT
from twolayer.losses import get_loss
from twolayer.pipeline import StageCache
from twolayer.student import init_student
from twolayer.teachers import TeacherStack, get_teacher
from twolayer.train import ridge_path
from twolayer.train.readout import KernelRidge, LinearRidge
from twolayer.train.schedule import DivergenceError, StepSize
from twolayer.train.steps import GiantStep, giant_steps

RTOL, ATOL = 1e-10, 1e-12

ONE_STEP = dict(
    teacher=dict(name="single_index", d=24, link="tanh", noise=0.1),
    student=dict(N=32, activation="relu"),
    train=dict(
        protocol="giant_steps",
        n=48,
        steps=[dict(eta=dict(c=1.0, alpha=0.5, S="N")), dict(eta=2.0, batch=0, layer="both")],
    ),
    readout=dict(
        n=40, lambdas=[0.0, 1e-3, 1e-1], baselines=["random_features", "linear", "kernel"]
    ),
    evaluate=dict(n_test=2500, chunk=1024),
    measure=["spectrum", "overlaps"],
)
XOR = dict(
    teacher=dict(name="xor", d=16, mu_norm=3.0, label_noise=0.1),
    student=dict(N=20, activation="tanh", a_init="pm1"),
    train=dict(protocol="giant_steps", n=70, loss="logistic", steps=[dict(eta=3.0)]),
    readout=dict(batch="reuse", lambdas=[1e-3, 1e-2], penalty="sum", baselines=["linear"]),
    evaluate=dict(n_test=1500),
)
RANDOM_FEATURES = dict(
    teacher=dict(name="multi_index", d=20, r=2),
    student=dict(N=60, activation="tanh"),
    readout=dict(n=30, lambdas=[0.0, 1e-2]),  # n < N: the n x n Gram branch
    evaluate=dict(n_test=1200),
)
# protocols trained seed by seed inside the batch (readout and errors batched)
GD = dict(
    teacher=dict(name="xor", d=12, mu_norm=3.0, label_noise=0.1),
    student=dict(N=16, activation="relu"),
    train=dict(
        protocol="gd",
        n=40,
        loss="logistic",
        steps=12,
        eta=0.5,
        batch_size=16,
        train="W",
        temperature=1e-4,
        monitor=["test_loss", "test_err01"],
        monitor_n=100,
        record_every=4,
    ),
    readout=dict(n=40, lambdas=[1e-3]),
    evaluate=dict(n_test=800),
)
STAGES = dict(
    teacher=dict(name="single_index", d=10, link="tanh"),
    student=dict(N=12, activation="tanh"),
    train=dict(
        protocol="stages",
        n=30,
        stages=[dict(steps=4, eta=0.2), dict(steps=3, eta=0.1, weight_decay={"W": 0.1})],
    ),
    evaluate=dict(n_test=500),
)
SPIKED = dict(
    teacher=dict(name="single_index", d=20, link="tanh"),
    student=dict(N=25, activation="tanh", w_init="sphere", a_init="constant", a_scale=0.2),
    train=dict(protocol="spiked", r=1.5, c_w=1.2, gamma=0.4),
    readout=dict(n=50, lambdas=[0.1], penalty="sum"),
    evaluate=dict(n_test=600),
)
SPECS = {
    "one_step": ONE_STEP,
    "xor": XOR,
    "random_features": RANDOM_FEATURES,
    "gd": GD,
    "stages": STAGES,
    "spiked": SPIKED,
}
SEEDS = [5, 0, 2]


def _assert_same(batched, single):
    assert list(batched.scalars) == list(single.scalars)
    for key, value in single.scalars.items():
        assert batched.scalars[key] == pytest.approx(value, rel=RTOL, abs=ATOL), key
    assert list(batched.arrays) == list(single.arrays)
    for key, value in single.arrays.items():
        np.testing.assert_allclose(batched.arrays[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    assert len(batched.trajectory) == len(single.trajectory)
    for row_b, row_s in zip(batched.trajectory, single.trajectory, strict=True):
        assert row_b.keys() == row_s.keys()
        for key, value in row_s.items():
            assert row_b[key] == pytest.approx(value, rel=RTOL, abs=ATOL), key
    np.testing.assert_allclose(
        batched.readout_coef if batched.readout_coef is not None else 0.0,
        single.readout_coef if single.readout_coef is not None else 0.0,
        rtol=RTOL,
        atol=ATOL,
    )
    assert set(batched.timings) == set(single.timings)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_run_batch_equals_run_once_numpy(name):
    config = RunConfig.model_validate(SPECS[name])
    results = run_batch(config, SEEDS)
    assert len(results) == len(SEEDS)
    for seed, result in zip(SEEDS, results, strict=True):
        _assert_same(result, run_once(config, seed))


def _torch_devices() -> list[str]:
    try:
        import torch
    except ImportError:
        return ["cpu"]  # the test skips itself
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.torch
@pytest.mark.parametrize("device", _torch_devices())
@pytest.mark.parametrize("name", ["one_step", "xor"])
def test_run_batch_equals_run_once_torch(name, device):
    pytest.importorskip("torch")
    backend = {"name": "torch", "device": device}
    config = RunConfig.model_validate({**SPECS[name], "backend": backend})
    for seed, result in zip(SEEDS, run_batch(config, SEEDS), strict=True):
        _assert_same(result, run_once(config, seed))


def test_one_seed_batch_and_seed_order():
    config = RunConfig.model_validate(ONE_STEP)
    alone = run_batch(config, [4])[0]
    reordered = run_batch(config, [1, 4])[1]
    _assert_same(alone, reordered)
    _assert_same(alone, run_once(config, 4))


def test_batches_share_the_trained_stack_through_the_cache():
    cache = StageCache(maxsize=2)
    config = RunConfig.model_validate(ONE_STEP)
    other = RunConfig.model_validate({**ONE_STEP, "readout": {**ONE_STEP["readout"], "n": 90}})
    run_batch(config, SEEDS, cache=cache)
    results = run_batch(other, SEEDS, cache=cache)
    assert cache.hits == 1
    for seed, result in zip(SEEDS, results, strict=True):
        _assert_same(result, run_once(other, seed))


def test_stacked_core_functions_equal_member_calls():
    """TwoLayer, its gradients, ridge_path and the baselines on stacks, member by member."""
    rng = np.random.default_rng(0)
    act = get_activation("tanh")
    loss = get_loss("square")
    members = [init_student(9, 6, act, rng) for _ in range(3)]
    stack = TwoLayer.stack(members)
    assert stack.stack_size == 3 and (stack.N, stack.d) == (9, 6)
    assert members[0].stack_size is None
    X = rng.standard_normal((3, 11, 6))
    y = rng.standard_normal((3, 11))
    value, grad_W, grad_a = stack.value_and_gradients(X, y, loss)
    assert value.shape == (3,) and grad_W.shape == (3, 9, 6) and grad_a.shape == (3, 9)
    np.testing.assert_allclose(stack.loss(X, y, loss), value, rtol=1e-14)
    for i, member in enumerate(stack.unstack()):
        v, gW, ga = members[i].value_and_gradients(X[i], y[i], loss)
        assert value[i] == pytest.approx(v, rel=1e-14)
        np.testing.assert_allclose(grad_W[i], gW, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(grad_a[i], ga, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(member.W, members[i].W)
        np.testing.assert_allclose(stack.forward(X)[i], members[i].forward(X[i]), rtol=1e-14)
    for n in (11, 5):  # n >= p and n < p: both Gram branches
        F = np.tanh(X[:, :n] @ mT(stack.W))
        coef = ridge_path(F, y[:, :n], [0.0, 1e-2])
        lin = LinearRidge.fit(X[:, :n], y[:, :n], [1e-3, 1e-1])
        ker = KernelRidge.fit(X[:, :n], y[:, :n], [1e-3], act)
        for i in range(3):
            np.testing.assert_allclose(
                coef[i], ridge_path(F[i], y[i, :n], [0.0, 1e-2]), rtol=1e-9, atol=1e-12
            )
            lin_i = LinearRidge.fit(X[i, :n], y[i, :n], [1e-3, 1e-1])
            np.testing.assert_allclose(lin.predict(X)[i], lin_i.predict(X[i]), rtol=1e-10)
            ker_i = KernelRidge.fit(X[i, :n], y[i, :n], [1e-3], act)
            np.testing.assert_allclose(ker.predict(X)[i], ker_i.predict(X[i]), rtol=1e-10)
    A = rng.standard_normal((3, 4, 5))
    v = rng.standard_normal((3, 5))
    np.testing.assert_allclose(matvec(A, v), np.einsum("sij,sj->si", A, v), rtol=1e-14)
    np.testing.assert_array_equal(matvec(A[0], v[0]), A[0] @ v[0])


def test_stacked_giant_steps_report_a_diverged_member_and_train_the_others():
    """Member 1 starts with enormous weights and overflows; member 0 trains as alone."""
    streams = StreamStack((0, 1))
    teacher = TeacherStack(
        [get_teacher("single_index", d=8, rng=streams[i].generator("teacher")) for i in range(2)]
    )
    act = get_activation("relu")
    good = init_student(10, 8, act, streams[0].generator("init"))
    bad = good.replace(W=good.W * 1e200)
    steps = [GiantStep(StepSize(1.0)), GiantStep(StepSize(1.0))]
    loss = get_loss("square")
    out = giant_steps(TwoLayer.stack([good, bad]), teacher, streams, steps, n=20, loss=loss)
    assert list(out.diverged) == [1]
    assert isinstance(out.diverged[1], DivergenceError)
    assert out.diverged[1].step == 0
    alone = giant_steps(good, teacher[0], RunStreams(0), steps, n=20, loss=loss)
    np.testing.assert_allclose(out.student.W[0], alone.student.W, rtol=1e-13, atol=1e-15)
    with pytest.raises(DivergenceError):
        giant_steps(bad, teacher[1], RunStreams(1), steps, n=20, loss=loss)


def test_run_batch_keeps_the_other_seeds_when_one_diverges(monkeypatch):
    import twolayer.batched as batched

    real = batched.train_student

    def train_with_a_divergence(config, teacher, student, streams, backend):
        out = real(config, teacher, student, streams, backend)
        W = out.student.W.copy()
        W[1] = math.nan
        out.student = out.student.replace(W=W)
        out.diverged = {1: DivergenceError(0)}
        return out

    monkeypatch.setattr(batched, "train_student", train_with_a_divergence)
    config = RunConfig.model_validate(ONE_STEP)
    results = run_batch(config, SEEDS, return_exceptions=True)
    assert isinstance(results[1], DivergenceError) and results[1].step == 0
    for i in (0, 2):
        _assert_same(results[i], run_once(config, SEEDS[i]))
    with pytest.raises(DivergenceError):
        run_batch(config, SEEDS)


def _diverges(config: RunConfig, seed: int) -> bool:
    try:
        run_once(config, seed)
    except DivergenceError:
        return True
    return False


def test_a_gd_member_that_diverges_is_reported_and_the_others_kept():
    """GD trains seed by seed inside the batch. The step size is constructed, not searched for
    and skipped when not found: each seed of this tiny problem has its own divergence threshold
    (a continuous function of its draws), so bisecting eta (geometrically) between a value at
    which every seed finishes and one at which every seed diverges, with the outcomes of the
    separate run_once calls, reaches a step size at which some seeds diverge and others do not
    (it would not only if two thresholds were equal to 1e-9 relative). The test fails if the
    bracket does not hold or no split is reached. Then every member of the batch is compared
    with run_once."""
    spec = dict(
        teacher=dict(name="single_index", d=4, link="tanh"),
        student=dict(N=3, activation="relu"),
        train=dict(protocol="gd", n=6, steps=40, eta=0.0),
        readout=dict(n=10, lambdas=[1e-2]),
        evaluate=dict(n_test=100),
    )
    seeds = list(range(6))

    def config_at(eta: float) -> RunConfig:
        spec["train"]["eta"] = eta
        return RunConfig.model_validate(spec)

    def diverging(eta: float) -> int:
        config = config_at(eta)
        return sum(_diverges(config, seed) for seed in seeds)

    lo, hi = 0.01, 1e6
    assert diverging(lo) == 0 and diverging(hi) == len(seeds)
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        count = diverging(mid)
        if 0 < count < len(seeds):
            break
        lo, hi = (mid, hi) if count == 0 else (lo, mid)
    else:
        pytest.fail(f"no split of the seeds found between eta = {lo} and {hi}")
    config = config_at(mid)
    outcomes = run_batch(config, seeds, return_exceptions=True)
    kinds = [isinstance(o, DivergenceError) for o in outcomes]
    assert kinds == [_diverges(config, seed) for seed in seeds]
    assert set(kinds) == {True, False}
    for seed, outcome in zip(seeds, outcomes, strict=True):
        if isinstance(outcome, DivergenceError):
            with pytest.raises(DivergenceError) as alone:
                run_once(config, seed)
            assert alone.value.step == outcome.step
        else:
            _assert_same(outcome, run_once(config, seed))


def test_validation_errors():
    act = get_activation("relu")
    with pytest.raises(ValueError, match=r"a must have shape \(S, N\)"):
        TwoLayer(np.zeros((2, 3, 4)), np.zeros(3), act)
    with pytest.raises(ValueError, match="W must be"):
        TwoLayer(np.zeros((2, 2, 3, 4)), np.zeros((2, 2, 3)), act)
    one = TwoLayer(np.zeros((3, 4)), np.zeros(3), act)
    with pytest.raises(ValueError, match="one shape"):
        TwoLayer.stack([one, TwoLayer(np.zeros((3, 5)), np.zeros(3), act)])
    with pytest.raises(ValueError, match="unstack needs a stack"):
        one.unstack()
    with pytest.raises(ValueError, match="y of shape"):
        ridge_path(np.zeros((2, 5, 3)), np.zeros(5), [1e-3])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="share d and task"):
        TeacherStack(
            [get_teacher("single_index", d=3, rng=rng), get_teacher("single_index", d=4, rng=rng)]
        )
    with pytest.raises(ValueError, match="distinct"):
        StreamStack((1, 1))
    with pytest.raises(ValueError, match="distinct"):
        run_batch(RunConfig.model_validate(ONE_STEP), [1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        run_batch(RunConfig.model_validate(ONE_STEP), [0, -1])
