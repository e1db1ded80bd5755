"""twolayer benchmarks: one command, results as Markdown tables.

    python benchmarks/run.py                 # all CPU cases at the default sizes
    python benchmarks/run.py bare naive      # some cases
    python benchmarks/run.py --size 2000     # d = N = n for the single-run cases

Cases
-----
bare     one giant step + ridge readout (one lambda) + test error: twolayer's wall time
         against the bare BLAS/LAPACK calls of the same shapes (the products and one Cholesky
         factor-and-solve), timed in the same process (goal <= 1.2x), and against those calls
         plus the Gaussian draws of the same sizes.
solver   the ridge solver's crossover: one Cholesky factor-and-solve per lambda against one
         eigendecomposition for the whole grid, for grids of 1 to 32 lambdas.
naive    a one-step experiment swept over readout sizes, lambdas and seeds, against a
         straightforward NumPy script written the way papers' code does it (every point from
         scratch, an explicit inverse per lambda, full SVD, the test set materialised);
         the numbers must agree, twolayer shares stages (goal >= 4x).
memory   peak traced memory of one run against n_test (goal: flat).
scaling  wall time of one run against d = N = n, with the fitted exponent.
dask     sweep throughput against the number of workers of a dask LocalCluster.
large    one step + ridge readout at d = N = n = 8,000 in float32, then float64.
batched  8 seeds of one step + ridge path as one batched computation (run_batch) against a
         loop of run_once, at d = N = n = size/5 and size, NumPy and torch (CPU, or CUDA when
         available); the numbers must agree to rounding.
gpu      one step + ridge readout at d = N = n = size in float32 on CUDA, against NumPy float32
         on the CPU at the same size (up to 16,000): the speed-up (a GPU machine only, e.g.
         ``--size 16000`` then ``--size 32000``; skipped without CUDA).

Every time is the median over ``--repeats`` repetitions. Absolute times depend on the machine
(say which in docs/performance.md); ratios measured in one run are what the goals are about.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg

from twolayer import RunConfig, StageCache, run_batch, run_once
from twolayer.activations import get_activation


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    return timed(fn, repeats)[0]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls and the first call's result (so that a case whose
    output is checked need not run once more untimed)."""
    times, first = [], None
    for i in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if i == 0:
            first = out
    return statistics.median(times), first


def one_step_config(d: int, N: int, n: int, n_test: int, lambdas: list[float],
                    n_readout: int | None = None,
                    measure: list[dict[str, Any]] | None = None) -> RunConfig:
    return RunConfig.model_validate({
        "measure": measure or [],
        "teacher": {"name": "single_index", "d": d, "link": "tanh", "noise": 0.1},
        "student": {"N": N, "activation": "relu", "a_scale": 1 / math.sqrt(N)},
        "train": {"protocol": "giant_steps", "n": n,
                  "steps": [{"eta": {"c": 8.0, "alpha": 0.5, "S": "N"}}]},
        "readout": {"n": n_readout or n, "lambdas": lambdas},
        "evaluate": {"n_test": n_test, "chunk": 4096, "train_errors": False},
    })


def table(header: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
def bench_bare(size: int, repeats: int) -> str:
    """twolayer's one-step run vs the bare BLAS/LAPACK calls it needs."""
    d = N = n = size
    n_test = 2 * size
    cfg = one_step_config(d, N, n, n_test, [1e-3])
    rng = np.random.default_rng(0)
    X, W, Xr, Xt = (rng.standard_normal(s) for s in ((n, d), (N, d), (n, d), (n_test, d)))
    y = rng.standard_normal(n)

    def bare() -> None:
        # the calls a one-step run with one lambda cannot avoid: products, and one Cholesky
        # factor-and-solve (cheaper than an eigendecomposition, which a long grid would need)
        P = X @ W.T  # forward pass of the step
        G = np.maximum(P, 0) * y[:, None]
        _ = G.T @ X  # gradient in W
        F = np.maximum(Xr @ W.T, 0)  # readout features
        A = F.T @ F  # Gram matrix
        A[np.diag_indices_from(A)] += n * 1e-3
        _ = scipy.linalg.cho_solve(scipy.linalg.cho_factor(A, check_finite=False), F.T @ y,
                                   check_finite=False)
        _ = np.maximum(Xt @ W.T, 0) @ y[:N]  # test predictions

    def draws() -> None:
        # the Gaussian numbers any script of this experiment draws: W_0, a, the step's batch,
        # the readout batch and the test set
        g = np.random.default_rng(1)
        for shape in ((N, d), (N,), (n, d), (n, d), (n_test, d)):
            g.standard_normal(shape)

    t_run = median_time(lambda: run_once(cfg, 0), repeats)
    t_bare = median_time(bare, repeats)
    t_draws = median_time(draws, repeats)
    return table(
        ["d = N = n", "n_test", "twolayer run (s)", "bare calls (s)", "ratio",
         "Gaussian draws (s)", "ratio to bare calls + draws"],
        [[size, n_test, t_run, t_bare, t_run / t_bare, t_draws, t_run / (t_bare + t_draws)]],
    )


# ---------------------------------------------------------------------------------------------
def naive_one_step_point(d: int, N: int, n: int, n_readout: int, lam: float, seed: int,
                         n_test: int) -> float:
    """The straightforward script: everything recomputed for one (readout size, lambda, seed),
    an explicit inverse, a full SVD, the test set in memory. Same streams as twolayer, so the
    numbers agree."""
    from twolayer.backend import RunStreams
    from twolayer.measure.errors import SAMPLE_BLOCK
    from twolayer.teachers import get_teacher, sample_blocks

    streams = RunStreams(seed)
    teacher = get_teacher("single_index", d=d, rng=streams.generator("teacher"), link="tanh",
                          noise=0.1)
    rng = streams.generator("init")
    W = rng.standard_normal((N, d)) / math.sqrt(d)
    a = rng.standard_normal(N) / math.sqrt(N)
    X, y = teacher.sample_numpy(n, streams.generator("batch", 0))
    relu = get_activation("relu")
    P = X @ W.T
    f = (np.maximum(P, 0) @ a) / math.sqrt(N)
    grad = ((((f - y)[:, None] * relu.derivative(P)) * a[None, :]).T @ X) / (n * math.sqrt(N))
    W1 = W - 8.0 * math.sqrt(N) * grad
    _ = np.linalg.svd(W1)  # papers compute the full SVD to look at the spectrum
    Xr, yr = sample_blocks(teacher, streams, "readout", n_readout, full=True)
    F = np.maximum(Xr @ W1.T, 0) / math.sqrt(N)
    A = np.linalg.inv(F.T @ F + n_readout * lam * np.eye(N)) @ (F.T @ yr)
    blocks = [teacher.sample_numpy(min(SAMPLE_BLOCK, n_test - j * SAMPLE_BLOCK),
                                   streams.generator("test", j))
              for j in range(-(-n_test // SAMPLE_BLOCK))]
    Xt = np.concatenate([b[0] for b in blocks])
    yt = np.concatenate([b[1] for b in blocks])
    return float(np.mean((np.maximum(Xt @ W1.T, 0) @ A / math.sqrt(N) - yt) ** 2))


def bench_naive(size: int, repeats: int) -> str:
    """A sweep over readout sizes x lambdas x seeds: twolayer (shared stages, one
    eigendecomposition per readout) against the per-point NumPy script."""
    d = N = n = size
    n_test = 4 * size
    readouts = [size // 2, size, 2 * size]
    lambdas = [1e-4, 1e-3, 1e-2, 1e-1]
    seeds = [0, 1]

    def ours() -> dict[tuple[int, int, float], float]:
        cache = StageCache(maxsize=2)
        out = {}
        for seed in seeds:
            for m in readouts:
                r = run_once(one_step_config(d, N, n, n_test, lambdas, m), seed, cache=cache)
                for lam, v in zip(lambdas, r.arrays["readout.test_mse_path"], strict=True):
                    out[(seed, m, lam)] = float(v)
        return out

    def naive() -> dict[tuple[int, int, float], float]:
        return {(seed, m, lam): naive_one_step_point(d, N, n, m, lam, seed, n_test)
                for seed in seeds for m in readouts for lam in lambdas}

    t_ours, a = timed(ours, repeats)
    t_naive, b = timed(naive, repeats)
    worst = max(abs(a[k] - b[k]) / b[k] for k in a)
    single = one_step_config(d, N, n, n_test, [1e-3])
    t_one = median_time(lambda: run_once(single, 0), repeats)
    t_one_naive = median_time(lambda: naive_one_step_point(d, N, n, n, 1e-3, 0, n_test), repeats)
    return table(
        ["case", "points", "twolayer (s)", "naive NumPy (s)", "speed-up", "max rel. diff"],
        [
            [f"sweep d = N = n = {size}", len(a), t_ours, t_naive, t_naive / t_ours, worst],
            ["single run", 1, t_one, t_one_naive, t_one_naive / t_one, ""],
        ],
    )


# ---------------------------------------------------------------------------------------------
def bench_memory(size: int, repeats: int) -> str:
    """Peak traced memory (tracemalloc: NumPy buffers included) against n_test."""
    rows = []
    for n_test in (5_000, 20_000, 80_000):
        cfg = one_step_config(size, size, size, n_test, [1e-3])
        tracemalloc.start()
        run_once(cfg, 0)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        materialised = n_test * (size + size) * 8 / 2**20
        rows.append([n_test, peak / 2**20, materialised])
    return table(["n_test", "peak traced memory (MiB)",
                  "test set + features if materialised (MiB)"], rows)


def bench_scaling(size: int, repeats: int) -> str:
    sizes = [size // 4, size // 2, size]
    times = [median_time(lambda s=s: run_once(one_step_config(s, s, s, s, [1e-3]), 0), repeats)
             for s in sizes]
    slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
    rows = [[s, t] for s, t in zip(sizes, times, strict=True)]
    return table(["d = N = n = n_test", "wall time (s)"], rows) + (
        f"\n\nfitted exponent: time ~ size^{slope:.2f} (GEMM-bound work is size^3)"
    )


def bench_dask(size: int, repeats: int) -> str:
    """8 seeds of one step + ridge readout through run_spec: serial in the driver, then on a
    LocalCluster (processes) with 1 or 2 workers and 1 or 2 BLAS threads each, so that the
    gain of a second worker is measured against the same total number of BLAS threads.
    The cluster's start is not timed; each row is the median over ``repeats`` sweeps."""
    import tempfile

    from dask.distributed import Client, LocalCluster

    from twolayer.experiment import run_spec

    spec = {
        "name": "bench", "seeds": 8,
        "teacher": {"name": "single_index", "d": size, "link": "tanh"},
        "student": {"N": size, "activation": "relu"},
        "train": {"protocol": "giant_steps", "n": size, "steps": [{"eta": 1.0}]},
        "readout": {"n": size, "lambdas": [1e-3]},
        "evaluate": {"n_test": size},
    }

    def sweep(executor: dict[str, Any]) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_spec({**spec, "executor": executor}, store=f"{tmp}/s.sqlite")
            return time.perf_counter() - t0

    rows = []
    for blas in (1, 2):
        t = median_time(lambda b=blas: sweep({"kind": "serial", "threads_per_worker": b}),
                        repeats)
        rows.append(["serial (no dask)", 1, blas, 8, t, 8 / t])
    for workers, blas in ((1, 1), (1, 2), (2, 1)):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster, \
                Client(cluster) as client:
            executor = {"kind": "dask", "address": client.scheduler.address,
                        "threads_per_worker": blas}
            sweep(executor)  # warm-up: imports and the Hermite constants in each worker
            t = median_time(lambda e=executor: sweep(e), repeats)
        rows.append(["dask LocalCluster", workers, blas, 8, t, 8 / t])
    return table(["executor", "workers", "BLAS threads / worker", "runs", "wall time (s)",
                  "runs / s"], rows) + f"\n\nload average (1 min) after: {os.getloadavg()[0]:.1f}"


def bench_large(size: int, repeats: int) -> str:
    """d = N = n = 8000 with the outliers and the top-3 overlaps of W_1 (Lanczos: only the top
    singular triplets are computed), in float32 then float64 (NumPy on the CPU). Run this case
    alone: the peak resident memory is the process's (ru_maxrss), so float32 runs first and its
    peak is read before float64 raises it."""
    import gc
    import resource

    s = 8000
    base = one_step_config(s, s, s, 8192, [1e-4, 1e-3, 1e-2],
                           measure=[{"name": "outliers", "features_outliers": False},
                                    {"name": "overlaps", "top_k": 3}]).model_dump()
    rows = []
    for dtype in ("float32", "float64"):
        cfg = RunConfig.model_validate({**base, "backend": {"name": "numpy", "dtype": dtype}})
        t0 = time.perf_counter()
        r = run_once(cfg, 0)
        elapsed = time.perf_counter() - t0
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        rows.append([s, dtype, 8192, elapsed,
                     ", ".join(f"{k} {v:.0f}" for k, v in r.timings.items()), peak_gib,
                     r.scalars["readout.test_mse"], r.scalars["outliers.W_count"],
                     r.scalars["overlaps.W_top_overlap"]])
        del r  # the next run's peak must not include this one's arrays
        gc.collect()
    return table(["d = N = n", "dtype", "n_test", "wall time (s)", "stages (s)",
                  "peak RSS so far (GiB)", "readout test MSE", "outliers of W_1", "top overlap"],
                 rows)


def bench_batched(size: int, repeats: int, seeds: int = 8) -> str:
    """S seeds of one step + ridge path (3 lambdas, n_test = 2 d): run_batch against a loop
    of run_once, timed alternately in one process so that both see the same load."""
    backends = [("numpy", None), ("torch", "cpu")]
    try:
        import torch

        if torch.cuda.is_available():
            backends.append(("torch", "cuda"))
    except ImportError:
        backends = backends[:1]
    seed_list = list(range(seeds))
    load_before = os.getloadavg()[0]
    rows = []
    for s in (size // 5, size):
        base = one_step_config(s, s, s, 2 * s, [1e-4, 1e-3, 1e-2]).model_dump()
        for name, device in backends:
            cfg = RunConfig.model_validate({**base, "backend": {"name": name, "device": device}})
            run_batch(cfg, seed_list[:2])  # warm-up (imports, CUDA context, allocator)
            run_once(cfg, 0)
            times: dict[str, list[float]] = {"batch": [], "loop": []}
            out: dict[str, list[Any]] = {}
            for r in range(repeats):
                for kind in ("batch", "loop") if r % 2 == 0 else ("loop", "batch"):
                    t0 = time.perf_counter()
                    if kind == "batch":
                        out[kind] = run_batch(cfg, seed_list)
                    else:
                        out[kind] = [run_once(cfg, k) for k in seed_list]
                    times[kind].append(time.perf_counter() - t0)
            diff = max(abs(b.scalars["readout.test_mse"] / a.scalars["readout.test_mse"] - 1)
                       for a, b in zip(out["loop"], out["batch"], strict=True))
            tb, tl = statistics.median(times["batch"]), statistics.median(times["loop"])
            rows.append([s, f"{name} {device or 'cpu'}", seeds, tl, tb, tl / tb, diff])
    return table(["d = N = n", "backend", "seeds", "loop of run_once (s)", "run_batch (s)",
                  "speed-up", "max rel. diff"], rows) + (
        f"\n\nload average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}"
    )


def bench_gpu(size: int, repeats: int, device: str = "cuda", cpu_max: int = 16000) -> str:
    """One step + ridge readout (3 lambdas) + test error at d = N = n = ``size`` in float32 on
    a torch device, against NumPy float32 on this machine's CPU at the same size (skipped above
    ``cpu_max``); both wall times are medians of ``repeats`` after one warm-up at size / 8.
    The numbers of the two runs must agree to float32 precision."""
    try:
        import torch
    except ImportError:
        return "torch is not installed: case skipped"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "no CUDA device: case skipped"

    def config(s: int, backend: dict[str, Any]) -> RunConfig:
        base = one_step_config(s, s, s, s, [1e-4, 1e-3, 1e-2]).model_dump()
        return RunConfig.model_validate({**base, "backend": backend})

    def timed_run(cfg: RunConfig) -> tuple[float, Any]:
        def once() -> Any:
            out = run_once(cfg, 0)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return out
        return timed(once, repeats)

    gpu = {"name": "torch", "device": device, "dtype": "float32"}
    cpu = {"name": "numpy", "dtype": "float32"}
    run_once(config(max(size // 8, 64), gpu), 0)  # warm-up: CUDA context, kernels, allocator
    t_gpu, r_gpu = timed_run(config(size, gpu))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else math.nan
    row: list[Any] = [size, device, t_gpu, peak, r_gpu.scalars["readout.test_mse"]]
    if size <= cpu_max:
        run_once(config(max(size // 8, 64), cpu), 0)
        t_cpu, r_cpu = timed_run(config(size, cpu))
        rel = abs(r_gpu.scalars["readout.test_mse"] / r_cpu.scalars["readout.test_mse"] - 1)
        row += [t_cpu, t_cpu / t_gpu, rel]
    else:
        row += ["not run", "", ""]
    stages = ", ".join(f"{k} {v:.1f}" for k, v in r_gpu.timings.items())
    return table(["d = N = n", "device", "torch float32 (s)", "peak device memory (GiB)",
                  "readout test MSE", "NumPy float32, CPU (s)", "speed-up",
                  "rel. diff of test MSE"], [row]) + (
        f"\n\ndevice stages (s): {stages}; CPU: {os.cpu_count()} logical cores"
    )


# ---------------------------------------------------------------------------------------------
def bench_solver(size: int, repeats: int) -> str:
    """The ridge solver's crossover: one Cholesky factor-and-solve per lambda against one eigh
    for the whole grid, on a p x p Gram matrix (p = size), for grids of 1 to 32 lambdas."""
    from twolayer.train.readout import solve_shifted

    p = size
    rng = np.random.default_rng(0)
    F = rng.standard_normal((2 * p, p))
    G, b = F.T @ F, F.T @ rng.standard_normal(2 * p)
    rows = []
    for L in (1, 2, 4, 8, 16, 32):
        shifts = np.logspace(-2, 2, L) * p
        t_chol = median_time(lambda s=shifts: solve_shifted(G, b, s, "cholesky"), repeats)
        t_eigh = median_time(lambda s=shifts: solve_shifted(G, b, s, "eigh"), repeats)
        rows.append([p, L, t_chol, t_eigh, t_eigh / t_chol])
    return table(["p", "lambdas", "Cholesky per lambda (s)", "one eigh (s)", "eigh / Cholesky"],
                 rows)


CASES = {"bare": bench_bare, "solver": bench_solver, "naive": bench_naive, "memory": bench_memory,
         "scaling": bench_scaling, "dask": bench_dask, "large": bench_large,
         "batched": bench_batched, "gpu": bench_gpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=["bare", "naive", "memory", "scaling"],
                        help=f"cases (default: bare naive memory scaling; all: {list(CASES)})")
    parser.add_argument("--size", type=int, default=1000, help="d = N = n of single runs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# twolayer benchmarks — {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}, median of {args.repeats}\n")
    for case in args.cases:
        print(f"## {case}\n\n{CASES[case](args.size, args.repeats)}\n", flush=True)


if __name__ == "__main__":
    main()
