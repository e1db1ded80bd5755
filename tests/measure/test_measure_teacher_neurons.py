"""teacher_neurons: output mass near the teacher's neurons (exact cases)."""

import math

import numpy as np
import pytest

from twolayer.activations import get_activation
from twolayer.measure import MEASUREMENTS, MeasureContext, measure
from twolayer.student import TwoLayer
from twolayer.teachers import get_teacher


def _ctx(W, a, d=12, r=3):
    teacher = get_teacher("multi_index", d=d, rng=np.random.default_rng(0), r=r)
    student = TwoLayer(W, a, get_activation("relu"))
    return teacher, MeasureContext(teacher, student, student)


def test_neurons_on_the_teacher_directions():
    teacher, _ = _ctx(np.ones((1, 12)), np.ones(1))
    B = teacher.directions
    # two neurons on b_0 (norms 2 and 1), one on b_2; a of both signs
    W = np.stack([2 * B[0], B[0], 3 * B[2]])
    a = np.array([1.0, 0.5, -2.0])
    _, ctx = _ctx(W, a)
    out = measure("teacher_neurons", ctx)
    scale = 1 / math.sqrt(3)
    assert out["teacher_neurons.on_target_mass"] == pytest.approx(1.0)
    assert out["teacher_neurons.off_target_mass"] == pytest.approx(0.0, abs=1e-12)
    assert out["teacher_neurons.off_subspace"] == pytest.approx(0.0, abs=1e-12)
    assert out["teacher_neurons.mass_0"] == pytest.approx(scale * 2.5)
    assert out["teacher_neurons.mass_1"] == 0.0
    assert out["teacher_neurons.mass_2"] == pytest.approx(scale * -6.0)
    assert out["teacher_neurons.weighted_angle"] == pytest.approx(0.0, abs=1e-6)


def test_antiparallel_neuron_is_off_target():
    teacher, _ = _ctx(np.ones((1, 12)), np.ones(1))
    _, ctx = _ctx(-teacher.directions[:1].copy(), np.ones(1))
    out = measure("teacher_neurons", ctx)
    assert out["teacher_neurons.on_target_mass"] == 0.0
    assert out["teacher_neurons.off_subspace"] == pytest.approx(0.0, abs=1e-12)


def test_random_neurons_off_subspace_energy():
    # E ||P_perp w||^2 / ||w||^2 = 1 - r/d for isotropic rows; 4000 rows: sd ~ 0.004
    d, r = 12, 3
    W = np.random.default_rng(1).standard_normal((4000, d))
    _, ctx = _ctx(W, np.ones(4000), d, r)
    out = measure("teacher_neurons", ctx)
    assert out["teacher_neurons.off_subspace"] == pytest.approx(1 - r / d, abs=0.02)
    assert out["teacher_neurons.on_target_mass"] < 0.01
    assert MEASUREMENTS.get("teacher_neurons").per_step


def test_bad_angle():
    _, ctx = _ctx(np.ones((2, 12)), np.ones(2))
    with pytest.raises(ValueError, match="angle"):
        measure("teacher_neurons", ctx, angle=0.0)
