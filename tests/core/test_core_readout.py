"""Ridge path against direct solves at every lambda; the min-norm limit against pinv."""

import numpy as np
import pytest

from twolayer.activations import get_activation
from twolayer.train.readout import KernelRidge, LinearRidge, conjugate_kernel, ridge_path

LAMBDAS = [1e-4, 1e-2, 0.3, 5.0]


@pytest.mark.parametrize("n,p", [(60, 25), (25, 60), (40, 40)])
@pytest.mark.parametrize("penalty", ["mean", "sum"])
def test_ridge_path_matches_direct_solve(n, p, penalty):
    rng = np.random.default_rng(n * 100 + p)
    F, y = rng.standard_normal((n, p)), rng.standard_normal(n)
    A = ridge_path(F, y, LAMBDAS, penalty)
    assert A.shape == (p, len(LAMBDAS))
    for j, lam in enumerate(LAMBDAS):
        shift = n * lam if penalty == "mean" else lam
        direct = np.linalg.solve(F.T @ F + shift * np.eye(p), F.T @ y)
        np.testing.assert_allclose(A[:, j], direct, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("n,p", [(60, 25), (25, 60)])
def test_min_norm_limit_is_pinv(n, p):
    rng = np.random.default_rng(7)
    F, y = rng.standard_normal((n, p)), rng.standard_normal(n)
    A = ridge_path(F, y, [0.0, 1e-10])
    np.testing.assert_allclose(A[:, 0], np.linalg.pinv(F) @ y, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(A[:, 1], A[:, 0], rtol=1e-4, atol=1e-6)


def test_min_norm_with_rank_deficient_features():
    rng = np.random.default_rng(8)
    F = rng.standard_normal((30, 5)) @ rng.standard_normal((5, 50))  # rank 5
    y = rng.standard_normal(30)
    np.testing.assert_allclose(ridge_path(F, y, [0.0])[:, 0], np.linalg.pinv(F) @ y, atol=1e-8)


def test_bad_lambdas_rejected():
    with pytest.raises(ValueError, match="lambdas"):
        ridge_path(np.ones((3, 2)), np.ones(3), [-1.0])
    with pytest.raises(ValueError, match="penalty"):
        ridge_path(np.ones((3, 2)), np.ones(3), [1.0], penalty="half")


def test_linear_ridge_intercept_unpenalised():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 5))
    y = 3.0 + X @ np.arange(5.0)
    lin = LinearRidge.fit(X, y, [0.0, 1e6])
    np.testing.assert_allclose(lin.coef[:, 0], np.arange(5.0), atol=1e-10)
    # huge penalty: slope -> 0, intercept -> mean(y), not 0
    assert lin.intercept[1] == pytest.approx(y.mean(), rel=1e-3)


def test_relu_conjugate_kernel_against_monte_carlo():
    """Arc-cosine closed form vs the empirical kernel of 200,000 random neurons (MC sd ~ 0.002)."""
    rng = np.random.default_rng(0)
    d = 20
    X = rng.standard_normal((4, d))
    K = conjugate_kernel(X, X, get_activation("relu"))
    W = rng.standard_normal((200_000, d)) / np.sqrt(d)
    F = np.maximum(X @ W.T, 0)
    np.testing.assert_allclose(K, F @ F.T / W.shape[0], atol=0.02)


def test_hermite_kernel_matches_arccos_on_sphere():
    """For inputs on the sphere of radius sqrt(d), the Hermite series of relu equals arc-cosine."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 30))
    X *= np.sqrt(30) / np.linalg.norm(X, axis=1, keepdims=True)
    relu = get_activation("relu")
    series = get_activation("hermite_poly", coefficients=list(relu.hermite(60)))
    K_exact = conjugate_kernel(X, X, relu)
    K_series = conjugate_kernel(X, X, series, kmax=60)
    np.testing.assert_allclose(K_series, K_exact, atol=2e-3)  # truncation at degree 60


def test_kernel_ridge_matches_direct_solve():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((30, 8)), rng.standard_normal(30)
    act = get_activation("tanh")
    kr = KernelRidge.fit(X, y, [0.1], act)
    K = conjugate_kernel(X, X, act)
    np.testing.assert_allclose(
        kr.dual[:, 0], np.linalg.solve(K + 30 * 0.1 * np.eye(30), y), rtol=1e-8
    )


@pytest.mark.parametrize("n,p", [(90, 40), (40, 90)])
@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cholesky_and_eigh_solvers_agree(n, p, stacked, backend):
    """Both sides of the Gram switch (n > p: F^T F, n < p: F F^T), one problem and a stack of 3,
    NumPy and torch: the per-lambda Cholesky route and the one-eigh route give the same
    coefficients. The smallest shift keeps the condition number below ~1e4, so the two exact
    solvers can differ by ~1e-12 relative; 1e-10 is the contract."""
    rng = np.random.default_rng(n + 7 * p)
    shape = (3, n, p) if stacked else (n, p)
    F, y = rng.standard_normal(shape), rng.standard_normal(shape[:-1])
    if backend == "torch":
        torch = pytest.importorskip("torch")
        F, y = torch.as_tensor(F), torch.as_tensor(y)
    lambdas = [1e-2, 0.3, 5.0]
    chol = ridge_path(F, y, lambdas, "mean", solver="cholesky")
    eig = ridge_path(F, y, lambdas, "mean", solver="eigh")
    auto = ridge_path(F, y, lambdas, "mean")
    chol, eig, auto = (np.asarray(a) for a in (chol, eig, auto))
    assert chol.shape == (*shape[:-2], p, 3)
    scale = np.abs(eig).max()
    np.testing.assert_allclose(chol, eig, rtol=0, atol=1e-10 * scale)
    np.testing.assert_array_equal(auto, chol)  # 3 lambdas: auto picks Cholesky


def test_cholesky_solver_zero_lambda_is_min_norm():
    """lambda = 0 in a short grid still gives pinv(F) y (the eigendecomposition route)."""
    rng = np.random.default_rng(3)
    F, y = rng.standard_normal((25, 60)), rng.standard_normal(25)
    A = ridge_path(F, y, [0.0, 0.1], solver="cholesky")
    np.testing.assert_allclose(A[:, 0], np.linalg.pinv(F) @ y, rtol=1e-7, atol=1e-9)


def test_long_grid_uses_one_eigendecomposition(monkeypatch):
    """Past CHOLESKY_MAX_LAMBDAS the solver is one eigh, whatever the grid length."""
    import twolayer.train.readout as readout

    calls = []
    original = np.linalg.eigh
    monkeypatch.setattr(np.linalg, "eigh", lambda G: calls.append(G.shape) or original(G))
    rng = np.random.default_rng(4)
    F, y = rng.standard_normal((50, 20)), rng.standard_normal(50)
    ridge_path(F, y, np.logspace(-3, 1, readout.CHOLESKY_MAX_LAMBDAS + 1))
    assert calls == [(20, 20)]
    calls.clear()
    ridge_path(F, y, np.logspace(-3, 1, readout.CHOLESKY_MAX_LAMBDAS))
    assert calls == []
