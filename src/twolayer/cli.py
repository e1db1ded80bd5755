"""The ``twolayer`` command: a thin layer over :mod:`twolayer.experiment`.

Exit codes: 0 success (every run done or diverged), 1 a run failed or was lost with its worker,
or the store or the executor cannot be used, 2 bad input (spec error or bad command line).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from twolayer.experiment.errors import SpecError, StoreError

F = TypeVar("F", bound=Callable[..., Any])

#: Failed or diverged runs listed by ``twolayer status`` unless asked for all.
MAX_FAILURES_SHOWN = 10

BEST_METRIC_CANDIDATES = (
    "readout.test_mse",
    "readout.test_err01",
    "network.test_mse",
    "network.test_err01",
)


def _handle_errors(fn: F) -> F:
    """Print SpecError (exit 2) and StoreError (exit 1) as one clear message, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except StoreError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the version, with the git commit when installed from a checkout."""
    if not value or ctx.resilient_parsing:
        return
    from twolayer.experiment.provenance import version_line

    click.echo(version_line())
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
    help="Print the version (with the git commit when installed from a checkout) and exit.",
)
def main() -> None:
    """twolayer: feature learning in two-layer networks - simulations, sweeps and theory.

    \b
    Examples:
      twolayer run examples/one_step.yaml
      twolayer run examples/sweep_eta.yaml --jobs 4 --store out/sweep_eta.sqlite
      twolayer status out/sweep_eta.sqlite
      twolayer export out/sweep_eta.sqlite --format parquet
      twolayer plot out/sweep_eta.sqlite            # figures in out/sweep_eta_figures/
      twolayer schema > twolayer.schema.json        # editor completion (docs/cli.md)
      twolayer recipes
      twolayer reproduce --all --quick
    """


# ---------------------------------------------------------------------------------------------
# run


class _RichProgress:
    """A rich progress bar over runs with ETA and the best value so far of one metric."""

    def __init__(self, metric: str | None, enabled: bool) -> None:
        self.metric = metric
        self.enabled = enabled
        self.best = math.inf
        self.best_name: str | None = metric
        self.failed = 0
        self.total: int | None = None  # runs of the sweep, once started
        self.stored = 0  # of which finished and stored (before or now)
        self._bar: Any = None
        self._task: Any = None

    # twolayer.experiment.Progress protocol
    def start(self, total: int, skipped: int, executor: str, workers: int) -> None:
        self.total, self.stored = total + skipped, skipped
        if not self.enabled or total == 0:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
        )
        where = f"{executor} x{workers}" if executor != "serial" else "serial"
        label = f"runs ({where}" + (f", {skipped} skipped)" if skipped else ")")
        self._task = self._bar.add_task(label, total=total, best="")
        self._bar.start()

    def advance(self, record: Any) -> None:
        if record.status in ("done", "diverged", "failed"):
            self.stored += 1
        if record.status == "failed":
            self.failed += 1
        name = self.best_name
        if name is None:
            name = next((m for m in BEST_METRIC_CANDIDATES if m in record.scalars), None)
            self.best_name = name
        value = record.scalars.get(name) if name else None
        if value is not None and value < self.best:
            self.best = value
        if self._bar is not None:
            best = f"best {self.best_name} {self.best:.4g}" if math.isfinite(self.best) else ""
            if self.failed:
                best += f"  [red]{self.failed} failed"
            self._bar.update(self._task, advance=1, best=best)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store file (default: the spec's 'store', else <name>.sqlite here).",
)
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Workers (default: all cores).")
@click.option(
    "--executor",
    type=click.Choice(["serial", "local", "dask", "slurm"]),
    help="Where runs execute (default: the spec's executor; serial for one run, local for "
    "a sweep).",
)
@click.option("--retry-failed", is_flag=True, help="Run the failed runs of the store again.")
@click.option(
    "--rerun-stale", is_flag=True,
    help="Recompute the stored runs computed with other versions (twolayer version or commit, "
    "NumPy, SciPy, torch; docs/engine.md, 'Provenance').",
)
@click.option(
    "--batch-seeds/--no-batch-seeds",
    default=None,
    help="Run the seeds of each sweep point as one batched computation (default: the spec's "
    "executor.batch_seeds).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no result table.")
@click.option(
    "--dry-run", "-n", is_flag=True,
    help="Check SPEC and say what would run (runs, stored, to do, trained students); "
    "run nothing, write nothing.",
)
@click.option(
    "--metric",
    help="Metric whose best (lowest) value the progress bar shows "
    "(default: readout.test_mse, else network.test_mse).",
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="With --dry-run: print the plan as one JSON object (keys in docs/cli.md).",
)
@click.option(
    "--force", is_flag=True,
    help="Run even if the memory estimate of a run exceeds the memory available "
    "(docs/engine.md, 'Sizes checked before allocation').",
)
@click.option(
    "--yes", "-y", is_flag=True,
    help="Do not ask before a sweep of more than TWOLAYER_CONFIRM_RUNS runs (default 10000); "
    "needed without a terminal.",
)
@_handle_errors
def run(
    spec: Path,
    store: Path | None,
    jobs: int | None,
    executor: str | None,
    retry_failed: bool,
    rerun_stale: bool,
    batch_seeds: bool | None,
    quiet: bool,
    dry_run: bool,
    metric: str | None,
    as_json: bool,
    force: bool,
    yes: bool,
) -> None:
    """Run SPEC (a YAML file): one run, or a sweep over parameters and seeds.

    Runs already in the store are skipped, so running a sweep again after a crash finishes
    it. Exit code 1 if a run failed (its traceback is in the store) or was lost with its worker
    (run the command again), or if the executor cannot start; 2 if SPEC is invalid.

    \b
    Examples:
      twolayer run examples/one_step.yaml
      twolayer run examples/sweep_eta.yaml --jobs 4 --store results/eta.sqlite
      twolayer run examples/sweep_eta.yaml --retry-failed
      twolayer run examples/sweep_eta.yaml --dry-run      # what would run, nothing runs
      twolayer run examples/sweep_eta.yaml --dry-run --json   # the same, for scripts
      twolayer run examples/sweep_eta.yaml --batch-seeds   # seeds of a point as one batch
      twolayer run big_sweep.yaml --executor dask     # executor.address in the spec
    """
    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run (a run's results: twolayer export)")
    # before the engine is imported: a refusal costs the spec's modules only
    parsed, runs, memory = _admit(spec, executor, jobs, force)
    from twolayer.experiment.executors import ExecutorError
    from twolayer.experiment.runner import plan_spec, run_spec

    if dry_run:
        if isinstance(runs, list):
            plan = plan_spec(parsed, store=store, retry_failed=retry_failed,
                             rerun_stale=rerun_stale)
        else:
            from twolayer.experiment.lazy import plan_lazily

            plan = plan_lazily(parsed, runs, store=store, retry_failed=retry_failed)
        if as_json:
            _echo_json(plan_json(plan))
        else:
            _print_plan(plan)
            _plain_console().print(_memory_line(memory))
        return
    _confirm_size(len(runs), yes)
    interactive = sys.stdout.isatty() and not quiet
    progress = _RichProgress(metric, enabled=interactive)
    try:
        if not isinstance(runs, list):  # a sweep too large to list: chunk by chunk
            from twolayer.experiment.lazy import run_lazily

            result = run_lazily(parsed, runs, progress=progress, store=store,
                                executor=executor, jobs=jobs, retry_failed=retry_failed,
                                batch_seeds=batch_seeds, rerun_stale=rerun_stale)
        else:
            result = run_spec(
                parsed,
                store=store,
                executor=executor,
                jobs=jobs,
                retry_failed=retry_failed,
                progress=progress,
                runs=runs,
                batch_seeds=batch_seeds,
                rerun_stale=rerun_stale,
            )
    except ExecutorError as exc:  # nothing was marked in the store
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        _interrupted(progress, store or Path(parsed.store_path))
    counts = result.counts()
    if not quiet:
        _report(result, counts, progress)
    stale = result.stale_message()
    if stale:  # even with --quiet: results of two versions are about to be mixed
        click.echo(f"warning: {stale}; `twolayer run {spec} --rerun-stale` recomputes them",
                   err=True)
    if counts.get("failed") or counts.get("running"):
        sys.exit(1)


def _admit(spec: Path, executor: str | None, jobs: int | None, force: bool
           ) -> tuple[Any, Any, Any]:
    """Load SPEC, check that its largest run fits in memory before anything is built, then
    resolve its runs: a list, or lazily past twolayer.experiment.lazy.LAZY_RUNS runs."""
    from twolayer.experiment.lazy import check_spec_memory, resolve_runs, workers_for
    from twolayer.experiment.spec import load_spec_unresolved

    parsed, label, node = load_spec_unresolved(spec)
    memory = check_spec_memory(parsed, label, node, force=force,
                               workers=workers_for(parsed, executor, jobs))
    return parsed, resolve_runs(parsed, label, node), memory


def _memory_line(check: Any) -> str:
    from twolayer.experiment.estimate import format_bytes

    avail = "unknown" if check.available is None else format_bytes(check.available)
    return (f"memory: about {format_bytes(check.estimate.nbytes)} of arrays per run (largest: "
            f"{check.estimate.dominant}); {format_bytes(check.needed)} with the process"
            f"{f' x {check.workers} workers' if check.workers > 1 else ''}, {avail} available")


def _confirm_size(total: int, yes: bool) -> None:
    """Past TWOLAYER_CONFIRM_RUNS runs: ask on a terminal, refuse (exit 2) without one, unless
    --yes."""
    from twolayer.experiment.estimate import confirm_threshold

    try:
        limit = confirm_threshold()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if yes or total <= limit:
        return
    text = f"{total:,} runs (more than TWOLAYER_CONFIRM_RUNS = {limit:,})"
    if not sys.stdin.isatty():
        click.echo(f"error: {text}; give --yes to run them (no terminal to ask)", err=True)
        sys.exit(2)
    if not click.confirm(f"Run {text}?", default=False, err=True):
        click.echo("Nothing run.", err=True)
        sys.exit(2)


def _interrupted(progress: _RichProgress, store: Path) -> NoReturn:
    """Ctrl-C during a sweep: say what is stored and how to go on (exit 130, as shells do)."""
    if progress.total is None:
        click.echo("Interrupted before any run started; run the same command again to start.",
                   err=True)
    else:
        click.echo(
            f"Interrupted: {progress.stored} of {progress.total} runs finished and stored in "
            f"{store}; run the same command again to resume.",
            err=True,
        )
    sys.exit(130)


def _echo_json(data: Any) -> None:
    """One JSON document on stdout (keys sorted, so that the output of two versions diffs)."""
    import json

    click.echo(json.dumps(data, indent=2, sort_keys=True))


def plan_json(plan: Any) -> dict[str, Any]:
    """``twolayer run --dry-run --json``: the plan of :func:`twolayer.experiment.runner.plan_spec`
    as plain data. Keys (stable, docs/cli.md): store, sweep, axes (sweep key -> number of
    values), seeds, total, stored (status -> runs), todo, students, stale (stored runs
    computed with other versions)."""
    return {
        "store": str(plan.store), "sweep": plan.sweep, "axes": dict(plan.axes),
        "seeds": plan.seeds, "total": plan.total, "stored": dict(plan.stored),
        "todo": plan.todo, "students": plan.students,
        "stale": sum(n for _, n, _ in getattr(plan, "stale", [])),
    }


def _print_plan(plan: Any) -> None:
    console = _plain_console()
    axes = " x ".join(f"{k} ({n})" for k, n in plan.axes.items()) or "one point"
    console.print(f"{plan.sweep}: {axes}, {plan.seeds} seed(s): {plan.total} runs")
    stored = ", ".join(f"{n} {s}" for s, n in sorted(plan.stored.items())) or "none"
    console.print(f"in {plan.store}: {stored}")
    if plan.students is None:  # a lazy sweep (twolayer.experiment.lazy): counts only
        console.print(f"would run up to {plan.todo} (a sweep too large to list: runs and "
                      "trained students are counted from the grid, not resolved)")
    else:
        console.print(
            f"would run {plan.todo}, training {plan.students} student(s) "
            "(runs differing only in readout, evaluation or measurements share one)"
        )
    if plan.stale:
        from twolayer.experiment.provenance import environment, stale_line

        stored = sum(n for s, n in plan.stored.items() if s in ("done", "diverged"))
        console.print(f"note: {stale_line(plan.stale, stored, environment())}")


def _plain_console() -> Any:
    """A console for text from runs and stores: printed as is (no rich markup, which would eat
    a ``[name]`` in an error message) and not hard-wrapped at 80 columns when piped to a log."""
    from rich.console import Console

    return Console(highlight=False, markup=False, soft_wrap=True)


def _report(result: Any, counts: dict[str, int], progress: _RichProgress) -> None:
    from rich.table import Table

    console = _plain_console()
    if not getattr(result, "executed", result.records):
        console.print(
            f"{result.sweep}: nothing to do, all {result.total} runs are in {result.store}"
        )
        return
    done = ", ".join(
        f"{n} {'lost' if s == 'running' else s}" for s, n in sorted(counts.items())
    )
    skipped = f" ({result.skipped} already stored)" if result.skipped else ""
    executed = getattr(result, "executed", len(result.records))  # a lazy sweep keeps counts
    console.print(f"{result.sweep}: {executed} runs: {done}{skipped} -> {result.store}")
    if len(result.records) == 1 and result.total == 1 and result.records[0].status == "done":
        record = result.records[0]
        table = Table(title=f"run {record.run_id}", show_edge=False)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in sorted(record.scalars.items()):
            table.add_row(name, f"{value:.6g}")
        console.print(table)
    elif progress.best_name and math.isfinite(progress.best):
        console.print(f"best {progress.best_name}: {progress.best:.6g}")
    bad = [r for r in result.records if r.status in ("failed", "diverged")]
    for record in bad[:5]:
        first = (record.error or "").strip().splitlines()[0] if record.error else ""
        console.print(f"  {record.status} {record.run_id}: {first}")
    if len(bad) > 5:
        console.print(f"  ... and {len(bad) - 5} more")
    if any(r.status == "failed" for r in bad):
        console.print(f"tracebacks: twolayer status {result.store} --tracebacks")
    lost = result.lost()
    if lost:
        from twolayer.experiment.executors import LOST

        first = (lost[0].error or "").strip().splitlines()[0] if lost[0].error else ""
        console.print(
            f"{len(lost)} runs lost with their workers ({first.removeprefix(LOST + ': ')}); "
            "run the same command again to run them"
        )


# ---------------------------------------------------------------------------------------------
# status


@main.command()
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sweep", help="Only this sweep.")
@click.option("--tracebacks", is_flag=True, help="Print the full traceback of each failed run.")
@click.option(
    "--all-failures", is_flag=True,
    help=f"List every failed or diverged run (default: the first {MAX_FAILURES_SHOWN}).",
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print one JSON object: counts per sweep and every failed or diverged run "
    "(keys in docs/cli.md).",
)
@_handle_errors
def status(store: Path, sweep: str | None, tracebacks: bool, all_failures: bool,
           as_json: bool) -> None:
    """Counts of runs by status per sweep, and the failed and diverged runs with their errors
    (the first few; all of them with --all-failures or --tracebacks).

    \b
    Examples:
      twolayer status sweep_eta.sqlite
      twolayer status results.sqlite --sweep sweep_eta --tracebacks
      twolayer status sweep_eta.sqlite --json    # for scripts
    """
    from rich.table import Table

    from twolayer.experiment.store import Store

    console = _plain_console()
    with Store(store, create=False) as st:
        sweeps = st.sweeps()
        if sweep is not None and sweep not in sweeps:
            known = ", ".join(sweeps) or "none"
            raise StoreError(f"no sweep {sweep!r} in {store}; sweeps: {known}")
        holder = st.lock_holder()
        if as_json:
            _echo_json(status_json(st, store, [sweep] if sweep else sweeps, holder, sweep,
                                   tracebacks))
            return
        table = Table(title=str(store), show_edge=False)
        table.add_column("sweep")
        for col in ("runs", "done", "diverged", "failed", "running"):
            table.add_column(col, justify="right")
        for name in [sweep] if sweep else sweeps:
            counts = st.counts(name)
            running = counts.get("running", 0)
            live = holder is not None and holder["sweep"] == name
            label = f"{running} (live)" if live and running else f"{running}"
            if running and not live:
                label += " (interrupted)"
            table.add_row(
                name,
                str(sum(counts.values())),
                *(str(counts.get(s, 0)) for s in ("done", "diverged", "failed")),
                label,
            )
        console.print(table)
        if holder is not None:
            console.print(
                f"being written by process {holder['pid']} on {holder['host']} "
                f"(sweep {holder['sweep']!r}, since {holder['since']})"
            )
        failures = st.failures(sweep)
        shown = failures if tracebacks or all_failures else failures[:MAX_FAILURES_SHOWN]
        for f in shown:
            step = f" at step {f['diverged_step']}" if f["diverged_step"] is not None else ""
            where = ", ".join([f"seed {f['seed']}", *(f"{k}={v!r}" for k, v in f["point"].items())])
            console.print(f"{f['status']} {f['id']} ({where}){step}: {f['error']}")
            if tracebacks and f["status"] == "failed":
                console.print(st.traceback(f["id"]) or "(no traceback)")
        if len(shown) < len(failures):
            console.print(f"... and {len(failures) - len(shown)} more (--all-failures lists them)")
        _print_stale(console, st, sweep)


def _print_stale(console: Any, st: Any, sweep: str | None) -> None:
    """The one line of ``status`` on runs computed with other versions than this environment."""
    from twolayer.experiment.provenance import environment, stale_groups, stale_line

    counts = st.provenance_counts(sweep)
    current = environment()
    line = stale_line(stale_groups(counts, current), sum(n for _, n in counts), current,
                      "done and diverged runs")
    if line:
        console.print(f"note: {line} (`twolayer run SPEC --rerun-stale` recomputes them, "
                      "`twolayer verify` compares a sample)")


def status_json(st: Any, store: Path, sweeps: list[str], holder: dict[str, Any] | None,
                sweep: str | None, tracebacks: bool) -> dict[str, Any]:
    """``twolayer status --json``. Keys (stable, docs/cli.md): store; writer (null, or host,
    pid, sweep, since of the live process writing the store); sweeps (a list of name, runs,
    done, diverged, failed, running, live); failures (every failed or diverged run: id, status,
    error, diverged_step, seed, point; traceback with --tracebacks); versions (runs, provenance,
    stale: per provenance of the done and diverged runs, docs/engine.md "Provenance")."""
    from twolayer.experiment.provenance import environment, stale_fields

    rows = []
    for name in sweeps:
        counts = st.counts(name)
        rows.append({
            "name": name, "runs": sum(counts.values()),
            **{s: counts.get(s, 0) for s in ("done", "diverged", "failed", "running")},
            "live": holder is not None and holder["sweep"] == name,
        })
    failures = []
    for f in st.failures(sweep):
        row = {k: f[k] for k in ("id", "status", "error", "diverged_step", "seed", "point")}
        if tracebacks:
            row["traceback"] = st.traceback(f["id"])
        failures.append(row)
    current = environment()
    versions = [
        {"runs": n, "provenance": p, "stale": stale_fields(p, current)}
        for p, n in st.provenance_counts(sweep)
    ]
    return {"store": str(store), "writer": holder, "sweeps": rows, "failures": failures,
            "versions": versions}


# ---------------------------------------------------------------------------------------------
# verify


@main.command()
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--sample", "-k", type=click.IntRange(min=1), default=5, show_default=True,
    help="Done runs to recompute, drawn at random.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that draw.")
@click.option("--sweep", help="Draw from the runs of this sweep only.")
@click.option(
    "--rtol", type=click.FloatRange(min=0), help="Relative tolerance (default 1e-6 for float64 "
    "runs, 1e-3 for float32).",
)
@click.option(
    "--atol", type=click.FloatRange(min=0), help="Absolute tolerance (default 1e-9 for "
    "float64 runs, 1e-6 for float32).",
)
@_handle_errors
def verify(
    store: Path, sample: int, seed: int, sweep: str | None, rtol: float | None,
    atol: float | None,
) -> None:
    """Recompute a random sample of the done runs of STORE in this process (nothing is
    written) and print, per metric, the largest absolute and relative difference from the
    stored values. Exit code 1 if a difference exceeds |new - stored| <= atol + rtol |stored|,
    or a run no longer finishes.

    Runs are deterministic given their config and seed: in the environment that computed them
    the differences are 0 or rounding; a change of code or library shows here
    (docs/engine.md, "Verify").

    \b
    Examples:
      twolayer verify sweep_eta.sqlite
      twolayer verify results.sqlite --sample 20 --seed 1 --sweep sweep_eta
    """
    from rich.table import Table

    from twolayer.experiment.provenance import environment, stale_line
    from twolayer.experiment.verify import verify_store

    console = _plain_console()
    report = verify_store(store, sample=sample, seed=seed, sweep=sweep, rtol=rtol, atol=atol)
    if not report.runs:
        console.print(f"{store}: no done runs to verify")
        return
    line = stale_line(report.stale, len(report.runs), environment(), "verified runs")
    if line:
        console.print(f"note: {line}")
    tol = "; ".join(f"{d}: rtol {r:g}, atol {a:g}" for d, (r, a) in report.tolerance.items())
    table = Table(
        title=f"{len(report.runs)} of {report.done} done runs recomputed ({tol})",
        show_edge=False,
    )
    for col in ("metric", "runs", "max abs diff", "max rel diff", "over tol"):
        table.add_column(col, justify="left" if col == "metric" else "right", overflow="fold")
    for name, m in report.metrics.items():
        table.add_row(
            name, str(m.runs), f"{m.max_abs:.3g}", f"{m.max_rel:.3g}", str(m.exceeded)
        )
    console.print(table)
    for name, m in report.metrics.items():
        if m.exceeded:
            console.print(
                f"over tolerance: {name} in {m.exceeded} run(s), most in run {m.worst} "
                f"(max abs diff {m.max_abs:.3g}, max rel diff {m.max_rel:.3g})"
            )
    for problem in report.problems:
        console.print(f"problem: {problem}")
    if report.passed:
        console.print("verified: every difference within tolerance")
    else:
        bad = sum(1 for m in report.metrics.values() if m.exceeded)
        console.print(f"FAILED: {bad} metric(s) over tolerance, {len(report.problems)} problem(s)")
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# export


@main.command()
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option("--sweep", help="Only the runs of this sweep.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (default: the store's name with .csv/.parquet).",
)
@_handle_errors
def export(store: Path, fmt: str, sweep: str | None, output: Path | None) -> None:
    """Write the runs of STORE as a table: one row per run, the resolved spec flattened into
    dotted columns (teacher.d, train.steps[0].eta.c, ...), then the scalar metrics.

    \b
    Examples:
      twolayer export sweep_eta.sqlite
      twolayer export results.sqlite --sweep sweep_eta --format parquet -o eta.parquet
    """
    from twolayer.experiment.results import export as export_frame

    path = export_frame(store, output, format=fmt, sweep=sweep)  # type: ignore[arg-type]
    click.echo(f"wrote {path}")


# ---------------------------------------------------------------------------------------------
# recipes, reproduce, plot


@main.command()
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print a JSON list of name, title, paper (keys in docs/cli.md).",
)
def recipes(as_json: bool) -> None:
    """List the recipes: one spec per phenomenon of the literature.

    \b
    Examples:
      twolayer recipes
      twolayer recipes --json
    """
    from twolayer.recipes import RECIPES

    if as_json:
        _echo_json([{"name": name, "title": RECIPES.get(name).title,
                     "paper": RECIPES.get(name).paper} for name in RECIPES])
        return
    for name in RECIPES:
        recipe = RECIPES.get(name)
        click.echo(f"{name:30s} {recipe.title}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of a spec file, for an editor's completion and checking
    (docs/cli.md: VS Code's YAML extension).

    \b
    Example:
      twolayer schema > twolayer.schema.json
    """
    from twolayer.experiment.schema import spec_schema_json

    click.echo(spec_schema_json())


@main.command()
@click.argument("names", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Every recipe, one after the other.")
@click.option("--quick", is_flag=True, help="The small, fast version (what the tests assert).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("twolayer-out"),
    show_default=True,
    help="Parent folder of the outputs (OUT/NAME or OUT/NAME-quick).",
)
@click.option(
    "--executor", type=click.Choice(["serial", "local", "dask", "slurm"]), help="Engine executor."
)
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Workers (default: all cores).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--seeds",
    "seeds_from",
    type=click.IntRange(min=0),
    help="Fresh seeds: as many as the recipe has, numbered from this one (its own seeds set "
    "the tolerances; outputs go to OUT/NAME[-quick]-seedsN).",
)
@_handle_errors
def reproduce(
    names: tuple[str, ...],
    run_all: bool,
    quick: bool,
    out: Path,
    executor: str | None,
    jobs: int | None,
    quiet: bool,
    seeds_from: int | None,
) -> None:
    """Re-create recipes: run (or resume) the sweep, check the claims, draw the figures, and
    write claims.csv, summary.md and report.html into OUT/NAME[-quick]/.

    Exit code 1 if any claim fails or a recipe could not be checked.

    \b
    Examples:
      twolayer reproduce one-step-spike --quick
      twolayer reproduce --all --quick
      twolayer reproduce two-step --executor dask --out results/
      twolayer reproduce one-step-spike --quick --seeds 100   # on seeds 100, 101, ...
    """
    from rich.console import Console
    from rich.table import Table

    from twolayer.recipes import RECIPES
    from twolayer.recipes.reproduce import reproduce as reproduce_recipe

    if run_all == bool(names):
        raise click.UsageError("give recipe NAMES or --all (see `twolayer recipes`)")
    selected = RECIPES.names() if run_all else list(names)
    for name in selected:
        if name not in RECIPES:
            raise click.UsageError(RECIPES.unknown_message(name))
    console = Console()
    show = not quiet and sys.stdout.isatty()
    overview = []
    for name in selected:
        progress = _RichProgress(None, show)
        result = reproduce_recipe(
            name, quick=quick, out=out, executor=executor, jobs=jobs, progress=progress,
            seeds=seeds_from,
        )
        table = Table(title=f"{name} ({'quick' if quick else 'full'}, {result.seconds:.0f} s)")
        for column in ("claim", "kind", "measured", "expected", "tolerance", "pass"):
            table.add_column(column)
        for c in result.claims:
            verdict = "[green]pass" if c.passed else "[red]FAIL"
            table.add_row(c.id, c.kind, f"{c.measured:.4g}", c.expected, c.tolerance, verdict)
        console.print(table)
        for err in result.errors:
            console.print(err, style="red", markup=False)
        console.print(f"report: {result.out / 'report.html'}")
        overview.append((name, result))
    if len(overview) > 1:
        total = sum(r.seconds for _, r in overview)
        summary = Table(title=f"all recipes ({total:.0f} s)")
        for column in ("recipe", "claims passed", "seconds"):
            summary.add_column(column)
        for name, r in overview:
            passed = sum(c.passed for c in r.claims)
            colour = "green" if r.passed else "red"
            summary.add_row(name, f"[{colour}]{passed}/{len(r.claims)}", f"{r.seconds:.0f}")
        console.print(summary)
    if not all(r.passed for _, r in overview):
        sys.exit(1)


@main.command()
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sweep", help="Only this sweep.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the figures (default: STORE's name without suffix, plus _figures).",
)
@_handle_errors
def plot(store: Path, sweep: str | None, out: Path | None) -> None:
    """Draw the standard figures of STORE: errors, overlaps and outlier counts against the swept
    parameter (mean and standard error over seeds), the spectrum of W with the Marchenko-Pastur
    density, and training trajectories. PNG and PDF.

    \b
    Examples:
      twolayer plot sweep_eta.sqlite
      twolayer plot results.sqlite --sweep one-step-spike --out figures/
    """
    from twolayer.experiment.store import check_store_file
    from twolayer.plots.standard import plot_store

    check_store_file(store)
    folder = out or store.with_name(store.stem + "_figures")
    written = plot_store(store, folder, sweep=sweep)
    if not written:
        click.echo("nothing to plot (no finished runs with a swept numeric parameter, spectra or "
                   "trajectories)")
    for path in written:
        click.echo(f"wrote {path} (+ .pdf)")


if __name__ == "__main__":  # pragma: no cover
    main()
