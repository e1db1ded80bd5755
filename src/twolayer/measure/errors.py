"""Test and train errors, computed in chunks so memory is O(chunk x N), never O(n_test x N)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from twolayer.backend import DEFAULT_BACKEND, Backend, to_numpy
from twolayer.teachers import Teacher

Predictor = Callable[[Any], Any]  # X (m, d) -> predictions (m,) or (m, L)


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
    rng: np.random.Generator,
    n: int,
    *,
    chunk: int = 4096,
    backend: Backend = DEFAULT_BACKEND,
) -> dict[str, dict[str, np.ndarray]]:
    """Mean errors of several predictors on n fresh samples drawn chunk by chunk from ``rng``.

    The test set is never materialised: each chunk of ``chunk`` samples is drawn, evaluated by
    every predictor and dropped. All predictors see the same samples. With the same ``rng`` the
    samples do not depend on ``chunk``, because sampling is sequential.

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
    done = 0
    while done < n:
        m = min(chunk, n - done)
        X, y = teacher.sample(m, rng, backend)
        y_np = to_numpy(y)
        for name, predict in predictors.items():
            sums = error_sums(to_numpy(predict(X)), y_np, classification)
            acc = totals.setdefault(
                name, {k: np.zeros_like(v, dtype=float) for k, v in sums.items()}
            )
            for k, v in sums.items():
                acc[k] += v
        done += m
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
