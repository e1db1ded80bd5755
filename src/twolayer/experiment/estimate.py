"""How much memory a run will need, and how many runs a sweep has, before anything is built.

Pure functions of the spec's plain data: nothing here allocates an array, draws a sample or
validates a :class:`~twolayer.config.RunConfig` (whose validation builds the teacher, so a
``teacher.d`` of 10^9 would exhaust memory before any check could run). The CLI compares the
estimate with the memory available before it validates or runs anything (docs/engine.md,
"Sizes checked before allocation").

The estimate counts the large arrays a run holds at its peak: the teacher's parameters, the
student's W_0 and W (N x d), the training data and the protocol's temporaries (pre-activations
and derivatives, n x N; the gradient, N x d), the readout batch, its features and Gram matrix
(min(n, p) squared, with the factorisation's copy), the test chunks (or the cached test set),
and what the measurements build (N x N, d x d, n x n matrices). Memory is the arrays that
persist through the run (teacher, students, training batches) plus the largest of three phases
(training, readout with testing, measurements). Tested against the peak that tracemalloc
measures (NumPy reports its array allocations to it): tests/experiment/test_experiment_estimate.py.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Samples per drawn block (twolayer.teachers.SAMPLE_BLOCK): a readout pool and the test set
#: are drawn in whole blocks, so they hold up to one block more than asked for.
SAMPLE_BLOCK = 1024

#: Defaults of RunConfig fields the estimate reads (twolayer.config), repeated here so that the
#: estimate needs no validated config; tests/experiment/test_experiment_estimate.py checks them
#: against the config classes.
DEFAULTS = {
    "n_test": 10_000,
    "chunk": 4096,
    "monitor_n": 2000,
    "dtype": "float64",
    "cache_mb": 1024,
}

#: Memory of the Python process around the arrays (interpreter, NumPy, SciPy, twolayer): added
#: to a run's arrays when they are compared with the memory available. Measured: 150-190 MB
#: resident after ``import twolayer`` and one small run (Linux, NumPy 2, OpenBLAS).
PROCESS_BYTES = 200 * 2**20

#: Runs past which ``twolayer run`` asks for confirmation (``--yes`` skips it); overridden by
#: the environment variable ``TWOLAYER_CONFIRM_RUNS`` (docs/engine.md).
CONFIRM_RUNS = 10_000


@dataclass(frozen=True)
class Term:
    """One array (or several of one shape) in a memory estimate.

    Attributes
    ----------
    what : str
        What the array is, e.g. ``"readout Gram"``.
    shape : tuple of (label, size)
        Its dimensions, each with the symbol it is known by (``("N", 2000)``).
    itemsize : int
        Bytes per entry (8 for float64).
    copies : int
        How many arrays of this shape are held at once.
    """

    what: str
    shape: tuple[tuple[str, int], ...]
    itemsize: int = 8
    copies: int = 1

    @property
    def nbytes(self) -> int:
        return self.copies * self.itemsize * math.prod(size for _, size in self.shape)

    def __str__(self) -> str:
        labels = " x ".join(label for label, _ in self.shape)
        sizes = " x ".join(str(size) for _, size in self.shape)
        dtype = {8: "float64", 4: "float32"}.get(self.itemsize, f"{self.itemsize}-byte")
        times = f"{self.copies} x " if self.copies > 1 else ""
        return f"{self.what} {times}{labels} = {sizes} {dtype}"


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimated peak memory of one run's arrays.

    Attributes
    ----------
    persistent : list of Term
        Held through the whole run (teacher, W_0, W, training batches).
    phases : dict[str, list of Term]
        What each phase ("train", "readout", "measure") adds on top, at its own peak.
    """

    persistent: list[Term] = field(default_factory=list)
    phases: dict[str, list[Term]] = field(default_factory=dict)

    @property
    def peak_phase(self) -> str:
        """The phase whose arrays are the largest."""
        return max(self.phases, key=lambda p: _sum(self.phases[p]), default="")

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays at the run's peak: persistent + the largest phase."""
        return _sum(self.persistent) + _sum(self.phases.get(self.peak_phase, []))

    @property
    def dominant(self) -> Term | None:
        """The largest array held at the peak."""
        terms = self.persistent + self.phases.get(self.peak_phase, [])
        return max(terms, key=lambda t: t.nbytes, default=None)


def _sum(terms: Iterable[Term]) -> int:
    return sum(t.nbytes for t in terms)


# --------------------------------------------------------------------------------------------
# reading plain config data (resolved sections, defaults not necessarily filled in)


def _get(data: Mapping[str, Any] | None, key: str, default: Any = None) -> Any:
    if not isinstance(data, Mapping):
        return default
    value = data.get(key, default)
    return default if value is None else value


def _int(value: Any, default: int = 0) -> int:
    """A size from plain data; anything else (a typo the validation will report) is ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return max(int(value), 0)
    return default


def _teacher_width(teacher: Mapping[str, Any]) -> int:
    """Rows of the teacher's parameter matrix (directions, cluster means), each of length d."""
    name = _get(teacher, "name", "")
    if name == "multi_index":
        return _int(_get(teacher, "r", 2), 2)
    if name == "gaussian_mixture":
        means = _get(teacher, "means")
        if isinstance(means, list):
            return len(means)
        return _int(_get(teacher, "n_clusters", 2), 2)
    if name == "xor":
        return 2
    if name == "functional":  # decaying variances, beta and a target of target_terms terms
        return 3
    return 1


def _measure_names(measure: Any) -> list[str]:
    out = []
    for item in measure or []:
        name = item if isinstance(item, str) else _get(item, "name", "")
        if isinstance(name, str):
            out.append(name)
    return out


def _measure_terms(names: list[str], N: int, d: int, n_r: int, n_test: int,
                   b: int) -> list[Term]:
    """What the measurements build, each at its own peak (they run one after the other, so the
    largest counts). A measurement not listed is counted as an SVD of W (a copy of W and its
    smaller Gram matrix), which bounds the ones that read overlaps or norms of W."""
    m = min(N, d)
    options: list[Term] = []
    for name in names:
        if name in ("spectrum", "outliers", "spike_theory", "step_update", "overlaps",
                    "neuron_alignment", "teacher_neurons"):
            options.append(Term(f"measure {name}: copies of W", (("N", N), ("d", d)), b, 3))
            options.append(Term(f"measure {name}: SVD Gram", (("min(N,d)", m),) * 2, b, 3))
        elif name in ("ridge_theory", "spiked_rf_theory"):
            options.append(Term(f"measure {name}: N x N covariance and eigh",
                                (("N", N), ("N", N)), 8, 4))
        elif name == "kernel":
            options.append(Term("measure kernel: n x n kernels", (("n", n_r), ("n", n_r)), 8, 3))
        elif name in ("adversarial", "function_space", "polynomial", "activation_patterns",
                      "generalisation_gap", "norm_bound"):
            rows = min(max(n_test, n_r), 20_000)
            options.append(Term(f"measure {name}: features", (("n", rows), ("N", N)), b, 3))
            options.append(Term(f"measure {name}: inputs", (("n", rows), ("d", d)), 8, 2))
        else:
            options.append(Term(f"measure {name}: copies of W", (("N", N), ("d", d)), b, 3))
            options.append(Term(f"measure {name}: SVD Gram", (("min(N,d)", m),) * 2, b, 3))
    return options


def estimate_run(config: Mapping[str, Any] | Any, *, cache_bytes: int | None = None
                 ) -> MemoryEstimate:
    """Estimate the peak memory of one run's arrays from its config alone.

    Parameters
    ----------
    config : RunConfig or mapping
        A validated :class:`~twolayer.config.RunConfig`, or the plain data of one resolved
        sweep point (the spec's sections with the point applied; defaults may be missing).
        Nothing is built: an impossible ``teacher.d`` is estimated, not allocated.
    cache_bytes : int, optional
        Budget of the stage cache in bytes: a test set that fits it is held whole
        (n_test x d, as a sweep's worker keeps it for the runs of one seed) instead of streamed
        in chunks. Default: ``TWOLAYER_CACHE_MB`` (the workers' cache); 0 for a lone
        :func:`twolayer.run_once` without a cache.

    Returns
    -------
    MemoryEstimate
        An upper bound of the run's NumPy arrays within a small factor (measured ratios in
        docs/engine.md); the Python process itself (:data:`PROCESS_BYTES`) is not included.
    """
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    teacher = _get(config, "teacher", {})
    student = _get(config, "student", {})
    train = _get(config, "train", {"protocol": "none"})
    readout = config.get("readout") if isinstance(config, Mapping) else None
    evaluate = _get(config, "evaluate", {})
    backend = _get(config, "backend", {})
    b = 4 if _get(backend, "dtype", DEFAULTS["dtype"]) == "float32" else 8
    d = _int(_get(teacher, "d", 1), 1)
    N = _int(_get(student, "N", 1), 1)
    n_test = _int(_get(evaluate, "n_test", DEFAULTS["n_test"]), DEFAULTS["n_test"])
    chunk = min(_int(_get(evaluate, "chunk", DEFAULTS["chunk"]), DEFAULTS["chunk"]), n_test)
    if cache_bytes is None:
        cache_bytes = cache_budget_bytes()

    width = _teacher_width(teacher)
    persistent = [
        # random_orthonormal draws a d x r Gaussian and its QR: about 3 copies while built
        Term("teacher parameters", (("r", width), ("d", d)), 8, 3),
        Term("student W_0 and W", (("N", N), ("d", d)), b, 2),
    ]
    phases: dict[str, list[Term]] = {}

    # -- training --------------------------------------------------------------------------
    protocol = _get(train, "protocol", "none")
    n_train = _int(_get(train, "n", 0))
    train_terms: list[Term] = []
    if protocol == "giant_steps":
        steps = _get(train, "steps", []) or [{}]
        fresh = [s for s in steps if _get(s, "batch", "fresh") == "fresh"] or [{}]
        sizes = [_int(_get(s, "n", n_train), n_train) for s in fresh]
        # every step's batch is kept with the trained student (TrainResult.batches)
        persistent.append(Term("training batches", (("n", sum(sizes)), ("d", d)), 8))
        n_step = max(sizes)
        train_terms += [
            Term("pre-activations and derivatives", (("n", n_step), ("N", N)), b, 3),
            Term("gradient and update of W", (("N", N), ("d", d)), b, 3),
        ]
    elif protocol in ("gd", "stages"):
        stages = _get(train, "stages", []) if protocol == "stages" else [train]
        online = any(_get(s, "online", False) for s in stages)
        batch = max([_int(_get(s, "batch_size", 0)) for s in stages] + [0]) or n_train
        if not online:
            persistent.append(Term("training set", (("n", n_train), ("d", d)), 8))
        else:
            train_terms.append(Term("online batch", (("n", batch), ("d", d)), 8, 2))
        monitor = max((_int(_get(s, "monitor_n", DEFAULTS["monitor_n"]))
                       for s in stages if _get(s, "monitor")), default=0)
        if monitor:
            train_terms.append(Term("monitor set and its features",
                                    (("n", monitor), ("d+N", d + N)), 8, 2))
        train_terms += [
            Term("pre-activations and derivatives", (("n", min(batch, n_train or batch)),
                                                     ("N", N)), b, 4),
            Term("gradient, update and Langevin noise of W", (("N", N), ("d", d)), b, 4),
        ]
    elif protocol == "spiked":
        train_terms.append(Term("spiked W_1 and its parts", (("N", N), ("d", d)), 8, 3))
    phases["train"] = train_terms

    # -- readout and test errors -------------------------------------------------------------
    read_terms: list[Term] = []
    n_r = 0
    if isinstance(readout, Mapping):
        baselines = list(_get(readout, "baselines", []) or [])
        p = N * (2 if "random_features" in baselines else 1)
        if _get(readout, "batch", "fresh") == "reuse":
            n_r = n_train
            rows = n_r
        else:
            n_r = _int(_get(readout, "n", n_train), n_train)
            rows = n_r + SAMPLE_BLOCK
            read_terms.append(Term("readout batch", (("n", rows), ("d", d)), 8, 2 if b == 4 else 1))
        read_terms.append(Term("readout features", (("n", rows), ("p", p)), b))
        m = min(n_r, N)
        side = "N" if n_r >= N else "n"
        # the Gram matrix, its factorisation (a copy, or eigenvectors) and the solver's scratch
        read_terms.append(Term("readout Gram", ((side, m), (side, m)), b, 3))
        n_lam = len(_get(readout, "lambdas", []) or [0])
        read_terms.append(Term("readout coefficients", (("p", p), ("L", n_lam)), b, 2))
        if "linear" in baselines:
            read_terms.append(Term("linear baseline Gram", (("d", d), ("d", d)), 8, 3))
        if "kernel" in baselines:
            read_terms.append(Term("kernel baseline", (("n", n_r), ("n", n_r)), 8, 4))
    # test errors: the whole test set when it fits the cache budget, else chunk by chunk;
    # the features of the network and of each readout predictor on it
    held = n_test * (d + 1) * 8 <= cache_bytes
    rows_t = (n_test + SAMPLE_BLOCK) if held else chunk
    # drawn block by block and concatenated (twolayer.teachers.sample_blocks), a teacher's
    # input model transforming each block: three copies at most
    read_terms.append(Term("test inputs", (("n_test" if held else "chunk", rows_t), ("d", d)),
                           8, 3))
    read_terms.append(Term("test features", (("n_test" if held else "chunk", rows_t), ("N", N)),
                           b, 2))
    phases["readout"] = read_terms

    # -- measurements: after the readout, whose batch and coefficients they may read ----------
    names = _measure_names(_get(config, "measure", []))
    if names:
        kept = [t for t in read_terms if t.what in ("readout batch", "readout coefficients")]
        options = _measure_terms(names, N, d, n_r, n_test, b)
        # measurements run one at a time: the largest one's arrays
        by_name: dict[str, list[Term]] = {}
        for t in options:
            by_name.setdefault(t.what.split(":")[0], []).append(t)
        biggest = max(by_name.values(), key=_sum)
        phases["measure"] = kept + biggest
    return MemoryEstimate(persistent, phases)


# --------------------------------------------------------------------------------------------
# memory available


def cache_budget_bytes() -> int:
    """The stage cache's budget (``TWOLAYER_CACHE_MB`` MiB, default 1024), 0 if unreadable."""
    try:
        return int(float(os.environ.get("TWOLAYER_CACHE_MB", DEFAULTS["cache_mb"])) * 2**20)
    except ValueError:
        return 0


def available_memory() -> tuple[int | None, str]:
    """Memory this machine can give a new process now, and where the number comes from.

    ``MemAvailable`` of /proc/meminfo (Linux: free memory plus what the kernel can reclaim),
    else ``os.sysconf`` available pages, else physical pages (total memory); ``(None, why)``
    where none of them can be read (the check is then skipped, with a note).
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                match = re.match(r"MemAvailable:\s+(\d+)\s+kB", line)
                if match:
                    return int(match.group(1)) * 1024, "MemAvailable of /proc/meminfo"
    except OSError:
        pass
    for name, label in (("SC_AVPHYS_PAGES", "available physical pages"),
                        ("SC_PHYS_PAGES", "physical memory (total)")):
        try:
            pages, size = os.sysconf(name), os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
        if pages > 0 and size > 0:
            return pages * size, label
    return None, "the memory available cannot be read on this platform"


def format_bytes(nbytes: float) -> str:
    """``1.5 GiB``-style text."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(nbytes) < 1024 or unit == "EiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} EiB"  # pragma: no cover


@dataclass(frozen=True)
class MemoryCheck:
    """The result of :func:`check_memory`.

    Attributes
    ----------
    estimate : MemoryEstimate
        The largest run's estimate.
    needed : int
        Bytes the sweep needs at once: :func:`per_worker_bytes` of the largest run x the
        workers running at once.
    available : int or None
        Bytes available (None: unknown, the check passes with a note).
    source : str
        Where ``available`` comes from.
    workers : int
        Runs held in memory at once.
    point : dict
        The sweep point of the largest run.
    """

    estimate: MemoryEstimate
    needed: int
    available: int | None
    source: str
    workers: int
    point: dict[str, Any]

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= self.available

    def message(self) -> str:
        """One line: the estimate, the memory available and the dominant array."""
        per_run = self.estimate.nbytes
        where = f" at sweep point {_point_text(self.point)}" if self.point else ""
        dom = self.estimate.dominant
        times = f" x {self.workers} workers" if self.workers > 1 else ""
        avail = format_bytes(self.available) if self.available is not None else "unknown"
        return (
            f"a run needs about {format_bytes(per_run)} of arrays{where} "
            f"(largest: {dom}); with the process{times}: {format_bytes(self.needed)}, "
            f"more than the {avail} available ({self.source})"
        )


def _point_text(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def check_memory(
    configs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    workers: int = 1,
    available: tuple[int | None, str] | None = None,
) -> MemoryCheck:
    """Compare the largest run of a sweep with the memory available.

    Parameters
    ----------
    configs : iterable of (config data, sweep point)
        The runs' plain config data (see :func:`estimate_run`), one per distinct point.
    workers : int
        Runs held in memory at once (the local executor's workers; 1 for serial; for Dask, 1
        when the memory compared is one worker's).
    available : (bytes or None, source), optional
        The memory to compare with; default :func:`available_memory`.

    Returns
    -------
    MemoryCheck
    """
    best: tuple[MemoryEstimate, Mapping[str, Any]] | None = None
    for data, point in configs:
        est = estimate_run(data)
        if best is None or est.nbytes > best[0].nbytes:
            best = (est, point)
    if best is None:
        best = (MemoryEstimate(), {})
    est, point = best
    needed = workers * per_worker_bytes(est)
    avail, source = available if available is not None else available_memory()
    return MemoryCheck(est, needed, avail, source, workers, dict(point))


def per_worker_bytes(estimate: MemoryEstimate) -> int:
    """What one worker holds: the run's arrays, the two trained students its stage cache keeps
    from earlier runs (W_0 and W each), and the process. The cache's shared arrays (test sets,
    readout pools of other seeds) may add up to ``TWOLAYER_CACHE_MB`` on top as a long sweep
    fills it; they are not counted, so that a laptop with many cores is not refused every
    sweep for a cache it evicts from (lower ``TWOLAYER_CACHE_MB`` when memory is tight)."""
    students = sum(t.nbytes for t in estimate.persistent if t.what.startswith("student"))
    return estimate.nbytes + 2 * students + PROCESS_BYTES


def confirm_threshold() -> int:
    """Runs past which ``twolayer run`` asks for confirmation: ``TWOLAYER_CONFIRM_RUNS`` or
    :data:`CONFIRM_RUNS` (10,000)."""
    text = os.environ.get("TWOLAYER_CONFIRM_RUNS")
    if text is None:
        return CONFIRM_RUNS
    try:
        value = int(text)
    except ValueError:
        raise ValueError(
            f"TWOLAYER_CONFIRM_RUNS must be a whole number of runs, got {text!r}"
        ) from None
    return max(value, 0)
