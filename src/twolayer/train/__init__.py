"""Training protocols (giant steps, GD/SGD, stages, spiked random features, none) and the
ridge readout.

Each protocol is one module that owns its config section, its run function and whether it
trains a stack of seeds at once, registered in :data:`twolayer.registry.PROTOCOLS`
(:mod:`twolayer.train.protocol`; docs/extending.md). Importing this package registers the
built-in ones, in the order the ``train`` union lists them.
"""

# isort: off
# the built-in protocols, registered in this order (the order of the train union, docs/spec.md)
from twolayer.train import steps as steps  # giant_steps
from twolayer.train import gd as gd
from twolayer.train import stages as stages
from twolayer.train import spiked as spiked
from twolayer.train import none as none

# isort: on
from twolayer.train.gd import GDConfig, GDOptions, gradient_descent
from twolayer.train.none import NoTrainConfig
from twolayer.train.protocol import (
    Protocol,
    TrainContext,
    get_protocol,
    register_protocol,
    run_protocol,
)
from twolayer.train.readout import (
    KernelRidge,
    LinearRidge,
    conjugate_kernel,
    ridge_path,
)
from twolayer.train.result import (
    GDInfo,
    GiantStepsInfo,
    SpikedInfo,
    StagesInfo,
    TrainResult,
)
from twolayer.train.schedule import DivergenceError, StepSize, StepSizeConfig
from twolayer.train.spiked import SpikedConfig
from twolayer.train.stages import StagesConfig
from twolayer.train.steps import GiantStep, GiantStepConfig, GiantStepsConfig, giant_steps

__all__ = [
    "DivergenceError",
    "GDConfig",
    "GDInfo",
    "GDOptions",
    "GiantStep",
    "GiantStepConfig",
    "GiantStepsConfig",
    "GiantStepsInfo",
    "KernelRidge",
    "LinearRidge",
    "NoTrainConfig",
    "Protocol",
    "SpikedConfig",
    "SpikedInfo",
    "StagesConfig",
    "StagesInfo",
    "StepSize",
    "StepSizeConfig",
    "TrainContext",
    "TrainResult",
    "conjugate_kernel",
    "get_protocol",
    "giant_steps",
    "gradient_descent",
    "register_protocol",
    "ridge_path",
    "run_protocol",
]
