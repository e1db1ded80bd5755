"""twolayer: feature learning in two-layer neural networks — simulations, sweeps, theory."""

from twolayer.activations import (
    Activation,
    gaussian_expectation,
    get_activation,
    hermite_coefficients,
)
from twolayer.backend import Backend, RunStreams
from twolayer.batched import run_batch
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
    "run_batch",
    "run_once",
]

_EXPERIMENT_API = ("load", "load_arrays", "load_trajectory", "load_spec", "run_spec", "export")


def __getattr__(name: str) -> object:
    """``twolayer.load`` etc., imported on first use (pandas is not needed by the core)."""
    if name in _EXPERIMENT_API:
        from twolayer import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module 'twolayer' has no attribute {name!r}")
