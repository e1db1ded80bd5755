"""Provenance of runs (issue 15, item 10): recorded once per environment and read back; stores of
the previous schema still open (runs of unknown provenance); runs of another version are
reported by `run` and `status` and recomputed by `--rerun-stale`; `verify` recomputes a sample;
exports and `--version` carry the versions. Also the store's encapsulation (issue 16, item 6):
no SQL outside store.py, and `records(sweep)` reads only that sweep's metrics."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import twolayer
from twolayer.cli import main
from twolayer.experiment import Record, Store, export, load, load_spec_with_runs, run_spec
from twolayer.experiment import provenance as prov
from twolayer.experiment.verify import TOLERANCES, sample_runs, verify_store

SRC = Path(__file__).resolve().parents[2] / "src" / "twolayer"

# The store schema of version 1 (twolayer before provenance was recorded), as it was written.
SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sweeps (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY, sweep TEXT NOT NULL, config TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'diverged')),
    timings TEXT, error TEXT, traceback TEXT, diverged_step INTEGER, host TEXT, pid INTEGER,
    version TEXT, attempts INTEGER NOT NULL DEFAULT 0, shared INTEGER, created TEXT NOT NULL,
    started TEXT, finished TEXT, wall_s REAL);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE sweep_runs (
    sweep TEXT NOT NULL, run_id TEXT NOT NULL REFERENCES runs (id), point TEXT NOT NULL,
    PRIMARY KEY (sweep, run_id)) WITHOUT ROWID;
CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs (id), name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, name)) WITHOUT ROWID;
CREATE TABLE arrays (
    run_id TEXT NOT NULL REFERENCES runs (id), name TEXT NOT NULL, dtype TEXT NOT NULL,
    shape TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, name));
CREATE TABLE trajectories (
    run_id TEXT NOT NULL REFERENCES runs (id), idx INTEGER NOT NULL, step INTEGER,
    data TEXT NOT NULL, PRIMARY KEY (run_id, idx));
CREATE TABLE lock (
    id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, sweep TEXT, since TEXT NOT NULL, heartbeat REAL NOT NULL);
"""
V1_RUN_COLUMNS = (
    "id, sweep, config, seed, status, timings, error, traceback, diverged_step, host, pid, "
    "version, attempts, shared, created, started, finished, wall_s"
)


def _old_version(monkeypatch, **fields):
    """Make this process look like another environment (twolayer 0.0.1, another NumPy, ...)."""
    real = prov._environment()
    monkeypatch.setattr(prov, "_environment", lambda: {**real, **fields})


def _run(spec, path, **kwargs):
    return run_spec(spec, store=path, executor="serial", **kwargs)


def test_provenance_is_recorded_once_per_environment_and_read_back(tmp_path, tiny):
    tiny["seeds"] = 3
    path = tmp_path / "s.sqlite"
    _run(tiny, path)
    con = sqlite3.connect(path)
    rows = con.execute("SELECT id, data FROM provenance").fetchall()
    refs = con.execute("SELECT DISTINCT provenance FROM runs").fetchall()
    con.close()
    # three runs of one environment (one BLAS thread each: d, N, n < SMALL_RUN): one row
    assert len(rows) == 1 and refs == [(rows[0][0],)]
    with Store(path, create=False) as st:
        records = st.records()
    got = records[0]["provenance"]
    assert all(r["provenance"] == got for r in records)
    assert got["twolayer"] == twolayer.__version__
    assert got["numpy"] == metadata.version("numpy")
    assert got["scipy"] == metadata.version("scipy")
    assert got["torch"] is None  # numpy-backend runs do not depend on torch
    assert got["python"] == ".".join(map(str, __import__("sys").version_info[:3]))
    assert got["blas"] and all("internal_api" in b and "num_threads" in b for b in got["blas"])
    assert {b["num_threads"] for b in got["blas"]} == {1}
    assert prov.provenance_id(got) == rows[0][0]
    assert got == prov.collect(None) | {"blas": got["blas"]}


def test_stale_fields_ignore_blas_threads_and_torch_of_numpy_runs():
    current = prov.environment()
    stored = {**current, "blas": [{"internal_api": "openblas", "num_threads": 8}]}
    assert prov.stale_fields(stored, current) == []
    assert prov.stale_fields({**stored, "python": "2.7.0"}, current) == []
    assert prov.stale_fields({**stored, "numpy": "0.1"}, current) == ["numpy"]
    assert prov.stale_fields({**stored, "twolayer": "0.0.1", "scipy": "0"}, current) == [
        "twolayer",
        "scipy",
    ]
    assert prov.stale_fields({**stored, "torch": "0.0.1"}, current) == ["torch"]
    assert prov.stale_fields(None, current) == ["unknown"]


def _to_schema_v1(new: Path, old: Path) -> None:
    """Copy a store into a file of the version-1 schema, written by hand (no provenance)."""
    src = sqlite3.connect(new)
    dst = sqlite3.connect(old)
    dst.execute(f"PRAGMA application_id = {0x74776F6C}")
    dst.executescript(SCHEMA_V1)
    meta = dict(src.execute("SELECT key, value FROM meta"))
    meta["schema"] = "1"
    dst.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    for table, cols in [
        ("sweeps", "*"),
        ("runs", V1_RUN_COLUMNS),
        ("sweep_runs", "*"),
        ("metrics", "*"),
        ("arrays", "*"),
        ("trajectories", "*"),
    ]:
        rows = src.execute(f"SELECT {cols} FROM {table}").fetchall()
        if rows:
            marks = ",".join("?" * len(rows[0]))
            dst.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    dst.commit()
    dst.execute("PRAGMA journal_mode = WAL")
    src.close()
    dst.close()


def test_store_of_the_previous_schema_opens_and_its_runs_have_unknown_provenance(
    tmp_path, tiny, monkeypatch
):
    tiny["seeds"] = 2
    _run(tiny, tmp_path / "new.sqlite")
    old = tmp_path / "old.sqlite"
    _to_schema_v1(tmp_path / "new.sqlite", old)
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    # readers read it as it is, without writing
    frame = load(old)
    assert len(frame) == 2 and (frame["status"] == "done").all()
    assert frame["provenance.twolayer"].isna().all() and frame["provenance.id"].isna().all()
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before
    monkeypatch.chdir(tmp_path)
    status = CliRunner().invoke(main, ["status", "old.sqlite"])
    assert status.exit_code == 0, status.output
    assert "2 of 2 done and diverged runs" in status.output
    assert "2 of unknown provenance" in status.output
    # a writer migrates it: same runs, kept (not recomputed), provenance unknown
    tiny["seeds"] = 3
    result = _run(tiny, old)
    assert len(result.records) == 1 and result.skipped == 2
    assert [n for _, n, _ in result.stale] == [2] and result.stale[0][0] is None
    with Store(old, create=False) as st:
        assert st.schema == 2
        by_id = {r["id"]: r["provenance"] for r in st.records()}
    assert sorted(p is None for p in by_id.values()) == [False, True, True]
    again = _run(tiny, old, rerun_stale=True)
    assert len(again.records) == 2 and again.stale_rerun == 2
    assert load(old)["provenance.twolayer"].notna().all()


def test_runs_of_another_version_are_reported_and_rerun_stale_recomputes_exactly_them(
    tmp_path, tiny, monkeypatch
):
    path = tmp_path / "s.sqlite"
    tiny["seeds"] = [0, 1]
    with monkeypatch.context() as m:
        _old_version(m, twolayer="0.0.1", numpy="1.0.0")
        first = _run(tiny, path)
    old_ids = {r.run_id for r in first.records}
    tiny["seeds"] = [0, 1, 2, 3]
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(tiny))
    resumed = _run(tiny, path)
    assert {r.run_id for r in resumed.records}.isdisjoint(old_ids) and len(resumed.records) == 2
    (group,) = resumed.stale
    assert group[1] == 2 and group[2] == ["twolayer", "numpy"]
    message = resumed.stale_message()
    assert message.startswith("2 of 2 stored runs were computed with other versions")
    assert "2 with twolayer 0.0.1, numpy 1.0.0" in message
    cli = CliRunner()
    monkeypatch.chdir(tmp_path)
    status = cli.invoke(main, ["status", "s.sqlite"])
    assert status.exit_code == 0, status.output
    lines = [x for x in status.output.splitlines() if "other versions" in x]
    assert len(lines) == 1 and "2 of 4 done and diverged runs" in lines[0]
    assert "2 with twolayer 0.0.1, numpy 1.0.0" in lines[0]
    plan = cli.invoke(main, ["run", "tiny.yaml", "--store", "s.sqlite", "--dry-run",
                             "--rerun-stale"])
    assert "would run 2," in plan.output and "2 with twolayer 0.0.1" in plan.output
    import json

    plan_json = json.loads(cli.invoke(main, ["run", "tiny.yaml", "--store", "s.sqlite",
                                             "--dry-run", "--json"]).stdout)
    assert plan_json["stale"] == 2 and plan_json["todo"] == 0
    versions = json.loads(cli.invoke(main, ["status", "s.sqlite", "--json"]).stdout)["versions"]
    assert sorted((v["runs"], v["stale"]) for v in versions) == [
        (2, []), (2, ["twolayer", "numpy"])
    ]
    run = cli.invoke(main, ["run", "tiny.yaml", "--store", "s.sqlite", "-q"])
    assert run.exit_code == 0
    assert "warning: 2 of 4 stored runs were computed with other versions" in run.output
    assert "--rerun-stale" in run.output
    rerun = _run(tiny, path, rerun_stale=True)
    assert {r.run_id for r in rerun.records} == old_ids and rerun.stale_rerun == 2
    assert _run(tiny, path).stale == [] and not _run(tiny, path).records
    status = cli.invoke(main, ["status", "s.sqlite"])
    assert "other versions" not in status.output


def test_blas_threads_alone_do_not_make_runs_stale(tmp_path, tiny, monkeypatch):
    path = tmp_path / "s.sqlite"
    tiny["seeds"] = 2
    with monkeypatch.context() as m:
        m.setattr(prov, "blas_info", lambda: [{"internal_api": "openblas", "num_threads": 7}])
        _run(tiny, path)
    with Store(path, create=False) as st:
        assert {r["provenance"]["blas"][0]["num_threads"] for r in st.records()} == {7}
    result = _run(tiny, path, rerun_stale=True)
    assert result.records == [] and result.stale == []


def test_verify_finds_no_difference_in_this_environment_and_catches_a_planted_one(
    tmp_path, tiny
):
    tiny["seeds"] = 3
    tiny["measure"] = ["spectrum"]
    path = tmp_path / "s.sqlite"
    _run(tiny, path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    report = verify_store(path, sample=2, seed=0)
    assert len(report.runs) == 2 and report.done == 3 and report.passed, report
    assert report.runs == sample_runs(sorted_ids(path), 2, 0)
    assert "readout.test_mse" in report.metrics and "array:spectrum.W_sv" in report.metrics
    # runs are deterministic given config and seed: same code, same BLAS, same threads -> the
    # same numbers up to the order of floating-point sums (the stored runs shared one stage
    # cache, these do not; measured: test errors differ by <= 1.1e-15 relative, a few ulps),
    # far below the default tolerance of 1e-6
    assert max(m.max_rel for m in report.metrics.values()) < 1e-13
    assert report.metrics["train.final_loss"].max_abs == 0.0  # training itself: bit for bit
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # nothing written
    # plant a difference of 1e-4 (relative) in one metric of one sampled run
    victim = report.runs[1]
    con = sqlite3.connect(path)
    con.execute(
        "UPDATE metrics SET value = value * (1 + 1e-4) WHERE run_id = ? AND name = ?",
        (victim, "readout.test_mse"),
    )
    con.commit()
    con.close()
    bad = verify_store(path, sample=2, seed=0)
    assert not bad.passed
    entry = bad.metrics["readout.test_mse"]
    assert entry.exceeded == 1 and entry.worst == victim
    assert entry.max_rel == pytest.approx(1e-4 / (1 + 1e-4), rel=1e-6)
    assert [n for n, m in bad.metrics.items() if m.exceeded] == ["readout.test_mse"]
    # a looser tolerance than the planted difference passes
    assert verify_store(path, sample=2, seed=0, rtol=1e-3).passed
    cli = CliRunner()
    res = cli.invoke(main, ["verify", str(path), "--sample", "2"])
    assert res.exit_code == 1, res.output
    assert "FAILED: 1 metric(s) over tolerance" in res.output and victim in res.output
    ok = cli.invoke(main, ["verify", str(path), "--sample", "2", "--rtol", "1e-3"])
    assert ok.exit_code == 0 and "verified" in ok.output


def sorted_ids(path: Path) -> list[str]:
    with Store(path, create=False) as st:
        return st.run_ids(status="done")


def test_verify_flags_a_run_that_no_longer_finishes(tmp_path, tiny, boom):
    tiny["measure"] = [{"name": boom, "fail": False}]
    path = tmp_path / "s.sqlite"
    _run(tiny, path)
    con = sqlite3.connect(path)
    (config,) = con.execute("SELECT config FROM runs").fetchone()
    con.execute("UPDATE runs SET config = ?", (config.replace('"fail":false', '"fail":true'),))
    con.commit()
    con.close()
    report = verify_store(path, sample=1)
    assert not report.passed and len(report.problems) == 2
    assert "now resolves to run id" in report.problems[0]
    assert "stored done, now failed: RuntimeError: boom" in report.problems[1]


def test_arrays_are_compared_against_their_largest_entry():
    from twolayer.experiment.verify import VerifyReport, _note

    report = VerifyReport(Path("x"), 1)
    tol = TOLERANCES["float64"]
    # a spectrum whose numerically zero singular value moved by rounding (1e-5 of the scale:
    # relative to itself, infinitely far): within tolerance as an array ...
    _note(report, "array:sv", "r", np.array([10.0, 1.0, 0.0]), np.array([10.0, 1.0, 1e-8]), tol)
    assert report.metrics["array:sv"].exceeded == 0
    assert report.metrics["array:sv"].max_rel == pytest.approx(1e-9)
    # ... but the same change of a scalar metric that is 0 exceeds it
    _note(report, "m", "r", 0.0, 1e-8, tol)
    assert report.metrics["m"].exceeded == 1
    # NaN on both sides agrees; NaN on one side, or a missing metric, does not
    _note(report, "n", "r", float("nan"), float("nan"), tol)
    _note(report, "k", "r", None, 1.0, tol)
    assert report.metrics["n"].exceeded == 0 and report.metrics["k"].exceeded == 1


def test_sample_is_reproducible_and_tolerances_are_stated():
    ids = [f"r{i}" for i in range(50)]
    assert sample_runs(ids, 5, 3) == sample_runs(ids, 5, 3) != sample_runs(ids, 5, 4)
    assert len(set(sample_runs(ids, 5, 3))) == 5 and sample_runs(ids, 80, 0) == ids
    assert TOLERANCES["float64"][0] < TOLERANCES["float32"][0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_exports_carry_the_versions(tmp_path, tiny, fmt):
    tiny["seeds"] = 2
    path = tmp_path / "s.sqlite"
    _run(tiny, path)
    out = export(path, format=fmt)
    frame = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert (frame["provenance.twolayer"].astype(str) == twolayer.__version__).all()
    assert (frame["provenance.numpy"] == metadata.version("numpy")).all()
    assert (frame["provenance.scipy"] == metadata.version("scipy")).all()
    assert frame["provenance.blas"].str.contains("x1").all()
    commit = prov.source_state()["commit"]
    if commit is not None:
        assert (frame["provenance.commit"] == commit).all()


def test_reproduce_summary_records_the_versions(tmp_path, tiny):
    from twolayer.recipes.reproduce import ReproduceResult, run_versions, write_summary

    tiny["name"] = "rs"
    path = tmp_path / "results.sqlite"
    _run(tiny, path)
    result = ReproduceResult("rs", True, tmp_path, versions=run_versions(path, "rs"))
    write_summary(result, "title", "paper")
    summary = (tmp_path / "summary.md").read_text()
    report = (tmp_path / "report.html").read_text()
    line = f"1 runs: twolayer {twolayer.__version__}"
    assert line in summary and line in report
    assert f"numpy {metadata.version('numpy')}" in summary


def _git(cwd, *args):
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_of_a_checkout(tmp_path):
    repo = tmp_path / "repo"
    pkg = repo / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    assert prov.git_state(pkg)["commit"] is None  # not tracked yet: an installed copy
    _git(repo, "add", "pkg/__init__.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert prov.git_state(pkg) == {"commit": head, "dirty": False, "diff": None}
    (pkg / "__init__.py").write_text("x = 2\n")
    first = prov.git_state(pkg)
    assert first["commit"] == head and first["dirty"] and re.fullmatch("[0-9a-f]{16}",
                                                                         first["diff"])
    (pkg / "__init__.py").write_text("x = 3\n")
    assert prov.git_state(pkg)["diff"] != first["diff"]  # other edits, another hash
    outside = tmp_path / "wheel" / "pkg"
    outside.mkdir(parents=True)
    (outside / "__init__.py").write_text("")
    assert prov.git_state(outside) == {"commit": None, "dirty": None, "diff": None}


def test_version_option_prints_the_commit_of_a_checkout():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0
    first = res.output.splitlines()[0]
    assert first.startswith(f"twolayer {twolayer.__version__}")
    state = prov.source_state()
    if state["commit"] is not None:
        assert state["commit"] in first
        assert ("dirty" in first) == state["dirty"]
    assert f"numpy {metadata.version('numpy')}" in res.output


# -- the store's encapsulation (issue 16, item 6) ---------------------------------------------


def test_no_sql_outside_the_store():
    pattern = re.compile(r"\.con\b|\.execute(many|script)?\(|sqlite3\.connect")
    leaks = [
        f"{path.relative_to(SRC)}:{i}"
        for path in SRC.rglob("*.py")
        if path.name != "store.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert leaks == []


def _store_with_sweeps(path: Path, other_metrics: int) -> None:
    """Sweep 'a' with 2 runs of 3 metrics; sweep 'b' with 20 runs of ``other_metrics``."""
    with Store(path) as st:
        for sweep, runs, metrics in (("a", 2, 3), ("b", 20, other_metrics)):
            ids = [f"{sweep}{i}" for i in range(runs)]
            st.register(sweep, {}, ((i, "{}", 0, {}) for i in ids), ids)
            for i in ids:
                st.write(Record(i, "done", scalars={f"m{k}": float(k) for k in range(metrics)}))


def _vm_steps(path: Path, sweep: str) -> tuple[int, list]:
    """SQLite virtual-machine steps (in units of 100) that records(sweep) takes."""
    with Store(path, create=False) as st:
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        st.con.set_progress_handler(count, 100)
        recs = st.records(sweep)
        st.con.set_progress_handler(None, 100)
    return steps[0], recs


def test_records_of_one_sweep_read_only_its_metrics(tmp_path):
    small, big = tmp_path / "small.sqlite", tmp_path / "big.sqlite"
    _store_with_sweeps(small, 3)
    _store_with_sweeps(big, 500)  # 10,000 metric rows of another sweep
    steps_small, recs_small = _vm_steps(small, "a")
    steps_big, recs_big = _vm_steps(big, "a")
    assert [r["metrics"] for r in recs_big] == [r["metrics"] for r in recs_small]
    assert [r["id"] for r in recs_big] == ["a0", "a1"]
    assert recs_big[0]["metrics"] == {"m0": 0.0, "m1": 1.0, "m2": 2.0}
    # reading all 10,000 rows of sweep b takes >= 10,000 VM steps (100 units); a's runs alone
    # take the same few steps whatever b holds (index lookups)
    assert steps_big <= steps_small + 5, (steps_small, steps_big)
    with Store(big, create=False) as st:
        assert len(st.records(run_ids=["b3", "a1", "zz"])) == 2
        assert len(st.records("a", run_ids=["b3", "a1"])) == 1
        assert st.traceback("a0") is None and st.run_ids("a") == ["a0", "a1"]


def test_load_is_unchanged_for_runs_without_provenance_columns_clash(tmp_path, tiny):
    # the provenance columns come after the run columns and before the config's
    path = tmp_path / "s.sqlite"
    _run(tiny, path)
    frame = load(path)
    cols = list(frame.columns)
    assert cols.index("finished") < cols.index("provenance.twolayer") < cols.index("teacher.d")
    _spec, runs = load_spec_with_runs(tiny)
    assert frame.loc[0, "id"] == runs[0].id
    assert np.isfinite(frame.loc[0, "readout.test_mse"])


def test_a_lazy_sweep_reports_and_reruns_stale_runs_too(tmp_path, tiny, monkeypatch):
    from twolayer.experiment import lazy
    from twolayer.experiment.spec import load_spec_unresolved

    tiny["seeds"] = 2
    tiny["sweep"] = {"readout.n": [16, 32, 48]}
    spec, label, node = load_spec_unresolved(tiny)
    runs = lazy.resolve_runs(spec, label, node, lazy=True)
    path = tmp_path / "s.sqlite"
    with monkeypatch.context() as m:
        _old_version(m, scipy="0.1.0")
        lazy.run_lazily(spec, runs, chunk=4, store=path, executor="serial")
    kept = lazy.run_lazily(spec, runs, chunk=4, store=path, executor="serial")
    assert kept.executed == 0
    assert kept.stale_message().startswith("6 of 6 stored runs were computed with other")
    assert "6 with scipy 0.1.0" in kept.stale_message()
    redone = lazy.run_lazily(spec, runs, chunk=4, store=path, executor="serial",
                             rerun_stale=True)
    assert redone.executed == 6 and redone.stale_message() is None
