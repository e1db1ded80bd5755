"""Shared fixtures of the experiment-engine tests: a tiny spec (runs in ~0.05 s) and a
measurement that raises on request (to make a run fail inside a sweep)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from engine_helpers import temporary_measurement

TINY: dict[str, Any] = {
    "name": "tiny",
    "teacher": {"name": "single_index", "d": 8, "link": "tanh", "noise": 0.1},
    "student": {"N": 16, "activation": "relu"},
    "train": {
        "protocol": "giant_steps",
        "n": 32,
        "steps": [{"eta": {"c": 1.0, "alpha": 0.5, "S": "N"}}],
    },
    "readout": {"lambdas": [1.0e-3, 1.0e-1], "baselines": ["random_features"]},
    "evaluate": {"n_test": 200, "chunk": 100},
}


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A fresh copy of a valid, very small spec."""
    return copy.deepcopy(TINY)


def _boom(ctx: Any, fail: bool = False, message: str = "this run was asked to fail"
          ) -> dict[str, float]:
    """Test measurement: raises RuntimeError("boom: " + message) when fail is true."""
    if fail:
        raise RuntimeError(f"boom: {message}")
    return {"ok": 1.0}


@pytest.fixture
def boom() -> Iterator[str]:
    """Register the measurement 'test_boom' for one test, then remove it again."""
    with temporary_measurement("test_boom", _boom, "raises on request") as name:
        yield name
