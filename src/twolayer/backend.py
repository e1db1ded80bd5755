"""The one seam between the mathematics and the array library, and the run's random streams.

Every numerical routine of twolayer receives its arrays from a :class:`Backend` and works on them
with the backend's array namespace ``xp``; the default is NumPy in float64. All random numbers
are drawn with NumPy generators from :class:`RunStreams` and then moved to the backend, so the
same seed gives the same numbers whatever backend runs the algebra.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, get_args

import numpy as np

#: Array libraries and floating-point precisions (one Literal each; the tuples derive from them).
BackendName = Literal["numpy", "torch"]
BACKENDS: tuple[str, ...] = get_args(BackendName)
DType = Literal["float64", "float32"]
DTYPES: tuple[str, ...] = get_args(DType)

#: Stable ids of the named random streams of a run (never reorder: it would change every result).
STREAM_IDS: dict[str, int] = {
    "teacher": 1,  # teacher parameters (directions, cluster means, ...)
    "init": 2,  # student initialisation
    "batch": 3,  # training batch k is stream ("batch", k)
    "readout": 4,  # the readout's own batch
    "test": 5,  # the test set
    "train_noise": 6,  # Langevin noise, minibatch orders (indexed by step)
    "measure": 7,  # probe sets of measurements
}

#: The stages a spec can hold fixed across its seeds (``draws.fixed``) and the streams each
#: stage draws from; a stream not listed here always follows the run's seed.
STAGE_STREAMS: dict[str, tuple[str, ...]] = {
    "teacher": ("teacher",),
    "init": ("init",),
    "train": ("batch", "train_noise", "spike"),
    "readout": ("readout",),
    "test": ("test",),
}


def stream_id(name: str) -> int:
    """Integer id of a named stream; unknown names get a stable CRC32-based id."""
    if name in STREAM_IDS:
        return STREAM_IDS[name]
    return 1000 + zlib.crc32(name.encode()) % (2**31)


@dataclass(frozen=True)
class RunStreams:
    """Independent random streams of one run, all derived from a single seed.

    Stream ``(name, *index)`` is ``SeedSequence(seed, spawn_key=(id(name), *index))``: it
    depends only on the seed, the name and the index, so drawing more test points or taking
    more training steps never changes the training data. The streams named in ``fixed`` use
    ``fixed_seed`` instead of ``seed`` (a spec's ``draws.fixed``: one W_0 or one training batch
    for all seeds); build them with :meth:`with_fixed`.

    Examples
    --------
    >>> streams = RunStreams(0)
    >>> rng_teacher = streams.generator("teacher")
    >>> rng_batch_2 = streams.generator("batch", 2)
    """

    seed: int
    fixed: frozenset[str] = frozenset()
    fixed_seed: int = 0

    @classmethod
    def with_fixed(cls, seed: int, stages: Sequence[str] = (), fixed_seed: int = 0) -> RunStreams:
        """Streams of ``seed`` in which the streams of ``stages`` (keys of ``STAGE_STREAMS``)
        follow ``fixed_seed`` instead: those stages draw the same numbers for every seed."""
        unknown = [s for s in stages if s not in STAGE_STREAMS]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; stages: {', '.join(STAGE_STREAMS)}")
        names = frozenset(n for s in stages for n in STAGE_STREAMS[s])
        return cls(int(seed), names, int(fixed_seed))

    def seed_of(self, name: str) -> int:
        """The seed stream ``name`` draws from: ``fixed_seed`` for a fixed stream, else seed."""
        return self.fixed_seed if name in self.fixed else self.seed

    def seed_sequence(self, name: str, *index: int) -> np.random.SeedSequence:
        if self.seed < 0 or self.fixed_seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        return np.random.SeedSequence(
            entropy=self.seed_of(name), spawn_key=(stream_id(name), *(int(i) for i in index))
        )

    def generator(self, name: str, *index: int) -> np.random.Generator:
        return np.random.default_rng(self.seed_sequence(name, *index))


class GeneratorStack(tuple):
    """One NumPy generator per member of a stack of seeds (what :meth:`StreamStack.generator`
    returns); a :class:`twolayer.teachers.TeacherStack` draws member i's samples from item i."""


@dataclass(frozen=True)
class StreamStack:
    """The :class:`RunStreams` of several seeds side by side, for batched seeds.

    ``generator(name, *index)`` returns a :class:`GeneratorStack` whose item i is exactly
    ``RunStreams(seeds[i]).generator(name, *index)``, so a batched run draws for each seed the
    numbers that seed's own run draws.
    """

    seeds: tuple[int, ...]
    fixed: frozenset[str] = frozenset()
    fixed_seed: int = 0

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("a stream stack needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"the seeds of a stack must be distinct, got {list(self.seeds)}")

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> RunStreams:
        return RunStreams(self.seeds[i], self.fixed, self.fixed_seed)

    def generator(self, name: str, *index: int) -> GeneratorStack:
        return GeneratorStack(self[i].generator(name, *index) for i in range(len(self.seeds)))


def mT(x: Any) -> Any:
    """Swap the last two axes (the transpose of a matrix or of each matrix of a stack).

    For a 2-D array this is the same view as ``x.T``, so unbatched code keeps its exact BLAS
    calls; NumPy's ``swapaxes`` and torch's ``.mT`` are views as well.
    """
    if isinstance(x, np.ndarray):
        return np.swapaxes(x, -1, -2)
    return x.mT


def matvec(A: Any, v: Any) -> Any:
    """``A @ v`` for a matrix (or stack of matrices) A, shape (..., m, k), and v of shape (k,)
    or (..., k) (one vector per matrix of the stack); returns shape (..., m).

    A 1-D ``v`` is the plain ``A @ v`` (the unbatched product); a stacked ``v`` is multiplied as
    a stack of (k, 1) matrices, since ``@`` would otherwise treat it as one more matrix.
    """
    if v.ndim == 1:
        return A @ v
    return (A @ v[..., None])[..., 0]


@dataclass(frozen=True)
class Backend:
    """Array library, dtype and device used for the algebra of a run.

    Parameters
    ----------
    name : {"numpy", "torch"}
    dtype : {"float64", "float32"}
    device : str or None
        Torch device ("cpu", "cuda", "cuda:1"); ignored by NumPy.
    """

    name: str = "numpy"
    dtype: str = "float64"
    device: str | None = None

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r}; expected 'numpy' or 'torch'")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; expected one of {DTYPES}")
        if self.name == "numpy" and self.device not in (None, "cpu"):
            raise ValueError(f"the numpy backend runs on the CPU only, got device {self.device!r}")

    @property
    def xp(self) -> ModuleType:
        """The array namespace (``numpy`` or ``torch``)."""
        if self.name == "numpy":
            return np
        return _import_torch()

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def asarray(self, array: Any) -> Any:
        """Convert a NumPy array (or nested sequence) to this backend's array and dtype."""
        if self.name == "numpy":
            return np.asarray(array, dtype=self.np_dtype)
        torch = _import_torch()
        tdtype = torch.float64 if self.dtype == "float64" else torch.float32
        if isinstance(array, torch.Tensor):
            return array.to(device=self.device or "cpu", dtype=tdtype)
        return torch.as_tensor(np.asarray(array), dtype=tdtype, device=self.device or "cpu")

    def normal(self, rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
        """Standard normal array drawn from ``rng`` (always by NumPy, so backends agree)."""
        return self.asarray(rng.standard_normal(shape))


def to_numpy(array: Any) -> np.ndarray:
    """Return a NumPy copy/view of a NumPy array or torch tensor."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def namespace_of(array: Any) -> ModuleType:
    """The array namespace an array belongs to (numpy or torch)."""
    if isinstance(array, np.ndarray | np.generic | float | int):
        return np
    module = type(array).__module__
    if module.startswith("torch"):
        return _import_torch()
    return np


def _import_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the torch backend needs PyTorch: pip install 'twolayer[torch]'") from exc
    return torch


DEFAULT_BACKEND = Backend()
