"""The functional teacher: diagonal covariance j^(-2s), a unit-variance index, the same numbers at
every truncation level, its Bayes risk against Monte Carlo, and helpful errors for bad options."""

import math

import numpy as np
import pytest

from twolayer.teachers import get_teacher


def _teacher(d, **options):
    options.setdefault("target_terms", 40)  # keeps the draws small; the tail is 1e-6 (s = t = 1)
    return get_teacher("functional", d=d, rng=np.random.default_rng(0), **options)


@pytest.mark.parametrize("decay", [0.75, 1.0, 1.5])
def test_covariance_is_diagonal_with_decaying_variances(decay):
    """n = 40,000: the sample variance of x_j / j^(-s) is 1 within 5 sd (sd sqrt(2/n) = 0.007)
    and the off-diagonal correlations are 0 within 5 / sqrt(n) = 0.025."""
    n, d = 40_000, 12
    teacher = _teacher(d, decay=decay)
    X, _ = teacher.sample_numpy(n, np.random.default_rng(1))
    assert np.allclose(teacher.variances, np.arange(1, d + 1) ** (-2 * decay))
    Z = X / np.sqrt(teacher.variances)
    C = Z.T @ Z / n
    assert np.max(np.abs(np.diag(C) - 1)) < 5 * math.sqrt(2 / n)
    assert np.max(np.abs(C - np.diag(np.diag(C)))) < 5 / math.sqrt(n)


@pytest.mark.parametrize(("decay", "beta_decay"), [(1.0, 1.0), (0.75, 0.5), (1.0, 0.0)])
def test_index_is_standard_normal_and_linear_target_is_normalised(decay, beta_decay):
    """With the linear link y = z = <beta, X>/||beta||_Sigma: mean 0 and variance 1 within 5 sd
    at n = 40,000 (sd 1/sqrt(n) and sqrt(2/n)); and ||beta||_Sigma is the stated sum."""
    n = 40_000
    teacher = _teacher(5, decay=decay, beta_decay=beta_decay, link="linear", target_terms=200)
    _, y = teacher.sample_numpy(n, np.random.default_rng(2))
    assert abs(y.mean()) < 5 / math.sqrt(n)
    assert abs(y.var() - 1) < 5 * math.sqrt(2 / n)
    j = np.arange(1, 201)
    expected = math.sqrt(np.sum(j ** (-2.0 * beta_decay) * j ** (-2.0 * decay)))
    assert teacher.beta_sigma_norm == pytest.approx(expected, rel=1e-12)
    assert np.allclose(np.abs(teacher.beta), j ** (-beta_decay))


@pytest.mark.parametrize("n", [1, 37, 1024])
def test_truncation_levels_share_the_same_numbers(n):
    """For one rng state and n, truncation d is exactly the first d columns of truncation d' > d,
    and the labels (noise included) are identical, also beyond the target's K terms."""
    small, large = _teacher(4, noise=0.3, target_terms=50), _teacher(60, noise=0.3, target_terms=50)
    X_s, y_s = small.sample_numpy(n, np.random.default_rng(7))
    X_l, y_l = large.sample_numpy(n, np.random.default_rng(7))
    assert X_s.shape == (n, 4) and X_l.shape == (n, 60)
    assert np.array_equal(X_l[:, :4], X_s)
    assert np.array_equal(y_l, y_s)
    assert np.array_equal(small.beta, large.beta)  # the same target direction


def test_truncation_only_adds_small_variance_coordinates():
    """The visible share of Var <beta, X> grows with d towards 1 and the Bayes risk decreases
    to noise^2; tail of the trace ~ 1/d for s = 1."""
    teachers = [_teacher(d, noise=0.1, target_terms=256) for d in (1, 4, 16, 64, 300)]
    visible = [t.visible_fraction for t in teachers]
    risks = [t.bayes_risk for t in teachers]
    assert all(np.diff(visible) > 0) and visible[-1] == pytest.approx(1.0)
    assert all(np.diff(risks) < 0) and risks[-1] == pytest.approx(0.01, abs=1e-12)
    assert teachers[-1].target_tail < 2e-8


@pytest.mark.parametrize("link", ["tanh", "relu"])
def test_bayes_risk_against_monte_carlo(link):
    """d = 2 sees 93.6% of the index (s = 1, t = 0.5): the MSE of bayes_predict on 100,000
    samples equals bayes_risk within 5 Monte Carlo sd (sd = std of the squared error / sqrt(n)),
    and it beats the naive prediction g(visible index)."""
    n = 100_000
    teacher = _teacher(2, beta_decay=0.5, link=link, noise=0.05)
    X, y = teacher.sample_numpy(n, np.random.default_rng(3))
    sq = (teacher.bayes_predict(X) - y) ** 2
    assert abs(sq.mean() - teacher.bayes_risk) < 5 * sq.std() / math.sqrt(n)
    u = X @ teacher.beta[:2] / teacher.beta_sigma_norm
    assert sq.mean() < np.mean((teacher.link(u) - y) ** 2)


def test_directions_are_the_visible_part_of_beta():
    teacher = _teacher(8, target_terms=5)
    b = teacher.directions
    assert b.shape == (1, 8) and np.linalg.norm(b) == pytest.approx(1.0)
    assert np.all(b[0, 5:] == 0)
    assert np.allclose(b[0, :5], teacher.beta / np.linalg.norm(teacher.beta))


@pytest.mark.parametrize(
    "bad",
    [
        {"decay": 0.5},
        {"decay": 0.6, "beta_decay": -0.2},
        {"noise": -0.1},
        {"target_terms": 0},
        {"target_terms": 2.5},
        {"signs": "negative"},
        {"link": "nonexistent"},
    ],
)
def test_rejects_bad_options(bad):
    with pytest.raises(ValueError):
        _teacher(10, **bad)


def test_positive_signs_and_config_validation():
    from twolayer.config import TeacherConfig

    assert np.all(_teacher(3, signs="positive").beta > 0)
    TeacherConfig(name="functional", d=10, decay=1.2, noise=0.1)
    with pytest.raises(ValueError, match="did you mean"):
        TeacherConfig(name="functional", d=10, decya=1.2)
