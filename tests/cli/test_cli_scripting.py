"""The command line for scripts and editors (issue 18): ``--json`` on ``status``, ``recipes``
and ``run --dry-run`` with the keys docs/cli.md documents, and ``twolayer schema``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from twolayer.cli import main
from twolayer.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[2]

#: Two step sizes, two seeds; eta.c = 1e300 makes the step overflow, so that run diverges.
SPEC = {
    "seeds": 2,
    "teacher": {"name": "single_index", "d": 8, "link": "tanh"},
    "student": {"N": 6, "activation": "relu"},
    "train": {"protocol": "giant_steps", "n": 12},
    "readout": {"n": 12, "lambdas": [1e-2]},
    "evaluate": {"n_test": 50},
    "sweep": {"train.steps[0].eta.c": [1.0, 1e300]},
    "executor": {"kind": "serial"},
}


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def _json(result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_recipes_json_lists_every_recipe_with_stable_keys(cli):
    listed = _json(cli.invoke(main, ["recipes", "--json"]))
    assert [r["name"] for r in listed] == RECIPES.names()
    assert all(set(r) == {"name", "title", "paper"} for r in listed)
    assert listed[0]["title"] == RECIPES.get(listed[0]["name"]).title


def test_dry_run_json_then_status_json(cli, tmp_path):
    (tmp_path / "eta_grid.yaml").write_text(yaml.safe_dump(SPEC))
    plan = _json(cli.invoke(main, ["run", "eta_grid.yaml", "--dry-run", "--json"]))
    assert plan == {
        "store": "eta_grid.sqlite", "sweep": "eta_grid", "axes": {"train.steps[0].eta.c": 2},
        "seeds": 2, "total": 4, "stored": {}, "todo": 4, "students": 4, "stale": 0,
    }
    assert not (tmp_path / "eta_grid.sqlite").exists()  # a dry run writes nothing
    run = cli.invoke(main, ["run", "eta_grid.yaml", "-q"])
    assert run.exit_code == 0, run.output
    plan = _json(cli.invoke(main, ["run", "eta_grid.yaml", "--dry-run", "--json"]))
    assert plan["stored"] == {"done": 2, "diverged": 2} and plan["todo"] == 0

    status = _json(cli.invoke(main, ["status", "eta_grid.sqlite", "--json"]))
    assert set(status) == {"store", "writer", "sweeps", "failures", "versions"}
    assert status["writer"] is None and status["store"] == "eta_grid.sqlite"
    assert status["sweeps"] == [{"name": "eta_grid", "runs": 4, "done": 2, "diverged": 2,
                                 "failed": 0, "running": 0, "live": False}]
    assert len(status["failures"]) == 2
    for f in status["failures"]:
        assert set(f) == {"id", "status", "error", "diverged_step", "seed", "point"}
        assert f["status"] == "diverged" and f["point"] == {"train.steps[0].eta.c": 1e300}
    assert sorted(f["seed"] for f in status["failures"]) == [0, 1]
    with_tb = _json(cli.invoke(main, ["status", "eta_grid.sqlite", "--json", "--tracebacks"]))
    assert all("traceback" in f for f in with_tb["failures"])


def test_json_without_dry_run_is_a_usage_error(cli, tmp_path):
    (tmp_path / "eta_grid.yaml").write_text(yaml.safe_dump(SPEC))
    res = cli.invoke(main, ["run", "eta_grid.yaml", "--json"])
    assert res.exit_code == 2 and "--json goes with --dry-run" in res.output
    assert not (tmp_path / "eta_grid.sqlite").exists()


def test_schema_accepts_every_shipped_spec_and_rejects_typos(cli):
    jsonschema = pytest.importorskip("jsonschema")
    schema = _json(cli.invoke(main, ["schema"]))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    specs = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    specs += [json.loads(json.dumps(RECIPES.get(n).spec(q)))  # tuples -> lists, as YAML has
              for n in RECIPES.names() for q in (True, False)]
    specs.append(SPEC)  # no name (a file's name is taken), no steps list
    assert len(specs) > 20
    for spec in specs:  # shorthands included: activation: relu, eta: 0.5, measure: [spectrum]
        assert list(validator.iter_errors(spec)) == [], spec.get("name")
    for section, typo in (("student", {"N": 6, "Nn": 3}), ("seedz", 3),
                          ("train", {"protocol": "giant_steps", "n": 12, "stepz": []}),
                          ("train", {"protocol": "giant_steps", "n": 12,
                                     "steps": [{"eta": "big"}]})):
        bad = {**SPEC, section: typo}
        assert list(validator.iter_errors(bad)), (section, typo)


def test_readme_commands_name_their_store_and_write_where_git_ignores():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    commands = [line.split("#")[0].split() for b in blocks for line in b.splitlines()]
    readers = [c for c in commands if c[:2] in (["twolayer", "status"], ["twolayer", "export"],
                                                  ["twolayer", "plot"])]
    assert len(readers) >= 3
    for command in readers:  # each names the store it reads, inside out/
        assert command[2].startswith("out/") and command[2].endswith(".sqlite"), command
    runs = [c for c in commands if c[:2] == ["twolayer", "run"] and "--store" in c]
    assert runs and all(c[c.index("--store") + 1].startswith("out/") for c in runs)
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    outputs = ["out/sweep_eta.sqlite", "out/sweep_eta.csv", "out/sweep_eta_figures/a.pdf",
               "twolayer-out/one-step-spike-quick/report.html", "sweep_eta.sqlite",
               "sweep_eta_figures/a.png"]
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *outputs],
                             capture_output=True, text=True, check=False).stdout.split()
    assert ignored == outputs
