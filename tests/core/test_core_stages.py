"""The ``stages`` protocol: GD sections run in order on one training set."""

import numpy as np
import pytest

from twolayer.config import RunConfig
from twolayer.pipeline import run_once

BASE = {
    "teacher": {"name": "single_index", "d": 10, "link": "tanh"},
    "student": {"N": 8},
    "evaluate": {"n_test": 256},
}


def _config(train):
    return RunConfig.model_validate({**BASE, "train": train})


def test_one_stage_equals_gd():
    gd = run_once(_config({"protocol": "gd", "n": 50, "steps": 7, "eta": 0.3}), 3)
    st = run_once(_config({"protocol": "stages", "n": 50, "stages": [{"steps": 7, "eta": 0.3}]}), 3)
    np.testing.assert_array_equal(gd.student.W, st.student.W)
    np.testing.assert_array_equal(gd.student.a, st.student.a)


def test_full_batch_stages_continue_where_the_previous_stopped():
    # deterministic full-batch GD: 4 + 6 steps in two stages = 10 steps in one
    gd = run_once(_config({"protocol": "gd", "n": 40, "steps": 10, "eta": 0.2,
                           "record_every": 2}), 0)
    st = run_once(_config({"protocol": "stages", "n": 40, "stages": [
        {"steps": 4, "eta": 0.2, "record_every": 2}, {"steps": 6, "eta": 0.2, "record_every": 2},
    ]}), 0)
    np.testing.assert_allclose(gd.student.W, st.student.W, rtol=1e-12, atol=1e-14)
    steps = [row["step"] for row in st.trajectory]
    assert steps[0] == 0 and steps[-1] == 10 and steps == sorted(steps)
    assert {row["stage"] for row in st.trajectory} == {0.0, 1.0}
    final = "train.final_train_loss"
    assert st.scalars[final] == pytest.approx(gd.scalars[final])


def test_weight_decay_stage_shrinks_the_norm():
    plain = run_once(_config({"protocol": "stages", "n": 40, "stages": [
        {"steps": 5, "eta": 0.2}, {"steps": 20, "eta": 0.2}]}), 1)
    decayed = run_once(_config({"protocol": "stages", "n": 40, "stages": [
        {"steps": 5, "eta": 0.2}, {"steps": 20, "eta": 0.2, "weight_decay": {"W": 0.5}}]}), 1)
    assert np.linalg.norm(decayed.student.W) < np.linalg.norm(plain.student.W)


def test_weight_decay_stage_is_the_exact_geometric_shrinkage():
    # Exact formula: with a = 0 the loss does not depend on W (f = 0), so grad_W L = 0 and a
    # stage training W with weight decay wd is W <- (1 - eta wd) W at every step: after the plain
    # stage W is still W_0, after the decayed stage of k steps it is (1 - eta wd)^k W_0.
    spec = {**BASE, "student": {"N": 8, "a_init": "constant", "a_scale": 0.0}}
    eta, wd, k = 0.2, 0.5, 20
    config = RunConfig.model_validate({**spec, "train": {"protocol": "stages", "n": 40, "stages": [
        {"steps": 5, "eta": eta, "train": "W"},
        {"steps": k, "eta": eta, "train": "W", "weight_decay": {"W": wd}}]}})
    run = run_once(config, 1)
    W0 = run.student_init.W
    assert np.linalg.norm(W0) > 0
    np.testing.assert_allclose(run.student.W, (1.0 - eta * wd) ** k * W0, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("stage", "message"),
    [({"n": 30}, "give n once"), ({"online": True}, "one training set")],
)
def test_bad_stages(stage, message):
    with pytest.raises(ValueError, match=message):
        _config({"protocol": "stages", "n": 40, "stages": [{"steps": 3, **stage}]})


def test_stages_need_at_least_one():
    with pytest.raises(ValueError):
        _config({"protocol": "stages", "n": 40, "stages": []})
