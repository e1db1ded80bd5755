"""Sphinx configuration of the twolayer documentation site.

Build it (the ``docs`` extra installs what it needs)::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

The Markdown pages of docs/ are read by MyST, the docstrings by numpydoc, and the scripts of
examples/gallery are run by sphinx-gallery at build time, their figures put in the pages. The API
reference lists, per public package, the names of its ``__all__`` (see :func:`_write_api_pages`),
so a name exported later appears without editing these pages.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import twolayer

DOCS = Path(__file__).resolve().parent

project = "twolayer"
author = "twolayer developers"
copyright = "2026, twolayer developers"
version = release = twolayer.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "**/_build",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
]
templates_path = ["_templates"]

# -- MyST: the Markdown pages cross-link each other with relative .md links and #heading anchors
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 6  # GitHub-style slugs for every heading level, as the pages use them

# -- API reference: autosummary + autodoc, numpydoc docstrings
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters section gives the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # the class template lists methods with autodoc
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- sphinx-gallery: examples/gallery/plot_*.py run at build time, each in a few seconds
sphinx_gallery_conf = {
    "examples_dirs": ["../examples/gallery"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "abort_on_example_error": True,
    "remove_config_comments": True,
    "reset_modules": ("matplotlib",),
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
}

# -- HTML: the PyData theme, as SciPy, NumPy, pandas and scikit-learn
html_theme = "pydata_sphinx_theme"
html_title = f"twolayer {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False

# What the API pages document, package by package: the package's docstring, then a table of the
# names of its __all__ with one page per name. A name re-exported at the top level from a
# subpackage (twolayer.load is twolayer.experiment.load) is documented once, on the
# subpackage's page, and linked from the top-level table.
API_PACKAGES = [
    "twolayer",
    "twolayer.experiment",
    "twolayer.teachers",
    "twolayer.train",
    "twolayer.measure",
    "twolayer.theory",
    "twolayer.plots",
    "twolayer.recipes",
    "twolayer.plugins",
    "twolayer.registry",
]


def _public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:  # a module without __all__: its public functions and classes
        names = [
            n for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == module_name
            and callable(v)
        ]
    return [n for n in names if n != "__version__"]


def _defining_package(obj: object) -> str | None:
    """The documented subpackage an object was exported from, if another than the top level."""
    module = getattr(obj, "__module__", "") or ""
    for package in API_PACKAGES[1:]:
        if module == package or module.startswith(package + "."):
            owner = importlib.import_module(package)
            name = getattr(obj, "__name__", None)
            if name in getattr(owner, "__all__", ()) and getattr(owner, name) is obj:
                return package
    return None


def _write_api_pages(docs: Path = DOCS) -> None:
    """Write docs/api/generated/<package>.rst for every package of API_PACKAGES (ignored by
    git, rewritten at every build so the tables follow ``__all__``)."""
    out = docs / "api" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    for package in API_PACKAGES:
        names = _public_names(package)
        own, elsewhere = [], []
        for name in names:
            obj = getattr(importlib.import_module(package), name)
            owner = _defining_package(obj) if package == "twolayer" else None
            # relative to the current module: autosummary refuses "twolayer.experiment.load"
            # on the page of twolayer (import_cycle)
            relative = owner.removeprefix("twolayer.") if owner else None
            (elsewhere if owner else own).append(f"{relative}.{name}" if owner else name)
        title = f"``{package}``"
        lines = [
            title, "=" * len(title), "",
            f".. automodule:: {package}", "   :no-members:", "",
            f".. currentmodule:: {package}", "",
        ]
        if own:
            lines += [".. autosummary::", "   :toctree: .", "   :nosignatures:", ""]
            lines += [f"   {name}" for name in sorted(own, key=str.lower)] + [""]
        if elsewhere:
            lines += [
                "Also importable from ``twolayer``, documented with their subpackage:", "",
                ".. autosummary::", "   :nosignatures:", "",
            ]
            lines += [f"   ~{name}" for name in sorted(elsewhere, key=str.lower)] + [""]
        text = "\n".join(lines)
        page = out / f"{package}.rst"
        if not page.exists() or page.read_text() != text:  # unchanged pages keep their mtime
            page.write_text(text)


_write_api_pages()
