"""Figures: one function per kind of figure, matplotlib, no state.

Every function draws on a given ``Axes`` (so figures compose) and returns it; :func:`save`
writes a figure as PNG and PDF. Measurements are drawn as points with error bars (standard error
over seeds), theory as lines.

Figures are sized for a paper: :func:`figure` makes one panel a single column wide
(:data:`SINGLE_COLUMN`, 3.25 in) and several panels a double column wide (:data:`DOUBLE_COLUMN`,
6.75 in), and :func:`style` (``with plots.style(): ...``) sets 8 pt text and thin lines
(:data:`PAPER_RC`), so that a figure goes into a LaTeX document at 100 % without rescaling
its fonts. ``twolayer plot`` and ``twolayer reproduce`` draw inside :func:`style`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
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
    "DOUBLE_COLUMN",
    "PAPER_RC",
    "SINGLE_COLUMN",
    "figure",
    "mean_and_sem",
    "measured",
    "mp_singular_value_density",
    "plain_log_ticks",
    "save",
    "spectrum_histogram",
    "style",
    "theory_line",
    "trajectories",
]


#: Text widths of a two-column paper (inches): one column, and both columns (NeurIPS/ICML/APS
#: two-column styles are 3.25-3.4 in and 6.75-7 in).
SINGLE_COLUMN = 3.25
DOUBLE_COLUMN = 6.75

#: Matplotlib settings of the figures: 8 pt text (7 pt ticks and legends) as a paper's
#: captions, thin lines, fonts embedded as TrueType in PDF (editable, no Type 3), 300 dpi PNG.
PAPER_RC: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "errorbar.capsize": 1.5,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "savefig.dpi": 300,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Draw (and save) figures with :data:`PAPER_RC` inside this block."""
    with plt.rc_context(PAPER_RC):
        yield


def figure(
    ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None
) -> tuple[Figure, Any]:
    """A new figure with ``nrows x ncols`` axes (constrained layout).

    Parameters
    ----------
    ncols, nrows : int
    width, height : float, optional
        Size of each axes in inches. Default: the figure is one column wide
        (:data:`SINGLE_COLUMN`) for one column of axes, two columns wide (:data:`DOUBLE_COLUMN`)
        for more; each row 0.75 of a single-column width high (2.4 in).

    Returns
    -------
    (Figure, Axes or array of Axes)
        A single Axes for one panel, else the (nrows, ncols) array.
    """
    total = (SINGLE_COLUMN if ncols == 1 else DOUBLE_COLUMN) if width is None else width * ncols
    tall = 0.75 * SINGLE_COLUMN if height is None else height
    fig, axes = plt.subplots(nrows, ncols, figsize=(total, tall * nrows), squeeze=False,
                             layout="constrained")
    return fig, (axes[0, 0] if nrows * ncols == 1 else axes)


def save(fig: Figure, folder: str | Path, stem: str) -> Path:
    """Write ``folder/stem.png`` (300 dpi) and ``folder/stem.pdf`` (vector); close the figure.

    Returns
    -------
    Path
        The PNG file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:
        plain_log_ticks(ax)
    # constrained layout (figure()) fits titles, labels and legends beside the axes inside the
    # figure, which keeps its column width; other figures are cropped to what they draw
    crop = None
    if fig.get_layout_engine() is None:
        fig.tight_layout()
        crop = "tight"
    png = folder / f"{stem}.png"
    fig.savefig(png, dpi=300, bbox_inches=crop)
    fig.savefig(folder / f"{stem}.pdf", bbox_inches=crop)
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
    ax.errorbar(x, stats["mean"], yerr=stats["sem"], fmt=marker, label=label, color=color)
    return ax


def theory_line(
    ax: Axes, x: Sequence[float], y: Sequence[float], *, label: str = "theory", **style: Any
) -> Axes:
    """A theory prediction as a line (``drawstyle="steps-mid"`` for an integer count, which
    jumps between sweep points instead of ramping)."""
    style.setdefault("color", "black")
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
    ax.set_xlabel("training step" if x == "step" else x)
    ax.set_ylabel(column)
    if logy:
        ax.set_yscale("log")
    return ax
