"""SLURM job arrays through submitit: one job per chunk of runs, results back to the driver.

The driver packs the groups of runs that share stages into chunks of about ``chunk`` runs and
submits every chunk as one task of a SLURM job array (``sbatch --array=0-K%jobs``), through
submitit (https://github.com/facebookincubator/submitit). A job runs its chunk with the engine's
own code (:func:`twolayer.experiment.record.execute_units`, the spec's plugin modules imported
first, as on local and Dask workers) and returns the Records in submitit's result pickle; the
driver reads them and alone writes the store, as with every executor (docs/engine.md, "Clusters").

What survives what:

* **A run that raises** is a ``failed`` Record like any other; the job goes on.
* **Preemption, time limit**: SLURM signals the job (``--signal=USR2@90``, set by submitit;
  a preemption is signalled only where the cluster sets
  ``SlurmctldParameters=preempt_send_user_signal``); submitit then calls
  :meth:`ChunkTask.checkpoint`, which saves the Records finished so far in the job's pickle,
  and requeues the job (``scontrol requeue``): the requeued job runs only the rest of its
  chunk. A job that reaches its time limit is requeued at most ``max_requeues`` times
  (preemptions do not count). A preempted job that gets no signal is cancelled (below) or
  requeued by SLURM itself, and then computes its chunk again from its last checkpoint.
* **A job that dies without a result** (the OOM killer, a node failure, ``scancel``, a worker
  that exits): the driver resubmits the runs of its chunk that did not come back, as the local
  executor does for a dead worker. The job notes the run it is computing in a small file beside
  submitit's, so that run is blamed; a run blamed twice is stored ``failed`` with the job's
  state and log file. A chunk whose jobs die :data:`MAX_BLAMELESS_RESUBMITS` times in a row
  without a run to blame and without progress leaves its runs ``running`` with the cause, so a
  plain rerun runs them.
* **A driver that is killed** leaves its runs ``running`` in the store; the jobs it submitted go
  on (a SIGKILLed driver cannot cancel them: ``scancel --name <job_name>``). Running the spec
  again first collects the done and diverged runs that those jobs left in the folder's result
  files, computed with this environment's versions (:meth:`SlurmExecutor._orphans`: a run's
  id is the hash of its config and seed), then
  submits the rest as new jobs; jobs of the dead driver still queued or running then compute
  their runs a second time, and their results are not used. A driver that stops normally or by
  Ctrl-C cancels its jobs still queued or running.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twolayer.experiment.executors import (
    MAX_BLAMELESS_RESTARTS,
    ExecutorError,
    Group,
    _lost,
    _record,
    blas_threads_for,
)
from twolayer.experiment.record import Record, WorkItem, _plugin_failures, execute_units
from twolayer.pipeline import process_cache
from twolayer.threads import available_cores, engine_threads

__all__ = ["MAX_BLAMELESS_RESUBMITS", "ChunkTask", "SlurmExecutor", "pack_chunks"]

#: Times a chunk is resubmitted in a row after jobs that died with no run to blame and no run
#: finished (a job that cannot even start) before its runs are left ``running``.
MAX_BLAMELESS_RESUBMITS = MAX_BLAMELESS_RESTARTS

#: Jobs of one array running at once when ``executor.jobs`` is not given (submitit's default).
DEFAULT_ARRAY_PARALLELISM = 256

#: Seconds the driver waits for a finished SLURM job's result file to appear (a network file
#: system may show it late; submitit waits as long).
RESULT_GRACE_S = 15.0

_BEACONS = "twolayer-inflight"  # subfolder of submitit's folder: the run each job computes


def pack_chunks(groups: list[Group], chunk: int) -> list[Group]:
    """Pack groups of runs into chunks of at most ``chunk`` runs, in order.

    Consecutive groups are put together while the chunk has room; a group larger than
    ``chunk`` is cut into pieces of ``chunk`` runs (each piece then trains its own copy of
    the shared student: the same numbers, more compute).

    Parameters
    ----------
    groups : list of list of WorkItem
        As the driver plans them (twolayer.experiment.runner.plan_groups), each sorted by seed
        and readout size.
    chunk : int
        Runs per job, at least 1.

    Returns
    -------
    list of list of WorkItem
        Every item of ``groups`` exactly once, in the same order.

    Raises
    ------
    ValueError
        If ``chunk`` is below 1.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    out: list[Group] = []
    current: Group = []
    for group in groups:
        for start in range(0, len(group), chunk):
            piece = group[start:start + chunk]
            if current and len(current) + len(piece) > chunk:
                out.append(current)
                current = []
            current = current + piece
    if current:
        out.append(current)
    return out


class ChunkTask:
    """What a job runs: the runs of one chunk, in order, keeping the Records finished so far.

    submitit pickles the task into the job's folder. On preemption or time limit it calls
    :meth:`checkpoint` (in the job, from its signal handler), which pickles the task as it is
    then, finished Records included, for the requeued job: only the rest is computed again.

    Parameters
    ----------
    items : list of (run_id, RunConfig, seed)
    blas_threads : int, optional
        BLAS threads of every run (``executor.threads_per_worker``).
    max_threads : int, optional
        Without ``blas_threads``: the most threads a run may use (None: the job's cores).
    batch_seeds : bool
    plugins : tuple of str
        The spec's plugin modules, imported before anything runs (as on local and Dask workers).
    beacon : str, optional
        File in which the job writes the ids of the runs it is computing (empty between runs),
        so that the driver knows which run was in flight when a job died.
    """

    def __init__(
        self,
        items: list[WorkItem],
        blas_threads: int | None,
        max_threads: int | None,
        batch_seeds: bool,
        plugins: tuple[str, ...],
        beacon: str | None,
    ) -> None:
        self.items = list(items)
        self.blas_threads = blas_threads
        self.max_threads = max_threads
        self.batch_seeds = batch_seeds
        self.plugins = tuple(plugins)
        self.beacon = beacon
        self.done: list[Record] = []

    def _note(self, unit: list[WorkItem]) -> None:
        if self.beacon is not None:
            Path(self.beacon).write_text("\n".join(item[0] for item in unit))

    def __call__(self) -> list[Record]:
        failed = _plugin_failures(self.items, self.plugins)
        if failed:
            return failed
        finished = {r.run_id for r in self.done}
        todo = [item for item in self.items if item[0] not in finished]
        cache = process_cache()
        if self.blas_threads is not None:
            limit: Any = engine_threads(self.blas_threads)
        else:
            from threadpoolctl import threadpool_limits

            limit = threadpool_limits(limits=self.max_threads)
        with limit:
            for records in execute_units(todo, cache, self.batch_seeds, self._note):
                self.done.extend(records)  # one C call: a signal handler sees all or none
                self._note([])
        return list(self.done)

    def checkpoint(self) -> Any:
        """The task as it is now (finished Records kept), for submitit to requeue."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)

    # the name newer submitit versions look up first (1.5.4 reads both)
    __submitit_checkpoint__ = checkpoint


@dataclass
class _Chunk:
    """A chunk of runs and what the driver knows of its jobs."""

    items: Group
    blameless: int = 0  # jobs in a row that ended with no run to blame and no progress
    job: Any = None
    beacon: Path | None = None


def default_folder(store: str | Path) -> Path:
    """submitit's folder for a store: ``<store without suffix>.submitit`` beside it."""
    store = Path(store)
    return store.with_name(store.stem + ".submitit")


def submitit_parameters(slurm: Any, jobs: int | None) -> dict[str, Any]:
    """submitit's parameters of one job from ``executor.slurm`` (a SlurmConfig).

    For ``cluster: slurm`` these are ``submitit.SlurmExecutor`` parameters (sbatch options);
    for ``cluster: local`` those of ``submitit.LocalExecutor`` (time limit, GPUs, setup).
    """
    if slurm.cluster == "local":
        out: dict[str, Any] = {"timeout_min": slurm.time}
        if slurm.gpus:
            out["gpus_per_node"] = slurm.gpus
        if slurm.setup:
            out["setup"] = list(slurm.setup)
        return out
    out = {
        "job_name": slurm.job_name,
        "time": slurm.time,
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": slurm.cpus_per_task,
        "array_parallelism": jobs or DEFAULT_ARRAY_PARALLELISM,
    }
    optional = {
        "partition": slurm.partition,
        "mem": slurm.mem,
        "gpus_per_node": slurm.gpus,
        "account": slurm.account,
        "qos": slurm.qos,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    if slurm.setup:
        out["setup"] = list(slurm.setup)
    if slurm.additional:
        out["additional_parameters"] = dict(slurm.additional)
    return out


class SlurmExecutor:
    """SLURM job arrays through submitit: one job per chunk of runs (module docstring).

    Parameters
    ----------
    slurm : SlurmConfig
        ``executor.slurm`` of the spec (twolayer.experiment.spec.SlurmConfig).
    store : path
        The store the driver writes; submitit's folder defaults to ``<store>.submitit`` beside
        it (``slurm.folder`` overrides it; it must be visible from the compute nodes).
    jobs : int, optional
        Jobs running at once: the array's ``%`` limit (default 256) on SLURM, processes on this
        machine with ``cluster: local`` (default: cores).
    blas_threads : int, optional
        BLAS threads of every run. Default: each run uses
        :func:`twolayer.threads.blas_threads_for_run` of its size, at most the job's cores
        (``cpus_per_task`` on SLURM; cores // jobs with ``cluster: local``).
    batch_seeds : bool
        Run the seeds of each config of a chunk as one batch.

    Raises
    ------
    ExecutorError
        If submitit is not installed, or ``cluster: slurm`` where ``sbatch`` is not on PATH.
    """

    kind = "slurm"
    plugins: tuple[str, ...] = ()  # the spec's plugin modules, imported by every job

    def __init__(
        self,
        slurm: Any,
        store: str | Path,
        jobs: int | None = None,
        blas_threads: int | None = None,
        batch_seeds: bool = False,
    ) -> None:
        try:
            import submitit
        except ImportError as exc:
            raise ExecutorError(
                f"the slurm executor needs submitit ({exc}): pip install 'twolayer[slurm]'"
            ) from None
        self.config = slurm
        self.batch_seeds = batch_seeds
        self.explicit_threads = blas_threads
        self.folder = Path(slurm.folder) if slurm.folder else default_folder(store)
        self.local = slurm.cluster == "local"
        self.grace_s = 0.0 if self.local else RESULT_GRACE_S
        if self.local:
            self.workers = jobs or available_cores()
            # jobs share this machine: cores // jobs each, as the local executor's workers
            self.max_threads: int | None = blas_threads or blas_threads_for(self.workers)
        else:
            if shutil.which("sbatch") is None:
                raise ExecutorError(
                    "the slurm executor found no sbatch on PATH: run the driver where SLURM "
                    "commands work (a login node), or set executor.slurm.cluster: local to "
                    "run the same jobs on this machine"
                )
            self.workers = jobs or DEFAULT_ARRAY_PARALLELISM
            self.max_threads = None  # the job owns its cpus_per_task cores
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / _BEACONS).mkdir(exist_ok=True)
        except OSError as exc:
            raise ExecutorError(
                f"cannot use {self.folder} as the slurm executor's folder: {exc}"
            ) from None
        cls = submitit.LocalExecutor if self.local else submitit.SlurmExecutor
        self._submitit = cls(folder=self.folder, max_num_timeout=slurm.max_requeues)
        try:
            self._submitit.update_parameters(**submitit_parameters(slurm, jobs))
        except ValueError as exc:
            raise ExecutorError(f"executor.slurm: {exc}") from None
        self._chunks: list[_Chunk] = []
        self.resubmits = 0  # chunks submitted again after their job ended without a result
        self.submitted = 0  # jobs submitted
        self.collected = 0  # Records found in the folder, left by jobs of an earlier driver

    # -- submission ------------------------------------------------------------------------

    def _task(self, chunk: _Chunk) -> ChunkTask:
        chunk.beacon = self.folder / _BEACONS / uuid.uuid4().hex
        chunk.beacon.write_text("")
        return ChunkTask(
            chunk.items, self.explicit_threads, None if self.explicit_threads else self.max_threads,
            self.batch_seeds, self.plugins, str(chunk.beacon),
        )

    def _submit(self, chunks: list[_Chunk]) -> None:
        """Submit chunks as one job array (one job each with ``cluster: local``)."""
        if not chunks:
            return
        tasks = [self._task(c) for c in chunks]
        try:
            jobs = self._submitit.submit_array(tasks)
        except Exception as exc:  # sbatch refused (bad partition, account, time limit, ...)
            raise ExecutorError(
                f"SLURM refused the jobs ({type(exc).__name__}): {_first_lines(exc)}"
            ) from None
        for chunk, job in zip(chunks, jobs, strict=True):
            chunk.job = job
        self.submitted += len(jobs)

    def run(self, groups: list[Group]) -> Iterator[list[Record]]:
        orphans = self._orphans({item[0] for group in groups for item in group})
        if orphans:
            yield list(orphans.values())
            groups = [[item for item in group if item[0] not in orphans] for group in groups]
        waiting = [_Chunk(items) for items in pack_chunks([g for g in groups if g],
                                                         self.config.chunk)]
        self._chunks = []
        blamed: dict[str, int] = {}
        while waiting or self._chunks:
            room = len(waiting) if not self.local else self.workers - len(self._chunks)
            batch, waiting = waiting[:max(0, room)], waiting[max(0, room):]
            self._submit(batch)
            self._chunks += batch
            finished = [c for c in self._chunks if c.job.done()]
            if not finished:
                time.sleep(self.config.poll)
                continue
            for chunk in finished:
                self._chunks.remove(chunk)
                out, again = self._collect(chunk, blamed)
                if out:
                    yield out
                if again is not None:
                    self.resubmits += 1
                    waiting.append(again)

    def _collect(self, chunk: _Chunk, blamed: dict[str, int]) -> tuple[list[Record], _Chunk | None]:
        """The Records of a finished job, and the chunk to resubmit (None: nothing left)."""
        job = chunk.job
        outcome = self._outcome(job)
        if outcome is not None and outcome[0] == "success":
            self._clean(chunk)
            return list(outcome[1]), None
        # the job ended without its Records: the runs that finished before a checkpoint are in
        # its pickle; the rest is resubmitted, the run in flight blamed
        kept = _checkpointed(job)
        ids = {r.run_id for r in kept}
        rest = [item for item in chunk.items if item[0] not in ids]
        blame = _read_beacon(chunk.beacon) & {item[0] for item in rest}
        how = _how_ended(job, outcome)
        self._clean(chunk, keep_logs=True)
        out = list(kept)
        for run_id in blame:
            blamed[run_id] = blamed.get(run_id, 0) + 1
        twice = [item for item in rest if blamed.get(item[0], 0) >= 2]
        out += [_record(item, "failed", f"its job died twice while running this run ({how}); "
                        "rerun with --retry-failed") for item in twice]
        rest = [item for item in rest if item not in twice]
        if not rest:
            return out, None
        if outcome is not None and outcome[0] == "error" and not blame and not kept:
            # the task itself raised outside any run (the job's environment: twolayer not
            # importable there, a pickle that does not load): the same job would raise again;
            # left to a rerun once the environment is fixed, as Dask does
            return out + [_lost(item, f"its job raised ({how})") for item in rest], None
        blameless = 0 if blame or kept else chunk.blameless + 1
        if blameless >= MAX_BLAMELESS_RESUBMITS:
            cause = f"its jobs ended {blameless} times in a row without a result ({how})"
            return out + [_lost(item, cause) for item in rest], None
        return out, _Chunk(rest, blameless=blameless)

    def _orphans(self, wanted: set[str]) -> dict[str, Record]:
        """Done and diverged Records, among the runs ``wanted``, that jobs of an earlier driver
        left in the folder without being collected (that driver was killed before its jobs
        ended). A run's id is the hash of its resolved config and seed, so such a Record is that
        run's result, kept when its provenance matches this environment (versions, commit:
        :func:`twolayer.experiment.provenance.stale_fields`); failed and stale ones are computed
        again. The files are read, not removed: another driver may share the folder."""
        from submitit.core.utils import pickle_load

        from twolayer.experiment import provenance as prov

        current = prov.environment()
        found: dict[str, Record] = {}
        for path in sorted(self.folder.glob("*_result.pkl")):
            try:
                outcome, value = pickle_load(path)
            except Exception:  # torn, or another library's: not a result of ours
                continue
            if outcome != "success" or not isinstance(value, list):
                continue
            for record in value:
                if (isinstance(record, Record) and record.run_id in wanted
                        and record.status in ("done", "diverged")
                        and not prov.stale_fields(record.provenance, current)):
                    found.setdefault(record.run_id, record)
        self.collected = len(found)
        return found

    def _outcome(self, job: Any) -> tuple[str, Any] | None:
        """("success", Records) or ("error", traceback text) from the job's result file; None
        when the job ended without writing one."""
        from submitit.core.utils import pickle_load

        path = job.paths.result_pickle
        deadline = time.time() + self.grace_s
        while not path.exists() and time.time() < deadline:
            time.sleep(1.0)
        if not path.exists():
            return None
        try:
            return pickle_load(path)
        except Exception as exc:  # a torn or unreadable file: the job's result is lost
            return ("error", f"its result file {path} cannot be read: {exc}")

    def _clean(self, chunk: _Chunk, keep_logs: bool = False) -> None:
        """Remove a collected job's pickles (submitit leaves them), its beacon, and unless
        ``keep_logs`` its log files."""
        paths = chunk.job.paths
        names = [paths.submitted_pickle, paths.result_pickle]
        if not keep_logs:
            names += [paths.stdout, paths.stderr]
        if chunk.beacon is not None:
            names.append(chunk.beacon)
        for path in names:
            try:
                Path(path).unlink(missing_ok=True)
            except OSError:
                pass

    def close(self) -> None:
        """Cancel the jobs still queued or running (their runs stay ``running`` in the store)."""
        for chunk in self._chunks:
            try:
                chunk.job.cancel(check=False)
            except Exception:  # already gone, or scancel not reachable: nothing more to do
                pass
        self._chunks = []


def _checkpointed(job: Any) -> list[Record]:
    """Records a job saved at its last checkpoint (preemption, time limit): submitit rewrote
    the job's pickle with the task as it was then. Empty if the job never checkpointed."""
    try:
        task = job.submission().function
    except Exception:  # no pickle (already removed), or unreadable
        return []
    return list(task.done) if isinstance(task, ChunkTask) else []


def _read_beacon(path: Path | None) -> set[str]:
    if path is None:
        return set()
    try:
        return {line for line in path.read_text().splitlines() if line}
    except OSError:
        return set()


def _how_ended(job: Any, outcome: tuple[str, Any] | None) -> str:
    """The job, its state as the scheduler tells it, and its log file."""
    try:
        state = job.state
    except Exception:
        state = "unknown"
    where = f"job {job.job_id}, state {state}, log {job.paths.stderr}"
    if outcome is None:
        return f"{where}: ended without a result"
    return f"{where}: {_last_line(str(outcome[1]))}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and set(line) != {"-"}]
    return lines[-1].strip() if lines else ""


def _first_lines(exc: BaseException, n: int = 3) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return " / ".join(lines[:n])
