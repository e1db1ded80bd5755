"""``twolayer reproduce``: run a recipe through the engine, check its claims, draw its figures and
write a summary table and an HTML report."""

from __future__ import annotations

import html
import struct
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
    run_seconds : float
        Sum of the wall times of the sweep's stored runs (as each run measured itself; runs
        stored by an earlier reproduction count too, though they were not run again).
    spec : dict
        The spec that was run (the recipe's, with fresh seeds where asked).
    errors : list of str
        Problems met while checking claims or drawing figures (each also fails the recipe).
    versions : list of str
        The twolayer and dependency versions that computed the runs: one line per distinct
        provenance with its number of runs (docs/engine.md, "Provenance").
    """

    name: str
    quick: bool
    out: Path
    claims: list[Claim] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    run_seconds: float = 0.0
    spec: dict[str, Any] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)

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
    result = ReproduceResult(name, quick, folder, counts=counts, spec=spec_dict,
                             run_seconds=float(frame["wall_s"].fillna(0.0).sum()))
    result.versions = run_versions(store, spec.name)
    data = RecipeData(frame, store, quick, spec_dict)
    try:
        result.claims = recipe.claims(data)
    except Exception:  # a broken claim must not hide the others' output
        result.errors.append("claims: " + traceback.format_exc())
    try:
        from twolayer import plots

        with plots.style():  # a paper's sizes: 8 pt text (docs/cli.md, "Figures")
            result.figures = recipe.figures(data, folder)
    except Exception:
        result.errors.append("figures: " + traceback.format_exc())
    result.seconds = time.perf_counter() - started
    write_summary(result, recipe.title, recipe.paper)
    return result


def run_versions(store: Path, sweep: str) -> list[str]:
    """``12 runs: twolayer 0.1.0 (git ...), numpy 2.1.0, ...`` per distinct provenance of the
    sweep's done and diverged runs."""
    from twolayer.experiment.provenance import describe
    from twolayer.experiment.store import Store

    with Store(store, create=False) as st:
        return [f"{n} runs: {describe(p)}" for p, n in st.provenance_counts(sweep)]


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
        f"Runs: {counts_text(result.counts)}; {times_text(result)}",
        "",
        "Computed with:",
        "",
        *(f"- {v}" for v in result.versions),
        f"- report written with {library_versions()}",
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
    if result.spec:
        (result.out / "spec.yaml").write_text(_spec_yaml(result.spec))
    (result.out / "report.html").write_text(render_html(result, title, paper))


#: Statuses in the order a report names them, and the word for each.
STATUS_WORDS = (("done", "done"), ("diverged", "diverged"), ("failed", "failed"),
                ("running", "lost or still running"))


def counts_text(counts: dict[str, int]) -> str:
    """``30 runs: 28 done, 2 diverged`` (statuses with no run left out)."""
    total = sum(counts.values())
    known = dict(STATUS_WORDS)
    parts = [f"{counts[s]} {w}" for s, w in STATUS_WORDS if counts.get(s)]
    parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in known and n]
    return f"{total} run{'s' if total != 1 else ''}" + (f": {', '.join(parts)}" if parts else "")


def times_text(result: ReproduceResult) -> str:
    """The runs' own compute time and the reproduction's wall time, in words."""
    return (f"the runs took {result.run_seconds:.1f} s of compute in total (each run's own wall "
            f"time, summed); this reproduction took {result.seconds:.1f} s wall time (runs "
            "already in the store are not run again).")


def _spec_yaml(spec: dict[str, Any]) -> str:
    import json

    import yaml

    # through JSON: tuples become lists, so that the file is plain YAML any loader reads
    return yaml.safe_dump(json.loads(json.dumps(spec)), sort_keys=False)


def library_versions() -> str:
    """``twolayer 0.1.0 (git 1a2b3c4d5e), numpy 2.1.0, scipy 1.14.1, python 3.11.9, matplotlib
    3.9.2``: the versions of the process that writes the report (the provenance module's
    description of this environment, plus matplotlib, which draws the figures)."""
    from importlib import metadata

    from twolayer.experiment.provenance import describe, environment

    try:
        drawing = f"matplotlib {metadata.version('matplotlib')}"
    except metadata.PackageNotFoundError:
        drawing = "matplotlib (not installed)"
    return f"{describe(environment(), ('numpy', 'scipy', 'python'))}, {drawing}"


#: The resolution figures are saved at (twolayer.plots.save): a PNG shown at its natural width is
#: its pixel width / this * 96 CSS pixels.
ASSUMED_DPI = 300.0


def natural_width(png: Path) -> int | None:
    """The width in CSS pixels (96 per inch) at which ``png`` has its printed size: pixels over
    the resolution of its pHYs chunk (dots per metre), else over :data:`ASSUMED_DPI`. None if
    the file is not a readable PNG."""
    try:
        data = png.read_bytes()
    except OSError:
        return None
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width = struct.unpack(">I", data[16:20])[0]
    dpi = ASSUMED_DPI
    at = data.find(b"pHYs")
    if at > 0:
        per_metre, _, unit = struct.unpack(">IIB", data[at + 4:at + 13])
        if unit == 1 and per_metre > 0:
            dpi = per_metre * 0.0254
    return round(width / dpi * 96)


def render_html(result: ReproduceResult, title: str, paper: str) -> str:
    """report.html: the verdict, run counts in words, times, versions, the spec, the claims
    table (one row per claim) and the figures at their printed width (:func:`natural_width`),
    each with a link to its PDF."""
    esc = html.escape
    rows = "\n".join(
        f"<tr class='{'ok' if c.passed else 'fail'}'><td>{esc(c.id)}</td>"
        f"<td>{esc(c.statement)}</td><td>{esc(c.kind)}</td><td>{c.measured:.4g}</td>"
        f"<td>{esc(c.expected)}</td><td>{esc(c.tolerance)}</td>"
        f"<td>{'pass' if c.passed else 'FAIL'}</td></tr>"
        for c in result.claims
    )

    def img(p: Path) -> str:
        width = natural_width(p)
        size = f" width='{width}'" if width else ""
        return f"<img src='{esc(p.name)}' alt='{esc(p.stem)}'{size}>"

    figures = "\n".join(
        f"<figure>{img(p)}"
        f"<figcaption>{esc(p.stem)} (<a href='{esc(p.with_suffix('.pdf').name)}'>PDF</a>)"
        f"</figcaption></figure>"
        for p in result.figures
    )
    spec = (f"<details><summary>spec (<a href='spec.yaml'>spec.yaml</a>)</summary>"
            f"<pre>{esc(_spec_yaml(result.spec))}</pre></details>") if result.spec else ""
    errors = "".join(f"<pre class='fail'>{esc(e)}</pre>" for e in result.errors)
    mode = "quick" if result.quick else "full"
    verdict = "all claims hold" if result.passed else "some claims FAIL"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(result.name)} — twolayer</title>
<style>
body {{ font-family: sans-serif; max-width: 70em; margin: 2em auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #bbb; padding: 0.3em 0.6em; }}
tr.ok td:last-child {{ color: #060; }} tr.fail td:last-child, .fail {{ color: #a00; }}
figure {{ display: inline-block; margin: 1em; vertical-align: top; }}
img {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>{esc(result.name)} <small>({mode} mode)</small></h1>
<p>{esc(title)}</p><p><b>Paper:</b> {esc(paper)}</p>
<p><b>Runs:</b> {esc(counts_text(result.counts))}; <b>{verdict}</b>.</p>
<p><b>Time:</b> {esc(times_text(result))}</p>
<p><b>Computed with:</b> {"<br>".join(esc(v) for v in result.versions) or "(not recorded)"}</p>
<p><b>Report written with:</b> {esc(library_versions())}</p>
{spec}
<table id="claims"><tr><th>claim</th><th>statement</th><th>kind</th><th>measured</th>
<th>expected</th><th>tolerance</th><th>result</th></tr>
{rows}
</table>
{errors}
{figures}
</body></html>
"""
