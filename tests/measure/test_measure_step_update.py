"""step_update: the replayed W_k is the protocol's own, the update's SVD against a direct one."""

import math

import numpy as np
import pytest

from twolayer import RunConfig, run_batch, run_once


def two_step_config(steps: int = 2, measure: list | None = None, reuse: bool = True) -> RunConfig:
    N = d = n = 60
    step = {"eta": {"c": 1.0, "alpha": 0.8, "S": "N"}}
    return RunConfig.model_validate(
        {
            "teacher": {"name": "single_index", "d": d, "link": "tanh"},
            "student": {"N": N, "activation": "relu", "a_scale": 1 / math.sqrt(N)},
            "train": {
                "protocol": "giant_steps",
                "n": n,
                "steps": [step] + [{**step, "batch": 0 if reuse else "fresh"}] * (steps - 1),
            },
            "evaluate": {"n_test": 64, "train_errors": False},
            "measure": measure or [],
        }
    )


@pytest.mark.parametrize("reuse", [True, False])
def test_last_step_update_matches_a_direct_svd(reuse):
    # path 1: the measurement replays step 1; path 2: a separate one-step run of the same seed
    # (the same streams give the same W_0 and batch 0), then a full SVD of W_2 - W_1
    top_k = 4
    result = run_once(
        two_step_config(2, [{"name": "step_update", "top_k": top_k}], reuse), seed=3
    )
    W1 = run_once(two_step_config(1), seed=3).student.W
    M = result.student.W - W1
    _, s, Vt = np.linalg.svd(M)
    beta = result.teacher.directions[0]
    np.testing.assert_allclose(result.arrays["step_update.values"], s[:top_k], rtol=1e-10)
    proj = (Vt[:top_k] @ beta) ** 2
    np.testing.assert_allclose(result.arrays["step_update.projection"], proj, atol=1e-10)
    assert result.scalars["step_update.max_projection"] == pytest.approx(proj.max(), abs=1e-10)
    assert result.scalars["step_update.argmax"] == int(np.argmax(proj)) + 1
    P = Vt[:top_k].T @ Vt[:top_k]  # projector on the top-k right singular subspace
    assert result.scalars["step_update.subspace_projection"] == pytest.approx(
        beta @ P @ beta, abs=1e-10
    )
    np.testing.assert_allclose(
        result.arrays["step_update.bulk_ratio"], s[:top_k] / s[top_k], rtol=1e-10
    )
    assert result.scalars["step_update.norm_frobenius"] == pytest.approx(
        np.linalg.norm(M), rel=1e-12
    )


def test_from_step_zero_is_the_whole_update_as_overlaps_sees_it():
    measure = [
        {"name": "step_update", "from_step": 0, "top_k": 2},
        {"name": "overlaps", "top_k": 2},
    ]
    r = run_once(two_step_config(2, measure), seed=0)
    np.testing.assert_allclose(
        r.arrays["step_update.projection"], r.arrays["overlaps.dW_projection"], atol=1e-10
    )


def test_three_steps_from_step_one_replays_exactly_one_step():
    r = run_once(two_step_config(3, [{"name": "step_update", "from_step": 1, "top_k": 2}]), 5)
    W1 = run_once(two_step_config(1), seed=5).student.W
    s = np.linalg.svd(r.student.W - W1, compute_uv=False)
    np.testing.assert_allclose(r.arrays["step_update.values"], s[:2], rtol=1e-10)


def test_bad_options_and_protocols_say_what_is_wrong():
    # caught when the configuration is validated, before anything runs
    with pytest.raises(ValueError, match=r"step_update: from_step must be in 0\.\.2"):
        two_step_config(2, [{"name": "step_update", "from_step": 5}])
    with pytest.raises(ValueError, match="leaves no step"):
        two_step_config(2, [{"name": "step_update", "from_step": 2}])
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        two_step_config(2, [{"name": "step_update", "top_k": 0}])
    with pytest.raises(ValueError, match=r"needs train\.protocol 'giant_steps', got 'gd'"):
        RunConfig.model_validate(
            {
                "teacher": {"name": "single_index", "d": 20},
                "student": {"N": 20},
                "train": {"protocol": "gd", "n": 30, "steps": 2},
                "evaluate": {"n_test": 32},
                "measure": [{"name": "step_update"}],
            }
        )


def test_batched_seeds_replay_each_member_like_its_own_run():
    cfg = two_step_config(2, [{"name": "step_update", "top_k": 3}])
    for seed, member in zip([0, 1, 2], run_batch(cfg, [0, 1, 2]), strict=True):
        single = run_once(cfg, seed)
        np.testing.assert_allclose(
            member.arrays["step_update.values"], single.arrays["step_update.values"], rtol=1e-10
        )
        assert member.scalars["step_update.subspace_projection"] == pytest.approx(
            single.scalars["step_update.subspace_projection"], abs=1e-10
        )


def test_checkpoints_are_kept_only_when_asked_and_a_shared_cache_keeps_them_apart():
    """The protocol keeps W_k only for a measurement that asks for it, and a stage cache shared
    by a run without step_update and one with it (same trained student) gives the second its
    checkpoint: the kept checkpoints are part of the cache's key."""
    from twolayer import StageCache
    from twolayer.pipeline import needed_checkpoints

    plain = two_step_config(3)
    measured = two_step_config(3, [{"name": "step_update", "from_step": 1, "top_k": 2}])
    assert needed_checkpoints(plain) == frozenset()
    assert needed_checkpoints(measured) == frozenset({1})
    cache = StageCache()
    run_once(plain, seed=2, cache=cache)
    shared = run_once(measured, seed=2, cache=cache).scalars
    alone = run_once(measured, seed=2).scalars
    assert shared["step_update.norm_frobenius"] == alone["step_update.norm_frobenius"]
