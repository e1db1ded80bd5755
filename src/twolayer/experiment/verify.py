"""``twolayer verify``: recompute a sample of a store's runs and compare (docs/engine.md, "Verify").

A run is deterministic given its config and seed (every stage draws from its own stream of one
SeedSequence), so recomputing it in the same environment gives the stored numbers; what can move
them is rounding (another BLAS, its kernels or thread count, the readout's shared Gram matrices)
and, beyond rounding, a change of code or library. :func:`verify_store` reruns K stored done
runs in this process, writes nothing, and reports per metric the largest absolute and relative
difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twolayer.experiment import provenance as prov
from twolayer.experiment.errors import StoreError
from twolayer.experiment.store import Store

#: Default tolerances by run dtype: (rtol, atol). A difference exceeds them when
#: ``|new - stored| > atol + rtol * scale`` (scale: ``|stored|`` of a scalar, the largest
#: ``|stored|`` of an array; :func:`_differences`). In float64 the rounding of one environment
#: against another (BLAS version, kernels, threads) starts at ~1e-16 and is amplified by the
#: ill-conditioned solves of a run (ridge at small lambda, many giant steps) to ~1e-12-1e-9 in
#: the runs we measured (docs/engine.md, "Verify"); 1e-6 leaves room for that, while a change
#: of code or a library that changes results moves them by the seed-to-seed scale (>= 1e-3).
#: float32 rounds at ~1e-7, hence 1e-3.
TOLERANCES: dict[str, tuple[float, float]] = {"float64": (1e-6, 1e-9), "float32": (1e-3, 1e-6)}


@dataclass
class MetricDiff:
    """The largest differences of one metric (or array, ``array:<name>``) over the runs.

    Attributes
    ----------
    runs : int
        Runs that have the metric (stored or recomputed).
    max_abs, max_rel : float
        Largest ``|new - stored|`` and ``|new - stored| / scale`` (0 for two NaNs; inf when one
        side is NaN or missing, or relative to a scale of 0). The scale of a scalar is
        ``|stored|``; that of an array, its largest ``|stored|`` entry.
    worst : str
        The run with the largest excess over its tolerance (or the largest difference).
    exceeded : int
        Runs in which it exceeds the tolerance.
    """

    runs: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst: str = ""
    exceeded: int = 0
    _score: float = field(default=-math.inf, repr=False)


@dataclass
class VerifyReport:
    """What :func:`verify_store` found.

    Attributes
    ----------
    store : Path
    done : int
        Done runs in the store (of the sweep, if one was given).
    runs : list of str
        The run ids recomputed.
    metrics : dict[str, MetricDiff]
        Per scalar metric, and per array as ``array:<name>`` (elementwise).
    problems : list of str
        Runs that no longer finish as done, or whose stored config now resolves to another
        run id (a default changed); each fails the verification.
    tolerance : dict[str, tuple[float, float]]
        (rtol, atol) per dtype used.
    stale : list
        The recomputed runs' provenances that differ from this environment
        (:func:`twolayer.experiment.provenance.stale_groups`).
    """

    store: Path
    done: int
    runs: list[str] = field(default_factory=list)
    metrics: dict[str, MetricDiff] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    tolerance: dict[str, tuple[float, float]] = field(default_factory=dict)
    stale: list[tuple[dict[str, Any] | None, int, list[str]]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No difference over the tolerance and no problem."""
        return not self.problems and not any(m.exceeded for m in self.metrics.values())


def sample_runs(run_ids: list[str], k: int, seed: int) -> list[str]:
    """``k`` of ``run_ids`` drawn without replacement by ``default_rng(seed)`` (all of them
    when there are at most ``k``), in the given order: the same store, k and seed give the same
    sample."""
    if k < 0:
        raise ValueError(f"sample must be non-negative, got {k}")
    if k >= len(run_ids):
        return list(run_ids)
    picked = np.random.default_rng(seed).choice(len(run_ids), size=k, replace=False)
    return [run_ids[i] for i in sorted(int(i) for i in picked)]


def _differences(
    stored: np.ndarray, new: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute differences, NaN-aware (two NaNs: 0; one: inf), the scale each is measured
    against, and the relative differences ``diff / scale`` (inf relative to a scale of 0).

    A scalar's scale is its own magnitude. An array's is its largest finite magnitude, for
    every entry: a spectrum's smallest singular values (those of a low-rank update, say) are
    rounding noise of size eps times the largest, and relative to themselves they would differ
    by any amount (measured: 4e-9 against a stored 0 when only the BLAS threads changed).
    """
    stored, new = np.asarray(stored, dtype=float), np.asarray(new, dtype=float)
    both_nan = np.isnan(stored) & np.isnan(new)
    finite = np.abs(stored[np.isfinite(stored)])
    if stored.ndim == 0:
        scale = np.abs(np.nan_to_num(stored))
    else:
        scale = np.full(stored.shape, finite.max() if finite.size else 0.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        diff = np.abs(new - stored)
        diff = np.where(both_nan, 0.0, np.where(np.isnan(diff), np.inf, diff))
        rel = np.where(diff == 0, 0.0, diff / scale)
    rel = np.where(np.isnan(rel), np.inf, rel)
    return diff, scale, rel


def _note(
    report: VerifyReport, name: str, run_id: str, stored: Any, new: Any, tol: tuple[float, float]
) -> None:
    entry = report.metrics.setdefault(name, MetricDiff())
    entry.runs += 1
    if stored is None or new is None or np.shape(stored) != np.shape(new):
        diff = rel = np.array([np.inf])
        stored_abs = np.array([0.0])
    else:
        diff, stored_abs, rel = _differences(stored, new)
    rtol, atol = tol
    with np.errstate(invalid="ignore", over="ignore"):
        excess = diff - (atol + rtol * stored_abs)
    max_abs = float(np.max(diff, initial=0.0))
    max_rel = float(np.max(rel, initial=0.0))
    score = float(np.max(excess, initial=-math.inf))
    if np.any(excess > 0):
        entry.exceeded += 1
    entry.max_abs = max(entry.max_abs, max_abs)
    entry.max_rel = max(entry.max_rel, max_rel)
    if score > entry._score:
        entry._score, entry.worst = score, run_id


def verify_store(
    store: str | Path,
    *,
    sample: int = 5,
    seed: int = 0,
    sweep: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> VerifyReport:
    """Recompute ``sample`` stored done runs in this process and compare with the store.

    Nothing is written: the store is opened read-only. Each run is recomputed alone (no stage
    shared with other runs) under the engine's thread policy, from its stored config and seed.

    Parameters
    ----------
    store : path
    sample : int
        Runs to recompute, drawn at random among the done runs (:func:`sample_runs`).
    seed : int
        Seed of that draw.
    sweep : str, optional
        Draw from the runs of this sweep only.
    rtol, atol : float, optional
        Tolerance (default :data:`TOLERANCES` of each run's dtype).

    Returns
    -------
    VerifyReport

    Raises
    ------
    StoreError
        If the store cannot be read, the sweep is not in it, or a plugin module its spec names
        cannot be imported.
    """
    from twolayer.config import RunConfig
    from twolayer.experiment.record import execute_run
    from twolayer.experiment.spec import run_id as run_id_of

    path = Path(store)
    with Store(path, create=False) as st:
        if sweep is not None and sweep not in st.sweeps():
            known = ", ".join(st.sweeps()) or "none"
            raise StoreError(f"no sweep {sweep!r} in {path}; sweeps: {known}")
        done = st.run_ids(sweep, "done")
        chosen = sample_runs(done, sample, seed)
        records = st.records(sweep, run_ids=chosen)
        arrays = {r["id"]: st.arrays(r["id"]) for r in records}
        specs = {name: st.sweep_spec(name) for name in {r["sweep"] for r in records}}
    _load_plugins(specs, path)
    report = VerifyReport(path, len(done), [r["id"] for r in records])
    counts: dict[str, tuple[dict[str, Any] | None, int]] = {}
    for rec in records:
        p = rec["provenance"]
        key = "null" if p is None else prov.provenance_id(p)
        counts[key] = (p, counts.get(key, (p, 0))[1] + 1)
    report.stale = prov.stale_groups(list(counts.values()), prov.environment())
    for rec in records:
        config = RunConfig.model_validate(rec["config"])
        dtype = config.backend.dtype
        default = TOLERANCES.get(dtype, TOLERANCES["float64"])
        tol = (default[0] if rtol is None else rtol, default[1] if atol is None else atol)
        report.tolerance[dtype] = tol
        if run_id_of(config, rec["seed"]) != rec["id"]:
            report.problems.append(
                f"{rec['id']}: its stored config now resolves to run id "
                f"{run_id_of(config, rec['seed'])} (a default or a field of the config changed)"
            )
        new = execute_run((rec["id"], config, int(rec["seed"])))
        if new.status != "done":
            first = (new.error or "").strip().splitlines()[0] if new.error else ""
            report.problems.append(f"{rec['id']}: stored done, now {new.status}: {first}")
            continue
        for name in sorted(set(rec["metrics"]) | set(new.scalars)):
            _note(report, name, rec["id"], rec["metrics"].get(name), new.scalars.get(name), tol)
        old_arrays = arrays[rec["id"]]
        for name in sorted(set(old_arrays) | set(new.arrays)):
            _note(
                report, f"array:{name}", rec["id"], old_arrays.get(name), new.arrays.get(name), tol
            )
    return report


def _load_plugins(specs: dict[str, dict[str, Any] | None], path: Path) -> None:
    from twolayer.plugins import PluginError, load_plugins

    for name, spec in specs.items():
        plugins = (spec or {}).get("plugins") or []
        try:
            load_plugins(plugins)
        except PluginError as exc:
            raise StoreError(
                f"cannot verify the runs of sweep {name!r} in {path}: its plugin modules "
                f"cannot be imported here ({exc})"
            ) from None
