"""The package's public names: every one listed and importable, loaded lazily so that the
command line starts without SciPy, pandas, pydantic or matplotlib."""

from __future__ import annotations

import subprocess
import sys

import pytest

import twolayer
import twolayer.experiment


@pytest.mark.parametrize("package", [twolayer, twolayer.experiment])
def test_every_export_is_listed_and_resolves(package) -> None:
    assert set(package.__all__) - {"__version__"} == set(package._EXPORTS)
    for name in package.__all__:
        assert getattr(package, name) is not None
        assert name in dir(package)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        package.no_such_name  # noqa: B018


def test_subpackages_are_attributes() -> None:
    assert twolayer.measure.MEASUREMENTS is not None
    assert twolayer.experiment.store.Store is twolayer.experiment.Store


def test_command_line_and_store_import_no_heavy_library() -> None:
    # `twolayer --help` and `twolayer status` need only click, sqlite and NumPy
    code = (
        "import sys, twolayer.cli, twolayer.experiment.store; "
        "print(' '.join(m for m in ('scipy', 'pandas', 'pydantic', 'matplotlib', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_readme_quickstart_runs() -> None:
    # the README's Python quickstart, as printed there (d = 300: ~2 s)
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = re.search(r"## Quickstart \(Python\)\n\n```python\n(.*?)```", readme, re.S)
    assert code is not None, "README has no Python quickstart block"
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.scalars["readout.test_mse"] < result.scalars["random_features.test_mse"]
    assert namespace["W1"].shape == (600, 300)
