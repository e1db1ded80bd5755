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

What is batched: the training of the protocols registered with ``batched=True``
(:func:`twolayer.train.register_protocol`; built in: ``giant_steps`` and ``none``); every
readout and baseline; the test and training errors. The other protocols (``gd``, ``stages``,
``spiked``) train seed by seed inside the batch with their unbatched code -- per-step minibatch
orders, Langevin noise, divergence checks and monitored measurements would each need a stacked
variant -- and their trained students are then stacked for the batched readout and errors;
each member's measurements then read its own :class:`~twolayer.train.TrainResult`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from twolayer.backend import Backend, StreamStack
from twolayer.config import RunConfig
from twolayer.pipeline import (
    RunResult,
    StageCache,
    build_student,
    build_teacher,
    evaluate_student,
    needed_checkpoints,
    record_run,
    run_streams,
    train_student,
    training_key,
)
from twolayer.student import TwoLayer
from twolayer.teachers import TeacherStack
from twolayer.train.protocol import get_protocol
from twolayer.train.result import TrainResult
from twolayer.train.schedule import DivergenceError


def _train(
    config: RunConfig,
    teacher: TeacherStack,
    student0: TwoLayer,
    streams: StreamStack,
    backend: Backend,
) -> tuple[list[int], TrainResult | None, list[TrainResult] | None, dict[int, DivergenceError]]:
    """Train the stack: at once for a batched protocol, else member by member.

    Returns the members that did not diverge, their stacked TrainResult (None if none is
    left), the members' own results when they were trained one by one (None for a batched
    protocol: member j is then ``stacked.select(j)``) and the DivergenceError of each diverged
    member.
    """
    size = len(streams)
    if get_protocol(config.train.protocol).batched:
        trained = train_student(config, teacher, student0, streams, backend)
        diverged: dict[int, DivergenceError] = dict(trained.diverged)
        alive = [i for i in range(size) if i not in diverged]
        if diverged and alive:
            trained = trained.select(alive)
        return alive, (trained if alive else None), None, diverged
    results, alive, diverged = [], [], {}
    for i, member in enumerate(student0.unstack()):
        try:
            results.append(train_student(config, teacher[i], member, streams[i], backend))
            alive.append(i)
        except DivergenceError as exc:
            diverged[i] = exc
    stacked = TrainResult.stack(results) if results else None
    return alive, stacked, results, diverged


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
        alive, stacked, members, diverged = _train(config, teacher, student0, streams, backend)
        return teacher, student0, alive, stacked, members, diverged

    key = (
        "train-batch", tuple(training_key(config, seed) for seed in seeds),
        needed_checkpoints(config),
    )
    teacher, student0, alive, trained_stack, members, diverged = cache.get_or_compute(
        key, trained
    )
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
                    trained_stack.select(j) if members is None else members[j],
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
