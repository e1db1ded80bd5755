"""twolayer: feature learning in two-layer neural networks — simulations, sweeps, theory."""

from twolayer.activations import (
    Activation,
    gaussian_expectation,
    get_activation,
    hermite_coefficients,
)
from twolayer.backend import Backend, RunStreams
from twolayer.config import RunConfig
from twolayer.pipeline import RunResult, StageCache, run_once
from twolayer.student import TwoLayer, init_student
from twolayer.teachers import get_teacher

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Backend",
    "RunConfig",
    "RunResult",
    "RunStreams",
    "StageCache",
    "TwoLayer",
    "__version__",
    "gaussian_expectation",
    "get_activation",
    "get_teacher",
    "hermite_coefficients",
    "init_student",
    "run_once",
]
