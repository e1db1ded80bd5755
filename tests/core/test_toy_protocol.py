"""A protocol added in one file (tests/core/toy_protocol.py, registered on import) runs like a
built-in one: from a spec that names its module in ``plugins``, in a sweep over its own option,
and with batched seeds; a misspelt tag gets a did-you-mean that knows it."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from twolayer import RunConfig, run_batch, run_once
from twolayer.experiment import load, load_spec_with_runs, run_spec
from twolayer.experiment.errors import SpecError
from twolayer.registry import PROTOCOLS

SPEC: dict[str, Any] = {
    "name": "toy",
    "seeds": 2,
    "plugins": ["toy_protocol"],
    "teacher": {"name": "single_index", "d": 8, "link": "tanh", "noise": 0.1},
    "student": {"N": 16, "activation": "relu"},
    "train": {"protocol": "shrink", "rho": 0.25},
    "readout": {"n": 40, "lambdas": [1e-3, 1e-1]},
    "evaluate": {"n_test": 300},
    "sweep": {"train.rho": [0.0, 0.25]},
}
RUN_SECTIONS = ("teacher", "student", "train", "readout", "evaluate")


@pytest.fixture(scope="module", autouse=True)
def _toy() -> Iterator[None]:
    """The toy protocol registered for this module's tests, then removed again (so that the
    other tests, e.g. the generated docs/spec.md, see the built-in protocols only)."""
    import toy_protocol  # noqa: F401  (registers "shrink")

    import twolayer.plugins as plugins

    yield
    PROTOCOLS.remove("shrink")
    sys.modules.pop("toy_protocol", None)
    plugins._loaded.pop("toy_protocol", None)


def _config(**train: Any) -> RunConfig:
    data = {k: copy.deepcopy(SPEC[k]) for k in RUN_SECTIONS}
    data["train"].update(train)
    return RunConfig.model_validate(data)


def test_the_toy_protocol_trains_as_its_module_says():
    toy = run_once(_config(rho=0.25), seed=3)
    none = run_once(RunConfig.model_validate(
        {**{k: SPEC[k] for k in RUN_SECTIONS}, "train": {"protocol": "none"}}), seed=3)
    # same init stream: W = 0.75 W_0 exactly, a unchanged; its trajectory row is stored
    np.testing.assert_array_equal(toy.student.W, 0.75 * none.student_init.W)
    np.testing.assert_array_equal(toy.student.a, none.student.a)
    assert toy.scalars["train.final_rho"] == 0.25
    # rho = 0 is the student at init: the readout of the "none" protocol, number for number
    same = run_once(_config(rho=0.0), seed=3)
    assert same.scalars["readout.test_mse"] == none.scalars["readout.test_mse"]
    assert toy.scalars["readout.test_mse"] != none.scalars["readout.test_mse"]


def test_a_spec_sweeps_the_toy_protocol_plain_and_with_batched_seeds(tmp_path):
    _, runs = load_spec_with_runs(copy.deepcopy(SPEC))
    assert sorted({r.config.train.rho for r in runs}) == [0.0, 0.25] and len(runs) == 4
    plain = run_spec(copy.deepcopy(SPEC), store=tmp_path / "plain.sqlite", executor="serial")
    batched = run_spec(copy.deepcopy(SPEC), store=tmp_path / "batched.sqlite",
                       executor="serial", batch_seeds=True)
    assert plain.counts() == batched.counts() == {"done": 4}
    a = load(tmp_path / "plain.sqlite").set_index(["train.rho", "seed"]).sort_index()
    b = load(tmp_path / "batched.sqlite").set_index(["train.rho", "seed"]).sort_index()
    for column in ("readout.test_mse", "network.test_mse", "train.final_rho"):
        np.testing.assert_allclose(b[column], a[column], rtol=1e-10)
    # batched members equal their own runs (run_batch directly, and run_once)
    config = _config(rho=0.25)
    for result, seed in zip(run_batch(config, [0, 1]), [0, 1], strict=True):
        alone = run_once(config, seed)
        np.testing.assert_allclose(result.student.W, alone.student.W, rtol=1e-13)
        assert result.scalars["readout.test_mse"] == pytest.approx(
            alone.scalars["readout.test_mse"], rel=1e-10
        )
        assert a.loc[(0.25, seed), "readout.test_mse"] == pytest.approx(
            alone.scalars["readout.test_mse"], rel=1e-10
        )


def test_a_misspelt_tag_lists_the_toy_protocol():
    spec = copy.deepcopy(SPEC)
    spec["train"] = {"protocol": "shrnk", "rho": 0.25}
    del spec["sweep"]
    with pytest.raises(SpecError, match=r"train\.protocol: got 'shrnk'.*did you mean 'shrink'"):
        load_spec_with_runs(spec)
