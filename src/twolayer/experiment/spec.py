"""Experiment specs: YAML (or a dict) -> validated :class:`Spec` -> list of :class:`RunSpec`.

A spec holds the run sections of :class:`twolayer.config.RunConfig` (teacher, student, train,
readout, evaluate, measure, backend) plus what only an experiment needs: ``name``, ``seeds``,
``sweep`` (dotted keys -> lists, grid product), ``zip`` (dotted keys -> lists of one length,
paired), ``executor``, ``store`` and ``plugins`` (modules imported first, which register the
user's own components: twolayer.plugins). Every resolved grid point is validated as a RunConfig
when the spec is loaded, so a sweep never fails half-way on a typo. Every problem is reported as a
:class:`~twolayer.experiment.errors.SpecError` naming the file, the key path, the value and what
was expected.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Union

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
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from twolayer.config import ProtocolConfig, RunConfig
from twolayer.experiment.errors import Problem, SpecError
from twolayer.registry import PROTOCOLS

RUN_SECTIONS = (
    "teacher", "student", "train", "readout", "evaluate", "measure", "backend", "draws", "labels"
)

PathT = tuple[str | int, ...]


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


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


MAX_SPEC_BYTES = 1 << 20
"""Largest spec file (or YAML text) read: 1 MiB; a spec is a few hundred bytes."""
MAX_SPEC_DEPTH = 50
"""Deepest nesting of mappings and lists in a spec, aliases followed (a spec needs about 6)."""
MAX_SPEC_VALUES = 100_000
"""Most values a spec with aliases (``*name``) may expand to: a 1 KB file of nested aliases
("billion laughs") would otherwise expand to 10^9 values while it is validated."""


def _check_yaml_shape(text: str, source: str) -> None:
    """Reject YAML too large, too deep or expanding too much through aliases, before a node
    tree is built (PyYAML composes recursively) or data is constructed.

    One pass over the event stream bounds the nesting (the stream is flat, so 100,000 ``[``
    cost nothing more than the first 50).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            [Problem("", f"{size} bytes of YAML, more than the limit of {MAX_SPEC_BYTES} "
                     f"bytes (1 MiB) for a spec")],
            source,
        )
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_SPEC_DEPTH:
                mark = event.start_mark
                raise SpecError(
                    [Problem("", f"mappings and lists nested more than {MAX_SPEC_DEPTH} deep "
                             f"(column {mark.column + 1})", mark.line + 1)],
                    source,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Reject a node graph that aliases expand by more than MAX_SPEC_VALUES values or to more
    than MAX_SPEC_DEPTH levels, or that refers to itself. Linear in the nodes: each node is
    sized once, however often aliases repeat it."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) when expanded
    on_path: set[int] = set()
    seen = 0  # distinct nodes met so far
    stack: list[tuple[yaml.Node, int]] = [(root, -1)]  # (node, distinct nodes before it or -1)
    while stack:
        node, before = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if before >= 0:  # every child is sized: size the node
            on_path.discard(key)
            values = 1 + sum(sizes[id(c)][0] for c in children)
            depth = 1 + max((sizes[id(c)][1] for c in children), default=0)
            sizes[key] = (values, depth)
            what = ""
            if depth > MAX_SPEC_DEPTH:
                what = f"nests more than {MAX_SPEC_DEPTH} deep"
            elif values - (seen - before) > MAX_SPEC_VALUES:
                what = f"expands to more than {MAX_SPEC_VALUES} values"
            if what:
                raise SpecError(
                    [Problem("", f"this value {what} through aliases (*name); a spec needs "
                             "far fewer (a 'billion laughs' file?)", node.start_mark.line + 1)],
                    source,
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise SpecError(
                [Problem("", "an alias (*name) refers to the value that contains it",
                         node.start_mark.line + 1)],
                source,
            )
        on_path.add(key)
        stack.append((node, seen))
        seen += 1
        stack.extend((child, -1) for child in children)


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, yaml.Node | None]:
    """Parse YAML text into data and its node tree (for line numbers).

    The text is checked before anything is built from it: at most MAX_SPEC_BYTES, nesting at
    most MAX_SPEC_DEPTH deep, and aliases expanding to at most MAX_SPEC_VALUES values.

    Raises
    ------
    SpecError
        On a syntax error, with its line and column, or on a document over those limits.
    """
    try:
        _check_yaml_shape(text, source)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_expansion(node, source)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = f", column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecError([Problem("", f"YAML syntax error{col}: {what}", line)], source) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem("", f"YAML error: {exc}")], source) from None
    return data, node


def _decode_spec(raw: bytes, source: str) -> str:
    """The text of a spec file: UTF-8 (a byte order mark is dropped), else a SpecError naming
    the byte offset and line of the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise SpecError(
            [Problem("", f"not UTF-8 text: byte 0x{byte} at offset {exc.start} cannot be "
                     "decoded; save the spec as UTF-8", line)],
            source,
        ) from None


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
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            problem = Problem("", f"cannot read spec file: {exc.strerror}")
            raise SpecError([problem], label) from None
        if len(raw) > MAX_SPEC_BYTES:
            problem = Problem("", f"the file is larger than the limit of {MAX_SPEC_BYTES} "
                              "bytes (1 MiB) for a spec")
            raise SpecError([problem], label)
        data, node = parse_yaml(_decode_spec(raw, label), label)
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


# --------------------------------------------------------------------------------------------
# key paths


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_key(key: str) -> PathT:
    """``"train.steps[0].eta.c"`` (or ``"train.steps.0.eta.c"``) -> ``("train", "steps", 0, ...)``.

    Raises
    ------
    ValueError
        If the key is not a dotted path.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"a sweep key must be a dotted path like 'student.N', got {key!r}")
    parts: list[str | int] = []
    pos = 0
    while pos < len(key):
        if key[pos] == "." and parts and pos + 1 < len(key) and key[pos + 1] != ".":
            pos += 1
        m = _TOKEN.match(key, pos)
        if m is None:
            raise ValueError(f"a sweep key must be a dotted path like 'student.N', got {key!r}")
        if m.group(2) is not None:
            if not parts:
                raise ValueError(f"a sweep key cannot start with an index, got {key!r}")
            parts.append(int(m.group(2)))
        else:
            token = m.group(1)
            parts.append(int(token) if token.isdigit() and parts else token)
        pos = m.end()
    return tuple(parts)


def format_path(path: typing.Sequence[str | int]) -> str:
    """``("train", "steps", 0, "eta")`` -> ``"train.steps[0].eta"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives of a type annotation (Optional/Union/Annotated stripped)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out = []
        for arg in typing.get_args(tp):
            out += _unwrap(arg)
        return out
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _pick_model(options: list[Any], data: Any) -> type[BaseModel] | None:
    """Among union members, the model that ``data`` selects: a protocol section's is the
    registered protocol its ``protocol`` tag names (twolayer.registry.PROTOCOLS), None when
    the tag names none."""
    models = [t for t in options if _is_model(t)]
    if len(models) == 1 and models[0] is not ProtocolConfig:  # e.g. a stage: always a gd section
        return models[0]
    if any(issubclass(m, ProtocolConfig) for m in models):
        tag = data.get("protocol") if isinstance(data, dict) else None
        if not isinstance(tag, str) or tag not in PROTOCOLS:
            return None
        config: type[BaseModel] = PROTOCOLS.get(tag).config
        return config
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _model_at(root: type[BaseModel], data: Any, path: PathT) -> tuple[Any, str | None]:
    """Walk ``path`` through the model types, following ``data`` to choose union members.

    Returns (type at the end of the path or None if the path goes into free-form options,
    error message if a key matches no field).
    """
    tp: Any = root
    cur = data
    for i, part in enumerate(path):
        options = _unwrap(tp)
        if isinstance(part, int):
            lists = [t for t in options if typing.get_origin(t) is list]
            if not lists:
                return None, f"{format_path(path[:i]) or 'the spec'} is not a list"
            tp = typing.get_args(lists[0])[0] if typing.get_args(lists[0]) else Any
            cur = cur[part] if isinstance(cur, list) and -len(cur) <= part < len(cur) else None
            continue
        model = _pick_model(options, cur)
        if model is None:
            if any(t is Any or t is dict or typing.get_origin(t) is dict for t in options):
                return None, None
            where = format_path(path[:i]) or "the spec"
            return None, f"{where} has no sub-keys (found key {part!r})"
        if part not in model.model_fields:
            if model.model_config.get("extra") == "allow":
                return None, None  # registered component options: checked by the component
            close = difflib.get_close_matches(str(part), _field_names(model), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = format_path(path[:i]) or "the spec"
            return None, (
                f"{where} has no field {part!r}{hint}; its fields are: "
                f"{', '.join(_field_names(model))}"
            )
        tp = model.model_fields[part].annotation
        cur = cur.get(part) if isinstance(cur, dict) else None
    return tp, None


# --------------------------------------------------------------------------------------------
# resolution


def _set_path(data: dict[str, Any], path: PathT, value: Any) -> None:
    """Set ``data[path] = value``, creating missing mappings; raise ValueError if impossible."""
    cur: Any = data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(part, int):
            if not isinstance(cur, list) or not -len(cur) <= part < len(cur):
                n = len(cur) if isinstance(cur, list) else 0
                raise ValueError(
                    f"{format_path(path[:i])} has {n} element(s) in the spec, no [{part}]"
                )
            holder, key = cur, part
        else:
            if not isinstance(cur, dict):
                raise ValueError(f"{format_path(path[:i])} is not a mapping")
            holder, key = cur, part
            if key not in holder or holder[key] is None:
                holder[key] = {} if not isinstance(nxt, int) else []
        child = holder[key]
        # the spec's shorthands: an activation/measurement given by name, a step size by number
        if isinstance(child, str) and not isinstance(nxt, int):
            child = holder[key] = {"name": child}
        elif isinstance(child, int | float) and not isinstance(child, bool):
            child = holder[key] = {"c": child}
        cur = child
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(cur, list) or not -len(cur) <= last < len(cur):
            raise ValueError(f"{format_path(path[:-1])} has no element [{last}] in the spec")
        cur[last] = copy.deepcopy(value)
    else:
        if not isinstance(cur, dict):
            raise ValueError(f"{format_path(path[:-1])} is not a mapping")
        cur[last] = copy.deepcopy(value)


def _fill_default_lists(root: type[BaseModel], data: dict[str, Any], path: PathT) -> None:
    """Where ``path`` indexes into a list that the spec leaves out, write the field's default
    list there, so that ``train.steps[0].eta.c`` can be swept without writing ``steps:`` (one
    step is the documented default, docs/spec.md). Elements are written by their non-default
    values only (``{}`` for a default step), so the resolved run is the same as if the user had
    written the default list out. Paths that do not lead to such a list are left alone; the
    caller reports them."""
    tp: Any = root
    cur: Any = data
    for i, part in enumerate(path[:-1]):
        options = _unwrap(tp)
        if isinstance(part, int):
            lists = [t for t in options if typing.get_origin(t) is list]
            if not lists or not isinstance(cur, list) or not -len(cur) <= part < len(cur):
                return
            tp, cur = (typing.get_args(lists[0]) or (Any,))[0], cur[part]
            continue
        model = _pick_model(options, cur)
        if model is None or not isinstance(cur, dict) or part not in model.model_fields:
            return
        field_ = model.model_fields[part]
        if cur.get(part) is None and isinstance(path[i + 1], int) and field_.default_factory:
            default = field_.get_default(call_default_factory=True)
            if not isinstance(default, list):
                return
            cur[part] = [
                x.model_dump(mode="json", exclude_defaults=True) if isinstance(x, BaseModel)
                else copy.deepcopy(x)
                for x in default
            ]
        tp, cur = field_.annotation, cur.get(part)


def _load_plugins(spec: Spec, source: str, node: yaml.Node | None) -> None:
    """Import the spec's plugin modules, so that their components are registered before the
    run sections are validated; a module that cannot be imported is a SpecError."""
    from twolayer.plugins import PluginError, load_plugins

    problems = []
    for i, name in enumerate(spec.plugins):
        try:
            load_plugins([name])
        except PluginError as exc:
            path = ("plugins", i)
            problems.append(Problem(format_path(path), str(exc), _line(node, path)))
    if problems:
        raise SpecError(problems, source)


def sweep_key_paths(spec: Spec, source: str, node: yaml.Node | None) -> dict[str, PathT]:
    """Each sweep and zip key parsed into its path in a RunConfig (plugins imported first);
    SpecError if a key matches no field."""
    _load_plugins(spec, source, node)
    base = spec.base_sections()
    problems: dict[tuple[str, str], Problem] = {}
    keys: dict[str, PathT] = {}
    for section in ("sweep", "zip"):
        for key in getattr(spec, section):
            try:
                path = parse_key(key)
            except ValueError as exc:
                problems[(key, "")] = Problem(f"{section}.{key}", str(exc), _line(node, (section,)))
                continue
            _, err = _model_at(RunConfig, base, path)
            if err is not None:
                msg = f"sweep key {key!r} matches no field: {err}"
                problems[(key, "")] = Problem(f"{section}.{key}", msg, _line(node, (section, key)))
            keys[key] = path
    if problems:
        raise SpecError(list(problems.values()), source)
    return keys


def point_data(base: dict[str, Any], keys: dict[str, PathT], point: dict[str, Any]
               ) -> dict[str, Any]:
    """The run sections of one sweep point: a copy of ``base`` (:meth:`Spec.base_sections`)
    with the point's values set (ValueError if one cannot be)."""
    data = copy.deepcopy(base)
    for key, value in point.items():
        _fill_default_lists(RunConfig, data, keys[key])
        _set_path(data, keys[key], value)
    return data


def _resolve(spec: Spec, source: str, node: yaml.Node | None) -> list[RunSpec]:
    keys = sweep_key_paths(spec, source, node)
    base = spec.base_sections()
    problems: dict[tuple[str, str], Problem] = {}
    runs: list[RunSpec] = []
    cache: dict[str, RunConfig] = {}
    # A problem not traced to one sweep key is the same text at every point it occurs at:
    # report it once, with the points (none named when it occurs at all of them).
    at_points: dict[Problem, list[dict[str, Any]]] = {}
    points = spec.points()
    for point in points:
        try:
            data = point_data(base, keys, point)
        except ValueError as exc:
            problems.setdefault(("sweep", str(exc)), Problem("sweep", f"cannot apply: {exc}"))
            continue
        text = json.dumps(data, sort_keys=True, default=repr)
        if text not in cache:
            try:
                cache[text] = RunConfig.model_validate(data)
            except ValidationError as exc:
                for p, from_key in _translate(exc, data, RunConfig, node, point, keys):
                    if from_key or not point:
                        problems.setdefault((p.path, p.message), p)
                    else:
                        at_points.setdefault(p, []).append(point)
                continue
            except Exception as exc:  # a component raised on odd input: still the user's input
                p = Problem("", f"invalid value ({type(exc).__name__}: {exc})")
                if point:
                    at_points.setdefault(p, []).append(point)
                else:
                    problems.setdefault(("", p.message), p)
                continue
        config = cache[text]
        runs.extend(RunSpec(config, seed, spec.name, dict(point)) for seed in spec.seed_range())
    for p, where in at_points.items():
        suffix = "" if len(where) == len(points) else f" ({_points_text(where)})"
        problems.setdefault((p.path, p.message + suffix), replace(p, message=p.message + suffix))
    if problems:
        raise SpecError(list(problems.values()), source)
    return runs


def _points_text(points: list[dict[str, Any]], shown: int = 3) -> str:
    """``sweep point a=1`` or ``sweep points a=1; a=2; and 5 more``."""
    if len(points) == 1:
        return f"sweep point {_point_text(points[0])}"
    listed = "; ".join(_point_text(p) for p in points[:shown])
    more = f"; and {len(points) - shown} more" if len(points) > shown else ""
    return f"sweep points {listed}{more}"


def _point_text(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


# --------------------------------------------------------------------------------------------
# pydantic errors -> Problems


def _clean_loc(loc: tuple[Any, ...], data: Any) -> PathT:
    """Drop pydantic's union tags and validator names from ``loc`` by following the data."""
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict):
            if part in cur:
                out.append(part)
                cur = cur[part]
            elif last or not isinstance(part, str) or not _looks_like_tag(part):
                out.append(part)
                cur = None
            continue
        if isinstance(cur, list) and isinstance(part, int):
            out.append(part)
            cur = cur[part] if -len(cur) <= part < len(cur) else None
            continue
        if isinstance(part, str) and _looks_like_tag(part) and not last and cur is not None:
            continue
        out.append(part)
        cur = None
    return tuple(out)


#: Tags pydantic puts in error locations besides the protocols' (the types of a union).
_TYPE_TAGS = frozenset({"str", "int", "float", "list", "dict", "bool"})


def _looks_like_tag(part: str) -> bool:
    return (
        part in _TYPE_TAGS
        or part in PROTOCOLS  # the train union's tags: the registered protocols (plugins too)
        or "[" in part
        or part.startswith(("function-", "constrained-", "lax-", "json-or-python"))
    )


def _get(data: Any, path: PathT) -> Any:
    cur = data
    for part in path:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and -len(cur) <= part < len(cur):
            cur = cur[part]
        else:
            return PydanticUndefined
    return cur


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _translate(
    exc: ValidationError,
    data: Any,
    root: type[BaseModel],
    node: yaml.Node | None,
    point: dict[str, Any] | None = None,
    keys: dict[str, PathT] | None = None,
) -> list[tuple[Problem, bool]]:
    """Problems of a pydantic error, each with whether it was traced to one of the sweep
    ``keys`` (its message then names the key and the value of ``point``)."""
    problems: list[tuple[Problem, bool]] = []
    for err in exc.errors():
        path = _clean_loc(tuple(err["loc"]), data)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        value = err.get("input")
        msg = str(err["msg"])
        if kind == "extra_forbidden":
            parent_tp, _ = _model_at(root, data, path[:-1])
            model = _pick_model(_unwrap(parent_tp), _get(data, path[:-1])) if parent_tp else None
            fields = _field_names(model) if model else []
            close = difflib.get_close_matches(str(path[-1]), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = f"; expected one of: {', '.join(fields)}" if fields else ""
            message = f"unknown key {path[-1]!r}{hint}{allowed}"
        elif kind == "missing":
            tp, _ = _model_at(root, data, path[:-1])
            model = _pick_model(_unwrap(tp), _get(data, path[:-1])) if tp else None
            info: FieldInfo | None = model.model_fields.get(str(path[-1])) if model else None
            what = f" ({info.description})" if info is not None and info.description else ""
            message = f"required key is missing{what}"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            disc = str(ctx.get("discriminator", "'protocol'")).strip("'")
            registered = ", ".join(repr(name) for name in PROTOCOLS.names())
            expected = str(ctx.get("expected_tags", registered))
            path = (*path, disc)
            tag = ctx.get("tag")
            if tag is None:
                message = f"required key is missing; expected one of {expected}"
            else:
                message = f"got {tag!r}; expected one of {expected}{_did_you_mean(tag, expected)}"
        elif kind == "value_error":
            text = msg.removeprefix("Value error, ")
            if not path:  # a whole-config check naming its key: "measure[2]: ..."
                path, text = _named_path(text, data)
                value = _get(data, path) if path else value
            path = _refine_value_path(path, value, text)
            message = text
        else:
            expected = msg.removeprefix("Input should be ").removeprefix("Value should be ")
            hint = ""
            if kind == "literal_error" and isinstance(value, str):
                hint = _did_you_mean(value, str(ctx.get("expected", "")))
            message = f"got {_short(value)}; expected {expected}{hint}"
        from_sweep = ""
        # a whole-config error (empty path) is not traced to any one key
        for key, kp in (keys or {}).items() if point and path else ():
            if tuple(path[: len(kp)]) == kp or tuple(kp[: len(path)]) == tuple(path):
                from_sweep = f" (from sweep key {key!r} = {_short(point[key])})"
                break
        problems.append(
            (Problem(format_path(path), message + from_sweep, _line(node, path)), bool(from_sweep))
        )
    return problems


def _did_you_mean(value: Any, expected: str) -> str:
    options = re.findall(r"'([^']*)'", expected)
    close = difflib.get_close_matches(str(value), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _named_path(text: str, data: Any) -> tuple[PathT, str]:
    """``(path, rest)`` when ``text`` starts with a key path present in ``data`` and a colon
    (``"measure[2]: loss 'square' is not Lipschitz"``), else ``((), text)``."""
    m = re.match(r"([A-Za-z_][\w.\[\]]*): (.*)", text, re.S)
    if m:
        try:
            path = parse_key(m.group(1))
        except ValueError:
            return (), text
        if _get(data, path) is not PydanticUndefined:
            return path, m.group(2)
    return (), text


def _refine_value_path(path: PathT, value: Any, text: str) -> PathT:
    """Point a component's ValueError at the option it names (``teacher.label_noise``)."""
    if not isinstance(value, dict) or not path:
        return path
    m = re.search(r"has no option '([^']+)'", text)
    if m and m.group(1) in value:
        return (*path, m.group(1))
    for key in value:
        if key != "name" and isinstance(key, str) and re.search(rf"\b{re.escape(key)}\b", text):
            return (*path, key)
    if "name" in value and f"{value['name']!r}" in text and text.startswith("unknown"):
        return (*path, "name")
    return path


def _line(node: yaml.Node | None, path: typing.Sequence[str | int]) -> int | None:
    """1-based line of the deepest node of ``path`` found in the YAML node tree."""
    if node is None:
        return None
    line = None
    cur: Any = node
    for part in path:
        if isinstance(cur, yaml.MappingNode):
            for key_node, value_node in cur.value:
                if getattr(key_node, "value", None) == str(part):
                    line = key_node.start_mark.line + 1
                    cur = value_node
                    break
            else:
                return line
        elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int):
            if not -len(cur.value) <= part < len(cur.value):
                return line
            cur = cur.value[part]
            line = cur.start_mark.line + 1
        else:
            return line
    return line
