"""Measurement registry: a measurement is a pure function of the run's state and data.

Signature: ``fn(ctx: MeasureContext, **options) -> dict[str, float | numpy array]``. Keys are
prefixed by the pipeline with the measurement's name ("spectrum.W_top", ...). Scalars go to the
store's metric columns, arrays to its array table.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twolayer.backend import DEFAULT_BACKEND, Backend, RunStreams
from twolayer.registry import MEASUREMENTS as _MEASUREMENTS
from twolayer.registry import Registry
from twolayer.student import TwoLayer
from twolayer.teachers import Teacher


@dataclass
class MeasureContext:
    """Everything a measurement may look at (read-only by convention).

    Attributes
    ----------
    teacher : Teacher
    student_init : TwoLayer
        The student at initialisation (W_0, a_0).
    student : TwoLayer
        The trained student (after the protocol, before any readout).
    batches : dict[int, (X, y)]
        Training batches of the protocol (step index -> batch); may be empty (online SGD).
    streams : RunStreams
        The run's random streams; measurements draw probe sets from ("measure", k).
    backend : Backend
    readout : twolayer.pipeline.ReadoutFit or None
        The readout's fit when one was fitted: ``lambdas`` (L,), ``coef`` (N, L) second-layer
        weights, and its batch ``X``, ``y``.
    config : Any
        The run's resolved configuration (pydantic model), for options such as n.
    trained : twolayer.train.TrainResult or None
        What the protocol returned: the step sizes it used (``etas``), the students after the
        steps a measurement asked for (``checkpoints``, see :attr:`Measurement.checkpoints`)
        and its own draws (``info``, e.g. the sRF spike direction). Measurements read these
        instead of re-running training or re-drawing its streams.
    """

    teacher: Teacher
    student_init: TwoLayer
    student: TwoLayer
    batches: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    streams: RunStreams = field(default_factory=lambda: RunStreams(0))
    backend: Backend = DEFAULT_BACKEND
    readout: Any = None
    config: Any = None
    trained: Any = None

    def probe(self, n: int, k: int = 0) -> tuple[Any, Any]:
        """A fresh probe sample of size n from stream ("measure", k) (deterministic)."""
        return self.teacher.sample(n, self.streams.generator("measure", k), self.backend)


MeasureFn = Callable[..., dict[str, float | np.ndarray]]
#: ``checkpoints(config, options)``: the steps k after which the protocol must keep the student
#: (W_k) for this measurement (:attr:`TrainResult.checkpoints <twolayer.train.TrainResult>`).
CheckpointsFn = Callable[[Any, dict[str, Any]], "set[int]"]
#: ``check(config, options)``: raise ValueError when ``options`` (every option of the
#: measurement, defaults filled in) cannot work, or cannot work with the run's ``config`` (a
#: :class:`twolayer.config.RunConfig`, or None for a context built by hand).
CheckFn = Callable[[Any, dict[str, Any]], None]


@dataclass(frozen=True)
class Measurement:
    """A registered measurement and whether it can run inside a training trajectory
    (``per_step``: needs only the current student and the teacher).

    ``check`` holds what can be decided before the run: it runs when a spec is validated (so a
    sweep with a wrong option or a run it cannot measure fails at once, with the spec's line)
    and again before every evaluation. ``checkpoints`` says which intermediate students the
    measurement reads (``ctx.trained.checkpoints[k]``); the pipeline collects them from every
    measurement of a run before training, so the protocol keeps exactly those.
    """

    name: str
    fn: MeasureFn
    per_step: bool = False
    description: str = ""
    check: CheckFn | None = None
    checkpoints: CheckpointsFn | None = None

    def needed_checkpoints(self, config: Any, options: dict[str, Any]) -> set[int]:
        """The steps k whose student W_k this measurement reads, for ``config``/``options``."""
        if self.checkpoints is None:
            return set()
        return set(self.checkpoints(config, self.options_with_defaults(options)))

    def options_with_defaults(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with the defaults of the options not given (unknown ones raise)."""
        try:
            bound = inspect.signature(self.fn).bind_partial(None, **options)
        except TypeError as exc:
            raise ValueError(f"measurement {self.name!r}: {exc}") from None
        bound.apply_defaults()
        return dict(list(bound.arguments.items())[1:])

    def validate(self, config: Any, options: dict[str, Any]) -> None:
        """Run ``check`` on ``options`` (defaults filled in) and ``config``."""
        if self.check is not None:
            self.check(config, self.options_with_defaults(options))


#: The registry (created in :mod:`twolayer.registry`, so that the configuration layer can look
#: measurements up without importing this package).
MEASUREMENTS: Registry[Measurement] = _MEASUREMENTS


def register_measurement(
    name: str, *, per_step: bool = False, check: CheckFn | None = None,
    checkpoints: CheckpointsFn | None = None,
) -> Callable[[MeasureFn], MeasureFn]:
    """Decorator: ``@register_measurement("spectrum")`` on ``fn(ctx, **options) -> dict``;
    ``check`` and ``checkpoints`` are the measurement's :attr:`Measurement.check` and
    :attr:`Measurement.checkpoints`."""

    def decorator(fn: MeasureFn) -> MeasureFn:
        doc = (fn.__doc__ or "").strip().splitlines()
        MEASUREMENTS.add(
            name, Measurement(name, fn, per_step, doc[0] if doc else "", check, checkpoints)
        )
        return fn

    return decorator


def measure(name: str, ctx: MeasureContext, **options: Any) -> dict[str, float | np.ndarray]:
    """Run the measurement ``name`` (after its check) and prefix its keys with ``name.``."""
    m = MEASUREMENTS.get(name)
    m.validate(ctx.config, options)
    try:
        values = m.fn(ctx, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise ValueError(f"measurement {name!r}: {exc}") from None
        raise
    return {f"{name}.{k}": v for k, v in values.items()}


def choice(what: str, value: Any, allowed: tuple[Any, ...]) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{what} must be one of {options}, got {value!r}")


def at_least(what: str, value: Any, low: float, *, optional: bool = False) -> None:
    """Raise ValueError unless ``value`` >= ``low`` (None allowed when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{what} must be a number >= {low:g}, got {value!r}")
    if not value >= low:
        raise ValueError(f"{what} must be >= {low:g}, got {value!r}")
