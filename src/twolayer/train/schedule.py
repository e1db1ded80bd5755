"""Step sizes written as eta = c * S^alpha, S one of n, N, d or 1 (docs/conventions.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from twolayer.config import ConfigModel

#: The sizes a step size scales with (written once; the tuple derives from the Literal).
Size = Literal["n", "N", "d", "1"]
SIZES: tuple[str, ...] = get_args(Size)


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or parameter; ``step`` says when."""

    def __init__(self, step: int, what: str = "loss") -> None:
        super().__init__(f"training diverged at step {step}: non-finite {what}")
        self.step = step


@dataclass(frozen=True)
class StepSize:
    """eta = c * S^alpha.

    Examples: eta = Theta(1) is ``StepSize(c)``; Ba et al.'s eta ~ sqrt(N) is
    ``StepSize(c, 0.5, "N")``; Moniri et al.'s eta ~ n^alpha is ``StepSize(c, alpha, "n")``.
    """

    c: float = 1.0
    alpha: float = 0.0
    S: str = "1"

    def __post_init__(self) -> None:
        if self.S not in SIZES:
            raise ValueError(f"step size: S must be one of {SIZES}, got {self.S!r}")

    def value(self, *, n: int, N: int, d: int) -> float:
        base = {"n": n, "N": N, "d": d, "1": 1}[self.S]
        return float(self.c) * float(base) ** float(self.alpha)


class StepSizeConfig(ConfigModel):
    """eta = c * S^alpha (S one of n, N, d, 1). A plain number means eta = c."""

    c: float = Field(1.0, description="constant")
    alpha: float = Field(0.0, ge=-1.0, le=1.0, description="exponent, in [-1, 1]")
    S: Size = Field("1", description="the size the step scales with")

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"c": value}
        return value

    def build(self) -> StepSize:
        return StepSize(self.c, self.alpha, self.S)
