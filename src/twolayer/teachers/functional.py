"""Functional inputs: the first d coefficients of a random function in a basis with decaying
variances, and a single-index target defined on the whole (untruncated) function.

The model (``functional`` teacher). A random function X = sum_j x_j e_j in an orthonormal basis
(e_j) has independent coefficients x_j ~ N(0, j^(-2 s)), s > 1/2 (``decay``), so that
E ||X||^2 = sum_j j^(-2 s) is finite. The learner sees the truncation x = (x_1, ..., x_d).
The target is y = g(<beta, X> / ||beta||_Sigma) + noise * xi with beta_j = sign_j j^(-t)
(``beta_decay`` t) and ||beta||_Sigma^2 = sum_j beta_j^2 j^(-2 s) = Var <beta, X>, so that the
index z = <beta, X> / ||beta||_Sigma is N(0, 1) exactly and E[y] , E[y^2] do not depend on d.

What "does not depend on the truncation" needs, and how it is met:

- The target is a function of X, not of x: it uses the first K = ``target_terms`` coefficients
  (default 256) whatever d is; the neglected part sum_{j > K} beta_j^2 j^(-2 s) of Var <beta, X>
  is reported as ``target_tail`` (1.9e-8 of it for s = t = 1). So changing d never changes y.
- Same numbers at every truncation: for a sample of size n, coefficient j of sample i is entry
  (j, i) of one (max(d, K), n) standard-normal draw (coefficient-major order: all n values of
  x_1, then all n values of x_2, ...), scaled by j^(-s); the label noise is drawn before it.
  For one rng state and one n, the first d columns of X at truncation d' > d are the same numbers
  as X at truncation d, and y is identical: increasing d only appends columns of variance
  (d+1)^(-2 s), (d+2)^(-2 s), ... (tested).
- The signs of beta come from the teacher stream as K draws, independent of d.

A learner that sees only x_1..x_d cannot predict the part of z carried by x_{d+1}, ...;
``bayes_risk`` (noise^2 plus E Var(g(z) | x_1..x_d)) and ``bayes_predict`` account for it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twolayer.activations import gaussian_expectation
from twolayer.teachers.base import TEACHERS, Teacher
from twolayer.teachers.index import as_activation

SIGNS = ("random", "positive")
_GH_NODES = 80


def _gauss_hermite() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(_GH_NODES)
    return nodes, weights / weights.sum()


class Functional(Teacher):
    """Truncated functional inputs x_j ~ N(0, j^(-2 s)), j = 1..d, and the target
    y = g(<beta, X> / ||beta||_Sigma) + noise * xi, beta_j = sign_j j^(-t), on K >= 1 terms.

    Parameters
    ----------
    d : int
        Truncation level: the number of coefficients the learner sees.
    rng : numpy Generator
        The teacher stream (draws the K signs of beta).
    decay : float
        s > 1/2: Var x_j = j^(-2 s) (the trace sum_j j^(-2 s) = zeta(2 s) is finite).
    beta_decay : float
        t with s + t > 1/2: ``|beta_j| = j^(-t)``. With t > 1/2, ||beta|| is finite too (the target
        direction is a bounded functional, reachable by a neuron w of finite norm).
    link : name, dict, Activation or callable
        g; default tanh.
    noise : float
        Standard deviation of the additive label noise.
    target_terms : int
        K, the number of coefficients the target uses (the same for every d).
    signs : {"random", "positive"}
        Signs of beta_j: independent ±1 from the teacher stream, or all +1.

    Attributes
    ----------
    variances : (d,) array
        j^(-2 s), j = 1..d (the diagonal input covariance).
    beta : (K,) array
        The target direction on the first K coefficients (unnormalised, beta_j = sign_j j^(-t)).
    beta_sigma_norm : float
        ||beta||_Sigma = sqrt(sum_{j <= K} beta_j^2 j^(-2 s)).
    """

    task = "regression"

    def __init__(
        self,
        d: int,
        rng: np.random.Generator,
        decay: float = 1.0,
        beta_decay: float = 1.0,
        link: Any = "tanh",
        noise: float = 0.0,
        target_terms: int = 256,
        signs: str = "random",
    ) -> None:
        if not decay > 0.5:
            raise ValueError(f"functional: decay s must be > 1/2 (finite trace), got {decay}")
        if not decay + beta_decay > 0.5:
            raise ValueError(
                f"functional: need decay + beta_decay > 1/2 (finite Var <beta, X>), got "
                f"{decay} + {beta_decay}"
            )
        if noise < 0:
            raise ValueError(f"functional: noise must be >= 0, got {noise}")
        if int(target_terms) != target_terms or target_terms < 1:
            raise ValueError(
                f"functional: target_terms must be an integer >= 1, got {target_terms}"
            )
        if signs not in SIGNS:
            raise ValueError(f"functional: signs must be one of {SIGNS}, got {signs!r}")
        self.d = int(d)
        self.decay, self.beta_decay = float(decay), float(beta_decay)
        self.noise = float(noise)
        self.K = int(target_terms)
        self.link = as_activation(link)
        j = np.arange(1, self.K + 1, dtype=float)
        sign = rng.choice([-1.0, 1.0], size=self.K) if signs == "random" else np.ones(self.K)
        self.beta = sign * j ** (-self.beta_decay)
        self.beta_sigma_norm = math.sqrt(float(np.sum(self.beta**2 * j ** (-2 * self.decay))))
        self.variances = np.arange(1, self.d + 1, dtype=float) ** (-2 * self.decay)
        self._std = np.arange(1, max(self.d, self.K) + 1, dtype=float) ** (-self.decay)
        # share of Var <beta, X> carried by the coefficients x_1..x_d the learner sees
        m = min(self.d, self.K)
        seen = float(np.sum(self.beta[:m] ** 2 * j[:m] ** (-2 * self.decay)))
        self.visible_fraction = seen / self.beta_sigma_norm**2

    @property
    def target_tail(self) -> float:
        """sum_{j > K} beta_j^2 j^(-2 s) / sum_j beta_j^2 j^(-2 s): the share of Var <beta, X>
        of the untruncated function that the K-term target leaves out."""
        import scipy.special  # here: importing it costs ~0.3 s at start-up

        p = 2 * (self.decay + self.beta_decay)
        return float(scipy.special.zeta(p, self.K + 1) / scipy.special.zeta(p, 1))

    def index(self, X_full: np.ndarray) -> np.ndarray:
        """z = <beta, x_{1..K}> / ||beta||_Sigma for inputs with at least K columns."""
        return X_full[:, : self.K] @ self.beta / self.beta_sigma_norm

    def sample_numpy(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xi = rng.standard_normal(n)  # first, so that it does not depend on d
        X_full = rng.standard_normal((self._std.size, n)).T * self._std[None, :]
        y = self.link(self.index(X_full))
        if self.noise > 0:
            y = y + self.noise * xi
        return np.ascontiguousarray(X_full[:, : self.d]), y

    @property
    def directions(self) -> np.ndarray:
        """The visible part of beta as a unit vector of R^d (Euclidean norm), shape (1, d)."""
        b = np.zeros(self.d)
        m = min(self.d, self.K)
        b[:m] = self.beta[:m]
        return (b / np.linalg.norm(b))[None, :]

    def _conditional_mean(self, u: np.ndarray) -> np.ndarray:
        """E[g(u + r)] with r ~ N(0, 1 - rho^2), rho^2 = visible_fraction (Gauss–Hermite)."""
        rest = math.sqrt(max(1.0 - self.visible_fraction, 0.0))
        if rest < 1e-12:
            return np.asarray(self.link(u), dtype=float)
        nodes, weights = _gauss_hermite()
        return np.asarray(self.link(u[:, None] + rest * nodes[None, :]), dtype=float) @ weights

    def bayes_predict(self, X: np.ndarray) -> np.ndarray:
        """E[y | x_1..x_d]: the visible part of the index, averaged over the invisible part."""
        m = min(self.d, self.K)
        u = np.asarray(X, dtype=float)[:, :m] @ self.beta[:m] / self.beta_sigma_norm
        return self._conditional_mean(u)

    @property
    def bayes_risk(self) -> float:
        """noise^2 + E[g(z)^2] - E[(E[g(z) | x_1..x_d])^2] (Gauss–Hermite, 80 x 80 nodes; E[g^2]
        split at the link's kinks)."""
        nodes, weights = _gauss_hermite()
        rho = math.sqrt(self.visible_fraction)
        if rho > 1 - 1e-12:
            return self.noise**2
        u = rho * nodes
        second = gaussian_expectation(lambda z: self.link(z) ** 2, self.link.kinks)
        explained = float(self._conditional_mean(u) ** 2 @ weights)
        return self.noise**2 + max(second - explained, 0.0)

    def describe(self) -> dict[str, Any]:
        return {
            "bayes_risk": self.bayes_risk,
            "visible_fraction": self.visible_fraction,
            "target_tail": self.target_tail,
            "input_trace": float(self.variances.sum()),
        }


TEACHERS.add("functional", Functional)
