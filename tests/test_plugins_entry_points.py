"""An installed package adds a teacher, an activation and a measurement through the entry-point
group ``twolayer.plugins`` (docs/extending.md, "Installed plugins"), and a spec that names them —
without a ``plugins:`` list — runs on every executor: the local process pool, a freshly spawned
worker process that knows nothing of the driver's imports (as a Dask worker or a spawn pool),
and a Dask LocalCluster of processes. A protocol added the same way is selected by a spec's
``train.protocol`` in a fresh Python process whose workers are spawned.

The package is installed the way pip leaves one on disk: a module and a ``*.dist-info`` folder
with ``METADATA`` and ``entry_points.txt``, in a temporary folder put on ``sys.path`` (spawned
processes inherit ``sys.path``), so that ``importlib.metadata`` finds it. No network."""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

import twolayer.plugins as plugins_mod
from twolayer.activations import ACTIVATIONS
from twolayer.experiment import SpecError, execute_group, load, load_spec, run_spec
from twolayer.experiment.spec import load_spec_with_runs
from twolayer.measure import MEASUREMENTS
from twolayer.teachers import TEACHERS

PACKAGE = '''
"""A lab's components, registered when twolayer loads the entry point."""

import numpy as np

from twolayer.activations import ACTIVATIONS, Activation
from twolayer.backend import namespace_of
from twolayer.measure import register_measurement
from twolayer.teachers import TEACHERS, Teacher, as_activation, random_orthonormal

LOADED_IN = []  # the processes whose entry-point loading imported this module


def register():
    """The entry point: called once per process, by the first lookup of a missing name."""
    import os

    LOADED_IN.append(os.getpid())

    @ACTIVATIONS.register("{prefix}_softsign")
    def _softsign(c=1.0):
        c = float(c)
        return Activation(
            f"{prefix}_softsign(c={{c:g}})",
            lambda z: c * z / (1.0 + namespace_of(z).abs(z)),
            lambda z: c / (1.0 + namespace_of(z).abs(z)) ** 2,
        )

    class BumpIndex(Teacher):
        """y = link(<beta, x>) + noise xi."""

        task = "regression"

        def __init__(self, d, rng, link="tanh", noise=0.0):
            self.d = d
            self.link = as_activation(link)
            self.noise = float(noise)
            self.beta = random_orthonormal(1, d, rng)[0]

        def sample_numpy(self, n, rng):
            X = rng.standard_normal((n, self.d))
            return X, self.link(X @ self.beta) + self.noise * rng.standard_normal(n)

    TEACHERS.add("{prefix}_index", BumpIndex)

    @register_measurement("{prefix}_second_layer")
    def _second_layer(ctx):
        """||a_0||^2 at initialisation, the teacher's noise if it is this plugin's, the pid."""
        a0 = np.asarray(ctx.student_init.a, dtype=float)
        noise = ctx.teacher.noise if isinstance(ctx.teacher, BumpIndex) else float("nan")
        return {{"a0_sq_norm": float(a0 @ a0), "teacher_noise": noise, "pid": float(os.getpid())}}
'''


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A distribution with one entry point of ``twolayer.plugins`` on sys.path (unique names);
    the registries, the entry-point state and sys.modules are restored afterwards."""
    prefix = f"tl_dist_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / f"{prefix}_components.py").write_text(PACKAGE.format(prefix=prefix))
    info = site / f"{prefix}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {prefix}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[twolayer.plugins]\n{prefix} = {prefix}_components:register\n"
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    saved = {reg: dict(reg._items) for reg in (ACTIVATIONS, TEACHERS, MEASUREMENTS)}
    monkeypatch.setattr(plugins_mod, "_entry_points_state", "no")  # this process loads anew
    yield prefix
    for reg, items in saved.items():
        reg._items.clear()
        reg._items.update(items)
    sys.modules.pop(f"{prefix}_components", None)


def _spec(prefix: str) -> dict:
    N, a_scale = 12, 0.25
    return {
        "name": "installed",
        "seeds": 2,
        "teacher": {"name": f"{prefix}_index", "d": 8, "noise": 0.1},
        "student": {
            "N": N,
            "activation": {"name": f"{prefix}_softsign", "c": 2.0},
            "a_init": "constant",
            "a_scale": a_scale,
        },
        "train": {"protocol": "giant_steps", "n": 32, "steps": [{"eta": {"c": 1.0}}]},
        "readout": {"lambdas": [1.0e-2]},
        "evaluate": {"n_test": 200, "chunk": 100},
        "measure": [f"{prefix}_second_layer"],
        "sweep": {"teacher.link": ["tanh", "relu"]},
    }


def _check_records(frame, prefix: str) -> None:
    assert set(frame["status"]) == {"done"}, list(frame["error"])
    # the plugin's measurement ran on the plugin's student: constant a_i = a_scale, so
    # ||a_0||^2 = N a_scale^2 = 12 / 16 exactly
    np.testing.assert_allclose(frame[f"{prefix}_second_layer.a0_sq_norm"], 0.75, rtol=1e-15)
    # the run's teacher is the plugin's class, built with the spec's options
    np.testing.assert_array_equal(frame[f"{prefix}_second_layer.teacher_noise"], 0.1)
    assert np.all(np.isfinite(frame["readout.test_mse"]))


def test_without_the_distribution_the_names_are_unknown() -> None:
    """The failure the entry point removes (so the tests below can fail)."""
    with pytest.raises(SpecError, match="unknown teacher 'tl_dist_absent_index'"):
        load_spec(_spec("tl_dist_absent"))


def test_a_spec_naming_installed_components_runs_in_the_local_process_pool(tmp_path, installed):
    assert f"{installed}_index" not in TEACHERS._items  # nothing loaded before the first lookup
    result = run_spec(_spec(installed), store=tmp_path / "local.sqlite", executor="local", jobs=2)
    assert result.executor == "local"
    assert result.counts() == {"done": 4}, [r.error for r in result.records]
    frame = load(tmp_path / "local.sqlite")
    _check_records(frame, installed)
    assert os.getpid() not in set(frame[f"{installed}_second_layer.pid"].astype(int))
    module = sys.modules[f"{installed}_components"]
    assert module.LOADED_IN == [os.getpid()]  # the driver loaded the entry point, once


def test_a_freshly_spawned_worker_loads_the_entry_points_itself(installed):
    """A spawned process starts with none of the driver's imports: execute_group, given no
    plugin list, finds the teacher, activation and measurement through the entry point."""
    _, runs = load_spec_with_runs(_spec(installed))
    items = [(r.id, r.config, r.seed) for r in runs[:2]]
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        records = pool.submit(execute_group, items).result()
        loaded_in = pool.submit(_loaded_in, f"{installed}_components").result()
    assert [r.status for r in records] == ["done", "done"], [r.error for r in records]
    worker = {int(r.scalars[f"{installed}_second_layer.pid"]) for r in records}
    assert worker == {r.pid for r in records} and os.getpid() not in worker
    assert loaded_in == sorted(worker)  # the worker's own entry-point load, once
    np.testing.assert_allclose(
        [r.scalars[f"{installed}_second_layer.a0_sq_norm"] for r in records], 0.75, rtol=1e-15
    )


def _loaded_in(module: str) -> list[int]:
    return list(sys.modules[module].LOADED_IN)


@pytest.mark.slow
def test_dask_workers_load_the_entry_points(tmp_path, installed):
    pytest.importorskip("dask.distributed")
    result = run_spec(_spec(installed), store=tmp_path / "dask.sqlite", executor="dask", jobs=2)
    assert result.executor == "dask"
    assert result.counts() == {"done": 4}, [r.error for r in result.records]
    frame = load(tmp_path / "dask.sqlite")
    _check_records(frame, installed)
    assert os.getpid() not in set(frame[f"{installed}_second_layer.pid"].astype(int))


PROTOCOL_PACKAGE = '''
"""A lab's training protocol: W_1 = factor * W_0 (a config model, a run function)."""

from typing import Literal

from twolayer.config import ProtocolConfig


class ScaleConfig(ProtocolConfig):  # at module level: runs are pickled to the workers
    """Scale the first layer by ``factor``."""

    protocol: Literal["{prefix}_scale"] = "{prefix}_scale"
    factor: float = 1.0


def register():
    from twolayer.measure import register_measurement
    from twolayer.train.protocol import register_protocol
    from twolayer.train.result import TrainResult

    @register_protocol("{prefix}_scale", ScaleConfig)
    def run_scale(config, ctx):
        """W_1 = factor * W_0."""
        return TrainResult(ctx.student.replace(W=config.factor * ctx.student.W))

    @register_measurement("{prefix}_ratio")
    def _ratio(ctx):
        """||W||_F / ||W_0||_F and the worker's pid."""
        import os

        import numpy as np

        W, W0 = np.asarray(ctx.student.W), np.asarray(ctx.student_init.W)
        return {{"ratio": float(np.linalg.norm(W) / np.linalg.norm(W0)), "pid": os.getpid()}}
'''

DRIVER = '''
import json
import multiprocessing
import sys

from twolayer.experiment import load, run_spec

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")  # workers that inherit nothing from the driver
    spec, store, prefix = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    result = run_spec(spec, store=store, executor="local", jobs=1)
    frame = load(store)
    print(json.dumps({
        "status": list(frame["status"]),
        "errors": [str(e) for e in frame["error"]],
        "ratio": list(frame[f"{prefix}_ratio.ratio"]),
        "pids": sorted({int(p) for p in frame[f"{prefix}_ratio.pid"]}),
        "factor": list(frame["train.factor"]),
    }))
'''


@pytest.mark.slow
def test_a_protocol_from_an_installed_package_runs_from_a_spec(tmp_path: Path) -> None:
    """In a fresh process (the package is on its path only, so this process's registries and
    RunConfig stay as they are): the spec's train.protocol selects the plugin's protocol, the
    sweep goes through it, and spawned workers load it themselves."""
    prefix = f"tl_proto_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / f"{prefix}_protocols.py").write_text(PROTOCOL_PACKAGE.format(prefix=prefix))
    info = site / f"{prefix}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {prefix}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[twolayer.plugins]\n{prefix} = {prefix}_protocols:register\n"
    )
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    spec = {
        "name": "scaled",
        "seeds": 2,
        "teacher": {"name": "single_index", "d": 8, "link": "tanh"},
        "student": {"N": 12},
        "train": {"protocol": f"{prefix}_scale", "factor": 3.0},
        "readout": {"n": 40, "lambdas": [1.0e-2]},
        "evaluate": {"n_test": 200},
        "measure": [f"{prefix}_ratio"],
        # not a sweep of train.*: resolving such a key looks the protocol up by name, which
        # would load the entry points before validation and hide a union built without them
        "sweep": {"student.N": [12, 16]},
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), *sys.path]))}
    out = subprocess.run(
        [sys.executable, str(driver), json.dumps(spec), str(tmp_path / "s.sqlite"), prefix],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["status"] == ["done"] * 4, got["errors"]
    # the protocol ran: ||factor W_0|| / ||W_0|| = factor, to rounding
    np.testing.assert_allclose(got["ratio"], 3.0, rtol=1e-12)
    assert got["factor"] == [3.0] * 4
    assert os.getpid() not in got["pids"]
