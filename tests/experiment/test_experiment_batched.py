"""Batched seeds in the engine (executor.batch_seeds): a sweep stores the same rows as without
batching (metrics to rtol 1e-10: batched BLAS rounds differently), failures, divergences and
resumes are per run, protocols without a stacked training (gd) train seed by seed inside the
batch, and a batch that fails as a whole falls back to single runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from twolayer.cli import main
from twolayer.experiment import load, load_arrays, load_spec_with_runs, plan_groups, run_spec
from twolayer.experiment.store import Store

RTOL, ATOL = 1e-10, 1e-12
SKIP = {"wall_s", "created", "finished", "shared", "host", "version"}


def _rows(path):
    """run id -> (status, error, diverged_step, {metric: value}) from a store."""
    frame = load(path)
    metric_cols = [
        c for c in frame.columns if c not in SKIP and frame[c].dtype.kind == "f" and "." in c
    ]
    out = {}
    for _, row in frame.iterrows():
        metrics = {c: row[c] for c in metric_cols if not pd.isna(row[c])}
        step = None if pd.isna(row["diverged_step"]) else row["diverged_step"]
        out[row["id"]] = (row["status"], row["error"], step, metrics)
    return out


def _assert_same_store(batched, plain):
    a, b = _rows(batched), _rows(plain)
    assert a.keys() == b.keys()
    for run_id, (status, error, step, metrics) in b.items():
        status_b, error_b, step_b, metrics_b = a[run_id]
        assert (status_b, error_b, step_b) == (status, error, step), run_id
        assert metrics_b.keys() == metrics.keys(), run_id
        for name, value in metrics.items():
            assert metrics_b[name] == pytest.approx(value, rel=RTOL, abs=ATOL), (run_id, name)
        if status == "done":
            arrays, arrays_b = load_arrays(plain, run_id), load_arrays(batched, run_id)
            assert arrays.keys() == arrays_b.keys()
            for name, value in arrays.items():
                np.testing.assert_allclose(arrays_b[name], value, rtol=RTOL, atol=ATOL)
            with Store(plain, create=False) as st, Store(batched, create=False) as st_b:
                traj, traj_b = st.trajectory(run_id), st_b.trajectory(run_id)
            assert len(traj) == len(traj_b)
            for row, row_b in zip(traj, traj_b, strict=True):
                assert row_b == pytest.approx(row, rel=RTOL, abs=ATOL)


def test_batched_sweep_stores_the_rows_of_the_plain_sweep(tmp_path, tiny):
    tiny["seeds"] = 3
    tiny["measure"] = ["spectrum"]
    tiny["train"]["steps"].append({"eta": 1.0, "batch": 0, "layer": "both"})
    # eta = 1e300 overflows in step 1: diverged runs, with their step
    tiny["sweep"] = {"train.steps[0].eta.c": [1.0, 1e300], "readout.n": [16, 48]}
    plain = run_spec(tiny, store=tmp_path / "plain.sqlite", executor="serial")
    batched = run_spec(tiny, store=tmp_path / "batched.sqlite", executor="serial", batch_seeds=True)
    assert plain.counts() == batched.counts() == {"done": 6, "diverged": 6}
    # the two readout sizes of one eta share the stacked trained students of the 3 seeds
    assert sum(r.shared for r in batched.records) == 3
    _assert_same_store(tmp_path / "batched.sqlite", tmp_path / "plain.sqlite")


def test_a_step_that_overflows_is_diverged_batched_or_not(tmp_path, tiny):
    """One step of eta = 1e300 leaves weights too large to square in float64 (their readout
    used to fail, or be stored as done with NaN errors): every such run is diverged at step 0,
    batched or not, and the other runs of the sweep are unaffected."""
    tiny["seeds"] = 2
    tiny["sweep"] = {"train.steps[0].eta.c": [1.0, 1e300]}
    plain = run_spec(tiny, store=tmp_path / "plain.sqlite", executor="serial")
    batched = run_spec(tiny, store=tmp_path / "b.sqlite", executor="serial", batch_seeds=True)
    assert plain.counts() == batched.counts() == {"done": 2, "diverged": 2}
    _assert_same_store(tmp_path / "b.sqlite", tmp_path / "plain.sqlite")


def test_the_spec_option_and_the_local_executor(tmp_path, tiny):
    tiny["seeds"] = 4
    tiny["sweep"] = {"student.N": [8, 16]}
    run_spec(tiny, store=tmp_path / "plain.sqlite", executor="serial")
    tiny["executor"] = {"kind": "local", "jobs": 2, "batch_seeds": True}
    result = run_spec(tiny, store=tmp_path / "local.sqlite")
    assert result.executor == "local" and result.counts() == {"done": 8}
    _assert_same_store(tmp_path / "local.sqlite", tmp_path / "plain.sqlite")


def test_a_failing_member_is_stored_as_failed_and_the_batch_goes_on(tmp_path, tiny, boom):
    tiny["seeds"] = 2
    tiny["measure"] = [{"name": boom, "fail": False}]
    tiny["sweep"] = {"measure[0].fail": [False, True]}
    path = tmp_path / "b.sqlite"
    result = run_spec(tiny, store=path, executor="serial", batch_seeds=True)
    assert result.counts() == {"done": 2, "failed": 2}
    with Store(path, create=False) as st:
        failures = st.failures()
    assert [f["error"] for f in failures] == ["RuntimeError: boom: this run was asked to fail"] * 2
    run_spec(tiny, store=tmp_path / "plain.sqlite", executor="serial")
    _assert_same_store(path, tmp_path / "plain.sqlite")


def test_resume_runs_only_the_missing_seeds_batched(tmp_path, tiny):
    path = tmp_path / "b.sqlite"
    tiny["seeds"] = 2
    first = run_spec(tiny, store=path, executor="serial", batch_seeds=True)
    assert first.counts() == {"done": 2}
    tiny["seeds"] = 5
    second = run_spec(tiny, store=path, executor="serial", batch_seeds=True)
    assert second.skipped == 2 and second.counts() == {"done": 3}
    run_spec(tiny, store=tmp_path / "plain.sqlite", executor="serial")
    _assert_same_store(path, tmp_path / "plain.sqlite")


def test_gd_trains_seed_by_seed_inside_the_batch(tmp_path, tiny):
    tiny["seeds"] = 3
    tiny["train"] = {"protocol": "gd", "n": 32, "steps": 5, "eta": 0.5}
    tiny["sweep"] = {"train.eta.c": [0.5, 1.0e6]}  # 1e6 diverges
    plain = run_spec(tiny, store=tmp_path / "plain.sqlite", executor="serial")
    result = run_spec(tiny, store=tmp_path / "b.sqlite", executor="serial", batch_seeds=True)
    assert plain.counts() == result.counts() == {"done": 3, "diverged": 3}
    _assert_same_store(tmp_path / "b.sqlite", tmp_path / "plain.sqlite")


def test_a_batch_that_fails_as_a_whole_falls_back_to_single_runs(tmp_path, tiny, monkeypatch):
    import twolayer.experiment.record as record

    def no_memory(*args, **kwargs):
        raise MemoryError("no room for the stacked seeds")

    monkeypatch.setattr(record, "run_batch", no_memory)
    tiny["seeds"] = 3
    result = run_spec(tiny, store=tmp_path / "b.sqlite", executor="serial", batch_seeds=True)
    assert result.counts() == {"done": 3}
    run_spec(tiny, store=tmp_path / "plain.sqlite", executor="serial")
    assert _rows(tmp_path / "b.sqlite") == _rows(tmp_path / "plain.sqlite")


def test_plan_groups_with_batch_seeds_groups_seeds_and_splits_between_them(tiny):
    tiny["seeds"] = 4
    tiny["sweep"] = {"readout.n": [16, 32]}
    _, runs = load_spec_with_runs(tiny)
    groups = plan_groups(runs, 1, batch_seeds=True)
    assert [len(g) for g in groups] == [8]
    split = plan_groups(runs, 2, batch_seeds=True)
    assert sorted(len(g) for g in split) == [4, 4]
    seeds = [{r.seed for r in g} for g in split]
    assert seeds[0].isdisjoint(seeds[1])  # every trained stack is computed once
    assert sorted(r.id for g in split for r in g) == sorted(r.id for r in runs)


def test_cli_flag(tmp_path, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny["seeds"] = 2
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    res = CliRunner().invoke(main, ["run", "tiny.yaml", "--batch-seeds", "--executor", "serial"])
    assert res.exit_code == 0, res.output
    assert load(tmp_path / "tiny.sqlite")["status"].tolist() == ["done", "done"]
