"""The driver and executors: failures and divergences are stored and the sweep goes on;
re-running skips what is done; a SIGKILLed sweep resumes without duplicates or losses; shared
stages and every executor (serial, local processes, a real Dask LocalCluster) give the numbers
of independent runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from twolayer.experiment import (
    DaskExecutor,
    Store,
    load,
    load_spec_with_runs,
    plan_groups,
    run_spec,
    select_todo,
)
from twolayer.pipeline import run_once

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _metrics(path: Path) -> dict[str, dict[str, float]]:
    """run id -> metrics, from the store."""
    frame = load(path)
    assert "readout.test_mse" in frame
    metric_cols = [c for c in frame.columns if c.startswith(("readout.", "network.", "random_"))]
    metric_cols = [c for c in metric_cols if frame[c].dtype.kind == "f"]
    return {row["id"]: {c: row[c] for c in metric_cols} for _, row in frame.iterrows()}


def test_failed_run_is_stored_with_traceback_and_others_finish(tmp_path, tiny, boom):
    tiny["seeds"] = 2
    tiny["measure"] = [{"name": boom, "fail": False}]
    tiny["sweep"] = {"measure[0].fail": [False, True]}
    path = tmp_path / "s.sqlite"
    result = run_spec(tiny, store=path, executor="serial")
    assert result.counts() == {"done": 2, "failed": 2}
    with Store(path, create=False) as st:
        rows = st.con.execute("SELECT status, error, traceback FROM runs ORDER BY rowid").fetchall()
        failures = st.failures()
    for status, error, tb in rows:
        if status == "failed":
            assert error == "RuntimeError: boom: this run was asked to fail"
            assert "Traceback (most recent call last)" in tb and "_boom" in tb
        else:
            assert error is None and tb is None
    assert [f["error"] for f in failures] == ["RuntimeError: boom: this run was asked to fail"] * 2
    frame = load(path)
    assert frame.loc[frame["status"] == "done", f"{boom}.ok"].tolist() == [1.0, 1.0]
    # a second run skips everything; --retry-failed runs exactly the failed ones again
    assert run_spec(tiny, store=path, executor="serial").records == []
    again = run_spec(tiny, store=path, executor="serial", retry_failed=True)
    assert again.counts() == {"failed": 2}
    with Store(path, create=False) as st:
        attempts = dict(st.con.execute("SELECT status, MAX(attempts) FROM runs GROUP BY status"))
    assert attempts == {"done": 1, "failed": 2}


def test_diverging_run_is_stored_as_diverged_with_its_step(tmp_path, tiny):
    tiny["train"] = {"protocol": "gd", "n": 32, "steps": 30, "eta": 0.5}
    tiny["sweep"] = {"train.eta.c": [0.5, 1.0e6]}
    path = tmp_path / "s.sqlite"
    result = run_spec(tiny, store=path, executor="serial")
    assert result.counts() == {"done": 1, "diverged": 1}
    frame = load(path).set_index("train.eta.c")
    step = frame.loc[1.0e6, "diverged_step"]
    assert frame.loc[1.0e6, "status"] == "diverged"
    assert 0 <= step < 30
    assert frame.loc[1.0e6, "error"] == f"training diverged at step {int(step)}: non-finite loss"
    assert frame.loc[0.5, "status"] == "done" and np.isnan(frame.loc[0.5, "diverged_step"])
    # diverged is a result, not a failure: it is not run again, even with retry_failed
    assert run_spec(tiny, store=path, executor="serial", retry_failed=True).records == []


def test_shared_stages_give_the_numbers_of_independent_runs(tmp_path, tiny):
    tiny["seeds"] = 2
    tiny["sweep"] = {"readout.n": [16, 48], "evaluate.n_test": [100, 300]}
    _, runs = load_spec_with_runs(tiny)
    groups = plan_groups(runs, workers=1)
    assert sorted(len(g) for g in groups) == [4, 4]  # one trained student per seed
    path = tmp_path / "s.sqlite"
    result = run_spec(tiny, store=path, executor="serial")
    assert sum(r.shared for r in result.records) == 6  # all but the first run of each seed
    stored = _metrics(path)
    for run in runs:
        alone = run_once(run.config, run.seed)  # no cache
        for name, value in stored[run.id].items():
            # the shared runs grow one Gram matrix across readout sizes (the same products
            # summed in another order than the direct product of a run alone): equal to
            # rounding, not bit for bit
            assert value == pytest.approx(alone.scalars[name], rel=1e-12, abs=1e-15), (
                run.point, name)


def test_plan_groups_splits_for_idle_workers(tiny):
    tiny["sweep"] = {"readout.n": [8, 16, 24, 32, 40]}
    _, runs = load_spec_with_runs(tiny)
    assert [len(g) for g in plan_groups(runs, 1)] == [5]
    split = plan_groups(runs, 2)
    assert sorted(len(g) for g in split) == [2, 3]
    assert sorted(r.id for g in split for r in g) == sorted(r.id for r in runs)


def test_select_todo():
    class R:
        def __init__(self, i: str) -> None:
            self.id = i

    runs = [R(i) for i in ("a", "b", "c", "d", "e", "a")]
    statuses = {"a": "done", "b": "failed", "c": "diverged", "d": "running"}
    assert [r.id for r in select_todo(runs, statuses)] == ["d", "e"]
    assert [r.id for r in select_todo(runs, statuses, retry_failed=True)] == ["b", "d", "e"]


def _executor_spec(tiny):
    tiny["seeds"] = 2
    tiny["sweep"] = {"student.N": [8, 16], "readout.n": [16, 32]}
    return tiny


def test_local_processes_equal_serial(tmp_path, tiny):
    spec = _executor_spec(tiny)
    serial = run_spec(spec, store=tmp_path / "serial.sqlite", executor="serial")
    local = run_spec(spec, store=tmp_path / "local.sqlite", executor="local", jobs=2)
    assert local.executor == "local" and local.counts() == {"done": 8}
    assert {r.pid for r in local.records} != {os.getpid()}
    assert _metrics(tmp_path / "local.sqlite") == _metrics(tmp_path / "serial.sqlite")
    assert serial.counts() == {"done": 8}


def test_dask_local_cluster_equals_serial(tmp_path, tiny):
    pytest.importorskip("dask.distributed")
    spec = _executor_spec(tiny)
    run_spec(spec, store=tmp_path / "serial.sqlite", executor="serial")
    made = []

    def factory(kind, **kwargs):
        assert kind == "dask"
        ex = DaskExecutor(jobs=2, processes=False)
        made.append(ex)
        return ex

    result = run_spec(
        spec, store=tmp_path / "dask.sqlite", executor="dask", executor_factory=factory
    )
    assert result.executor == "dask" and made[0].workers == 2
    assert result.counts() == {"done": 8}
    assert _metrics(tmp_path / "dask.sqlite") == _metrics(tmp_path / "serial.sqlite")


def test_sigkill_half_way_then_rerun_finishes_without_duplicates(tmp_path, tiny):
    tiny["sweep"] = {"student.N": list(range(4, 34))}
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump(tiny))
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twolayer.cli",
            "run",
            str(spec_path),
            "--store",
            str(store),
            "--executor",
            "serial",
            "--quiet",
        ],
        env={**os.environ, "PYTHONPATH": SRC},
        start_new_session=True,
        stderr=subprocess.PIPE,
    )
    done_before: dict[str, str] = {}
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            if store.exists():
                con = sqlite3.connect(store)
                rows = con.execute("SELECT id, finished FROM runs WHERE status = 'done'")
                done_before = dict(rows.fetchall())
                con.close()
                if len(done_before) >= 5:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(store)
    statuses = dict(con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"))
    done_at_kill = dict(con.execute("SELECT id, finished FROM runs WHERE status = 'done'"))
    con.close()
    assert statuses.get("running", 0) > 0 and set(statuses) <= {"done", "running"}
    assert set(done_before) <= set(done_at_kill)

    result = run_spec(spec_path, store=store, executor="serial")
    assert result.skipped == len(done_at_kill)
    assert len(result.records) == 30 - len(done_at_kill)
    con = sqlite3.connect(store)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM runs").fetchone() == (30, 30)
    assert con.execute("SELECT COUNT(*) FROM sweep_runs").fetchone()[0] == 30
    assert dict(con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")) == {"done": 30}
    # runs finished before the kill were kept, not recomputed
    after = dict(con.execute("SELECT id, finished FROM runs"))
    assert all(after[i] == t for i, t in done_at_kill.items())
    n_metrics = con.execute("SELECT COUNT(DISTINCT run_id) FROM metrics").fetchone()[0]
    con.close()
    assert n_metrics == 30


def test_fixed_draws_group_every_seed_and_split_between_seeds(tiny):
    """With teacher, init and train fixed across seeds, the runs of all seeds share one trained
    student: one group, sorted by seed then readout size (each seed's readout pool grows), and
    split between seeds when there are more workers than groups."""
    tiny["seeds"] = 4
    tiny["draws"] = {"fixed": ["teacher", "init", "train"]}
    tiny["sweep"] = {"readout.n": [48, 16, 32]}
    _, runs = load_spec_with_runs(tiny)
    (group,) = plan_groups(runs, workers=1)
    order = [(r.seed, r.config.readout.n) for r in group]
    assert order == sorted(order) and len(order) == 12
    halves = plan_groups(runs, workers=2)
    assert sorted(len(g) for g in halves) == [6, 6]
    assert not {r.seed for r in halves[0]} & {r.seed for r in halves[1]}
