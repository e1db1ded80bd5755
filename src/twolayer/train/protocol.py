"""Training protocols as registered components (docs/extending.md, "a protocol").

A protocol is one module of ``twolayer.train`` (or of a plugin) that owns three things:

* its **config model**, a subclass of :class:`twolayer.config.ProtocolConfig` whose field
  ``protocol: Literal["name"] = "name"`` selects it in a spec's ``train`` section;
* its **run function** ``run(config, ctx: TrainContext) -> TrainResult``, a pure function of
  the section, the initial student, the teacher and the run's random streams;
* whether it can train a **stack** of students at once (batched seeds): ``batched=True`` means
  the run function takes a stacked student (W of shape (S, N, d)), a
  :class:`~twolayer.teachers.TeacherStack` and a :class:`~twolayer.backend.StreamStack`, and
  reports diverged members in ``TrainResult.diverged``; otherwise
  :func:`twolayer.run_batch` trains the members one by one.

``@register_protocol("name", NameConfig)`` on the run function registers all three in
:data:`twolayer.registry.PROTOCOLS`; the configuration (``RunConfig.train``), the pipeline,
batched seeds and the spec's error messages all read the registry, so nothing else changes
when a protocol is added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twolayer.backend import Backend, RunStreams, StreamStack
from twolayer.config import ProtocolConfig
from twolayer.registry import PROTOCOLS
from twolayer.student import TwoLayer
from twolayer.teachers import Teacher
from twolayer.train.result import TrainResult

#: ``measure(name, student, batches)``: the scalars of the per-step measurement ``name`` on
#: ``student`` (the pipeline's, so that training code need not import the measurements).
StepMeasure = Callable[[str, TwoLayer, dict[int, tuple[Any, Any]]], dict[str, float]]


@dataclass
class TrainContext:
    """What a protocol's run function gets besides its config section.

    Attributes
    ----------
    teacher : Teacher
        The run's teacher (a TeacherStack for a batched protocol's stack).
    student : TwoLayer
        The student at initialisation (W_0, a_0); a stack for a batched protocol.
    streams : RunStreams or StreamStack
        The run's random streams; a protocol draws its batches from ("batch", j) and anything
        else from streams named after what they hold ("train_noise", "spike").
    backend : Backend
    checkpoints : frozenset of int
        The steps k after which the measurements of the run read the student: keep W_k in
        ``TrainResult.checkpoints[k]`` (k = 0 is the initial student).
    measure : StepMeasure or None
        Runs a per-step measurement on a student during training (monitors); None when the
        protocol is called outside the pipeline.
    """

    teacher: Teacher
    student: TwoLayer
    streams: RunStreams | StreamStack
    backend: Backend
    checkpoints: frozenset[int] = field(default_factory=frozenset)
    measure: StepMeasure | None = None


RunFn = Callable[[Any, TrainContext], TrainResult]


@dataclass(frozen=True)
class Protocol:
    """A registered protocol: its name, config model, run function and whether it trains a
    stack of students at once (``batched``)."""

    name: str
    config: type[ProtocolConfig]
    run: RunFn
    batched: bool = False
    description: str = ""


def register_protocol(
    name: str, config: type[ProtocolConfig], *, batched: bool = False
) -> Callable[[RunFn], RunFn]:
    """Decorator: ``@register_protocol("giant_steps", GiantStepsConfig, batched=True)`` on
    ``run(config, ctx) -> TrainResult``.

    Raises
    ------
    ValueError
        If ``config`` is not a ProtocolConfig whose ``protocol`` field defaults to ``name``
        (the tag a spec selects it by), or the name is taken.
    """
    if not (isinstance(config, type) and issubclass(config, ProtocolConfig)):
        raise ValueError(f"protocol {name!r}: config must be a ProtocolConfig subclass")
    tag = config.model_fields["protocol"].default
    if tag != name:
        raise ValueError(
            f"protocol {name!r}: {config.__name__}.protocol must default to {name!r} (write "
            f"protocol: Literal[{name!r}] = {name!r}), got {tag!r}"
        )

    def decorator(fn: RunFn) -> RunFn:
        doc = (fn.__doc__ or config.__doc__ or "").strip().splitlines()
        PROTOCOLS.add(name, Protocol(name, config, fn, batched, doc[0] if doc else ""))
        return fn

    return decorator


def get_protocol(name: str) -> Protocol:
    """The registered protocol ``name`` (did-you-mean error if unknown)."""
    protocol: Protocol = PROTOCOLS.get(name)
    return protocol


def run_protocol(section: ProtocolConfig, ctx: TrainContext) -> TrainResult:
    """Train with the protocol that ``section`` selects (``section.protocol``)."""
    return get_protocol(section.protocol).run(section, ctx)
