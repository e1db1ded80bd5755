"""The outcome of one run as the engine stores it, and the worker function that makes it."""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from twolayer.config import RunConfig
from twolayer.pipeline import StageCache, run_once
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


WorkItem = tuple[str, RunConfig, int]
"""(run id, resolved config, seed): what a worker needs for one run."""


def execute_run(item: WorkItem, cache: StageCache | None = None) -> Record:
    """Run one item, catching everything: a failure becomes a Record, never an exception.

    Parameters
    ----------
    item : (run_id, RunConfig, seed)
    cache : StageCache, optional
        Shared with the other runs of the same group.
    """
    run_id, config, seed = item
    started = time.time()
    base = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "started": started}
    hits = cache.hits if cache is not None else 0
    try:
        result = run_once(config, seed, cache=cache)
    except DivergenceError as exc:
        return Record(
            status="diverged",
            error=str(exc),
            traceback=traceback.format_exc(),
            diverged_step=int(exc.step),
            finished=time.time(),
            **base,
        )
    except Exception as exc:
        return Record(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
            finished=time.time(),
            **base,
        )
    return Record(
        status="done",
        scalars={k: float(v) for k, v in result.scalars.items()},
        arrays={k: _plain_array(v) for k, v in result.arrays.items()},
        trajectory=[{k: float(v) for k, v in row.items()} for row in result.trajectory],
        timings=dict(result.timings),
        finished=time.time(),
        shared=cache is not None and cache.hits > hits,
        **base,
    )


def execute_group(items: list[WorkItem], blas_threads: int | None = None) -> list[Record]:
    """Run a group of items that share stages with one :class:`StageCache`, in order.

    Parameters
    ----------
    items : list of (run_id, RunConfig, seed)
        Runs of one seed with equal teacher/student/train/backend sections (or any runs:
        the cache only ever returns a stage for an equal key).
    blas_threads : int, optional
        Limit BLAS/OpenMP threads while running (threadpoolctl).
    """
    from threadpoolctl import threadpool_limits

    cache = StageCache(maxsize=2)
    with threadpool_limits(limits=blas_threads):
        return [execute_run(item, cache) for item in items]


def _plain_array(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        array = array.astype(float)
    return np.ascontiguousarray(array)
