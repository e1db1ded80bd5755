"""Executors: where groups of runs execute. Results stream back to the driver, which writes them.

Four kinds, one interface (:class:`Executor`): ``serial`` (in the driver process), ``local``
(a pool of worker processes), ``dask`` (dask.distributed: an existing scheduler or a
LocalCluster) and ``slurm`` (SLURM job arrays through submitit, one job per chunk of runs:
twolayer.experiment.slurm). A task is a *group* of runs that share stages (same seed, same
teacher/student/train/backend sections); the worker runs it with one StageCache, so the trained
student is computed once per group. With ``batch_seeds`` a group holds the runs of several
seeds and the seeds of each config run as one batched computation (twolayer.batched).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from twolayer.experiment.record import Record, WorkItem, execute_group, execute_units
from twolayer.pipeline import process_cache
from twolayer.threads import available_cores, blas_threads_for_run, engine_threads

__all__ = [
    "DaskExecutor",
    "ExecutorError",
    "LocalExecutor",
    "SerialExecutor",
    "available_cores",
    "blas_threads_for",
    "blas_threads_for_run",
    "make_executor",
]

Group = list[WorkItem]

#: Seconds to wait for a Dask scheduler (``make_executor(connect_timeout=...)``, or the
#: environment variable TWOLAYER_DASK_TIMEOUT).
DASK_CONNECT_TIMEOUT_S = 10.0

#: Times the local pool is restarted in a row without any run to blame before the sweep gives
#: up (its remaining runs are left to rerun: status ``running``).
MAX_BLAMELESS_RESTARTS = 3

#: Start of the error of a run whose worker was lost for a reason outside the run (the
#: infrastructure): such a run is stored with status ``running``, so a plain ``twolayer run``
#: runs it again.
LOST = "lost with its worker, run again to rerun it"


class ExecutorError(RuntimeError):
    """An executor cannot start (Dask not installed, scheduler unreachable, ...): raised before
    any run is marked in the store; the CLI prints it as one line and exits with code 1."""


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
    (records stream per run or per batch).

    BLAS threads: ``blas_threads`` for every run when given (``executor.threads_per_worker``);
    otherwise each run gets :func:`twolayer.threads.blas_threads_for_run` of its config: one
    thread for a small run, all cores for a large one (docs/engine.md, "BLAS threads").
    """

    kind = "serial"

    def __init__(self, blas_threads: int | None = None, batch_seeds: bool = False) -> None:
        self.workers = 1
        self.blas_threads = blas_threads
        self.batch_seeds = batch_seeds

    def run(self, groups: list[Group]) -> Iterator[list[Record]]:
        cache = process_cache()
        try:
            for group in groups:
                if self.blas_threads is None:  # per run, in execute_run (twolayer.threads)
                    yield from execute_units(group, cache, self.batch_seeds)
                    continue
                with engine_threads(self.blas_threads):
                    yield from execute_units(group, cache, self.batch_seeds)
        finally:
            cache.clear()  # the driver process goes on: do not hold the arrays after the sweep

    def close(self) -> None:
        """Nothing to free."""


# -- local worker processes -------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent(driver: int) -> None:
    """Make this worker exit when its driver (process ``driver``) dies, SIGKILL included.

    On Linux, when the driver is this process's parent (fork, spawn), the kernel sends SIGKILL
    to the worker when the parent exits (``prctl(PR_SET_PDEATHSIG)``). Everywhere, a daemon
    thread also checks every second whether the worker was re-parented or the driver is gone
    (a forkserver's workers are not the driver's children), and kills the process if so.
    """
    parent = os.getppid()
    if parent == driver and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
        if os.getppid() != parent:  # the driver died before prctl took effect
            os._exit(1)

    def driver_gone() -> bool:
        if os.getppid() != parent:
            return True
        try:
            os.kill(driver, 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, not ours to signal
            return False
        return False

    def watch() -> None:
        while not driver_gone():
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="twolayer-driver-watch").start()


def _init_worker(blas_threads: int, parent: int | None = None) -> None:
    from threadpoolctl import threadpool_limits

    if parent is not None:
        _die_with_parent(parent)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(blas_threads)
    threadpool_limits(limits=blas_threads)


def _beacon_path(beacons: str | None) -> Path | None:
    return None if beacons is None else Path(beacons) / str(os.getpid())


def _local_task(
    group: Group,
    blas_threads: int | None,
    max_threads: int | None,
    batch_seeds: bool,
    beacons: str | None,
    plugins: tuple[str, ...] = (),
) -> list[Record]:
    """A worker's task: run a group, noting in ``beacons/<pid>`` the runs it is computing (so
    that the driver knows which run was in a worker that died)."""
    beacon = _beacon_path(beacons)

    def note(unit: list[WorkItem]) -> None:
        if beacon is not None:
            beacon.write_text("\n".join(item[0] for item in unit))

    try:
        return execute_group(group, blas_threads, batch_seeds, max_threads, note, plugins)
    finally:
        if beacon is not None:
            beacon.write_text("")


class LocalExecutor:
    """A pool of ``jobs`` worker processes (concurrent.futures), one group per task.

    A worker that dies (killed by the OOM killer, a segfault) breaks the whole pool; the
    executor then starts a new pool and submits again every run that was lost with it. The run
    the dead worker was computing is blamed; a run blamed twice is stored as ``failed`` with
    that cause. Runs still lost when the pool cannot be restarted (it breaks
    :data:`MAX_BLAMELESS_RESTARTS` times in a row with no run to blame) are stored as
    ``running``, so that a plain rerun of the spec runs them. Workers exit when the driver dies.

    Parameters
    ----------
    jobs : int
        Worker processes.
    blas_threads : int, optional
        BLAS threads of every run (``executor.threads_per_worker``). Default: each run uses
        :func:`twolayer.threads.blas_threads_for_run` of its size, at most cores // jobs.
    batch_seeds : bool
        Run the seeds of each config of a group as one batch.
    """

    kind = "local"
    plugins: tuple[str, ...] = ()  # the spec's plugin modules, imported by every task

    def __init__(
        self, jobs: int, blas_threads: int | None = None, batch_seeds: bool = False
    ) -> None:
        self.workers = jobs
        self.explicit_threads = blas_threads
        self.blas_threads = blas_threads or blas_threads_for(jobs)
        self.batch_seeds = batch_seeds
        self.restarts = 0
        self._pool: cf.ProcessPoolExecutor | None = None
        self._beacons: tempfile.TemporaryDirectory[str] | None = None

    def _start_pool(self) -> cf.ProcessPoolExecutor:
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self.workers,
            initializer=_init_worker,
            initargs=(self.blas_threads, os.getpid()),
        )
        return self._pool

    def run(self, groups: list[Group]) -> Iterator[list[Record]]:
        self._beacons = tempfile.TemporaryDirectory(prefix="twolayer-workers-")
        beacons = self._beacons.name
        pending: dict[int, Group] = {i: list(g) for i, g in enumerate(groups) if g}
        blamed: dict[str, int] = {}
        blameless = 0
        while pending:
            pool = self._start_pool()
            cap = None if self.explicit_threads else self.blas_threads
            futures: dict[cf.Future, int] = {}
            processes: dict[int, Any] = {}  # pid -> Process, for the exit codes after a break
            broken: BaseException | None = None
            progress = False
            try:
                for i, group in pending.items():
                    future = pool.submit(
                        _local_task, group, self.explicit_threads, cap, self.batch_seeds,
                        beacons, self.plugins,
                    )
                    futures[future] = i
                    processes.update(getattr(pool, "_processes", None) or {})
            except cf.process.BrokenProcessPool as exc:  # broke while submitting
                broken = exc
            for future in [] if broken else cf.as_completed(futures):
                exc = future.exception()
                if isinstance(exc, cf.process.BrokenProcessPool):
                    broken = exc
                    break
                i = futures[future]
                group = pending.pop(i)
                progress = True
                yield future.result() if exc is None else [_failed(item, exc) for item in group]
            if broken is None:
                break
            pool.shutdown(wait=True)  # joins the workers: their exit codes are known
            for future, i in futures.items():  # results that came back before the break
                if i in pending and future.done() and future.exception() is None:
                    progress = True
                    yield future.result()
                    del pending[i]
            dead = _dead_workers(processes)
            blame = _in_flight(beacons, dead)
            for run_id in blame:
                blamed[run_id] = blamed.get(run_id, 0) + 1
            blameless = 0 if blame or progress else blameless + 1
            self.restarts += 1
            how = _how_died(processes, dead)
            for i in list(pending):
                group = pending[i]
                twice = [item for item in group if blamed.get(item[0], 0) >= 2]
                if twice:
                    yield [_failed_twice(item, how) for item in twice]
                    pending[i] = group = [item for item in group if item not in twice]
                if not group:
                    del pending[i]
            if pending and blameless >= MAX_BLAMELESS_RESTARTS:
                cause = f"the worker pool broke {blameless} times in a row ({how}): {broken}"
                for i in list(pending):
                    yield [_lost(item, cause) for item in pending.pop(i)]
            for path in Path(beacons).iterdir():
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Shut the pool down (cancelling what has not started)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._beacons is not None:
            self._beacons.cleanup()
            self._beacons = None


def _dead_workers(processes: dict[int, Any]) -> set[int] | None:
    """Pids of the workers that died by themselves (not terminated by the pool after the
    break, which exit by SIGTERM); None when the pool's processes are not known."""
    if not processes:
        return None
    return {
        pid for pid, p in processes.items()
        if p.exitcode is not None and p.exitcode != -signal.SIGTERM
    }


def _in_flight(beacons: str, dead: set[int] | None) -> set[str]:
    """Runs that the dead workers (every worker, when not known) were computing."""
    out: set[str] = set()
    for path in Path(beacons).iterdir():
        if dead is not None and (not path.name.isdigit() or int(path.name) not in dead):
            continue
        try:
            out.update(line for line in path.read_text().splitlines() if line)
        except OSError:
            continue
    return out


def _how_died(processes: dict[int, Any], dead: set[int] | None) -> str:
    codes = sorted({processes[pid].exitcode for pid in dead or ()})
    if not codes:
        return "a worker process died"
    return "worker exited with " + ", ".join(_exit_text(code) for code in codes)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _record(item: WorkItem, status: Any, error: str) -> Record:
    now = time.time()
    return Record(
        run_id=item[0],
        status=status,
        error=error,
        traceback=None,
        host=socket.gethostname(),
        started=now,
        finished=now,
    )


def _failed(item: WorkItem, exc: BaseException) -> Record:
    """The task itself could not run (say, its arguments could not be pickled)."""
    return _record(item, "failed", f"worker could not run it: {type(exc).__name__}: {exc}")


def _failed_twice(item: WorkItem, how: str) -> Record:
    return _record(
        item, "failed",
        f"worker died twice while running this run ({how}; out of memory?); "
        "rerun with --retry-failed",
    )


def _lost(item: WorkItem, cause: str) -> Record:
    """A run lost to the infrastructure: status ``running`` (interrupted), so that the next
    ``twolayer run`` of the spec runs it again; the error says why."""
    return _record(item, "running", f"{LOST}: {cause}")


class DaskExecutor:
    """dask.distributed: connect to ``address``, or start a LocalCluster of ``jobs`` workers.

    Parameters
    ----------
    address : str, optional
        Scheduler address (``tcp://host:port``); None starts a LocalCluster.
    jobs : int, optional
        LocalCluster workers (default: cores).
    blas_threads : int, optional
        BLAS threads of every task. Default: each run uses
        :func:`twolayer.threads.blas_threads_for_run` of its size, at most cores // jobs on a
        LocalCluster and 1 on a remote scheduler (its workers usually run one task per core).
    processes : bool
        LocalCluster with worker processes (True) or threads in this process (False).
    batch_seeds : bool
        Run the seeds of each config of a group as one batch.
    connect_timeout : float, optional
        Seconds to wait for the scheduler at ``address`` (default
        :data:`DASK_CONNECT_TIMEOUT_S`, or the environment variable TWOLAYER_DASK_TIMEOUT).

    Raises
    ------
    ExecutorError
        If dask.distributed is not installed, the scheduler cannot be reached in time or the
        LocalCluster does not start.
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
        connect_timeout: float | None = None,
    ) -> None:
        self.batch_seeds = batch_seeds
        self.explicit_threads = blas_threads
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise ExecutorError(
                f"the dask executor needs dask.distributed ({exc}): "
                "pip install 'twolayer[dask]'"
            ) from None
        self._cluster: Any = None
        self.client: Any = None
        if address is None:
            jobs = jobs or available_cores()
            try:
                self._cluster = LocalCluster(
                    n_workers=jobs,
                    threads_per_worker=1,
                    processes=processes,
                    dashboard_address=None,
                    silence_logs=40,
                )
                self.client = Client(self._cluster)
            except Exception as exc:
                self.close()
                raise ExecutorError(
                    f"could not start a Dask LocalCluster of {jobs} workers: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self.blas_threads = blas_threads or blas_threads_for(jobs)
        else:
            timeout = dask_connect_timeout(connect_timeout)
            try:
                self.client = Client(address, timeout=f"{timeout}s")
            except Exception as exc:
                raise ExecutorError(
                    f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                    f"({type(exc).__name__}: {_first_line(exc)}); is it running? (wait longer: "
                    "TWOLAYER_DASK_TIMEOUT=<seconds>)"
                ) from None
            self.blas_threads = blas_threads or 1
        self.workers = max(1, sum(self.client.nthreads().values()))

    def run(self, groups: list[Group]) -> Iterator[list[Record]]:
        from dask.distributed import as_completed

        cap = None if self.explicit_threads else self.blas_threads
        futures = {
            self.client.submit(
                execute_group, group, self.explicit_threads, self.batch_seeds, cap,
                plugins=self.plugins, pure=False,
            ): i
            for i, group in enumerate(groups)
        }
        for future in as_completed(futures):
            group = groups[futures[future]]
            try:
                yield future.result()
            except Exception as exc:  # the task itself could not run (worker lost, pickling)
                yield [_dask_failure(item, exc) for item in group]

    def close(self) -> None:
        """Close the client (and the LocalCluster this executor started)."""
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _dask_failure(item: WorkItem, exc: BaseException) -> Record:
    """A Dask task that raised: the run raises inside execute_group, which catches it, so this
    is the infrastructure. A task that killed its workers (KilledWorker: Dask already retried
    it on ``distributed.scheduler.allowed-failures`` workers) is failed; anything else (a lost
    scheduler, a cancelled task) leaves the run to be rerun."""
    text = f"{type(exc).__name__}: {_first_line(exc)}"
    if type(exc).__name__ == "KilledWorker":
        return _record(item, "failed", f"Dask workers died running this run ({text})")
    return _lost(item, text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def dask_connect_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for a Dask scheduler: ``timeout``, else TWOLAYER_DASK_TIMEOUT, else
    :data:`DASK_CONNECT_TIMEOUT_S`."""
    if timeout is not None:
        return float(timeout)
    env = os.environ.get("TWOLAYER_DASK_TIMEOUT")
    if env:
        try:
            return float(env)
        except ValueError:
            raise ExecutorError(
                f"TWOLAYER_DASK_TIMEOUT={env!r} is not a number of seconds"
            ) from None
    return DASK_CONNECT_TIMEOUT_S


def make_executor(
    kind: str,
    *,
    jobs: int | None = None,
    address: str | None = None,
    blas_threads: int | None = None,
    tasks: int | None = None,
    batch_seeds: bool = False,
    connect_timeout: float | None = None,
    slurm: Any = None,
    store: str | Path | None = None,
) -> Executor:
    """Build an executor.

    Parameters
    ----------
    kind : {"serial", "local", "dask", "slurm"}
    jobs : int, optional
        Workers (default: cores), never more than ``tasks``.
    address : str, optional
        Dask scheduler address.
    blas_threads : int, optional
        BLAS threads of every run (``executor.threads_per_worker``). Default: per run, by its
        size (:func:`twolayer.threads.blas_threads_for_run`), at most cores // workers.
    tasks : int, optional
        Number of tasks to run (caps the number of local workers).
    batch_seeds : bool
        Run the seeds of each config as one batched computation (twolayer.batched).
    connect_timeout : float, optional
        Seconds to wait for a Dask scheduler (:func:`dask_connect_timeout`).
    slurm : SlurmConfig, optional
        ``executor.slurm`` of kind slurm (twolayer.experiment.spec.SlurmConfig; default: its
        defaults). ``jobs`` is then the jobs running at once.
    store : path, optional
        The store the driver writes (kind slurm: submitit's folder defaults to beside it).

    Raises
    ------
    ExecutorError
        If the executor cannot start (see :class:`DaskExecutor` and
        :class:`twolayer.experiment.slurm.SlurmExecutor`).
    """
    if kind == "serial":
        return SerialExecutor(blas_threads, batch_seeds)
    if kind == "slurm":  # its own module: submitit is an optional dependency
        from twolayer.experiment.slurm import SlurmExecutor
        from twolayer.experiment.spec import SlurmConfig

        return SlurmExecutor(
            slurm if slurm is not None else SlurmConfig(),
            store if store is not None else "twolayer.sqlite",
            jobs, blas_threads, batch_seeds,
        )
    n = jobs or available_cores()
    if tasks is not None:
        n = max(1, min(n, tasks))
    if kind == "local":
        return LocalExecutor(n, blas_threads, batch_seeds)
    if kind == "dask":
        return DaskExecutor(
            address, n if address is None else None, blas_threads, batch_seeds=batch_seeds,
            connect_timeout=connect_timeout,
        )
    raise ValueError(f"unknown executor {kind!r}; expected serial, local, dask or slurm")
