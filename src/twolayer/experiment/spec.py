"""Experiment specs: YAML (or a dict) -> validated :class:`Spec` -> list of :class:`RunSpec`.

A spec holds the run sections of :class:`twolayer.config.RunConfig` (teacher, student, train,
readout, evaluate, measure, backend) plus what only an experiment needs: ``name``, ``seeds``,
``sweep`` (dotted keys -> lists, grid product), ``zip`` (dotted keys -> lists of one length,
paired), ``executor``, ``store`` and ``plugins`` (modules imported first, which register the
user's own components: twolayer.plugins). Every resolved grid point is validated as a RunConfig
when the spec is loaded, so a sweep never fails half-way on a typo. Every problem is reported as a
:class:`~twolayer.experiment.errors.SpecError` naming the file, the key path, the value and what
was expected.

The module holds the models (:class:`Spec`, :class:`ExecutorConfig`, :class:`SlurmConfig`,
:class:`RunSpec`, :func:`run_id`) and the ``load_spec*`` entry points; the other jobs live beside
it, each depending only on those listed before it: key paths (:mod:`.paths`), reading YAML
within limits (:mod:`.spec_yaml`), pydantic errors rewritten as one clear message
(:mod:`.spec_errors`) and sweep resolution (:mod:`.sweeps`). Their public names (``parse_key``,
``format_path``, ``parse_yaml``, ``MAX_SPEC_BYTES``, ``sweep_key_paths``, ``point_data``, ...)
are importable from here as before.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from twolayer.config import RunConfig
from twolayer.experiment.errors import Problem, SpecError

# The jobs split out of this module, re-exported: code, tests and users import these names from
# twolayer.experiment.spec (the private ones included, e.g. twolayer.experiment.lazy's).
from twolayer.experiment.paths import PathT as PathT
from twolayer.experiment.paths import _get as _get
from twolayer.experiment.paths import _model_at as _model_at
from twolayer.experiment.paths import _pick_model as _pick_model
from twolayer.experiment.paths import _unwrap as _unwrap
from twolayer.experiment.paths import format_path as format_path
from twolayer.experiment.paths import parse_key as parse_key
from twolayer.experiment.paths import set_path as set_path
from twolayer.experiment.spec_errors import _clean_loc as _clean_loc
from twolayer.experiment.spec_errors import _translate as _translate
from twolayer.experiment.spec_yaml import MAX_SPEC_BYTES as MAX_SPEC_BYTES
from twolayer.experiment.spec_yaml import MAX_SPEC_DEPTH as MAX_SPEC_DEPTH
from twolayer.experiment.spec_yaml import MAX_SPEC_VALUES as MAX_SPEC_VALUES
from twolayer.experiment.spec_yaml import _line as _line
from twolayer.experiment.spec_yaml import parse_yaml as parse_yaml
from twolayer.experiment.spec_yaml import read_yaml_file
from twolayer.experiment.sweeps import point_data as point_data
from twolayer.experiment.sweeps import resolve_points
from twolayer.experiment.sweeps import sweep_key_paths as sweep_key_paths

RUN_SECTIONS = (
    "teacher", "student", "train", "readout", "evaluate", "measure", "backend", "draws", "labels"
)


# --------------------------------------------------------------------------------------------
# models of the experiment-only sections


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlurmConfig(_Model):
    """``executor.slurm``: SLURM job arrays through submitit (twolayer.experiment.slurm;
    docs/engine.md, "Clusters"). One job per chunk of runs; the driver writes the store."""

    cluster: Literal["slurm", "local"] = Field(
        "slurm",
        description="slurm (sbatch job arrays), or local: submitit's local executor, the same "
        "jobs as processes of this machine (to try a spec before queueing it)",
    )
    chunk: PositiveInt = Field(
        20, description="runs per job (a group of runs sharing a trained student is cut only "
        "when it alone is larger)"
    )
    folder: str | None = Field(
        None,
        description="submitit's folder (job pickles, results, logs), on a file system the "
        "compute nodes see; default: <store without .sqlite>.submitit beside the store",
    )
    partition: str | None = Field(None, description="sbatch --partition")
    time: PositiveInt = Field(60, description="time limit of one job, minutes (sbatch --time)")
    mem: str | None = Field(None, description="memory of one job (sbatch --mem), e.g. 16G")
    cpus_per_task: PositiveInt = Field(1, description="cores of one job (sbatch --cpus-per-task)")
    gpus: NonNegativeInt | None = Field(None, description="GPUs of one job (--gpus-per-node)")
    account: str | None = Field(None, description="sbatch --account")
    qos: str | None = Field(None, description="sbatch --qos")
    job_name: str = Field("twolayer", description="sbatch --job-name (scancel --name finds them)")
    setup: list[str] = Field(
        default_factory=list,
        description="shell lines run before each job (module load ..., source venv/bin/activate)",
    )
    additional: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="other sbatch options, name -> value ({constraint: a100, exclude: node7})",
    )
    max_requeues: NonNegativeInt = Field(
        3, description="times a job may be requeued after reaching its time limit"
    )
    poll: float = Field(
        5.0, gt=0, le=3600, description="seconds between two looks at the jobs' states"
    )

    @field_validator("additional")
    @classmethod
    def _no_false_flags(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, option in value.items():
            if option is False:  # sbatch has no --flag=false: the option is left out
                raise ValueError(f"{name}: false is not an sbatch value; leave the option out")
        return value


class ExecutorConfig(_Model):
    """Where the runs execute."""

    kind: Literal["serial", "local", "dask", "slurm"] | None = Field(
        None,
        description="serial (in the driver), local (a pool of processes), dask "
        "(dask.distributed) or slurm (job arrays through submitit, see executor.slurm); "
        "default: serial for one run, local for a sweep",
    )
    jobs: PositiveInt | None = Field(
        None, description="worker processes (local), LocalCluster workers (dask) or jobs running "
        "at once (slurm: the array's %limit, default 256); default: cores"
    )
    address: str | None = Field(
        None, description="dask scheduler address (tcp://host:port); none starts a LocalCluster"
    )
    threads_per_worker: PositiveInt | None = Field(
        None, description="BLAS threads per worker; default: cores // workers (at least 1)"
    )
    batch_seeds: bool = Field(
        False,
        description="run the seeds of each sweep point as one batched computation (training "
        "batched for giant_steps and none, seed by seed for the other protocols; readout and "
        "errors always batched); same numbers to rounding",
    )
    slurm: SlurmConfig | None = Field(
        None, description="SLURM parameters of kind slurm (default: every default of the section)"
    )

    @model_validator(mode="after")
    def _check(self) -> ExecutorConfig:
        if self.address is not None and self.kind not in (None, "dask"):
            raise ValueError(f"address is only used with kind 'dask', not {self.kind!r}")
        if self.slurm is not None and self.kind not in (None, "slurm"):
            raise ValueError(f"slurm is only used with kind 'slurm', not {self.kind!r}")
        return self


#: What an experiment name may be (it names the default store file and the sweep in a store).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class Spec(_Model):
    """A validated experiment: the run sections, seeds, a sweep, an executor and a store.

    The run sections are kept as given (plain data); :meth:`runs` resolves them, with each
    sweep point applied, into validated :class:`RunSpec` objects.
    """

    name: str = Field(
        pattern=NAME_PATTERN,
        description="experiment name: letters, digits, '_', '-', '.'; names the default store "
        "(a spec file without it: the file's name)",
    )
    description: str = Field("", description="free text, kept with the sweep in the store")
    seeds: PositiveInt | list[NonNegativeInt] = Field(
        1, description="number of seeds (0..k-1) or an explicit list of seeds"
    )
    teacher: dict[str, Any] = Field(description="the data model (see RunConfig.teacher)")
    student: dict[str, Any] = Field(description="the two-layer network (see RunConfig.student)")
    train: dict[str, Any] | None = Field(None, description="feature training protocol")
    readout: dict[str, Any] | None = Field(None, description="ridge readout of the second layer")
    evaluate: dict[str, Any] | None = Field(None, description="test-error evaluation")
    measure: list[Any] | None = Field(None, description="measurements, by name")
    backend: dict[str, Any] | None = Field(None, description="array backend and dtype")
    draws: dict[str, Any] | None = Field(
        None, description="stages drawn once for all seeds (see RunConfig.draws)"
    )
    labels: dict[str, Any] | None = Field(
        None, description="labels preprocessed on each batch's own sample (RunConfig.labels)"
    )
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="dotted keys -> lists of values; runs are the grid product",
    )
    zip: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="dotted keys -> lists of one common length, varied together (one grid axis)",
    )
    executor: ExecutorConfig = Field(
        default_factory=ExecutorConfig, description="where the runs execute"
    )
    store: str | None = Field(None, description="store file; default <name>.sqlite")
    plugins: list[str] = Field(
        default_factory=list,
        description="modules to import first, which register your own activations, links, "
        "teachers, ... (docs/extending.md); imported on the workers too",
    )

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, list):
            if not value:
                raise ValueError("seeds: give a positive count or a non-empty list")
            if len(set(value)) != len(value):
                raise ValueError(f"seeds must be distinct, got {value}")
        return value

    @field_validator("sweep", "zip")
    @classmethod
    def _non_empty(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
        return value

    @model_validator(mode="after")
    def _check_axes(self) -> Spec:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}: {len(v)}" for k, v in self.zip.items())
            raise ValueError(f"zip: all lists must have one length, got {sizes}")
        both = set(self.sweep) & set(self.zip)
        if both:
            raise ValueError(f"keys both in sweep and zip: {sorted(both)}")
        return self

    # -- derived ------------------------------------------------------------------------------

    @property
    def seed_list(self) -> list[int]:
        """The seeds, as a list."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def store_path(self) -> str:
        """The store file (``store`` or ``<name>.sqlite``)."""
        return self.store or f"{self.name}.sqlite"

    def base_sections(self) -> dict[str, Any]:
        """The run sections given in the spec (absent ones left out)."""
        out: dict[str, Any] = {}
        for name in RUN_SECTIONS:
            value = getattr(self, name)
            if value is not None:
                out[name] = copy.deepcopy(value)
        return out

    def points(self) -> list[dict[str, Any]]:
        """The sweep points, each a dict dotted key -> value (one empty point if no sweep)."""
        return list(self.iter_points())

    def axes(self) -> list[list[dict[str, Any]]]:
        """The grid's axes: each sweep key, then the zip keys together; each axis a list of
        partial points (dotted key -> value). The points are their product."""
        axes: list[list[dict[str, Any]]] = [
            [{key: v} for v in values] for key, values in self.sweep.items()
        ]
        if self.zip:
            keys = list(self.zip)
            rows = zip(*self.zip.values(), strict=True)
            axes.append([dict(zip(keys, vals, strict=True)) for vals in rows])
        return axes

    def iter_points(self) -> typing.Iterator[dict[str, Any]]:
        """The sweep points one at a time (the order of :meth:`points`), none held: a grid of
        10^6 points is walked in constant memory."""
        for combo in itertools.product(*self.axes()):
            point: dict[str, Any] = {}
            for part in combo:
                point.update(part)
            yield point

    @property
    def seed_count(self) -> int:
        """The number of seeds (without listing them)."""
        return self.seeds if isinstance(self.seeds, int) else len(self.seeds)

    def seed_range(self) -> typing.Sequence[int]:
        """The seeds as a sequence: a ``range`` for a count (no list of 10^6 ints)."""
        return range(self.seeds) if isinstance(self.seeds, int) else list(self.seeds)

    def count_points(self) -> int:
        """Points of the grid: the product of the axis lengths (a zip counts as one axis),
        computed without listing them."""
        return math.prod(len(v) for v in self.sweep.values()) * (
            len(next(iter(self.zip.values()))) if self.zip else 1
        )

    def count_runs(self) -> int:
        """Runs of the sweep, points x seeds, without resolving any (a point listed twice
        counts twice here; it runs once)."""
        return self.count_points() * self.seed_count

    def runs(self, source: str = "<dict>") -> list[RunSpec]:
        """Resolve the spec into validated runs (points x seeds).

        Raises
        ------
        SpecError
            If a sweep key matches no field or a resolved point is not a valid RunConfig.
        """
        return _resolve(self, source, None)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (defaults left out), loadable again by :func:`load_spec`."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def to_yaml(self) -> str:
        """The spec as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a resolved, validated config and a seed.

    Attributes
    ----------
    config : RunConfig
    seed : int
    sweep : str
        The experiment's name.
    point : dict
        The sweep point (dotted key -> value) this run comes from.
    """

    config: RunConfig
    seed: int
    sweep: str = ""
    point: dict[str, Any] = field(default_factory=dict)

    @property
    def config_json(self) -> str:
        """Canonical JSON of the resolved config (sorted keys)."""
        return canonical_json(self.config)

    @property
    def id(self) -> str:
        """Identity of the run: hash of the resolved config and the seed."""
        return run_id(self.config, self.seed)

    @property
    def share_key(self) -> str:
        """Runs with equal keys share the teacher and the trained student: the key the stage
        cache uses (:func:`twolayer.pipeline.training_key`), so grouping and caching agree.
        With ``draws.fixed`` covering teacher, init and train it does not depend on the seed."""
        from twolayer.pipeline import training_key

        return training_key(self.config, self.seed)

    @property
    def sections_key(self) -> str:
        """The training sections without the seed (and ``draws``, which says which seed each
        stage draws from): runs with equal keys can run batched over seeds and share the
        stacked trained students."""
        sections = [*self.config.training_sections(), self.config.draws.model_dump(mode="json")]
        return json.dumps(sections, sort_keys=True)


def canonical_json(config: RunConfig) -> str:
    """JSON text of a resolved config with sorted keys (the form that is hashed and stored)."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def run_id(config: RunConfig, seed: int) -> str:
    """The identity of a run: sha256 of ``{"config": resolved config, "seed": seed}``, 16 hex.

    Parameters
    ----------
    config : RunConfig
        The resolved configuration (all defaults filled in).
    seed : int
    """
    text = json.dumps(
        {"config": config.model_dump(mode="json"), "seed": int(seed)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# loading


def load_spec(source: str | Path | dict[str, Any], *, name: str | None = None) -> Spec:
    """Load and validate a spec from a YAML file, YAML text (``str`` with a newline) or a dict.

    Every grid point is resolved and validated, so that a bad sweep value is reported now.

    Parameters
    ----------
    source : path, YAML text or dict
    name : str, optional
        Default experiment name when the spec has none (the file's stem for files).

    Raises
    ------
    SpecError
        For anything wrong: the message names the file, the key path, the value and what
        was expected.
    """
    spec, _ = load_spec_with_runs(source, name=name)
    return spec


def load_spec_with_runs(
    source: str | Path | dict[str, Any], *, name: str | None = None
) -> tuple[Spec, list[RunSpec]]:
    """Like :func:`load_spec`, also returning the resolved runs (computed anyway)."""
    spec, label, node = load_spec_unresolved(source, name=name)
    return spec, _resolve(spec, label, node)


def load_spec_unresolved(
    source: str | Path | dict[str, Any], *, name: str | None = None
) -> tuple[Spec, str, yaml.Node | None]:
    """Parse and validate a spec's own sections without resolving its runs: no RunConfig is
    validated, so nothing is built (a teacher's validation draws its parameters). Returns the
    spec, the source's label for messages and the YAML node (for line numbers); the runs come
    from :func:`twolayer.experiment.lazy.resolve_runs` (or :func:`load_spec_with_runs`)."""
    node = None
    if isinstance(source, dict):
        label, data = "<dict>", copy.deepcopy(source)
    elif isinstance(source, Path) or "\n" not in str(source):
        path = Path(source)
        label = str(path)
        data, node = read_yaml_file(path, label)
        name = name or path.stem
    else:
        label = "<string>"
        data, node = parse_yaml(str(source), label)
    if not isinstance(data, dict):
        raise SpecError(
            [Problem("", f"a spec must be a mapping of sections, got {type(data).__name__}")],
            label,
        )
    if "name" not in data and name is not None:
        data["name"] = _name_from_file(name, label)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([p for p, _ in _translate(exc, data, Spec, node)], label) from None
    return spec, label, node


def _name_from_file(stem: str, source: str) -> str:
    """The experiment name of a spec without ``name``: the file name (``stem``) as written, or
    a SpecError saying which characters keep it from being a name and what to write instead."""
    if re.fullmatch(NAME_PATTERN, stem):
        return stem
    bad = dict.fromkeys(re.findall(r"[^A-Za-z0-9_.\-]", stem))
    if not stem:
        why = "it is empty"
    elif bad:
        why = f"it contains {', '.join(map(repr, bad))}"
    else:  # only the first character is wrong: '_', '-' or '.'
        why = f"it starts with {stem[0]!r}"
    fixed = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem).lstrip("_.-") or "experiment"
    problem = Problem(
        "name",
        f"the spec has no 'name' and its file name {stem!r} cannot be one ({why}; a name is "
        "letters, digits, '_', '-' and '.', starting with a letter or digit): add "
        f"'name: {fixed}' to the spec or rename the file",
    )
    raise SpecError([problem], source)


def dump_spec(spec: Spec, path: str | Path) -> None:
    """Write a spec as YAML (loadable by :func:`load_spec`)."""
    Path(path).write_text(spec.to_yaml())


def _resolve(spec: Spec, source: str, node: yaml.Node | None) -> list[RunSpec]:
    """The runs of ``spec``: each validated sweep point (:func:`.sweeps.resolve_points`) with
    each seed, points outer, seeds inner (SpecError listing every problem)."""
    return [
        RunSpec(config, seed, spec.name, dict(point))
        for point, config in resolve_points(spec, source, node)
        for seed in spec.seed_range()
    ]
