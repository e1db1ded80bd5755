"""Sweeps too large to list: counted without resolving, validated axis by axis, run in chunks.

A sweep of 1000 x 1000 points and 1000 seeds has 10^9 runs; listing them (one validated config
and one RunSpec each) takes minutes and gigabytes before anything runs. Past :data:`LAZY_RUNS`
runs the spec is resolved lazily instead (docs/engine.md, "Sizes checked before allocation"):

- the count is the product of the axis lengths times the seeds (:meth:`Spec.count_runs`);
- when the spec loads, every value of every axis is validated, at the first point of the other
  axes, and so is the first point: O(sum of the axis lengths) validations, not their product. A
  point whose combination of values is invalid (each value valid alone) is reported when the
  sweep reaches it, and the runs before it are stored;
- the runs are yielded one point at a time (:class:`LazyRuns`) and executed in chunks of
  :data:`RUN_CHUNK` (:func:`run_lazily`): the driver holds one chunk of RunSpecs and the
  counts of what finished, never the whole list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from twolayer.config import RunConfig
from twolayer.experiment.errors import Problem, SpecError
from twolayer.experiment.paths import PathT
from twolayer.experiment.spec import RunSpec, Spec, _resolve
from twolayer.experiment.spec_errors import _translate
from twolayer.experiment.sweeps import point_data, sweep_key_paths

if TYPE_CHECKING:  # the record module imports the whole run pipeline: not for a refusal
    from twolayer.experiment.record import Record

#: Sweeps with more runs than this are resolved lazily (small ones are listed and every point
#: validated when the spec loads, as before).
LAZY_RUNS = 100_000

#: Runs per chunk of a lazy sweep: each chunk is one :func:`twolayer.experiment.run_spec` call
#: (its runs registered, grouped and executed), so the driver holds at most this many RunSpecs.
RUN_CHUNK = 10_000

#: Points whose estimates are all computed for the memory check; past it, the axis extremes.
ESTIMATE_POINTS = 1000


class LazyRuns:
    """The runs of a sweep, yielded in the order of :meth:`Spec.runs` without being held.

    ``len()`` is the count (points x seeds, :meth:`Spec.count_runs`); iterating validates each
    point as it comes (SpecError, naming the point, for an invalid combination) and yields its
    runs, one per seed.
    """

    def __init__(self, spec: Spec, source: str, node: yaml.Node | None,
                 keys: dict[str, PathT]) -> None:
        self.spec, self.source, self.node, self.keys = spec, source, node, keys
        self._base = spec.base_sections()

    def __len__(self) -> int:
        return self.spec.count_runs()

    def config(self, point: dict[str, Any]) -> RunConfig:
        """The validated config of one point (SpecError naming the point otherwise)."""
        try:
            data = point_data(self._base, self.keys, point)
        except ValueError as exc:
            raise SpecError([Problem("sweep", f"cannot apply: {exc}")], self.source) from None
        try:
            return RunConfig.model_validate(data)
        except ValidationError as exc:
            problems = [p for p, _ in _translate(exc, data, RunConfig, self.node, point,
                                                 self.keys)]
        except Exception as exc:  # a component raised on odd input: still the user's input
            problems = [Problem("", f"invalid value ({type(exc).__name__}: {exc})")]
        where = ", ".join(f"{k}={v!r}" for k, v in point.items())
        raise SpecError([Problem(p.path, f"{p.message} (sweep point {where})", p.line)
                         for p in problems], self.source)

    def __iter__(self) -> Iterator[RunSpec]:
        seeds = self.spec.seed_range()
        last: tuple[str, RunConfig] | None = None
        for point in self.spec.iter_points():
            text = json.dumps(point, sort_keys=True, default=repr)
            config = last[1] if last is not None and last[0] == text else self.config(point)
            last = (text, config)
            for seed in seeds:
                yield RunSpec(config, seed, self.spec.name, dict(point))

    def check(self) -> None:
        """Validate every axis value (at the first point of the other axes) and the first
        point: O(sum of the axis lengths) configs, each problem reported with its point."""
        axes = self.spec.axes()
        first = {k: v for axis in axes for k, v in axis[0].items()}
        seen: set[str] = set()
        problems: list[Problem] = []
        points = [first] + [{**first, **part} for axis in axes for part in axis]
        for point in points:
            text = json.dumps(point, sort_keys=True, default=repr)
            if text in seen:
                continue
            seen.add(text)
            try:
                self.config(point)
            except SpecError as exc:
                problems += [p for p in exc.problems if p not in problems]
            if len(problems) >= 20:  # enough to act on
                break
        if problems:
            raise SpecError(problems, self.source)


def resolve_runs(spec: Spec, source: str = "<dict>", node: yaml.Node | None = None,
                 *, lazy: bool | None = None) -> list[RunSpec] | LazyRuns:
    """The runs of a spec: a list (every point validated) up to :data:`LAZY_RUNS` runs, else
    a checked :class:`LazyRuns` (``lazy`` forces either)."""
    if lazy is None:
        lazy = spec.count_runs() > LAZY_RUNS
    if not lazy:
        return _resolve(spec, source, node)
    runs = LazyRuns(spec, source, node, sweep_key_paths(spec, source, node))
    runs.check()
    return runs


def estimate_points(spec: Spec, source: str = "<dict>", node: yaml.Node | None = None
                    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(config data, point) for the memory check, from the spec's plain data (nothing is
    validated or built): every point up to :data:`ESTIMATE_POINTS`, else the corner point that
    takes, on every axis, the value whose run is the largest with the others at their first
    value (the estimate grows with each size, so this corner bounds the grid's largest run
    when the axes vary sizes independently)."""
    from twolayer.experiment.estimate import estimate_run

    keys = sweep_key_paths(spec, source, node)
    base = spec.base_sections()

    def data_of(point: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return point_data(base, keys, point)
        except ValueError:
            return None  # reported when the runs are resolved

    if spec.count_points() <= ESTIMATE_POINTS:
        for point in spec.iter_points():
            data = data_of(point)
            if data is not None:
                yield data, point
        return
    axes = spec.axes()
    corner = {k: v for axis in axes for k, v in axis[0].items()}
    for axis in axes:
        def size(part: Mapping[str, Any]) -> int:
            data = data_of({**corner, **part})
            return -1 if data is None else estimate_run(data).nbytes

        corner.update(max(axis, key=size))
    data = data_of(corner)
    if data is not None:
        yield data, corner


@dataclass
class LazySweepResult:
    """What :func:`run_lazily` did: the counts, not every record (a sweep of 10^6 runs would
    hold 10^6 of them). Offers what the CLI reads of a SweepResult.

    Attributes
    ----------
    store, sweep, total, skipped, executor : as SweepResult
    status_counts : dict[str, int]
        Runs executed now, by status.
    records : list of Record
        The executed runs that did not finish done (failed, diverged, lost), at most
        :data:`KEPT_RECORDS` of them, for the report.
    executed : int
        Runs executed now.
    stale : list
        The kept runs computed with other versions, chunk by chunk (as ``SweepResult.stale``).
    """

    store: Path
    sweep: str
    total: int
    skipped: int = 0
    executor: str = "serial"
    status_counts: dict[str, int] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    executed: int = 0
    stale: list[tuple[dict[str, Any] | None, int, list[str]]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(self.status_counts)

    def lost(self) -> list[Record]:
        return [r for r in self.records if r.status == "running"]

    def stale_message(self) -> str | None:
        """One line on the kept runs computed with other versions (None if none)."""
        from twolayer.experiment import provenance as prov

        current = prov.environment()
        groups = prov.stale_groups([(p, n) for p, n, _ in self.stale], current)
        return prov.stale_line(groups, self.skipped, current, "stored runs")


#: Records of runs that did not finish done kept for the report of a lazy sweep.
KEPT_RECORDS = 100


class _ChunkProgress:
    """Forwards the progress of every chunk to one progress object started once."""

    def __init__(self, inner: Any, total: int) -> None:
        self.inner, self.total, self.started = inner, total, False

    def start(self, total: int, skipped: int, executor: str, workers: int) -> None:
        if not self.started and total:
            self.started = True
            self.inner.start(self.total, 0, executor, workers)

    def advance(self, record: Record) -> None:
        self.inner.advance(record)

    def stop(self) -> None:
        """Stopped once, by :func:`run_lazily`, after the last chunk."""


def _chunks(runs: LazyRuns, size: int) -> Iterator[list[RunSpec]]:
    chunk: list[RunSpec] = []
    for run in runs:
        chunk.append(run)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_lazily(spec: Spec, runs: LazyRuns, *, progress: Any = None, chunk: int = RUN_CHUNK,
               **options: Any) -> LazySweepResult:
    """Run a lazy sweep chunk by chunk with :func:`twolayer.experiment.run_spec` (``options``
    are its keyword arguments: store, executor, jobs, retry_failed, ...).

    Each chunk is registered, skipped where stored, grouped and executed as a sweep of its
    own (an executor per chunk; a chunk of 10,000 runs amortises its start). Interrupted, it
    leaves what the chunks stored, and a rerun resumes (runs already stored are skipped).
    """
    from twolayer.experiment.runner import Progress, run_spec

    inner = progress or Progress()
    forward = _ChunkProgress(inner, len(runs))
    path = Path(options.get("store") or spec.store_path)
    result = LazySweepResult(path, spec.name, len(runs))
    try:
        for part in _chunks(runs, chunk):
            done = run_spec(spec, runs=part, progress=forward, **options)
            result.skipped += done.skipped
            result.stale.extend(done.stale)
            if done.executor != "serial" or result.executed == 0:
                result.executor = done.executor
            for record in done.records:
                result.executed += 1
                result.status_counts[record.status] = (
                    result.status_counts.get(record.status, 0) + 1
                )
                if record.status != "done" and len(result.records) < KEPT_RECORDS:
                    result.records.append(record)
    finally:
        if forward.started:
            inner.stop()
    return result


# --------------------------------------------------------------------------------------------
# what `twolayer run` checks before it resolves or runs anything


class MemoryRefused(SpecError):
    """A run of the spec would not fit in the memory available (``--force`` overrides)."""


def workers_for(spec: Spec, executor: str | None, jobs: int | None) -> int:
    """Runs held in memory at once on this machine: 1 serial or Dask (the Dask workers' memory
    is theirs), else the local executor's workers (``jobs``, the spec's, or the cores), at
    most the runs."""
    import os

    runs = spec.count_runs()
    kind = executor or spec.executor.kind or ("serial" if runs == 1 else "local")
    if kind != "local":
        return 1
    return max(1, min(jobs or spec.executor.jobs or os.cpu_count() or 1, runs))


def check_spec_memory(spec: Spec, source: str = "<dict>", node: yaml.Node | None = None, *,
                      workers: int = 1, available: tuple[int | None, str] | None = None,
                      force: bool = False) -> Any:
    """Estimate the sweep's largest run from the spec's plain data and compare it with the
    memory available (:func:`twolayer.experiment.estimate.check_memory`); nothing is built.

    Raises
    ------
    MemoryRefused
        When it does not fit and not ``force``: the estimate, the memory available, the largest
        array, and (local workers) how many workers would fit.
    """
    from twolayer.experiment.estimate import check_memory, per_worker_bytes

    check = check_memory(estimate_points(spec, source, node), workers=workers,
                         available=available)
    if check.fits or force:
        return check
    hint = "; --force runs it anyway"
    if workers > 1 and check.available is not None:
        fit = int(check.available // per_worker_bytes(check.estimate))
        if fit >= 1:
            hint = f"; --jobs {fit} would fit" + hint
    raise MemoryRefused([Problem("", check.message() + hint)], source)


def plan_lazily(spec: Spec, runs: LazyRuns, *, store: str | Path | None = None,
                retry_failed: bool = False) -> Any:
    """What running a lazy sweep would do, from counts alone (no run is resolved): the runs
    of the sweep the store has by status (stored under the sweep's name), and the runs left
    (total minus those kept). Trained students are not counted (``students`` is None)."""
    from twolayer.experiment.runner import SweepPlan
    from twolayer.experiment.store import Store

    path = Path(store) if store is not None else Path(spec.store_path)
    stored: dict[str, int] = {}
    if path.exists():
        with Store(path, create=False) as st:
            stored = st.counts(spec.name)
    keep = {"done", "diverged"} | (set() if retry_failed else {"failed"})
    todo = max(len(runs) - sum(n for s, n in stored.items() if s in keep), 0)
    axes = {k: len(v) for k, v in {**spec.sweep, **spec.zip}.items()}
    return SweepPlan(path, spec.name, axes, spec.seed_count, len(runs), stored, todo,
                     None)  # type: ignore[arg-type]
