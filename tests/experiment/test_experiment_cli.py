"""The twolayer command: run (one run and a sweep), status, export, recipes, exit codes and
help texts with examples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from twolayer.cli import main
from twolayer.experiment import load, load_spec_with_runs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_run_single_example_prints_scalars_then_skips(cli, tmp_path):
    shutil.copy(EXAMPLES / "one_step.yaml", tmp_path)
    res = cli.invoke(main, ["run", "one_step.yaml"])
    assert res.exit_code == 0, res.output
    assert "one_step: 1 runs: 1 done -> one_step.sqlite" in res.output
    for name in ("readout.test_mse", "random_features.test_mse", "linear.test_mse"):
        assert name in res.output
    frame = load(tmp_path / "one_step.sqlite")
    assert len(frame) == 1 and frame.loc[0, "status"] == "done"
    # feature learning helps over random features for this tanh single-index teacher
    assert frame.loc[0, "readout.test_mse"] < frame.loc[0, "random_features.test_mse"]
    again = cli.invoke(main, ["run", "one_step.yaml"])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_sweep_example_is_valid():
    spec, runs = load_spec_with_runs(EXAMPLES / "sweep_eta.yaml")
    assert len(runs) == 5 * 2 * 3 and spec.executor.kind == "local"
    assert len({r.share_key for r in runs}) == 5 * 3  # readout sizes share the trained student


def test_status_export_and_quiet(cli, tmp_path, tiny, boom):
    tiny["measure"] = [{"name": boom, "fail": False}]
    tiny["sweep"] = {"measure[0].fail": [False, True]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny))
    res = cli.invoke(main, ["run", "s.yaml", "--store", "out.sqlite", "--executor", "serial"])
    assert res.exit_code == 1  # a run failed
    assert "1 done, 1 failed" in res.output and "RuntimeError: boom" in res.output
    quiet = cli.invoke(main, ["run", "s.yaml", "--store", "out.sqlite", "-q", "--retry-failed"])
    assert quiet.exit_code == 1 and quiet.output == ""
    status = cli.invoke(main, ["status", "out.sqlite"])
    assert status.exit_code == 0
    assert "tiny" in status.output and "failed" in status.output
    assert "RuntimeError: boom: this run was asked to fail" in status.output
    tb = cli.invoke(main, ["status", "out.sqlite", "--tracebacks"])
    assert "Traceback (most recent call last)" in tb.output
    exp = cli.invoke(main, ["export", "out.sqlite", "--format", "csv", "--sweep", "tiny"])
    assert exp.exit_code == 0 and (tmp_path / "out-tiny.csv").exists()
    missing = cli.invoke(main, ["status", "out.sqlite", "--sweep", "nope"])
    assert missing.exit_code == 1 and "no sweep 'nope'" in missing.output


def test_status_names_seed_and_point_caps_the_list_and_prints_errors_verbatim(cli, tmp_path,
                                                                             tiny, boom):
    from twolayer.cli import MAX_FAILURES_SHOWN

    seeds = MAX_FAILURES_SHOWN + 2
    tiny["seeds"] = seeds
    # brackets that rich would read as markup, and a message longer than an 80-column terminal
    message = "[bold]measure[/bold] failed " + "x" * 90
    tiny["measure"] = [{"name": boom, "fail": True, "message": message}]
    tiny["sweep"] = {"student.N": [8]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny))
    res = cli.invoke(main, ["run", "s.yaml", "--store", "out.sqlite", "--executor", "serial"])
    assert res.exit_code == 1 and f"{seeds} failed" in res.output
    status = cli.invoke(main, ["status", "out.sqlite"])
    lines = [ln for ln in status.output.splitlines() if ln.startswith("failed ")]
    assert len(lines) == MAX_FAILURES_SHOWN
    assert "... and 2 more (--all-failures lists them)" in status.output
    assert all(f"RuntimeError: boom: {message}" in ln for ln in lines)  # one line each, as is
    assert "(seed 0, student.N=8)" in lines[0]
    every = cli.invoke(main, ["status", "out.sqlite", "--all-failures"])
    assert sum(ln.startswith("failed ") for ln in every.output.splitlines()) == seeds
    assert f"(seed {seeds - 1}, student.N=8)" in every.output


def test_dry_run_says_what_would_run_and_writes_nothing(cli, tmp_path, tiny, boom):
    tiny["seeds"] = 2
    tiny["measure"] = [{"name": boom, "fail": False}]
    tiny["sweep"] = {"measure[0].fail": [False, True], "readout.n": [16, 32]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny))
    before = cli.invoke(main, ["run", "s.yaml", "--dry-run"])
    assert before.exit_code == 0, before.output
    assert "measure[0].fail (2) x readout.n (2), 2 seed(s): 8 runs" in before.output
    assert "in tiny.sqlite: none" in before.output
    # readout sizes and measurements share the student: one per seed
    assert "would run 8, training 2 student(s)" in before.output
    assert not (tmp_path / "tiny.sqlite").exists()
    cli.invoke(main, ["run", "s.yaml", "--executor", "serial", "-q"])
    after = cli.invoke(main, ["run", "s.yaml", "-n"])
    assert "in tiny.sqlite: 4 done, 4 failed" in after.output
    assert "would run 0, training 0 student(s)" in after.output
    retry = cli.invoke(main, ["run", "s.yaml", "-n", "--retry-failed"])
    assert "would run 4, training 2 student(s)" in retry.output


def test_bad_spec_exits_2_with_one_message(cli, tmp_path, tiny):
    tiny["train"]["steps"][0]["eta"]["alpha"] = 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(tiny, sort_keys=False))
    res = cli.invoke(main, ["run", "bad.yaml"])
    assert res.exit_code == 2
    assert res.output.startswith("error: bad.yaml: line ")
    assert "train.steps[0].eta.alpha: got 3; expected less than or equal to 1" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "tiny.sqlite").exists()
    missing = cli.invoke(main, ["run", "nope.yaml"])
    assert missing.exit_code == 2 and "cannot read spec file" in missing.output


def test_not_a_store_exits_1(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    res = cli.invoke(main, ["status", "notes.txt"])
    assert res.exit_code == 1
    assert "not an SQLite file" in res.output
    assert (tmp_path / "notes.txt").read_text() == "hello"


def test_recipes_lists_the_registry(cli, monkeypatch):
    from twolayer.recipes import RECIPES

    res = cli.invoke(main, ["recipes"])
    assert res.exit_code == 0
    if len(RECIPES) == 0:
        assert res.output.strip() == "no recipes yet"
    else:
        assert all(name in res.output for name in RECIPES)


@pytest.mark.parametrize("command", ["run", "status", "export", "recipes"])
def test_help_has_an_example(cli, command):
    res = cli.invoke(main, [command, "--help"])
    assert res.exit_code == 0
    assert "Example" in res.output and f"twolayer {command}" in res.output
