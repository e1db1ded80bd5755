"""Test and train errors, computed in chunks so memory is O(chunk x N), never O(n_test x N)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from twolayer.backend import DEFAULT_BACKEND, Backend, RunStreams, to_numpy
from twolayer.teachers import Teacher

Predictor = Callable[[Any], Any]  # X (m, d) -> predictions (m,) or (m, L)

#: Test samples are drawn in blocks of this size, block j from stream (name, j), so the test set
#: depends neither on the evaluation chunk size nor (beyond its length) on n_test.
SAMPLE_BLOCK = 1024


def error_sums(predictions: np.ndarray, y: np.ndarray, classification: bool) -> dict[str, Any]:
    """Sums (not means) of squared errors and 0-1 errors of (m,) or (m, L) predictions."""
    P = predictions if predictions.ndim == 2 else predictions[:, None]
    out = {"sq": np.sum((P - y[:, None]) ** 2, axis=0)}
    if classification:
        out["err01"] = np.sum(np.where(P >= 0, 1.0, -1.0) != y[:, None], axis=0)
    return out


def chunked_errors(
    predictors: dict[str, Predictor],
    teacher: Teacher,
    streams: RunStreams,
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

    Returns
    -------
    dict
        predictor name -> {"mse": (L,) array, "err01": (L,) array (classification only)}; a
        predictor returning (m,) gives arrays of length 1.
    """
    if n <= 0 or chunk <= 0:
        raise ValueError(f"n and chunk must be positive, got n={n}, chunk={chunk}")
    classification = teacher.task == "classification"
    totals: dict[str, dict[str, np.ndarray]] = {}
    blocks_per_chunk = max(1, chunk // SAMPLE_BLOCK)
    n_blocks = -(-n // SAMPLE_BLOCK)
    for first in range(0, n_blocks, blocks_per_chunk):
        parts = []
        for j in range(first, min(first + blocks_per_chunk, n_blocks)):
            size = min(SAMPLE_BLOCK, n - j * SAMPLE_BLOCK)
            parts.append(teacher.sample_numpy(size, streams.generator(stream, j)))
        X = backend.asarray(np.concatenate([p[0] for p in parts]))
        y_np = np.concatenate([p[1] for p in parts])
        for name, predict in predictors.items():
            sums = error_sums(to_numpy(predict(X)), y_np, classification)
            acc = totals.setdefault(
                name, {k: np.zeros_like(v, dtype=float) for k, v in sums.items()}
            )
            for k, v in sums.items():
                acc[k] += v
    return {
        name: {("mse" if k == "sq" else k): v / n for k, v in acc.items()}
        for name, acc in totals.items()
    }


def dataset_errors(
    predictors: dict[str, Predictor], X: Any, y: Any, classification: bool
) -> dict[str, dict[str, np.ndarray]]:
    """Mean errors on a given (training) set; same layout as :func:`chunked_errors`."""
    n = X.shape[0]
    y_np = to_numpy(y)
    out = {}
    for name, predict in predictors.items():
        sums = error_sums(to_numpy(predict(X)), y_np, classification)
        out[name] = {("mse" if k == "sq" else k): v / n for k, v in sums.items()}
    return out
