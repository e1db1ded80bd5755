"""Shared builders for the measurement tests (imported by name; pytest puts this folder on
sys.path): a MeasureContext from explicit weights, noise matrices, teachers."""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.activations import get_activation
from twolayer.backend import RunStreams
from twolayer.measure import MeasureContext
from twolayer.student import TwoLayer
from twolayer.teachers import Teacher, get_teacher


def build_context(
    teacher: Teacher,
    W0: np.ndarray,
    W: np.ndarray | None = None,
    *,
    a: np.ndarray | None = None,
    a0: np.ndarray | None = None,
    activation: str | dict = "relu",
    scaling: str = "standard",
    batches: dict[int, tuple[Any, Any]] | None = None,
    seed: int = 0,
) -> MeasureContext:
    """A context whose initial student has first layer W0 and current student W (default W0)."""
    N = W0.shape[0]
    rng = np.random.default_rng(1234)
    a0 = rng.standard_normal(N) if a0 is None else a0
    a = a0 if a is None else a
    act = (
        get_activation(**activation) if isinstance(activation, dict) else get_activation(activation)
    )
    s0 = TwoLayer(np.asarray(W0, dtype=float), np.asarray(a0, dtype=float), act, scaling)
    s1 = TwoLayer(
        np.asarray(W0 if W is None else W, dtype=float), np.asarray(a, dtype=float), act, scaling
    )
    return MeasureContext(teacher, s0, s1, batches or {}, RunStreams(seed))


def noise_matrix(N: int, d: int, seed: int, variance: float | None = None) -> np.ndarray:
    """(N, d) matrix with iid N(0, variance) entries (default 1/d, the project's init)."""
    var = 1.0 / d if variance is None else variance
    return np.random.default_rng(seed).standard_normal((N, d)) * np.sqrt(var)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def single_index(d: int, seed: int = 0, link: str = "tanh") -> Teacher:
    return get_teacher("single_index", d=d, rng=np.random.default_rng(seed), link=link)
