"""twolayer: feature learning in two-layer neural networks — simulations, sweeps, theory.

The names below are loaded on first use (``twolayer._lazy``), so that the command line and the
light parts of the package do not pay for importing SciPy, pandas and pydantic up front.
"""

from typing import TYPE_CHECKING

from twolayer._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Activation": "twolayer.activations",
    "gaussian_expectation": "twolayer.activations",
    "get_activation": "twolayer.activations",
    "hermite_coefficients": "twolayer.activations",
    "Backend": "twolayer.backend",
    "RunStreams": "twolayer.backend",
    "run_batch": "twolayer.batched",
    "RunConfig": "twolayer.config",
    "RunResult": "twolayer.pipeline",
    "StageCache": "twolayer.pipeline",
    "run_once": "twolayer.pipeline",
    "TwoLayer": "twolayer.student",
    "init_student": "twolayer.student",
    "get_teacher": "twolayer.teachers",
    # the experiment engine's entry points (pandas is not needed by the core)
    **dict.fromkeys(
        ("load", "load_arrays", "load_trajectory", "load_spec", "run_spec", "export"),
        "twolayer.experiment",
    ),
}
_SUBPACKAGES = ("experiment", "measure", "plots", "recipes", "teachers", "theory", "train")

__all__ = [  # = _EXPORTS and __version__ (tests/core/test_package.py), literal for linters
    "Activation",
    "Backend",
    "RunConfig",
    "RunResult",
    "RunStreams",
    "StageCache",
    "TwoLayer",
    "__version__",
    "export",
    "gaussian_expectation",
    "get_activation",
    "get_teacher",
    "hermite_coefficients",
    "init_student",
    "load",
    "load_arrays",
    "load_spec",
    "load_trajectory",
    "run_batch",
    "run_once",
    "run_spec",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBPACKAGES)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily
    from twolayer.activations import (
        Activation,
        gaussian_expectation,
        get_activation,
        hermite_coefficients,
    )
    from twolayer.backend import Backend, RunStreams
    from twolayer.batched import run_batch
    from twolayer.config import RunConfig
    from twolayer.experiment import export, load, load_arrays, load_spec, load_trajectory, run_spec
    from twolayer.pipeline import RunResult, StageCache, run_once
    from twolayer.student import TwoLayer, init_student
    from twolayer.teachers import get_teacher
