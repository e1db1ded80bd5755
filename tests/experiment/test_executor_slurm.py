"""The slurm executor (twolayer.experiment.slurm) through submitit's local executor: the same jobs
as on SLURM, run as processes of this machine (``executor.slurm.cluster: local``).

Each job is two fresh Python processes (submitit's controller and the task), which import
twolayer: about 2 s each on an idle machine, so these tests use one or two waves of jobs.
The test measurements live in a plugin module written for each test: the jobs are fresh
processes that know nothing of the test process's registries, so a run that uses them also
shows that the spec's plugins are imported on the jobs."""

from __future__ import annotations

import importlib
import os
import signal
import sqlite3
import stat
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import twolayer.plugins as plugins_mod
from twolayer.experiment import executors
from twolayer.experiment.errors import SpecError
from twolayer.experiment.executors import ExecutorError
from twolayer.experiment.runner import run_spec
from twolayer.experiment.spec import SlurmConfig, load_spec
from twolayer.measure import MEASUREMENTS

submitit = pytest.importorskip("submitit")

from twolayer.experiment.slurm import (  # noqa: E402
    ChunkTask,
    SlurmExecutor,
    _Chunk,
    pack_chunks,
)

PLUGIN = '''
"""Test measurements for the slurm executor's jobs."""

import os
import time
from pathlib import Path

from twolayer.measure.registry import register_measurement


@register_measurement("tl_slurm_boom")
def _boom(ctx, fail=False):
    """Raises when fail is true."""
    if fail:
        raise RuntimeError("boom: this run was asked to fail")
    return {"ok": 1.0}


@register_measurement("tl_slurm_killer")
def _killer(ctx, marker="", always=False):
    """Ends its process with os._exit(3): always, or the first time (a marker file)."""
    if always or not os.path.exists(marker):
        Path(marker).touch()
        os._exit(3)
    return {"ok": 1.0}


@register_measurement("tl_slurm_sleeper")
def _sleeper(ctx, marker=""):
    """The first time: writes its pid to the marker and sleeps (to be preempted)."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        time.sleep(60)
    return {"pid": float(os.getpid())}
'''

TINY: dict[str, Any] = {
    "teacher": {"name": "single_index", "d": 8, "link": "tanh", "noise": 0.1},
    "student": {"N": 16, "activation": "relu"},
    "train": {"protocol": "giant_steps", "n": 32,
              "steps": [{"eta": {"c": 1.0, "alpha": 0.5, "S": "N"}}]},
    "readout": {"lambdas": [1.0e-3, 1.0e-1], "baselines": ["random_features"]},
    "evaluate": {"n_test": 200, "chunk": 100},
}


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A plugin module with the test measurements, importable here and in the jobs (PYTHONPATH);
    the registry and the record of loaded plugins are restored afterwards."""
    name = f"tl_slurm_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(folder) + (os.pathsep + path if path else ""))
    importlib.invalidate_caches()
    saved, loaded = dict(MEASUREMENTS._items), dict(plugins_mod._loaded)
    yield name
    MEASUREMENTS._items.clear()
    MEASUREMENTS._items.update(saved)
    plugins_mod._loaded.clear()
    plugins_mod._loaded.update(loaded)
    sys.modules.pop(name, None)


def _spec(plugin: str, name: str, measures: list[Any], seeds: int, *, jobs: int, chunk: int,
          **slurm: Any) -> dict[str, Any]:
    return {
        "name": name, **TINY, "seeds": seeds, "plugins": [plugin],
        "sweep": {"measure": measures},
        "executor": {"kind": "slurm", "jobs": jobs,
                     "slurm": {"cluster": "local", "chunk": chunk, "poll": 0.2, **slurm}},
    }


def _rows(path: Path) -> dict[str, tuple[str, str | None]]:
    con = sqlite3.connect(path)
    try:
        return {i: (s, e) for i, s, e in con.execute("SELECT id, status, error FROM runs")}
    finally:
        con.close()


def _metrics(path: Path) -> dict[tuple[str, str], float]:
    con = sqlite3.connect(path)
    try:
        return {(i, n): v for i, n, v in con.execute("SELECT run_id, name, value FROM metrics")}
    finally:
        con.close()


def _arrays(path: Path) -> dict[tuple[str, str], bytes]:
    con = sqlite3.connect(path)
    try:
        return {(i, n): d for i, n, d in con.execute("SELECT run_id, name, data FROM arrays")}
    finally:
        con.close()


# -- packing runs into jobs ----------------------------------------------------------------------


def _items(prefix: str, n: int) -> list[Any]:
    return [(f"{prefix}{k}", None, 0) for k in range(n)]


def test_chunks_keep_every_run_once_in_order_and_cut_only_groups_larger_than_a_chunk():
    groups = [_items("a", 2), _items("b", 3), _items("c", 7), _items("d", 1)]
    chunks = pack_chunks(groups, 4)
    assert [[i[0] for i in c] for c in chunks] == [
        ["a0", "a1"],                    # b would make 5 > 4: a new chunk
        ["b0", "b1", "b2"],
        ["c0", "c1", "c2", "c3"],        # c alone is larger than a chunk: cut
        ["c4", "c5", "c6", "d0"],
    ]
    flat = [i for c in chunks for i in c]
    assert flat == [i for g in groups for i in g]
    assert pack_chunks(groups, 100) == [flat]
    assert [len(c) for c in pack_chunks(groups, 1)] == [1] * 13
    with pytest.raises(ValueError, match="at least 1"):
        pack_chunks(groups, 0)


# -- through submitit's local executor -----------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_through_jobs_stores_the_serial_numbers_and_a_failing_run(tmp_path, plugin):
    """Two jobs of two runs: the done runs have exactly the serial executor's metrics and arrays
    (the runs are deterministic given config and seed), the run that raises is failed with its
    error and the others finish; the plugin's measurement ran in the jobs."""
    measures = [[{"name": "tl_slurm_boom"}], [{"name": "tl_slurm_boom", "fail": True}]]
    spec = _spec(plugin, "viaslurm", measures, seeds=2, jobs=2, chunk=2)
    store = tmp_path / "s.sqlite"
    result = run_spec(spec, store=store)
    assert result.executor == "slurm"
    assert result.counts() == {"done": 2, "failed": 2}, [r.error for r in result.records]
    assert all(r.pid != os.getpid() for r in result.records)  # computed in the jobs
    failed = [r for r in result.records if r.status == "failed"]
    assert all("boom: this run was asked to fail" in r.error for r in failed)

    serial = run_spec({**spec, "executor": {"kind": "serial"}}, store=tmp_path / "t.sqlite")
    assert serial.counts() == {"done": 2, "failed": 2}
    assert {i: s for i, (s, _) in _rows(store).items()} == {
        i: s for i, (s, _) in _rows(tmp_path / "t.sqlite").items()}
    got, want = _metrics(store), _metrics(tmp_path / "t.sqlite")
    assert len(got) > 20 and got == want  # bit for bit
    assert _arrays(store) == _arrays(tmp_path / "t.sqlite")

    folder = tmp_path / "s.submitit"  # beside the store by default
    assert folder.is_dir()
    assert not list(folder.glob("*.pkl")), "collected jobs leave no pickles"
    # a rerun finds everything in the store and submits nothing
    assert run_spec(spec, store=store).records == []


@pytest.mark.slow
def test_a_job_that_dies_is_resubmitted_and_a_run_that_kills_its_job_twice_fails(
    tmp_path, plugin
):
    """Three jobs of one run: one plain, one whose run ends its process once (os._exit, as the
    OOM killer would), one whose run always does. The second is resubmitted and done; the third
    is resubmitted once, then failed with its job's fate; the sweep completes."""
    measures = [
        [],
        [{"name": "tl_slurm_killer", "marker": str(tmp_path / "once")}],
        [{"name": "tl_slurm_killer", "marker": str(tmp_path / "always"), "always": True}],
    ]
    spec = _spec(plugin, "dying", measures, seeds=1, jobs=3, chunk=1)
    made: list[SlurmExecutor] = []

    def factory(kind: str, **kw: Any) -> Any:
        made.append(executors.make_executor(kind, **kw))
        return made[-1]

    store = tmp_path / "s.sqlite"
    result = run_spec(spec, store=store, executor_factory=factory)
    assert (tmp_path / "once").exists() and (tmp_path / "always").exists()
    assert result.counts() == {"done": 2, "failed": 1}, [r.error for r in result.records]
    assert made[0].resubmits == 2  # each dying run's chunk once
    rows = _rows(store)
    failed = [e for s, e in rows.values() if s == "failed"]
    assert len(failed) == 1 and "its job died twice while running this run" in failed[0]
    assert "ended without a result" in failed[0] and "log " in failed[0]
    # the failed run is a result: a plain rerun has nothing to do
    assert run_spec(spec, store=store).records == []


@pytest.mark.slow
def test_a_preempted_job_keeps_its_finished_runs_and_requeues_the_rest(tmp_path, plugin):
    """Preemption as SLURM signals it (SIGUSR2 to the job): submitit calls ChunkTask.checkpoint
    and requeues the job, which computes only the runs not finished before the signal."""
    marker = tmp_path / "sleeping"
    measures = [[], [{"name": "tl_slurm_sleeper", "marker": str(marker)}]]
    spec = _spec(plugin, "preempted", measures, seeds=1, jobs=1, chunk=2)

    def preempt() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if marker.exists() and marker.read_text():
                os.kill(int(marker.read_text()), signal.SIGUSR2)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=preempt, daemon=True)
    thread.start()
    started = time.time()
    result = run_spec(spec, store=tmp_path / "s.sqlite")
    thread.join(5)
    assert time.time() - started < 60, "the sleeper was not preempted"
    assert result.counts() == {"done": 2}, [r.error for r in result.records]
    first = int(marker.read_text())
    by_measure = {bool(r.scalars.get("tl_slurm_sleeper.pid")): r for r in result.records}
    assert by_measure[False].pid == first  # finished before the signal: kept, not recomputed
    assert by_measure[True].pid != first   # computed again by the requeued job
    assert by_measure[True].scalars["tl_slurm_sleeper.pid"] == by_measure[True].pid


@pytest.mark.slow
def test_a_rerun_collects_what_the_jobs_of_a_killed_driver_left(tmp_path, monkeypatch):
    """A driver killed after submitting leaves its jobs' result files in the folder: the rerun
    stores their done runs as they were computed (the job's process) and submits only the
    rest."""
    from twolayer.experiment import provenance as prov

    # the provenance filter has its own test below; here an edit of a dirty checkout between
    # the job and the rerun (its diff hash) must not make the job's records stale
    monkeypatch.setattr(prov, "stale_fields", lambda stored, current: [])
    spec = {"name": "orphans", **TINY, "seeds": 2, "sweep": {"readout.n": [16, 32]},
            "executor": {"kind": "slurm", "jobs": 1,
                         "slurm": {"cluster": "local", "chunk": 2, "poll": 0.2}}}
    store = tmp_path / "s.sqlite"
    runs = load_spec(spec).runs()
    first = [(r.id, r.config, r.seed) for r in runs if r.seed == 0]
    dead = executors.make_executor("slurm", slurm=SlurmConfig(cluster="local"), store=store)
    chunk = _Chunk(first)
    dead._submit([chunk])  # the driver that submitted this job dies: nobody collects it
    deadline = time.time() + 120
    while not chunk.job.done() and time.time() < deadline:
        time.sleep(0.2)
    made: list[SlurmExecutor] = []

    def factory(kind: str, **kw: Any) -> Any:
        made.append(executors.make_executor(kind, **kw))
        return made[-1]

    result = run_spec(spec, store=store, executor_factory=factory)
    assert result.counts() == {"done": 4}
    assert made[0].collected == 2 and made[0].submitted == 1  # the seed-1 runs only
    by_id = {r.run_id: r for r in result.records}
    orphan_pids = {by_id[i[0]].pid for i in first}
    assert len(orphan_pids) == 1 and orphan_pids != {os.getpid()}
    assert all(by_id[r.id].pid not in orphan_pids for r in runs if r.seed == 1)


def test_only_done_current_records_of_wanted_runs_are_collected_from_the_folder(tmp_path):
    """What a dead driver's jobs left: kept only if the run is wanted, done or diverged, and
    computed with this environment's versions (a stale or unknown provenance is recomputed)."""
    from dataclasses import replace

    from submitit.core.utils import cloudpickle_dump

    from twolayer.experiment import provenance as prov

    ex = SlurmExecutor(SlurmConfig(cluster="local"), tmp_path / "s.sqlite", jobs=1)
    now = prov.environment()
    base = executors._record(("a", None, 0), "done", None)
    records = [
        replace(base, provenance=dict(now)),                                   # kept
        replace(base, run_id="b", status="diverged", provenance=dict(now)),    # kept
        replace(base, run_id="c", status="failed", provenance=dict(now)),      # run again
        replace(base, run_id="d", provenance={**now, "numpy": "0.0.1"}),       # stale
        replace(base, run_id="e", provenance=None),                            # unknown
        replace(base, run_id="f", provenance=dict(now)),                       # not wanted
    ]
    cloudpickle_dump(("success", records), ex.folder / "77_0_result.pkl")
    cloudpickle_dump(("error", "Traceback ..."), ex.folder / "78_0_result.pkl")
    (ex.folder / "79_0_result.pkl").write_bytes(b"torn")
    found = ex._orphans({"a", "b", "c", "d", "e"})
    assert sorted(found) == ["a", "b"] and ex.collected == 2
    assert (ex.folder / "77_0_result.pkl").exists()  # read, not removed


def test_the_task_runs_only_what_its_checkpoint_did_not_keep(plugin, tmp_path):
    """In process: a task whose Records of the first run were kept at a checkpoint computes the
    second run alone, and returns both; its checkpoint holds it as it is."""
    spec = load_spec(_spec(plugin, "task", [[], [{"name": "tl_slurm_boom"}]], 1, jobs=1,
                           chunk=2))
    items = [(r.id, r.config, r.seed) for r in spec.runs()]
    task = ChunkTask(items, None, 1, False, (plugin,), str(tmp_path / "beacon"))
    first = task()
    again = ChunkTask(items, None, 1, False, (plugin,), None)
    again.done = [first[0]]
    records = again()
    assert [r.run_id for r in records] == [i[0] for i in items]
    assert records[0] is first[0]
    # computed alone now, where it shared the first run's stages before: the same numbers to
    # the rounding of a grown Gram matrix (docs/engine.md, "Shared stages": 1e-12 relative)
    assert records[1].scalars == pytest.approx(first[1].scalars, rel=1e-12)
    assert (tmp_path / "beacon").read_text() == ""  # nothing in flight after the last run
    saved = again.checkpoint()
    assert saved.function is again and saved.args == ()


# -- what cannot start ---------------------------------------------------------------------------


def test_slurm_without_sbatch_is_one_clear_error_and_marks_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = {"name": "nosbatch", **TINY, "seeds": 2, "executor": {"kind": "slurm"}}
    with pytest.raises(ExecutorError, match=r"no sbatch on PATH.*cluster: local"):
        run_spec(spec, store=tmp_path / "s.sqlite")
    assert _rows(tmp_path / "s.sqlite") == {}


def test_missing_submitit_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import raises ImportError
    with pytest.raises(ExecutorError, match=r"needs submitit.*twolayer\[slurm\]"):
        executors.make_executor("slurm", slurm=SlurmConfig(cluster="local"),
                                store=tmp_path / "s.sqlite")


def test_a_slurm_section_with_another_kind_is_a_spec_error():
    spec = {"name": "x", **TINY, "executor": {"kind": "local", "slurm": {"partition": "gpu"}}}
    with pytest.raises(SpecError, match="slurm is only used with kind 'slurm'"):
        load_spec(spec)
    with pytest.raises(SpecError, match="chunk"):
        load_spec({"name": "x", **TINY, "executor": {"kind": "slurm", "slurm": {"chunk": 0}}})
    with pytest.raises(SpecError, match="exclusive: false is not an sbatch value"):
        load_spec({"name": "x", **TINY,
                   "executor": {"kind": "slurm", "slurm": {"additional": {"exclusive": False}}}})


def _fake_slurm(tmp_path: Path) -> Path:
    """sbatch, srun and scancel on a PATH of their own: sbatch keeps the script it is given
    and answers as SLURM does; nothing runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "sbatch": f'cp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n',
        "srun": "exit 0\n",
        "scancel": f'echo "$@" >> {tmp_path}/cancelled\n',
        "sacct": "exit 0\n",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_slurm_parameters_reach_the_sbatch_script_of_one_array(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    config = SlurmConfig(
        partition="gpu", time=30, mem="8G", cpus_per_task=4, gpus=1, account="lab",
        qos="high", job_name="sweep-eta", setup=["module load cuda"],
        additional={"constraint": "a100"}, folder=str(tmp_path / "jobs"), chunk=2,
    )
    ex = SlurmExecutor(config, tmp_path / "s.sqlite", jobs=3)
    assert ex.workers == 3 and ex.folder == tmp_path / "jobs"
    chunks = [_Chunk(_items("r", 2)), _Chunk(_items("s", 2)), _Chunk(_items("t", 1))]
    ex._submit(chunks)
    script = (tmp_path / "submitted.sh").read_text()
    for flag in ("--partition=gpu", "--time=30", "--mem=8G", "--cpus-per-task=4",
                 "--gpus-per-node=1", "--account=lab", "--qos=high", "--job-name=sweep-eta",
                 "--constraint=a100", "--array=0-2%3", "--signal=USR2@90"):
        assert f"#SBATCH {flag}" in script, (flag, script)
    assert "module load cuda" in script and "submitit.core._submit" in script
    assert [c.job.job_id for c in chunks] == ["4242_0", "4242_1", "4242_2"]
    ex._chunks = chunks
    ex.close()  # cancels what it submitted
    assert (tmp_path / "cancelled").read_text().split() == ["4242_0", "4242_1", "4242_2"]


def test_a_refused_submission_is_one_clear_error(tmp_path, monkeypatch):
    bin_dir = _fake_slurm(tmp_path)
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpux' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    ex = SlurmExecutor(SlurmConfig(partition="gpux"), tmp_path / "s.sqlite")
    with pytest.raises(ExecutorError, match=r"SLURM refused the jobs.*invalid partition"):
        ex._submit([_Chunk(_items("r", 1))])
