"""Pointwise losses l(f, y) and their derivatives in f, for NumPy arrays and torch tensors.

Conventions: ``square`` is (f - y)^2 / 2 (so its derivative is the residual f - y); the
classification losses take labels y in {-1, +1}. Training objectives average a loss over the
batch (a *mean*, not a sum); a paper that uses a sum or drops the 1/2 is matched by the step
size constant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from twolayer.activations import _indicator
from twolayer.backend import namespace_of
from twolayer.registry import Registry

#: How a ridge penalty is added: to the mean (1/n) sum of squared errors or to their sum
#: (twolayer.train.readout); written once, the tuple derives from the Literal.
Penalty = Literal["mean", "sum"]
PENALTIES: tuple[str, ...] = get_args(Penalty)


@dataclass(frozen=True)
class Loss:
    """A loss: ``value(f, y)`` and ``derivative(f, y)`` = d l / d f, elementwise."""

    name: str
    value: Callable[[Any, Any], Any]
    derivative: Callable[[Any, Any], Any]
    classification: bool = False


def _softplus(t: Any) -> Any:
    xp = namespace_of(t)
    return np.logaddexp(0.0, t) if xp is np else xp.nn.functional.softplus(t)


def _sigmoid(t: Any) -> Any:
    import scipy.special  # here: importing it costs ~0.3 s at start-up

    xp = namespace_of(t)
    return scipy.special.expit(t) if xp is np else xp.sigmoid(t)


LOSSES: Registry[Loss] = Registry("loss")
LOSSES.add("square", Loss("square", lambda f, y: 0.5 * (f - y) ** 2, lambda f, y: f - y))
# log(1 + exp(-y f)) computed as softplus(-y f): stable for large margins of either sign
LOSSES.add(
    "logistic",
    Loss("logistic", lambda f, y: _softplus(-y * f), lambda f, y: -y * _sigmoid(-y * f), True),
)
LOSSES.add(
    "hinge",
    Loss(
        "hinge",
        lambda f, y: (1.0 - y * f) * (y * f < 1.0),
        lambda f, y: -y * _indicator(y * f < 1.0, f),
        True,
    ),
)
LOSSES.add(
    "absolute",
    Loss("absolute", lambda f, y: abs(f - y), lambda f, y: namespace_of(f).sign(f - y)),
)


def get_loss(name: str) -> Loss:
    """A registered loss: square, logistic, hinge or absolute."""
    return LOSSES.get(name)
