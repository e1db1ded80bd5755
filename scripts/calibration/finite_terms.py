"""Finite-size terms of a recipe's equality claims, measured on calibration seeds.

For the recipes whose module defines ``finite_size_deviations(data)`` (early-stage,
local-regularized, mean-field-langevin, random-feature-amplification): run the recipe on seeds
its claims are not checked on, then point this script at the stores::

    for s in 200 204 208; do twolayer reproduce mean-field-langevin --seeds $s --out cal; done
    python scripts/calibration/finite_terms.py mean-field-langevin full \\
        'cal/mean-field-langevin-seeds*/results.sqlite'

(``quick`` and ``--quick --seeds ...`` for quick mode). For each quantity, over all the
calibration seeds pooled: the number of seeds, the mean deviation from the prediction (the
bias), the SD of one seed's deviation, the standard error of the bias, and the upper 95% bound
|bias| + 2 SE. The recipe's finite-size term is that bound rounded up to two significant digits
(the claim adds 3 standard errors of its own seeds, which cover the scatter; the term covers
only what the size leaves systematic).
"""

from __future__ import annotations

import importlib
import math
import sys

import pandas as pd
from stores import calibration_data


def round_up(x: float) -> float:
    """x rounded up to two significant digits (0.001234 -> 0.0013)."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(round(x / scale, 9)) * scale


def pooled_deviations(name: str, mode: str, pattern: str) -> dict[str, pd.Series]:
    """Each quantity's per-seed deviations, concatenated over the stores matching pattern."""
    module = importlib.import_module(f"twolayer.recipes.{name.replace('-', '_')}")
    pooled: dict[str, list[pd.Series]] = {}
    for data in calibration_data(name, mode, pattern):
        for key, series in module.finite_size_deviations(data).items():
            pooled.setdefault(key, []).append(series)
    return {key: pd.concat(parts) for key, parts in pooled.items()}


def main(name: str, mode: str, pattern: str) -> None:
    pooled = pooled_deviations(name, mode, pattern)
    print(f"{name}, {mode} mode, stores {pattern!r}")
    print(f"{'quantity':<24} {'seeds':>5} {'bias':>10} {'SD':>9} {'SE':>9} "
          f"{'|bias|+2SE':>10} {'term':>8}")
    for key, series in pooled.items():
        k = len(series)
        bias = float(series.mean())
        sd = float(series.std(ddof=1)) if k > 1 else math.nan
        se = sd / math.sqrt(k)
        bound = abs(bias) + 2 * se
        print(f"{key:<24} {k:>5} {bias:>+10.5f} {sd:>9.5f} {se:>9.5f} {bound:>10.5f} "
              f"{round_up(bound):>8.2g}")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in ("quick", "full"):
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3])
