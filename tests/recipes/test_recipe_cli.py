"""The recipe-facing commands: recipes, reproduce (argument handling), plot."""

from pathlib import Path

from click.testing import CliRunner

from twolayer.cli import main
from twolayer.experiment import run_spec
from twolayer.recipes import RECIPES

SPEC = {
    "name": "tiny",
    "seeds": 2,
    "teacher": {"name": "single_index", "d": 20, "link": "tanh"},
    "student": {"N": 30, "activation": "relu"},
    "train": {"protocol": "giant_steps", "n": 40, "steps": [{"eta": {"c": 1.0, "alpha": 0.5,
                                                                       "S": "N"}}]},
    "readout": {"n": 40, "lambdas": [1e-3, 1e-1]},
    "evaluate": {"n_test": 500},
    "measure": ["spectrum", "overlaps"],
    "sweep": {"train.steps[0].eta.c": [0.0, 1.0, 2.0]},
}


def test_recipes_lists_every_recipe():
    result = CliRunner().invoke(main, ["recipes"])
    assert result.exit_code == 0
    for name in RECIPES.names():
        assert name in result.output


def test_reproduce_rejects_unknown_names_and_missing_arguments():
    runner = CliRunner()
    result = runner.invoke(main, ["reproduce", "one-step-spik"])
    assert result.exit_code == 2 and "did you mean 'one-step-spike'" in result.output
    result = runner.invoke(main, ["reproduce"])
    assert result.exit_code == 2 and "--all" in result.output


def test_plot_draws_the_standard_figures(tmp_path: Path):
    store = tmp_path / "tiny.sqlite"
    run_spec(SPEC, store=store, executor="serial")
    result = CliRunner().invoke(main, ["plot", str(store), "--out", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    for stem in ("tiny_errors", "tiny_overlaps", "tiny_spectrum"):
        assert f"{stem}.png" in names and f"{stem}.pdf" in names


def test_plot_refuses_a_foreign_file(tmp_path: Path):
    other = tmp_path / "notes.txt"
    other.write_text("not a store")
    result = CliRunner().invoke(main, ["plot", str(other)])
    assert result.exit_code == 1
    assert other.read_text() == "not a store"
