"""A toy training protocol in one file, registered on import (docs/extending.md, "a protocol"):
``shrink`` multiplies the first layer at initialisation by (1 - rho), a stack of students at
once (batched seeds), and records the factor as its one step size."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from twolayer.config import ProtocolConfig
from twolayer.train import TrainContext, TrainResult, register_protocol


class ShrinkConfig(ProtocolConfig):
    """W = (1 - rho) W_0, a unchanged."""

    protocol: Literal["shrink"] = Field("shrink", description="selects this protocol")
    rho: float = Field(0.5, ge=0.0, lt=1.0, description="the shrinkage")


@register_protocol("shrink", ShrinkConfig, batched=True)
def run_shrink(config: ShrinkConfig, ctx: TrainContext) -> TrainResult:
    """W = (1 - rho) W_0 (for a stack too: the product is elementwise)."""
    student = ctx.student.replace(W=(1.0 - config.rho) * ctx.student.W)
    kept = {k: s for k, s in ((0, ctx.student), (1, student)) if k in ctx.checkpoints}
    return TrainResult(student, [{"step": 0, "rho": config.rho}], etas=[config.rho],
                       checkpoints=kept)
