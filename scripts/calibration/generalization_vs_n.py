"""Calibration of the generalization-vs-n slope terms (``SLOPE_FINITE_SIZE`` in
``twolayer.recipes.generalization_vs_n``) from runs on calibration seeds.

    for s in 200 210; do twolayer reproduce generalization-vs-n --seeds $s --out cal; done
    python scripts/calibration/generalization_vs_n.py full \\
        'cal/generalization-vs-n-seeds*/results.sqlite'

(``quick`` and ``--quick --seeds ...`` for quick mode). Per d: the weighted log-log slope of the
mean gap over all the calibration seeds pooled (the fit the claim makes, over n/d >=
MIN_N_OVER_D), its standard error, and |slope + 1|, the finite-size term; then the same fit per
store (each a block of the recipe's seed count), to show the spread the claim's 3 SE must cover.
"""

from __future__ import annotations

import pandas as pd
from stores import calibration_data, run_from_command_line

from twolayer.recipes.generalization_vs_n import _table, gap_slope


def main(mode: str, pattern: str) -> None:
    frames = [_table(data) for data in calibration_data("generalization-vs-n", mode, pattern)]
    pooled = pd.concat(frames, ignore_index=True)
    for d in sorted(pooled["d"].unique()):
        slope, se, ns = gap_slope(pooled[pooled["d"] == d])
        blocks = [gap_slope(f[f["d"] == d])[0] for f in frames]
        print(f"d = {d}: {pooled.loc[pooled['d'] == d, 'seed'].nunique()} seeds, n = "
              f"{int(ns[0])}-{int(ns[-1])}: slope {slope:.4f} (SE {se:.4f}), |slope + 1| "
              f"{abs(slope + 1):.4f}; per store {', '.join(f'{b:.3f}' for b in blocks)}")


if __name__ == "__main__":
    run_from_command_line(main, __doc__)
