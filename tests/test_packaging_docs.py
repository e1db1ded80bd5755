"""The documentation site's sources stay complete without building it (CI builds it after the
tests, docs/conf.py): every Markdown page of docs/ is in a toctree, the API reference covers every
public subpackage, and every gallery script has the title sphinx-gallery needs."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

import twolayer

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = ("_build", "auto_examples", "api/generated", "_templates")


def _pages() -> set[str]:
    return {
        p.relative_to(DOCS).with_suffix("").as_posix()
        for p in DOCS.rglob("*.md")
        if not any(p.relative_to(DOCS).as_posix().startswith(g) for g in GENERATED)
    }


def _toctree_entries(page: Path, pages: set[str] | None = None) -> set[str]:
    """The documents a page's toctrees list (``:glob:`` patterns matched against ``pages``)."""
    entries = set()
    for block in re.findall(r"```\{toctree\}\n(.*?)```", page.read_text(), re.S):
        glob = ":glob:" in block
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith(":"):
                continue
            name = (page.parent / line).relative_to(DOCS).as_posix()
            if glob and pages is not None and any(c in name for c in "*?["):
                entries |= {p for p in pages if fnmatch.fnmatch(p, name)}
            else:
                entries.add(name)
    return entries


def test_every_markdown_page_is_in_a_toctree() -> None:
    pages = _pages()
    listed = set()
    for page in pages:
        listed |= _toctree_entries(DOCS / f"{page}.md", pages)
    missing = pages - listed - {"index"}
    assert not missing, f"pages in no toctree (Sphinx -W fails; docs/user-guide.md): {missing}"
    # the generated pages and the gallery are listed too
    assert "auto_examples/index" in listed and "api/index" in listed


def _api_packages() -> list[str]:
    tree = ast.parse((DOCS / "conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "API_PACKAGES" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("docs/conf.py defines no API_PACKAGES")


def test_the_api_reference_covers_every_public_subpackage() -> None:
    packages = _api_packages()
    expected = {"twolayer"} | {f"twolayer.{name}" for name in twolayer._SUBPACKAGES}
    missing = expected - set(packages)
    assert not missing, f"not in docs/conf.py API_PACKAGES: {missing}"
    listed = _toctree_entries(DOCS / "api" / "index.md")
    assert {f"api/generated/{p}" for p in packages} == listed


@pytest.mark.parametrize(
    "script", sorted((ROOT / "examples" / "gallery").glob("plot_*.py")), ids=lambda p: p.name
)
def test_gallery_scripts_open_with_a_titled_docstring(script: Path) -> None:
    # sphinx-gallery reads the title from the module docstring: a line underlined with '='
    doc = ast.get_docstring(ast.parse(script.read_text()), clean=False)
    assert doc, f"{script.name}: no module docstring"
    lines = doc.strip().splitlines()
    assert len(lines) >= 2 and set(lines[1]) == {"="} and len(lines[1]) >= len(lines[0]), (
        f"{script.name}: the docstring must start with a title underlined by '='"
    )
