"""One run, stage by stage: teacher, student init, protocol, readout, errors, measurements.

Each stage draws from its own random stream, so a stage's output depends only on the seed and
the config sections it reads. :class:`StageCache` keeps the teacher and the trained student of
recent (seed, sections) keys, so runs of a sweep that differ only in later stages (readout size,
lambda grid, measurements, n_test) reuse them and get exactly the numbers they would get alone.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twolayer.backend import Backend, RunStreams, StreamStack, to_numpy
from twolayer.config import (
    MONITOR_METRICS,
    GDConfig,
    GiantStepsConfig,
    RunConfig,
    SpikedConfig,
    StagesConfig,
)
from twolayer.losses import get_loss
from twolayer.measure import MeasureContext, chunked_errors, dataset_errors, measure
from twolayer.student import TwoLayer, init_student
from twolayer.teachers import Teacher
from twolayer.train.gd import gradient_descent
from twolayer.train.readout import KernelRidge, LinearRidge, ridge_path
from twolayer.train.spiked import spiked_features
from twolayer.train.steps import TrainResult, giant_steps


class StageCache:
    """A small LRU cache of stage outputs keyed by (stage, seed, config sections).

    Parameters
    ----------
    maxsize : int
        Entries kept; a trained student costs N x d floats, so keep this small.
    """

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        value = compute()
        self._data[key] = value
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return value


def _section_key(*sections: Any) -> str:
    return json.dumps(
        [s.model_dump(mode="json") if hasattr(s, "model_dump") else s for s in sections],
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
    return config.teacher.build(streams.generator("teacher"))


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


def _monitor(
    config: GDConfig,
    teacher: Teacher,
    streams: RunStreams,
    backend: Backend,
    init: TwoLayer,
    batches: dict[int, tuple[Any, Any]] | None = None,
) -> Callable[[TwoLayer, int], dict[str, float]] | None:
    if not config.monitor:
        return None
    X_mon, y_mon = teacher.sample(config.monitor_n, streams.generator("measure", 1_000), backend)
    loss = get_loss(config.loss)
    classification = teacher.task == "classification"

    def monitor(student: TwoLayer, step: int) -> dict[str, float]:
        row: dict[str, float] = {}
        f = None
        for name in config.monitor:
            if name in MONITOR_METRICS:
                f = student.forward(X_mon) if f is None else f
                if name == "test_loss":
                    row[name] = float(loss.value(f, y_mon).mean())
                elif name == "test_mse":
                    row[name] = float(((f - y_mon) ** 2).mean())
                elif classification:
                    row[name] = float((np.sign(to_numpy(f)) != to_numpy(y_mon)).mean())
            else:
                ctx = MeasureContext(
                    teacher, init, student, batches or {}, streams=streams, backend=backend
                )
                for k, v in measure(name, ctx).items():
                    if np.ndim(v) == 0:
                        row[k] = float(v)
        return row

    return monitor


def _train_stages(
    config: StagesConfig, teacher: Teacher, student: TwoLayer, streams: RunStreams,
    backend: Backend,
) -> TrainResult:
    """GD stages in order on one training set (stream ("batch", 0)); stage k draws minibatch
    orders and Langevin noise from ("train_noise", 2k) and ("train_noise", 2k + 1). Monitored
    measurements compare with the student at initialisation (before stage 0)."""
    data = teacher.sample(config.n, streams.generator("batch", 0), backend)
    current, rows, offset = student, [], 0
    for k, stage in enumerate(config.stages):
        res = gradient_descent(
            current,
            teacher,
            streams,
            stage.build(),
            n=config.n,
            loss=get_loss(stage.loss),
            backend=backend,
            monitor=_monitor(stage, teacher, streams, backend, student, {0: data}),
            data=data,
            noise_streams=(2 * k, 2 * k + 1),
        )
        for row in res.trajectory:
            rows.append({**row, "step": row["step"] + offset, "stage": float(k)})
        offset += stage.steps
        current = res.student
    return TrainResult(current, rows, {0: data}, {"stages": len(config.stages), "steps": offset})


def train_student(
    config: RunConfig, teacher: Teacher, student: TwoLayer, streams: RunStreams, backend: Backend
) -> TrainResult:
    """Run the configured protocol from ``student``."""
    t = config.train
    if isinstance(t, GiantStepsConfig):
        return giant_steps(
            student,
            teacher,
            streams,
            [s.build() for s in t.steps],
            n=t.n,
            loss=get_loss(t.loss),
            backend=backend,
        )
    if isinstance(t, StagesConfig):
        return _train_stages(t, teacher, student, streams, backend)
    if isinstance(t, SpikedConfig):
        return spiked_features(student, teacher, streams, t.build(), backend=backend)
    if isinstance(t, GDConfig):
        # the training set is drawn here (the same stream gradient_descent would use) so that
        # monitored measurements such as the generalisation gap see it
        data = None if t.online else teacher.sample(t.n, streams.generator("batch", 0), backend)
        batches = {0: data} if data is not None else None
        return gradient_descent(
            student,
            teacher,
            streams,
            t.build(),
            n=t.n,
            loss=get_loss(t.loss),
            backend=backend,
            monitor=_monitor(t, teacher, streams, backend, student, batches),
            data=data,
        )
    return TrainResult(student)


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
class Evaluation:
    """The readout and the errors of a trained student (or of a stack of them).

    Attributes
    ----------
    lambdas : (L,) array or None
        The readout's lambda grid (None without a readout).
    readout : dict or None
        ``{"lambdas", "coef" (N, L), "X", "y"}``: the readout's fit and its batch.
    test, train : dict
        predictor name -> {"mse": (L,) or (1,), "err01": ...}: test errors, and errors on the
        training data (``train`` is empty unless ``evaluate.train_errors``).
    timings : dict[str, float]
        Seconds spent in "readout" and "evaluate".

    For a stack of S students every array has a leading S axis; :meth:`member` takes one out.
    """

    lambdas: np.ndarray | None
    readout: dict[str, Any] | None
    test: dict[str, dict[str, np.ndarray]]
    train: dict[str, dict[str, np.ndarray]]
    timings: dict[str, float]

    def member(self, i: int) -> Evaluation:
        """Member i of a stacked evaluation, as the evaluation of that seed's run."""
        readout = None
        if self.readout is not None:
            readout = {k: (v if k == "lambdas" else v[i]) for k, v in self.readout.items()}
        return Evaluation(
            self.lambdas,
            readout,
            {name: {k: v[i] for k, v in e.items()} for name, e in self.test.items()},
            {name: {k: v[i] for k, v in e.items()} for name, e in self.train.items()},
            dict(self.timings),
        )


class _LastFeatures:
    """sigma(X W^T) of the last (student, X) asked for.

    The network and its readout predict on the same test chunk from the same features; with
    this they compute them once (a GEMM of chunk x d x N saved per chunk). The memo holds its
    student and X, so an identity match cannot be a recycled object.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, Any] | None = None
        self._value: Any = None

    def __call__(self, student: TwoLayer, X: Any) -> Any:
        if self._key is None or self._key[0] is not student or self._key[1] is not X:
            # drop the previous chunk's features first: memory stays one chunk of features
            self._key = self._value = None
            self._key, self._value = (student, X), student.features(X)
        return self._value


def evaluate_student(
    config: RunConfig,
    teacher: Teacher,
    streams: RunStreams | StreamStack,
    backend: Backend,
    student0: TwoLayer,
    trained: TrainResult,
) -> Evaluation:
    """Fit the readout (and its baselines) and compute the test and training errors.

    Takes one run's objects, or the stacks of a batched run (TeacherStack, StreamStack,
    stacked students and TrainResult): the same code computes either.
    """
    timings: dict[str, float] = {}
    timer = time.perf_counter()
    student = trained.student
    features = _LastFeatures()

    def predict_network(X: Any, s: TwoLayer = student) -> Any:
        return s.output(features(s, X))

    predictors: dict[str, Callable[[Any], Any]] = {"network": predict_network}
    train_predictors: dict[str, Callable[[Any], Any]] = {"network": predict_network}
    lambdas = None
    readout_info = None
    r = config.readout
    if r is not None:
        lambdas = np.asarray(r.lambdas, dtype=float)
        if r.batch == "reuse" and 0 in trained.batches:
            X_r, y_r = trained.batches[0]
        else:
            n_r = r.n or config.train_n
            X_r, y_r = teacher.sample(n_r, streams.generator("readout"), backend)
        coef = ridge_path(student.scale * student.features(X_r), y_r, lambdas, r.penalty)
        readout_student = student

        def predict_readout(X: Any, s: TwoLayer = readout_student, A: Any = coef) -> Any:
            return s.scale * (features(s, X) @ A)

        predictors["readout"] = train_predictors["readout"] = predict_readout
        readout_info = {"lambdas": lambdas, "coef": coef, "X": X_r, "y": y_r}
        if "random_features" in r.baselines:
            coef_rf = ridge_path(student0.scale * student0.features(X_r), y_r, lambdas, r.penalty)

            def predict_rf(X: Any, s: TwoLayer = student0, A: Any = coef_rf) -> Any:
                return s.scale * (features(s, X) @ A)

            predictors["random_features"] = train_predictors["random_features"] = predict_rf
        if "linear" in r.baselines:
            lin = LinearRidge.fit(X_r, y_r, lambdas, r.penalty)
            predictors["linear"] = train_predictors["linear"] = lin.predict
        if "kernel" in r.baselines:
            ker = KernelRidge.fit(
                X_r,
                y_r,
                lambdas,
                student0.activation,
                w_scale=config.student.w_scale,
                penalty=r.penalty,
            )
            predictors["kernel"] = train_predictors["kernel"] = ker.predict
    now = time.perf_counter()
    timings["readout"], timer = now - timer, now

    ev = config.evaluate
    test = chunked_errors(predictors, teacher, streams, ev.n_test, chunk=ev.chunk, backend=backend)
    train: dict[str, dict[str, np.ndarray]] = {}
    if ev.train_errors:
        classification = teacher.task == "classification"
        if readout_info is not None:
            train_sets = {name: (readout_info["X"], readout_info["y"]) for name in train_predictors}
        else:
            train_sets = {}
        if 0 in trained.batches:
            train_sets["network"] = trained.batches[0]
        for name, (X_t, y_t) in train_sets.items():
            errs = dataset_errors({name: train_predictors[name]}, X_t, y_t, classification)
            train[name] = errs[name]
    timings["evaluate"] = time.perf_counter() - timer
    return Evaluation(lambdas, readout_info, test, train, timings)


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
        result.readout_coef = to_numpy(evaluation.readout["coef"])
    lambdas = evaluation.lambdas
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
        teacher, student0, student, trained.batches, streams, backend, evaluation.readout, config
    )
    for item in config.measure:
        for k, v in measure(item.name, ctx, **item.options).items():
            if np.ndim(v) == 0:
                result.scalars[k] = float(v)
            else:
                result.arrays[k] = np.asarray(to_numpy(v))
    result.timings["measure"] = result.timings.get("measure", 0.0) + time.perf_counter() - timer
    return result


def run_once(config: RunConfig, seed: int, *, cache: StageCache | None = None) -> RunResult:
    """Run one configuration with one seed.

    Returns a :class:`RunResult`. Raises :class:`twolayer.train.DivergenceError` if training
    diverges. With ``cache``, the teacher and the trained student are shared with other runs of
    the same seed and the same teacher/student/train/backend sections.
    """
    cache = cache or StageCache(maxsize=0)
    backend = Backend(config.backend.name, config.backend.dtype, config.backend.device)
    streams = RunStreams(int(seed))
    result = RunResult()
    timer = time.perf_counter()

    def trained() -> tuple[Teacher, TwoLayer, TrainResult]:
        teacher = build_teacher(config, streams)
        student0 = build_student(config, streams, backend)
        return teacher, student0, train_student(config, teacher, student0, streams, backend)

    key = (
        "train",
        int(seed),
        _section_key(config.teacher, config.student, config.train, config.backend),
    )
    teacher, student0, trained_result = cache.get_or_compute(key, trained)
    result.timings["train"] = time.perf_counter() - timer
    evaluation = evaluate_student(config, teacher, streams, backend, student0, trained_result)
    result.timings.update(evaluation.timings)
    return record_run(
        result, config, teacher, streams, backend, student0, trained_result, evaluation
    )
