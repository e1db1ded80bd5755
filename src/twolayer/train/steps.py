"""A few giant gradient steps with fresh or reused batches (Ba et al. 2022; Moniri et al. 2023;
the two-step analysis at linear width).

:func:`giant_steps` also trains a stack of students (batched seeds: W of shape (S, N, d), a
:class:`~twolayer.teachers.TeacherStack` and a :class:`~twolayer.backend.StreamStack`) with
the same code; then the trajectory's loss and update norm are arrays of S values, and a member
that diverges is reported in ``info["diverged"]`` instead of raising, so that the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twolayer.backend import DEFAULT_BACKEND, Backend, RunStreams, StreamStack, to_numpy
from twolayer.losses import Loss
from twolayer.student import TwoLayer
from twolayer.teachers import Teacher
from twolayer.train.schedule import DivergenceError, StepSize

LAYERS = ("W", "a", "both")


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


@dataclass
class TrainResult:
    """What a protocol returns: the trained student and what happened on the way.

    For a stack of students, ``batches`` hold stacked arrays ((S, n, d), (S, n)), trajectory
    values are arrays of S values (or plain numbers shared by all members, such as the step
    size) and ``info["diverged"]`` maps a member's index to its DivergenceError.
    """

    student: TwoLayer
    trajectory: list[dict[str, float]] = field(default_factory=list)
    batches: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


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
) -> TrainResult:
    """Apply ``steps`` in order; fresh batch j is drawn from stream ("batch", j).

    A stack of students (``student.stack_size`` = S) takes a TeacherStack and a StreamStack of
    S members; member i then gets exactly the batches and updates of its own unbatched run.

    Returns
    -------
    TrainResult
        ``batches`` maps each step index to its (X, y); ``trajectory`` has, per step, the
        batch loss before the step, the step size and the Frobenius norm of the W update.

    Raises
    ------
    DivergenceError
        When the loss or the parameters become non-finite (one student; a stack reports its
        diverged members in ``info["diverged"]``).
    """
    stacked = student.stack_size is not None
    batches: dict[int, tuple[Any, Any]] = {}
    fresh = 0
    trajectory = []
    diverged: dict[int, DivergenceError] = {}

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
    info: dict[str, Any] = {"fresh_batches": fresh}
    if stacked:
        info["diverged"] = diverged
    return TrainResult(student, trajectory, batches, info)
