"""Calibration of the polynomial-spikes tolerances (``CALIBRATION`` in
``twolayer.recipes.polynomial_spikes``) from runs on calibration seeds.

Run the recipe on seeds that its claims are not checked on, then point this script at the
stores::

    for s in 200 202 204 206; do twolayer reproduce polynomial-spikes --seeds $s --out cal; done
    python scripts/calibration/polynomial_spikes.py full \
        'cal/polynomial-spikes-seeds*/results.sqlite'

(``quick`` and ``--quick --seeds 200`` ... ``207`` for quick mode). Prints (bias, SD) of ``size``
(spike singular value / power counting for the measured step: bias over all spikes well clear of
the bulk, SD of the per-seed means) and of ``size_spec`` per degree (singular value / power
counting from the spec alone, per spike well clear of the bulk).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from stores import calibration_data, run_from_command_line

from twolayer.recipes.polynomial_spikes import (
    _setting,
    polynomial_spike_strengths,
    spike_table,
)


def main(mode: str, pattern: str) -> None:
    tables, setting = [], None
    for data in calibration_data("polynomial-spikes", mode, pattern):
        tables.append(spike_table(data))
        setting = _setting(data)
    table = pd.concat(tables, ignore_index=True)
    k = setting
    common = dict(N=k["N"], n=k["n"], d=k["d"], y2=k["y2"], c1=k["c1"], a_scale=k["a_scale"])
    eta = table["eta"].to_numpy()
    from_step = polynomial_spike_strengths(eta, [1, 2], k["act"], **common,
                                           step_norm=table["step_norm"].to_numpy())
    from_spec = polynomial_spike_strengths(eta, [1, 2], k["act"], **common)
    size, by_degree = [], {1: [], 2: []}
    for i, row in table.iterrows():
        for j in range(2):
            if row["spikes"][j] and row["sv"][j] > 1.5 * row["threshold"]:
                size.append((row["seed"], row["sv"][j] / from_step[i, j]))
                by_degree[j + 1].append(row["sv"][j] / from_spec[i, j])
    frame = pd.DataFrame(size, columns=["seed", "ratio"])
    per_seed = frame.groupby("seed")["ratio"].mean()
    print(f"seeds {sorted(int(s) for s in table['seed'].unique())}")
    print(f"size: bias {frame['ratio'].mean() - 1:.4f}, SD of {len(per_seed)} per-seed means "
          f"{per_seed.std(ddof=1):.4f}")
    for degree, ratios in by_degree.items():
        r = np.asarray(ratios)
        print(f"size_spec degree {degree}: {len(r)} spikes, bias {r.mean() - 1:.4f}, "
              f"SD {r.std(ddof=1):.4f}")


if __name__ == "__main__":
    run_from_command_line(main, __doc__)
