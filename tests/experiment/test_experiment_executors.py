"""Executors: BLAS threads per run, a local pool that survives dead workers, workers that die
with their driver, and executors that cannot start failing before any run is marked."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from engine_helpers import temporary_measurement

from twolayer import RunConfig
from twolayer.cli import main
from twolayer.experiment import executors
from twolayer.experiment.executors import LOST, ExecutorError, LocalExecutor
from twolayer.experiment.runner import run_spec
from twolayer.experiment.store import Store
from twolayer.threads import (
    SMALL_RUN,
    blas_threads_for_run,
    current_blas_threads,
    engine_threads,
    run_size,
    run_threads,
    with_run_threads,
)

# -- BLAS threads ------------------------------------------------------------------------------


def _config(tiny: dict[str, Any], **sizes: int) -> RunConfig:
    sections = {k: v for k, v in tiny.items() if k != "name"}
    sections["teacher"] = {**sections["teacher"], "d": sizes.get("d", 8)}
    sections["student"] = {**sections["student"], "N": sizes.get("N", 16)}
    sections["train"] = {**sections["train"], "n": sizes.get("n", 32)}
    if "readout_n" in sizes:
        sections["readout"] = {**sections["readout"], "n": sizes["readout_n"]}
    return RunConfig.model_validate(sections)


def test_run_size_is_the_largest_matrix_dimension(tiny):
    assert run_size(_config(tiny)) == 32
    assert run_size(_config(tiny, d=3000)) == 3000
    assert run_size(_config(tiny, N=1500)) == 1500
    assert run_size(_config(tiny, readout_n=5000)) == 5000
    gd = RunConfig.model_validate({**_config(tiny).model_dump(), "train": {
        "protocol": "gd", "n": 1200, "steps": 30, "eta": 0.5}})
    assert run_size(gd) == 1200
    spiked = RunConfig.model_validate({**_config(tiny).model_dump(), "train": {
        "protocol": "spiked", "r": 1.0, "c_w": 1.0, "gamma": 0.5}, "readout": None})
    assert run_size(spiked) == 16


def test_blas_threads_policy(tiny):
    small, large = _config(tiny), _config(tiny, d=SMALL_RUN, N=SMALL_RUN)
    assert blas_threads_for_run(small, cores=16) == 1
    assert blas_threads_for_run(_config(tiny, n=SMALL_RUN - 1), cores=16) == 1
    # a large run: every core it may use
    assert blas_threads_for_run(large, cores=16) == 16
    assert blas_threads_for_run(large, cores=2) == 2
    # an explicit count (executor.threads_per_worker) is always honoured
    assert blas_threads_for_run(small, cores=16, explicit=3) == 3
    assert blas_threads_for_run(large, cores=16, explicit=4) == 4
    assert 1 <= blas_threads_for_run(large) <= os.cpu_count()  # this machine, now


def test_run_threads_lowers_for_small_runs_and_keeps_engine_limits(tiny):
    small, large = _config(tiny), _config(tiny, d=SMALL_RUN)
    before = current_blas_threads()
    with run_threads(small):
        assert current_blas_threads() == 1
    assert current_blas_threads() == before
    with run_threads(large):  # the idle cores, never more than now
        assert 1 <= current_blas_threads() <= before
    with engine_threads(2):  # an explicit limit of the engine is kept
        with run_threads(small):
            assert current_blas_threads() == 2
    assert current_blas_threads() == before


def test_with_run_threads_decorates_a_function_of_a_config(tiny):
    @with_run_threads
    def threads_inside(config: RunConfig, extra: int = 0) -> int | None:
        return current_blas_threads()

    before = current_blas_threads()
    assert threads_inside(_config(tiny), extra=1) == 1
    assert threads_inside.__name__ == "threads_inside"
    assert current_blas_threads() == before


def _threads_measurement(ctx: Any) -> dict[str, float]:
    return {"n": float(current_blas_threads() or 0)}


@pytest.fixture
def threads_measure() -> Iterator[str]:
    with temporary_measurement(
        "test_blas_threads", _threads_measurement, "BLAS threads now"
    ) as name:
        yield name


@pytest.mark.parametrize("threads", [None, 2])
def test_serial_runs_use_the_policy_or_threads_per_worker(tmp_path, tiny, threads_measure,
                                                          threads):
    spec = {**tiny, "measure": [threads_measure], "seeds": 2,
            "executor": {"kind": "serial", "threads_per_worker": threads}}
    result = run_spec(spec, store=tmp_path / "s.sqlite")
    assert result.counts() == {"done": 2}
    want = 1 if threads is None else 2
    assert [r.scalars[f"{threads_measure}.n"] for r in result.records] == [want, want]


# -- dead local workers ------------------------------------------------------------------------


def _killer(ctx: Any, marker: str = "", always: bool = False) -> dict[str, float]:
    """Test measurement: SIGKILLs its own process, the first time only (a marker file, seen by
    every process) or always."""
    if always or not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"ok": 1.0}


@pytest.fixture
def killer() -> Iterator[str]:
    with temporary_measurement("test_killer", _killer, "kills its worker") as name:
        yield name


def _store_rows(path: Path) -> dict[str, tuple[str, str | None]]:
    con = sqlite3.connect(path)
    try:
        return {i: (s, e) for i, s, e in con.execute("SELECT id, status, error FROM runs")}
    finally:
        con.close()


def _kill_spec(tiny: dict[str, Any], killer: str, tmp_path: Path, always: bool) -> dict:
    return {
        **tiny,
        "seeds": 3,
        "sweep": {"measure": [[], [{"name": killer, "marker": str(tmp_path / "killed"),
                                    "always": always}]]},
        "executor": {"kind": "local", "jobs": 2},
    }


def test_a_worker_killed_once_is_replaced_and_its_runs_rerun(tmp_path, tiny, killer):
    spec = _kill_spec(tiny, killer, tmp_path, always=False)
    made: list[LocalExecutor] = []

    def factory(kind: str, **kw: Any) -> Any:
        made.append(executors.make_executor(kind, **kw))
        return made[-1]

    result = run_spec(spec, store=tmp_path / "s.sqlite", executor_factory=factory)
    assert (tmp_path / "killed").exists()
    assert made[0].restarts == 1
    assert result.counts() == {"done": 6}
    assert {s for s, _ in _store_rows(tmp_path / "s.sqlite").values()} == {"done"}


def test_a_run_that_kills_its_worker_twice_is_failed_with_that_cause(tmp_path, tiny, killer):
    spec = _kill_spec(tiny, killer, tmp_path, always=True)
    result = run_spec(spec, store=tmp_path / "s.sqlite")
    assert result.counts() == {"done": 3, "failed": 3}
    rows = _store_rows(tmp_path / "s.sqlite")
    failed = [e for s, e in rows.values() if s == "failed"]
    assert len(failed) == 3
    assert all("worker died twice" in e and "SIGKILL" in e for e in failed), failed
    # the failed ones are results: a plain rerun has nothing to do
    assert run_spec(spec, store=tmp_path / "s.sqlite").records == []


def _init_and_die(*args: Any) -> None:
    os._exit(3)


def test_runs_lost_to_a_pool_that_keeps_breaking_are_rerun_by_a_plain_run(
    tmp_path, tiny, monkeypatch
):
    spec = {**tiny, "seeds": 3, "executor": {"kind": "local", "jobs": 2}}
    monkeypatch.setattr(executors, "_init_worker", _init_and_die)
    result = run_spec(spec, store=tmp_path / "s.sqlite")
    assert result.counts() == {"running": 3} and len(result.lost()) == 3
    rows = _store_rows(tmp_path / "s.sqlite")
    assert all(s == "running" and e.startswith(LOST) for s, e in rows.values()), rows
    monkeypatch.undo()
    again = run_spec(spec, store=tmp_path / "s.sqlite")  # no --retry-failed
    assert again.counts() == {"done": 3}


def test_cli_exit_code_and_message_for_lost_runs(tmp_path, tiny, monkeypatch):
    import yaml

    spec = {**tiny, "seeds": 2, "executor": {"kind": "local", "jobs": 2}}
    path = tmp_path / "lost.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(executors, "_init_worker", _init_and_die)
    out = CliRunner().invoke(main, ["run", str(path), "--store", str(tmp_path / "s.sqlite")])
    assert out.exit_code == 1, out.output
    assert "2 runs lost with their workers" in out.output
    assert "run the same command again" in out.output


# -- workers die with their driver -------------------------------------------------------------

_DRIVER = """
import sys, time
from twolayer.experiment.runner import run_spec
from twolayer.measure import MEASUREMENTS
from twolayer.measure.registry import Measurement

def slow(ctx):
    time.sleep(60)
    return {"ok": 1.0}

MEASUREMENTS.add("test_slow", Measurement("test_slow", slow, False, "sleeps"))
spec = {SPEC}
run_spec(spec, store=sys.argv[1], executor="local", jobs=2)
"""


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out.update(int(x) for x in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_their_driver_is_killed(tmp_path, tiny):
    spec = {**tiny, "seeds": 4, "measure": ["test_slow"]}
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(_DRIVER).replace("{SPEC}", repr(spec)))
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path / "s.sqlite")])
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended early"
            workers = {p for p in _children(driver.pid) if _alive(p)}
            time.sleep(0.2)
        assert len(workers) >= 2, workers
        time.sleep(1.0)  # the workers are computing (sleeping in the measurement)
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "workers outlived their driver"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


# -- executors that cannot start ---------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_run_marked(path: Path) -> None:
    if path.exists():
        with Store(path, create=False) as st:
            assert "running" not in st.statuses().values()


@pytest.mark.slow
def test_unreachable_dask_scheduler_is_one_clear_error_and_marks_nothing(
    tmp_path, tiny, monkeypatch
):
    address = f"tcp://127.0.0.1:{_closed_port()}"
    spec = {**tiny, "seeds": 2, "executor": {"kind": "dask", "address": address}}
    monkeypatch.setenv("TWOLAYER_DASK_TIMEOUT", "2")
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match=f"cannot reach the Dask scheduler at {address}"):
        run_spec(spec, store=tmp_path / "s.sqlite")
    assert time.monotonic() - t0 < 20
    _no_run_marked(tmp_path / "s.sqlite")
    # and after a first run stored some runs, a failed start marks none of the others
    run_spec({**spec, "executor": {"kind": "serial"}, "seeds": 1}, store=tmp_path / "s.sqlite")
    with pytest.raises(ExecutorError):
        run_spec(spec, store=tmp_path / "s.sqlite")
    _no_run_marked(tmp_path / "s.sqlite")


def test_missing_dask_is_one_clear_error_and_marks_nothing(tmp_path, tiny, monkeypatch):
    import yaml

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import raises ImportError
    spec = {**tiny, "seeds": 2, "executor": {"kind": "dask"}}
    with pytest.raises(ExecutorError, match=r"needs dask.distributed.*twolayer\[dask\]"):
        run_spec(spec, store=tmp_path / "s.sqlite")
    _no_run_marked(tmp_path / "s.sqlite")
    path = tmp_path / "dask.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = CliRunner().invoke(main, ["run", str(path), "--store", str(tmp_path / "c.sqlite")])
    assert out.exit_code == 1
    assert out.output.startswith("error: the dask executor needs dask.distributed")
    assert "Traceback" not in out.output and len(out.output.strip().splitlines()) == 1
    _no_run_marked(tmp_path / "c.sqlite")
