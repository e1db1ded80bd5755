"""How many BLAS/OpenMP threads a run uses (docs/engine.md, "BLAS threads").

OpenBLAS threads spin-wait for work. On the small matrices of a typical sweep point (d, N, n of
a few hundred) a second thread gains little even on an idle machine (1.1x), and on a loaded one
(other processes busy on the cores) the threads wait for each other's time slices and a run
takes several times as long (docs/performance.md (j)). So a run whose matrices are all smaller
than :data:`SMALL_RUN` uses one thread, and a larger run all the cores it may use. (The load
average is not consulted: it lags by a minute, so a run started right after another process
finished -- a benchmark that alternates processes, the next step of a script -- would get one
thread on an idle machine; and at d = 2000 a second thread cost at most 15% on a loaded machine
while it gains up to 2x on an idle one.)

* :func:`blas_threads_for_run`: the pure policy (a config -> a thread count);
* :func:`run_threads`: the context manager every run of the engine runs under, and
  :func:`with_run_threads`, the same as a decorator of a function whose first argument is the
  config (``run_once``, ``run_batch``);
* :func:`engine_threads`: an explicit limit set by an executor (``threads_per_worker``, or
  cores // workers in a pool), which :func:`run_threads` then leaves alone.

This module imports neither the pipeline nor the engine, so both can use it.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: A run whose largest matrix dimension (teacher.d, student.N, the training and readout batch
#: sizes) is below this uses one BLAS thread (docs/performance.md (j)).
SMALL_RUN = 1000

_ENGINE_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "twolayer_engine_blas_threads", default=None
)


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_size(config: Any) -> int:
    """The largest matrix dimension of a run: teacher.d, student.N, train.n (and the batch
    sizes of its steps), readout.n. The test set is streamed in chunks of ``evaluate.chunk``
    samples against the same d x N weights, so it does not change which side of the threshold a
    run falls on and is left out."""
    dims = [int(config.teacher.d), int(config.student.N)]
    train = config.train
    for value in (getattr(train, "n", None), getattr(config.readout, "n", None)):
        if value is not None:
            dims.append(int(value))
    steps = getattr(train, "steps", None)
    for step in steps if isinstance(steps, list | tuple) else ():
        value = getattr(step, "n", None)
        if value is not None:
            dims.append(int(value))
    return max(dims)


def blas_threads_for_run(
    config: Any, cores: int | None = None, explicit: int | None = None
) -> int:
    """BLAS threads for one run.

    ``explicit`` when given. Else 1 for a run smaller than :data:`SMALL_RUN` (see
    :func:`run_size`), and ``cores`` for a larger one.

    Parameters
    ----------
    config : RunConfig
    cores : int, optional
        Cores this process may use (default :func:`available_cores`).
    explicit : int, optional
        A count asked for (``executor.threads_per_worker``): always honoured.
    """
    if explicit is not None:
        return max(1, int(explicit))
    if run_size(config) < SMALL_RUN:
        return 1
    return available_cores() if cores is None else max(1, int(cores))


def current_blas_threads() -> int | None:
    """The largest thread count of the loaded BLAS/OpenMP libraries now (None if none)."""
    from threadpoolctl import threadpool_info

    counts = [int(p.get("num_threads") or 1) for p in threadpool_info()]
    return max(counts) if counts else None


@contextmanager
def engine_threads(limit: int | None) -> Iterator[None]:
    """Limit BLAS/OpenMP threads to ``limit`` (None: no limit) for the block, and mark it as an
    explicit choice of the engine, which :func:`run_threads` inside the block keeps."""
    from threadpoolctl import threadpool_limits

    token = _ENGINE_LIMIT.set(limit)
    try:
        if limit is None:
            yield
        else:
            with threadpool_limits(limits=limit):
                yield
    finally:
        _ENGINE_LIMIT.reset(token)


@contextmanager
def run_threads(config: Any) -> Iterator[None]:
    """Run a block (one run of ``config``) with the threads :func:`blas_threads_for_run` gives.

    Inside :func:`engine_threads` with a limit, that limit is kept. Otherwise the count is the
    policy's, never more than the libraries' current count (so an ``OPENBLAS_NUM_THREADS`` or
    an enclosing ``threadpool_limits`` of the caller still caps it).
    """
    if _ENGINE_LIMIT.get() is not None:
        yield
        return
    from threadpoolctl import threadpool_limits

    current = current_blas_threads()
    try:
        wanted: int | None = blas_threads_for_run(config)
    except Exception:  # a config this policy does not understand: leave the threads alone
        wanted = None
    if wanted is None:
        yield
        return
    if current is not None:
        wanted = min(wanted, current)
    if current is None or wanted == current:
        yield
        return
    with threadpool_limits(limits=wanted):
        yield


def with_run_threads(fn: F) -> F:
    """Decorate ``fn(config, ...)`` to run under :func:`run_threads` of its config."""

    @functools.wraps(fn)
    def wrapper(config: Any, *args: Any, **kwargs: Any) -> Any:
        with run_threads(config):
            return fn(config, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
