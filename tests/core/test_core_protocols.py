"""Protocols against closed forms: GD on the readout converges to ridge, the Langevin OU
stationary variance, the rank-one structure of the first giant step, divergence detection."""

import itertools
import math

import numpy as np
import pytest

from twolayer.activations import get_activation
from twolayer.backend import RunStreams
from twolayer.losses import get_loss
from twolayer.student import init_student
from twolayer.teachers import get_teacher
from twolayer.train import (
    DivergenceError,
    GDOptions,
    GiantStep,
    StepSize,
    giant_steps,
    gradient_descent,
    ridge_path,
)


def _setup(d=30, N=40, seed=0, link="tanh", activation="relu"):
    streams = RunStreams(seed)
    teacher = get_teacher("single_index", d=d, rng=streams.generator("teacher"), link=link,
                          noise=0.1)
    student = init_student(N, d, get_activation(activation), streams.generator("init"))
    return streams, teacher, student


def test_gd_on_second_layer_converges_to_ridge():
    """Square loss, train a only, weight decay wd: the objective (1/2n)||y - F a||^2 + wd/2 ||a||^2
    is strongly convex with minimiser ridge_path(F, y, [wd]) (mean penalty). 3000 steps at
    eta = 1/L contract the error by (1 - wd/L)^3000 < 1e-9."""
    streams, teacher, student = _setup()
    n, wd = 80, 0.05
    X, y = teacher.sample(n, streams.generator("batch", 0))
    F = student.scale * student.features(X)
    L = np.linalg.eigvalsh(F.T @ F / n).max() + wd
    opts = GDOptions(steps=3000, eta=StepSize(1.0 / L), train="a", weight_decay_a=wd,
                     record_every=500)
    res = gradient_descent(student, teacher, streams, opts, n=n, loss=get_loss("square"))
    np.testing.assert_allclose(res.student.a, ridge_path(F, y, [wd])[:, 0], rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(res.student.W, student.W)  # W not trained
    objective = [row["objective"] for row in res.trajectory]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(objective))


def test_langevin_with_weight_decay_has_the_ou_stationary_variance():
    """With a = 0 the data gradient in W vanishes, so W follows the discrete OU recursion
    w <- (1 - eta wd) w + sqrt(2 eta T) xi, stationary variance 2T / (wd (2 - eta wd)).
    N d = 40 x 30 entries averaged over the last 1000 of 3000 steps: relative sd ~ 1%."""
    streams, teacher, student = _setup()
    student = student.replace(a=np.zeros(student.N))
    eta, wd, T = 0.05, 1.0, 0.3
    opts = GDOptions(steps=3000, eta=StepSize(eta), train="W", weight_decay_W=wd, temperature=T,
                     record_every=1)
    variances = []

    def monitor(s, t):
        return {"var": float(np.mean(s.W**2))}

    res = gradient_descent(student, teacher, streams, opts, n=20, loss=get_loss("square"),
                           monitor=monitor)
    variances = [row["var"] for row in res.trajectory[2000:]]
    expected = 2 * T / (wd * (2 - eta * wd))
    assert np.mean(variances) == pytest.approx(expected, rel=0.05)


def test_minibatch_sgd_visits_every_point_each_epoch():
    streams, teacher, student = _setup()
    n, bs = 40, 8
    seen = []
    X_all, y_all = teacher.sample(n, streams.generator("batch", 0))

    class Spy:
        """A loss that records which targets it sees (square loss otherwise)."""

        classification = False

        @staticmethod
        def value(f, y):
            return 0.5 * (f - y) ** 2

        @staticmethod
        def derivative(f, y):
            seen.append(np.array(y))
            return f - y

    opts = GDOptions(steps=10, eta=StepSize(0.1), batch_size=bs, record_every=100)
    gradient_descent(student, teacher, streams, opts, n=n, loss=Spy(),
                     data=(X_all, y_all))
    first_epoch = np.concatenate(seen[:5])
    assert sorted(first_epoch.tolist()) == sorted(y_all.tolist())


def test_step_decay_schedule():
    """eta_t = eta_0 (1 + t)^-p: with a = 0 and no noise only weight decay acts, so
    W_T = prod_t (1 - eta_t wd) W_0 exactly."""
    streams, teacher, student = _setup()
    student = student.replace(a=np.zeros(student.N))
    opts = GDOptions(steps=50, eta=StepSize(0.5), decay=0.7, train="W", weight_decay_W=0.2)
    res = gradient_descent(student, teacher, streams, opts, n=10, loss=get_loss("square"))
    factor = np.prod([1 - 0.5 * (1 + t) ** -0.7 * 0.2 for t in range(50)])
    np.testing.assert_allclose(res.student.W, factor * student.W, rtol=1e-12)


def test_huge_step_diverges_with_its_step():
    streams, teacher, student = _setup(activation="quadratic")
    opts = GDOptions(steps=200, eta=StepSize(1e6), record_every=1)
    with pytest.raises(DivergenceError) as info:
        gradient_descent(student, teacher, streams, opts, n=50, loss=get_loss("square"))
    assert 0 < info.value.step < 200


def test_first_giant_step_is_nearly_rank_one():
    """Ba et al.: sqrt(N) G_0 ~ (mu_1 / n) a (X^T y)^T up to a relative remainder O(N^-1/2)
    (THEORY-NOTES: 0.04-0.05 at d = 600, N = 1200, n = 1800). Here d = 300, N = 600, n = 900,
    so the remainder should be ~sqrt(2) larger, 0.06-0.07; we allow 0.1."""
    streams, teacher, student = _setup(d=300, N=600)
    student = student.replace(a=student.a / math.sqrt(student.N))  # Ba et al.: a ~ N(0, 1/N)
    n = 900
    res = giant_steps(student, teacher, streams, [GiantStep(StepSize(1.0))], n=n,
                      loss=get_loss("square"))
    X, y = res.batches[0]
    G = math.sqrt(student.N) * (res.student.W - student.W)  # sqrt(N) G_0, G_0 = -grad (eta = 1)
    mu1 = student.activation.constants.mu1
    A = (mu1 / n) * np.outer(student.a, X.T @ y)
    rel = np.linalg.norm(G - A, 2) / np.linalg.norm(A, 2)
    assert rel < 0.1


def test_reused_batch_is_the_same_batch():
    streams, teacher, student = _setup()
    steps = [GiantStep(StepSize(1.0)), GiantStep(StepSize(1.0), batch=0), GiantStep(StepSize(1.0))]
    res = giant_steps(student, teacher, streams, steps, n=25, loss=get_loss("square"))
    assert res.batches[1][0] is res.batches[0][0]
    assert not np.array_equal(res.batches[2][0], res.batches[0][0])
    assert res.info.fresh_batches == 2
    with pytest.raises(ValueError, match="earlier step"):
        giant_steps(student, teacher, streams, [GiantStep(StepSize(1.0), batch=0)], n=5,
                    loss=get_loss("square"))


def test_step_size_forms():
    assert StepSize(2.0, 0.5, "N").value(n=9, N=16, d=4) == 8.0
    assert StepSize(1.0, 0.25, "n").value(n=16, N=1, d=1) == 2.0
    assert StepSize(3.0).value(n=1, N=1, d=1) == 3.0
    with pytest.raises(ValueError, match="S must be"):
        StepSize(1.0, 1.0, "p")
