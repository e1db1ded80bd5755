"""The ``giant_steps`` protocol: a few giant gradient steps with fresh or reused batches (Ba et
al. 2022; Moniri et al. 2023; the two-step analysis at linear width). Its config section
(:class:`GiantStepsConfig`), its run function and its algorithm (:func:`giant_steps`).

:func:`giant_steps` also trains a stack of students (batched seeds: W of shape (S, N, d), a
:class:`~twolayer.teachers.TeacherStack` and a :class:`~twolayer.backend.StreamStack`) with
the same code; then the trajectory's loss and update norm are arrays of S values, and a member
that diverges is reported in ``TrainResult.diverged`` instead of raising, so that the others
go on.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from twolayer.backend import DEFAULT_BACKEND, Backend, RunStreams, StreamStack, to_numpy
from twolayer.config import ConfigModel, ProtocolConfig, check_loss
from twolayer.losses import Loss, get_loss
from twolayer.student import TwoLayer
from twolayer.teachers import Teacher
from twolayer.train.protocol import TrainContext, register_protocol
from twolayer.train.result import GiantStepsInfo, TrainResult
from twolayer.train.schedule import DivergenceError, StepSize, StepSizeConfig

__all__ = [
    "LAYERS",
    "GiantStep",
    "GiantStepConfig",
    "GiantStepsConfig",
    "Layer",
    "TrainResult",
    "giant_steps",
]

#: The layer(s) a step trains (written once; the tuple derives from the Literal).
Layer = Literal["W", "a", "both"]
LAYERS: tuple[str, ...] = get_args(Layer)


@dataclass(frozen=True)
class GiantStep:
    """One full-batch gradient step W <- W - eta grad_W L(batch) (and/or on a).

    Parameters
    ----------
    eta : StepSize
        The step size, eta = c * S^alpha (S = n is this step's batch size).
    batch : "fresh" or int
        ``"fresh"`` draws a new batch; an int k reuses the batch of step k (0-based).
    layer : {"W", "a", "both"}
    n : int or None
        Batch size of a fresh batch (default: the protocol's n).
    """

    eta: StepSize
    batch: str | int = "fresh"
    layer: str = "W"
    n: int | None = None



class GiantStepConfig(ConfigModel):
    """One full-batch step on a fresh or an earlier (reused) batch."""

    eta: StepSizeConfig = Field(
        default_factory=StepSizeConfig, description="step size eta = c * S^alpha"
    )
    batch: Literal["fresh"] | NonNegativeInt = Field(
        "fresh", description="'fresh', or the index of an earlier step whose batch is reused"
    )
    layer: Layer = Field("W", description="the layer(s) the step updates")
    n: PositiveInt | None = Field(None, description="batch size of a fresh batch (default train.n)")

    def build(self) -> GiantStep:
        return GiantStep(self.eta.build(), self.batch, self.layer, self.n)


class GiantStepsConfig(ProtocolConfig):
    """A list of giant gradient steps (Ba et al. 2022; Moniri et al. 2023; two-step analysis)."""

    protocol: Literal["giant_steps"] = Field("giant_steps", description="selects this protocol")
    n: PositiveInt = Field(description="size of each fresh training batch")
    loss: str = Field("square", description="square, logistic, hinge or absolute")
    steps: list[GiantStepConfig] = Field(
        default_factory=lambda: [GiantStepConfig()],
        description="the steps, in order (default: one step with eta = 1 on a fresh batch)",
    )

    _loss = field_validator("loss")(check_loss)

    @model_validator(mode="after")
    def _check_batches(self) -> GiantStepsConfig:
        for k, step in enumerate(self.steps):
            if step.batch != "fresh" and step.batch >= k:
                raise ValueError(
                    f"steps[{k}].batch = {step.batch}: a reused batch must come from an earlier "
                    f"step (0..{k - 1})"
                )
        return self


def _member_sums(x: Any, stacked: bool) -> float | np.ndarray:
    """Sum of all entries (a float), or of each member's entries for a stack (S values)."""
    if not stacked:
        return float(x.sum())
    return to_numpy(x.reshape(x.shape[0], -1).sum(-1))


def giant_steps(
    student: TwoLayer,
    teacher: Teacher,
    streams: RunStreams | StreamStack,
    steps: list[GiantStep],
    *,
    n: int,
    loss: Loss,
    backend: Backend = DEFAULT_BACKEND,
    checkpoints: Collection[int] = (),
) -> TrainResult:
    """Apply ``steps`` in order; fresh batch j is drawn from stream ("batch", j).

    A stack of students (``student.stack_size`` = S) takes a TeacherStack and a StreamStack of
    S members; member i then gets exactly the batches and updates of its own unbatched run.

    checkpoints : collection of int
        Keep the student after step k (W_k; 0 is the initial student) for each k given, in
        ``TrainResult.checkpoints``.

    Returns
    -------
    TrainResult
        ``batches`` maps each step index to its (X, y); ``trajectory`` has, per step, the
        batch loss before the step, the step size and the Frobenius norm of the W update;
        ``etas`` the step size of each step; ``info`` a :class:`GiantStepsInfo`.

    Raises
    ------
    DivergenceError
        When the loss or the parameters become non-finite (one student; a stack reports its
        diverged members in ``TrainResult.diverged``).
    """
    stacked = student.stack_size is not None
    batches: dict[int, tuple[Any, Any]] = {}
    fresh = 0
    trajectory = []
    etas: list[float] = []
    diverged: dict[int, DivergenceError] = {}
    kept = {k: student for k in checkpoints if k == 0}

    def check(k: int, finite: Any, what: str) -> None:
        if not stacked:
            if not finite:
                raise DivergenceError(k, what)
            return
        for i in np.flatnonzero(~np.asarray(finite)):
            diverged.setdefault(int(i), DivergenceError(k, what))

    with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked below
        for k, step in enumerate(steps):
            if step.layer not in LAYERS:
                raise ValueError(f"step {k}: layer must be one of {LAYERS}, got {step.layer!r}")
            if step.batch == "fresh":
                size = step.n or n
                batches[k] = teacher.sample(size, streams.generator("batch", fresh), backend)
                fresh += 1
            elif isinstance(step.batch, int | np.integer) and 0 <= int(step.batch) < k:
                batches[k] = batches[int(step.batch)]
            else:
                raise ValueError(
                    f"step {k}: batch must be 'fresh' or the index of an earlier step "
                    f"(0..{k - 1}), "
                    f"got {step.batch!r}"
                )
            X, y = batches[k]
            eta = step.eta.value(n=int(X.shape[-2]), N=student.N, d=student.d)
            value, grad_W, grad_a = student.value_and_gradients(
                X, y, loss, need_W=step.layer in ("W", "both"), need_a=step.layer in ("a", "both")
            )
            check(k, np.isfinite(value), "loss")
            changes: dict[str, Any] = {}
            if grad_W is not None:
                changes["W"] = student.W - eta * grad_W
            if grad_a is not None:
                changes["a"] = student.a - eta * grad_a
            update_norm = (
                eta * _member_sums(grad_W * grad_W, stacked) ** 0.5 if grad_W is not None else 0.0
            )
            student = student.replace(**changes)
            finite: Any = True
            for v in changes.values():
                # the squared norm: a parameter too large to square in float64 (|w| > 1e154)
                # has left the arithmetic every later stage needs (features, Gram matrices)
                finite = finite & np.isfinite(_member_sums(v * v, stacked))
            check(k, finite, "parameters")
            trajectory.append({"step": k, "loss": value, "eta": eta, "update_norm_W": update_norm})
            etas.append(eta)
            if k + 1 in checkpoints:
                kept[k + 1] = student
    return TrainResult(
        student, trajectory, batches, etas, kept, GiantStepsInfo(fresh), diverged
    )


@register_protocol("giant_steps", GiantStepsConfig, batched=True)
def run_giant_steps(config: GiantStepsConfig, ctx: TrainContext) -> TrainResult:
    """A few giant gradient steps, fresh or reused batches (:func:`giant_steps`)."""
    return giant_steps(
        ctx.student,
        ctx.teacher,
        ctx.streams,
        [s.build() for s in config.steps],
        n=config.n,
        loss=get_loss(config.loss),
        backend=ctx.backend,
        checkpoints=ctx.checkpoints,
    )
