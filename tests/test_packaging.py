"""Packaging: the LICENSE file, the SPDX license expression in pyproject.toml and in the built
metadata (PEP 639), and CITATION.cff as Citation File Format 1.2.0."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import twolayer

ROOT = Path(__file__).resolve().parents[1]

# Citation File Format 1.2.0: the keys its schema requires and the keys it allows at the top
# level (https://github.com/citation-file-format/citation-file-format/blob/1.2.0/schema-guide.md)
CFF_REQUIRED = {"cff-version", "message", "title", "authors"}
CFF_ALLOWED = CFF_REQUIRED | {
    "abstract", "commit", "contact", "date-released", "doi", "identifiers", "keywords",
    "license", "license-url", "preferred-citation", "references", "repository",
    "repository-artifact", "repository-code", "type", "url", "version",
}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; 3.10 skips
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_file_is_bsd_3_clause_of_the_twolayer_developers() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, twolayer developers" in text
    # the three clauses, the third being the one BSD-2-Clause lacks
    assert "Neither the name of the copyright holder nor the names of its" in text


def test_pyproject_declares_the_spdx_expression_and_a_setuptools_that_reads_it() -> None:
    data = _pyproject()
    assert data["project"]["license"] == "BSD-3-Clause"
    assert data["project"]["license-files"] == ["LICENSE"]
    # setuptools 76.x rejects a string `license` ("must be valid exactly by one definition")
    (requirement,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    major = int(re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", requirement).group(1))
    assert major >= 77
    # a License :: classifier beside a license expression is an error under PEP 639
    assert not any(c.startswith("License ::") for c in data["project"].get("classifiers", []))


def test_built_metadata_carries_the_license_expression_and_file(tmp_path) -> None:
    # built from a copy, so that the checkout's src/twolayer.egg-info is left alone
    project = tmp_path / "project"
    shutil.copytree(
        ROOT / "src" / "twolayer", project / "src" / "twolayer",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "LICENSE", "README.md"):
        shutil.copy(ROOT / name, project / name)
    code = (
        "import sys; from setuptools import build_meta as b; "
        "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=project, capture_output=True,
        text=True, check=True,
    )
    metadata = (tmp_path / out.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert "License-Expression: BSD-3-Clause" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()


def test_citation_cff_is_valid_cff_1_2_0_and_matches_the_package() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert isinstance(cff, dict)
    missing = CFF_REQUIRED - set(cff)
    assert not missing, f"CITATION.cff lacks required keys {sorted(missing)}"
    unknown = set(cff) - CFF_ALLOWED
    assert not unknown, f"CITATION.cff has keys CFF 1.2.0 does not define: {sorted(unknown)}"
    assert cff["cff-version"] == "1.2.0"
    assert isinstance(cff["message"], str) and cff["message"]
    assert isinstance(cff["title"], str) and cff["title"]
    assert isinstance(cff["authors"], list) and cff["authors"]
    for author in cff["authors"]:  # a person (family-names) or an entity (name)
        assert isinstance(author, dict) and ({"name", "family-names"} & set(author))
    assert cff.get("type", "software") in {"software", "dataset"}
    assert str(cff["version"]) == twolayer.__version__
    assert cff["license"] == "BSD-3-Clause"
    # a quoted ISO date: an unquoted one would be read by YAML as a date, which CFF allows,
    # but either way it must be a valid calendar date
    datetime.date.fromisoformat(str(cff["date-released"]))
