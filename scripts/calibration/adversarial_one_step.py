"""Calibration of the adversarial-one-step tolerances (``FINITE_SIZE`` and ``NETWORK_SD`` in
``twolayer.recipes.adversarial_one_step``) from runs on calibration networks (seeds).

    for s in 200 208 216 224; do twolayer reproduce adversarial-one-step --seeds $s --out cal; done
    python scripts/calibration/adversarial_one_step.py full \\
        'cal/adversarial-one-step-seeds*/results.sqlite'

(``quick`` and ``--quick --seeds ...`` for quick mode). Over all the calibration networks pooled:
per regime and activation the fitted slope (one point per network) and its deviation from -1/2;
per activation the median over every point of ratio sqrt(d), relative to the Gaussian heuristic,
and the SD of one run's relative median; at the largest d, the mean unflipped fraction, its SD
over networks and the 3-sigma (99.73%) upper limit of the rate when no point was left unflipped.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from stores import calibration_data, run_from_command_line

from twolayer.recipes.adversarial_one_step import (
    _table,
    constant_table,
    fit_slope,
    heuristic_constant,
    largest_d,
)


def main(mode: str, pattern: str) -> None:
    runs = [(data, _table(data)) for data in calibration_data("adversarial-one-step", mode,
                                                              pattern)]
    frame = pd.concat([f for _, f in runs], ignore_index=True)
    print(f"{frame['seed'].nunique()} networks per size")
    for (regime, act), part in frame.groupby(["regime", "activation"]):
        slope, se, _ = fit_slope(part)
        print(f"slope-{regime}-{act}: {slope:.4f} (SE {se:.4f}), |slope + 1/2| "
              f"{abs(slope + 0.5):.4f}")
    for act in sorted(frame["activation"].unique()):
        points, rel = [], []
        for data, f in runs:
            part = f[f["activation"] == act]
            rel.append(constant_table(part, data)["rel"])
            for _, run in part.iterrows():
                ratio = data.arrays(run["id"])["adversarial.ratio"]
                points.append(ratio[np.isfinite(ratio)] * math.sqrt(run["d"]))
        pooled = float(np.median(np.concatenate(points)))
        rel = pd.concat(rel)
        print(f"constant-{act}: pooled median {pooled:.4f} / heuristic "
              f"{heuristic_constant(act):.4f} - 1 = {pooled / heuristic_constant(act) - 1:+.4f}; "
              f"per-run SD of the relative median {rel.std(ddof=1):.4f} over {len(rel)} runs")
    unflipped = pd.concat([1.0 - f.loc[largest_d(f), "adversarial.success_rate"]
                           for _, f in runs])
    points = sum(int(data.spec["measure"][0]["n_points"]) * int(largest_d(f).sum())
                 for data, f in runs)
    print(f"success: {len(unflipped)} networks at the largest d, {points} points; mean unflipped "
          f"fraction {unflipped.mean():.3g}, per-network SD {unflipped.std(ddof=1):.3g}; 3-sigma "
          f"limit when none: {-math.log(0.0027) / points:.3g}")


if __name__ == "__main__":
    run_from_command_line(main, __doc__)
