"""Measurement tests run BLAS/LAPACK single-threaded.

The matrices here are at most 3000 x 3000; on a small shared machine (2 cores, other jobs)
a multithreaded OpenBLAS oversubscribes the cores and runs these sizes several times slower than
one thread (measured 14.5 s against 2.3 s for three 500 x 1000 overlaps). The limit is entered and
left around each test, so tests elsewhere are unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _single_threaded_blas() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield
