"""Teachers: shapes, Bayes risks, the XOR oracle (linear ~ 1/2, Bayes = noise rate)."""

import math

import numpy as np
import pytest

from twolayer.teachers import TEACHERS, get_teacher, random_orthonormal, xor_clean_bayes_error
from twolayer.train.readout import LinearRidge


def test_xor_best_linear_classifier_is_chance_and_bayes_error_is_noise_rate():
    """d = 50, ||mu|| = 6 (clean Bayes error ~ 1e-9), p = 0.15. Linear ridge trained on 5,000
    points, tested on 40,000: error 0.5 +- 0.03 (the issue's tolerance; binomial sd is 0.0025).
    Bayes error = p within 4 binomial sd (sqrt(p(1-p)/40000) = 0.0018)."""
    p, n_test = 0.15, 40_000
    teacher = get_teacher("xor", d=50, rng=np.random.default_rng(0), mu_norm=6.0, label_noise=p)
    X, y = teacher.sample(5000, np.random.default_rng(1))
    Xt, yt = teacher.sample(n_test, np.random.default_rng(2))
    lin = LinearRidge.fit(X, y, [1e-3, 1e-1, 10.0])
    err = np.mean(np.where(lin.predict(Xt) >= 0, 1.0, -1.0) != yt[:, None], axis=0)
    assert abs(err.min() - 0.5) < 0.03  # the best of the ridge grid
    bayes_err = np.mean(teacher.bayes_predict(Xt) != yt)
    assert teacher.bayes_risk == pytest.approx(p, abs=1e-4)  # + (1 - 2p) x clean error 2e-5
    assert abs(bayes_err - p) < 4 * math.sqrt(p * (1 - p) / n_test)


@pytest.mark.parametrize("mu_norm", [0.5, 1.5, 3.0])
def test_xor_clean_bayes_error_against_monte_carlo(mu_norm):
    teacher = get_teacher("xor", d=10, rng=np.random.default_rng(0), mu_norm=mu_norm)
    X, y = teacher.sample(100_000, np.random.default_rng(5))
    mc = np.mean(teacher.clean_label(X) != y)
    exact = xor_clean_bayes_error(mu_norm, 1.0)
    assert abs(mc - exact) < 4 * math.sqrt(exact * (1 - exact) / 100_000) + 1e-4


def test_xor_adversarial_noise_flips_a_fraction_p():
    teacher = get_teacher(
        "xor",
        d=30,
        rng=np.random.default_rng(0),
        mu_norm=8.0,
        label_noise=0.2,
        noise_kind="adversarial",
    )
    X, y = teacher.sample(50_000, np.random.default_rng(1))
    flipped = np.mean(teacher.clean_label(X) != y)
    assert abs(flipped - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 50_000)
    assert np.mean(teacher.bayes_predict(X) != y) < 1e-3  # the flip region is learnable


@pytest.mark.parametrize(
    "bad", [{"label_noise": 0.5}, {"label_noise": -0.1}, {"noise_kind": "evil"}]
)
def test_xor_rejects_bad_options(bad):
    with pytest.raises(ValueError):
        get_teacher("xor", d=10, rng=np.random.default_rng(0), **bad)


def test_single_index_target_and_noise():
    teacher = get_teacher(
        "single_index", d=40, rng=np.random.default_rng(0), link="tanh", noise=0.3
    )
    X, y = teacher.sample(50_000, np.random.default_rng(1))
    assert np.linalg.norm(teacher.beta) == pytest.approx(1.0)
    resid = y - np.tanh(X @ teacher.beta)
    assert resid.var() == pytest.approx(0.09, rel=0.03)  # sd of a variance estimate: 0.6%
    assert teacher.bayes_risk == pytest.approx(0.09)
    c = teacher.link_constants()
    assert c["c_1"] == pytest.approx(
        np.mean(np.tanh(X @ teacher.beta) * (X @ teacher.beta)), abs=0.01
    )


def test_input_spike_covariance():
    teacher = get_teacher(
        "single_index",
        d=20,
        rng=np.random.default_rng(0),
        link="relu",
        input_spike={"theta": 3.0, "direction": "target"},
    )
    X, _ = teacher.sample(100_000, np.random.default_rng(1))
    cov = X.T @ X / X.shape[0]
    expected = np.eye(20) + 3.0 * np.outer(teacher.beta, teacher.beta)
    assert np.abs(cov - expected).max() < 0.06  # entrywise MC sd <= 4 / sqrt(1e5) ~ 0.013


@pytest.mark.parametrize(
    "link,check",
    [
        ("product", lambda z: z[:, 0] * z[:, 1] * z[:, 2]),
        ("parity", lambda z: np.sign(z).prod(axis=1)),
        ("staircase", lambda z: z[:, 0] + z[:, 0] * z[:, 1] + z[:, 0] * z[:, 1] * z[:, 2]),
        ("hermite", lambda z: (z[:, 0] ** 2 - 1) / math.sqrt(2)),
    ],
)
def test_multi_index_links(link, check):
    teacher = get_teacher("multi_index", d=15, rng=np.random.default_rng(0), r=3, link=link)
    X, y = teacher.sample(50, np.random.default_rng(1))
    np.testing.assert_allclose(y, check(X @ teacher.B.T), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(teacher.B @ teacher.B.T, np.eye(3), atol=1e-12)


def test_gaussian_mixture_bayes_rule_beats_chance():
    teacher = get_teacher(
        "gaussian_mixture", d=10, rng=np.random.default_rng(0), n_clusters=4, mean_norm=3.0
    )
    X, y = teacher.sample(20_000, np.random.default_rng(1))
    assert teacher.task == "classification"
    assert np.mean(teacher.bayes_predict(X) != y) < 0.05


def test_random_orthonormal_is_orthonormal():
    B = random_orthonormal(4, 9, np.random.default_rng(0))
    np.testing.assert_allclose(B @ B.T, np.eye(4), atol=1e-12)


def test_unknown_teacher_and_option():
    with pytest.raises(KeyError, match="did you mean 'xor'"):
        TEACHERS.get("xorr")
    with pytest.raises(TypeError):
        get_teacher("xor", d=10, rng=np.random.default_rng(0), mu_nrom=2)
