"""norm_bound measurement: path norm and bound against direct formulas, invariances, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_helpers import build_context, noise_matrix

from twolayer.config import RunConfig
from twolayer.measure import MEASUREMENTS, measure
from twolayer.pipeline import run_once
from twolayer.teachers import get_teacher


def _mixture(d: int, seed: int = 0):
    return get_teacher("gaussian_mixture", d=d, rng=np.random.default_rng(seed), mean_norm=2.0)


def _context(N: int = 30, d: int = 12, n: int = 200, scaling: str = "mean_field", **kw):
    teacher = _mixture(d)
    X, y = teacher.sample_numpy(n, np.random.default_rng(1))
    W0, W = noise_matrix(N, d, 2), noise_matrix(N, d, 3)
    a = np.random.default_rng(4).standard_normal(N)
    return build_context(teacher, W0, W, a=a, scaling=scaling, batches={0: (X, y)}, **kw)


def test_registered() -> None:
    assert "norm_bound" in MEASUREMENTS
    assert not MEASUREMENTS.get("norm_bound").per_step


@pytest.mark.parametrize("scaling", ["standard", "mean_field"])
def test_against_direct_formula(scaling: str) -> None:
    ctx = _context(scaling=scaling)
    out = measure("norm_bound", ctx, loss="logistic")
    s = ctx.student
    P = s.scale * float(np.sum(np.abs(s.a) * np.linalg.norm(s.W, axis=1)))
    X = ctx.batches[0][0]
    rms = math.sqrt(float(np.mean(np.sum(X**2, axis=1))))
    n = X.shape[0]
    assert out["norm_bound.path_norm"] == pytest.approx(P, rel=1e-12)
    assert out["norm_bound.input_rms"] == pytest.approx(rms, rel=1e-12)
    assert out["norm_bound.rademacher"] == pytest.approx(2 * P * rms / math.sqrt(n), rel=1e-12)
    assert out["norm_bound.bound"] == pytest.approx(4 * P * rms / math.sqrt(n), rel=1e-12)
    # the bound is >= sup_x |f(x)| / ||x|| * 4 rms / sqrt(n): check |f| <= P ||x|| on the data
    f = s.forward(X)
    assert np.all(np.abs(f) <= P * np.linalg.norm(X, axis=1) + 1e-12)


def test_invariant_under_rescaling_and_permutation() -> None:
    # relu is positively homogeneous: (w_j, a_j) -> (c_j w_j, a_j / c_j) keeps f and the bound
    ctx = _context()
    out = measure("norm_bound", ctx, loss="absolute")
    s = ctx.student
    c = np.random.default_rng(9).uniform(0.2, 5.0, size=s.N)
    perm = np.random.default_rng(10).permutation(s.N)
    ctx2 = build_context(ctx.teacher, ctx.student_init.W, (s.W * c[:, None])[perm],
                         a=(s.a / c)[perm], scaling="mean_field", batches=ctx.batches)
    out2 = measure("norm_bound", ctx2, loss="absolute")
    assert out2["norm_bound.bound"] == pytest.approx(out["norm_bound.bound"], rel=1e-12)


def test_refuses_square_loss_and_smooth_activation() -> None:
    with pytest.raises(ValueError, match="not Lipschitz"):
        measure("norm_bound", _context(), loss="square")
    with pytest.raises(ValueError, match="homogeneous"):
        measure("norm_bound", _context(activation="tanh"), loss="logistic")
    with pytest.raises(ValueError, match="homogeneous"):
        measure("norm_bound", _context(activation={"name": "relu", "center": True}),
                loss="logistic")
    ctx = _context()
    ctx.batches.clear()
    with pytest.raises(ValueError, match="training set"):
        measure("norm_bound", ctx, loss="logistic")


def test_in_pipeline_gap_below_bound() -> None:
    # a short logistic GD run: the measured gap is below the bound (which is far from tight)
    cfg = RunConfig.model_validate(dict(
        teacher=dict(name="gaussian_mixture", d=10, mean_norm=2.0),
        student=dict(N=40, activation="relu", scaling="mean_field"),
        train=dict(protocol="gd", n=200, loss="logistic", steps=30,
                   eta=dict(c=1.0, alpha=1.0, S="N")),
        evaluate=dict(n_test=500, train_errors=False),
        measure=[dict(name="generalisation_gap", n_test=4000), "norm_bound"],
    ))
    r = run_once(cfg, 0).scalars
    assert r["norm_bound.n"] == 200
    assert r["norm_bound.lipschitz"] == 1.0
    assert r["generalisation_gap.gap"] < r["norm_bound.bound"]
