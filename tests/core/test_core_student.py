"""Analytic gradients against central finite differences; forward-pass conventions."""

import math

import numpy as np
import pytest

from twolayer.activations import get_activation
from twolayer.losses import get_loss
from twolayer.student import TwoLayer, init_student, output_scale


def _problem(loss_name, scaling, activation, seed=0, n=7, N=5, d=4):
    rng = np.random.default_rng(seed)
    student = init_student(N, d, get_activation(activation), rng, scaling=scaling)
    X = rng.standard_normal((n, d))
    y = rng.choice([-1.0, 1.0], n) if get_loss(loss_name).classification else rng.standard_normal(n)
    return student, X, y


def _numeric_grad(fun, P, h=1e-6):
    G = np.zeros_like(P)
    for idx in np.ndindex(P.shape):
        Pp, Pm = P.copy(), P.copy()
        Pp[idx] += h
        Pm[idx] -= h
        G[idx] = (fun(Pp) - fun(Pm)) / (2 * h)
    return G


@pytest.mark.parametrize("loss_name", ["square", "logistic", "hinge", "absolute"])
@pytest.mark.parametrize("scaling", ["standard", "mean_field"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_gradients_match_finite_differences(loss_name, scaling, activation):
    """Relative error < 1e-6 in float64 (central differences, h = 1e-6: truncation ~1e-12,
    rounding ~1e-10 relative). Kinked losses/activations are evaluated at generic points,
    away from their kinks, with seeds chosen so no margin sits within h of a kink."""
    loss = get_loss(loss_name)
    student, X, y = _problem(loss_name, scaling, activation)
    gW, ga = student.gradients(X, y, loss)
    nW = _numeric_grad(lambda W: student.replace(W=W).loss(X, y, loss), np.array(student.W))
    na = _numeric_grad(lambda a: student.replace(a=a).loss(X, y, loss), np.array(student.a))
    assert np.linalg.norm(gW - nW) <= 1e-6 * np.linalg.norm(nW)
    assert np.linalg.norm(ga - na) <= 1e-6 * np.linalg.norm(na)


def test_only_requested_gradients_are_computed():
    student, X, y = _problem("square", "standard", "tanh")
    gW, ga = student.gradients(X, y, get_loss("square"), need_W=False)
    assert gW is None and ga is not None
    gW, ga = student.gradients(X, y, get_loss("square"), need_a=False)
    assert ga is None and gW is not None


def test_forward_matches_explicit_sum():
    rng = np.random.default_rng(3)
    act = get_activation("relu")
    for scaling in ("standard", "mean_field"):
        s = init_student(6, 3, act, rng, scaling=scaling)
        x = rng.standard_normal(3)
        explicit = output_scale(6, scaling) * sum(s.a[i] * act(s.W[i] @ x) for i in range(6))
        assert s.forward(x[None, :])[0] == pytest.approx(explicit, rel=1e-13)


def test_neuron_permutation_invariance():
    student, X, y = _problem("square", "standard", "tanh", N=8)
    perm = np.random.default_rng(1).permutation(8)
    permuted = student.replace(W=student.W[perm], a=student.a[perm])
    np.testing.assert_allclose(permuted.forward(X), student.forward(X), rtol=1e-13)
    gW, ga = student.gradients(X, y, get_loss("square"))
    pW, pa = permuted.gradients(X, y, get_loss("square"))
    np.testing.assert_allclose(pW, gW[perm], rtol=1e-12)
    np.testing.assert_allclose(pa, ga[perm], rtol=1e-12)


def test_init_options():
    rng = np.random.default_rng(0)
    act = get_activation("relu")
    s = init_student(400, 300, act, rng, w_init="sphere", w_scale=0.1, a_init="balanced")
    np.testing.assert_allclose(np.linalg.norm(s.W, axis=1), 0.1, rtol=1e-12)
    assert s.a.sum() == 0 and set(np.unique(s.a)) == {-1.0, 1.0}
    s = init_student(2000, 500, act, rng)
    # rows of N(0, I/d): squared norms average 1 with sd sqrt(2/d) per row
    assert np.mean(np.sum(s.W**2, axis=1)) == pytest.approx(1.0, abs=5 * math.sqrt(2 / 500 / 2000))
    s = init_student(10, 5, act, rng, a_init="constant", a_scale=0.5)
    assert np.all(s.a == 0.5)
    with pytest.raises(ValueError, match="w_init"):
        init_student(3, 3, act, rng, w_init="uniform")


def test_shape_validation():
    with pytest.raises(ValueError, match="shape"):
        TwoLayer(np.zeros((3, 2)), np.zeros(2), get_activation("relu"))
