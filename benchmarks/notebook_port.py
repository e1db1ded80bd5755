"""A paper's notebook against its port to twolayer: Cui et al. 2024's one-step learning curve.

    python benchmarks/notebook_port.py                   # d = 2000 and 1000, 3 alternations
    python benchmarks/notebook_port.py --d 1000 --repeats 5
    python benchmarks/notebook_port.py --impl notebook --d 1000 --out res.json   # one process

The experiment (examples/notebook_port.yaml, docs/notebook-port.md): x ~ N(0, I_d),
y = tanh(<beta, x>); a tanh student of width p = d with unit rows and a_0 = 1/sqrt(p); one
full-batch giant step on W with eta = p on n_0 = d/2 samples; for each alpha in
linspace(0.2, 3, 7) a ridge readout (summed loss, lambda = 0.01) on n = int(alpha d) fresh
samples, tested on 5000 fresh samples; 3 seeds that redraw the readout and test data only.

``notebook`` is that experiment written the way such notebooks are written (NumPy only): one
W_0 and one step shared by every fit; per fit, fresh readout and test data, their features and
one explicit inverse of the smaller Gram matrix. ``twolayer`` runs the example spec through
``run_spec`` (serial executor, a fresh store) and reads the store back (``Store.records``), so
its time includes the imports, the spec validation and the store writes; ``twolayer+theory``
also computes the sRF theory beside every point (the example as shipped), which the notebook
does not.

The driver runs each implementation as a whole separate process, alternating, and prints the
median wall times, their ratio, and per alpha the mean test error +- its standard error over
seeds for both (they agree when within 3 combined standard errors: the two draw different
W_0, so a common offset of order the W_0-to-W_0 spread remains possible; the table shows it).
The single-fit rows time one fit (alpha = 1, one seed) the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ALPHAS = np.linspace(0.2, 3.0, 7)


def notebook(d: int, seeds: int, alphas: np.ndarray, n_test: int = 5000, lam: float = 0.01
             ) -> list[dict]:
    """The notebook: one W_0 and one step for every fit; per fit fresh readout and test data
    and an explicit inverse. Returns one row per (seed, alpha)."""
    p, n0 = d, d // 2
    rng = np.random.default_rng(0)
    beta = rng.standard_normal(d)
    beta /= np.linalg.norm(beta)
    W0 = rng.standard_normal((p, d))
    W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    a0 = np.ones(p) / np.sqrt(p)
    X0 = rng.standard_normal((n0, d))
    y0 = np.tanh(X0 @ beta)
    T = np.tanh(X0 @ W0.T)
    f0 = T @ a0 / np.sqrt(p)
    grad = -(((y0 - f0)[:, None] * (1 - T**2)) * a0[None, :] / np.sqrt(p)).T @ X0 / n0
    W1 = W0 - p * grad  # eta = p, square loss 0.5 (f - y)^2 averaged over the batch
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed + 1)
        for alpha in alphas:
            n = int(alpha * d)
            X = rng.standard_normal((n, d))
            y = np.tanh(X @ beta)
            F = np.tanh(X @ W1.T) / np.sqrt(p)
            if n < p:
                a = F.T @ (np.linalg.inv(F @ F.T + lam * np.eye(n)) @ y)
            else:
                a = np.linalg.inv(F.T @ F + lam * np.eye(p)) @ (F.T @ y)
            train = float(np.mean((F @ a - y) ** 2))
            Xt = rng.standard_normal((n_test, d))
            yt = np.tanh(Xt @ beta)
            test = float(np.mean((np.tanh(Xt @ W1.T) / np.sqrt(p) @ a - yt) ** 2))
            rows.append({"seed": seed, "n": n, "test_mse": test, "train_mse": train})
    return rows


def port_spec(d: int, seeds: int, alphas: np.ndarray, theory: bool = True) -> dict:
    """examples/notebook_port.yaml at size d (p = d, n_0 = d/2, the readout sizes int(alpha d))."""
    import yaml

    spec = yaml.safe_load((ROOT / "examples" / "notebook_port.yaml").read_text())
    spec["seeds"] = seeds
    spec["teacher"]["d"] = d
    spec["student"]["N"] = d
    spec["student"]["a_scale"] = float(1.0 / np.sqrt(d))
    spec["train"]["n"] = d // 2
    spec["sweep"] = {"readout.n": [int(a * d) for a in alphas]}
    spec["executor"] = {"kind": "serial"}
    if not theory:
        spec.pop("measure")
    return spec


def port(d: int, seeds: int, alphas: np.ndarray, theory: bool = True) -> list[dict]:
    """The example spec through run_spec into a fresh store, read back with the store's own
    API (``Store.records``: plain dicts; ``twolayer.experiment.load`` gives the same as a
    DataFrame, at the cost of importing pandas, ~0.4 s)."""
    from twolayer.experiment import run_spec
    from twolayer.experiment.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "port.sqlite"
        run_spec(port_spec(d, seeds, alphas, theory), store=store)
        with Store(store, create=False) as st:
            records = st.records()
    return [
        {"seed": int(r["seed"]), "n": int(r["config"]["readout"]["n"]),
         "test_mse": r["metrics"]["readout.test_mse"],
         "train_mse": r["metrics"]["readout.train_mse"],
         "theory": r["metrics"]["spiked_rf_theory.test_mse"] if theory else float("nan")}
        for r in records
    ]


IMPLS = {
    "notebook": notebook,
    "twolayer": lambda d, seeds, alphas: port(d, seeds, alphas, theory=False),
    "twolayer+theory": port,
}


def _one_process(impl: str, d: int, single: bool) -> tuple[float, list[dict]]:
    """Run one implementation in a fresh process; its wall time (process start to exit)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--impl", impl, "--d", str(d),
               "--out", str(out)] + (["--single"] if single else [])
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        wall = time.perf_counter() - t0
        return wall, json.loads(out.read_text())


def _summary(rows: list[dict], key: str = "test_mse") -> dict[int, tuple[float, float]]:
    by_n: dict[int, list[float]] = {}
    for r in rows:
        by_n.setdefault(r["n"], []).append(r[key])
    return {
        n: (float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0)
        for n, v in sorted(by_n.items())
    }


def drive(sizes: list[int], repeats: int) -> None:
    print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f}")
    for d in sizes:
        for single in (False, True):
            impls = ("notebook", "twolayer") if single else tuple(IMPLS)
            walls: dict[str, list[float]] = {k: [] for k in impls}
            rows: dict[str, list[dict]] = {}
            for _ in range(repeats):
                for impl in impls:
                    wall, rows[impl] = _one_process(impl, d, single)
                    walls[impl].append(wall)
            med = {k: statistics.median(v) for k, v in walls.items()}
            what = "one fit (alpha = 1, 1 seed)" if single else "learning curve (7 x 3 fits)"
            print(f"\n### d = p = {d}: {what}\n")
            print("| implementation | walls (s) | median (s) |\n|---|---|---|")
            for k in impls:
                print(f"| {k} | {', '.join(f'{w:.1f}' for w in walls[k])} | {med[k]:.2f} |")
            for k in impls[1:]:
                print(f"\nspeed-up of {k} (median notebook / median {k}): "
                      f"**{med['notebook'] / med[k]:.2f}x**")
            if single:
                continue
            nb, tl = _summary(rows["notebook"]), _summary(rows["twolayer+theory"])
            theory = {r["n"]: r["theory"] for r in rows["twolayer+theory"]}
            print("\n| n | notebook test MSE | twolayer test MSE | sRF theory | |diff| / se |\n"
                  "|---|---|---|---|---|")
            for n in nb:
                (m1, s1), (m2, s2) = nb[n], tl[n]
                z = abs(m1 - m2) / max(np.hypot(s1, s2), 1e-300)
                print(f"| {n} | {m1:.4f} +- {s1:.4f} | {m2:.4f} +- {s2:.4f} | {theory[n]:.4f} | "
                      f"{z:.1f} |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", choices=list(IMPLS))
    ap.add_argument("--d", type=int, action="append")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--single", action="store_true", help="one fit: alpha = 1, one seed")
    ap.add_argument("--out")
    args = ap.parse_args()
    sizes = args.d or [2000, 1000]
    if args.impl is None:
        drive(sizes, args.repeats)
        return
    seeds, alphas = (1, np.array([1.0])) if args.single else (3, ALPHAS)
    rows = IMPLS[args.impl](sizes[0], seeds, alphas)
    if args.out:
        Path(args.out).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
