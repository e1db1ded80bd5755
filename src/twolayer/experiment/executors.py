"""Executors: where groups of runs execute. Results stream back to the driver, which writes them.

Three kinds, one interface (:class:`Executor`): ``serial`` (in the driver process), ``local``
(a pool of worker processes) and ``dask`` (dask.distributed: an existing scheduler or a
LocalCluster). A task is a *group* of runs that share stages (same seed, same
teacher/student/train/backend sections); the worker runs it with one StageCache, so the trained
student is computed once per group. With ``batch_seeds`` a group holds the runs of several
seeds and the seeds of each config run as one batched computation (twolayer.batched).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Iterator
from typing import Any, Protocol

from twolayer.experiment.record import Record, WorkItem, execute_group, execute_units
from twolayer.pipeline import StageCache

Group = list[WorkItem]


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def blas_threads_for(workers: int, cores: int | None = None) -> int:
    """BLAS threads per worker so that workers x threads <= cores (at least 1)."""
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


class Executor(Protocol):
    """Runs groups of work items, yielding finished Records as they come."""

    kind: str
    workers: int

    def run(self, groups: list[Group]) -> Iterator[list[Record]]:
        """Yield lists of Records (one list per finished unit of work) as they finish."""
        ...

    def close(self) -> None:
        """Free the workers."""
        ...


class SerialExecutor:
    """Run everything in the driver process, one run (or one batch of seeds) at a time
    (records stream per run or per batch)."""

    kind = "serial"

    def __init__(self, blas_threads: int | None = None, batch_seeds: bool = False) -> None:
        self.workers = 1
        self.blas_threads = blas_threads
        self.batch_seeds = batch_seeds

    def run(self, groups: list[Group]) -> Iterator[list[Record]]:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.blas_threads):
            for group in groups:
                cache = StageCache(maxsize=2)
                yield from execute_units(group, cache, self.batch_seeds)

    def close(self) -> None:
        """Nothing to free."""


def _init_worker(blas_threads: int) -> None:
    from threadpoolctl import threadpool_limits

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(blas_threads)
    threadpool_limits(limits=blas_threads)


class LocalExecutor:
    """A pool of ``jobs`` worker processes (concurrent.futures), one group per task.

    Parameters
    ----------
    jobs : int
        Worker processes.
    blas_threads : int, optional
        BLAS threads per worker; default cores // jobs.
    batch_seeds : bool
        Run the seeds of each config of a group as one batch.
    """

    kind = "local"
    plugins: tuple[str, ...] = ()  # the spec's plugin modules, imported by every task

    def __init__(
        self, jobs: int, blas_threads: int | None = None, batch_seeds: bool = False
    ) -> None:
        self.workers = jobs
        self.blas_threads = blas_threads or blas_threads_for(jobs)
        self.batch_seeds = batch_seeds
        self._pool: cf.ProcessPoolExecutor | None = None

    def run(self, groups: list[Group]) -> Iterator[list[Record]]:
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self.workers, initializer=_init_worker, initargs=(self.blas_threads,)
        )
        futures = {
            self._pool.submit(
                execute_group, group, self.blas_threads, self.batch_seeds, plugins=self.plugins
            ): group
            for group in groups
        }
        for future in cf.as_completed(futures):
            yield _result_or_failures(future, futures[future])

    def close(self) -> None:
        """Shut the pool down (cancelling what has not started)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """dask.distributed: connect to ``address``, or start a LocalCluster of ``jobs`` workers.

    Parameters
    ----------
    address : str, optional
        Scheduler address (``tcp://host:port``); None starts a LocalCluster.
    jobs : int, optional
        LocalCluster workers (default: cores).
    blas_threads : int, optional
        BLAS threads per task; default cores // jobs on a LocalCluster, 1 on a remote scheduler
        (its workers usually run one task per core).
    processes : bool
        LocalCluster with worker processes (True) or threads in this process (False).
    batch_seeds : bool
        Run the seeds of each config of a group as one batch.
    """

    kind = "dask"
    plugins: tuple[str, ...] = ()  # the spec's plugin modules, imported by every task

    def __init__(
        self,
        address: str | None = None,
        jobs: int | None = None,
        blas_threads: int | None = None,
        processes: bool = True,
        batch_seeds: bool = False,
    ) -> None:
        self.batch_seeds = batch_seeds
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise RuntimeError(
                "the dask executor needs dask.distributed: pip install 'twolayer[dask]'"
            ) from None
        self._cluster: Any = None
        if address is None:
            jobs = jobs or available_cores()
            self._cluster = LocalCluster(
                n_workers=jobs,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
                silence_logs=40,
            )
            self.client = Client(self._cluster)
            self.blas_threads = blas_threads or blas_threads_for(jobs)
        else:
            self.client = Client(address, timeout="30s")
            self.blas_threads = blas_threads or 1
        self.workers = max(1, sum(self.client.nthreads().values()))

    def run(self, groups: list[Group]) -> Iterator[list[Record]]:
        from dask.distributed import as_completed

        futures = {
            self.client.submit(
                execute_group, group, self.blas_threads, self.batch_seeds,
                plugins=self.plugins, pure=False,
            ): i
            for i, group in enumerate(groups)
        }
        for future in as_completed(futures):
            group = groups[futures[future]]
            try:
                yield future.result()
            except Exception as exc:  # the task itself could not run (worker lost, pickling)
                yield [_lost(item, exc) for item in group]

    def close(self) -> None:
        """Close the client (and the LocalCluster this executor started)."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _result_or_failures(future: cf.Future, group: Group) -> list[Record]:
    try:
        return future.result()
    except Exception as exc:  # worker died (BrokenProcessPool) or could not unpickle
        return [_lost(item, exc) for item in group]


def _lost(item: WorkItem, exc: BaseException) -> Record:
    import socket
    import time

    now = time.time()
    return Record(
        run_id=item[0],
        status="failed",
        error=f"worker failed before returning the run: {type(exc).__name__}: {exc}",
        traceback=None,
        host=socket.gethostname(),
        started=now,
        finished=now,
    )


def make_executor(
    kind: str,
    *,
    jobs: int | None = None,
    address: str | None = None,
    blas_threads: int | None = None,
    tasks: int | None = None,
    batch_seeds: bool = False,
) -> Executor:
    """Build an executor.

    Parameters
    ----------
    kind : {"serial", "local", "dask"}
    jobs : int, optional
        Workers (default: cores), never more than ``tasks``.
    address : str, optional
        Dask scheduler address.
    blas_threads : int, optional
        BLAS threads per worker (default: cores // workers).
    tasks : int, optional
        Number of tasks to run (caps the number of local workers).
    batch_seeds : bool
        Run the seeds of each config as one batched computation (twolayer.batched).
    """
    if kind == "serial":
        return SerialExecutor(blas_threads, batch_seeds)
    n = jobs or available_cores()
    if tasks is not None:
        n = max(1, min(n, tasks))
    if kind == "local":
        return LocalExecutor(n, blas_threads, batch_seeds)
    if kind == "dask":
        return DaskExecutor(
            address, n if address is None else None, blas_threads, batch_seeds=batch_seeds
        )
    raise ValueError(f"unknown executor {kind!r}; expected serial, local or dask")
