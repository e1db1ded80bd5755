"""The driver: spec -> runs -> skip what the store has -> groups -> executor -> store."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twolayer.experiment import provenance as prov
from twolayer.experiment.executors import Executor, make_executor
from twolayer.experiment.record import Record, WorkItem
from twolayer.experiment.spec import RunSpec, Spec, load_spec_with_runs
from twolayer.experiment.store import Store, refresh_heartbeat

HEARTBEAT_S = 30.0


class Progress:
    """Callbacks the driver calls; subclass to show progress (the CLI draws a rich bar)."""

    def start(self, total: int, skipped: int, executor: str, workers: int) -> None:
        """``total`` runs to execute now, ``skipped`` already in the store."""

    def advance(self, record: Record) -> None:
        """One run finished (and was written)."""

    def stop(self) -> None:
        """The sweep ended (normally or not)."""


@dataclass
class SweepResult:
    """What :func:`run_spec` did.

    Attributes
    ----------
    store : Path
    sweep : str
    total : int
        Runs in the sweep.
    skipped : int
        Runs already in the store (done or diverged; failed unless retry_failed).
    records : list of Record
        The runs executed now, in the order they finished.
    executor : str
    stale : list of (provenance or None, runs, fields that differ)
        The runs of the sweep kept from the store (done or diverged) that were computed with
        other versions than this environment (:func:`twolayer.experiment.provenance.stale_groups`;
        None: unknown provenance). Empty with ``rerun_stale``, which recomputes them.
    stale_rerun : int
        Stale runs recomputed now (``rerun_stale``).
    """

    store: Path
    sweep: str
    total: int
    skipped: int
    records: list[Record] = field(default_factory=list)
    executor: str = "serial"
    stale: list[tuple[dict[str, Any] | None, int, list[str]]] = field(default_factory=list)
    stale_rerun: int = 0

    def stale_message(self) -> str | None:
        """One line on the kept runs computed with other versions (None if none)."""
        return prov.stale_line(self.stale, self.skipped, prov.environment(), "stored runs")

    def counts(self) -> dict[str, int]:
        """Executed runs by status (``running``: lost with their worker, see :meth:`lost`)."""
        out: dict[str, int] = {}
        for r in self.records:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def lost(self) -> list[Record]:
        """Runs lost to the infrastructure (a worker pool that could not be restarted, a Dask
        scheduler gone): stored as ``running`` with the cause as error, so that running the
        spec again runs them."""
        return [r for r in self.records if r.status == "running"]


def _readout_size(run: RunSpec) -> int:
    r = run.config.readout
    return 0 if r is None else (r.n or run.config.train_n or 0)


def plan_groups(
    runs: list[RunSpec], workers: int = 1, batch_seeds: bool = False
) -> list[list[RunSpec]]:
    """Group runs that share stages (same seed and teacher/student/train/backend sections).

    When there are fewer groups than workers, the largest groups are split so that every
    worker gets a task (each part then trains its own copy of the student: the same numbers,
    more compute, less wall time).

    Parameters
    ----------
    runs : list of RunSpec
    workers : int
    batch_seeds : bool
        Group by the sections alone (all seeds together), so that a worker can run the seeds
        of each config as one batch; a group is then split between seeds, never between the
        configs of one seed, so that no trained student is computed twice.
    """
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        key = run.sections_key if batch_seeds else run.share_key
        groups.setdefault(key, []).append(run)
    # runs of a trained student fitted in increasing readout size share one growing feature
    # matrix and Gram matrix per seed (twolayer.pipeline.ReadoutPool): a group holds several
    # seeds when draws.fixed shares the student across them, so sort by seed, then size
    # (stable: runs of one seed and size keep their order)
    out = [sorted(g, key=lambda r: (r.seed, _readout_size(r))) for g in groups.values()]
    while len(out) < workers:
        out.sort(key=len, reverse=True)
        if len(out[0]) < 2:
            break
        big = out.pop(0)
        half = (len(big) + 1) // 2
        # cut at a change of seed when there is one: a seed's batch (batch_seeds) or its readout
        # pool stays whole on one worker
        seeds = [r.seed for r in big]
        cuts = [i for i in range(1, len(big)) if seeds[i] != seeds[i - 1]]
        if cuts:
            half = min(cuts, key=lambda i: abs(i - half))
        out += [big[:half], big[half:]]
    return out


def select_todo(
    runs: list[RunSpec],
    statuses: dict[str, str],
    retry_failed: bool = False,
    stale: set[str] | frozenset[str] = frozenset(),
) -> list[RunSpec]:
    """The runs to execute: not in the store, interrupted (running), failed if retrying, or
    in ``stale`` (stored runs to recompute: ``rerun_stale``).

    Runs with the same id (a sweep point listed twice) are executed once.
    """
    redo = {"running", "failed"} if retry_failed else {"running"}
    seen: set[str] = set()
    out = []
    for run in runs:
        if run.id in seen:
            continue
        seen.add(run.id)
        status = statuses.get(run.id)
        if status is None or status in redo or run.id in stale:
            out.append(run)
    return out


def find_stale(
    st: Store, statuses: dict[str, str]
) -> tuple[set[str], list[tuple[dict[str, Any] | None, int, list[str]]]]:
    """The stored done and diverged runs among ``statuses`` whose provenance differs from this
    environment's (:func:`twolayer.experiment.provenance.stale_fields`: twolayer version or
    commit, NumPy, SciPy, torch for torch runs; unknown provenance counts as different).

    Returns
    -------
    (set of run ids, groups as :func:`twolayer.experiment.provenance.stale_groups` gives them)
    """
    kept = [i for i, s in statuses.items() if s in ("done", "diverged")]
    current = prov.environment()
    by_id = st.run_provenance(kept)
    stale = {i for i, p in by_id.items() if prov.stale_fields(p, current)}
    counts: dict[str, tuple[dict[str, Any] | None, int]] = {}
    for run_id in stale:
        p = by_id[run_id]
        key = "null" if p is None else prov.provenance_id(p)
        counts[key] = (p, counts.get(key, (p, 0))[1] + 1)
    return stale, prov.stale_groups(list(counts.values()), current)


@dataclass
class SweepPlan:
    """What :func:`run_spec` would do, without running or writing anything (:func:`plan_spec`).

    Attributes
    ----------
    store : Path
    sweep : str
    axes : dict[str, int]
        Each sweep (or zip) key and its number of values.
    seeds : int
    total : int
        Distinct runs of the sweep.
    stored : dict[str, int]
        Runs of the sweep the store already has, by status.
    todo : int
        Runs that would execute now.
    students : int
        Trained students those runs need: runs that differ only in their readout, evaluation or
        measurements share one (docs/engine.md, "Shared stages").
    stale : list of (provenance or None, runs, fields that differ)
        Stored done or diverged runs computed with other versions (recomputed with
        ``rerun_stale``, and then counted in ``todo``).
    """

    store: Path
    sweep: str
    axes: dict[str, int]
    seeds: int
    total: int
    stored: dict[str, int]
    todo: int
    students: int
    stale: list[tuple[dict[str, Any] | None, int, list[str]]] = field(default_factory=list)


def plan_spec(
    spec: Spec | str | Path | dict[str, Any],
    *,
    store: str | Path | None = None,
    retry_failed: bool = False,
    rerun_stale: bool = False,
) -> SweepPlan:
    """Validate a spec and say what running it would do: how many runs, how many the store
    already has, how many would execute and how many trained students they need. Reads the
    store if it exists (without taking its lock); writes nothing."""
    if isinstance(spec, Spec):
        runs = spec.runs()
    else:
        spec, runs = load_spec_with_runs(spec)
    path = Path(store) if store is not None else Path(spec.store_path)
    statuses: dict[str, str] = {}
    stale: set[str] = set()
    groups: list[tuple[dict[str, Any] | None, int, list[str]]] = []
    if path.exists():
        with Store(path, create=False) as st:
            statuses = st.statuses(r.id for r in runs)
            stale, groups = find_stale(st, statuses)
    todo = select_todo(runs, statuses, retry_failed, stale if rerun_stale else frozenset())
    stored: dict[str, int] = {}
    for status in statuses.values():
        stored[status] = stored.get(status, 0) + 1
    axes = {k: len(v) for k, v in {**spec.sweep, **spec.zip}.items()}
    return SweepPlan(
        path, spec.name, axes, len(spec.seed_list), len({r.id for r in runs}), stored,
        len(todo), len({r.share_key for r in todo}), groups,
    )


class _Heartbeat(threading.Thread):
    """Refreshes the store lock's heartbeat while the driver waits for long runs."""

    def __init__(self, path: Path, token: str | None, every: float = HEARTBEAT_S) -> None:
        super().__init__(daemon=True, name="twolayer-heartbeat")
        self.path, self.token, self.every = path, token, every
        self._halt = threading.Event()

    def run(self) -> None:
        if self.token is None:
            return
        while not self._halt.wait(self.every):
            try:
                refresh_heartbeat(self.path, self.token)
            except sqlite3.Error:
                pass  # the heartbeat is advisory; the driver's own writes also refresh it

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def run_spec(
    spec: Spec | str | Path | dict[str, Any],
    *,
    store: str | Path | None = None,
    executor: str | None = None,
    jobs: int | None = None,
    retry_failed: bool = False,
    progress: Progress | None = None,
    runs: list[RunSpec] | None = None,
    executor_factory: Callable[..., Executor] = make_executor,
    batch_seeds: bool | None = None,
    rerun_stale: bool = False,
) -> SweepResult:
    """Run a spec (one run or a sweep) and store every result.

    Parameters
    ----------
    spec : Spec, path, YAML text or dict
    store : path, optional
        Overrides the spec's ``store`` (default ``<name>.sqlite`` in the current directory).
    executor : {"serial", "local", "dask", "slurm"}, optional
        Overrides the spec's ``executor.kind``; default serial for one run, local for a sweep.
    jobs : int, optional
        Overrides ``executor.jobs``.
    retry_failed : bool
        Run failed runs again (done and diverged runs are always kept).
    progress : Progress, optional
    runs : list of RunSpec, optional
        The resolved runs, if already computed.
    batch_seeds : bool, optional
        Overrides ``executor.batch_seeds``: run the seeds of each sweep point as one batched
        computation (the stored results are the same to rounding).
    rerun_stale : bool
        Recompute the stored done and diverged runs whose provenance differs from this
        environment's (:func:`find_stale`; docs/engine.md, "Provenance"). Without it they are
        kept and :attr:`SweepResult.stale` counts them.

    Returns
    -------
    SweepResult

    Raises
    ------
    SpecError
        If the spec is invalid (nothing is written).
    StoreError
        If the store is not a twolayer store, or StoreBusyError if another sweep writes to it.
    ExecutorError
        If the executor cannot start (Dask missing or unreachable); no run is marked then.
    """
    if not isinstance(spec, Spec):
        spec, runs = load_spec_with_runs(spec)
    if runs is None:
        runs = spec.runs()
    progress = progress or Progress()
    path = Path(store) if store is not None else Path(spec.store_path)
    prov.environment()  # once in the driver: forked workers inherit it (the git calls)
    with Store(path) as st:
        st.acquire(spec.name)
        statuses = st.statuses(r.id for r in runs)
        stale, stale_groups = find_stale(st, statuses)
        todo = select_todo(runs, statuses, retry_failed, stale if rerun_stale else frozenset())
        unique = len({r.id for r in runs})
        batch = spec.executor.batch_seeds if batch_seeds is None else batch_seeds
        ex: Executor | None = None
        if todo:  # before any run is marked: an executor that cannot start marks nothing
            kind = executor or spec.executor.kind or ("serial" if len(todo) == 1 else "local")
            ex = executor_factory(
                kind,
                jobs=jobs or spec.executor.jobs,
                address=spec.executor.address,
                blas_threads=spec.executor.threads_per_worker,
                tasks=len(todo) if kind == "local" else None,
                batch_seeds=batch,
                # slurm: its SLURM section, and the store beside which its folder goes
                **({"slurm": spec.executor.slurm, "store": path} if kind == "slurm" else {}),
            )
            if spec.plugins:  # sent with every group: the workers import them too
                ex.plugins = tuple(spec.plugins)  # type: ignore[attr-defined]
        try:
            st.register(
                spec.name,
                spec.to_dict(),
                ((r.id, r.config_json, r.seed, r.point) for r in runs),
                (r.id for r in todo),
            )
        except BaseException:
            if ex is not None:
                ex.close()
            raise
        result = SweepResult(path, spec.name, unique, unique - len(todo))
        if rerun_stale:
            result.stale_rerun = len(stale)
        else:
            result.stale = stale_groups
        if ex is None:
            progress.start(0, result.skipped, "none", 0)
            progress.stop()
            return result
        result.executor = ex.kind
        beat = _Heartbeat(path, st.lock_token)
        beat.start()
        try:
            # serial: one worker; slurm packs whole groups into chunks (slurm.pack_chunks)
            # rather than splitting them to fill its jobs
            split_for = 1 if ex.kind in ("serial", "slurm") else ex.workers
            groups = plan_groups(todo, split_for, batch)
            items: list[list[WorkItem]] = [[(r.id, r.config, r.seed) for r in g] for g in groups]
            progress.start(len(todo), result.skipped, ex.kind, ex.workers)
            for records in ex.run(items):
                for record in records:
                    st.write(record)
                    result.records.append(record)
                    progress.advance(record)
        finally:
            beat.stop()
            progress.stop()
            ex.close()
    return result
