"""Typed configuration of one run (teacher, student, training, readout, evaluation,
measurements, backend), validated by pydantic.

A sweep spec (twolayer.experiment) adds name, seeds, sweep, executor and store around these
sections; this module only knows what a single run needs, so the core can run without the
experiment layer. Every model forbids unknown keys; option dictionaries of registered components
(teacher options, activation options) are checked against the component's signature.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Annotated, Any, Literal

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
from pydantic_core import InitErrorDetails, PydanticCustomError

from twolayer.activations import ACTIVATIONS, Activation, get_activation
from twolayer.losses import LOSSES
from twolayer.teachers import TEACHERS, Teacher, get_teacher
from twolayer.theory.spiked_rf import SpikedRFParameters
from twolayer.train.gd import GDOptions
from twolayer.train.schedule import StepSize
from twolayer.train.spiked import SpikedOptions
from twolayer.train.steps import GiantStep


class _Model(BaseModel):
    # NaN and inf are refused in every float field: a run that starts from one stores NaNs as
    # results ("teacher.noise: .nan" gave a done run with a NaN Bayes risk)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    scaling: Literal["standard", "mean_field"] = Field(
        "standard", description="output scale 1/sqrt(N) (standard) or 1/N (mean_field)"
    )
    w_init: Literal["gaussian", "sphere"] = Field(
        "gaussian", description="gaussian: entries N(0, w_scale^2/d); sphere: rows of norm w_scale"
    )
    w_scale: PositiveFloat = Field(1.0, description="row norm of W_0 (small = small init)")
    a_init: Literal["gaussian", "pm1", "balanced", "constant"] = Field(
        "gaussian", description="second-layer init: N(0, a_scale^2), +-a_scale, balanced, constant"
    )
    a_scale: float = Field(1.0, description="scale of the second-layer init")


class StepSizeConfig(_Model):
    """eta = c * S^alpha (S one of n, N, d, 1). A plain number means eta = c."""

    c: float = Field(1.0, description="constant")
    alpha: float = Field(0.0, ge=-1.0, le=1.0, description="exponent, in [-1, 1]")
    S: Literal["n", "N", "d", "1"] = Field("1", description="the size the step scales with")

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"c": value}
        return value

    def build(self) -> StepSize:
        return StepSize(self.c, self.alpha, self.S)


class GiantStepConfig(_Model):
    """One full-batch step on a fresh or an earlier (reused) batch."""

    eta: StepSizeConfig = Field(
        default_factory=StepSizeConfig, description="step size eta = c * S^alpha"
    )
    batch: Literal["fresh"] | NonNegativeInt = Field(
        "fresh", description="'fresh', or the index of an earlier step whose batch is reused"
    )
    layer: Literal["W", "a", "both"] = Field("W", description="the layer(s) the step updates")
    n: PositiveInt | None = Field(None, description="batch size of a fresh batch (default train.n)")

    def build(self) -> GiantStep:
        return GiantStep(self.eta.build(), self.batch, self.layer, self.n)


def _check_loss(name: str) -> str:
    if name not in LOSSES:
        raise ValueError(LOSSES.unknown_message(name))
    return name


class GiantStepsConfig(_Model):
    """A list of giant gradient steps (Ba et al. 2022; Moniri et al. 2023; two-step analysis)."""

    protocol: Literal["giant_steps"] = Field("giant_steps", description="selects this protocol")
    n: PositiveInt = Field(description="size of each fresh training batch")
    loss: str = Field("square", description="square, logistic, hinge or absolute")
    steps: list[GiantStepConfig] = Field(
        default_factory=lambda: [GiantStepConfig()],
        description="the steps, in order (default: one step with eta = 1 on a fresh batch)",
    )

    _loss = field_validator("loss")(_check_loss)

    @model_validator(mode="after")
    def _check_batches(self) -> GiantStepsConfig:
        for k, step in enumerate(self.steps):
            if step.batch != "fresh" and step.batch >= k:
                raise ValueError(
                    f"steps[{k}].batch = {step.batch}: a reused batch must come from an earlier "
                    f"step (0..{k - 1})"
                )
        return self


class WeightDecayConfig(_Model):
    W: NonNegativeFloat = Field(0.0, description="L2 weight decay on the first layer")
    a: NonNegativeFloat = Field(0.0, description="L2 weight decay on the second layer")


#: Monitor metrics computed by the GD protocol itself on its held-out monitor set.
MONITOR_METRICS = ("test_loss", "test_err01", "test_mse")


class GDConfig(_Model):
    """Full-batch GD or minibatch/online SGD, optional weight decay and Langevin noise."""

    protocol: Literal["gd"] = Field("gd", description="selects this protocol")
    n: PositiveInt = Field(description="training set size (batch size of online SGD if unset)")
    loss: str = Field("square", description="square, logistic, hinge or absolute")
    steps: NonNegativeInt = Field(100, description="number of steps")
    eta: StepSizeConfig = Field(
        default_factory=StepSizeConfig, description="initial step size eta_0 = c * S^alpha"
    )
    decay: NonNegativeFloat = Field(0.0, description="eta_t = eta_0 (1 + t)^(-decay)")
    batch_size: PositiveInt | None = Field(None, description="None = full batch")
    online: bool = Field(False, description="fresh batch every step (one-pass SGD)")
    train: Literal["W", "a", "both"] = Field("both", description="the layer(s) trained")
    weight_decay: WeightDecayConfig = Field(
        default_factory=WeightDecayConfig, description="L2 penalties per layer"
    )
    temperature: NonNegativeFloat = Field(0.0, description="Langevin temperature T")
    record_every: PositiveInt = Field(10, description="trajectory stride")
    monitor: list[str] = Field(
        default_factory=list,
        description="metrics recorded along the trajectory: test_loss, test_err01, or a "
        "per-step measurement name",
    )
    monitor_n: PositiveInt = Field(2000, description="size of the held-out monitor set")

    _loss = field_validator("loss")(_check_loss)

    @field_validator("monitor")
    @classmethod
    def _check_monitor(cls, names: list[str]) -> list[str]:
        from twolayer.measure import MEASUREMENTS

        for name in names:
            if name in MONITOR_METRICS:
                continue
            if name not in MEASUREMENTS:
                raise ValueError(
                    f"{name!r} is neither a monitor metric ({', '.join(MONITOR_METRICS)}) nor "
                    f"a measurement; {MEASUREMENTS.unknown_message(name)}"
                )
            if not MEASUREMENTS.get(name).per_step:
                per_step = [m for m in MEASUREMENTS.names() if MEASUREMENTS.get(m).per_step]
                raise ValueError(
                    f"measurement {name!r} cannot run per step; those that can: "
                    f"{', '.join(per_step)}"
                )
        return names

    def build(self) -> GDOptions:
        return GDOptions(
            steps=self.steps,
            eta=self.eta.build(),
            decay=self.decay,
            batch_size=self.batch_size,
            online=self.online,
            train=self.train,
            weight_decay_W=self.weight_decay.W,
            weight_decay_a=self.weight_decay.a,
            temperature=self.temperature,
            record_every=self.record_every,
        )


class NoTrainConfig(_Model):
    """No feature training (random features)."""

    protocol: Literal["none"] = Field("none", description="selects this protocol")


class StagesConfig(_Model):
    """GD stages run one after another from where the previous one stopped, on one training set
    (e.g. fit to a low loss, then GD on a weight-decay-regularised objective).

    Each stage is a full ``gd`` section without ``n`` (given once here); the trajectory is the
    concatenation of the stages' trajectories with a global ``step`` and a ``stage`` column.
    Minibatch orders and Langevin noise of each stage come from the streams ("train_noise",
    2 k) and ("train_noise", 2 k + 1) of stage k.
    """

    protocol: Literal["stages"] = Field("stages", description="selects this protocol")
    n: PositiveInt = Field(description="training set size, shared by every stage")
    stages: list[GDConfig] = Field(
        min_length=1, description="gd sections (without n), run in order on one training set"
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_stages(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("stages"), list):
            value = dict(value)
            value["stages"] = [
                {"protocol": "gd", "n": value.get("n"), **stage} if isinstance(stage, dict)
                else stage
                for stage in value["stages"]
            ]
        return value

    @model_validator(mode="after")
    def _check_stages(self) -> StagesConfig:
        for k, stage in enumerate(self.stages):
            if stage.n != self.n:
                raise ValueError(f"stages[{k}].n = {stage.n}: give n once, at train.n = {self.n}")
            if stage.online:
                raise ValueError(f"stages[{k}].online: stages share one training set")
        return self


class SpikedConfig(_Model):
    """Spiked random features (Cui et al. 2024): W = c_w W_0 + r 1 v^T with ||v|| = 1 and
    <v, beta> = gamma, the model of the first layer after one giant step; no training data.

    Give (r, c_w, gamma), or (eta_tilde, alpha0) to derive them from the step the model stands
    for (W_1 = W_0 + eta_tilde N G^T on n_0 = alpha0 d samples, Cui et al.'s scaling; needs a
    single-index teacher). W_0 is the student's init (unit rows: ``w_init: sphere``); the part
    of v orthogonal to beta is drawn from the run's stream "spike". See twolayer.train.spiked.
    """

    protocol: Literal["spiked"] = Field("spiked", description="selects this protocol")
    r: float | None = Field(None, description="spike strength (with c_w and gamma)")
    c_w: PositiveFloat | None = Field(None, description="bulk scale of W_0 (with r and gamma)")
    gamma: float | None = Field(
        None, ge=-1.0, le=1.0, description="overlap <v, beta> of the spike with the target"
    )
    eta_tilde: NonNegativeFloat | None = Field(
        None, description="derive r, c_w, gamma from this step size (with alpha0)"
    )
    alpha0: PositiveFloat | None = Field(
        None, description="n_0 / d of the step's batch (with eta_tilde)"
    )

    @model_validator(mode="after")
    def _check_form(self) -> SpikedConfig:
        direct = {"r": self.r, "c_w": self.c_w, "gamma": self.gamma}
        derived = {"eta_tilde": self.eta_tilde, "alpha0": self.alpha0}
        given_direct = [k for k, v in direct.items() if v is not None]
        given_derived = [k for k, v in derived.items() if v is not None]
        if given_direct and given_derived:
            raise ValueError(
                f"give either r, c_w, gamma or eta_tilde, alpha0, not both (got "
                f"{', '.join(given_direct + given_derived)})"
            )
        if not given_direct and not given_derived:
            raise ValueError("give r, c_w and gamma, or eta_tilde and alpha0")
        if given_direct and len(given_direct) < 3:
            missing = [k for k in direct if k not in given_direct]
            raise ValueError(f"with {', '.join(given_direct)} also give {', '.join(missing)}")
        if given_derived and len(given_derived) < 2:
            missing = [k for k in derived if k not in given_derived]
            raise ValueError(f"with {given_derived[0]} also give {missing[0]}")
        self.build()  # validates the values (finite r)
        return self

    def build(self) -> SpikedOptions:
        if self.r is not None and self.c_w is not None and self.gamma is not None:
            return SpikedOptions(SpikedRFParameters(self.r, self.c_w, self.gamma))
        return SpikedOptions(eta_tilde=self.eta_tilde, alpha0=self.alpha0)


TrainConfig = Annotated[
    GiantStepsConfig | GDConfig | StagesConfig | SpikedConfig | NoTrainConfig,
    Field(discriminator="protocol"),
]


class ReadoutConfig(_Model):
    """Ridge regression of the second layer, over a grid of lambda (one eigendecomposition)."""

    n: PositiveInt | None = Field(None, description="readout batch size (default train.n)")
    batch: Literal["fresh", "reuse"] = Field(
        "fresh", description="fresh batch, or reuse the first training batch"
    )
    lambdas: list[NonNegativeFloat] = Field(
        default_factory=lambda: [1e-3], min_length=1, description="ridge penalties; 0 = min-norm"
    )
    penalty: Literal["mean", "sum"] = Field(
        "mean", description="penalty added to the mean (1/n sum) or the sum of squared errors"
    )
    baselines: list[Literal["random_features", "linear", "kernel"]] = Field(
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
        from twolayer.measure import MEASUREMENTS

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

    name: Literal["numpy", "torch"] = Field("numpy", description="array library")
    dtype: Literal["float64", "float32"] = Field("float64", description="floating-point precision")
    device: str | None = Field(None, description="torch device: cpu, cuda, cuda:1")


class RunConfig(_Model):
    """Everything one run needs besides its seed."""

    teacher: TeacherConfig = Field(description="the data model")
    student: StudentConfig = Field(description="the two-layer network")
    train: TrainConfig = Field(
        default_factory=NoTrainConfig,
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

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        from twolayer.measure import MEASUREMENTS

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
        if isinstance(self.train, NoTrainConfig | SpikedConfig) and r is not None:
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
            if isinstance(self.train, GDConfig) and self.train.online:
                raise ValueError(
                    "readout.batch 'reuse': online gd (train.online) keeps no training batch to "
                    "reuse; use batch 'fresh'"
                )
        return self

    @property
    def train_n(self) -> int | None:
        return getattr(self.train, "n", None)
