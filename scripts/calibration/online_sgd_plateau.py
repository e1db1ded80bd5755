"""Calibration of the online-sgd-plateau tolerances (``CALIBRATION`` in
``twolayer.recipes.online_sgd_plateau``) from runs on calibration seeds.

    twolayer reproduce online-sgd-plateau --seeds 200 --out cal
    python scripts/calibration/online_sgd_plateau.py full \\
        'cal/online-sgd-plateau-seeds*/results.sqlite'

(``quick`` and ``--quick --seeds 200``, 204, 208, 212 for quick mode). Over all the runs (every
size and seed): the per-run SD and the mean deviation (the finite-size term) of the plateau
height from the fixed point and of the final error from the ODE's, with the mean's standard
error.
"""

from __future__ import annotations

import math

import pandas as pd
from stores import calibration_data, run_from_command_line

from twolayer.recipes.online_sgd_plateau import run_table, theory_of


def main(mode: str, pattern: str) -> None:
    runs = calibration_data("online-sgd-plateau", mode, pattern)
    plateau = theory_of(runs[0].spec)["eg"]
    table = pd.concat([run_table(data, plateau) for data in runs], ignore_index=True)
    for name, dev in (("plateau-height", table["plateau_sim"] - plateau),
                      ("final-error", table["final_sim"] - table["final_ode"])):
        sd = float(dev.std(ddof=1))
        print(f"{name}: {len(dev)} runs, per-run SD {sd:.3g}, mean deviation {dev.mean():+.3g} "
              f"(SE {sd / math.sqrt(len(dev)):.2g})")


if __name__ == "__main__":
    run_from_command_line(main, __doc__)
