"""One generic damped fixed-point iterator, shared by every solver of :mod:`twolayer.theory`.

Every self-consistent equation of the theory layer (the ridge effective regularisation, the
Mei–Montanari equations, the spiked random-features order parameters) is solved by
:func:`iterate_fixed_point`; the solvers differ only in the map they pass. The iterator returns a
:class:`FixedPointResult` that says whether it converged; solvers then raise
:class:`FixedPointError` or emit a :class:`ConvergenceWarning` (a ``UserWarning``) according to
their ``on_fail`` argument, so a non-converged number is never returned silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

OnFail = Literal["raise", "warn", "ignore"]


class FixedPointError(RuntimeError):
    """A fixed-point iteration did not reach its tolerance within ``max_iter`` steps."""


class ConvergenceWarning(UserWarning):
    """Emitted instead of :class:`FixedPointError` by a solver called with ``on_fail="warn"``."""


@dataclass(frozen=True)
class FixedPointResult:
    """Outcome of :func:`iterate_fixed_point`.

    Attributes
    ----------
    x : (m,) array
        Last iterate (the fixed point if ``converged``).
    converged : bool
        Whether ``residual <= tol`` was reached.
    n_iter : int
        Number of map evaluations performed.
    residual : float
        ``max_i |F(x)_i - x_i| / max(1, |x_i|)`` at the last iterate (relative for large entries,
        absolute for small ones).
    """

    x: np.ndarray
    converged: bool
    n_iter: int
    residual: float


def iterate_fixed_point(
    update: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray | float | list[float],
    *,
    damping: float = 0.5,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> FixedPointResult:
    """Solve ``x = update(x)`` by damped iteration ``x <- damping * x + (1 - damping) * update(x)``.

    Parameters
    ----------
    update : callable (m,) array -> (m,) array
        The map F whose fixed point is sought. It must not modify its argument.
    x0 : (m,) array_like or float
        Starting point.
    damping : float in [0, 1)
        Weight kept on the old iterate; 0 is the plain iteration x <- F(x), 1/2 the usual
        "damping 1/2" of the replica literature.
    tol : float
        Convergence when ``max_i |F(x)_i - x_i| / max(1, |x_i|) <= tol``.
    max_iter : int
        Maximum number of evaluations of ``update``.

    Returns
    -------
    FixedPointResult
        Never raises on non-convergence (the caller decides, see :func:`check_converged`);
        a non-finite iterate stops the iteration with ``converged=False``.
    """
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    x = np.atleast_1d(np.asarray(x0, dtype=np.float64)).copy()
    residual = np.inf
    for it in range(1, max_iter + 1):
        fx = np.atleast_1d(np.asarray(update(x), dtype=np.float64))
        if fx.shape != x.shape:
            raise ValueError(f"update changed the shape: {x.shape} -> {fx.shape}")
        if not np.all(np.isfinite(fx)):
            return FixedPointResult(x=x, converged=False, n_iter=it, residual=np.inf)
        residual = float(np.max(np.abs(fx - x) / np.maximum(1.0, np.abs(x))))
        x = damping * x + (1.0 - damping) * fx
        if residual <= tol:
            return FixedPointResult(x=fx, converged=True, n_iter=it, residual=residual)
    return FixedPointResult(x=x, converged=False, n_iter=max_iter, residual=residual)


def check_converged(result: FixedPointResult, what: str, on_fail: OnFail = "raise") -> None:
    """Raise or warn (per ``on_fail``) when ``result`` did not converge.

    Parameters
    ----------
    result : FixedPointResult
    what : str
        Name of the solver and its parameters, used in the message.
    on_fail : {"raise", "warn", "ignore"}
    """
    if result.converged or on_fail == "ignore":
        return
    message = (
        f"{what}: fixed point not converged after {result.n_iter} iterations "
        f"(residual {result.residual:.3g}); try more iterations or a stronger damping"
    )
    if on_fail == "raise":
        raise FixedPointError(message)
    if on_fail == "warn":
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
        return
    raise ValueError(f"on_fail must be 'raise', 'warn' or 'ignore', got {on_fail!r}")
