"""Shared check of a recipe's quick mode (imported by the test_recipe_*.py files)."""

from pathlib import Path

from twolayer.recipes.reproduce import ReproduceResult, reproduce


def check_quick_mode(
    name: str, out: Path, *, figures: int | None = None, seeds: int | None = None
) -> ReproduceResult:
    """Run NAME's quick mode into ``out`` (serially: pytest-xdist already uses the cores) and
    assert that every claim holds and that the report and every figure (PNG + PDF) exist.
    ``seeds``: run on fresh seeds numbered from this one (not the calibration seeds)."""
    result = reproduce(name, quick=True, out=out, jobs=1, seeds=seeds)
    assert not result.errors, result.errors
    assert result.passed, result.table().to_string()
    assert (result.out / "report.html").exists()
    assert result.figures
    if figures is not None:
        assert len(result.figures) == figures
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
    return result


def check_calibrated_quantities_are_the_claims(
    result: ReproduceResult, name: str, claim_of: dict[str, tuple[str, float]]
) -> None:
    """The per-seed deviations a recipe's calibration measures (``finite_size_deviations``, used
    by scripts/calibration/finite_terms.py) are the quantities its claims compare: for each
    calibrated key -> (claim id, prediction) in ``claim_of``, the mean deviation over the seeds
    equals the claim's measured value minus the prediction."""
    import importlib

    import pytest

    from twolayer.experiment.results import load
    from twolayer.recipes import RECIPES
    from twolayer.recipes.base import RecipeData

    store = result.out / "results.sqlite"
    data = RecipeData(frame=load(store), store=store, quick=True,
                      spec=RECIPES.get(name).spec(quick=True))
    module = importlib.import_module(f"twolayer.recipes.{name.replace('-', '_')}")
    deviations = module.finite_size_deviations(data)
    measured = {c.id: c.measured for c in result.claims}
    for key, (claim_id, prediction) in claim_of.items():
        assert deviations[key].mean() == pytest.approx(measured[claim_id] - prediction,
                                                       abs=1e-12), key
