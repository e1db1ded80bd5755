"""report.html in a real browser (headless Chromium; skipped where none is installed): every
figure loads and is shown at its printed width, and the claims table has one complete row per
claim."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from twolayer import plots
from twolayer.recipes.base import Claim
from twolayer.recipes.reproduce import ReproduceResult, natural_width, write_summary

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Appended to a copy of the report: after load, write into the DOM how many images are broken
#: (not complete, or no pixels) and each image's natural and shown width, for --dump-dom.
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.dataset.widths = imgs.map(i => i.getBoundingClientRect().width).join(',');
});
</script>"""


def _browser() -> str | None:
    return next((path for b in BROWSERS if (path := shutil.which(b))), None)


def _claims() -> list[Claim]:
    return [
        Claim("edge", "top singular value at the MP edge", 2.41, "2.414", "± 0.05", True),
        Claim("order", "readout beats random features", 0.08, "RF 0.18", "< 0.18", True,
              kind="ordering"),
        Claim("bound", "gap below the bound", 0.3, "0.5", "<= 0.5", False, kind="bound",
              slack=0.4),
    ]


def _result(folder: Path) -> ReproduceResult:
    written = []
    for stem, ncols in (("one_panel", 1), ("three_panels", 3)):
        with plots.style():
            fig, axes = plots.figure(ncols)
            for ax in [axes] if ncols == 1 else axes[0]:
                ax.plot([0, 1], [1, 2], label="line")
                ax.set_xlabel("step size eta / sqrt(N)")
            written.append(plots.save(fig, folder, stem))
    return ReproduceResult(
        "demo", True, folder, claims=_claims(), figures=written, seconds=12.5,
        counts={"done": 28, "diverged": 2}, run_seconds=40.0,
        spec={"name": "demo", "seeds": 2, "teacher": {"name": "single_index", "d": 20}},
    )


class _Table(HTMLParser):
    """Rows of <table id="claims"> as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._in = dict(attrs).get("id") == "claims"
        elif self._in and tag == "tr":
            self.rows.append([])
        elif self._in and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif self._in and tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_report_text_gives_counts_in_words_versions_spec_and_times(tmp_path):
    result = _result(tmp_path)
    write_summary(result, "a demo recipe", "Someone (2024)")
    page = (tmp_path / "report.html").read_text()
    assert "30 runs: 28 done, 2 diverged" in page and "{'done'" not in page
    assert re.search(r"twolayer \S+( \(git [^)]*\))?, numpy \S+, scipy \S+", page)
    assert "40.0 s of compute" in page and "12.5 s wall time" in page
    assert "single_index" in page and (tmp_path / "spec.yaml").exists()
    summary = (tmp_path / "summary.md").read_text()
    assert "30 runs: 28 done, 2 diverged" in summary
    # figures at their printed width: 3.25 in and 6.75 in at 96 CSS pixels per inch
    widths = [natural_width(p) for p in result.figures]
    assert widths == [312, 648]
    assert f"width='{widths[0]}'" in page


@pytest.mark.skipif(_browser() is None, reason="no Chromium or Chrome installed")
def test_report_renders_in_headless_chromium(tmp_path):
    result = _result(tmp_path)
    write_summary(result, "a demo recipe", "Someone (2024)")
    probe = tmp_path / "probe.html"
    probe.write_text((tmp_path / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    # a figure that is missing must show up as broken: the check can fail
    broken = tmp_path / "broken.html"
    broken.write_text(probe.read_text().replace("one_panel.png", "missing.png"))

    def render(page: Path) -> str:
        out = subprocess.run(
            [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--window-size=1400,1000", "--virtual-time-budget=5000",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    dom = render(probe)
    assert 'data-images="2"' in dom and 'data-broken="0"' in dom, dom[:500]
    shown = [float(w) for w in re.search(r'data-widths="([^"]*)"', dom).group(1).split(",")]
    expected = [natural_width(p) for p in result.figures]
    assert shown == pytest.approx(expected, abs=1.0)  # natural width, not scaled
    table = _Table()
    table.feed(dom)
    header, *rows = table.rows
    assert header == ["claim", "statement", "kind", "measured", "expected", "tolerance",
                      "result"]
    assert len(rows) == len(result.claims)
    assert all(len(r) == len(header) and all(r) for r in rows)
    assert [r[0] for r in rows] == [c.id for c in result.claims]
    assert [r[-1] for r in rows] == ["pass", "pass", "FAIL"]
    assert 'data-broken="1"' in render(broken)
