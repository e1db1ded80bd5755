"""One run, stage by stage: teacher, student init, protocol, readout, errors, measurements.

The protocol is the registered one that ``config.train`` selects (:mod:`twolayer.train.protocol`),
told which intermediate students the run's measurements read; the readout, its baselines and
the network are predictors (:mod:`twolayer.predictors`) whose errors are computed here; the
measurements get the protocol's typed result (``MeasureContext.trained``).

Each stage draws from its own random stream, so a stage's output depends only on the seed and
the config sections it reads. :class:`StageCache` keeps the teacher and the trained student of
recent (seed, sections) keys, so runs of a sweep that differ only in later stages (readout size,
lambda grid, measurements, n_test) reuse them and get exactly the numbers they would get alone.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twolayer.backend import Backend, RunStreams, StreamStack, matvec, mT, namespace_of, to_numpy
from twolayer.config import RunConfig
from twolayer.measure import MEASUREMENTS, MeasureContext, chunked_errors, dataset_errors, measure
from twolayer.predictors import BASELINES, FeatureReadout, FitData, Network, Predictor
from twolayer.student import TwoLayer, init_student
from twolayer.teachers import SAMPLE_BLOCK, SampleLabels, Teacher, TeacherStack, sample_blocks
from twolayer.threads import with_run_threads
from twolayer.train.protocol import StepMeasure, TrainContext, run_protocol
from twolayer.train.readout import (
    _penalty_shift,
    check_lambdas,
    ridge_path,
    solve_shifted,
)
from twolayer.train.result import TrainResult
from twolayer.train.schedule import DivergenceError


def _default_budget() -> int:
    """The stage cache's memory budget in bytes: ``TWOLAYER_CACHE_MB`` (MiB), default 1024."""
    try:
        return int(float(os.environ.get("TWOLAYER_CACHE_MB", "1024")) * 2**20)
    except ValueError:
        raise ValueError(
            f"TWOLAYER_CACHE_MB must be a number of MiB, got {os.environ['TWOLAYER_CACHE_MB']!r}"
        ) from None


class StageCache:
    """A small LRU cache of stage outputs keyed by (stage, seeds, config sections).

    Two kinds of entries: trained students (teacher, W_0, the trained W), at most ``maxsize`` of
    them; and the large arrays that runs of one trained student share -- the test set, its
    features, the readout batches and their features and Gram matrices -- kept while their
    total stays within ``budget_bytes`` (an array larger than the budget is never cached: its
    run computes it in chunks, as without a cache).

    Parameters
    ----------
    maxsize : int
        Trained students kept; each costs N x d floats (twice: W_0 and W).
    budget_bytes : int, optional
        Memory for the shared arrays; default ``TWOLAYER_CACHE_MB`` MiB (1024). ``maxsize=0``
        makes a cache that keeps nothing (budget 0).
    """

    def __init__(self, maxsize: int = 4, budget_bytes: int | None = None) -> None:
        self.maxsize = maxsize
        if budget_bytes is None:
            budget_bytes = _default_budget() if maxsize > 0 else 0
        self.budget_bytes = int(budget_bytes)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._expected: dict[str, int] = {}
        self._rows: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    def fits(self, nbytes: int) -> bool:
        """Whether an entry of ``nbytes`` may be cached at all."""
        return 0 < nbytes <= self.budget_bytes

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any], nbytes: int = 0) -> Any:
        """The cached value of ``key``, or ``compute()`` (then cached). ``nbytes > 0`` marks a
        shared array entry counted against the budget; 0 a trained student (counted by
        ``maxsize``)."""
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        value = compute()
        if nbytes > 0 and not self.fits(nbytes):
            return value
        self._data[key] = value
        self._sizes[key] = int(nbytes)
        self._evict()
        return value

    def clear(self) -> None:
        """Drop every entry and every expectation (counters are kept)."""
        self._data.clear()
        self._sizes.clear()
        self._expected.clear()
        self._rows.clear()

    def expect(self, runs: Iterable[tuple[str, int]]) -> None:
        """Say what the coming runs are (what the engine knows of a group): the training key and
        the readout size of each. Arrays about a trained student that no other run will use are
        then not kept, and a readout pool is allocated at once for the largest size its runs
        will ask for (no copy as it grows)."""
        self._expected.clear()
        self._rows.clear()
        for key, rows in runs:
            self._expected[key] = self._expected.get(key, 0) + 1
            self._rows[key] = max(self._rows.get(key, 0), int(rows))

    def planned_rows(self, key: str) -> int:
        """The largest readout size the coming runs of training key ``key`` use (0: unknown)."""
        return self._rows.get(key, 0)

    def shared(self, key: str) -> bool:
        """Whether more than one run is expected to use training key ``key`` (True when
        nothing was said: a cache handed to run_once by a user is for sharing)."""
        return self._expected.get(key, 2) > 1

    def _evict(self) -> None:
        def oldest(sized: bool) -> Hashable:
            return next(k for k in self._data if (self._sizes[k] > 0) == sized)

        while sum(1 for k in self._data if self._sizes[k] == 0) > self.maxsize:
            self._drop(oldest(False))
        while sum(self._sizes.values()) > self.budget_bytes:
            self._drop(oldest(True))

    def _drop(self, key: Hashable) -> None:
        del self._data[key]
        del self._sizes[key]


_THREAD_CACHES = threading.local()


def process_cache() -> StageCache:
    """The stage cache of this worker (a process of a pool, a thread of a threaded Dask worker,
    or the driver of a serial sweep), kept from one group of runs to the next: runs of one seed
    that train different students (a sweep over the step size or the training size) still share
    their test set, which depends only on the seed, the teacher and n_test. Two trained students
    and ``TWOLAYER_CACHE_MB`` of arrays; one per thread, so that threads never share one."""
    cache = getattr(_THREAD_CACHES, "cache", None)
    if cache is None:
        cache = _THREAD_CACHES.cache = StageCache(maxsize=2)
    return cache


def run_streams(config: RunConfig, seed: int) -> RunStreams:
    """The random streams of a run: the seed's, except the stages ``draws.fixed`` holds."""
    return RunStreams.with_fixed(seed, config.draws.fixed, config.draws.seed)


def training_key(config: RunConfig, seed: int) -> str:
    """What fixes the trained student of a run: the training sections and the seeds its teacher,
    init and training streams draw from. Runs with equal keys train the same student, so they
    share it (the stage cache, and the grouping of sweeps into tasks, both use this key)."""
    streams = run_streams(config, seed)
    seeds = [streams.seed_of(name) for name in ("teacher", "init", "batch")]
    return json.dumps([seeds, config.training_sections()], sort_keys=True)


def _teacher_key(config: RunConfig, streams: RunStreams) -> str:
    return json.dumps(
        [streams.seed_of("teacher"), config.teacher.model_dump(mode="json"),
         config.labels.model_dump(mode="json")],
        sort_keys=True,
    )


@dataclass
class RunResult:
    """Outcome of one run.

    Attributes
    ----------
    scalars : dict[str, float]
        Named numbers (errors, measured quantities, theory predictions).
    arrays : dict[str, numpy array]
        Spectra, lambda paths, histograms, ...
    trajectory : list of dict
        Rows recorded during training.
    timings : dict[str, float]
        Wall time per stage in seconds.
    teacher, student_init, student : objects of the run (not stored by the engine)
    """

    scalars: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    trajectory: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    teacher: Teacher | None = None
    student_init: TwoLayer | None = None
    student: TwoLayer | None = None
    readout_coef: np.ndarray | None = None


def build_teacher(config: RunConfig, streams: RunStreams) -> Teacher:
    """The run's teacher; with ``labels.center``/``remove_linear`` every batch it draws has
    its labels preprocessed with the batch's own statistics (:class:`SampleLabels`)."""
    teacher = config.teacher.build(streams.generator("teacher"))
    if config.labels.center or config.labels.remove_linear:
        teacher = SampleLabels(
            teacher, center=config.labels.center, remove_linear=config.labels.remove_linear
        )
    return teacher


def build_student(config: RunConfig, streams: RunStreams, backend: Backend) -> TwoLayer:
    s = config.student
    return init_student(
        s.N,
        config.teacher.d,
        s.activation.build(),
        streams.generator("init"),
        scaling=s.scaling,
        w_init=s.w_init,
        w_scale=s.w_scale,
        a_init=s.a_init,
        a_scale=s.a_scale,
        backend=backend,
    )


def _step_measure(
    teacher: Teacher, init: TwoLayer, streams: RunStreams, backend: Backend
) -> StepMeasure:
    """Per-step measurements for a protocol's monitors: the scalars of measurement ``name`` on
    a student during training, compared with ``init`` (the student at initialisation)."""

    def run(name: str, student: TwoLayer, batches: dict[int, tuple[Any, Any]]) -> dict[str, float]:
        ctx = MeasureContext(teacher, init, student, batches, streams=streams, backend=backend)
        return {k: float(v) for k, v in measure(name, ctx).items() if np.ndim(v) == 0}

    return run


def needed_checkpoints(config: RunConfig) -> frozenset[int]:
    """The steps k whose student W_k the run's measurements read (each measurement's
    :attr:`~twolayer.measure.Measurement.checkpoints`), collected before training."""
    wanted: set[int] = set()
    for item in config.measure:
        wanted |= MEASUREMENTS.get(item.name).needed_checkpoints(config, item.options)
    return frozenset(wanted)


def train_student(
    config: RunConfig, teacher: Teacher, student: TwoLayer, streams: RunStreams, backend: Backend
) -> TrainResult:
    """Run the configured protocol (the registered one ``config.train`` selects) from
    ``student``, keeping the checkpoints the run's measurements ask for."""
    step_measure = (
        _step_measure(teacher, student, streams, backend) if isinstance(streams, RunStreams)
        else None
    )
    ctx = TrainContext(
        teacher, student, streams, backend, needed_checkpoints(config), step_measure
    )
    return run_protocol(config.train, ctx)


def _grid_scalars(
    prefix: str,
    errors: dict[str, np.ndarray],
    lambdas: np.ndarray | None,
    split: str,
    out: RunResult,
) -> None:
    """Store errors of a predictor: scalars at the best lambda, the whole path as arrays."""
    for metric, values in errors.items():
        values = np.asarray(values, dtype=float)
        name = f"{prefix}.{split}_{metric}"
        if lambdas is None or values.size == 1:
            out.scalars[name] = float(values[0])
            continue
        out.arrays[f"{name}_path"] = values
        best = int(np.nanargmin(values))
        out.scalars[name] = float(values[best])
        if split == "test" and metric == "mse":
            out.scalars[f"{prefix}.best_lambda"] = float(lambdas[best])


@dataclass
class ReadoutFit:
    """The ridge readout's fit and its batch.

    Attributes
    ----------
    lambdas : (L,) array
        The ridge penalties.
    coef : (N, L) array
        Second-layer weights, one column per lambda (a stack: (S, N, L)).
    X, y : arrays
        The readout batch, (n, d) and (n,) (a stack: (S, n, d), (S, n)).
    """

    lambdas: np.ndarray
    coef: Any
    X: Any
    y: Any

    @property
    def batch(self) -> tuple[Any, Any]:
        """(X, y)."""
        return self.X, self.y

    def member(self, i: int) -> ReadoutFit:
        """Member i of a stacked fit (the lambdas are shared)."""
        return ReadoutFit(self.lambdas, self.coef[i], self.X[i], self.y[i])


@dataclass
class Evaluation:
    """The readout and the errors of a trained student (or of a stack of them).

    Attributes
    ----------
    readout : ReadoutFit or None
        The readout's fit and its batch (None without a readout).
    test, train : dict
        predictor name -> {"mse": (L,) or (1,), "err01": ...}: test errors, and errors on the
        training data (``train`` is empty unless ``evaluate.train_errors``). The predictors are
        those of :mod:`twolayer.predictors`.
    timings : dict[str, float]
        Seconds spent in "readout" and "evaluate".

    For a stack of S students every array has a leading S axis; :meth:`member` takes one out.
    """

    readout: ReadoutFit | None
    test: dict[str, dict[str, np.ndarray]]
    train: dict[str, dict[str, np.ndarray]]
    timings: dict[str, float]

    @property
    def lambdas(self) -> np.ndarray | None:
        """The readout's lambda grid (None without a readout)."""
        return None if self.readout is None else self.readout.lambdas

    def member(self, i: int) -> Evaluation:
        """Member i of a stacked evaluation, as the evaluation of that seed's run."""
        return Evaluation(
            None if self.readout is None else self.readout.member(i),
            {name: {k: v[i] for k, v in e.items()} for name, e in self.test.items()},
            {name: {k: v[i] for k, v in e.items()} for name, e in self.train.items()},
            dict(self.timings),
        )


class _LastFeatures:
    """sigma(X W^T) of the last (student, X) asked for, or of a pair registered with
    :meth:`known` (features computed once and kept, e.g. those of a cached test set).

    The network and its readout predict on the same test chunk from the same features; with
    this they compute them once (a GEMM of chunk x d x N saved per chunk). The memo holds its
    student and X, so an identity match cannot be a recycled object.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, Any] | None = None
        self._value: Any = None
        self._known: list[tuple[Any, Any, Any]] = []

    def known(self, student: TwoLayer, X: Any, F: Any) -> None:
        self._known.append((student, X, F))

    def __call__(self, student: TwoLayer, X: Any) -> Any:
        for s, x, F in self._known:
            if s is student and x is X:
                return F
        if self._key is None or self._key[0] is not student or self._key[1] is not X:
            # drop the previous chunk's features first: memory stays one chunk of features
            self._key = self._value = None
            self._key, self._value = (student, X), student.features(X)
        return self._value


def _label_preprocessor(teacher: Teacher) -> SampleLabels | None:
    """The run's label preprocessing (a SampleLabels teacher, or the first of a stack)."""
    first = teacher[0] if isinstance(teacher, TeacherStack) else teacher
    return first if isinstance(first, SampleLabels) else None


def _raw_teacher(teacher: Teacher) -> Teacher:
    """The teacher without its label preprocessing (member by member for a stack)."""
    if isinstance(teacher, TeacherStack):
        return TeacherStack([_raw_teacher(t) for t in teacher.teachers])
    return teacher.inner if isinstance(teacher, SampleLabels) else teacher


def draw_test_set(
    teacher: Teacher, streams: RunStreams | StreamStack, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The test set as NumPy arrays: exactly the samples :func:`chunked_errors` streams (blocks
    of ``SAMPLE_BLOCK`` from streams ("test", j)), with the labels preprocessed on the whole set
    when the teacher preprocesses its labels."""
    X, y = sample_blocks(_raw_teacher(teacher), streams, "test", n)
    prep = _label_preprocessor(teacher)
    return X, (prep.preprocess(X, y) if prep is not None else y)


def _concat(arrays: list[Any], axis: int) -> Any:
    """Concatenate NumPy arrays or torch tensors along ``axis``."""
    xp = namespace_of(arrays[0])
    return xp.concatenate(arrays, axis=axis) if xp is np else xp.cat(arrays, dim=axis)


def _append_rows(
    buffer: Any, used: int, rows: Any, room: int = 0, *, shape: tuple | None = None,
    dtype: Any = None,
) -> Any:
    """A buffer (rows along axis -2) holding its first ``used`` rows and room after them for
    ``rows`` (written there) or, with ``rows=None``, for ``shape[-2]`` rows of ``shape``/``dtype``
    (left for the caller to fill). A buffer without room is replaced by one of at least ``room``
    rows and twice its size: a learning curve grown size by size copies each row about once
    more, and not at all when ``room`` (the largest size to come) is known."""
    like = rows if rows is not None else buffer
    shape = tuple(rows.shape) if rows is not None else shape
    need = used + shape[-2]
    if buffer is None or need > buffer.shape[-2]:
        size = max(need, room, 2 * (0 if buffer is None else buffer.shape[-2]))
        full = (*shape[:-2], size, shape[-1])
        if like is None or namespace_of(like) is np:
            grown = np.empty(full, dtype=dtype if rows is None else rows.dtype)
        else:
            grown = namespace_of(like).empty(full, dtype=like.dtype, device=like.device)
        if used:
            grown[..., :used, :] = buffer[..., :used, :]
        buffer = grown
    if rows is not None:
        buffer[..., used:need, :] = rows
    return buffer


class ReadoutPool:
    """The readout batches of one seed and what the runs of a trained student share about them.

    The readout batch of size n is the first n samples of a sequence of blocks of
    ``SAMPLE_BLOCK`` samples, block j drawn whole from stream ("readout", j): the batches of a
    learning curve are nested (label noise included) and a larger size only draws more blocks.
    For each student (the trained one, the one at init for the random-features baseline) the
    pool keeps the scaled features of the samples drawn so far and the Gram matrix of the last
    size fitted, so a learning curve fitted in increasing n costs one feature matrix for its
    largest n and one cumulative Gram matrix: ``G(n') = G(n) + F[n:n']^T F[n:n']`` (or, while
    n < p, the kernel matrix F F^T grown by its new rows and columns).

    Labels are preprocessed per size (each batch with its own statistics) when the teacher is
    a :class:`SampleLabels`.
    """

    def __init__(
        self,
        teacher: Teacher,
        streams: RunStreams | StreamStack,
        backend: Backend,
        rows: int = 0,
    ) -> None:
        self.teacher, self.streams, self.backend = teacher, streams, backend
        self._room = int(rows)  # rows to allocate at once (the largest size to come)
        self._raw = _raw_teacher(teacher)
        self._prep = _label_preprocessor(teacher)
        self._blocks = 0  # blocks drawn so far
        self._m = 0  # samples drawn so far
        # row buffers with room to grow (samples along axis -2): X and y (as (m, 1)) in NumPy,
        # X on the backend (the same array for NumPy float64), the features of each student
        self._X: Any = None
        self._y: Any = None
        self._Xb: Any = None
        self._features: dict[str, tuple[Any, int]] = {}
        self._grams: dict[str, tuple[int, Any]] = {}

    def _ensure(self, n: int) -> None:
        if n <= self._m:
            return
        room = self._room + SAMPLE_BLOCK  # whole blocks: up to one more than the largest size
        first = self._m
        while self._m < n:  # each block written into the buffers as it is drawn
            X_b, y_b = self._raw.sample_numpy(
                SAMPLE_BLOCK, self.streams.generator("readout", self._blocks)
            )
            self._X = _append_rows(self._X, self._m, X_b, room)
            self._y = _append_rows(self._y, self._m, y_b[..., None], room)
            self._blocks += 1
            self._m += SAMPLE_BLOCK
        if self.backend.name == "numpy" and self._X.dtype == self.backend.np_dtype:
            self._Xb = self._X
        else:
            self._Xb = _append_rows(
                self._Xb, first, self.backend.asarray(self._X[..., first : self._m, :]), room
            )

    def batch(self, n: int) -> tuple[Any, Any]:
        """The readout batch of size n on the backend: X (n, d) and its (preprocessed) labels."""
        self._ensure(n)
        y = self._y[..., :n, 0]
        if self._prep is not None:
            y = self._prep.preprocess(self._X[..., :n, :], y)
        return self._Xb[..., :n, :], self.backend.asarray(y)

    def features(self, key: str, student: TwoLayer, n: int) -> Any:
        """``sigma(X W^T)`` of the first n samples (unscaled); the rows already computed for
        ``key`` are kept and only new rows are computed."""
        self._ensure(n)
        F, have = self._features.get(key, (None, 0))
        if have < n:
            X_new = self._Xb[..., have:n, :]
            if isinstance(X_new, np.ndarray):
                # the features of the new rows computed in the buffer itself (no temporary)
                shape = (*X_new.shape[:-1], student.N)
                F = _append_rows(F, have, None, max(self._room, n), shape=shape,
                                 dtype=np.result_type(X_new, student.W))
                rows = F[..., have:n, :]
                np.matmul(X_new, mT(student.W), out=rows)
                out = student.activation.overwrite(rows)
                if out is not rows:
                    rows[...] = out
            else:
                F = _append_rows(F, have, student.features(X_new), max(self._room, n))
            self._features[key] = (F, n)
        return F[..., :n, :]

    def _gram(self, key: str, F: Any) -> Any:
        """The smaller Gram matrix of F = features[:n] (F^T F if n >= p, else F F^T), grown from
        the one of the last size fitted for ``key`` when that size was smaller and on the same
        side (numbers equal to the direct product up to the order of the sums)."""
        n, p = F.shape[-2:]
        primal = n >= p
        m, G = self._grams.get(key, (0, None))
        if G is None or m > n or (m >= p) != primal or m == 0:
            G = mT(F) @ F if primal else F @ mT(F)
        elif m < n:
            new = F[..., m:n, :]
            if primal:
                G = G + mT(new) @ new
            else:
                cross = new @ mT(F)  # (n - m, n): the new rows of F F^T
                G = _concat([_concat([G, mT(cross[..., :, :m])], -1), cross], -2)
        self._grams[key] = (n, G)
        return G

    def ridge(
        self, key: str, student: TwoLayer, n: int, lambdas: Any, penalty: str
    ) -> tuple[Any, Any, Any]:
        """Ridge coefficients (p, L) of the readout of ``student`` on the batch of size n, and
        that batch (X, y): ``ridge_path(scale * F, y, lambdas, penalty)`` with the Gram matrix
        of the unscaled features F grown across sizes (equal up to rounding)."""
        lam = check_lambdas(lambdas)
        X, y = self.batch(n)
        F = self.features(key, student, n)
        G = self._gram(key, F)
        shift = _penalty_shift(lam, n, penalty)
        s = student.scale
        # (s^2 G + shift) x = s F^T y, and for n < p: a = s F^T (s^2 F F^T + shift)^{-1} y
        if n >= F.shape[-1]:
            return s * solve_shifted(s * s * G, matvec(mT(F), y), shift), X, y
        return s * (mT(F) @ solve_shifted(s * s * G, y, shift)), X, y


def _test_errors(
    predictors: dict[str, Callable[[Any], Any]],
    teacher: Teacher,
    streams: RunStreams | StreamStack,
    backend: Backend,
    ev: Any,
    test_set: tuple[Any, np.ndarray] | None,
    whole: bool,
) -> dict[str, dict[str, np.ndarray]]:
    """Test errors: streamed (no test set held), on the held test set at once (``whole``: its
    features are held too), or on the held test set chunk by chunk (memory O(chunk x N))."""
    if test_set is None:
        return chunked_errors(
            predictors, teacher, streams, ev.n_test, chunk=ev.chunk, backend=backend
        )
    X, y = test_set
    # chunk by chunk, each chunk a new view: the features memo computes its features once
    return dataset_errors(predictors, X, y, teacher.task == "classification",
                          None if whole else ev.chunk)


def evaluate_student(
    config: RunConfig,
    teacher: Teacher,
    streams: RunStreams | StreamStack,
    backend: Backend,
    student0: TwoLayer,
    trained: TrainResult,
    *,
    cache: StageCache | None = None,
    key: str | None = None,
) -> Evaluation:
    """Fit the readout (and its baselines) and compute the test and training errors.

    Takes one run's objects, or the stacks of a batched run (TeacherStack, StreamStack,
    stacked students and TrainResult): the same code computes either.

    With a ``cache`` and the run's :func:`training_key` ``key``, what depends only on the
    trained student is computed once for all the runs that share it, within the cache's memory
    budget: the test set (per seed, teacher and n_test), its features, the network's own
    errors, and the readout batches with their features and Gram matrices
    (:class:`ReadoutPool`). Without a cache the test set is streamed in chunks (memory
    O(chunk x N)) unless the labels are preprocessed on the sample, which needs the whole set.
    """
    cache = cache or StageCache(maxsize=0)
    timings: dict[str, float] = {}
    timer = time.perf_counter()
    student = trained.student
    features = _LastFeatures()
    ev = config.evaluate
    single = isinstance(streams, RunStreams) and key is not None
    stream_seeds = (
        [streams.seed_of(s) for s in ("teacher", "test", "readout")] if single else None
    )

    # the test set: cached (per seed, teacher and n_test) when it fits the budget; always
    # materialised when the labels are preprocessed with the test set's own statistics
    d = config.teacher.d
    itemsize = np.dtype(config.backend.dtype).itemsize
    test_key = None
    test_set = None
    if single:
        test_key = ("test", _teacher_key(config, streams), stream_seeds[1], ev.n_test)
    if single and cache.fits(ev.n_test * (d + 1) * 8):
        X_t, y_t = cache.get_or_compute(
            test_key, lambda: draw_test_set(teacher, streams, ev.n_test), ev.n_test * (d + 1) * 8
        )
        test_set = (backend.asarray(X_t), y_t)  # no copy for NumPy float64
    elif _label_preprocessor(teacher) is not None:
        X_t, y_t = draw_test_set(teacher, streams, ev.n_test)
        test_set = (backend.asarray(X_t), y_t)

    # arrays about one trained student are kept only when other runs will reuse them
    shared = single and cache.shared(key)
    whole_features: list[TwoLayer] = []  # students whose test features are held whole

    def held(s: TwoLayer) -> bool:
        return any(w is s for w in whole_features)

    def test_features(s: TwoLayer, tag: str) -> None:
        """Register the (cached) test features of s, when they are shared and fit the budget."""
        if test_set is None:
            return
        nbytes = ev.n_test * s.N * itemsize
        if shared and cache.fits(nbytes):
            whole_features.append(s)
            F = cache.get_or_compute(
                ("test-features", tag, key, test_key), lambda: s.features(test_set[0]), nbytes
            )
            features.known(s, test_set[0], F)

    test_features(student, "trained")
    readout_fit = None
    fitted: dict[str, Predictor] = {}  # the readout and its baselines, in the config's order
    r = config.readout
    if r is not None:
        lambdas = np.asarray(r.lambdas, dtype=float)
        pool = None
        if r.batch == "reuse" and 0 in trained.batches:
            X_r, y_r = trained.batches[0]
            coef = ridge_path(student.scale * features(student, X_r), y_r, lambdas, r.penalty)
        else:
            n_r = r.n or config.train_n
            p_all = student.N * (2 if "random_features" in r.baselines else 1)
            # the pool's size when it reaches the largest readout size its runs will ask for
            rows = max(n_r, cache.planned_rows(key) if single else 0) + SAMPLE_BLOCK
            nbytes = rows * (d + 1 + p_all) * itemsize + p_all * p_all * itemsize
            if shared and cache.fits(nbytes):
                pool = cache.get_or_compute(
                    ("readout", key, stream_seeds[2]),
                    lambda: ReadoutPool(teacher, streams, backend, cache.planned_rows(key)),
                    nbytes,
                )
            else:
                pool = ReadoutPool(teacher, streams, backend)
            coef, X_r, y_r = pool.ridge("trained", student, n_r, lambdas, r.penalty)
            features.known(student, X_r, pool.features("trained", student, n_r))

        def ridge(tag: str, s: TwoLayer) -> Any:
            """Ridge coefficients of ``s``'s features on the readout batch (the pool's)."""
            if pool is not None:
                return pool.ridge(tag, s, n_r, lambdas, r.penalty)[0]
            return ridge_path(s.scale * s.features(X_r), y_r, lambdas, r.penalty)

        data = FitData(student, student0, X_r, y_r, lambdas, r.penalty, config.student.w_scale,
                       features, ridge)
        readout_fit = ReadoutFit(lambdas, coef, X_r, y_r)
        fitted["readout"] = FeatureReadout.fit(data, coef)
        for name, fit in BASELINES.items():  # in BASELINES' order, whatever the config's
            if name in r.baselines:
                fitted[name] = fit(data)
        if "random_features" in r.baselines:
            test_features(student0, "init")
    now = time.perf_counter()
    timings["readout"], timer = now - timer, now

    # the network's training error: on its first training batch, else on the readout batch
    network_train = trained.batches.get(0, readout_fit.batch if readout_fit else None)
    network = Network(student, features, network_train)

    # the network's own errors depend only on the trained student and the test set: once per
    # trained student (and test set) when the runs share a cache
    def network_test_errors() -> dict[str, np.ndarray]:
        errs = _test_errors({"network": network.predict}, teacher, streams, backend, ev,
                            test_set, held(student))
        return errs["network"]

    if shared:  # other runs of this student reuse the network's errors: one pass of their own
        test = {"network": cache.get_or_compute(
            ("network-test", key, test_key, ev.chunk), network_test_errors, 1
        )}
        predictors = dict(fitted)
    else:
        test = {}
        predictors = {"network": network, **fitted}
    whole = all(held(s) for p in predictors.values() for s in p.students) and not any(
        p.chunked for p in predictors.values()
    )
    if predictors:
        test.update(_test_errors({name: p.predict for name, p in predictors.items()}, teacher,
                                 streams, backend, ev, test_set, whole))
    train: dict[str, dict[str, np.ndarray]] = {}
    if ev.train_errors:
        classification = teacher.task == "classification"
        for name, p in {"network": network, **fitted}.items():
            if p.train_set is None:
                continue
            X_t, y_t = p.train_set

            def errors(name: str = name, p: Predictor = p, X_t: Any = X_t, y_t: Any = y_t) -> Any:
                return dataset_errors({name: p.predict}, X_t, y_t, classification)

            if name == "network" and shared:
                train[name] = cache.get_or_compute(("network-train", key), errors, 1)[name]
            else:
                train[name] = errors()[name]
    timings["evaluate"] = time.perf_counter() - timer
    return Evaluation(readout_fit, test, train, timings)


def record_run(
    result: RunResult,
    config: RunConfig,
    teacher: Teacher,
    streams: RunStreams,
    backend: Backend,
    student0: TwoLayer,
    trained: TrainResult,
    evaluation: Evaluation,
) -> RunResult:
    """Fill ``result`` with one run's scalars and arrays, then run its measurements.

    Takes one run's objects (a member of a batched run after :meth:`Evaluation.member`).
    """
    student = trained.student
    result.teacher, result.student_init, result.student = teacher, student0, student
    result.trajectory = list(trained.trajectory)
    for row in trained.trajectory[-1:]:
        for k, v in row.items():
            if k != "step":
                result.scalars[f"train.final_{k}"] = float(v)
    if evaluation.readout is not None:
        result.readout_coef = to_numpy(evaluation.readout.coef)
    lambdas = evaluation.lambdas
    for name, errs in evaluation.test.items():
        if not all(np.all(np.isfinite(v)) for v in errs.values()):
            # the trained parameters overflow float64 arithmetic (a huge step): a diverged run,
            # not a done one with NaN results
            steps = [row.get("step", 0) for row in trained.trajectory]
            raise DivergenceError(int(steps[-1]) if steps else 0, f"{name} test error")
    classification = teacher.task == "classification"
    bayes = teacher.bayes_risk
    for name, errs in evaluation.test.items():
        grid = None if name == "network" else lambdas
        _grid_scalars(name, errs, grid, "test", result)
        if bayes is not None and not classification:
            result.scalars[f"{name}.excess_mse"] = result.scalars[f"{name}.test_mse"] - bayes
    for name, errs in evaluation.train.items():
        _grid_scalars(name, errs, None if name == "network" else lambdas, "train", result)
    if bayes is not None:
        result.scalars["teacher.bayes_risk"] = float(bayes)

    timer = time.perf_counter()
    ctx = MeasureContext(
        teacher, student0, student, trained.batches, streams, backend, evaluation.readout, config,
        trained,
    )
    for item in config.measure:
        for k, v in measure(item.name, ctx, **item.options).items():
            if np.ndim(v) == 0:
                result.scalars[k] = float(v)
            else:
                result.arrays[k] = np.asarray(to_numpy(v))
    result.timings["measure"] = result.timings.get("measure", 0.0) + time.perf_counter() - timer
    return result


@with_run_threads
def run_once(config: RunConfig, seed: int, *, cache: StageCache | None = None) -> RunResult:
    """Run one configuration with one seed.

    Returns a :class:`RunResult`. Raises :class:`twolayer.train.DivergenceError` if training
    diverges. With ``cache``, the teacher and the trained student are shared with other runs of
    the same seed and the same teacher/student/train/backend sections.
    """
    cache = cache or StageCache(maxsize=0)
    backend = Backend(config.backend.name, config.backend.dtype, config.backend.device)
    streams = run_streams(config, int(seed))
    result = RunResult()
    timer = time.perf_counter()

    def trained() -> tuple[Teacher, TwoLayer, TrainResult]:
        teacher = build_teacher(config, streams)
        student0 = build_student(config, streams, backend)
        return teacher, student0, train_student(config, teacher, student0, streams, backend)

    key = training_key(config, int(seed))
    # the checkpoints kept are part of what is cached (runs of one student may measure others)
    teacher, student0, trained_result = cache.get_or_compute(
        ("train", key, needed_checkpoints(config)), trained
    )
    result.timings["train"] = time.perf_counter() - timer
    evaluation = evaluate_student(
        config, teacher, streams, backend, student0, trained_result, cache=cache, key=key
    )
    result.timings.update(evaluation.timings)
    return record_run(
        result, config, teacher, streams, backend, student0, trained_result, evaluation
    )
