"""The two-layer student f(x) = scale(N) * sum_i a_i sigma(<w_i, x>).

``scaling="standard"`` uses scale = 1/sqrt(N), ``scaling="mean_field"`` uses scale = 1/N.
Parameters are W, shape (N, d), one neuron per row, and a, shape (N,). Features are the
*unscaled* post-activations F = sigma(X W^T), shape (n, N); predictions are scale * F a.
Gradients are those of the batch mean of a pointwise loss, computed analytically.

A *stack* of S students (batched seeds) has W of shape (S, N, d) and a of shape (S, N), and
takes data of shape (S, n, d), (S, n): member i sees only its own slice, and every map below
returns its result with a leading S axis. The same code serves both: products are written with
``@`` and :func:`~twolayer.backend.mT` (swap the last two axes), which on 2-D arrays are the
very products of the unbatched formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import numpy as np

from twolayer.activations import Activation
from twolayer.backend import DEFAULT_BACKEND, Backend, matvec, mT, namespace_of, to_numpy
from twolayer.losses import Loss

#: The allowed values, each written once as a Literal (the configuration's type); the runtime
#: tuples derive from them.
Scaling = Literal["standard", "mean_field"]
SCALINGS: tuple[str, ...] = get_args(Scaling)
WInit = Literal["gaussian", "sphere"]
W_INITS: tuple[str, ...] = get_args(WInit)
AInit = Literal["gaussian", "pm1", "balanced", "constant"]
A_INITS: tuple[str, ...] = get_args(AInit)


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
    W : (N, d) array, or (S, N, d) for a stack of S students
        First-layer weights, one neuron per row.
    a : (N,) array, or (S, N)
        Second-layer weights.
    activation : Activation
    scaling : {"standard", "mean_field"}
    """

    W: Any
    a: Any
    activation: Activation
    scaling: str = "standard"

    def __post_init__(self) -> None:
        if self.W.ndim not in (2, 3):
            raise ValueError(
                f"W must be (N, d), or (S, N, d) for a stack, got shape {tuple(self.W.shape)}"
            )
        if tuple(self.a.shape) != tuple(self.W.shape[:-1]):
            want = "(N,)" if self.W.ndim == 2 else "(S, N)"
            raise ValueError(
                f"a must have shape {want} = {tuple(self.W.shape[:-1])} to match W of shape "
                f"{tuple(self.W.shape)}, got {tuple(self.a.shape)}"
            )
        output_scale(1, self.scaling)  # validates the name

    @property
    def N(self) -> int:
        return int(self.W.shape[-2])

    @property
    def d(self) -> int:
        return int(self.W.shape[-1])

    @property
    def stack_size(self) -> int | None:
        """S for a stack of S students, None for one student."""
        return int(self.W.shape[0]) if self.W.ndim == 3 else None

    @classmethod
    def stack(cls, students: Sequence[TwoLayer]) -> TwoLayer:
        """One stacked student (W of shape (S, N, d)) from S students of one shape."""
        if not students:
            raise ValueError("cannot stack an empty list of students")
        first = students[0]
        for s in students:
            if s.stack_size is not None or tuple(s.W.shape) != tuple(first.W.shape):
                raise ValueError(
                    f"students to stack must be single students of one shape, got W of shapes "
                    f"{tuple(first.W.shape)} and {tuple(s.W.shape)}"
                )
            if s.activation is not first.activation and s.activation.name != first.activation.name:
                raise ValueError(
                    f"students to stack must share the activation, got {first.activation.name} "
                    f"and {s.activation.name}"
                )
            if s.scaling != first.scaling:
                raise ValueError("students to stack must share the scaling")
        xp = namespace_of(first.W)
        W = xp.stack([s.W for s in students])
        a = xp.stack([s.a for s in students])
        return cls(W, a, first.activation, first.scaling)

    def unstack(self) -> list[TwoLayer]:
        """The members of a stack as single students (views of the stacked arrays)."""
        if self.stack_size is None:
            raise ValueError("unstack needs a stack of students (W of shape (S, N, d))")
        return [self.replace(W=self.W[i], a=self.a[i]) for i in range(self.stack_size)]

    @property
    def scale(self) -> float:
        return output_scale(self.N, self.scaling)

    def replace(self, **changes: Any) -> TwoLayer:
        return replace(self, **changes)

    def preactivations(self, X: Any) -> Any:
        """X W^T, shape (n, N) (a stack: (S, n, N) from X of shape (S, n, d))."""
        return X @ mT(self.W)

    def features(self, X: Any) -> Any:
        """Unscaled features sigma(X W^T), shape (n, N) (a stack: (S, n, N))."""
        # the pre-activations are a fresh array: sigma may overwrite it (no second buffer)
        return self.activation.overwrite(self.preactivations(X))

    def forward(self, X: Any) -> Any:
        """Predictions f(X), shape (n,) (a stack: (S, n))."""
        return self.output(self.features(X))

    def output(self, F: Any) -> Any:
        """Predictions from already computed features F = sigma(X W^T): scale * F a."""
        return self.scale * matvec(F, self.a)

    __call__ = forward

    def loss(self, X: Any, y: Any, loss: Loss) -> float | np.ndarray:
        """Batch mean of the loss (a stack: a NumPy array of S means)."""
        values = loss.value(self.forward(X), y)
        if self.stack_size is None:
            return float(values.mean())
        return to_numpy(values.mean(-1))

    def gradients(
        self, X: Any, y: Any, loss: Loss, *, need_W: bool = True, need_a: bool = True
    ) -> tuple[Any | None, Any | None]:
        """Gradients of the batch-mean loss (1/n) sum_mu l(f(x_mu), y_mu).

        Returns
        -------
        grad_W : (N, d) array or None
            scale/n * [(l'(f) a^T) * sigma'(X W^T)]^T X  (a stack: (S, N, d))
        grad_a : (N,) array or None
            scale/n * sigma(X W^T)^T l'(f)  (a stack: (S, N))
        """
        _, grad_W, grad_a = self.value_and_gradients(X, y, loss, need_W=need_W, need_a=need_a)
        return grad_W, grad_a

    def value_and_gradients(
        self, X: Any, y: Any, loss: Loss, *, need_W: bool = True, need_a: bool = True
    ) -> tuple[float | np.ndarray, Any | None, Any | None]:
        """Batch-mean loss and its gradients (see :meth:`gradients`) from one forward pass.

        For a stack the loss is a NumPy array of S batch means, one per member.
        """
        n = X.shape[-2]
        P = self.preactivations(X)
        F = self.activation(P)
        f = self.scale * matvec(F, self.a)
        values = loss.value(f, y)
        value = float(values.mean()) if self.stack_size is None else to_numpy(values.mean(-1))
        residual = loss.derivative(f, y)
        coef = self.scale / n
        grad_a = coef * matvec(mT(F), residual) if need_a else None
        grad_W = None
        if need_W:
            del F
            G = self.activation.derivative(P)
            G *= residual[..., :, None]
            G *= self.a[..., None, :]
            grad_W = coef * (mT(G) @ X)
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
