"""Calibration of the rf-sgd-double-descent tolerances (``CALIBRATION`` in
``twolayer.recipes.rf_sgd_double_descent``) from runs on calibration seeds.

    for s in 200 204 208; do twolayer reproduce rf-sgd-double-descent --seeds $s --out cal; done
    python scripts/calibration/rf_sgd_double_descent.py full \\
        'cal/rf-sgd-double-descent-seeds*/results.sqlite'

(``quick`` and ``--quick --seeds ...`` for quick mode). Per curve, over the widths its claim
checks and all the calibration seeds pooled: "sd", the largest over the widths of the standard
deviation of one seed's relative error (error / Mei–Montanari - 1), and "bias", the largest over
the widths of |mean relative error| (the finite-size term), with that mean's standard error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from stores import calibration_data, run_from_command_line

from twolayer.recipes.rf_sgd_double_descent import AWAY, _sizes, relative_errors


def main(mode: str, pattern: str) -> None:
    tables: dict[str, list[pd.DataFrame]] = {}
    n = None
    for data in calibration_data("rf-sgd-double-descent", mode, pattern):
        _, n, _ = _sizes(data)
        for curve, table in relative_errors(data).items():
            tables.setdefault(curve, []).append(table)
    for curve, parts in tables.items():
        table = pd.concat(parts)
        widths = np.asarray(table.columns, float)
        if curve in ("minnorm", "sgd"):
            widths = widths[np.abs(widths / n - 1.0) >= AWAY]
        table = table[widths]
        means, sds = table.mean(), table.std(ddof=1)
        worst = means.abs().idxmax()
        print(f"{curve:<12} seeds {len(table):>3}  sd {sds.max():.4f}  bias {means.abs().max():.4f}"
              f" (at N/n = {worst / n:g}, SE {sds[worst] / math.sqrt(len(table)):.4f})")


if __name__ == "__main__":
    run_from_command_line(main, __doc__)
