"""Measurements: pure functions of a run's state and data, one registry."""

from twolayer.measure import adversarial as adversarial
from twolayer.measure import alignment as alignment
from twolayer.measure import function_space as function_space
from twolayer.measure import gap as gap
from twolayer.measure import kernel as kernel
from twolayer.measure import norm_bound as norm_bound
from twolayer.measure import online_sgd as online_sgd
from twolayer.measure import outliers as outliers
from twolayer.measure import overlaps as overlaps
from twolayer.measure import patterns as patterns
from twolayer.measure import polynomial as polynomial
from twolayer.measure import ridge_theory as ridge_theory
from twolayer.measure import spectrum as spectrum
from twolayer.measure import spike_theory as spike_theory
from twolayer.measure import spiked_rf as spiked_rf
from twolayer.measure import step_update as step_update
from twolayer.measure import teacher_neurons as teacher_neurons
from twolayer.measure.errors import chunked_errors, dataset_errors, error_sums
from twolayer.measure.registry import (
    MEASUREMENTS,
    MeasureContext,
    Measurement,
    measure,
    register_measurement,
)

__all__ = [
    "MEASUREMENTS",
    "MeasureContext",
    "Measurement",
    "chunked_errors",
    "dataset_errors",
    "error_sums",
    "measure",
    "register_measurement",
]
