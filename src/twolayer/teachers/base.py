"""Teacher (data model) interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from twolayer.backend import DEFAULT_BACKEND, Backend
from twolayer.registry import Registry


class Teacher(ABC):
    """A data model: ``sample(n, rng)`` returns inputs X (n, d) and labels y (n,).

    Attributes
    ----------
    d : int
        Input dimension.
    task : {"regression", "classification"}
        Classification teachers return labels in {-1, +1}.
    """

    d: int
    task: str = "regression"

    @abstractmethod
    def sample_numpy(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw n samples as NumPy float64 arrays (the definition of the data model)."""

    def sample(
        self, n: int, rng: np.random.Generator, backend: Backend = DEFAULT_BACKEND
    ) -> tuple[Any, Any]:
        """Draw n samples (X of shape (n, d), y of shape (n,)) on ``backend``.

        Numbers are drawn by NumPy and then converted, so every backend sees the same data.
        """
        if n < 0:
            raise ValueError(f"number of samples must be >= 0, got {n}")
        X, y = self.sample_numpy(int(n), rng)
        return backend.asarray(X), backend.asarray(y)

    @property
    def directions(self) -> np.ndarray | None:
        """Target directions, shape (r, d) with orthonormal rows, or None."""
        return None

    @property
    def bayes_risk(self) -> float | None:
        """Smallest achievable test error (MSE, or 0-1 error for classification), if known."""
        return None

    def bayes_predict(self, X: np.ndarray) -> np.ndarray | None:
        """Bayes-optimal prediction (conditional mean or most likely label), if known."""
        return None

    def describe(self) -> dict[str, Any]:
        """Scalars that characterise the teacher (for records)."""
        return {}


class TeacherStack(Teacher):
    """The teachers of several seeds side by side (batched seeds).

    ``sample(n, rngs)`` with a :class:`twolayer.backend.GeneratorStack` draws member i's n
    samples with ``teachers[i]`` from ``rngs[i]`` -- exactly what that seed's own run draws --
    and stacks them: X of shape (S, n, d), y of shape (S, n).

    Parameters
    ----------
    teachers : sequence of Teacher
        One per seed, all of one dimension d and one task.
    """

    def __init__(self, teachers: Sequence[Teacher]) -> None:
        self.teachers = tuple(teachers)
        if not self.teachers:
            raise ValueError("a teacher stack needs at least one teacher")
        first = self.teachers[0]
        for t in self.teachers[1:]:
            if t.d != first.d or t.task != first.task:
                raise ValueError(
                    f"the teachers of a stack must share d and task, got (d={first.d}, "
                    f"{first.task}) and (d={t.d}, {t.task})"
                )
        self.d = first.d
        self.task = first.task

    def __len__(self) -> int:
        return len(self.teachers)

    def __getitem__(self, i: int) -> Teacher:
        return self.teachers[i]

    def sample_numpy(self, n: int, rng: Any) -> tuple[np.ndarray, np.ndarray]:
        """(S, n, d) inputs and (S, n) labels; ``rng`` holds one generator per member."""
        if len(rng) != len(self.teachers):
            raise ValueError(
                f"a stack of {len(self.teachers)} teachers needs as many generators, got {len(rng)}"
            )
        parts = [t.sample_numpy(n, g) for t, g in zip(self.teachers, rng, strict=True)]
        return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])


#: Evaluation and readout samples are drawn in blocks of this size, block j from stream
#: (name, j), so a set of n samples does not depend on how it is split into chunks.
SAMPLE_BLOCK = 1024


def sample_blocks(
    teacher: Teacher, streams: Any, name: str, n: int, *, full: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The first n samples of the block sequence of stream ``name`` (NumPy arrays).

    Block j holds ``SAMPLE_BLOCK`` samples drawn by ``teacher.sample_numpy`` from
    ``streams.generator(name, j)``. With ``full=True`` every block is drawn whole and the
    result is cut at n, so the samples of size n are the first n samples of any larger size,
    label noise and every other per-sample draw included, whatever the teacher (the readout's
    nested batches). With ``full=False`` the last block is drawn at its needed size (the test
    set, as :func:`twolayer.measure.chunked_errors` streams it).

    ``streams`` is a RunStreams (X of shape (n, d)) or a StreamStack with a TeacherStack
    (X of shape (S, n, d)); samples lie along axis -2 of X and -1 of y.
    """
    parts = []
    for j in range(-(-int(n) // SAMPLE_BLOCK)):
        size = SAMPLE_BLOCK if full else min(SAMPLE_BLOCK, n - j * SAMPLE_BLOCK)
        parts.append(teacher.sample_numpy(size, streams.generator(name, j)))
    if not parts:
        X, y = teacher.sample_numpy(0, streams.generator(name, 0))
        return X, y
    X = np.concatenate([p[0] for p in parts], axis=-2)[..., :n, :]
    y = np.concatenate([p[1] for p in parts], axis=-1)[..., :n]
    return X, y


def preprocess_labels(
    X: np.ndarray, y: np.ndarray, *, center: bool, remove_linear: bool
) -> np.ndarray:
    """Labels minus the batch's own sample mean and/or its own linear part.

    y' = y - mean(y) [center] - X c [remove_linear], with c = X^T y / n, the sample estimate of
    the first Hermite coefficients E[y x] of the batch (both estimates from the raw labels y).
    X is (n, d) or a stack (S, n, d) (each member its own estimates).
    """
    out = y
    if center:
        out = out - y.mean(axis=-1, keepdims=True)
    if remove_linear:
        n = X.shape[-2]
        c = np.swapaxes(X, -1, -2) @ y[..., None] / n
        out = out - (X @ c)[..., 0]
    return out


class SampleLabels(Teacher):
    """A teacher whose every batch has its labels preprocessed with the batch's own statistics
    (:func:`preprocess_labels`): what a notebook that centres its labels on the sample does.

    ``sample`` applies the preprocessing to the whole batch it draws; code that draws one set
    in several pieces (the test set, the readout's nested batches) draws from ``inner`` and
    calls :meth:`preprocess` on the assembled set. Bayes risk and predictor are unknown.
    """

    def __init__(self, inner: Teacher, *, center: bool, remove_linear: bool) -> None:
        self.inner = inner
        self.center, self.remove_linear = bool(center), bool(remove_linear)
        self.d = inner.d
        self.task = inner.task
        if self.task != "regression":
            raise ValueError("label preprocessing (labels.center/remove_linear) needs a "
                             "regression teacher")

    def preprocess(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        return preprocess_labels(X, y, center=self.center, remove_linear=self.remove_linear)

    def sample_numpy(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        X, y = self.inner.sample_numpy(n, rng)
        return X, self.preprocess(X, y)

    @property
    def directions(self) -> np.ndarray | None:
        return self.inner.directions

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def __getattr__(self, name: str) -> Any:
        # the inner teacher's own attributes (beta, link, ...) for measurements that read them
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


TeacherBuilder = Callable[..., Teacher]
TEACHERS: Registry[TeacherBuilder] = Registry("teacher")


def get_teacher(name: str, *, d: int, rng: np.random.Generator, **options: Any) -> Teacher:
    """Build a registered teacher; its random parameters are drawn from ``rng``.

    Parameters
    ----------
    name : str
        One of ``TEACHERS.names()``.
    d : int
        Input dimension.
    rng : numpy Generator
        The run's "teacher" stream.
    **options
        The teacher's own options (see each teacher's docstring).
    """
    builder = TEACHERS.get(name)
    if int(d) <= 0:
        raise ValueError(f"teacher {name!r}: d must be a positive integer, got {d}")
    return builder(d=int(d), rng=rng, **options)


def random_orthonormal(r: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """r orthonormal rows in R^d, uniformly distributed (QR of a Gaussian matrix)."""
    if not 1 <= r <= d:
        raise ValueError(f"need 1 <= r <= d, got r={r}, d={d}")
    G = rng.standard_normal((d, r))
    Q, R = np.linalg.qr(G)
    # fix the signs so that the distribution is Haar (not biased by QR's sign convention)
    Q *= np.sign(np.diag(R))[None, :]
    return Q.T.copy()
