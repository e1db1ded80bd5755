"""Helpers shared by the engine tests (imported by conftest.py and the test files)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twolayer.measure import MEASUREMENTS
from twolayer.measure.registry import Measurement


@contextmanager
def temporary_measurement(name: str, fn: Any, doc: str) -> Iterator[str]:
    """Register a test measurement ``name`` for the block, then remove it again."""
    MEASUREMENTS.add(name, Measurement(name, fn, False, doc))
    try:
        yield name
    finally:
        MEASUREMENTS._items.pop(name, None)
