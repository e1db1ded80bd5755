"""Calibration of the function-space Rayleigh-quotient tolerances (``RQ_TOL`` in
``twolayer.recipes.function_space``) from runs on calibration seeds.

    for s in 200 203 206 209; do twolayer reproduce function-space --seeds $s --out cal; done
    python scripts/calibration/function_space.py full 'cal/function-space-seeds*/results.sqlite'

Prints the per-seed measured/predicted ratio at init (c = 0) and after the step (mean over
c >= 8), their mean deviation from 1 (bias) and per-seed SD.
"""

from __future__ import annotations

import pandas as pd
from stores import calibration_data, run_from_command_line

from twolayer.recipes.function_space import ETA, LARGE, rq_prediction


def main(mode: str, pattern: str) -> None:
    frames = []
    for data in calibration_data("function-space", mode, pattern):
        done = data.done
        frames.append(done.assign(ratio=done["function_space.rq_target1"]
                                  / rq_prediction(data, done)))
    frame = pd.concat(frames)
    print(f"seeds {sorted(int(s) for s in frame['seed'].unique())}")
    for label, part in (("init", frame[frame[ETA] == 0.0]), ("step", frame[frame[ETA] >= LARGE])):
        per_seed = part.groupby("seed")["ratio"].mean()
        print(f"{label}: per seed {[round(x, 3) for x in per_seed]}; bias "
              f"{per_seed.mean() - 1:.4f}, per-seed SD {per_seed.std(ddof=1):.4f}")


if __name__ == "__main__":
    run_from_command_line(main, __doc__)
