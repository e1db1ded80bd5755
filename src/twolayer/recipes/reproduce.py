"""``twolayer reproduce``: run a recipe through the engine, check its claims, draw its figures and
write a summary table and an HTML report."""

from __future__ import annotations

import html
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from twolayer.experiment import Progress, load, load_spec, run_spec
from twolayer.recipes.base import Claim, RecipeData


@dataclass
class ReproduceResult:
    """What one ``reproduce`` produced.

    Attributes
    ----------
    name : str
    quick : bool
    out : Path
        Folder holding results.sqlite, claims.csv, summary.md, report.html and the figures.
    claims : list of Claim
    figures : list of Path
    seconds : float
        Wall time of the whole reproduction (runs, claims, figures).
    counts : dict
        Runs by status.
    errors : list of str
        Problems met while checking claims or drawing figures (each also fails the recipe).
    """

    name: str
    quick: bool
    out: Path
    claims: list[Claim] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.claims) and all(c.passed for c in self.claims) and not self.errors

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([c.as_row() for c in self.claims])


def output_folder(
    name: str, quick: bool, out: str | Path | None, seeds: int | None = None
) -> Path:
    """``OUT/NAME`` (``OUT/NAME-quick`` in quick mode, ``-seedsSTART`` with fresh seeds); OUT
    defaults to ./twolayer-out."""
    base = Path(out) if out is not None else Path("twolayer-out")
    folder = f"{name}-quick" if quick else name
    return base / (folder if seeds is None else f"{folder}-seeds{seeds}")


def with_seeds(spec: dict[str, Any], start: int) -> dict[str, Any]:
    """The recipe's spec on as many seeds as it has, numbered from ``start`` (fresh seeds, to
    check claims on seeds that were not used to set them)."""
    if start < 0:
        raise ValueError(f"seeds must start at a non-negative integer, got {start}")
    seeds = spec.get("seeds", 1)
    count = len(seeds) if isinstance(seeds, list) else int(seeds)
    return {**spec, "seeds": list(range(start, start + count))}


def reproduce(
    name: str,
    *,
    quick: bool = False,
    out: str | Path | None = None,
    executor: str | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
    seeds: int | None = None,
) -> ReproduceResult:
    """Re-create a recipe: run (or resume) its sweep, check its claims, draw its figures.

    Parameters
    ----------
    name : str
        A registered recipe (``twolayer recipes`` lists them).
    quick : bool
        Run the small, fast version (the one the test suite asserts).
    out : path, optional
        Parent folder of the outputs (default ./twolayer-out).
    executor, jobs : optional
        Engine executor ("serial", "local", "dask") and number of workers.
    seeds : int, optional
        Run on as many seeds as the recipe has, numbered from this one (fresh seeds: the
        recipe's own are those its tolerances were set on); outputs go to NAME[-quick]-seedsN.

    Returns
    -------
    ReproduceResult
    """
    from twolayer.recipes import RECIPES

    recipe = RECIPES.get(name)
    started = time.perf_counter()
    folder = output_folder(name, quick, out, seeds)
    folder.mkdir(parents=True, exist_ok=True)
    spec_dict = recipe.spec(quick)
    if seeds is not None:
        spec_dict = with_seeds(spec_dict, seeds)
    spec = load_spec(spec_dict)
    store = folder / "results.sqlite"
    run_spec(spec, store=store, executor=executor, jobs=jobs, progress=progress)
    frame = load(store, sweep=spec.name)
    counts = {str(k): int(v) for k, v in frame["status"].value_counts().items()}
    result = ReproduceResult(name, quick, folder, counts=counts)
    data = RecipeData(frame, store, quick, spec_dict)
    try:
        result.claims = recipe.claims(data)
    except Exception:  # a broken claim must not hide the others' output
        result.errors.append("claims: " + traceback.format_exc())
    try:
        result.figures = recipe.figures(data, folder)
    except Exception:
        result.errors.append("figures: " + traceback.format_exc())
    result.seconds = time.perf_counter() - started
    write_summary(result, recipe.title, recipe.paper)
    return result


def write_summary(result: ReproduceResult, title: str, paper: str) -> None:
    """claims.csv, summary.md and report.html in the result's folder."""
    table = result.table()
    table.to_csv(result.out / "claims.csv", index=False)
    mode = "quick" if result.quick else "full"
    lines = [
        f"# {result.name} ({mode})",
        "",
        title,
        "",
        f"Paper: {paper}",
        "",
        f"Runs: {result.counts}; wall time {result.seconds:.1f} s.",
        "",
        "| claim | kind | measured | expected | tolerance | pass |",
        "|---|---|---|---|---|---|",
    ]
    for c in result.claims:
        slack = f" (slack {c.slack:.2g})" if c.slack is not None else ""
        lines.append(
            f"| {c.id}: {c.statement} | {c.kind} | {c.measured:.4g} | {c.expected} | "
            f"{c.tolerance}{slack} | {'yes' if c.passed else 'NO'} |"
        )
    for err in result.errors:
        lines += ["", "```", err.strip(), "```"]
    (result.out / "summary.md").write_text("\n".join(lines) + "\n")
    (result.out / "report.html").write_text(render_html(result, title, paper))


def render_html(result: ReproduceResult, title: str, paper: str) -> str:
    esc = html.escape
    rows = "\n".join(
        f"<tr class='{'ok' if c.passed else 'fail'}'><td>{esc(c.id)}</td>"
        f"<td>{esc(c.statement)}</td><td>{c.measured:.4g}</td><td>{esc(c.expected)}</td>"
        f"<td>{esc(c.tolerance)}</td><td>{'pass' if c.passed else 'FAIL'}</td></tr>"
        for c in result.claims
    )
    figures = "\n".join(
        f"<figure><img src='{esc(p.name)}' alt='{esc(p.stem)}'>"
        f"<figcaption>{esc(p.stem)} (<a href='{esc(p.with_suffix('.pdf').name)}'>PDF</a>)"
        f"</figcaption></figure>"
        for p in result.figures
    )
    errors = "".join(f"<pre class='fail'>{esc(e)}</pre>" for e in result.errors)
    mode = "quick" if result.quick else "full"
    verdict = "all claims hold" if result.passed else "some claims FAIL"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(result.name)} — twolayer</title>
<style>
body {{ font-family: sans-serif; max-width: 70em; margin: 2em auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #bbb; padding: 0.3em 0.6em; }}
tr.ok td:last-child {{ color: #060; }} tr.fail td:last-child, .fail {{ color: #a00; }}
figure {{ display: inline-block; margin: 1em; }} img {{ max-width: 32em; }}
</style></head><body>
<h1>{esc(result.name)} <small>({mode} mode)</small></h1>
<p>{esc(title)}</p><p><b>Paper:</b> {esc(paper)}</p>
<p><b>Runs:</b> {esc(str(result.counts))}; wall time {result.seconds:.1f} s; <b>{verdict}</b>.</p>
<table><tr><th>claim</th><th>statement</th><th>measured</th><th>expected</th>
<th>tolerance</th><th>result</th></tr>
{rows}
</table>
{errors}
{figures}
</body></html>
"""
