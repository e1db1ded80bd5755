"""Generalisation gap: test loss minus train loss of the current network."""

from __future__ import annotations

from typing import Any

import numpy as np

from twolayer.losses import get_loss
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, at_least, register_measurement


def _default_loss(ctx: MeasureContext) -> str:
    train = getattr(ctx.config, "train", None)
    name = getattr(train, "loss", None)
    if name:
        return str(name)
    return "logistic" if ctx.teacher.task == "classification" else "square"


def _loss_sums(ctx: MeasureContext, X: Any, y: Any, loss_name: str) -> tuple[float, float, float]:
    """Sums of loss values and of 0-1 errors (sign(f) != y) and the number of samples."""
    f = ctx.student.forward(X)
    values = as_float64(get_loss(loss_name).value(f, y))
    err = float(np.sum(np.where(as_float64(f) >= 0, 1.0, -1.0) != as_float64(y)))
    return float(values.sum()), err, float(values.shape[0])


def _check(config: Any, o: dict[str, Any]) -> None:
    at_least("generalisation_gap: n_test", o["n_test"], 1)
    at_least("generalisation_gap: chunk", o["chunk"], 1)
    if o["loss"] is not None:
        get_loss(o["loss"])


@register_measurement("generalisation_gap", per_step=True, check=_check)
def generalisation_gap(
    ctx: MeasureContext,
    n_test: int = 10_000,
    chunk: int = 4096,
    loss: str | None = None,
    probe_stream: int = 2,
) -> dict[str, Any]:
    """Test loss minus train loss of the current network, f = student.forward.

    The training set is the protocol's first batch ``ctx.batches[0]`` (the full-batch training
    set of GD, the first giant step's batch). The test set is n_test fresh samples of stream
    ("measure", probe_stream), the same at every call (so a per-step trajectory is measured on a
    fixed test set), drawn and evaluated ``chunk`` samples at a time. The loss is the training
    loss of the run's config (``train.loss``) unless given; losses are batch means of the
    pointwise loss as in :mod:`twolayer.losses` (square: (f - y)^2 / 2).

    Without a training batch in the context (the per-step monitor of the pipeline passes none,
    online SGD has none) the train quantities and the gaps are NaN, and only test values are
    reported meaningfully.

    Returns
    -------
    dict
        ``test_loss``, ``train_loss``, ``gap`` (= test_loss - train_loss); for classification
        teachers also ``test_err01``, ``train_err01``, ``gap_err01``.
    """
    loss_name = loss or _default_loss(ctx)
    rng = ctx.streams.generator("measure", int(probe_stream))
    total, errs, count = 0.0, 0.0, 0.0
    done = 0
    while done < n_test:
        m = min(chunk, n_test - done)
        X, y = ctx.teacher.sample(m, rng, ctx.backend)
        s, e, c = _loss_sums(ctx, X, y, loss_name)
        total, errs, count = total + s, errs + e, count + c
        done += m
    test_loss, test_err = total / count, errs / count
    if 0 in ctx.batches:
        s, e, c = _loss_sums(ctx, *ctx.batches[0], loss_name)
        train_loss, train_err = s / c, e / c
    else:
        train_loss = train_err = float("nan")
    out = {"test_loss": test_loss, "train_loss": train_loss, "gap": test_loss - train_loss}
    if ctx.teacher.task == "classification":
        out.update(test_err01=test_err, train_err01=train_err, gap_err01=test_err - train_err)
    return out
