"""Cluster teachers: XOR clusters with label noise (Frei, Chatterji & Bartlett) and mixtures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from twolayer.activations import gaussian_expectation
from twolayer.teachers.base import TEACHERS, Teacher, random_orthonormal

NOISE_KINDS = ("random", "adversarial")


def xor_clean_bayes_error(mu_norm: float, noise: float) -> float:
    """0-1 error of the Bayes classifier of the clean XOR cluster model.

    The Bayes rule predicts +1 iff ``|<x, mu_1>| > |<x, mu_2>|``; by symmetry its error is
    ``P(|t| > |s|)`` with s ~ N(||mu||, noise^2), t ~ N(0, noise^2), i.e.
    ``E_z[2 (1 - Phi(|m + z|))]`` with m = ||mu|| / noise, computed by quadrature.
    """
    import scipy.special  # here: importing it costs ~0.3 s at start-up

    m = mu_norm / noise
    return gaussian_expectation(lambda z: 2.0 * scipy.special.ndtr(-np.abs(m + z)), kinks=(-m,))


class XOR(Teacher):
    """XOR clusters: x = c + noise * g with c uniform in {+mu_1, -mu_1, +mu_2, -mu_2}.

    Clean label +1 for the clusters +-mu_1 and -1 for +-mu_2; mu_1 and mu_2 are orthogonal,
    of norm ``mu_norm``, drawn at random. A fraction ``label_noise`` = p of labels is corrupted:

    - ``noise_kind="random"``: each label flipped independently with probability p;
    - ``noise_kind="adversarial"``: labels flipped in the half-space {<x, u> > t} of probability p,
      u a unit vector orthogonal to mu_1 and mu_2 (the corruption depends on x).

    Test errors against these noisy labels are at least p for any classifier that ignores u.
    Every linear classifier has error about 1/2 (x -> -x maps each class onto itself).
    """

    task = "classification"

    def __init__(
        self,
        d: int,
        rng: np.random.Generator,
        mu_norm: float = 5.0,
        noise: float = 1.0,
        label_noise: float = 0.0,
        noise_kind: str = "random",
    ) -> None:
        if d < 3:
            raise ValueError(f"xor: d must be >= 3, got {d}")
        if not 0.0 <= label_noise < 0.5:
            raise ValueError(f"xor: label_noise must be in [0, 1/2), got {label_noise}")
        if noise_kind not in NOISE_KINDS:
            raise ValueError(f"xor: noise_kind must be one of {NOISE_KINDS}, got {noise_kind!r}")
        if mu_norm <= 0 or noise <= 0:
            raise ValueError(f"xor: mu_norm and noise must be positive, got {mu_norm}, {noise}")
        self.d = d
        self.mu_norm, self.noise, self.label_noise = (
            float(mu_norm),
            float(noise),
            float(label_noise),
        )
        self.noise_kind = noise_kind
        import scipy.special

        basis = random_orthonormal(3, d, rng)
        self.mu = basis[:2] * self.mu_norm  # (2, d): mu_1, mu_2
        self.flip_direction = basis[2]
        self.flip_threshold = (
            self.noise * float(-scipy.special.ndtri(self.label_noise))
            if label_noise > 0
            else np.inf
        )

    @property
    def directions(self) -> np.ndarray:
        return self.mu / self.mu_norm

    def clean_label(self, X: np.ndarray) -> np.ndarray:
        """Bayes rule of the clean model: +1 iff |<x, mu_1>| > |<x, mu_2>|."""
        proj = np.abs(X @ self.mu.T)
        return np.where(proj[:, 0] > proj[:, 1], 1.0, -1.0)

    def sample_numpy(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.integers(0, 4, size=n)
        sign = np.where(cluster % 2 == 0, 1.0, -1.0)
        which = cluster // 2  # 0 -> mu_1 (label +1), 1 -> mu_2 (label -1)
        X = self.noise * rng.standard_normal((n, self.d))
        X += sign[:, None] * self.mu[which]
        y = np.where(which == 0, 1.0, -1.0)
        if self.label_noise > 0:
            if self.noise_kind == "random":
                flip = rng.random(n) < self.label_noise
            else:
                flip = X @ self.flip_direction > self.flip_threshold
            y = np.where(flip, -y, y)
        return X, y

    @property
    def clean_bayes_error(self) -> float:
        return xor_clean_bayes_error(self.mu_norm, self.noise)

    @property
    def bayes_risk(self) -> float:
        """Bayes 0-1 error against the noisy labels.

        Random noise: p + (1 - 2p) e_clean. Adversarial half-space noise is a deterministic
        function of x, so the Bayes classifier (which knows u) only pays the clean error.
        """
        e = self.clean_bayes_error
        if self.noise_kind == "random":
            return self.label_noise + (1.0 - 2.0 * self.label_noise) * e
        return e

    def bayes_predict(self, X: np.ndarray) -> np.ndarray:
        y = self.clean_label(X)
        if self.noise_kind == "adversarial" and self.label_noise > 0:
            y = np.where(X @ self.flip_direction > self.flip_threshold, -y, y)
        return y

    def describe(self) -> dict[str, Any]:
        return {
            "bayes_risk": self.bayes_risk,
            "clean_bayes_error": self.clean_bayes_error,
            "label_noise": self.label_noise,
        }


TEACHERS.add("xor", XOR)


class GaussianMixture(Teacher):
    """x = m_c + noise * g, cluster c drawn with probabilities ``weights``; y = labels[c].

    Parameters
    ----------
    means : (K, d) nested list, optional
        Cluster means. Default: ``n_clusters`` random orthogonal means of norm ``mean_norm``.
    labels : sequence of float, optional
        Label of each cluster. Default alternating +1, -1. The task is classification when all
        labels are +-1, regression otherwise.
    """

    def __init__(
        self,
        d: int,
        rng: np.random.Generator,
        means: Sequence[Sequence[float]] | None = None,
        n_clusters: int = 2,
        mean_norm: float = 3.0,
        noise: float = 1.0,
        labels: Sequence[float] | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        if noise <= 0:
            raise ValueError(f"gaussian_mixture: noise must be positive, got {noise}")
        self.d, self.noise = d, float(noise)
        if means is None:
            self.means = random_orthonormal(n_clusters, d, rng) * mean_norm
        else:
            self.means = np.asarray(means, dtype=float)
            if self.means.ndim != 2 or self.means.shape[1] != d:
                raise ValueError(
                    f"gaussian_mixture: means must have shape (K, d={d}), got {self.means.shape}"
                )
        K = self.means.shape[0]
        self.labels = (
            np.where(np.arange(K) % 2 == 0, 1.0, -1.0)
            if labels is None
            else np.asarray(labels, float)
        )
        if self.labels.shape != (K,):
            raise ValueError(f"gaussian_mixture: need {K} labels, got {self.labels.shape}")
        w = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (K,) or np.any(w < 0) or not math.isclose(w.sum(), 1.0, rel_tol=1e-9):
            raise ValueError(f"gaussian_mixture: weights must be {K} probabilities summing to 1")
        self.weights = w
        self.task = "classification" if set(np.unique(self.labels)) <= {-1.0, 1.0} else "regression"

    @property
    def directions(self) -> np.ndarray:
        Q, _ = np.linalg.qr(self.means.T)
        return Q.T

    def sample_numpy(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        c = rng.choice(len(self.weights), size=n, p=self.weights)
        X = self.noise * rng.standard_normal((n, self.d)) + self.means[c]
        return X, self.labels[c].copy()

    def posterior(self, X: np.ndarray) -> np.ndarray:
        """Cluster posterior probabilities, shape (n, K)."""
        import scipy.special

        logits = (X @ self.means.T - 0.5 * np.sum(self.means**2, axis=1)) / self.noise**2
        logits += np.log(self.weights)
        return scipy.special.softmax(logits, axis=1)

    def bayes_predict(self, X: np.ndarray) -> np.ndarray:
        post = self.posterior(X)
        if self.task == "regression":
            return post @ self.labels
        score = post @ (self.labels > 0)
        return np.where(score > 0.5, 1.0, -1.0)


TEACHERS.add("gaussian_mixture", GaussianMixture)
