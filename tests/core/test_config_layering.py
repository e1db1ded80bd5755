"""twolayer.config depends on nothing above the component layers (issue 16): importing it
imports neither the training protocols, the measurements nor the theory (the registries load
them when a config is first validated). Fails on the tree before issue 16 (config.py imported
train.gd, train.steps, train.spiked and theory.spiked_rf)."""

from __future__ import annotations

import subprocess
import sys

ABOVE = ("twolayer.train", "twolayer.measure", "twolayer.theory", "twolayer.pipeline",
         "twolayer.experiment")


def test_importing_the_config_imports_no_layer_above_it():
    code = (
        "import sys, twolayer.config\n"
        f"above = [m for m in sys.modules if m.startswith({ABOVE!r})]\n"
        "print(above)\n"
        "assert not above, above\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_configs_baselines_are_the_predictors():
    """readout.baselines (a Literal in the config layer, which cannot import the predictors)
    names exactly the predictor classes twolayer.predictors fits by name."""
    import typing

    from twolayer.config import Baseline
    from twolayer.predictors import BASELINES

    assert set(typing.get_args(Baseline)) == set(BASELINES)
