"""Test and train errors, computed in chunks so memory is O(chunk x N), never O(n_test x N).

Both functions also evaluate a stack of S predictors (batched seeds) on a
:class:`~twolayer.teachers.TeacherStack`: predictions and labels then carry a leading S axis
and every error array has one too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from twolayer.backend import DEFAULT_BACKEND, Backend, RunStreams, StreamStack, to_numpy
from twolayer.teachers import SAMPLE_BLOCK, Teacher, TeacherStack

Predictor = Callable[[Any], Any]  # X (m, d) -> predictions (m,) or (m, L); stacks: (S, ...)

#: Test samples are drawn in blocks of SAMPLE_BLOCK (twolayer.teachers), block j from stream
#: (name, j), so the test set depends neither on the evaluation chunk size nor (beyond its
#: length) on n_test.


def error_sums(predictions: np.ndarray, y: np.ndarray, classification: bool) -> dict[str, Any]:
    """Sums (not means) of squared errors and 0-1 errors of (m,) or (m, L) predictions.

    With stacked labels y of shape (S, m), predictions are (S, m) or (S, m, L) and the sums
    have shape (S, L).
    """
    P = predictions if predictions.ndim == y.ndim + 1 else predictions[..., None]
    out = {"sq": np.sum((P - y[..., None]) ** 2, axis=-2)}
    if classification:
        out["err01"] = np.sum(np.where(P >= 0, 1.0, -1.0) != y[..., None], axis=-2)
    return out


def chunked_errors(
    predictors: dict[str, Predictor],
    teacher: Teacher,
    streams: RunStreams | StreamStack,
    n: int,
    *,
    chunk: int = 4096,
    backend: Backend = DEFAULT_BACKEND,
    stream: str = "test",
) -> dict[str, dict[str, np.ndarray]]:
    """Mean errors of several predictors on n fresh samples, evaluated chunk by chunk.

    The test set is never materialised: samples come in blocks of ``SAMPLE_BLOCK`` (block j from
    stream (``stream``, j)); about ``chunk`` samples are drawn, evaluated by every predictor and
    dropped. All predictors see the same samples, and the samples do not depend on ``chunk``.

    A TeacherStack of S members (with a StreamStack) evaluates S stacked predictors, member i
    on its own test set; ``chunk`` then counts the samples of all members together, so memory
    stays O(chunk x N) (but at least one block per member is evaluated at once).

    Returns
    -------
    dict
        predictor name -> {"mse": (L,) array, "err01": (L,) array (classification only)}; a
        predictor returning (m,) gives arrays of length 1. A stack: arrays of shape (S, L).
    """
    if n <= 0 or chunk <= 0:
        raise ValueError(f"n and chunk must be positive, got n={n}, chunk={chunk}")
    classification = teacher.task == "classification"
    totals: dict[str, dict[str, np.ndarray]] = {}
    members = len(teacher) if isinstance(teacher, TeacherStack) else 1
    blocks_per_chunk = max(1, chunk // (SAMPLE_BLOCK * members))
    n_blocks = -(-n // SAMPLE_BLOCK)
    for first in range(0, n_blocks, blocks_per_chunk):
        parts = []
        for j in range(first, min(first + blocks_per_chunk, n_blocks)):
            size = min(SAMPLE_BLOCK, n - j * SAMPLE_BLOCK)
            parts.append(teacher.sample_numpy(size, streams.generator(stream, j)))
        # samples lie along axis -2 of X and -1 of y (axis 0 unless stacked)
        X = backend.asarray(np.concatenate([p[0] for p in parts], axis=-2))
        y_np = np.concatenate([p[1] for p in parts], axis=-1)
        _add_sums(totals, predictors, X, y_np, classification)
    return _means(totals, n)


def _add_sums(
    totals: dict[str, dict[str, np.ndarray]],
    predictors: dict[str, Predictor],
    X: Any,
    y_np: np.ndarray,
    classification: bool,
) -> None:
    """Add each predictor's error sums on (X, y) to ``totals``."""
    for name, predict in predictors.items():
        sums = error_sums(to_numpy(predict(X)), y_np, classification)
        acc = totals.setdefault(name, {k: np.zeros_like(v, dtype=float) for k, v in sums.items()})
        for k, v in sums.items():
            acc[k] += v


def _means(totals: dict[str, dict[str, np.ndarray]], n: int) -> dict[str, dict[str, np.ndarray]]:
    return {
        name: {("mse" if k == "sq" else k): v / n for k, v in acc.items()}
        for name, acc in totals.items()
    }


def dataset_errors(
    predictors: dict[str, Predictor],
    X: Any,
    y: Any,
    classification: bool,
    chunk: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Mean errors on a given set (a training set, or a held test set); same layout as
    :func:`chunked_errors` (a stacked X of shape (S, n, d) with y of shape (S, n) gives arrays of
    shape (S, L)). With ``chunk``, the predictors see ``chunk`` samples at a time (a new view of
    X each: memory O(chunk x N) for the features), else the whole set at once."""
    n = X.shape[-2]
    y_np = to_numpy(y)
    step = max(1, n if chunk is None else int(chunk))
    totals: dict[str, dict[str, np.ndarray]] = {}
    for start in range(0, max(n, 1), step):
        _add_sums(totals, predictors, X[..., start : start + step, :],
                  y_np[..., start : start + step], classification)
    return _means(totals, n)
