"""Activation patterns and the generalisation gap: exact cases, invariances, oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_helpers import build_context, noise_matrix, single_index

from twolayer.measure import MEASUREMENTS, measure
from twolayer.teachers import get_teacher


def test_patterns_zero_when_W_unchanged() -> None:
    d, N = 30, 40
    out = measure("activation_patterns", build_context(single_index(d), noise_matrix(N, d, 0)))
    assert out["activation_patterns.frac_neurons_changed"] == 0.0
    assert out["activation_patterns.frac_entries_changed"] == 0.0


def test_patterns_one_neuron_reversed() -> None:
    # w_0 -> -w_0 flips that neuron's sign on every probe point (none is exactly 0): 1/N each
    d, N = 30, 40
    W0 = noise_matrix(N, d, 1)
    W = W0.copy()
    W[0] *= -1
    out = measure("activation_patterns", build_context(single_index(d), W0, W), per_neuron=True)
    assert out["activation_patterns.frac_neurons_changed"] == pytest.approx(1 / N)
    assert out["activation_patterns.frac_entries_changed"] == pytest.approx(1 / N)
    assert out["activation_patterns.changed_fraction"][0] == 1.0


def test_patterns_invariant_under_neuron_permutation() -> None:
    d, N = 40, 30
    teacher = get_teacher("xor", d=d, rng=np.random.default_rng(2), mu_norm=3.0)
    W0, W = noise_matrix(N, d, 3), noise_matrix(N, d, 4)
    a = np.random.default_rng(5).standard_normal(N)
    perm = np.random.default_rng(6).permutation(N)
    out = measure("activation_patterns", build_context(teacher, W0, W, a=a, a0=a))
    outp = measure(
        "activation_patterns",
        build_context(teacher, W0[perm], W[perm], a=a[perm], a0=a[perm]),
    )
    for key, value in out.items():
        assert outp[key] == pytest.approx(value, nan_ok=True), key


def test_xor_class_partition() -> None:
    # neurons along +-mu_1 (class +1 axis) with a > 0 and along +-mu_2 with a < 0: mean relu
    # activation ~ ||mu||/2 on the own class against ~ 0.4 on the other, contrast ~ 0.6 > 0.1
    d, N = 50, 40
    teacher = get_teacher("xor", d=d, rng=np.random.default_rng(7), mu_norm=3.0)
    signs = np.where(np.arange(N) % 2 == 0, 1.0, -1.0)
    W = signs[:, None] * np.repeat(teacher.mu / 3.0, N // 2, axis=0)
    a = np.repeat([1.0, -1.0], N // 2)
    out = measure("activation_patterns", build_context(teacher, noise_matrix(N, d, 8), W, a=a))
    assert out["activation_patterns.frac_prefer_pos"] == 0.5
    assert out["activation_patterns.frac_prefer_neg"] == 0.5
    assert out["activation_patterns.frac_prefer_matches_a"] == 1.0


def test_gap_oracle_and_chunk_invariance() -> None:
    d, N, n = 20, 30, 50
    teacher = single_index(d, 9)
    X, y = teacher.sample(n, np.random.default_rng(10))
    ctx = build_context(teacher, noise_matrix(N, d, 11), batches={0: (X, y)})
    out = measure("generalisation_gap", ctx, n_test=3000, chunk=3000, loss="square")
    f = ctx.student.forward(X)
    assert out["generalisation_gap.train_loss"] == pytest.approx(np.mean(0.5 * (f - y) ** 2))
    Xt, yt = teacher.sample(3000, ctx.streams.generator("measure", 2))
    test = np.mean(0.5 * (ctx.student.forward(Xt) - yt) ** 2)
    assert out["generalisation_gap.test_loss"] == pytest.approx(test, rel=1e-12)
    assert out["generalisation_gap.gap"] == pytest.approx(
        out["generalisation_gap.test_loss"] - out["generalisation_gap.train_loss"]
    )
    chunked = measure("generalisation_gap", ctx, n_test=3000, chunk=700, loss="square")
    # samples are drawn sequentially, so chunking changes nothing but the summation order
    assert chunked["generalisation_gap.test_loss"] == pytest.approx(test, rel=1e-12)


def test_gap_without_batches_and_classification() -> None:
    # No training batch: train loss and gaps are NaN. The classification values are checked
    # against an independent computation on the same test set (stream ("measure", 2)): the
    # logistic loss log(1 + exp(-y f)) written with logaddexp and the 0-1 error sign(f) != y
    # (sign(0) = +1), and against a closed form: with a = 0 the network is f = 0, so the 0-1
    # error is the fraction of labels -1 and the logistic loss is log 2 exactly.
    d, N, n_test = 20, 30, 500
    teacher = get_teacher("xor", d=d, rng=np.random.default_rng(12))
    ctx = build_context(teacher, noise_matrix(N, d, 13))
    out = measure("generalisation_gap", ctx, n_test=n_test)
    assert np.isnan(out["generalisation_gap.train_loss"]) and np.isnan(
        out["generalisation_gap.gap"]
    )
    assert np.isnan(out["generalisation_gap.train_err01"])
    Xt, yt = teacher.sample(n_test, ctx.streams.generator("measure", 2))
    f = np.asarray(ctx.student.forward(Xt), dtype=float)
    yt = np.asarray(yt, dtype=float)
    assert out["generalisation_gap.test_loss"] == pytest.approx(
        float(np.mean(np.logaddexp(0.0, -yt * f))), rel=1e-12)
    assert out["generalisation_gap.test_err01"] == float(np.mean(np.where(f >= 0, 1.0, -1.0)
                                                                 != yt))
    zero = build_context(teacher, noise_matrix(N, d, 13), a=np.zeros(N))
    out0 = measure("generalisation_gap", zero, n_test=n_test)
    assert out0["generalisation_gap.test_loss"] == pytest.approx(math.log(2.0), rel=1e-12)
    assert out0["generalisation_gap.test_err01"] == float(np.mean(yt == -1.0))


def test_registry_names_and_per_step_flags() -> None:
    expected = {
        "spectrum": False,
        "outliers": False,
        "overlaps": False,
        "polynomial": False,
        "neuron_alignment": True,
        "kernel": False,
        "adversarial": False,
        "activation_patterns": True,
        "generalisation_gap": True,
    }
    for name, per_step in expected.items():
        assert MEASUREMENTS.get(name).per_step is per_step
        assert MEASUREMENTS.get(name).description  # first docstring line, for listings
    with pytest.raises(ValueError, match="unexpected keyword"):
        measure("spectrum", build_context(single_index(10), noise_matrix(10, 10, 0)), topk=3)
