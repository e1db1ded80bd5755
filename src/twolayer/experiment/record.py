"""The outcome of one run as the engine stores it, and the worker function that makes it."""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from twolayer.batched import run_batch
from twolayer.config import RunConfig
from twolayer.experiment.provenance import collect
from twolayer.experiment.spec import canonical_json
from twolayer.pipeline import StageCache, process_cache, run_once, training_key
from twolayer.threads import engine_threads, run_threads
from twolayer.train.schedule import DivergenceError

Status = Literal["running", "done", "failed", "diverged"]
STATUSES: tuple[str, ...] = ("running", "done", "failed", "diverged")


@dataclass
class Record:
    """What a worker sends back to the driver for one run (picklable).

    Attributes
    ----------
    run_id : str
    status : {"done", "failed", "diverged"}
    scalars : dict[str, float]
    arrays : dict[str, numpy array]
    trajectory : list of dict[str, float]
    timings : dict[str, float]
        Seconds per pipeline stage; a stage taken from the shared cache costs ~0.
    error, traceback : str or None
        For failed and diverged runs.
    diverged_step : int or None
    host : str
    pid : int
    started, finished : float
        Unix times.
    shared : bool
        Whether the trained student came from the shared stage cache.
    provenance : dict or None
        The code and libraries that computed the run, in the worker's process
        (:func:`twolayer.experiment.provenance.collect`); None when unknown.
    """

    run_id: str
    status: Status
    scalars: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    trajectory: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    diverged_step: int | None = None
    host: str = ""
    pid: int = 0
    started: float = 0.0
    finished: float = 0.0
    shared: bool = False
    provenance: dict[str, Any] | None = None


WorkItem = tuple[str, RunConfig, int]
"""(run id, resolved config, seed): what a worker needs for one run."""


def _outcome_record(
    item: WorkItem,
    outcome: Any,
    *,
    started: float,
    finished: float,
    shared: bool,
    trace: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> Record:
    """The Record of one run from its outcome: a RunResult, or the exception it raised."""
    base = {
        "run_id": item[0],
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": started,
        "finished": finished,
        "provenance": provenance if provenance is not None else _provenance(item[1]),
    }
    if isinstance(outcome, BaseException):
        if trace is None and outcome.__traceback__ is not None:
            trace = "".join(traceback.format_exception(outcome))
        if isinstance(outcome, DivergenceError):
            return Record(
                status="diverged",
                error=str(outcome),
                traceback=trace,
                diverged_step=int(outcome.step),
                **base,
            )
        return Record(
            status="failed", error=f"{type(outcome).__name__}: {outcome}", traceback=trace, **base
        )
    return Record(
        status="done",
        scalars={k: float(v) for k, v in outcome.scalars.items()},
        arrays={k: _plain_array(v) for k, v in outcome.arrays.items()},
        trajectory=[{k: float(v) for k, v in row.items()} for row in outcome.trajectory],
        timings=dict(outcome.timings),
        shared=shared,
        **base,
    )


def execute_run(item: WorkItem, cache: StageCache | None = None) -> Record:
    """Run one item, catching everything: a failure becomes a Record, never an exception.

    Parameters
    ----------
    item : (run_id, RunConfig, seed)
    cache : StageCache, optional
        Shared with the other runs of the same group.
    """
    _, config, seed = item
    started = time.time()
    hits = cache.hits if cache is not None else 0
    provenance = None
    try:
        with run_threads(config):
            provenance = _provenance(config)  # under the run's BLAS thread limit
            outcome: Any = run_once(config, seed, cache=cache)
        trace = None
    except Exception as exc:
        outcome, trace = exc, traceback.format_exc()
    shared = cache is not None and cache.hits > hits
    return _outcome_record(
        item, outcome, started=started, finished=time.time(), shared=shared, trace=trace,
        provenance=provenance,
    )


def execute_batch(items: list[WorkItem], cache: StageCache | None = None) -> list[Record]:
    """Run items of one config and distinct seeds as one batched computation (run_batch).

    Each run gets its own Record (done, diverged or failed), as with :func:`execute_run`. If
    the batched computation itself fails (say, memory for S seeds at once), every item is run
    alone instead, so each gets exactly the result or error it would get unbatched. A batched
    run's ``started``/``finished`` are its equal share of the batch's wall time, so ``wall_s``
    adds up to the batch's.

    Parameters
    ----------
    items : list of (run_id, RunConfig, seed)
        One config (equal resolved configs), distinct seeds.
    cache : StageCache, optional
        Shares trained stacks with other batches of the same seeds and sections.
    """
    config = items[0][1]
    started = time.time()
    hits = cache.hits if cache is not None else 0
    try:
        with run_threads(config):
            provenance = _provenance(config)
            outcomes = run_batch(
                config, [seed for _, _, seed in items], cache=cache, return_exceptions=True
            )
    except Exception:  # the batch as a whole failed: fall back to single runs
        return [execute_run(item, cache) for item in items]
    shared = cache is not None and cache.hits > hits
    share = (time.time() - started) / len(items)
    return [
        _outcome_record(
            item,
            outcome,
            started=started + i * share,
            finished=started + (i + 1) * share,
            shared=shared,
            provenance=provenance,
        )
        for i, (item, outcome) in enumerate(zip(items, outcomes, strict=True))
    ]


def seed_batches(items: list[WorkItem]) -> list[list[WorkItem]]:
    """Split items into batches of one config (distinct seeds), in order of first appearance."""
    by_config: dict[str, list[WorkItem]] = {}
    for item in items:
        by_config.setdefault(canonical_json(item[1]), []).append(item)
    return list(by_config.values())


def _readout_rows(config: RunConfig) -> int:
    """The size of a run's fresh readout batch (0 without one)."""
    r = config.readout
    if r is None or r.batch == "reuse":
        return 0
    return int(r.n or config.train_n or 0)


def execute_units(
    items: list[WorkItem],
    cache: StageCache,
    batch_seeds: bool = False,
    on_start: Callable[[list[WorkItem]], None] | None = None,
) -> Iterator[list[Record]]:
    """Run items with one cache, yielding Records as units finish: one run at a time, or with
    ``batch_seeds`` one batch of seeds (see :func:`seed_batches`) at a time.

    ``on_start(unit)`` is called before each unit runs (the local executor notes there which
    runs a worker is computing, to know which one killed it)."""
    units = seed_batches(items) if batch_seeds else [[item] for item in items]
    # (batched runs use no cache for their per-student arrays; a batch that falls back to
    # single runs then shares exactly as the plain runs do)
    cache.expect((training_key(c, seed), _readout_rows(c)) for _, c, seed in items)
    for unit in units:
        if on_start is not None:
            on_start(unit)
        if len(unit) == 1:
            yield [execute_run(unit[0], cache)]
        else:
            yield execute_batch(unit, cache)


def execute_group(
    items: list[WorkItem],
    blas_threads: int | None = None,
    batch_seeds: bool = False,
    max_threads: int | None = None,
    on_start: Callable[[list[WorkItem]], None] | None = None,
    plugins: list[str] | tuple[str, ...] = (),
) -> list[Record]:
    """Run a group of items that share stages with one :class:`StageCache`, in order.

    Parameters
    ----------
    items : list of (run_id, RunConfig, seed)
        Runs of one seed with equal teacher/student/train/backend sections (or any runs:
        the cache only ever returns a stage for an equal key); with ``batch_seeds``, runs of
        several seeds, those of one config running as one batch.
    blas_threads : int, optional
        BLAS/OpenMP threads of every run (``executor.threads_per_worker``), whatever its size.
    batch_seeds : bool
        Run the seeds of each config as one batched computation (:func:`execute_batch`).
    max_threads : int, optional
        Without ``blas_threads``: the most threads a run may use; each run uses what
        :func:`twolayer.threads.blas_threads_for_run` gives for its size, up to this.
    on_start : callable, optional
        Called with each unit (run, or batch of seeds) before it runs.
    plugins : list of str
        The spec's plugin modules (twolayer.plugins), imported first: a worker process looks
        the configs' names up in its own registries. If one cannot be imported here, every run
        of the group fails, saying why.
    """
    failed = _plugin_failures(items, plugins)
    if failed:
        return failed
    cache = process_cache()  # a worker keeps it from task to task (the test sets of a seed)
    if blas_threads is not None:
        with engine_threads(blas_threads):
            return [r for unit in execute_units(items, cache, batch_seeds, on_start) for r in unit]
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max_threads):  # a cap: run_threads only ever lowers it
        return [r for unit in execute_units(items, cache, batch_seeds, on_start) for r in unit]


def _plugin_failures(items: list[WorkItem], plugins: list[str] | tuple[str, ...]) -> list[Record]:
    """Import the plugin modules; if one cannot be imported, a failed Record per item."""
    if not plugins:
        return []
    from twolayer.plugins import PluginError, load_plugins

    try:
        load_plugins(plugins)
    except PluginError as exc:
        now = time.time()
        return [_outcome_record(i, exc, started=now, finished=now, shared=False) for i in items]
    return []


def _provenance(config: Any) -> dict[str, Any] | None:
    """This process's provenance for a run of ``config``; None if it cannot be collected
    (a run's result is never lost to its bookkeeping)."""
    try:
        return collect(config)
    except Exception:
        return None


def _plain_array(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        array = array.astype(float)
    return np.ascontiguousarray(array)
