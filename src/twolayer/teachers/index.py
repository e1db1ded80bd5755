"""Single- and multi-index teachers y = g(B x) + noise, with optional spiked input covariance."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from twolayer.activations import (
    Activation,
    activation_from,
    gaussian_expectation,
    get_activation,
    hermite_coefficients,
)
from twolayer.teachers.base import TEACHERS, Teacher, random_orthonormal

MULTI_INDEX_LINKS = ("sum", "product", "parity", "staircase", "hermite")


def as_activation(link: Any) -> Activation:
    """A link given as a name, a {name: ..., options} dict, an Activation or a callable."""
    if isinstance(link, Activation):
        return link
    if isinstance(link, str | dict):
        return activation_from(link)
    if callable(link):
        return Activation(getattr(link, "__name__", "callable"), link, _no_derivative)
    raise ValueError(f"link must be a name, a dict, an Activation or a callable, got {link!r}")


def _no_derivative(z: Any) -> Any:
    raise NotImplementedError("a link given as a plain callable has no derivative")


class InputModel:
    """x ~ N(0, I_d + theta v v^T): isotropic Gaussian inputs with an optional rank-one spike.

    Drawn as x = g + (sqrt(1 + theta) - 1) <g, v> v with g ~ N(0, I_d) and ||v|| = 1.
    """

    def __init__(self, d: int, theta: float = 0.0, direction: np.ndarray | None = None) -> None:
        if theta < -1.0:
            raise ValueError(f"input spike strength theta must be >= -1, got {theta}")
        self.d = d
        self.theta = float(theta)
        self.direction = direction

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        X = rng.standard_normal((n, self.d))
        if self.theta != 0.0 and self.direction is not None:
            v = self.direction
            X += np.outer((math.sqrt(1.0 + self.theta) - 1.0) * (X @ v), v)
        return X


def _input_model(
    d: int, input_spike: dict | None, directions: np.ndarray, rng: np.random.Generator
) -> InputModel:
    if not input_spike:
        return InputModel(d)
    spike = dict(input_spike)
    theta = float(spike.pop("theta", 0.0))
    where = spike.pop("direction", "target")
    if spike:
        raise ValueError(f"input_spike: unknown keys {sorted(spike)}; expected theta, direction")
    if where == "target":
        v = directions[0]
    elif where == "random":
        v = random_orthonormal(1, d, rng)[0]
    else:
        raise ValueError(f"input_spike.direction must be 'target' or 'random', got {where!r}")
    return InputModel(d, theta, v)


class IndexTeacher(Teacher):
    """y = target(x) + noise * xi for inputs from an :class:`InputModel`; the Bayes predictor is
    the noiseless target and the Bayes risk noise^2. Subclasses define ``target``."""

    task = "regression"
    inputs: InputModel
    noise: float

    @abstractmethod
    def target(self, X: np.ndarray) -> np.ndarray:
        """Noiseless target of inputs X (n, d), shape (n,)."""

    def sample_numpy(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        X = self.inputs.sample(n, rng)
        y = self.target(X)
        if self.noise > 0:
            y = y + self.noise * rng.standard_normal(n)
        return X, y

    @property
    def bayes_risk(self) -> float:
        return self.noise**2

    def bayes_predict(self, X: np.ndarray) -> np.ndarray:
        return self.target(X)


class SingleIndex(IndexTeacher):
    """y = g(<beta, x>) + noise * xi, ||beta|| = 1, xi ~ N(0, 1).

    Parameters
    ----------
    d : int
    link : name, dict, Activation or callable
        The link g (any registered activation, e.g. "relu", "tanh", {"name": "hermite", "k": 2},
        {"name": "hermite_poly", "coefficients": [0, 1, 0.5]}).
    noise : float
        Standard deviation of the additive label noise.
    input_spike : dict, optional
        ``{theta: float, direction: "target"|"random"}`` for x ~ N(0, I + theta v v^T).
    """

    task = "regression"

    def __init__(
        self,
        d: int,
        rng: np.random.Generator,
        link: Any = "relu",
        noise: float = 0.0,
        input_spike: dict | None = None,
    ) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.d = d
        self.link = as_activation(link)
        self.noise = float(noise)
        self._beta = random_orthonormal(1, d, rng)
        self.inputs = _input_model(d, input_spike, self._beta, rng)

    @property
    def beta(self) -> np.ndarray:
        return self._beta[0]

    @property
    def directions(self) -> np.ndarray:
        return self._beta

    def target(self, X: np.ndarray) -> np.ndarray:
        return self.link(X @ self.beta)

    def link_constants(self, kmax: int = 2) -> dict[str, float]:
        """Hermite coefficients c_k of the link and E[g(z)^2] for z ~ N(0, 1)."""
        coefs = hermite_coefficients(self.link, kmax)
        out = {f"c_{k}": float(c) for k, c in enumerate(coefs)}
        out["norm2"] = gaussian_expectation(lambda z: self.link(z) ** 2, self.link.kinks)
        return out

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"bayes_risk": self.bayes_risk}
        if self.inputs.theta == 0.0:
            info.update(self.link_constants())
        return info


TEACHERS.add("single_index", SingleIndex)


class MultiIndex(IndexTeacher):
    """y = g(B x) + noise * xi with B of shape (r, d), orthonormal rows.

    Links (``link``), with z = B x of shape (n, r):
      - ``sum``: sum_k weights_k * activation(z_k) (``activation``, ``weights``; default weights
        1/sqrt(r), so E[y^2] = ||activation||^2 for a centred activation);
      - ``product``: prod_k z_k;  ``parity``: prod_k sign(z_k);
      - ``staircase``: z_1 + z_1 z_2 + ... + z_1 ... z_r;
      - ``hermite``: h_k(z_1) = He_k(z_1) / sqrt(k!) (``k``);
      - a callable mapping z (n, r) to y (n,).

    With ``link: sum`` the teacher is a committee machine y = sum_k v*_k g(<b_k, x>) + noise;
    ``committee`` is then (g, v*) (else None).
    """

    committee: tuple[Activation, np.ndarray] | None = None

    task = "regression"

    def __init__(
        self,
        d: int,
        rng: np.random.Generator,
        r: int = 2,
        link: str | Callable[[np.ndarray], np.ndarray] = "sum",
        activation: Any = "relu",
        weights: Sequence[float] | None = None,
        k: int = 2,
        noise: float = 0.0,
        input_spike: dict | None = None,
    ) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if r < 1 or r > d:
            raise ValueError(f"multi_index: need 1 <= r <= d, got r={r}, d={d}")
        self.d, self.r, self.noise = d, int(r), float(noise)
        self.B = random_orthonormal(self.r, d, rng)
        self.inputs = _input_model(d, input_spike, self.B, rng)
        self.link_name = link if isinstance(link, str) else getattr(link, "__name__", "callable")
        self._g = self._make_link(link, activation, weights, k)

    def _make_link(
        self, link: Any, activation: Any, weights: Sequence[float] | None, k: int
    ) -> Callable[[np.ndarray], np.ndarray]:
        if callable(link):
            return link
        if link == "sum":
            act = as_activation(activation)
            w = (
                np.full(self.r, 1.0 / math.sqrt(self.r))
                if weights is None
                else np.asarray(weights, dtype=float)
            )
            if w.shape != (self.r,):
                raise ValueError(f"multi_index: weights must have length r={self.r}, got {w.shape}")
            # the committee's own units and second layer, read by the online-SGD theory
            # (twolayer.measure.online_sgd)
            self.committee = (act, w)
            return lambda z: act(z) @ w
        if link == "product":
            return lambda z: np.prod(z, axis=1)
        if link == "parity":
            return lambda z: np.prod(np.sign(z), axis=1)
        if link == "staircase":
            return lambda z: np.cumprod(z, axis=1).sum(axis=1)
        if link == "hermite":
            act = get_activation("hermite", k=k)
            return lambda z: act(z[:, 0])
        raise ValueError(f"multi_index: unknown link {link!r}; expected one of {MULTI_INDEX_LINKS}")

    @property
    def directions(self) -> np.ndarray:
        return self.B

    def target(self, X: np.ndarray) -> np.ndarray:
        return self._g(X @ self.B.T)

    def describe(self) -> dict[str, Any]:
        return {"bayes_risk": self.bayes_risk, "r": self.r}


TEACHERS.add("multi_index", MultiIndex)
