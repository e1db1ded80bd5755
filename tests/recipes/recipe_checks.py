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
