"""Specs: every kind of bad input gives one SpecError naming file, key path, value and what was
expected; sweeps resolve into the right runs with stable identities."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from twolayer.experiment import SpecError, load_spec, load_spec_with_runs, parse_key
from twolayer.experiment.spec import format_path, run_id


def _error(spec: dict[str, Any] | str | Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec_with_runs(spec)
    return info.value


def test_unknown_top_level_key_did_you_mean(tiny):
    tiny["seedz"] = 3
    err = _error(tiny)
    assert err.path == "seedz"
    assert "did you mean 'seeds'" in str(err)
    assert str(err).startswith("<dict>: seedz: unknown key")


def test_unknown_nested_key_did_you_mean(tiny):
    tiny["student"]["Nn"] = 3
    err = _error(tiny)
    assert err.path == "student.Nn"
    assert "did you mean 'N'" in str(err)


def test_wrong_type_names_value_and_expectation(tiny):
    tiny["student"]["N"] = "many"
    err = _error(tiny)
    assert err.path == "student.N"
    assert "'many'" in str(err) and "expected a valid integer" in str(err)


@pytest.mark.parametrize("d", [0, -3])
def test_nonpositive_dimension(tiny, d):
    tiny["teacher"]["d"] = d
    err = _error(tiny)
    assert err.path == "teacher.d"
    assert f"got {d}" in str(err) and "greater than 0" in str(err)


@pytest.mark.parametrize("rate", [0.5, 0.7, -0.1])
def test_label_noise_outside_half_open_interval(tiny, rate):
    tiny["teacher"] = {"name": "xor", "d": 8, "label_noise": rate}
    err = _error(tiny)
    assert err.path == "teacher.label_noise"
    assert "[0, 1/2)" in str(err) and str(rate) in str(err)


def test_exponent_outside_range_names_list_index(tiny):
    tiny["train"]["steps"][0]["eta"]["alpha"] = 1.5
    err = _error(tiny)
    assert err.path == "train.steps[0].eta.alpha"
    assert "got 1.5" in str(err) and "less than or equal to 1" in str(err)


def test_unknown_activation_and_teacher(tiny):
    spec = copy.deepcopy(tiny)
    spec["student"]["activation"] = "relux"
    err = _error(spec)
    assert err.path == "student.activation"
    assert "unknown activation 'relux'" in str(err) and "did you mean 'relu'" in str(err)
    tiny["teacher"] = {"name": "xorr", "d": 8}
    err = _error(tiny)
    assert err.path == "teacher.name" and "did you mean 'xor'" in str(err)


def test_unknown_teacher_option_and_literal(tiny):
    spec = copy.deepcopy(tiny)
    spec["teacher"]["lnk"] = "relu"
    err = _error(spec)
    assert err.path == "teacher.lnk" and "did you mean 'link'" in str(err)
    tiny["student"]["scaling"] = "mean_feld"
    err = _error(tiny)
    assert err.path == "student.scaling" and "did you mean 'mean_field'" in str(err)


def test_unknown_protocol(tiny):
    tiny["train"]["protocol"] = "giant_step"
    err = _error(tiny)
    assert err.path == "train.protocol" and "did you mean 'giant_steps'" in str(err)


def test_sweep_key_matching_no_field(tiny):
    tiny["sweep"] = {"student.NN": [8, 16]}
    err = _error(tiny)
    assert "sweep key 'student.NN' matches no field" in str(err)
    assert "did you mean 'N'" in str(err)
    tiny["sweep"] = {"train.steps[3].eta.c": [1.0]}
    assert "no [3]" in str(_error(tiny))


def test_bad_sweep_value_names_the_sweep_key(tiny):
    tiny["sweep"] = {"student.N": [8, -2]}
    err = _error(tiny)
    assert err.path == "student.N"
    assert "got -2" in str(err) and "from sweep key 'student.N'" in str(err)


def test_problem_of_the_base_spec_is_reported_once_not_per_sweep_point(tiny):
    tiny["measure"] = ["outlier"]
    tiny["sweep"] = {"student.N": [8, 16, 32, 64, 128]}
    err = _error(tiny)
    assert len(err.problems) == 1
    assert "unknown measurement 'outlier'" in str(err) and "sweep point" not in str(err)


def test_problem_at_some_sweep_points_names_them(tiny):
    # norm_bound needs a Lipschitz loss: a check of the measurement against the rest of the run,
    # so not traced to the sweep key; it fails at the square-loss points only, and says which
    tiny["measure"] = ["norm_bound"]
    tiny["sweep"] = {"train.loss": ["logistic", "square"], "student.N": [8, 16, 32, 64]}
    err = _error(tiny)
    assert len(err.problems) == 1 and err.path == "measure[0]"
    assert str(err).endswith(
        "(sweep points train.loss='square', student.N=8; train.loss='square', student.N=16; "
        "train.loss='square', student.N=32; and 1 more)"
    )
    tiny["sweep"] = {"train.loss": ["logistic", "square"]}
    assert str(_error(tiny)).endswith("(sweep point train.loss='square')")


def test_whole_config_check_naming_a_key_is_reported_at_that_key(tiny):
    tiny["train"] = {"protocol": "none"}
    tiny["sweep"] = {"readout.n": [None, 16]}
    err = _error(tiny)
    assert err.path == "readout.n"
    assert "give readout.n" in str(err) and "(from sweep key 'readout.n' = None)" in str(err)


def test_zip_lengths_must_agree(tiny):
    tiny["zip"] = {"student.N": [8, 16], "teacher.d": [4]}
    assert "one length" in str(_error(tiny))


def test_yaml_syntax_error_gives_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nteacher:\n  name: single_index\n  d: [8\nstudent: {N: 4}\n")
    err = _error(path)
    assert str(err).startswith(f"{path}: line ")
    assert "YAML syntax error" in str(err)
    assert err.problems[0].line in (4, 5)


def test_error_in_file_gives_line_of_key(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: s\nteacher: {name: single_index, d: 8}\nstudent:\n  N: 16\n"
        "train:\n  protocol: giant_steps\n  n: 32\n  steps:\n    - eta: {c: 1, alpha: 2}\n"
    )
    err = _error(path)
    assert err.path == "train.steps[0].eta.alpha"
    assert err.problems[0].line == 9
    assert str(err).startswith(f"{path}: line 9: train.steps[0].eta.alpha: got 2")


def test_missing_required_and_not_a_mapping(tmp_path):
    err = _error({"name": "x", "student": {"N": 4}})
    assert err.path == "teacher" and "required" in str(err)
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    assert "mapping" in str(_error(path))


def test_yaml_exponent_floats_and_name_from_file(tmp_path, tiny):
    tiny.pop("name")
    tiny["readout"]["lambdas"] = "__L__"
    import yaml

    text = yaml.safe_dump(tiny).replace("__L__", "[1e-3, 1e-1]")
    path = tmp_path / "Sweep-eta.v2.yaml"
    path.write_text(text)
    spec = load_spec(path)
    assert spec.name == "Sweep-eta.v2"  # the file name as written, not rewritten
    assert spec.readout["lambdas"] == [1e-3, 1e-1]


@pytest.mark.parametrize(("stem", "why", "fix"), [
    ("my run", "contains ' '", "name: my_run"),
    ("_draft", "starts with '_'", "name: draft"),
    ("étude", "contains 'é'", "name: tude"),
])
def test_a_file_name_that_cannot_be_a_name_is_an_error_saying_what_to_write(tmp_path, tiny,
                                                                              stem, why, fix):
    tiny.pop("name")
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(tiny))
    err = _error(path)
    assert err.path == "name" and str(err).startswith(str(path))
    assert why in str(err) and f"add '{fix}'" in str(err)
    tiny["name"] = "given"  # an explicit name is taken whatever the file is called
    path.write_text(yaml.safe_dump(tiny))
    assert load_spec(path).name == "given"


def test_sweeping_the_default_step_needs_no_steps_list(tiny):
    # train.steps defaults to one step (docs/spec.md); its eta.c is sweepable as is, and the
    # runs are the very runs of a spec that writes the default step out
    tiny["train"] = {"protocol": "giant_steps", "n": 20}
    tiny["sweep"] = {"train.steps[0].eta.c": [0.5, 2.0]}
    _, runs = load_spec_with_runs(tiny)
    assert [r.config.train.steps[0].eta.c for r in runs] == [0.5, 2.0]
    assert len(runs[0].config.train.steps) == 1
    written = copy.deepcopy(tiny)
    written["train"]["steps"] = [{"eta": {"c": 1.0}, "batch": "fresh"}]
    _, same = load_spec_with_runs(written)
    assert [r.id for r in runs] == [r.id for r in same]
    # an index past the default list is still one clear error
    tiny["sweep"] = {"train.steps[1].eta.c": [0.5]}
    assert "train.steps has 1 element(s) in the spec, no [1]" in str(_error(tiny))


def test_sweep_grid_zip_and_seeds(tiny):
    tiny["seeds"] = 2
    tiny["sweep"] = {"student.N": [8, 16, 32], "train.steps[0].eta.c": [0.5, 1.0]}
    tiny["zip"] = {"readout.n": [16, 64], "evaluate.n_test": [100, 300]}
    _, runs = load_spec_with_runs(tiny)
    assert len(runs) == 3 * 2 * 2 * 2
    assert len({r.id for r in runs}) == len(runs)
    pairs = {(r.config.readout.n, r.config.evaluate.n_test) for r in runs}
    assert pairs == {(16, 100), (64, 300)}
    assert {r.config.train.steps[0].eta.c for r in runs} == {0.5, 1.0}
    assert {r.seed for r in runs} == {0, 1}
    assert all(r.point["student.N"] == r.config.student.N for r in runs)


def test_run_identity_is_the_resolved_spec(tiny):
    _, (a,) = load_spec_with_runs(tiny)
    # writing a default explicitly, or renaming the experiment, does not change the identity
    explicit = copy.deepcopy(tiny)
    explicit["student"]["scaling"] = "standard"
    explicit["name"] = "other"
    _, (b,) = load_spec_with_runs(explicit)
    assert a.id == b.id
    assert run_id(a.config, 1) != a.id
    changed = copy.deepcopy(tiny)
    changed["evaluate"]["n_test"] = 201
    _, (c,) = load_spec_with_runs(changed)
    assert c.id != a.id
    # the trained student is shared by runs that differ only in evaluation/readout
    assert c.share_key == a.share_key
    changed["student"]["N"] = 17
    _, (d,) = load_spec_with_runs(changed)
    assert d.share_key != a.share_key


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("student.N", ("student", "N")),
        ("train.steps[0].eta.c", ("train", "steps", 0, "eta", "c")),
        ("train.steps.1.eta", ("train", "steps", 1, "eta")),
        ("measure[0].k", ("measure", 0, "k")),
    ],
)
def test_parse_and_format_keys(key, path):
    assert parse_key(key) == path
    assert parse_key(format_path(path)) == path


@pytest.mark.parametrize("key", ["", "[0].a", "a..b", "a.", "a[x]"])
def test_bad_keys_rejected(key):
    with pytest.raises(ValueError):
        parse_key(key)


def test_spec_round_trips_through_yaml(tmp_path, tiny):
    from twolayer.experiment import dump_spec

    tiny["sweep"] = {"student.N": [8, 16]}
    tiny["executor"] = {"kind": "local", "jobs": 2}
    spec, runs = load_spec_with_runs(tiny)
    dump_spec(spec, tmp_path / "s.yaml")
    again, runs2 = load_spec_with_runs(tmp_path / "s.yaml")
    assert again == spec
    assert [r.id for r in runs2] == [r.id for r in runs]


def test_docs_spec_md_is_generated_from_the_models():
    from twolayer.experiment.reference import spec_reference

    docs = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
    expected = spec_reference()
    assert docs.read_text() == expected, (
        "docs/spec.md is stale: python -m twolayer.experiment.reference > docs/spec.md"
    )
    # every field of every model is documented with a description
    for line in expected.splitlines():
        if line.startswith("| `") and line.count("|") >= 5:
            assert line.rstrip().rstrip("|").strip(), line
            assert not line.rstrip().endswith("|  |"), f"field without description: {line}"


def test_measurement_options_and_requirements_are_checked_when_the_spec_loads(tmp_path, tiny):
    # what a measurement can decide before the run fails the spec, at the option's line
    tiny["measure"] = ["spectrum", {"name": "outliers", "bulk": "grown"}]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(tiny, sort_keys=False))
    err = _error(path)
    assert err.path == "measure[1].bulk"
    assert "outliers: bulk must be one of 'init', 'trained', got 'grown'" in str(err)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "grown" in t)
    assert f"line {line}:" in str(err)
    # requirements on the rest of the run: norm_bound needs a Lipschitz loss
    tiny["measure"] = ["norm_bound"]
    err = _error(tiny)
    assert err.path == "measure[0]" and "loss 'square' is not Lipschitz" in str(err)
    tiny["measure"] = [{"name": "step_update", "from_step": 4}]
    assert "from_step must be in 0..1, got 4" in str(_error(tiny))


def test_monitor_names_are_checked_when_the_spec_loads(tiny):
    tiny["train"] = {"protocol": "gd", "n": 16, "steps": 2, "monitor": ["spectrum"]}
    assert "measurement 'spectrum' cannot run per step" in str(_error(tiny))
    tiny["train"]["monitor"] = ["test_los"]
    assert "neither a monitor metric" in str(_error(tiny))


def test_every_failing_measurement_is_reported(tiny):
    tiny["measure"] = ["norm_bound", "spectrum", {"name": "adversarial", "network": "final"}]
    err = _error(tiny)
    assert [p.path for p in err.problems] == ["measure[0]", "measure[2].network"]
    assert "network must be one of 'current', 'init', got 'final'" in str(err)
