"""Hermite coefficients against closed forms (THEORY-NOTES), derivatives against differences."""

import math

import numpy as np
import pytest

from twolayer.activations import (
    ACTIVATIONS,
    constants_at_scales,
    gaussian_expectation,
    get_activation,
    hermite_basis,
    hermite_coefficients,
)
from twolayer.registry import UnknownNameError

SQRT2PI = math.sqrt(2 * math.pi)


def double_factorial(m: int) -> int:
    return 1 if m <= 0 else m * double_factorial(m - 2)  # (-1)!! = 0!! = 1


def test_relu_closed_forms():
    mu = hermite_coefficients(get_activation("relu"), 8)
    assert mu[0] == pytest.approx(1 / SQRT2PI, abs=1e-12)
    assert mu[1] == pytest.approx(0.5, abs=1e-12)
    c = get_activation("relu").constants
    assert c.norm2 == pytest.approx(0.5, abs=1e-12)
    for k in range(2, 9):
        # E[relu He_k] = 0 for odd k >= 3, (-1)^(k/2+1) (k-3)!! / sqrt(2 pi) for even k
        expected = 0.0 if k % 2 else (-1) ** (k // 2 + 1) * double_factorial(k - 3) / SQRT2PI
        assert mu[k] * math.sqrt(math.factorial(k)) == pytest.approx(expected, abs=1e-10)


def test_erf_closed_forms():
    act = get_activation("erf")
    c = act.constants
    assert c.mu0 == pytest.approx(0.0, abs=1e-12)
    assert c.mu1 == pytest.approx(2 / math.sqrt(3 * math.pi), abs=1e-10)
    assert c.norm2 == pytest.approx(2 / math.pi * math.asin(2 / 3), abs=1e-10)
    mu3 = act.hermite(3)[3] * math.sqrt(6)
    assert mu3 == pytest.approx(-4 / (3 * math.sqrt(3 * math.pi)), abs=1e-10)


def test_tanh_reference_values():
    c = get_activation("tanh").constants
    assert c.mu1 == pytest.approx(0.6057055096, abs=1e-10)
    assert c.norm2 == pytest.approx(0.3942944904, abs=1e-10)
    assert c.mu_star2 == pytest.approx(0.0274153260, abs=1e-10)
    assert get_activation("tanh").hermite(3)[3] * math.sqrt(6) == pytest.approx(
        -0.36359538, abs=1e-8
    )


@pytest.mark.parametrize("k", range(1, 7))
def test_normalised_hermite_is_orthonormal(k):
    mu = get_activation("hermite", k=k).hermite(8)
    expected = np.zeros(9)
    expected[k] = 1.0
    np.testing.assert_allclose(mu, expected, atol=1e-10)


def test_hermite_poly_round_trip():
    coefs = [0.3, -1.0, 0.5, 0.0, 0.25]
    mu = get_activation("hermite_poly", coefficients=coefs).hermite(6)
    np.testing.assert_allclose(mu, [*coefs, 0.0, 0.0], atol=1e-10)


@pytest.mark.parametrize("name", ["gelu", "softplus", "sigmoid", "tanh", "erf"])
def test_smooth_quadrature_agrees_with_adaptive(name):
    """Gauss-Hermite (smooth path) against QUADPACK (kinked path, a kink at 0 changes nothing)."""
    act = get_activation(name)
    for fn in (act.fn, lambda z: z * act.fn(z), lambda z: act.fn(z) ** 2):
        assert gaussian_expectation(fn) == pytest.approx(
            gaussian_expectation(fn, kinks=(0.0,)), abs=1e-10
        )


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_stein_identity_mu1_equals_mean_derivative(name):
    """E[z sigma(z)] = E[sigma'(z)] (Gaussian integration by parts) for every activation."""
    act = get_activation(name)
    assert act.constants.mu1 == pytest.approx(
        gaussian_expectation(act.derivative, act.kinks), abs=1e-9
    )


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_derivative_matches_central_difference(name):
    act = get_activation(name)
    z = np.linspace(-3, 3, 61) + 0.013  # avoid the kink at 0
    h = 1e-6
    numeric = (act(z + h) - act(z - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(z), numeric, rtol=1e-6, atol=1e-7)


def test_centering_and_removing_linear_part():
    act = get_activation("relu", center=True, remove_linear=True)
    mu = act.hermite(3)
    assert abs(mu[0]) < 1e-12 and abs(mu[1]) < 1e-12
    assert mu[2] == pytest.approx(get_activation("relu").hermite(2)[2], abs=1e-12)


def test_hermite_basis_recurrence_matches_numpy():
    z = np.linspace(-2, 2, 9)
    for k, hk in enumerate(hermite_basis(z, 6)):
        coef = np.zeros(k + 1)
        coef[k] = 1
        He = np.polynomial.hermite_e.hermeval(z, coef)
        np.testing.assert_allclose(hk, He / math.sqrt(math.factorial(k)), atol=1e-12)


def test_unknown_activation_says_did_you_mean():
    with pytest.raises(UnknownNameError, match="did you mean 'relu'"):
        get_activation("rleu")


def test_shifted_relu_closed_forms():
    # relu(z - t): E = phi(t) - t Q(t), E[z relu(z - t)] = Q(t) (Stein: E[1{z > t}]),
    # E[relu(z - t)^2] = (1 + t^2) Q(t) - t phi(t), with Q the standard normal tail
    from scipy.stats import norm

    for t in (-0.5, 1.0, 2.0):
        c = get_activation("relu", shift=-t).constants
        Q, phi = norm.sf(t), norm.pdf(t)
        assert c.mu0 == pytest.approx(phi - t * Q, abs=1e-12)
        assert c.mu1 == pytest.approx(Q, abs=1e-12)
        assert c.norm2 == pytest.approx((1 + t * t) * Q - t * phi, abs=1e-12)


def test_affine_map_scales_derivative_and_moves_kinks():
    act = get_activation("relu", scale=2.0, shift=-1.0)
    assert act.kinks == (0.5,)
    z = np.array([-1.0, 0.4, 0.6, 3.0])
    np.testing.assert_allclose(act(z), np.maximum(2 * z - 1, 0))
    np.testing.assert_allclose(act.derivative(z), 2.0 * (2 * z - 1 > 0))
    # Stein's identity E[z sigma(z)] = E[sigma'(z)] still holds after the map
    assert act.constants.mu1 == pytest.approx(
        gaussian_expectation(act.derivative, act.kinks), abs=1e-10
    )
    with pytest.raises(ValueError, match="non-zero"):
        get_activation("tanh", scale=0.0)


def test_normalize_gives_unit_second_moment_after_centring():
    act = get_activation("relu", shift=-1.0, center=True, remove_linear=True, normalize=True)
    mu = act.hermite(4)
    assert abs(mu[0]) < 1e-12 and abs(mu[1]) < 1e-12  # information exponent 2
    assert act.constants.norm2 == pytest.approx(1.0, abs=1e-12)
    # Parseval: the orthonormal Hermite coefficients carry the whole unit norm; a kink makes
    # them decay like k^(-5/4), so the partial sums approach 1 slowly from below
    partial = [float((act.hermite(k) ** 2).sum()) for k in (20, 40, 80)]
    assert partial[0] < partial[1] < partial[2] <= 1.0 + 1e-12
    assert partial[2] == pytest.approx(1.0, abs=1.5e-3)
    with pytest.raises(ValueError, match="cannot normalise"):
        get_activation("relu", shift=-1e3, normalize=True)


def test_constants_at_scales_relu_closed_form_and_tanh_quadrature():
    # relu(r z) = r relu(z): mu0 = r / sqrt(2 pi), mu1 = r / 2, E relu(r z)^2 = r^2 / 2 (exact);
    # tanh: the spline between the 65 exact grid points against quadrature at off-grid scales,
    # to 1e-6 relative (measured 1.3e-8 over [0.2, 4]; the Gaussian-equivalence prediction
    # these constants feed is itself only O(1/d) ~ 1e-3 accurate).
    rng = np.random.default_rng(0)
    r = rng.uniform(0.2, 4.0, size=50)
    m0, m1, norm2 = constants_at_scales(get_activation("relu"), r)
    np.testing.assert_allclose(m0, r / math.sqrt(2 * math.pi), rtol=1e-8)
    np.testing.assert_allclose(m1, r / 2, rtol=1e-8)
    np.testing.assert_allclose(norm2, r**2 / 2, rtol=1e-8)
    tanh = get_activation("tanh")
    m0, m1, norm2 = constants_at_scales(tanh, r)
    for i in range(0, 50, 7):
        exact = tanh.affine(scale=float(r[i])).constants
        assert m1[i] == pytest.approx(exact.mu1, rel=1e-6)
        assert norm2[i] == pytest.approx(exact.norm2, rel=1e-6)
    assert np.all(np.abs(m0) < 1e-12)  # tanh is odd at every scale
    same = constants_at_scales(tanh, np.full(3, 0.7))  # equal scales: exact, no spline
    assert same[1][0] == tanh.affine(scale=0.7).constants.mu1
    with pytest.raises(ValueError, match="> 0"):
        constants_at_scales(tanh, np.array([1.0, 0.0]))


# sin and cos. Gaussian integration by parts gives E[f(z) He_k(z)] = E[f^(k)(z)], and
# f^(k)(z) = sin(z + k pi / 2) (resp. cos) with E[sin z] = 0, E[cos z] = e^{-1/2}, so
#   E[sin(z) He_k(z)] = e^{-1/2} (-1)^((k-1)/2) for odd k, 0 for even k,
#   E[cos(z) He_k(z)] = e^{-1/2} (-1)^(k/2) for even k, 0 for odd k.
# twolayer's coefficients are orthonormal, mu_k = E[sigma h_k] = E[sigma He_k] / sqrt(k!), and
# Parseval gives E[sin^2] = e^{-1} sinh(1) = (1 - e^{-2}) / 2, E[cos^2] = (1 + e^{-2}) / 2.


def _sin_he(k: int) -> float:
    return 0.0 if k % 2 == 0 else math.exp(-0.5) * (-1) ** ((k - 1) // 2)


def _cos_he(k: int) -> float:
    return 0.0 if k % 2 == 1 else math.exp(-0.5) * (-1) ** (k // 2)


@pytest.mark.parametrize(("name", "closed"), [("sin", _sin_he), ("cos", _cos_he)])
def test_sin_cos_hermite_coefficients_closed_forms(name, closed):
    act = get_activation(name)
    kmax = 16
    mu = act.hermite(kmax)
    for k in range(kmax + 1):  # compared on the orthonormal scale (x sqrt(k!) amplifies rounding)
        assert mu[k] == pytest.approx(closed(k) / math.sqrt(math.factorial(k)), abs=1e-14)
    # Parseval and the constants of Gaussian equivalence
    norm2 = (1 - math.exp(-2)) / 2 if name == "sin" else (1 + math.exp(-2)) / 2
    c = act.constants
    assert c.norm2 == pytest.approx(norm2, abs=1e-13)
    assert c.mu0 == pytest.approx(closed(0), abs=1e-13)
    assert c.mu1 == pytest.approx(closed(1), abs=1e-13)
    assert float((mu**2).sum()) == pytest.approx(norm2, abs=1e-13)  # 1/17! is negligible


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_at_a_scale_closed_forms(name):
    # sigma(r z): the k-th derivative carries r^k and E[sin(r z + t)] = e^{-r^2/2} sin(t), so
    # E[sigma(r z) He_k(z)] = r^k e^{-r^2/2} x (the sign pattern above, without e^{-1/2})
    r = 1.7
    closed = _sin_he if name == "sin" else _cos_he
    mu = get_activation(name, scale=r).hermite(10)
    for k in range(11):
        expected = r**k * math.exp(-0.5 * r * r) * closed(k) / math.exp(-0.5)
        assert mu[k] == pytest.approx(expected / math.sqrt(math.factorial(k)), abs=1e-13)


def test_sin_cos_values_and_derivatives():
    z = np.linspace(-7, 7, 141) + 0.013
    sin, cos = get_activation("sin"), get_activation("cos")
    np.testing.assert_allclose(sin(z), np.sin(z), rtol=0, atol=1e-15)
    np.testing.assert_allclose(cos(z), np.cos(z), rtol=0, atol=1e-15)
    h = 1e-6
    for act in (sin, cos):
        numeric = (act(z + h) - act(z - h)) / (2 * h)
        np.testing.assert_allclose(act.derivative(z), numeric, rtol=0, atol=1e-9)
    assert sin.kinks == () and cos.kinks == ()


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_as_teacher_links(name):
    from twolayer.teachers import get_teacher

    teacher = get_teacher("single_index", d=5, rng=np.random.default_rng(0), link=name)
    constants = teacher.link_constants(kmax=4)
    closed = _sin_he if name == "sin" else _cos_he
    for k in range(5):
        assert constants[f"c_{k}"] * math.sqrt(math.factorial(k)) == pytest.approx(
            closed(k), abs=1e-12
        )
    X, y = teacher.sample(50, np.random.default_rng(1))
    fn = np.sin if name == "sin" else np.cos
    np.testing.assert_allclose(y, fn(X @ teacher.beta), rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["relu", "tanh", "sin", "cos", "erf", "gelu"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_features_in_place_equal_the_function(name, backend):
    """Student features apply sigma in the pre-activations' own buffer where the activation
    can: the very same numbers as sigma(X W^T) computed into a new array."""
    from twolayer.student import init_student

    if backend == "torch":
        pytest.importorskip("torch")
    from twolayer.backend import Backend

    be = Backend(backend)
    rng = np.random.default_rng(0)
    student = init_student(7, 5, get_activation(name), rng, backend=be)
    X = be.asarray(rng.standard_normal((11, 5)))
    Z = X @ student.W.T
    expected = np.asarray(get_activation(name).fn(Z))
    np.testing.assert_array_equal(np.asarray(student.features(X)), expected)
    np.testing.assert_array_equal(np.asarray(Z), np.asarray(X @ student.W.T))  # Z untouched
