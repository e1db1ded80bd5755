"""Training protocols (giant steps, GD/SGD) and the ridge readout."""

from twolayer.train.gd import GDOptions, gradient_descent
from twolayer.train.readout import (
    KernelRidge,
    LinearRidge,
    conjugate_kernel,
    ridge_path,
)
from twolayer.train.schedule import DivergenceError, StepSize
from twolayer.train.steps import GiantStep, TrainResult, giant_steps

__all__ = [
    "DivergenceError",
    "GDOptions",
    "GiantStep",
    "KernelRidge",
    "LinearRidge",
    "StepSize",
    "TrainResult",
    "conjugate_kernel",
    "giant_steps",
    "gradient_descent",
    "ridge_path",
]
