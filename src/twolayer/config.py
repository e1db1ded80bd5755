"""Typed configuration of one run (teacher, student, training, readout, evaluation,
measurements, backend), validated by pydantic.

A sweep spec (twolayer.experiment) adds name, seeds, sweep, executor and store around these
sections; this module only knows what a single run needs, so the core can run without the
experiment layer. Every model forbids unknown keys; option dictionaries of registered components
(teacher options, activation options) are checked against the component's signature.

Layering: this module imports only the component layers below it (activations, teachers,
losses, the student's and the backend's allowed values) and the registries
(:mod:`twolayer.registry`). The ``train`` section's models live with their protocols in
``twolayer.train`` and are found through :data:`~twolayer.registry.PROTOCOLS`; measurements
are checked through :data:`~twolayer.registry.MEASUREMENTS`. Each registry imports its
built-in package on first use, so validating a config needs neither import here.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, ClassVar, Literal, Union

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from twolayer.activations import ACTIVATIONS, Activation, get_activation
from twolayer.backend import BackendName, DType
from twolayer.losses import LOSSES, Penalty
from twolayer.registry import MEASUREMENTS, PROTOCOLS
from twolayer.student import AInit, Scaling, WInit
from twolayer.teachers import TEACHERS, Teacher, get_teacher


class _Model(BaseModel):
    # NaN and inf are refused in every float field: a run that starts from one stores NaNs as
    # results ("teacher.noise: .nan" gave a done run with a NaN Bayes risk)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: The base of every config model: unknown keys, NaN and infinity refused, frozen. A plugin's
#: config models (a protocol's section, docs/extending.md) derive from it or from
#: :class:`ProtocolConfig`.
ConfigModel = _Model


def _non_finite(value: Any, where: str = "") -> str | None:
    """The path (within ``value``) of its first NaN or infinite float, or None."""
    if isinstance(value, float) and not np.isfinite(value):
        return where or "value"
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite(v, f"{where}.{k}" if where else str(k))
            if found:
                return found
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _non_finite(v, f"{where}[{i}]")
            if found:
                return found
    return None


def check_options(kind: str, name: str, fn: Any, options: dict[str, Any], skip: tuple = ()) -> None:
    """Raise ValueError naming any option that ``fn`` does not accept (with a did-you-mean), or
    any option holding NaN or infinity."""
    bad = _non_finite(options)
    if bad:
        raise ValueError(f"{kind} {name!r}: option {bad} is not a finite number")
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [p for p in params if p not in skip and p != "self"]
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{kind} {name!r} has no option {key!r}{hint}; its options are: "
                f"{', '.join(allowed) or 'none'}"
            )


class ActivationConfig(_Model):
    """An activation by name with its options; a plain string is accepted (``"relu"``)."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    name: str = Field("relu", description="registered activation name")
    scale: float = Field(1.0, description="input map sigma(scale * z + shift): the scale")
    shift: float = Field(0.0, description="input map sigma(scale * z + shift): the shift")
    center: bool = Field(False, description="subtract mu_0 = E[sigma(z)]")
    remove_linear: bool = Field(False, description="subtract the linear part mu_1 z")
    normalize: bool = Field(False, description="divide by sqrt(E[sigma(z)^2]) (applied last)")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> ActivationConfig:
        if self.name not in ACTIVATIONS:
            raise ValueError(ACTIVATIONS.unknown_message(self.name))
        check_options("activation", self.name, ACTIVATIONS.get(self.name), self.options)
        self.build()
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self) -> Activation:
        return get_activation(
            self.name,
            scale=self.scale,
            shift=self.shift,
            center=self.center,
            remove_linear=self.remove_linear,
            normalize=self.normalize,
            **self.options,
        )


class TeacherConfig(_Model):
    """The data model: ``name`` (registered teacher), ``d`` and the teacher's own options."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    name: str = Field(description="registered teacher: " + ", ".join(TEACHERS.names()))
    d: PositiveInt = Field(description="input dimension")

    @model_validator(mode="after")
    def _check(self) -> TeacherConfig:
        if self.name not in TEACHERS:
            raise ValueError(TEACHERS.unknown_message(self.name))
        check_options("teacher", self.name, TEACHERS.get(self.name), self.options, ("d", "rng"))
        self.build(np.random.default_rng(0))  # validates option values
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self, rng: np.random.Generator) -> Teacher:
        return get_teacher(self.name, d=self.d, rng=rng, **self.options)


class StudentConfig(_Model):
    """The two-layer student f(x) = scale(N) sum_i a_i sigma(<w_i, x>)."""

    N: PositiveInt = Field(description="width (number of hidden neurons)")
    activation: ActivationConfig = Field(
        default_factory=ActivationConfig,
        description="sigma: a registered activation (name or mapping)",
    )
    scaling: Scaling = Field(
        "standard", description="output scale 1/sqrt(N) (standard) or 1/N (mean_field)"
    )
    w_init: WInit = Field(
        "gaussian", description="gaussian: entries N(0, w_scale^2/d); sphere: rows of norm w_scale"
    )
    w_scale: PositiveFloat = Field(1.0, description="row norm of W_0 (small = small init)")
    a_init: AInit = Field(
        "gaussian", description="second-layer init: N(0, a_scale^2), +-a_scale, balanced, constant"
    )
    a_scale: float = Field(1.0, description="scale of the second-layer init")


class ProtocolConfig(_Model):
    """Base of a training protocol's ``train`` section (docs/extending.md, "a protocol").

    A protocol's config model subclasses this with ``protocol: Literal["name"] = "name"``, the
    tag that selects it, and is registered with its run function
    (:func:`twolayer.train.protocol.register_protocol`); ``RunConfig.train`` accepts the
    section of any registered protocol.
    """

    protocol: str = Field(description="selects the protocol")

    def reuse_problem(self) -> str | None:
        """Why a readout cannot reuse the first training batch (None: it can, when the
        protocol draws one; see ``RunConfig``'s readout checks)."""
        return None


def check_loss(name: str) -> str:
    """A registered loss name, or ValueError with the registered ones."""
    if name not in LOSSES:
        raise ValueError(LOSSES.unknown_message(name))
    return name


#: The readout's baselines (twolayer.pipeline's predictors of the same names).
Baseline = Literal["random_features", "linear", "kernel"]


class ReadoutConfig(_Model):
    """Ridge regression of the second layer, over a grid of lambda (one eigendecomposition)."""

    n: PositiveInt | None = Field(None, description="readout batch size (default train.n)")
    batch: Literal["fresh", "reuse"] = Field(
        "fresh", description="fresh batch, or reuse the first training batch"
    )
    lambdas: list[NonNegativeFloat] = Field(
        default_factory=lambda: [1e-3], min_length=1, description="ridge penalties; 0 = min-norm"
    )
    penalty: Penalty = Field(
        "mean", description="penalty added to the mean (1/n sum) or the sum of squared errors"
    )
    baselines: list[Baseline] = Field(
        default_factory=list,
        description="also fit: ridge on the student at init, linear ridge on x, kernel ridge "
        "with the conjugate kernel at init",
    )


class EvaluateConfig(_Model):
    """Test-error evaluation."""

    n_test: PositiveInt = Field(10_000, description="test samples (streamed, never stored)")
    chunk: PositiveInt = Field(4096, description="test samples evaluated at once")
    train_errors: bool = Field(True, description="also report errors on the training data")


class MeasureItem(_Model):
    """A measurement by name with options; a plain string is accepted."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    name: str = Field(description="registered measurement")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> MeasureItem:
        if self.name not in MEASUREMENTS:
            raise ValueError(MEASUREMENTS.unknown_message(self.name))
        check_options(
            "measurement", self.name, MEASUREMENTS.get(self.name).fn, self.options, ("ctx",)
        )
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DrawsConfig(_Model):
    """Stages drawn once for all the seeds of a sweep (a notebook's "one W_0, one step, fresh
    readout and test data per seed" design).

    The streams of the stages in ``fixed`` follow ``seed`` instead of the run's seed, so they
    are bit-identical across seeds; the other stages follow the run's seed as usual. Runs whose
    teacher, init and training are all fixed share one trained student across seeds.
    """

    fixed: list[Literal["teacher", "init", "train", "readout", "test"]] = Field(
        default_factory=list,
        description="stages with one draw for every seed: teacher (its directions), init "
        "(W_0, a_0), train (the training batches, minibatch orders, Langevin noise, the sRF "
        "spike), readout (its batch), test (the test set)",
    )
    seed: NonNegativeInt = Field(0, description="the seed the fixed stages draw from")

    @field_validator("fixed")
    @classmethod
    def _unique(cls, stages: list[str]) -> list[str]:
        if len(set(stages)) != len(stages):
            raise ValueError(f"draws.fixed lists a stage twice: {stages}")
        return stages


class LabelsConfig(_Model):
    """Labels preprocessed with statistics of the batch itself (as notebooks do), applied to
    every batch: each training batch, the readout batch and the test set, each with its own
    estimates. The population versions are options of the link (``center``, ``remove_linear``).
    """

    center: bool = Field(False, description="subtract the batch's own mean label")
    remove_linear: bool = Field(
        False,
        description="subtract <x, c> with c = (1/n) X^T y, the batch's own estimate of the "
        "first Hermite coefficient (from the raw labels)",
    )


class BackendConfig(_Model):
    """Array backend (NumPy, or PyTorch for GPUs), precision and device."""

    name: BackendName = Field("numpy", description="array library")
    dtype: DType = Field("float64", description="floating-point precision")
    device: str | None = Field(None, description="torch device: cpu, cuda, cuda:1")


def _no_training() -> ProtocolConfig:
    """The default ``train`` section: the ``none`` protocol (random features)."""
    config: ProtocolConfig = PROTOCOLS.get("none").config()
    return config


class RunConfig(_Model):
    """Everything one run needs besides its seed.

    ``train`` accepts the section of any registered protocol, selected by its ``protocol``
    tag: its annotation is the discriminated union of the registered config models, set when
    the schema is first built (after the built-in protocols are loaded) and rebuilt when a
    plugin registers another protocol (:func:`_protocols_changed`).
    """

    # built on first use: the train union needs the registered protocols, which import this
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    #: The sections that, with the seeds of the teacher, init and train streams, fix the
    #: trained student: runs that agree on them share one (the stage cache and the sweep
    #: planner both use :meth:`training_sections`).
    TRAINING_SECTIONS: ClassVar[tuple[str, ...]] = (
        "teacher", "student", "train", "backend", "labels"
    )

    teacher: TeacherConfig = Field(description="the data model")
    student: StudentConfig = Field(description="the two-layer network")
    train: ProtocolConfig = Field(
        default_factory=_no_training,
        description="feature training: giant_steps, gd, stages, spiked or none",
    )
    readout: ReadoutConfig | None = Field(None, description="omit to evaluate the network as is")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="test errors")
    measure: list[MeasureItem] = Field(
        default_factory=list, description="measurements after training and readout"
    )
    backend: BackendConfig = Field(
        default_factory=BackendConfig, description="array backend and precision"
    )
    draws: DrawsConfig = Field(
        default_factory=DrawsConfig, description="stages drawn once for all seeds"
    )
    labels: LabelsConfig = Field(
        default_factory=LabelsConfig,
        description="labels preprocessed with each batch's own statistics",
    )

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        _set_train_union()  # loads the built-in protocols first
        return handler(source)

    @model_validator(mode="wrap")
    @classmethod
    def _load_plugin_protocol(cls, data: Any, handler: Any) -> Any:
        """A ``train.protocol`` no registered protocol has: let the registry load the installed
        plugins (an entry point may register it, which rebuilds this schema), then validate
        with the schema that knows it."""
        train = data.get("train") if isinstance(data, dict) else None
        tag = train.get("protocol") if isinstance(train, dict) else None
        if isinstance(tag, str) and tag not in PROTOCOLS.names() and tag in PROTOCOLS:
            return cls.model_validate(data)
        return handler(data)

    def training_sections(self) -> list[Any]:
        """The :attr:`TRAINING_SECTIONS` as JSON-able data, in order: what (with the seeds)
        fixes the trained student."""
        return [getattr(self, name).model_dump(mode="json") for name in self.TRAINING_SECTIONS]

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        # every measurement that cannot work is reported, each at its own measure[i]
        errors = []
        for i, item in enumerate(self.measure):
            try:
                MEASUREMENTS.get(item.name).validate(self, item.options)
            except ValueError as exc:
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError("value_error", "{message}", {"message": str(exc)}),
                        loc=("measure", i),
                        input={"name": item.name, **item.options},
                    )
                )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        r = self.readout
        if self.train_n is None and r is not None:  # a protocol without training data
            if r.batch == "reuse" or r.n is None:
                raise ValueError(
                    f"readout: with train.protocol {self.train.protocol!r} give readout.n and "
                    "batch 'fresh'"
                )
        if r is not None and r.batch == "reuse":
            if r.n is not None:
                raise ValueError(
                    f"readout.n = {r.n}: a reused batch is the first training batch, of its own "
                    "size; drop readout.n or use batch 'fresh'"
                )
            problem = self.train.reuse_problem()
            if problem is not None:
                raise ValueError(problem)
        return self

    @property
    def train_n(self) -> int | None:
        """The protocol's training size ``train.n`` (None for a protocol without data)."""
        return getattr(self.train, "n", None)


def protocol_configs() -> tuple[type[ProtocolConfig], ...]:
    """The registered protocols' config models, in registration order (the built-in ones are
    loaded first); ``RunConfig.train``'s annotation is made their union, for code that reads
    the annotations before anything was validated (the generated docs/spec.md)."""
    _set_train_union()
    return tuple(p.config for p in PROTOCOLS.values())


def _set_train_union() -> None:
    """Make ``RunConfig.train`` the discriminated union of the registered protocols' configs,
    in the order they were registered."""
    configs = tuple(p.config for p in PROTOCOLS.values())
    old = RunConfig.model_fields["train"]
    if len(configs) > 1:
        union: Any = Union[configs]  # noqa: UP007 (a tuple of types needs the subscript form)
        new = FieldInfo.merge_field_infos(old, annotation=union, discriminator="protocol")
    else:
        new = FieldInfo.merge_field_infos(old, annotation=configs[0] if configs else old.annotation)
    RunConfig.model_fields["train"] = new


def _protocols_changed(name: str, protocol: Any) -> None:
    """A protocol was registered (or removed): update ``RunConfig.train``'s union, and rebuild
    the schema if it was built already (a plugin registered after the first validation)."""
    _set_train_union()
    if RunConfig.__pydantic_complete__:
        RunConfig.model_rebuild(force=True)


PROTOCOLS.on_add(_protocols_changed)
