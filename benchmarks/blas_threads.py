"""BLAS threads of serial runs: one thread against all cores, idle and under load.

    python benchmarks/blas_threads.py              # idle machine
    python benchmarks/blas_threads.py --load 2     # with 2 busy Python processes beside it

Cases (each printed as a Markdown table, with the load average before it):

sweep  a serial sweep of ``--runs`` small one-step runs (d from 200 to 400, N = n = 300, no
       shared stages) through ``run_spec``: executor.threads_per_worker = 1, = all cores, and
       unset (the engine's policy, twolayer.threads.blas_threads_for_run);
scan   one run at d = N = n = 200 ... ``--large``: 1 thread against all cores, to place the
       size above which threads pay (twolayer.threads.SMALL_RUN), and the threads the policy
       gives that run now (by its size and the load average).

The machine's other load is not controlled: say what ``uptime`` said (printed) beside the
numbers (docs/performance.md (j)).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twolayer import RunConfig, run_once
from twolayer.experiment import run_spec
from twolayer.threads import available_cores, blas_threads_for_run, engine_threads


def run_section(d: int, N: int, n: int, n_test: int) -> dict[str, Any]:
    return {
        "teacher": {"name": "single_index", "d": d, "link": "tanh", "noise": 0.1},
        "student": {"N": N, "activation": "relu", "a_scale": 1 / math.sqrt(N)},
        "train": {"protocol": "giant_steps", "n": n,
                  "steps": [{"eta": {"c": 8.0, "alpha": 0.5, "S": "N"}}]},
        "readout": {"lambdas": [1e-3, 1e-2, 1e-1]},
        "evaluate": {"n_test": n_test},
    }


def sweep_time(runs: int, threads: int | None) -> float:
    ds = [200, 250, 300, 350, 400]
    seeds = max(1, runs // len(ds))
    spec = {
        "name": "blas_threads",
        "seeds": seeds,
        **run_section(300, 300, 300, 2000),
        "sweep": {"teacher.d": ds},
        "executor": {"kind": "serial", "threads_per_worker": threads},
    }
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_spec(spec, store=Path(tmp) / "s.sqlite")
        wall = time.perf_counter() - t0
    assert result.counts() == {"done": seeds * len(ds)}, result.counts()
    return wall


def run_time(size: int, threads: int, repeats: int) -> float:
    config = RunConfig.model_validate(run_section(size, size, size, 10_000))
    times = []
    with engine_threads(threads):
        for seed in range(repeats):
            t0 = time.perf_counter()
            run_once(config, seed)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=0, help="busy Python processes beside it")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="*", default=[200, 400, 700, 1000, 1400])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=["sweep", "scan"])
    args = parser.parse_args()
    cores = available_cores()
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)
    ]
    try:
        time.sleep(1.0 if busy else 0.0)
        print(f"\n{cores} cores, {args.load} busy processes beside it; "
              f"load average before: {load_average()}\n")
        if "sweep" in args.cases:
            print(f"sweep of {args.runs} runs (serial) | threads | wall s | load average")
            print("|---|---|---|---|")
            for label, threads in (("1", 1), (f"{cores} (all)", cores), ("policy", None)):
                wall = sweep_time(args.runs, threads)
                print(f"| sweep | {label} | {wall:.2f} | {load_average()} |", flush=True)
        if "scan" in args.cases:
            print("\none run, d = N = n | 1 thread s | all cores s | speed-up | policy's threads "
                  "| load average")
            print("|---|---|---|---|---|---|")
            for size in [*args.sizes, args.large]:
                repeats = args.repeats if size < args.large else 1
                policy = blas_threads_for_run(
                    RunConfig.model_validate(run_section(size, size, size, 10_000))
                )
                one = run_time(size, 1, repeats)
                many = run_time(size, cores, repeats)
                print(f"| {size} | {one:.3f} | {many:.3f} | {one / many:.2f}x | {policy} | "
                      f"{load_average()} |", flush=True)
    finally:
        for p in busy:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
