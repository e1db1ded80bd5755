"""Batched seeds: the S seeds of one configuration as one stacked computation.

:func:`run_batch` runs the teacher, initialisation, training, readout and error stages of S
runs that differ only by their seed on stacks -- W of shape (S, N, d), batches of shape
(S, n, d) -- so that each product is one batched matrix product and each eigendecomposition one
batched ``eigh``, instead of S separate calls. It uses the very functions of the single-seed
path (:class:`~twolayer.student.TwoLayer`, :func:`~twolayer.train.giant_steps`,
:func:`~twolayer.train.ridge_path`, :func:`~twolayer.measure.chunked_errors`), which take a
leading seed axis. Every seed draws its numbers from its own :class:`~twolayer.backend.RunStreams`
exactly as :func:`~twolayer.pipeline.run_once` does (a
:class:`~twolayer.backend.StreamStack`), so member i's results equal those of
``run_once(config, seeds[i])`` up to the rounding of batched BLAS (~1e-12 relative in float64).
Measurements then run per seed on the members, with the unbatched code.

What is batched: the protocols ``giant_steps`` and ``none`` (random features), every readout
and baseline, the test and training errors. Not batched (:func:`batch_unsupported` says why):
``gd`` and ``stages`` (per-step minibatch orders, Langevin noise and monitored measurements
would each need a stacked variant; run them per seed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from twolayer.backend import Backend, StreamStack
from twolayer.config import GiantStepsConfig, NoTrainConfig, RunConfig
from twolayer.pipeline import (
    RunResult,
    StageCache,
    _section_key,
    build_student,
    build_teacher,
    evaluate_student,
    record_run,
    train_student,
)
from twolayer.student import TwoLayer
from twolayer.teachers import TeacherStack
from twolayer.train.schedule import DivergenceError
from twolayer.train.steps import TrainResult

#: Training protocols whose seeds can run as one stacked computation.
BATCHED_PROTOCOLS = (GiantStepsConfig, NoTrainConfig)


def batch_unsupported(config: RunConfig) -> str | None:
    """Why the seeds of ``config`` cannot run batched, or None when they can."""
    if not isinstance(config.train, BATCHED_PROTOCOLS):
        return (
            f"train.protocol {config.train.protocol!r} is not batched over seeds (only "
            "giant_steps and none are); its seeds run one by one"
        )
    return None


def _select(value: Any, index: Any) -> Any:
    """Rows ``index`` (an int or a list of ints) of a stacked array; other values unchanged."""
    if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
        return value[index]
    return value


def _select_train(trained: TrainResult, index: int | list[int]) -> TrainResult:
    """Member(s) ``index`` of a stacked TrainResult: one run's result for an int, a smaller
    stack for a list. Trajectory values that are per member become plain floats for an int."""
    student = trained.student.replace(W=trained.student.W[index], a=trained.student.a[index])
    rows = []
    for row in trained.trajectory:
        new = {}
        for k, v in row.items():
            if np.ndim(v) > 0:
                v = np.asarray(v)[index]
                v = float(v) if isinstance(index, int) else v
            new[k] = v
        rows.append(new)
    batches = {k: (X[index], y[index]) for k, (X, y) in trained.batches.items()}
    info = {k: v for k, v in trained.info.items() if k != "diverged"}
    return TrainResult(student, rows, batches, info)


def run_batch(
    config: RunConfig,
    seeds: Sequence[int],
    *,
    cache: StageCache | None = None,
    return_exceptions: bool = False,
) -> list[Any]:
    """Run one configuration for several seeds as one batched computation.

    Parameters
    ----------
    config : RunConfig
        Its protocol must be batched (see :func:`batch_unsupported`).
    seeds : sequence of S distinct non-negative ints
    cache : StageCache, optional
        Shares the stacked teacher and trained students with other batches of the same seeds
        and teacher/student/train/backend sections (e.g. a sweep over readout sizes).
    return_exceptions : bool
        False: raise the first member's exception (a DivergenceError of one seed stops the
        call, as in ``run_once``). True: put each failed member's exception in its place of
        the list, so the other seeds' results are kept.

    Returns
    -------
    list
        Item i is the :class:`RunResult` of ``seeds[i]``, equal to ``run_once(config,
        seeds[i])`` (to rounding), or its exception when ``return_exceptions``. Timings are
        the batch's stage times divided among its members (the measurements are per member).

    Raises
    ------
    ValueError
        If the protocol is not batched, or the seeds are empty, repeated or negative.
    """
    reason = batch_unsupported(config)
    if reason is not None:
        raise ValueError(reason)
    seeds = tuple(int(s) for s in seeds)
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
    cache = cache or StageCache(maxsize=0)
    backend = Backend(config.backend.name, config.backend.dtype, config.backend.device)
    streams = StreamStack(seeds)  # checks: non-empty, distinct
    size = len(seeds)
    timer = time.perf_counter()

    def trained() -> tuple[TeacherStack, TwoLayer, TrainResult]:
        teacher = TeacherStack([build_teacher(config, streams[i]) for i in range(size)])
        student0 = TwoLayer.stack([build_student(config, streams[i], backend) for i in range(size)])
        return teacher, student0, train_student(config, teacher, student0, streams, backend)

    key = (
        "train-batch",
        seeds,
        _section_key(config.teacher, config.student, config.train, config.backend),
    )
    teacher, student0, trained_stack = cache.get_or_compute(key, trained)
    train_s = (time.perf_counter() - timer) / size

    outcomes: list[Any] = [None] * size
    diverged: dict[int, DivergenceError] = trained_stack.info.get("diverged", {})
    for i, exc in diverged.items():
        outcomes[i] = exc
    alive = [i for i in range(size) if i not in diverged]
    if alive and diverged:
        # the diverged members' NaNs would fail the batched eigh of everyone: drop them
        teacher = TeacherStack([teacher[i] for i in alive])
        streams = StreamStack(tuple(seeds[i] for i in alive))
        student0 = student0.replace(W=student0.W[alive], a=student0.a[alive])
        trained_stack = _select_train(trained_stack, alive)
    if alive:
        evaluation = evaluate_student(config, teacher, streams, backend, student0, trained_stack)
        share = {k: v / len(alive) for k, v in evaluation.timings.items()}
        students0 = student0.unstack()
        for j, i in enumerate(alive):
            result = RunResult(timings={"train": train_s, **share})
            member_eval = evaluation.member(j)
            member_eval.timings = share
            try:
                outcomes[i] = record_run(
                    result,
                    config,
                    teacher[j],
                    streams[j],
                    backend,
                    students0[j],
                    _select_train(trained_stack, j),
                    member_eval,
                )
            except Exception as exc:  # a measurement of one seed failed: the others go on
                if not return_exceptions:
                    raise
                outcomes[i] = exc
    if not return_exceptions:
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
    return outcomes
