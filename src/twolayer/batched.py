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

What is batched: the training of the protocols ``giant_steps`` and ``none`` (random
features); every readout and baseline; the test and training errors. The other protocols
(``gd``, ``stages``, ``spiked``) train seed by seed inside the batch with their unbatched code
-- per-step minibatch orders, Langevin noise, divergence checks and monitored measurements
would each need a stacked variant -- and their trained students are then stacked for the
batched readout and errors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from twolayer.backend import Backend, StreamStack, namespace_of
from twolayer.config import GiantStepsConfig, NoTrainConfig, RunConfig
from twolayer.pipeline import (
    RunResult,
    StageCache,
    build_student,
    build_teacher,
    evaluate_student,
    record_run,
    run_streams,
    train_student,
    training_key,
)
from twolayer.student import TwoLayer
from twolayer.teachers import TeacherStack
from twolayer.train.schedule import DivergenceError
from twolayer.train.steps import TrainResult

#: Training protocols that train a stack of students at once (the others train seed by seed).
BATCHED_PROTOCOLS = (GiantStepsConfig, NoTrainConfig)


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


def _stack_train(results: list[TrainResult]) -> TrainResult:
    """One stacked TrainResult from the results of members trained one by one (one config, so
    equal trajectory lengths, keys and batches; anything else raises ValueError)."""
    student = TwoLayer.stack([r.student for r in results])
    if len({len(r.trajectory) for r in results}) != 1:
        raise ValueError("members of one config recorded trajectories of different lengths")
    rows = []
    for member_rows in zip(*(r.trajectory for r in results), strict=True):
        if len({tuple(row) for row in member_rows}) != 1:
            raise ValueError("members of one config recorded different trajectory columns")
        rows.append({k: np.array([row[k] for row in member_rows]) for k in member_rows[0]})
    if len({tuple(r.batches) for r in results}) != 1:
        raise ValueError("members of one config kept different training batches")
    batches = {}
    for k in results[0].batches:
        xp = namespace_of(results[0].batches[k][0])
        batches[k] = (
            xp.stack([r.batches[k][0] for r in results]),
            xp.stack([r.batches[k][1] for r in results]),
        )
    return TrainResult(student, rows, batches, {})


def _train(
    config: RunConfig,
    teacher: TeacherStack,
    student0: TwoLayer,
    streams: StreamStack,
    backend: Backend,
) -> tuple[list[int], TrainResult | None, dict[int, DivergenceError]]:
    """Train the stack: at once for the batched protocols, else member by member.

    Returns the members that did not diverge, their stacked TrainResult (None if none is
    left) and the DivergenceError of each diverged member.
    """
    size = len(streams)
    if isinstance(config.train, BATCHED_PROTOCOLS):
        trained = train_student(config, teacher, student0, streams, backend)
        diverged: dict[int, DivergenceError] = dict(trained.info.get("diverged", {}))
        alive = [i for i in range(size) if i not in diverged]
        if diverged and alive:
            trained = _select_train(trained, alive)
        return alive, (trained if alive else None), diverged
    results, alive, diverged = [], [], {}
    for i, member in enumerate(student0.unstack()):
        try:
            results.append(train_student(config, teacher[i], member, streams[i], backend))
            alive.append(i)
        except DivergenceError as exc:
            diverged[i] = exc
    return alive, (_stack_train(results) if results else None), diverged


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
        Any protocol: ``giant_steps`` and ``none`` train the stack at once, the others seed by
        seed (see the module docstring); the readout and errors are batched in every case.
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
        If the seeds are empty, repeated or negative.
    """
    seeds = tuple(int(s) for s in seeds)
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
    cache = cache or StageCache(maxsize=0)
    backend = Backend(config.backend.name, config.backend.dtype, config.backend.device)
    one = run_streams(config, 0)
    streams = StreamStack(seeds, one.fixed, one.fixed_seed)  # checks: non-empty, distinct
    size = len(seeds)
    timer = time.perf_counter()

    def trained() -> tuple[Any, ...]:
        teacher = TeacherStack([build_teacher(config, streams[i]) for i in range(size)])
        student0 = TwoLayer.stack([build_student(config, streams[i], backend) for i in range(size)])
        alive, trained_stack, diverged = _train(config, teacher, student0, streams, backend)
        return teacher, student0, alive, trained_stack, diverged

    key = ("train-batch", tuple(training_key(config, seed) for seed in seeds))
    teacher, student0, alive, trained_stack, diverged = cache.get_or_compute(key, trained)
    train_s = (time.perf_counter() - timer) / size

    outcomes: list[Any] = [diverged.get(i) for i in range(size)]
    if alive:
        if len(alive) < size:  # the diverged members are left out of the readout
            teacher = TeacherStack([teacher[i] for i in alive])
            streams = StreamStack(tuple(seeds[i] for i in alive), streams.fixed, streams.fixed_seed)
            student0 = student0.replace(W=student0.W[alive], a=student0.a[alive])
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
