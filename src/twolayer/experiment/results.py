"""Reading a store back: runs as a pandas DataFrame, arrays and trajectories by run id, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from twolayer.experiment.errors import StoreError
from twolayer.experiment.spec import format_path
from twolayer.experiment.store import Store

RUN_COLUMNS = (
    "id",
    "sweep",
    "seed",
    "status",
    "diverged_step",
    "error",
    "wall_s",
    "shared",
    "host",
    "version",
    "created",
    "finished",
)

#: What computed each run (docs/engine.md, "Provenance"): one column per field, None where the
#: provenance is unknown (runs stored before it was recorded). ``provenance.blas`` is
#: ``openblas 0.3.27 x1; ...`` (each loaded BLAS/OpenMP library, its version and threads).
PROVENANCE_COLUMNS = (
    "provenance.twolayer",
    "provenance.commit",
    "provenance.dirty",
    "provenance.numpy",
    "provenance.scipy",
    "provenance.torch",
    "provenance.python",
    "provenance.blas",
    "provenance.id",
)


def provenance_columns(provenance: dict[str, Any] | None, pid: str | None) -> dict[str, Any]:
    """A run's provenance as the values of :data:`PROVENANCE_COLUMNS`."""
    from twolayer.experiment.provenance import blas_text

    p = provenance or {}
    out: dict[str, Any] = {
        f"provenance.{k}": p.get(k)
        for k in ("twolayer", "commit", "dirty", "numpy", "scipy", "torch", "python")
    }
    out["provenance.blas"] = blas_text(p["blas"]) if p.get("blas") else None
    out["provenance.id"] = pid
    return out


def flatten(data: Any, prefix: tuple[str | int, ...] = ()) -> dict[str, Any]:
    """Flatten nested config data into dotted columns (``train.steps[0].eta.c``).

    Lists of mappings are flattened element by element; lists of plain values (a lambda grid,
    a list of baselines) become one column holding a tuple.
    """
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, (*prefix, key)))
    elif isinstance(data, list) and any(isinstance(v, dict | list) for v in data):
        for i, value in enumerate(data):
            out.update(flatten(value, (*prefix, i)))
    elif isinstance(data, list):
        out[format_path(prefix)] = tuple(data)
    else:
        out[format_path(prefix)] = data
    return out


def load(store: str | Path, sweep: str | None = None) -> pd.DataFrame:
    """Runs of a store as a DataFrame: one row per run.

    Columns: the run columns (id, sweep, seed, status, diverged_step, error (first line),
    wall_s, shared, host, version, created, finished), the versions that computed the run
    (:data:`PROVENANCE_COLUMNS`: ``provenance.twolayer``, ``provenance.commit``,
    ``provenance.numpy``, ...; None when unknown), the resolved config flattened into
    dotted columns (``teacher.d``, ``train.steps[0].eta.c``, ...), then the scalar metrics
    (``readout.test_mse``, ...; NaN where a run has none). A metric whose name equals a config
    column is renamed ``metric.<name>``.

    Parameters
    ----------
    store : path
        A twolayer store.
    sweep : str, optional
        Only the runs of this sweep (a run shared by two sweeps appears in both).

    Raises
    ------
    StoreError
        If the file is not a twolayer store, or the sweep is not in it.
    """
    with Store(store, create=False) as st:
        if sweep is not None and sweep not in st.sweeps():
            known = ", ".join(st.sweeps()) or "none"
            raise StoreError(f"no sweep {sweep!r} in {store}; sweeps: {known}")
        records = st.records(sweep)
    rows = []
    metric_names: dict[str, None] = {}
    config_names: dict[str, None] = {}
    for rec in records:
        row = {k: rec.get(k) for k in RUN_COLUMNS}
        row["error"] = rec["error"].strip().splitlines()[0] if rec.get("error") else None
        row.update(provenance_columns(rec.get("provenance"), rec.get("provenance_id")))
        config = flatten(rec["config"])
        config_names.update(dict.fromkeys(config))
        row.update(config)
        row["__metrics"] = rec["metrics"]
        metric_names.update(dict.fromkeys(rec["metrics"]))
        rows.append(row)
    fixed = (*RUN_COLUMNS, *PROVENANCE_COLUMNS)
    for row in rows:
        metrics = row.pop("__metrics")
        for name in metric_names:
            column = f"metric.{name}" if name in config_names or name in fixed else name
            row[column] = metrics.get(name, np.nan)
    columns = [*fixed, *config_names]
    columns += [f"metric.{m}" if m in config_names or m in fixed else m for m in metric_names]
    frame = pd.DataFrame(rows, columns=columns)
    for col in ("created", "finished"):
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    if "shared" in frame:
        frame["shared"] = frame["shared"].astype("boolean")
    return frame


def load_arrays(store: str | Path, run_id: str) -> dict[str, np.ndarray]:
    """The arrays of one run (spectra, lambda paths, histograms, ...), by name."""
    with Store(store, create=False) as st:
        _check_run(st, run_id)
        return st.arrays(run_id)


def load_trajectory(store: str | Path, run_id: str) -> pd.DataFrame:
    """The training trajectory of one run: one row per recorded step."""
    with Store(store, create=False) as st:
        _check_run(st, run_id)
        return pd.DataFrame(st.trajectory(run_id))


def _check_run(st: Store, run_id: str) -> None:
    if not st.statuses([run_id]):
        raise StoreError(f"no run {run_id!r} in {st.path}")


def export(
    store: str | Path,
    out: str | Path | None = None,
    *,
    format: Literal["csv", "parquet"] = "csv",
    sweep: str | None = None,
) -> Path:
    """Write :func:`load`'s DataFrame as CSV or Parquet; returns the file written.

    Parameters
    ----------
    store : path
    out : path, optional
        Default: the store's path with suffix ``.csv`` / ``.parquet`` (with ``-<sweep>``).
    format : {"csv", "parquet"}
        Parquet needs pyarrow (``pip install twolayer[parquet]``).
    sweep : str, optional

    Raises
    ------
    StoreError
        If the store cannot be read, or the output file cannot be written (its directory does
        not exist, permissions, a full disk): one message naming the file.
    """
    store = Path(store)
    if out is None:
        stem = store.stem + (f"-{sweep}" if sweep else "")
        out = store.with_name(f"{stem}.{format}")
    out = Path(out)
    if not out.parent.is_dir():  # before the store is read
        raise StoreError(
            f"cannot write {out}: no directory {out.parent} (create it first, or choose "
            "another output file)"
        )
    frame = load(store, sweep)
    # lists (lambda grids, baselines) as text, so that both formats hold one type per column
    for col in frame.columns:
        if frame[col].map(lambda v: isinstance(v, tuple)).any():
            frame[col] = frame[col].map(lambda v: str(list(v)) if isinstance(v, tuple) else v)
    try:
        _write(frame, out, format)
    except OSError as exc:
        raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def _write(frame: pd.DataFrame, out: Path, format: str) -> None:
    if format == "csv":
        frame.to_csv(out, index=False)
    elif format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise StoreError(
                "parquet export needs pyarrow: pip install 'twolayer[parquet]'"
            ) from None
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].map(lambda v: None if v is None else str(v))
        frame.to_parquet(out, index=False)
    else:
        raise ValueError(f"format must be 'csv' or 'parquet', got {format!r}")
