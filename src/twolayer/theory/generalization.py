"""Norm-based generalisation bounds for two-layer relu networks trained with a Lipschitz loss.

Class. For P > 0, F_P is the set of networks f(x) = s sum_j a_j sigma(<w_j, x>) of any width and
output scale s whose *path norm* s sum_j |a_j| ||w_j||_2 is at most P, with sigma positively
homogeneous (sigma(c z) = c sigma(z) for c >= 0), 1-Lipschitz and sigma(0) = 0 (relu; also leaky
relu with slope in [-1, 1] and the identity).

Rademacher complexity (Neyshabur, Tomioka & Srebro 2015, Thm 1 at depth 2; Golowich, Rakhlin &
Shamir 2018). Write sigma(<w, x>) = ||w|| sigma(<v, x>) with v = w / ||w||: every f in F_P is
sum_j c_j g_j with sum_j |c_j| <= P and g_j in G = {x -> sigma(<v, x>) : ||v|| <= 1}, so F_P lies
in P conv(G u -G). For a sample x_1..x_n and Rademacher signs eps_i,

    R_S(F_P) = E_eps sup_{f in F_P} (1/n) sum_i eps_i f(x_i)
             = (P/n) E_eps sup_{g in G} |sum_i eps_i g(x_i)|            (hull, symmetric set)
            <= (2P/n) E_eps sup_{g in G} sum_i eps_i g(x_i)             (0 in G, eps ~ -eps)
            <= (2P/n) E_eps sup_{||v|| <= 1} sum_i eps_i <v, x_i>       (Talagrand contraction)
             = (2P/n) E_eps ||sum_i eps_i x_i||
            <= (2P/n) sqrt(sum_i ||x_i||^2)                              (Jensen)
             = 2 P rms(x) / sqrt(n),            rms(x) = sqrt((1/n) sum_i ||x_i||^2).

Generalisation. For a loss l(f, y) that is L-Lipschitz in f (logistic, hinge, absolute: L = 1),
symmetrisation and the contraction lemma give, in expectation over the training sample S of size n,

    E_S sup_{f in F_P} [L_D(f) - L_S(f)] <= 2 E_S R_S(l o F_P) <= 2 L E_S R_S(F_P)
                                        <= 4 L P sqrt(E ||x||^2 / n),

with L_D the population and L_S the training mean loss. No boundedness of x is needed for this
in-expectation form. If the loss is bounded by B on F_P, McDiarmid adds B sqrt(log(1/delta)/(2n))
for a statement with probability >= 1 - delta (with the expected Rademacher complexity
E_S R_S in place of R_S; with the empirical R_S the constants become 2 L R_S +
3 B sqrt(log(2/delta)/(2n)), Mohri et al. 2018, Thm 3.3).

Both forms hold for a class of fixed radius P. Evaluating them at the path norm of a trained
network (a data-dependent radius) needs a union bound over radii P_k = 2^k P_0, which costs at most
a factor 2 in the radius and a log log term in the confidence term. The dimension d enters only
through rms(x) (= sqrt(d + ||mu||^2) for x = mu + N(0, I_d)) and through P.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "LIPSCHITZ_CONSTANTS",
    "lipschitz_gap_bound",
    "path_norm",
    "relu_rademacher_bound",
    "rms_norm",
]

#: Lipschitz constants in f of the registered Lipschitz losses (twolayer.losses): logistic
#: log(1 + e^{-y f}) has |d/df| = sigmoid(-y f) <= 1 for y = +-1; hinge and absolute have slopes
#: in {-1, 0, 1}. The square loss is not Lipschitz.
LIPSCHITZ_CONSTANTS: dict[str, float] = {"logistic": 1.0, "hinge": 1.0, "absolute": 1.0}


def path_norm(W: np.ndarray, a: np.ndarray, scale: float = 1.0) -> float:
    """Path norm s sum_j |a_j| ||w_j||_2 of f(x) = s sum_j a_j sigma(<w_j, x>).

    Parameters
    ----------
    W : (N, d) array, one neuron per row
    a : (N,) array
    scale : float
        The output scale s (1/sqrt(N) standard, 1/N mean field).
    """
    W = np.asarray(W, dtype=float)
    a = np.asarray(a, dtype=float)
    if W.ndim != 2 or a.shape != (W.shape[0],):
        raise ValueError(f"path_norm: need W (N, d) and a (N,), got {W.shape} and {a.shape}")
    if scale < 0:
        raise ValueError(f"path_norm: scale must be >= 0, got {scale}")
    return float(scale * np.sum(np.abs(a) * np.linalg.norm(W, axis=1)))


def rms_norm(X: np.ndarray) -> float:
    """sqrt((1/n) sum_i ||x_i||^2) of the rows of X, shape (n, d)."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"rms_norm: need a non-empty (n, d) array, got shape {X.shape}")
    return float(math.sqrt(np.mean(np.sum(X * X, axis=1))))


def relu_rademacher_bound(path_norm_bound: float, rms_input_norm: float, n: int) -> float:
    """Upper bound 2 P rms / sqrt(n) on the Rademacher complexity of F_P (module docstring).

    Parameters
    ----------
    path_norm_bound : float
        P, the radius of the class in path norm (s sum_j |a_j| ||w_j||).
    rms_input_norm : float
        sqrt(mean_i ||x_i||^2) of the sample (empirical complexity R_S), or sqrt(E ||x||^2)
        (an upper bound on the expected complexity E_S R_S, by Jensen).
    n : int
        Sample size.
    """
    if path_norm_bound < 0 or rms_input_norm < 0:
        raise ValueError("relu_rademacher_bound: path norm and rms input norm must be >= 0")
    if n < 1:
        raise ValueError(f"relu_rademacher_bound: n must be >= 1, got {n}")
    return 2.0 * path_norm_bound * rms_input_norm / math.sqrt(n)


def lipschitz_gap_bound(
    rademacher: float,
    lipschitz: float = 1.0,
    *,
    n: int | None = None,
    loss_bound: float | None = None,
    delta: float | None = None,
) -> float:
    """Bound on the generalisation gap L_D(f) - L_S(f), uniformly over a class, from its
    Rademacher complexity R: 2 L R (in expectation over S), plus B sqrt(log(1/delta) / (2n))
    when ``loss_bound`` B, ``delta`` and ``n`` are given (probability >= 1 - delta, R the expected
    complexity).

    Parameters
    ----------
    rademacher : float
        R, e.g. :func:`relu_rademacher_bound`.
    lipschitz : float
        L, the loss's Lipschitz constant in f (:data:`LIPSCHITZ_CONSTANTS`).
    """
    if rademacher < 0 or lipschitz < 0:
        raise ValueError("lipschitz_gap_bound: rademacher and lipschitz must be >= 0")
    bound = 2.0 * lipschitz * rademacher
    extra = (n, loss_bound, delta)
    if any(v is not None for v in extra):
        if any(v is None for v in extra):
            raise ValueError("lipschitz_gap_bound: give n, loss_bound and delta together")
        assert n is not None and loss_bound is not None and delta is not None
        if not 0.0 < delta < 1.0 or n < 1 or loss_bound < 0:
            raise ValueError("lipschitz_gap_bound: need 0 < delta < 1, n >= 1, loss_bound >= 0")
        bound += loss_bound * math.sqrt(math.log(1.0 / delta) / (2.0 * n))
    return bound
