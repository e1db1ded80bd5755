"""Measurements: pure functions of a run's state and data, one registry."""

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
