"""The ``gd`` protocol: full-batch GD, minibatch or online SGD, weight decay, Langevin noise.
Its config section (:class:`GDConfig`), its run function (with the monitored metrics) and its
algorithm (:func:`gradient_descent`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, field_validator

from twolayer.backend import DEFAULT_BACKEND, Backend, RunStreams, to_numpy
from twolayer.config import ConfigModel, ProtocolConfig, check_loss
from twolayer.losses import Loss, get_loss
from twolayer.registry import MEASUREMENTS
from twolayer.student import TwoLayer
from twolayer.teachers import Teacher
from twolayer.train.protocol import TrainContext, register_protocol
from twolayer.train.result import GDInfo, TrainResult
from twolayer.train.schedule import DivergenceError, StepSize, StepSizeConfig
from twolayer.train.steps import LAYERS, Layer

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
    etas: list[float] = []
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
            etas.append(eta)
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
    batches = {} if o.online else {0: (X_all, y_all)}
    return TrainResult(final, trajectory, batches, etas, info=GDInfo(eta0, o.steps))


class WeightDecayConfig(ConfigModel):
    W: NonNegativeFloat = Field(0.0, description="L2 weight decay on the first layer")
    a: NonNegativeFloat = Field(0.0, description="L2 weight decay on the second layer")


#: Monitor metrics computed by the GD protocol itself on its held-out monitor set.
MONITOR_METRICS = ("test_loss", "test_err01", "test_mse")


class GDConfig(ProtocolConfig):
    """Full-batch GD or minibatch/online SGD, optional weight decay and Langevin noise."""

    protocol: Literal["gd"] = Field("gd", description="selects this protocol")
    n: PositiveInt = Field(description="training set size (batch size of online SGD if unset)")
    loss: str = Field("square", description="square, logistic, hinge or absolute")
    steps: NonNegativeInt = Field(100, description="number of steps")
    eta: StepSizeConfig = Field(
        default_factory=StepSizeConfig, description="initial step size eta_0 = c * S^alpha"
    )
    decay: NonNegativeFloat = Field(0.0, description="eta_t = eta_0 (1 + t)^(-decay)")
    batch_size: PositiveInt | None = Field(None, description="None = full batch")
    online: bool = Field(False, description="fresh batch every step (one-pass SGD)")
    train: Layer = Field("both", description="the layer(s) trained")
    weight_decay: WeightDecayConfig = Field(
        default_factory=WeightDecayConfig, description="L2 penalties per layer"
    )
    temperature: NonNegativeFloat = Field(0.0, description="Langevin temperature T")
    record_every: PositiveInt = Field(10, description="trajectory stride")
    monitor: list[str] = Field(
        default_factory=list,
        description="metrics recorded along the trajectory: test_loss, test_err01, or a "
        "per-step measurement name",
    )
    monitor_n: PositiveInt = Field(2000, description="size of the held-out monitor set")

    _loss = field_validator("loss")(check_loss)

    @field_validator("monitor")
    @classmethod
    def _check_monitor(cls, names: list[str]) -> list[str]:
        for name in names:
            if name in MONITOR_METRICS:
                continue
            if name not in MEASUREMENTS:
                raise ValueError(
                    f"{name!r} is neither a monitor metric ({', '.join(MONITOR_METRICS)}) nor "
                    f"a measurement; {MEASUREMENTS.unknown_message(name)}"
                )
            if not MEASUREMENTS.get(name).per_step:
                per_step = [m for m in MEASUREMENTS.names() if MEASUREMENTS.get(m).per_step]
                raise ValueError(
                    f"measurement {name!r} cannot run per step; those that can: "
                    f"{', '.join(per_step)}"
                )
        return names

    def reuse_problem(self) -> str | None:
        if self.online:
            return (
                "readout.batch 'reuse': online gd (train.online) keeps no training batch to "
                "reuse; use batch 'fresh'"
            )
        return None

    def build(self) -> GDOptions:
        return GDOptions(
            steps=self.steps,
            eta=self.eta.build(),
            decay=self.decay,
            batch_size=self.batch_size,
            online=self.online,
            train=self.train,
            weight_decay_W=self.weight_decay.W,
            weight_decay_a=self.weight_decay.a,
            temperature=self.temperature,
            record_every=self.record_every,
        )


def monitor_for(
    config: GDConfig,
    ctx: TrainContext,
    batches: dict[int, tuple[Any, Any]] | None = None,
) -> Monitor | None:
    """The monitor of a ``gd`` section: its metrics on a held-out set drawn from stream
    ("measure", 1000), and its per-step measurements (through ``ctx.measure``, which compare
    with ``ctx.student``, the student at initialisation, and see ``batches``)."""
    if not config.monitor:
        return None
    teacher, backend = ctx.teacher, ctx.backend
    X_mon, y_mon = teacher.sample(
        config.monitor_n, ctx.streams.generator("measure", 1_000), backend
    )
    loss = get_loss(config.loss)
    classification = teacher.task == "classification"

    def monitor(student: TwoLayer, step: int) -> dict[str, float]:
        row: dict[str, float] = {}
        f = None
        for name in config.monitor:
            if name in MONITOR_METRICS:
                f = student.forward(X_mon) if f is None else f
                if name == "test_loss":
                    row[name] = float(loss.value(f, y_mon).mean())
                elif name == "test_mse":
                    row[name] = float(((f - y_mon) ** 2).mean())
                elif classification:
                    row[name] = float((np.sign(to_numpy(f)) != to_numpy(y_mon)).mean())
            elif ctx.measure is None:
                raise ValueError(f"gd: monitor {name!r} needs a measurement runner (the pipeline)")
            else:
                row.update(ctx.measure(name, student, batches or {}))
        return row

    return monitor


@register_protocol("gd", GDConfig)
def run_gd(config: GDConfig, ctx: TrainContext) -> TrainResult:
    """Full-batch GD or minibatch/online SGD (:func:`gradient_descent`)."""
    # the training set is drawn here (the same stream gradient_descent would use) so that
    # monitored measurements such as the generalisation gap see it
    data = (
        None if config.online
        else ctx.teacher.sample(config.n, ctx.streams.generator("batch", 0), ctx.backend)
    )
    batches = {0: data} if data is not None else None
    return gradient_descent(
        ctx.student,
        ctx.teacher,
        ctx.streams,
        config.build(),
        n=config.n,
        loss=get_loss(config.loss),
        backend=ctx.backend,
        monitor=monitor_for(config, ctx, batches),
        data=data,
    )
