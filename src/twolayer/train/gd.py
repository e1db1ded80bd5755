"""Gradient descent: full-batch GD, minibatch or online SGD, weight decay, Langevin noise."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twolayer.backend import DEFAULT_BACKEND, Backend, RunStreams
from twolayer.losses import Loss
from twolayer.student import TwoLayer
from twolayer.teachers import Teacher
from twolayer.train.schedule import DivergenceError, StepSize
from twolayer.train.steps import LAYERS, TrainResult

Monitor = Callable[[TwoLayer, int], dict[str, float]]


@dataclass(frozen=True)
class GDOptions:
    """Options of :func:`gradient_descent`.

    The update at step t (t = 0..steps-1), for each trained layer P in {W, a}, is

        P <- P - eta_t (grad_P L_batch + wd_P P) + sqrt(2 eta_t T) xi,   xi ~ N(0, I),

    i.e. a gradient step on L + (wd_W / 2) ||W||_F^2 + (wd_a / 2) ||a||^2 with Langevin noise
    at temperature T, and eta_t = eta_0 (1 + t)^(-decay).

    In mean-field scaling, mean-field Langevin dynamics with time step dt, regularisation lambda
    and temperature tau is eta = dt * N, wd = lambda / N, T = tau / N.

    Parameters
    ----------
    steps : int
    eta : StepSize
    decay : float
        Exponent p of the polynomial decay eta_t = eta_0 (1 + t)^(-p); 0 for a constant step.
    batch_size : int or None
        None: full batch (GD on the n training points). Otherwise minibatch SGD, sampling
        without replacement epoch by epoch.
    online : bool
        Draw a fresh batch of ``batch_size`` (default n) at every step (one-pass SGD).
    train : {"W", "a", "both"}
    weight_decay_W, weight_decay_a, temperature : float
    record_every : int
        Record the trajectory every so many steps (and at the first and last step).
    """

    steps: int = 100
    eta: StepSize = field(default_factory=StepSize)
    decay: float = 0.0
    batch_size: int | None = None
    online: bool = False
    train: str = "both"
    weight_decay_W: float = 0.0
    weight_decay_a: float = 0.0
    temperature: float = 0.0
    record_every: int = 10

    def __post_init__(self) -> None:
        if self.train not in LAYERS:
            raise ValueError(f"gd: train must be one of {LAYERS}, got {self.train!r}")
        if self.steps < 0 or self.record_every < 1:
            raise ValueError("gd: steps must be >= 0 and record_every >= 1")
        if min(self.weight_decay_W, self.weight_decay_a, self.temperature, self.decay) < 0:
            raise ValueError("gd: weight decays, temperature and decay must be >= 0")


def gradient_descent(
    student: TwoLayer,
    teacher: Teacher,
    streams: RunStreams,
    options: GDOptions,
    *,
    n: int,
    loss: Loss,
    backend: Backend = DEFAULT_BACKEND,
    monitor: Monitor | None = None,
    data: tuple[Any, Any] | None = None,
    noise_streams: tuple[int, int] = (0, 1),
) -> TrainResult:
    """Train ``student`` with GD/SGD; returns the trained student and its trajectory.

    The training set is stream ("batch", 0) of size n (or ``data`` if given); online SGD draws
    batch t from stream ("batch", t). Minibatch orders come from stream ("train_noise", 0),
    Langevin noise from stream ("train_noise", 1) (``noise_streams`` gives other indices, so that
    successive stages of one run draw independent orders and noise).

    Raises
    ------
    DivergenceError
        When the loss or the parameters become non-finite (``.step`` says when).
    """
    o = options
    train_W, train_a = o.train in ("W", "both"), o.train in ("a", "both")
    if not o.online:
        X_all, y_all = (
            data if data is not None else teacher.sample(n, streams.generator("batch", 0), backend)
        )
    order_rng = streams.generator("train_noise", noise_streams[0])
    noise_rng = streams.generator("train_noise", noise_streams[1])
    eta0 = o.eta.value(n=n, N=student.N, d=student.d)
    size = o.batch_size or n
    perm: np.ndarray = np.empty(0, dtype=np.int64)
    trajectory: list[dict[str, float]] = []
    W, a = student.W, student.a

    def record(t: int, batch_loss: float) -> None:
        current = student.replace(W=W, a=a)
        row = {"step": float(t), "batch_loss": batch_loss}
        reg = 0.5 * (
            o.weight_decay_W * float((W * W).sum()) + o.weight_decay_a * float((a * a).sum())
        )
        if not o.online:
            row["train_loss"] = current.loss(X_all, y_all, loss)
            row["objective"] = row["train_loss"] + reg
        if monitor is not None:
            row.update(monitor(current, t))
        trajectory.append(row)

    # overflow on the way to a divergence is caught below and reported as DivergenceError
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(o.steps + 1):
            if o.online:
                X, y = teacher.sample(size, streams.generator("batch", t), backend)
            elif o.batch_size is None or o.batch_size >= n:
                X, y = X_all, y_all
            else:
                if perm.size < size:
                    perm = np.concatenate([perm, order_rng.permutation(n)])
                idx, perm = perm[:size], perm[size:]
                X, y = X_all[idx], y_all[idx]
            current = student.replace(W=W, a=a)
            if t == o.steps:  # final record only
                record(t, current.loss(X, y, loss))
                break
            value, grad_W, grad_a = current.value_and_gradients(
                X, y, loss, need_W=train_W, need_a=train_a
            )
            if not math.isfinite(value):
                raise DivergenceError(t)
            if t % o.record_every == 0:
                record(t, value)
            eta = eta0 * (1.0 + t) ** (-o.decay)
            if train_W:
                W = (
                    W - eta * (grad_W + o.weight_decay_W * W)
                    if o.weight_decay_W
                    else W - eta * grad_W
                )
            if train_a:
                a = (
                    a - eta * (grad_a + o.weight_decay_a * a)
                    if o.weight_decay_a
                    else a - eta * grad_a
                )
            if o.temperature > 0:
                amp = math.sqrt(2.0 * eta * o.temperature)
                if train_W:
                    W = W + amp * backend.normal(noise_rng, tuple(W.shape))
                if train_a:
                    a = a + amp * backend.normal(noise_rng, tuple(a.shape))
            if not (math.isfinite(float(W.sum())) and math.isfinite(float(a.sum()))):
                raise DivergenceError(t, "parameters")
    final = student.replace(W=W, a=a)
    info = {"eta0": eta0, "steps": o.steps}
    batches = {} if o.online else {0: (X_all, y_all)}
    return TrainResult(final, trajectory, batches, info)
