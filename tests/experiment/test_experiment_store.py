"""The store: refuses foreign files without touching them, WAL mode, one writer at a time,
exact round trip of metrics, arrays and trajectories, and load/export as tables."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twolayer.experiment import (
    Record,
    Store,
    StoreBusyError,
    StoreError,
    export,
    load,
    load_arrays,
    load_spec_with_runs,
    load_trajectory,
    run_spec,
)
from twolayer.experiment.store import APPLICATION_ID

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _fingerprint(path: Path) -> tuple[str, int, list[str]]:
    return (
        hashlib.sha256(path.read_bytes()).hexdigest(),
        path.stat().st_mtime_ns,
        sorted(os.listdir(path.parent)),
    )


def _foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id TEXT, status TEXT)")
    con.execute("INSERT INTO runs VALUES ('x', 'done')")
    con.commit()
    con.close()


@pytest.mark.parametrize("kind", ["text", "empty", "foreign_sqlite", "truncated_sqlite"])
def test_non_store_file_is_refused_and_untouched(tmp_path, tiny, kind):
    path = tmp_path / "results.sqlite"
    if kind == "text":
        path.write_text("name,value\na,1\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign_sqlite":
        _foreign_sqlite(path)
    else:
        path.write_bytes(b"SQLite format 3\x00" + b"\x01" * 20)
    before = _fingerprint(path)
    with pytest.raises(StoreError, match="not a twolayer store"):
        run_spec(tiny, store=path, executor="serial")
    with pytest.raises(StoreError, match="not a twolayer store"):
        load(path)
    assert _fingerprint(path) == before


def test_missing_store_is_an_error_for_readers(tmp_path):
    with pytest.raises(StoreError, match="no store"):
        load(tmp_path / "nothing.sqlite")
    assert not (tmp_path / "nothing.sqlite").exists()


def test_new_store_is_wal_and_marked(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert dict(con.execute("SELECT key, value FROM meta"))["application"] == "twolayer"
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_lock_refuses_a_second_writer_and_takes_over_a_dead_one(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as first:
        first.acquire("a")
        with Store(path) as second, pytest.raises(StoreBusyError, match="is in use: sweep 'a'"):
            second.acquire("b")
    # the lock of a dead process (killed without cleanup) is taken over
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with Store(path) as st:
        st.acquire("x")
        st.con.execute("UPDATE lock SET pid = ?", (int(dead.stdout),))
        st._token = None  # forget it, as a killed driver would
    with Store(path) as st:
        assert st.lock_holder() is None
        st.acquire("y")
        assert st.lock_holder()["sweep"] == "y"


def test_record_round_trip_is_exact(tmp_path, tiny):
    _, (run,) = load_spec_with_runs(tiny)
    path = tmp_path / "s.sqlite"
    arrays = {
        "f64": np.linspace(0, 1, 7).reshape(7, 1),
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i8": np.array([-1, 2, 3], dtype=np.int8),
        "c128": np.array([1 + 2j]),
    }
    record = Record(
        run.id,
        "done",
        scalars={"a": 1.5, "b": float("nan"), "c": float("inf")},
        arrays=arrays,
        trajectory=[{"step": 0, "loss": 2.0}, {"step": 10, "loss": 1.0}],
        timings={"train": 0.1},
        started=time.time(),
        finished=time.time() + 1,
    )
    with Store(path) as st:
        st.register("tiny", {}, [(run.id, run.config_json, run.seed, {})], [run.id])
        st.write(record)
    back = load_arrays(path, run.id)
    assert set(back) == set(arrays)
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        np.testing.assert_array_equal(back[name], array)
    frame = load(path)
    assert frame.loc[0, "a"] == 1.5 and np.isnan(frame.loc[0, "b"]) and frame.loc[0, "c"] == np.inf
    assert frame.loc[0, "teacher.d"] == 8 and frame.loc[0, "train.steps[0].eta.alpha"] == 0.5
    traj = load_trajectory(path, run.id)
    assert list(traj["loss"]) == [2.0, 1.0]
    with pytest.raises(StoreError, match="no run"):
        load_arrays(path, "nope")


def test_load_and_export_tables(tmp_path, tiny):
    tiny["seeds"] = 2
    tiny["sweep"] = {"readout.n": [16, 32]}
    path = tmp_path / "s.sqlite"
    run_spec(tiny, store=path, executor="serial")
    frame = load(path)
    assert len(frame) == 4 and set(frame["status"]) == {"done"}
    assert sorted(frame["readout.n"]) == [16, 16, 32, 32]
    assert frame["readout.test_mse"].notna().all()
    assert load(path, sweep="tiny").shape == frame.shape
    with pytest.raises(StoreError, match="no sweep 'other'"):
        load(path, sweep="other")
    csv = export(path, format="csv")
    assert csv == tmp_path / "s.csv"
    from_csv = pd.read_csv(csv)
    assert list(from_csv.columns) == list(frame.columns)
    np.testing.assert_allclose(from_csv["readout.test_mse"], frame["readout.test_mse"])
    pq = export(path, tmp_path / "out.parquet", format="parquet", sweep="tiny")
    from_pq = pd.read_parquet(pq)
    np.testing.assert_allclose(from_pq["readout.test_mse"], frame["readout.test_mse"])
    assert from_pq["readout.lambdas"].iloc[0] == "[0.001, 0.1]"


def test_second_sweep_is_refused_while_the_first_writes(tmp_path, tiny):
    """A sweep in another process holds the store; a second sweep into it is refused with a
    clear message (or, if the first already finished, succeeds); the store stays intact."""
    import json

    path = tmp_path / "shared.sqlite"
    first = dict(tiny, name="a", sweep={"student.N": list(range(4, 44))})
    second = dict(tiny, name="b", sweep={"student.N": [50, 51, 52]})
    code = (
        "import sys, json; from twolayer.experiment import run_spec; "
        "run_spec(json.loads(sys.argv[1]), store=sys.argv[2], executor='serial')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(first), str(path)],
        env={**os.environ, "PYTHONPATH": SRC},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if path.exists():
                with Store(path, create=False) as st:
                    if st.lock_holder() is not None and st.counts("a").get("done", 0) >= 2:
                        break
            time.sleep(0.05)
        try:
            run_spec(second, store=path, executor="serial")
            refused = False
        except StoreBusyError as exc:
            refused = True
            assert f"store {path} is in use: sweep 'a'" in str(exc)
            assert "another store" in str(exc)
    finally:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    frame = load(path)
    assert (frame["sweep"] == "a").sum() == 40
    assert (frame["sweep"] == "b").sum() == (0 if refused else 3)
    assert set(frame["status"]) == {"done"}
    if refused:  # once the first is done, the second runs into the same store
        run_spec(second, store=path, executor="serial")
        assert len(load(path)) == 43
        assert len(load(path, sweep="b")) == 3


def test_heartbeat_refreshed_from_another_thread(tmp_path):
    """The driver's heartbeat thread refreshes the lock through the store's own function (its
    own connection), and only the lock of its token."""
    import threading

    from twolayer.experiment.store import refresh_heartbeat

    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        st.acquire("x")
        token = st.lock_token
        assert token is not None

        def beat_of() -> float:
            return st.con.execute("SELECT heartbeat FROM lock").fetchone()[0]

        before = beat_of()
        time.sleep(0.05)
        thread = threading.Thread(target=refresh_heartbeat, args=(path, token))
        thread.start()
        thread.join()
        after = beat_of()
        assert after > before
        refresh_heartbeat(path, "not-the-token")
        assert beat_of() == after
        st.release()
        assert st.lock_token is None
