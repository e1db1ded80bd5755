"""What the last giant steps added: singular values of W_K - W_k and their overlaps with the target.

The two-step analysis at linear width asks which directions the *second* step learns. Its update
W_2 - W_1 is not W - W_0 (which also holds the first step's spike). The protocol keeps W_k only
when a measurement asks for it (at large sizes it is one more N x d matrix per step): this one
asks for the W_k of its ``from_step`` (:attr:`twolayer.measure.Measurement.checkpoints`), reads
it from the run's :class:`~twolayer.train.TrainResult` and takes the top singular triplets of
W_K - W_k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.measure._common import teacher_directions
from twolayer.measure._linalg import as_float64, check_method, top_singular_triplets
from twolayer.measure.registry import MeasureContext, at_least, register_measurement


def _giant_steps_section(config: Any) -> Any:
    train = getattr(config, "train", None)
    if train is None or getattr(train, "protocol", None) != "giant_steps":
        got = getattr(train, "protocol", None)
        raise ValueError(f"step_update: needs train.protocol 'giant_steps', got {got!r}")
    return train


def _from_step(config: Any, from_step: int | None) -> int:
    """k: the given ``from_step``, or K - 1 (the last step alone)."""
    return len(_giant_steps_section(config).steps) - 1 if from_step is None else int(from_step)


def _checkpoints(config: Any, o: dict[str, Any]) -> set[int]:
    """The one student this measurement reads besides the trained one: W_k, k = from_step."""
    return {_from_step(config, o["from_step"])}


def replay_giant_steps(ctx: MeasureContext, k: int) -> Any:
    """The student after the first ``k`` steps of the run's ``giant_steps`` protocol, as the
    protocol kept it (``ctx.trained.checkpoints[k]``; nothing is trained again).

    Parameters
    ----------
    ctx : MeasureContext
        Needs ``config`` (the run's resolved configuration) with ``train.protocol`` giant_steps
        and ``trained``, the protocol's result with checkpoint k.
    k : int
        0 <= k <= len(train.steps) (0 is the initial student).

    Returns
    -------
    TwoLayer
        The protocol's own student after step k (W_k).

    Raises
    ------
    ValueError
        If k is out of range, or the run kept no W_k (a context built without the pipeline,
        whose training was not asked for it).
    """
    train = _giant_steps_section(ctx.config)
    n_steps = len(train.steps)
    if not 0 <= k <= n_steps:
        raise ValueError(f"step_update: from_step must be in 0..{n_steps}, got {k}")
    if k == 0:
        return ctx.student_init
    kept = getattr(ctx.trained, "checkpoints", {})
    if k not in kept:
        raise ValueError(
            f"step_update: the run kept no W_{k} (the pipeline keeps the checkpoints its "
            f"measurements ask for; this context's training result has {sorted(kept)})"
        )
    return kept[k]


def _check(config: Any, o: dict[str, Any]) -> None:
    at_least("step_update: top_k", o["top_k"], 1)
    check_method(o["method"], o["top_k"])
    n_steps = len(_giant_steps_section(config).steps)
    k = n_steps - 1 if o["from_step"] is None else o["from_step"]
    if not 0 <= k <= n_steps:
        raise ValueError(f"step_update: from_step must be in 0..{n_steps}, got {k}")
    if k == n_steps:
        raise ValueError(f"step_update: from_step = {k} leaves no step to measure (K = {k})")


@register_measurement("step_update", check=_check, checkpoints=_checkpoints)
def step_update(
    ctx: MeasureContext, from_step: int | None = None, top_k: int = 3, method: str = "auto"
) -> dict[str, Any]:
    """Top singular triplets of the update of the last steps, W_K - W_k, against the target.

    For a run of K giant steps, M = W_K - W_k (shape (N, d)) is what steps k+1..K added
    (``from_step`` = k; default K - 1: the last step alone). s_1 >= s_2 >= ... are its singular
    values, v_j its right singular vectors (unit vectors of R^d) and B the teacher directions
    (orthonormal rows, (r, d)). Costs one more N x d matrix kept by the protocol (W_k) and a
    top-k SVD.

    Parameters
    ----------
    from_step : int, optional
        k, the number of steps before the update measured (default K - 1).
    top_k : int
        Number of singular triplets reported (>= 1).
    method : {"auto", "direct", "lanczos", "gram"}
        How the top singular vectors are computed (``_linalg.top_singular_triplets``).

    Returns
    -------
    dict
        ``values`` (top_k,) s_j; ``projection`` (top_k,) ||B v_j||^2 (sign-free; ~r/d for a
        random direction); ``max_projection`` scalar, the largest of them; ``argmax`` scalar,
        its index j (1-based); ``subspace_projection`` scalar ||P_V B^T||_F^2 / r, the part of
        the teacher span inside span{v_1..v_top_k} (~top_k/d at random; robust when the
        target's direction is shared between nearby singular vectors); ``bulk_ratio`` (top_k,)
        s_j / s_{top_k + 1}, how far each value stands out of the rest of the update's
        spectrum; ``norm_frobenius`` scalar ||M||_F.
    """
    k_top = int(top_k)
    k = _from_step(ctx.config, from_step)
    before = replay_giant_steps(ctx, k)
    M = as_float64(ctx.student.W) - as_float64(before.W)
    B = teacher_directions(ctx, "step_update")
    kk = min(k_top + 1, min(M.shape))
    _, s, Vt = top_singular_triplets(M, kk, method)
    proj = ((Vt[:k_top] @ B.T) ** 2).sum(axis=1)
    rest = s[k_top] if s.shape[0] > k_top else np.nan
    return {
        "values": s[:k_top],
        "projection": proj,
        "max_projection": float(proj.max()),
        "argmax": float(int(np.argmax(proj)) + 1),
        "subspace_projection": float(proj.sum() / B.shape[0]),
        "bulk_ratio": s[:k_top] / rest,
        "norm_frobenius": float(np.linalg.norm(M)),
    }
