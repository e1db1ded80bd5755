"""The store: one SQLite file (WAL mode) holding every run of every sweep written into it.

Schema (version 2)
------------------
``meta(key, value)``
    ``application = twolayer``, ``schema``, ``created``, ``version``. The file also carries
    SQLite's ``application_id`` = 0x74776F6C ("twol") in its header, checked before opening.
``sweeps(name, spec, created, updated)``
    The spec (JSON) of each sweep written into the store.
``runs(id, sweep, config, seed, status, timings, error, traceback, diverged_step, host, pid,``
``version, attempts, shared, created, started, finished, wall_s, provenance)``
    One row per run identity (hash of the resolved config and the seed). ``sweep`` is the sweep
    that first asked for the run; ``status`` is running, done, failed or diverged;
    ``provenance`` the id of the row of ``provenance`` that computed it (NULL: unknown, for
    runs stored before version 2).
``provenance(id, data, created)``
    Each distinct provenance (twolayer version and commit, NumPy, SciPy, torch, Python, BLAS:
    :mod:`twolayer.experiment.provenance`) once, as JSON, keyed by the hash of that JSON.
``sweep_runs(sweep, run_id, point)``
    Which runs belong to which sweep, with the sweep point (JSON). A run asked for by two sweeps
    is computed once and belongs to both.
``metrics(run_id, name, value)``
    Scalar metrics in long form: the set of metric names differs between runs (baselines,
    measurements), so a long table needs no schema change for a new metric, can be queried
    with plain SQL, and is pivoted into columns by :func:`load`.
``arrays(run_id, name, dtype, shape, data)``
    Arrays as raw bytes with their numpy dtype string and shape (JSON).
``trajectories(run_id, idx, step, data)``
    Rows recorded along training, one JSON object per row (read whole, per run).
``lock(id = 1, token, host, pid, sweep, since, heartbeat)``
    The driver that is writing, if any.

Version 1 (no ``provenance``) is migrated in place by the first writer that opens it (one
transaction: the table, the column, ``meta.schema``); its runs keep an unknown provenance.
Readers read version 1 as it is, without writing.

Only the driver writes; each finished run is one transaction (run row, metrics, arrays,
trajectory together), so a crash loses at most the runs in flight.

Readers (``Store(path, create=False)``: status, export, plot, :func:`load`) open the file
read-only (SQLite URI ``mode=ro``, or ``immutable=1`` on storage they cannot write), so they
never change it and work on read-only mounts. A damaged file (cut short, data appended, pages
that do not check) is a :class:`StoreError` naming it, and is never written to: the size in
the header is compared with the file's, a writer runs ``PRAGMA quick_check`` before its first
write, and every SQLite error on the way is turned into a StoreError.
"""

from __future__ import annotations

import functools
import json
import math
import os
import socket
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from twolayer.experiment.errors import StoreBusyError, StoreError
from twolayer.experiment.provenance import provenance_id

if TYPE_CHECKING:  # only annotated: importing it would load the whole simulation for `status`
    from twolayer.experiment.record import Record

APPLICATION_ID = 0x74776F6C  # "twol"
SCHEMA_VERSION = 2
SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 30.0
STALE_LOCK_S = 600.0
"""A lock held from another host is considered abandoned after this long without a heartbeat."""

_F = TypeVar("_F", bound=Callable[..., Any])

_LOCK_QUERY = "SELECT token, host, pid, sweep, since, heartbeat FROM lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'diverged')),
    timings TEXT,
    error TEXT,
    traceback TEXT,
    diverged_step INTEGER,
    host TEXT,
    pid INTEGER,
    version TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    shared INTEGER,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    wall_s REAL,
    provenance TEXT REFERENCES provenance (id));
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS sweep_runs (
    sweep TEXT NOT NULL, run_id TEXT NOT NULL REFERENCES runs (id), point TEXT NOT NULL,
    PRIMARY KEY (sweep, run_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs (id), name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS arrays (
    run_id TEXT NOT NULL REFERENCES runs (id), name TEXT NOT NULL, dtype TEXT NOT NULL,
    shape TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS trajectories (
    run_id TEXT NOT NULL REFERENCES runs (id), idx INTEGER NOT NULL, step INTEGER,
    data TEXT NOT NULL, PRIMARY KEY (run_id, idx));
CREATE TABLE IF NOT EXISTS provenance (
    id TEXT PRIMARY KEY, data TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lock (
    id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, sweep TEXT, since TEXT NOT NULL, heartbeat REAL NOT NULL);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def _version() -> str:
    from twolayer import __version__

    return __version__


def check_store_file(path: str | Path) -> bool:
    """Whether ``path`` exists as a twolayer store; raise if it exists and is not one.

    Reads the first 100 bytes only, so a foreign file is never touched.

    Raises
    ------
    StoreError
        If the path is a directory, an empty file, not an SQLite file, an SQLite database of
        another application, or a store whose size differs from the size its header gives
        (cut short, or data appended; checked when no write-ahead log is pending).
    """
    path = Path(path)
    if not path.exists():
        return False
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a twolayer store")
    with open(path, "rb") as fh:
        header = fh.read(100)
    if not header:
        raise StoreError(f"{path} is an empty file, not a twolayer store; left untouched")
    if not header.startswith(SQLITE_MAGIC) or len(header) < 72:
        raise StoreError(f"{path} is not an SQLite file, so not a twolayer store; left untouched")
    app_id = int.from_bytes(header[68:72], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is an SQLite database of another application (application_id "
            f"{app_id:#x}), not a twolayer store; left untouched"
        )
    _check_size(path, header)
    return True


def _damaged(path: Path, why: str, hint: str = "") -> StoreError:
    return StoreError(
        f"{path} is damaged ({why}) and was left untouched; "
        + (hint or "restore it from a backup, or write to another store (--store PATH)")
    )


def _check_size(path: Path, header: bytes) -> None:
    """Compare the file's size with the database size in its header (bytes 16-17: page size,
    28-31: pages; valid when the change counter, bytes 24-27, equals bytes 92-95)."""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if pages == 0 or page_size < 512 or header[24:28] != header[92:96]:
        return  # no valid size in the header: SQLite itself goes by the file's size
    for log in ("-wal", "-journal"):
        try:
            if path.with_name(path.name + log).stat().st_size > 0:
                return  # pages may live in the log, and a checkpoint may be under way
        except OSError:
            pass
    size = path.stat().st_size
    expected = pages * page_size
    if size < expected:
        raise _damaged(path, f"{size} bytes where its header says {expected}: cut short")
    if size > expected:
        raise _damaged(
            path,
            f"{size - expected} bytes after the end of the database its header describes",
            f"if data was appended to an intact store, `truncate -s {expected} {path}` removes "
            "it (copy the file first); else restore it from a backup",
        )


def _is_corrupt(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", None)  # Python >= 3.11
    if name is not None:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return type(exc) is sqlite3.DatabaseError


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """An SQLite error as one clear StoreError naming the file."""
    if _is_corrupt(exc):
        return _damaged(path, str(exc))
    return StoreError(f"cannot use store {path}: {exc}")


def _converting(fn: _F) -> _F:
    """Turn an SQLite error raised by a Store method into a StoreError naming the file."""

    @functools.wraps(fn)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    return wrapper  # type: ignore[return-value]


def reader_uri(path: str | Path) -> str:
    """The SQLite URI a reader opens ``path`` with: ``mode=ro`` (reads see a live writer's
    write-ahead log), or ``mode=ro&immutable=1`` when the directory cannot be written and
    the ``-shm`` file that a WAL reader needs does not exist (read-only storage).

    Raises
    ------
    StoreError
        If a write-ahead log with data is pending on storage that cannot be written (an
        immutable reader would not see its runs).
    """
    path = Path(path).absolute()
    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
    shm = path.with_name(path.name + "-shm")
    wal = path.with_name(path.name + "-wal")
    if os.access(path.parent, os.W_OK) or (shm.exists() and wal.exists()):
        return uri
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"{path} has a pending write-ahead log ({wal.name}) on storage that cannot be "
            "written, so its last runs cannot be read; copy the store with its -wal file to "
            "writable storage and read it there"
        )
    return uri + "&immutable=1"


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        con = sqlite3.connect(
            reader_uri(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, uri=True
        )
    else:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("PRAGMA synchronous = NORMAL")
        if not readonly:  # before the first write: never write into a damaged file
            rows = [r[0] for r in con.execute("PRAGMA quick_check(3)").fetchall()]
            if rows != ["ok"]:
                lines = [x for r in rows for x in r.splitlines() if not x.startswith("***")]
                raise _damaged(path, "quick_check: " + "; ".join(lines))
    except BaseException:
        con.close()
        raise
    return con


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a version-1 store to version 2 (one transaction; a no-op when another writer did it
    first): add the provenance table and the runs' provenance column (NULL: unknown)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        schema = int(con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0])
        if schema < 2:
            con.execute(
                "CREATE TABLE IF NOT EXISTS provenance ("
                "id TEXT PRIMARY KEY, data TEXT NOT NULL, created TEXT NOT NULL)"
            )
            con.execute("ALTER TABLE runs ADD COLUMN provenance TEXT REFERENCES provenance (id)")
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _create(path: Path) -> None:
    """Create a store atomically: build it beside ``path``, then hard-link it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        con.executescript(_SCHEMA)
        con.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("application", "twolayer"),
                ("schema", str(SCHEMA_VERSION)),
                ("created", _now()),
                ("version", _version()),
            ],
        )
        con.execute("PRAGMA journal_mode = WAL")
    finally:
        con.close()
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first; use theirs
    finally:
        tmp.unlink(missing_ok=True)


class Store:
    """A twolayer store (one SQLite file).

    Parameters
    ----------
    path : str or Path
        The store file.
    create : bool
        Create the store if the file does not exist (otherwise raise StoreError).
    readonly : bool, optional
        Open the file read-only (SQLite ``mode=ro``; ``immutable=1`` on storage that cannot be
        written). Default: read-only when ``create`` is false, as for every reader of a store.
        A writer checks the file (``PRAGMA quick_check``) before it writes anything.

    Raises
    ------
    StoreError
        If the file exists and is not a twolayer store or is damaged (it is left untouched),
        or was written by a newer schema. Every SQLite error of a method, and of a
        ``with Store(...)`` block, is turned into a StoreError naming the file.
    """

    def __init__(
        self, path: str | Path, *, create: bool = True, readonly: bool | None = None
    ) -> None:
        self.path = Path(path)
        self.readonly = (not create) if readonly is None else readonly
        self._token: str | None = None
        self._provenance_ids: set[str] = set()  # provenance rows this connection has written
        if not check_store_file(self.path):
            if not create:
                raise StoreError(f"no store at {self.path}")
            if not self.path.parent.exists():
                raise StoreError(
                    f"cannot create store {self.path}: no directory {self.path.parent}"
                )
            _create(self.path)
            check_store_file(self.path)
        try:
            self.con = _connect(self.path, self.readonly)
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None
        try:
            meta = dict(self.con.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            self.con.close()
            if _is_corrupt(exc):
                raise _damaged(self.path, str(exc)) from None
            raise StoreError(f"{self.path} cannot be read as a twolayer store: {exc}") from None
        if meta.get("application") != "twolayer":
            self.con.close()
            raise StoreError(f"{self.path} is not a twolayer store; left untouched")
        if int(meta.get("schema", 0)) > SCHEMA_VERSION:
            self.con.close()
            raise StoreError(
                f"{self.path} has store schema {meta['schema']}, newer than this twolayer "
                f"({SCHEMA_VERSION}); upgrade twolayer to read it"
            )
        self.schema = int(meta.get("schema", 1))
        if self.schema < SCHEMA_VERSION and not self.readonly:
            try:
                _migrate(self.con)
            except sqlite3.Error as exc:
                self.con.close()
                raise _store_error(self.path, exc) from None
            self.schema = SCHEMA_VERSION

    # -- context ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the lock if held and close the connection."""
        try:
            if self._token is not None:
                self.release()
        finally:
            self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            self.close()
        except StoreError:
            if exc is None:
                raise  # else the error of the block is the one to report
        if isinstance(exc, sqlite3.Error):
            raise _store_error(self.path, exc) from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); waits for other writers."""
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- lock ---------------------------------------------------------------------------------

    @_converting
    def acquire(self, sweep: str) -> None:
        """Take the writer lock for ``sweep``.

        Raises
        ------
        StoreBusyError
            If a live driver (same host: its process exists; other host: heartbeat within
            STALE_LOCK_S) holds it.
        """
        token = uuid.uuid4().hex
        host = socket.gethostname()
        with self.transaction() as con:
            row = con.execute(_LOCK_QUERY).fetchone()
            if row is not None and _holder_alive(row[1], row[2], row[5]):
                raise StoreBusyError(
                    f"store {self.path} is in use: sweep {row[3]!r} is being written by process "
                    f"{row[2]} on {row[1]} since {row[4]}. Wait for it to finish, or write to "
                    f"another store (--store PATH)."
                )
            con.execute(
                "INSERT OR REPLACE INTO lock (id, token, host, pid, sweep, since, heartbeat) "
                "VALUES (1, ?, ?, ?, ?, ?, ?)",
                (token, host, os.getpid(), sweep, _now(), time.time()),
            )
        self._token = token

    @property
    def lock_token(self) -> str | None:
        """The token of the writer lock this store holds (None when it holds none)."""
        return self._token

    def _beat(self, con: sqlite3.Connection) -> None:
        if self._token is not None:
            _refresh_heartbeat(con, self._token)

    @_converting
    def release(self) -> None:
        """Give the writer lock back."""
        if self._token is not None:
            with self.transaction() as con:
                con.execute("DELETE FROM lock WHERE token = ?", (self._token,))
            self._token = None

    @_converting
    def lock_holder(self) -> dict[str, Any] | None:
        """The live lock holder (host, pid, sweep, since), or None."""
        row = self.con.execute(_LOCK_QUERY).fetchone()
        if row is None or not _holder_alive(row[1], row[2], row[5]):
            return None
        return {"host": row[1], "pid": row[2], "sweep": row[3], "since": row[4]}

    # -- writing ------------------------------------------------------------------------------

    @_converting
    def register(
        self,
        sweep: str,
        spec: dict[str, Any],
        runs: Iterable[tuple[str, str, int, dict[str, Any]]],
        todo: Iterable[str],
    ) -> None:
        """Record a sweep, its membership, and mark ``todo`` runs as running (one transaction).

        Parameters
        ----------
        sweep : str
        spec : dict
            The sweep's spec (stored as JSON).
        runs : iterable of (run_id, config_json, seed, point)
            Every run of the sweep.
        todo : iterable of run ids
            The runs about to be executed.
        """
        now = _now()
        todo = set(todo)
        with self.transaction() as con:
            con.execute(
                "INSERT INTO sweeps (name, spec, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated = excluded.updated",
                (sweep, json.dumps(spec, sort_keys=True), now, now),
            )
            for run_id, config_json, seed, point in runs:
                con.execute(
                    "INSERT OR IGNORE INTO runs (id, sweep, config, seed, status, created) "
                    "VALUES (?, ?, ?, ?, 'running', ?)",
                    (run_id, sweep, config_json, int(seed), now),
                )
                if run_id in todo:
                    con.execute(
                        "UPDATE runs SET status = 'running', attempts = attempts + 1 WHERE id = ?",
                        (run_id,),
                    )
                con.execute(
                    "INSERT OR IGNORE INTO sweep_runs (sweep, run_id, point) VALUES (?, ?, ?)",
                    (sweep, run_id, json.dumps(point, sort_keys=True, default=repr)),
                )
            self._beat(con)

    @_converting
    def write(self, record: Record) -> None:
        """Store a finished run: its row, metrics, arrays, trajectory and provenance (kept once
        per distinct provenance) in one transaction."""
        provenance = getattr(record, "provenance", None)
        prov_id = provenance_id(provenance) if provenance else None
        with self.transaction() as con:
            if prov_id is not None and prov_id not in self._provenance_ids:
                con.execute(
                    "INSERT OR IGNORE INTO provenance (id, data, created) VALUES (?, ?, ?)",
                    (prov_id, json.dumps(provenance, sort_keys=True), _now()),
                )
            for table in ("metrics", "arrays", "trajectories"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", (record.run_id,))
            cur = con.execute(
                "UPDATE runs SET status = ?, timings = ?, error = ?, traceback = ?, "
                "diverged_step = ?, host = ?, pid = ?, version = ?, shared = ?, started = ?, "
                "finished = ?, wall_s = ?, provenance = ? WHERE id = ?",
                (
                    record.status,
                    json.dumps(record.timings),
                    record.error,
                    record.traceback,
                    record.diverged_step,
                    record.host,
                    record.pid,
                    (provenance or {}).get("twolayer") or _version(),
                    int(record.shared),
                    _iso(record.started),
                    _iso(record.finished),
                    record.finished - record.started,
                    prov_id,
                    record.run_id,
                ),
            )
            if cur.rowcount != 1:
                raise StoreError(f"run {record.run_id} was not registered in {self.path}")
            con.executemany(
                "INSERT INTO metrics (run_id, name, value) VALUES (?, ?, ?)",
                [(record.run_id, k, _sql_float(v)) for k, v in record.scalars.items()],
            )
            con.executemany(
                "INSERT INTO arrays (run_id, name, dtype, shape, data) VALUES (?, ?, ?, ?, ?)",
                [
                    (record.run_id, k, a.dtype.str, json.dumps(list(a.shape)), a.tobytes())
                    for k, a in ((k, np.ascontiguousarray(v)) for k, v in record.arrays.items())
                ],
            )
            con.executemany(
                "INSERT INTO trajectories (run_id, idx, step, data) VALUES (?, ?, ?, ?)",
                [
                    (record.run_id, i, _int_or_none(row.get("step")), json.dumps(row))
                    for i, row in enumerate(record.trajectory)
                ],
            )
            self._beat(con)
        if prov_id is not None:  # after the commit: a rolled-back row is not known
            self._provenance_ids.add(prov_id)

    # -- reading ------------------------------------------------------------------------------

    @_converting
    def statuses(self, run_ids: Iterable[str] | None = None) -> dict[str, str]:
        """run id -> status (of the given runs that the store has, or of all runs)."""
        if run_ids is None:
            return dict(self.con.execute("SELECT id, status FROM runs").fetchall())
        ids = list(run_ids)
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                self.con.execute(
                    f"SELECT id, status FROM runs WHERE id IN ({marks})",
                    chunk,
                ).fetchall()
            )
        return out

    @_converting
    def sweeps(self) -> list[str]:
        """Names of the sweeps in the store."""
        return [r[0] for r in self.con.execute("SELECT name FROM sweeps ORDER BY created")]

    @_converting
    def counts(self, sweep: str | None = None) -> dict[str, int]:
        """Number of runs by status (of one sweep, or of all runs)."""
        if sweep is None:
            rows = self.con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")
        else:
            rows = self.con.execute(
                "SELECT r.status, COUNT(*) FROM runs r JOIN sweep_runs s ON s.run_id = r.id "
                "WHERE s.sweep = ? GROUP BY r.status",
                (sweep,),
            )
        return dict(rows.fetchall())

    @_converting
    def failures(self, sweep: str | None = None) -> list[dict[str, Any]]:
        """Failed and diverged runs: id, status, first line of the error, diverged step, seed
        and sweep point (of ``sweep``, else of the sweep that first asked for the run)."""
        query = (
            "SELECT r.id, r.status, r.error, r.diverged_step, r.seed, s.point FROM runs r "
            "LEFT JOIN sweep_runs s ON s.run_id = r.id AND s.sweep = COALESCE(?, r.sweep) "
            "WHERE r.status IN ('failed', 'diverged')"
            + (" AND s.sweep = ?" if sweep else "")
            + " ORDER BY r.finished"
        )
        rows = self.con.execute(query, (sweep, sweep) if sweep else (None,)).fetchall()
        return [
            {
                "id": r[0],
                "status": r[1],
                "error": (r[2] or "").strip().splitlines()[0] if r[2] else "",
                "diverged_step": r[3],
                "seed": r[4],
                "point": json.loads(r[5]) if r[5] else {},
            }
            for r in rows
        ]

    @_converting
    def arrays(self, run_id: str) -> dict[str, np.ndarray]:
        """The arrays of one run, by name."""
        rows = self.con.execute(
            "SELECT name, dtype, shape, data FROM arrays WHERE run_id = ? ORDER BY name", (run_id,)
        ).fetchall()
        return {
            name: np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape)).copy()
            for name, dtype, shape, data in rows
        }

    @_converting
    def trajectory(self, run_id: str) -> list[dict[str, float]]:
        """The trajectory rows of one run, in order."""
        rows = self.con.execute(
            "SELECT data FROM trajectories WHERE run_id = ? ORDER BY idx", (run_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    @_converting
    def run_ids(self, sweep: str | None = None, status: str | None = None) -> list[str]:
        """Ids of the runs (of one sweep, with one status, or all), in the order stored."""
        query = "SELECT r.id FROM runs r"
        args: list[str] = []
        if sweep is not None:
            query += " JOIN sweep_runs s ON s.run_id = r.id AND s.sweep = ?"
            args.append(sweep)
        if status is not None:
            query += " WHERE r.status = ?"
            args.append(status)
        return [r[0] for r in self.con.execute(query + " ORDER BY r.rowid", args)]

    @_converting
    def sweep_spec(self, sweep: str) -> dict[str, Any] | None:
        """The spec (as stored, a dict) of a sweep; None if the store has no such sweep."""
        row = self.con.execute("SELECT spec FROM sweeps WHERE name = ?", (sweep,)).fetchone()
        return None if row is None else json.loads(row[0])

    @_converting
    def traceback(self, run_id: str) -> str | None:
        """The traceback stored with a run (None: none stored, or no such run)."""
        row = self.con.execute("SELECT traceback FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else row[0]

    def _provenances(self) -> dict[str, dict[str, Any]]:
        """provenance id -> provenance (a store has a handful: one per environment)."""
        if self.schema < 2:
            return {}
        return {k: json.loads(v) for k, v in self.con.execute("SELECT id, data FROM provenance")}

    @_converting
    def provenance_counts(
        self, sweep: str | None = None, statuses: tuple[str, ...] = ("done", "diverged")
    ) -> list[tuple[dict[str, Any] | None, int]]:
        """How many runs (of one sweep, or all) with the given statuses each provenance
        computed, most runs first; ``None`` stands for an unknown provenance (runs stored
        before the store recorded it).

        Returns
        -------
        list of (provenance dict or None, number of runs)
        """
        marks = ",".join("?" * len(statuses))
        column = "r.provenance" if self.schema >= 2 else "NULL"
        if sweep is None:
            rows = self.con.execute(
                f"SELECT {column}, COUNT(*) FROM runs r WHERE r.status IN ({marks}) "
                f"GROUP BY {column}",
                statuses,
            )
        else:
            rows = self.con.execute(
                f"SELECT {column}, COUNT(*) FROM runs r JOIN sweep_runs s ON s.run_id = r.id "
                f"WHERE s.sweep = ? AND r.status IN ({marks}) GROUP BY {column}",
                (sweep, *statuses),
            )
        counts = rows.fetchall()
        known = self._provenances()
        out = [(known.get(pid) if pid is not None else None, n) for pid, n in counts]
        return sorted(out, key=lambda item: -item[1])

    @_converting
    def run_provenance(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """run id -> its provenance (None: unknown), for the given runs the store has."""
        known = self._provenances()
        out: dict[str, dict[str, Any] | None] = {}
        column = "provenance" if self.schema >= 2 else "NULL"
        for chunk in _chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            for run_id, pid in self.con.execute(
                f"SELECT id, {column} FROM runs WHERE id IN ({marks})", chunk
            ):
                out[run_id] = known.get(pid) if pid is not None else None
        return out

    @_converting
    def records(
        self, sweep: str | None = None, *, run_ids: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Run rows with their config (dict), metrics (dict), provenance (dict, None when
        unknown) and sweep point, as plain data.

        Only the metrics of the runs asked for are read: those of ``sweep``, of ``run_ids``
        (both: the runs of ``run_ids`` in ``sweep``), or of every run.

        Parameters
        ----------
        sweep : str, optional
            The runs of this sweep (with their point in it).
        run_ids : iterable of str, optional
            Only these runs (those the store has), in the store's order.
        """
        point = (
            "s.point AS point FROM runs r JOIN sweep_runs s ON s.run_id = r.id AND s.sweep = ?"
            if sweep is not None
            else "(SELECT point FROM sweep_runs s WHERE s.run_id = r.id AND s.sweep = r.sweep) "
            "AS point FROM runs r"
        )
        head = (sweep,) if sweep is not None else ()
        if run_ids is None:
            queries = [(f"SELECT r.*, {point} ORDER BY r.rowid", head)]
            metric_queries = [
                (
                    "SELECT m.run_id, m.name, m.value FROM metrics m JOIN sweep_runs s ON "
                    "s.run_id = m.run_id WHERE s.sweep = ?",
                    head,
                )
                if sweep is not None
                else ("SELECT run_id, name, value FROM metrics", ())
            ]
        else:
            chunks = _chunks(list(dict.fromkeys(run_ids)))
            queries, metric_queries = [], []
            for chunk in chunks:
                marks = ",".join("?" * len(chunk))
                queries.append(
                    (f"SELECT r.*, {point} WHERE r.id IN ({marks}) ORDER BY r.rowid",
                     (*head, *chunk))
                )
                metric_queries.append(
                    (f"SELECT run_id, name, value FROM metrics WHERE run_id IN ({marks})", chunk)
                )
        metrics: dict[str, dict[str, float]] = {}
        for query, args in metric_queries:
            for run_id, name, value in self.con.execute(query, args):
                metrics.setdefault(run_id, {})[name] = math.nan if value is None else value
        known = self._provenances()
        out = []
        for query, args in queries:
            rows = self.con.execute(query, args)
            names = [c[0] for c in rows.description]
            for row in rows.fetchall():
                rec = dict(zip(names, row, strict=True))
                rec["config"] = json.loads(rec["config"])
                rec["timings"] = json.loads(rec["timings"]) if rec["timings"] else {}
                rec["point"] = json.loads(rec["point"]) if rec["point"] else {}
                rec["metrics"] = metrics.get(rec["id"], {})
                rec["sweep"] = sweep or rec["sweep"]
                pid = rec.get("provenance")
                rec["provenance"] = known.get(pid) if pid is not None else None
                rec["provenance_id"] = pid
                out.append(rec)
        return out


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    """``items`` in chunks that fit SQLite's limit of bound parameters."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def _refresh_heartbeat(con: sqlite3.Connection, token: str) -> None:
    con.execute("UPDATE lock SET heartbeat = ? WHERE token = ?", (time.time(), token))


def refresh_heartbeat(path: str | Path, token: str) -> None:
    """Refresh the heartbeat of the writer lock ``token`` of the store at ``path``, on a
    connection of its own: what a thread beside the driver (whose Store connection belongs to
    the driver's thread) calls while the driver waits for long runs."""
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        with con:
            _refresh_heartbeat(con, token)
    finally:
        con.close()


def _sql_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _holder_alive(host: str, pid: int, heartbeat: float) -> bool:
    if host == socket.gethostname():
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _not_zombie(pid)
    return time.time() - heartbeat < STALE_LOCK_S


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
