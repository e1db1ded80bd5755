"""One-step adversarial perturbations of a two-layer network (Bubeck, Cherapanamjeri, Gidel &
Tachet des Combes 2021): a single gradient step of relative size ~ 1/sqrt(d) flips the sign."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twolayer.backend import namespace_of
from twolayer.measure._common import percent_key
from twolayer.measure._linalg import as_float64
from twolayer.measure.registry import MeasureContext, at_least, choice, register_measurement
from twolayer.student import TwoLayer

NETWORKS = ("current", "init")
#: Largest number of floats of one (points x grid x N) block of the line search.
_BLOCK = 4_000_000


def input_gradient(student: TwoLayer, X: Any) -> Any:
    """Gradient of f with respect to its input, analytically: shape (n, d), backend array.

    ``grad_x f(x) = s * sum_i a_i sigma'(<w_i, x>) w_i``, i.e. ``s * (sigma'(X W^T) * a) W``,
    with s = ``student.scale``.
    """
    G = student.activation.derivative(student.preactivations(X))
    return student.scale * ((G * student.a[None, :]) @ student.W)


def sphere_points(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniform on the sphere of radius sqrt(d) in R^d, shape (n, d)."""
    Z = rng.standard_normal((n, d))
    Z *= math.sqrt(d) / np.linalg.norm(Z, axis=1, keepdims=True)
    return Z


def _line_grid(
    z0: np.ndarray, dz: np.ndarray, etas: np.ndarray, student: TwoLayer, a: np.ndarray
) -> np.ndarray:
    """f(x + eta delta(1)) on a grid of etas (G,) for points with preactivations z0 (m, N) and
    W delta(1) = dz (m, N); shape (m, G)."""
    Z = z0[:, None, :] + etas[None, :, None] * dz[:, None, :]
    return student.scale * (as_float64(student.activation(Z)) @ a)


def _line_at(
    z0: np.ndarray, dz: np.ndarray, etas: np.ndarray, student: TwoLayer, a: np.ndarray
) -> np.ndarray:
    """f(x_j + eta_j delta_j(1)) with one eta per point, etas (m,); shape (m,)."""
    Z = z0 + etas[:, None] * dz
    return student.scale * (as_float64(student.activation(Z)) @ a)


def line_setup(student: TwoLayer, X: np.ndarray) -> dict[str, np.ndarray]:
    """f, ||grad_x f|| and the line x + eta delta(1) in preactivation coordinates.

    Returns
    -------
    dict of arrays: ``f`` (m,), ``grad_norm`` (m,), ``z0`` = X W^T (m, N),
    ``dz`` = delta(1) W^T (m, N) with delta(1) = -f grad f / ||grad f||^2 (0 where grad f = 0).
    """
    W = as_float64(student.W)
    Xb = X if namespace_of(student.W) is np else _to_backend(X, student.W)
    f0 = as_float64(student.forward(Xb))
    g = as_float64(input_gradient(student, Xb))
    gn2 = np.einsum("ij,ij->i", g, g)
    safe = gn2 > 0
    coef = np.zeros_like(f0)
    coef[safe] = -f0[safe] / gn2[safe]
    return {"f": f0, "grad_norm": np.sqrt(gn2), "z0": X @ W.T, "dz": (coef[:, None] * g) @ W.T}


def smallest_flip(
    student: TwoLayer,
    X: np.ndarray,
    eta_max: float = 2.0,
    n_grid: int = 64,
    bisection_steps: int = 40,
    line: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Smallest eta in (0, eta_max] for which x + delta(eta) changes the sign of f.

    ``delta(eta) = -eta f(x) grad_x f(x) / ||grad_x f(x)||^2`` (eta = 1 is the first-order step
    that would bring a linear f to 0). Along that line the preactivations are affine in eta,
    ``W x + eta W delta(1)``, so f is evaluated in O(N) per (point, eta): first on the grid
    ``eta_max * (1..n_grid)/n_grid``, then refined by bisection between the last grid point
    without and the first with a sign change (to ``eta_max / n_grid / 2^bisection_steps``). A flip
    that appears and disappears between two grid points is missed.

    Parameters
    ----------
    student : TwoLayer
    X : (m, d) array
        Points (NumPy).
    eta_max : float
    n_grid, bisection_steps : int
    line : dict, optional
        :func:`line_setup` of (student, X), if already computed.

    Returns
    -------
    dict of (m,) arrays: ``f`` (f(x)), ``grad_norm`` (||grad_x f||), ``eta`` (smallest flipping
    eta, NaN when none within eta_max; 0 where f(x) = 0), ``delta_norm`` (eta |f| / ||grad f||).
    """
    if not eta_max > 0 or n_grid < 1:
        raise ValueError(f"need eta_max > 0 and n_grid >= 1, got {eta_max}, {n_grid}")
    line = line_setup(student, X) if line is None else line
    f0, gnorm, z0, dz = line["f"], line["grad_norm"], line["z0"], line["dz"]
    a = as_float64(student.a)
    m, N = z0.shape
    safe = gnorm > 0
    etas = eta_max * np.arange(1, n_grid + 1) / n_grid
    eta = np.full(m, np.nan)
    sign0 = np.sign(f0)
    per_block = max(1, _BLOCK // max(1, n_grid * N))
    for lo in range(0, m, per_block):
        hi = min(m, lo + per_block)
        flipped = np.sign(_line_grid(z0[lo:hi], dz[lo:hi], etas, student, a)) != sign0[lo:hi, None]
        has = flipped.any(axis=1) & safe[lo:hi]
        idx = np.nonzero(has)[0]
        if idx.size == 0:
            continue
        first = np.argmax(flipped[idx], axis=1)
        left = np.where(first > 0, etas[np.maximum(first - 1, 0)], 0.0)
        right = etas[first]
        rows = lo + idx
        for _ in range(bisection_steps):
            mid = 0.5 * (left + right)
            flip_mid = np.sign(_line_at(z0[rows], dz[rows], mid, student, a)) != sign0[rows]
            right = np.where(flip_mid, mid, right)
            left = np.where(flip_mid, left, mid)
        eta[rows] = right
    eta[f0 == 0] = 0.0
    delta_norm = np.full(m, np.nan)
    ok = ~np.isnan(eta) & safe
    delta_norm[ok] = eta[ok] * np.abs(f0[ok]) / gnorm[ok]
    delta_norm[f0 == 0] = 0.0
    return {"f": f0, "grad_norm": gnorm, "eta": eta, "delta_norm": delta_norm}


def _to_backend(X: np.ndarray, like: Any) -> Any:
    xp = namespace_of(like)
    return xp.as_tensor(X, dtype=like.dtype, device=like.device)


def _median(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(np.median(v)) if v.size else float("nan")


def _check(config: Any, o: dict[str, Any]) -> None:
    choice("adversarial: network", o["network"], NETWORKS)
    at_least("adversarial: n_points", o["n_points"], 1)


@register_measurement("adversarial", check=_check)
def adversarial(
    ctx: MeasureContext,
    n_points: int = 200,
    eta_max: float = 2.0,
    fixed_etas: list[float] | tuple[float, ...] = (1.0, 2.0),
    n_grid: int = 64,
    bisection_steps: int = 40,
    network: str = "current",
    probe_stream: int = 0,
) -> dict[str, Any]:
    """Success rate and size of the one-step sign-flipping perturbation of Bubeck et al.

    Points x are uniform on the sphere of radius sqrt(d) (drawn from stream
    ("measure", probe_stream), whatever the teacher's input law). For each x the perturbation is
    ``delta = -eta f(x) grad_x f(x) / ||grad_x f(x)||^2`` with the smallest eta <= eta_max that
    flips the sign of f (:func:`smallest_flip`); grad_x f is analytic (:func:`input_gradient`).
    Bubeck et al. (2021) predict that one such step with eta of order 1 flips a random
    network's sign, with ||delta|| / ||x|| ~ 1 / sqrt(d); docs/measurements.md gives the
    measured flip rates and ratios.

    Parameters
    ----------
    n_points : int
    eta_max : float
        Largest step factor searched (success = a flip within eta_max).
    fixed_etas : sequence of float
        Step factors at which the plain flip rate is also reported (no search).
    n_grid, bisection_steps : int
        Resolution of the search.
    network : {"current", "init"}
        Attack the trained student or the one at initialisation (the random network of the paper).
    probe_stream : int

    Returns
    -------
    dict
        ``success_rate`` (fraction flipped with eta <= eta_max); ``median_ratio`` (median over the
        flipped points of ||delta|| / ||x||, ||x|| = sqrt(d)); ``median_ratio_sqrt_d``
        (``median_ratio * sqrt(d)``, O(1) by the theorem); ``median_eta``;
        ``median_linear_ratio`` (median of |f| / (||grad f|| ||x||), the eta = 1 size);
        ``median_grad_norm``; ``flip_rate_eta{e}`` for each fixed eta e (dots -> ``p``);
        arrays ``eta`` and ``ratio`` (n_points,), NaN where no flip was found.
    """
    student = ctx.student if network == "current" else ctx.student_init
    d = student.d
    X = sphere_points(int(n_points), d, ctx.streams.generator("measure", int(probe_stream)))
    line = line_setup(student, X)
    res = smallest_flip(student, X, eta_max, n_grid, bisection_steps, line=line)
    sqrt_d = math.sqrt(d)
    ratio = res["delta_norm"] / sqrt_d
    gn = res["grad_norm"]
    linear = np.full_like(gn, np.nan)
    linear[gn > 0] = np.abs(res["f"][gn > 0]) / (gn[gn > 0] * sqrt_d)
    out: dict[str, Any] = {
        "success_rate": float(np.mean(~np.isnan(res["eta"]))),
        "median_ratio": _median(ratio),
        "median_ratio_sqrt_d": _median(ratio) * sqrt_d,
        "median_eta": _median(res["eta"]),
        "median_linear_ratio": _median(linear),
        "median_grad_norm": float(np.median(gn)),
        "eta": res["eta"],
        "ratio": ratio,
    }
    a = as_float64(student.a)
    for e in fixed_etas:
        etas = np.full(X.shape[0], float(e))
        vals = _line_at(line["z0"], line["dz"], etas, student, a)
        out[f"flip_rate_eta{percent_key(float(e) / 100.0)}"] = float(
            np.mean(np.sign(vals) != np.sign(res["f"]))
        )
    return out
