"""The two-layer student f(x) = scale(N) * sum_i a_i sigma(<w_i, x>).

``scaling="standard"`` uses scale = 1/sqrt(N), ``scaling="mean_field"`` uses scale = 1/N.
Parameters are W, shape (N, d), one neuron per row, and a, shape (N,). Features are the
*unscaled* post-activations F = sigma(X W^T), shape (n, N); predictions are scale * F a.
Gradients are those of the batch mean of a pointwise loss, computed analytically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from twolayer.activations import Activation
from twolayer.backend import DEFAULT_BACKEND, Backend
from twolayer.losses import Loss

Scaling = Literal["standard", "mean_field"]
SCALINGS = ("standard", "mean_field")
W_INITS = ("gaussian", "sphere")
A_INITS = ("gaussian", "pm1", "balanced", "constant")


def output_scale(N: int, scaling: str) -> float:
    """1/sqrt(N) for ``standard``, 1/N for ``mean_field``."""
    if scaling == "standard":
        return 1.0 / math.sqrt(N)
    if scaling == "mean_field":
        return 1.0 / N
    raise ValueError(f"unknown scaling {scaling!r}; expected one of {SCALINGS}")


@dataclass(frozen=True)
class TwoLayer:
    """Parameters of a two-layer network and the maps they define.

    Attributes
    ----------
    W : (N, d) array
        First-layer weights, one neuron per row.
    a : (N,) array
        Second-layer weights.
    activation : Activation
    scaling : {"standard", "mean_field"}
    """

    W: Any
    a: Any
    activation: Activation
    scaling: str = "standard"

    def __post_init__(self) -> None:
        if self.W.ndim != 2:
            raise ValueError(f"W must be 2-D (N, d), got shape {tuple(self.W.shape)}")
        if tuple(self.a.shape) != (self.W.shape[0],):
            raise ValueError(
                f"a must have shape (N,) = ({self.W.shape[0]},), got {tuple(self.a.shape)}"
            )
        output_scale(1, self.scaling)  # validates the name

    @property
    def N(self) -> int:
        return int(self.W.shape[0])

    @property
    def d(self) -> int:
        return int(self.W.shape[1])

    @property
    def scale(self) -> float:
        return output_scale(self.N, self.scaling)

    def replace(self, **changes: Any) -> TwoLayer:
        return replace(self, **changes)

    def preactivations(self, X: Any) -> Any:
        """X W^T, shape (n, N)."""
        return X @ self.W.T

    def features(self, X: Any) -> Any:
        """Unscaled features sigma(X W^T), shape (n, N)."""
        return self.activation(self.preactivations(X))

    def forward(self, X: Any) -> Any:
        """Predictions f(X), shape (n,)."""
        return self.scale * (self.features(X) @ self.a)

    __call__ = forward

    def loss(self, X: Any, y: Any, loss: Loss) -> float:
        """Batch mean of the loss."""
        return float(loss.value(self.forward(X), y).mean())

    def gradients(
        self, X: Any, y: Any, loss: Loss, *, need_W: bool = True, need_a: bool = True
    ) -> tuple[Any | None, Any | None]:
        """Gradients of the batch-mean loss (1/n) sum_mu l(f(x_mu), y_mu).

        Returns
        -------
        grad_W : (N, d) array or None
            scale/n * [(l'(f) a^T) * sigma'(X W^T)]^T X
        grad_a : (N,) array or None
            scale/n * sigma(X W^T)^T l'(f)
        """
        _, grad_W, grad_a = self.value_and_gradients(X, y, loss, need_W=need_W, need_a=need_a)
        return grad_W, grad_a

    def value_and_gradients(
        self, X: Any, y: Any, loss: Loss, *, need_W: bool = True, need_a: bool = True
    ) -> tuple[float, Any | None, Any | None]:
        """Batch-mean loss and its gradients (see :meth:`gradients`) from one forward pass."""
        n = X.shape[0]
        P = self.preactivations(X)
        F = self.activation(P)
        f = self.scale * (F @ self.a)
        value = float(loss.value(f, y).mean())
        residual = loss.derivative(f, y)
        coef = self.scale / n
        grad_a = coef * (F.T @ residual) if need_a else None
        grad_W = None
        if need_W:
            del F
            G = self.activation.derivative(P)
            G *= residual[:, None]
            G *= self.a[None, :]
            grad_W = coef * (G.T @ X)
        return value, grad_W, grad_a


def init_student(
    N: int,
    d: int,
    activation: Activation,
    rng: np.random.Generator,
    *,
    scaling: str = "standard",
    w_init: str = "gaussian",
    w_scale: float = 1.0,
    a_init: str = "gaussian",
    a_scale: float = 1.0,
    backend: Backend = DEFAULT_BACKEND,
) -> TwoLayer:
    """Random initial student.

    Parameters
    ----------
    N, d : int
        Width and input dimension.
    w_init : {"gaussian", "sphere"}
        ``gaussian``: entries N(0, w_scale^2 / d), so ||w_i|| ~ w_scale; ``sphere``: rows uniform
        on the sphere of radius ``w_scale`` (exactly normalised rows).
    w_scale : float
        Row norm omega; a small value gives the small-initialisation regime.
    a_init : {"gaussian", "pm1", "balanced", "constant"}
        ``gaussian``: N(0, a_scale^2); ``pm1``: independent random signs times a_scale;
        ``balanced``: exactly floor(N/2) entries +a_scale and the rest -a_scale, in random order;
        ``constant``: all a_scale.
    """
    if N <= 0 or d <= 0:
        raise ValueError(f"N and d must be positive, got N={N}, d={d}")
    if w_init == "gaussian":
        W = rng.standard_normal((N, d)) * (w_scale / math.sqrt(d))
    elif w_init == "sphere":
        W = rng.standard_normal((N, d))
        W *= w_scale / np.linalg.norm(W, axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown w_init {w_init!r}; expected one of {W_INITS}")
    if a_init == "gaussian":
        a = rng.standard_normal(N) * a_scale
    elif a_init == "pm1":
        a = rng.choice([-1.0, 1.0], size=N) * a_scale
    elif a_init == "balanced":
        a = np.where(np.arange(N) < N // 2, 1.0, -1.0) * a_scale
        a = rng.permutation(a)
    elif a_init == "constant":
        a = np.full(N, float(a_scale))
    else:
        raise ValueError(f"unknown a_init {a_init!r}; expected one of {A_INITS}")
    return TwoLayer(backend.asarray(W), backend.asarray(a), activation, scaling)
