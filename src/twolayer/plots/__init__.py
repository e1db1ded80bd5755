"""Figures: one function per kind of figure, matplotlib, no state.

Every function draws on a given ``Axes`` (so figures compose) and returns it; :func:`save`
writes a figure as PNG and PDF. Measurements are drawn as points with error bars (standard error
over seeds), theory as lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are files; never needs a display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation

from twolayer.theory.marchenko_pastur import mp_density, mp_singular_value_edges

__all__ = [
    "figure",
    "mean_and_sem",
    "measured",
    "mp_singular_value_density",
    "plain_log_ticks",
    "save",
    "spectrum_histogram",
    "theory_line",
    "trajectories",
]


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.8, height: float = 3.6) -> tuple[
    Figure, Any
]:
    """A new figure with ``nrows x ncols`` axes of the given size each (inches)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, (axes[0, 0] if nrows * ncols == 1 else axes)


def save(fig: Figure, folder: str | Path, stem: str) -> Path:
    """Write ``folder/stem.png`` (150 dpi) and ``folder/stem.pdf``; close the figure.

    Returns
    -------
    Path
        The PNG file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:
        plain_log_ticks(ax)
    fig.tight_layout()
    png = folder / f"{stem}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight")  # keeps legends placed outside the axes
    fig.savefig(folder / f"{stem}.pdf", bbox_inches="tight")
    plt.close(fig)
    return png


class _PlainLogFormatter(LogFormatterSciNotation):
    """Matplotlib's log-axis labels (same ticks labelled) written as plain numbers: 0.35, 2."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:.6g}" if super().__call__(x, pos) else ""


def plain_log_ticks(ax: Axes, max_decades: float = 2.0) -> Axes:
    """Label the ticks of each log axis of ``ax`` spanning less than ``max_decades`` decades
    as plain numbers.

    On such a short axis matplotlib labels minor ticks in scientific notation
    (``1.35 x 10^0``, ``3 x 10^-1``), which reads badly; over wider ranges its powers of ten are
    kept. :func:`save` applies this to every axes of the figure.
    """
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        lo, hi = sorted(limits)
        if axis.get_scale() != "log" or not 0 < lo < hi or np.log10(hi / lo) >= max_decades:
            continue
        axis.set_major_formatter(_PlainLogFormatter())
        axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))
    return ax


def mean_and_sem(frame: pd.DataFrame, by: str | Sequence[str], column: str) -> pd.DataFrame:
    """Mean, standard error and count of ``column`` over the rows of each group of ``by``
    (seeds, usually): a table indexed by ``by`` with columns mean, sem, count (sem = 0 for a
    single row), the input of :func:`measured`."""
    keys = [by] if isinstance(by, str) else list(by)
    out = frame.groupby(keys, dropna=False)[column].agg(["mean", "std", "count"])
    out["sem"] = (out["std"] / np.sqrt(out["count"])).fillna(0.0)
    return out.drop(columns="std")


def measured(
    ax: Axes,
    stats: pd.DataFrame,
    *,
    label: str,
    marker: str = "o",
    color: Any = None,
) -> Axes:
    """Points with error bars from a table indexed by x with columns ``mean`` and ``sem``
    (as :meth:`twolayer.recipes.base.RecipeData.over_seeds` returns)."""
    x = np.asarray(stats.index, dtype=float)
    ax.errorbar(
        x, stats["mean"], yerr=stats["sem"], fmt=marker, ms=4, capsize=2, label=label,
        color=color,
    )
    return ax


def theory_line(
    ax: Axes, x: Sequence[float], y: Sequence[float], *, label: str = "theory", **style: Any
) -> Axes:
    """A theory prediction as a line."""
    style.setdefault("color", "black")
    style.setdefault("lw", 1.2)
    ax.plot(np.asarray(x, float), np.asarray(y, float), label=label, **style)
    return ax


def mp_singular_value_density(s: np.ndarray, c: float, scale: float = 1.0) -> np.ndarray:
    """Density of the non-zero singular values of W (N x d, entries of variance scale/d).

    If lambda = s^2 has the Marchenko–Pastur density rho (normalised over the min(N, d) non-zero
    eigenvalues), s has density 2 s rho(s^2).
    """
    s = np.asarray(s, float)
    rho = mp_density(s**2, c, scale) * max(1.0, c)  # renormalise the continuous part to mass 1
    return 2.0 * s * rho


def spectrum_histogram(
    ax: Axes,
    singular_values: np.ndarray,
    *,
    N: int,
    d: int,
    scale: float = 1.0,
    predicted_outliers: Sequence[float] = (),
    bins: int = 60,
    label: str = "measured",
    threshold: float | None = None,
) -> Axes:
    """Histogram of singular values with the Marchenko–Pastur density of the bulk, its edge and
    predicted outlier positions (dashed); singular values above ``threshold`` (default 1.02 x
    the edge; the ``outliers`` measurement's ``W_threshold`` where measured) are marked."""
    sv = np.asarray(singular_values, float)
    sv = sv[sv > 1e-12 * max(sv.max(), 1.0)]
    c = N / d
    lo, hi = mp_singular_value_edges(c, scale)
    top = max(sv.max(), *predicted_outliers) if len(predicted_outliers) else sv.max()
    edges = np.linspace(0.0, 1.05 * top, bins + 1)
    ax.hist(sv, bins=edges, density=True, alpha=0.5, label=label)
    grid = np.linspace(lo, hi, 400)[1:-1]
    ax.plot(grid, mp_singular_value_density(grid, c, scale), "k-", lw=1.2,
            label="Marchenko–Pastur")
    ax.axvline(hi, color="k", ls=":", lw=0.8)
    for k, s in enumerate(predicted_outliers):
        ax.axvline(s, color="C3", ls="--", lw=1.0, label="predicted outlier" if k == 0 else None)
    outliers = sv[sv > (hi * 1.02 if threshold is None else threshold)]
    if outliers.size:
        ax.plot(outliers, np.zeros_like(outliers), "C3^", ms=7, clip_on=False,
                label="outliers")
    ax.set_xlabel("singular value")
    ax.set_ylabel("density")
    return ax


def trajectories(
    ax: Axes, frames: dict[str, pd.DataFrame], column: str, *, x: str = "step", logy: bool = False
) -> Axes:
    """One line per labelled trajectory table (``twolayer.load_trajectory`` output)."""
    for label, frame in frames.items():
        if column in frame:
            ax.plot(frame[x], frame[column], label=label)
    ax.set_xlabel(x)
    ax.set_ylabel(column)
    if logy:
        ax.set_yscale("log")
    return ax
