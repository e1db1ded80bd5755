"""What every calibration script here starts from: the results stores of a recipe's runs on
calibration seeds, read as the recipe's claims read them."""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable

from twolayer.experiment.results import load
from twolayer.recipes import RECIPES
from twolayer.recipes.base import RecipeData


def calibration_data(name: str, mode: str, pattern: str) -> list[RecipeData]:
    """One RecipeData per results store matching the glob ``pattern`` (sorted), for recipe
    ``name`` in ``mode`` ("quick" or "full"); exits with a message when nothing matches."""
    quick = mode == "quick"
    spec = RECIPES.get(name).spec(quick=quick)
    stores = sorted(glob.glob(pattern))
    if not stores:
        raise SystemExit(f"no store matches {pattern!r}")
    return [RecipeData(frame=load(store), store=store, quick=quick, spec=spec) for store in stores]


def run_from_command_line(main: Callable[[str, str], None], usage: str) -> None:
    """Call ``main(mode, pattern)`` with the two command-line arguments MODE ("quick" or "full")
    and the stores' glob; exit with ``usage`` otherwise."""
    if len(sys.argv) != 3 or sys.argv[1] not in ("quick", "full"):
        raise SystemExit(usage)
    main(sys.argv[1], sys.argv[2])
