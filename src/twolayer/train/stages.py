"""The ``stages`` protocol: GD stages run one after another from where the previous one stopped,
on one training set (e.g. fit to a low loss, then GD on a weight-decay-regularised objective)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from twolayer.config import ProtocolConfig
from twolayer.losses import get_loss
from twolayer.train.gd import GDConfig, gradient_descent, monitor_for
from twolayer.train.protocol import TrainContext, register_protocol
from twolayer.train.result import GDInfo, StagesInfo, TrainResult


class StagesConfig(ProtocolConfig):
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


@register_protocol("stages", StagesConfig)
def run_stages(config: StagesConfig, ctx: TrainContext) -> TrainResult:
    """GD stages in order on one training set (stream ("batch", 0)); stage k draws minibatch
    orders and Langevin noise from ("train_noise", 2k) and ("train_noise", 2k + 1). Monitored
    measurements compare with the student at initialisation (before stage 0)."""
    data = ctx.teacher.sample(config.n, ctx.streams.generator("batch", 0), ctx.backend)
    current, rows, etas, offset = ctx.student, [], [], 0
    infos: list[GDInfo] = []
    for k, stage in enumerate(config.stages):
        res = gradient_descent(
            current,
            ctx.teacher,
            ctx.streams,
            stage.build(),
            n=config.n,
            loss=get_loss(stage.loss),
            backend=ctx.backend,
            monitor=monitor_for(stage, ctx, {0: data}),
            data=data,
            noise_streams=(2 * k, 2 * k + 1),
        )
        for row in res.trajectory:
            rows.append({**row, "step": row["step"] + offset, "stage": float(k)})
        offset += stage.steps
        etas += res.etas
        infos.append(res.info)
        current = res.student
    info = StagesInfo(len(config.stages), offset, tuple(infos))
    return TrainResult(current, rows, {0: data}, etas, info=info)
