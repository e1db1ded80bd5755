"""What a recipe is: a shipped spec, its quick-mode overrides, its claims and its figures.

A recipe lives in two files of this package: ``NAME.yaml`` (the engine spec under ``spec:`` and
the quick-mode overrides under ``quick:``, dotted keys -> values) and a Python module that
registers a :class:`Recipe` whose ``claims`` and ``figures`` read the stored results.
A claim names a measured quantity, how it is computed from the results, what it is compared to
(a theory prediction, another configuration, a constant) and the tolerance.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from twolayer.experiment import load_arrays, load_trajectory, parse_key
from twolayer.experiment.paths import set_path
from twolayer.plots import mean_and_sem

#: The kinds of claim (docs/recipes/README.md, "The claim standard"): an ``equality`` with a
#: prediction at a statistical tolerance (the default); an ``ordering`` only where the paper
#: itself states only an ordering; a ``bound``, reported with its slack.
CLAIM_KINDS = ("equality", "ordering", "bound")


@dataclass(frozen=True)
class Claim:
    """One checked statement of a recipe.

    Attributes
    ----------
    id : str
        Short identifier ("outlier-location").
    statement : str
        What is claimed, in words.
    measured : float
        The measured quantity.
    expected : str
        What it is compared to (a number or a description with a number).
    tolerance : str
        The allowed deviation, in words ("abs 0.05", "< 0.5").
    passed : bool
    kind : {"equality", "ordering", "bound"}
    source : str
        Where the prediction comes from, independent of the run's measured quantities (a
        closed form, a theory function evaluated from the spec, a number of the paper).
    derivation : str
        How the tolerance was derived (k standard errors over seeds, a finite-size term measured
        on a separate size sweep, ...), and on which seeds it was calibrated.
    slack : float or None
        For a bound: ``(bound - measured) / |bound|``, how far inside the bound (negative:
        outside).
    """

    id: str
    statement: str
    measured: float
    expected: str
    tolerance: str
    passed: bool
    kind: str = "equality"
    source: str = ""
    derivation: str = ""
    slack: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in CLAIM_KINDS:
            raise ValueError(f"claim {self.id!r}: kind must be one of {CLAIM_KINDS}")

    def as_row(self) -> dict[str, Any]:
        return {
            "claim": self.id,
            "kind": self.kind,
            "statement": self.statement,
            "measured": self.measured,
            "expected": self.expected,
            "tolerance": self.tolerance,
            "pass": self.passed,
            "source": self.source,
            "derivation": self.derivation,
            "slack": self.slack,
        }


def _fmt(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float | int | np.floating) else str(x)


def claim_close(
    id: str, statement: str, measured: float, expected: float, *, atol: float = 0.0,
    rtol: float = 0.0, kind: str = "equality", source: str = "", derivation: str = "",
) -> Claim:
    """|measured - expected| <= atol + rtol |expected| (an equality by default)."""
    bound = atol + rtol * abs(expected)
    ok = bool(np.isfinite(measured) and abs(measured - expected) <= bound)
    parts = [f"abs {atol:g}"] if atol else []
    parts += [f"rel {rtol:g}"] if rtol else []
    return Claim(id, statement, float(measured), _fmt(expected), " + ".join(parts), ok, kind,
                 source, derivation)


def _slack(measured: float, bound: float, sign: float) -> float | None:
    if not (np.isfinite(measured) and np.isfinite(bound)) or bound == 0:
        return None
    return float(sign * (bound - measured) / abs(bound))


def claim_less(
    id: str, statement: str, measured: float, bound: float, what: str = "", *,
    kind: str = "bound", source: str = "", derivation: str = "",
) -> Claim:
    """measured < bound (``what`` describes the bound); a bound by default, with its slack."""
    ok = bool(np.isfinite(measured) and measured < bound)
    return Claim(id, statement, float(measured), what or _fmt(bound), f"< {_fmt(bound)}", ok,
                 kind, source, derivation, _slack(measured, bound, 1.0))


def claim_greater(
    id: str, statement: str, measured: float, bound: float, what: str = "", *,
    kind: str = "bound", source: str = "", derivation: str = "",
) -> Claim:
    """measured > bound (``what`` describes the bound); a bound by default, with its slack."""
    ok = bool(np.isfinite(measured) and measured > bound)
    return Claim(id, statement, float(measured), what or _fmt(bound), f"> {_fmt(bound)}", ok,
                 kind, source, derivation, _slack(measured, bound, -1.0))


def claim_true(id: str, statement: str, measured: float, ok: bool, expected: str,
               tolerance: str = "exact", *, kind: str = "equality", source: str = "",
               derivation: str = "") -> Claim:
    """A claim whose test is computed by the recipe (``ok``)."""
    return Claim(id, statement, float(measured), expected, tolerance, bool(ok), kind, source,
                 derivation)


@dataclass
class RecipeData:
    """The stored results of a recipe run, with helpers to aggregate over seeds.

    Attributes
    ----------
    frame : DataFrame
        One row per run (``twolayer.load``), restricted to the recipe's sweep.
    store : Path
    quick : bool
    spec : dict
        The engine spec that was run (after quick overrides).
    """

    frame: pd.DataFrame
    store: Path
    quick: bool
    spec: dict[str, Any]

    @property
    def done(self) -> pd.DataFrame:
        return self.frame[self.frame["status"] == "done"]

    def arrays(self, run_id: str) -> dict[str, np.ndarray]:
        return load_arrays(self.store, run_id)

    def trajectory(self, run_id: str) -> pd.DataFrame:
        return load_trajectory(self.store, run_id)

    def over_seeds(self, by: str | Sequence[str], column: str) -> pd.DataFrame:
        """Mean, standard error and count of ``column`` over seeds, grouped by ``by``.

        Returns a DataFrame indexed by ``by`` with columns mean, sem, count (sem = 0 for one
        seed).
        """
        return mean_and_sem(self.done, by, column)

    def select(self, **equal: Any) -> pd.DataFrame:
        """Done runs whose dotted config columns equal the given values (keys use ``__`` for
        ``.``, e.g. ``train__n=400``) ."""
        frame = self.done
        for key, value in equal.items():
            column = key.replace("__", ".")
            if isinstance(value, float):
                frame = frame[np.isclose(frame[column].astype(float), value)]
            else:
                frame = frame[frame[column] == value]
        return frame


ClaimsFn = Callable[[RecipeData], list[Claim]]
FiguresFn = Callable[[RecipeData, Path], list[Path]]


@dataclass(frozen=True)
class Recipe:
    """A phenomenon of the literature that ``twolayer reproduce NAME`` re-creates.

    Attributes
    ----------
    name : str
    title : str
        One line for ``twolayer recipes``.
    paper : str
        The paper(s) the phenomenon comes from.
    claims : callable
        ``claims(data) -> list[Claim]``.
    figures : callable
        ``figures(data, out_dir) -> list of written PNG paths`` (a PDF beside each).
    spec_file : str
        YAML file of this package holding ``spec`` and ``quick``; default ``NAME.yaml``.
    """

    name: str
    title: str
    paper: str
    claims: ClaimsFn
    figures: FiguresFn
    spec_file: str = ""

    def document(self) -> dict[str, Any]:
        """The recipe's YAML document (``spec``, ``quick``, ``notes``)."""
        filename = self.spec_file or f"{self.name}.yaml"
        text = resources.files("twolayer.recipes").joinpath(filename).read_text()
        return yaml.safe_load(text)

    def spec(self, quick: bool = False) -> dict[str, Any]:
        """The engine spec of the full run, or of the quick run (overrides applied)."""
        doc = self.document()
        spec = copy.deepcopy(doc["spec"])
        spec.setdefault("name", self.name)
        if quick:
            for key, value in (doc.get("quick") or {}).items():
                set_dotted(spec, key, value)
        return spec


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b][0][c] = value`` for the dotted key ``a.b[0].c`` (top-level keys such as
    ``sweep.'train.n'`` are written ``sweep/train.n`` to keep the sweep key whole)."""
    if "/" in key:
        head, tail = key.split("/", 1)
        data.setdefault(head, {})[tail] = copy.deepcopy(value)
        return
    set_path(data, parse_key(key), value)  # strict: every key on the way exists in the spec


def finite_mean(values: Sequence[float]) -> float:
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan
