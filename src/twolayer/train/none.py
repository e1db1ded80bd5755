"""The ``none`` protocol: no feature training (the student at initialisation: random features)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from twolayer.config import ProtocolConfig
from twolayer.train.protocol import TrainContext, register_protocol
from twolayer.train.result import TrainResult


class NoTrainConfig(ProtocolConfig):
    """No feature training (random features)."""

    protocol: Literal["none"] = Field("none", description="selects this protocol")


@register_protocol("none", NoTrainConfig, batched=True)
def run_none(config: NoTrainConfig, ctx: TrainContext) -> TrainResult:
    """No feature training: the student stays at initialisation (random features)."""
    return TrainResult(ctx.student, checkpoints={0: ctx.student} if 0 in ctx.checkpoints else {})
