"""Overlaps with the teacher: exact oracles for planted updates, BBP overlap for W = W_0 + spike."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_helpers import build_context, noise_matrix, single_index, unit

from twolayer.measure import measure
from twolayer.teachers import get_teacher
from twolayer.theory.spiked import bbp_overlaps


def test_exact_rank_one_update_along_beta_has_overlap_one() -> None:
    # Delta W = theta u beta^T exactly: its top right singular vector is +-beta (to rounding)
    N, d = 300, 200
    teacher = single_index(d, 1)
    u = unit(np.random.default_rng(2).standard_normal(N))
    W0 = noise_matrix(N, d, 3)
    out = measure("overlaps", build_context(teacher, W0, W0 + 2.0 * np.outer(u, teacher.beta)))
    assert out["overlaps.dW_top_overlap"] == pytest.approx(1.0, abs=1e-12)
    assert out["overlaps.dW_max_angle"] == pytest.approx(0.0, abs=1e-7)


def test_overlap_of_spiked_W_matches_bbp() -> None:
    # W = W_0 + theta u beta^T, c = N/d = 1/2, theta = 3: right overlap -> 0.894 (THEORY-NOTES
    # checked 0.898 at N = 1000, d = 2000). At N = 500, d = 1000 six seeds gave 0.887-0.896, so
    # 0.02 is ~3 times the observed spread.
    N, d, theta = 500, 1000, 3.0
    teacher = single_index(d, 4)
    u = unit(np.random.default_rng(5).standard_normal(N))
    W0 = noise_matrix(N, d, 6)
    out = measure("overlaps", build_context(teacher, W0, W0 + theta * np.outer(u, teacher.beta)))
    _, right = bbp_overlaps(theta, N / d)
    assert out["overlaps.W_top_overlap"] == pytest.approx(float(right), abs=0.02)
    assert out["overlaps.dW_top_overlap"] == pytest.approx(1.0, abs=1e-12)


def test_teacher_span_gives_zero_principal_angles() -> None:
    # rank-3 update with right singular space = the teacher's span (distinct strengths)
    N, d, r = 200, 150, 3
    teacher = get_teacher("multi_index", d=d, rng=np.random.default_rng(7), r=r)
    B = teacher.directions
    U, _ = np.linalg.qr(np.random.default_rng(8).standard_normal((N, r)))
    W0 = noise_matrix(N, d, 9)
    W = W0 + (U * np.array([3.0, 2.0, 1.0])) @ B
    out = measure("overlaps", build_context(teacher, W0, W))
    np.testing.assert_allclose(out["overlaps.dW_angles"], 0.0, atol=1e-7)
    np.testing.assert_allclose(out["overlaps.dW_projection"], 1.0, atol=1e-12)
    # distinct strengths: v_j = +-b_j, so the overlap matrix is the identity
    np.testing.assert_allclose(out["overlaps.dW_overlaps"], np.eye(r), atol=1e-12)
    assert out["overlaps.dW_subspace_overlap"] == pytest.approx(1.0, abs=1e-12)


def test_update_orthogonal_to_teacher_gives_right_angles() -> None:
    N, d = 100, 80
    teacher = single_index(d, 10)
    v = np.random.default_rng(11).standard_normal(d)
    v = unit(v - (v @ teacher.beta) * teacher.beta)
    u = unit(np.random.default_rng(12).standard_normal(N))
    W0 = noise_matrix(N, d, 13)
    out = measure("overlaps", build_context(teacher, W0, W0 + np.outer(u, v)))
    assert out["overlaps.dW_top_overlap"] == pytest.approx(0.0, abs=1e-20)
    assert out["overlaps.dW_max_angle"] == pytest.approx(math.pi / 2, abs=1e-12)


def test_unchanged_student_gives_nan_update_overlaps() -> None:
    d = 50
    out = measure("overlaps", build_context(single_index(d), noise_matrix(60, d, 14)), top_k=3)
    assert np.isnan(out["overlaps.dW_top_overlap"])
    assert out["overlaps.W_overlaps"].shape == (3, 1)
    # random W: overlap with a fixed direction ~ 1/d, far from 1
    assert out["overlaps.W_top_overlap"] < 0.2


def test_overlaps_invariant_under_neuron_permutation() -> None:
    N, d = 120, 90
    teacher = single_index(d, 15)
    W0 = noise_matrix(N, d, 16)
    W = W0 + 1.5 * np.outer(unit(np.ones(N)), teacher.beta) + 0.3 * noise_matrix(N, d, 17)
    perm = np.random.default_rng(18).permutation(N)
    a = np.ones(N)
    out = measure("overlaps", build_context(teacher, W0, W, a=a, a0=a), top_k=4)
    outp = measure("overlaps", build_context(teacher, W0[perm], W[perm], a=a, a0=a), top_k=4)
    for key in ("dW_overlaps", "W_overlaps", "dW_angles", "W_angles"):
        np.testing.assert_allclose(outp[f"overlaps.{key}"], out[f"overlaps.{key}"], atol=1e-10)
