"""Provenance: which code and which libraries computed a run (docs/engine.md, "Provenance").

A run's identity (:func:`twolayer.experiment.spec.run_id`) is the hash of its resolved config
and seed; it does not say which code computed it. So every Record carries the provenance of the
process that computed it, and the store keeps each distinct provenance once (a row keyed by
:func:`provenance_id`, referenced by the runs):

``twolayer``
    ``twolayer.__version__``.
``commit``, ``dirty``, ``diff``
    When twolayer is imported from a git checkout (an editable install): the commit of the
    checkout, whether files under the package directory differ from it, and a hash of that
    difference (``git diff HEAD`` of the package directory; untracked files make the checkout
    dirty but are not hashed). None when twolayer is not in a checkout or git is not there.
``python``, ``numpy``, ``scipy``
    Versions (installed distributions; the running interpreter for Python).
``torch``
    The installed torch version, recorded only for runs on the torch backend: a NumPy run does
    not depend on torch, so upgrading torch must not make it stale.
``machine``
    ``platform.machine()`` (x86_64, arm64): informational.
``blas``
    The BLAS and OpenMP libraries loaded while the run computed (threadpoolctl): ``user_api``,
    ``internal_api``, ``version``, ``architecture`` (the kernels OpenBLAS chose) and
    ``num_threads`` under the run's thread limit.

What makes a stored run *stale* (:func:`stale_fields`): a different twolayer version, commit,
dirty state or diff, NumPy or SciPy version, or (for torch runs) torch version. The BLAS, its
thread count, the Python version and the machine are recorded but do not make a run stale: they
change results only at the rounding level (``twolayer verify`` measures that), and the thread
count differs between the runs of one sweep by design (docs/engine.md, "BLAS threads").

This module imports neither NumPy's consumers nor SciPy nor torch: versions are read from the
installed distributions, so ``twolayer status`` stays light.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Fields whose difference from the current environment makes a stored run stale.
STALE_FIELDS: tuple[str, ...] = ("twolayer", "commit", "dirty", "diff", "numpy", "scipy", "torch")

#: Seconds each git command may take before the commit is given up (a slow network file system
#: must not hold up a run).
GIT_TIMEOUT_S = 3.0


@functools.cache
def _dist_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (None if it is not installed); read once
    per process (~5 ms each: importlib.metadata scans the installed distributions)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        module = sys.modules.get(name)
        return getattr(module, "__version__", None) if module is not None else None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", "replace")


def git_state(package: Path) -> dict[str, Any]:
    """The git state of the checkout holding the package directory ``package``.

    Returns
    -------
    dict
        ``commit`` (40 hex), ``dirty`` (bool) and ``diff`` (16 hex of ``git diff HEAD`` of the
        package directory, None when clean); all None when ``package/__init__.py`` is not a
        tracked file of a git checkout (an installed wheel, even inside someone's repository)
        or git fails or takes more than :data:`GIT_TIMEOUT_S`.
    """
    unknown: dict[str, Any] = {"commit": None, "dirty": None, "diff": None}
    # the package's own __init__.py must be tracked: a wheel installed in a virtualenv inside
    # the user's repository would otherwise report the user's commit
    if not (_git(["ls-files", "--error-unmatch", "__init__.py"], package) or "").strip():
        return unknown
    commit = (_git(["rev-parse", "HEAD"], package) or "").strip()
    status = _git(["status", "--porcelain", "--", "."], package)
    if not commit or status is None:
        return unknown
    dirty = bool(status.strip())
    diff = None
    if dirty:
        text = _git(["diff", "HEAD", "--no-ext-diff", "--", "."], package)
        diff = hashlib.sha256((text or "").encode()).hexdigest()[:16]
    return {"commit": commit, "dirty": dirty, "diff": diff}


@functools.lru_cache(maxsize=1)
def source_state() -> dict[str, Any]:
    """:func:`git_state` of the checkout twolayer is imported from, once per process (two or
    three git commands, ~10 ms)."""
    return git_state(Path(__file__).resolve().parents[1])  # .../twolayer


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    from twolayer import __version__

    return {
        "twolayer": __version__,
        **source_state(),
        "python": platform.python_version(),
        "numpy": _dist_version("numpy"),
        "scipy": _dist_version("scipy"),
        "machine": platform.machine(),
    }


def environment(torch: bool = False) -> dict[str, Any]:
    """The provenance of this process without the BLAS (cheap; no library is imported).

    Parameters
    ----------
    torch : bool
        Include the installed torch version (for runs on the torch backend).
    """
    env = dict(_environment())
    env["torch"] = _dist_version("torch") if torch else None
    return env


_CONTROLLER: dict[str, Any] = {}


def blas_info() -> list[dict[str, Any]]:
    """The BLAS/OpenMP libraries loaded in this process, with their thread counts now.

    The library scan (~2 ms) is done once per process and again when torch has been loaded
    since (it brings its own OpenMP); reading the thread counts costs ~0.05 ms.
    """
    from threadpoolctl import ThreadpoolController

    key = "torch" in sys.modules
    controller = _CONTROLLER.get("controller")
    if controller is None or _CONTROLLER.get("torch") != key:
        controller = ThreadpoolController()
        _CONTROLLER.update(controller=controller, torch=key)
    fields = ("user_api", "internal_api", "version", "architecture", "num_threads")
    libs = [{f: lib.get(f) for f in fields if lib.get(f) is not None} for lib in controller.info()]
    return sorted(libs, key=lambda lib: json.dumps(lib, sort_keys=True))


def collect(config: Any = None) -> dict[str, Any]:
    """The provenance of a run computed now in this process (call it inside the run's thread
    limit, so that ``num_threads`` is the run's).

    Parameters
    ----------
    config : RunConfig, optional
        The run's config: its backend says whether torch's version belongs to it.
    """
    backend = getattr(getattr(config, "backend", None), "name", "numpy")
    return {**environment(torch=backend == "torch"), "blas": blas_info()}


def provenance_id(provenance: dict[str, Any]) -> str:
    """The key of a provenance in the store: sha256 of its canonical JSON, 16 hex."""
    text = json.dumps(provenance, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stale_fields(stored: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The fields of :data:`STALE_FIELDS` in which a stored run's provenance differs from
    ``current`` (from :func:`environment`); ``["unknown"]`` for a run stored without one.

    ``torch`` is compared only when the stored run recorded it (a torch-backend run); the
    current torch version is then read from the installed distribution.
    """
    if stored is None:
        return ["unknown"]
    out = []
    for field in STALE_FIELDS:
        if field == "torch":
            if stored.get("torch") is None:
                continue
            now = current.get("torch") or _dist_version("torch")
        else:
            now = current.get(field)
        if stored.get(field) != now:
            out.append(field)
    return out


def describe(provenance: dict[str, Any] | None, fields: tuple[str, ...] | None = None) -> str:
    """One line: ``twolayer 0.1.0 (git 1a2b3c4d5e, dirty), numpy 2.1.0, scipy 1.14.1, ...``.

    Parameters
    ----------
    provenance : dict or None
        None gives ``unknown provenance``.
    fields : tuple of str, optional
        The dependency fields to show (default numpy, scipy, torch, python, then the BLAS).
    """
    if provenance is None:
        return "unknown provenance (computed before twolayer recorded versions)"
    head = f"twolayer {provenance.get('twolayer')}"
    if provenance.get("commit"):
        head += f" (git {provenance['commit'][:10]}"
        head += f", dirty {provenance['diff']})" if provenance.get("dirty") else ")"
    parts = [head]
    for name in fields or ("numpy", "scipy", "torch", "python"):
        if provenance.get(name) is not None:
            parts.append(f"{name} {provenance[name]}")
    if fields is None:
        parts += [blas_text(provenance.get("blas") or [])] if provenance.get("blas") else []
    return ", ".join(parts)


def blas_text(blas: list[dict[str, Any]]) -> str:
    """``openblas 0.3.27 x1`` for each loaded library (``xN``: its thread count), joined by
    ``; ``."""
    return "; ".join(
        f"{b.get('internal_api')} {b.get('version')} x{b.get('num_threads')}" for b in blas
    )


def version_line() -> str:
    """What ``twolayer --version`` prints: the version, with the commit when installed from a
    checkout (``twolayer 0.1.0 (git 1a2b3c4d5e6f..., dirty)``), then Python, NumPy and SciPy."""
    env = environment()
    line = f"twolayer {env['twolayer']}"
    if env["commit"]:
        line += f" (git {env['commit']}" + (", dirty)" if env["dirty"] else ")")
    deps = ", ".join(f"{n} {env[n]}" for n in ("python", "numpy", "scipy") if env[n])
    return f"{line}\n{deps}"


def _field_text(field: str, value: Any) -> str:
    if field == "commit":
        return f"git {value[:10]}" if value else "no git checkout"
    if field == "dirty":
        return "uncommitted edits" if value else "a clean checkout"
    if field == "diff":
        return f"edits {value}" if value else "no edits"
    return f"{field} {value}"


def stale_groups(
    provenances: list[tuple[dict[str, Any] | None, int]], current: dict[str, Any]
) -> list[tuple[dict[str, Any] | None, int, list[str]]]:
    """The provenances that differ from ``current`` (:func:`stale_fields`), with their run
    counts and the fields that differ, most runs first.

    Parameters
    ----------
    provenances : list of (provenance or None, number of runs)
        As :meth:`twolayer.experiment.store.Store.provenance_counts` gives them.
    current : dict
        :func:`environment` of this process.
    """
    merged: dict[str, tuple[dict[str, Any] | None, int, list[str]]] = {}
    for prov, count in provenances:
        fields = stale_fields(prov, current)
        if not fields:
            continue
        # runs that differ in the same way (same stale field values) are one group, whatever
        # their BLAS thread counts
        key = json.dumps(None if prov is None else {f: prov.get(f) for f in fields},
                         sort_keys=True)
        old = merged.get(key)
        merged[key] = (prov, count + (old[1] if old else 0), fields)
    return sorted(merged.values(), key=lambda g: -g[1])


def stale_line(
    groups: list[tuple[dict[str, Any] | None, int, list[str]]],
    stored: int,
    current: dict[str, Any],
    what: str = "stored runs",
) -> str | None:
    """One line saying how many runs were computed with which other versions (None if none).

    Example: ``12 of 40 stored runs were computed with other versions than this environment
    (twolayer 0.2.0, numpy 2.1.0, scipy 1.14.1): 10 with twolayer 0.1.0, numpy 1.26.4; 2 of
    unknown provenance``.
    """
    if not groups:
        return None
    total = sum(n for _, n, _ in groups)
    fields = [f for f in STALE_FIELDS if any(f in g[2] for g in groups)]
    now = ", ".join(
        _field_text(f, current.get(f) or _dist_version("torch")) if f == "torch"
        else _field_text(f, current.get(f))
        for f in fields
    ) or describe(current, ("numpy", "scipy"))
    parts = []
    for prov, n, diff in groups:
        if prov is None:
            parts.append(f"{n} of unknown provenance (stored before versions were recorded)")
        else:
            parts.append(f"{n} with " + ", ".join(_field_text(f, prov.get(f)) for f in diff))
    return (
        f"{total} of {stored} {what} were computed with other versions than this environment "
        f"({now}): " + "; ".join(parts)
    )
