"""Plugins: a user's module named in a spec (``plugins:``) registers an activation, a link and
a teacher before the spec is validated, and every executor's workers import it too (forked and
spawned local processes, a Dask LocalCluster of processes); a module that cannot be imported is
one SpecError naming ``plugins[i]``; installed plugins load through the entry-point group
``twolayer.plugins`` on the first registry miss."""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import os
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

import twolayer.plugins as plugins_mod
from twolayer.activations import ACTIVATIONS, get_activation
from twolayer.experiment import SpecError, execute_group, load, load_spec, run_spec
from twolayer.experiment.spec import load_spec_with_runs
from twolayer.measure import MEASUREMENTS
from twolayer.plugins import PluginError, PluginWarning, load_entry_points, load_plugins
from twolayer.registry import UnknownNameError
from twolayer.teachers import TEACHERS

PLUGIN = '''
"""A lab's own components: an activation, a link and a teacher."""

import numpy as np

from twolayer.activations import ACTIVATIONS, Activation
from twolayer.backend import namespace_of
from twolayer.teachers import TEACHERS, Teacher, as_activation, random_orthonormal


@ACTIVATIONS.register("tl_softsign")
def _softsign(c: float = 1.0) -> Activation:
    c = float(c)
    xp = namespace_of
    return Activation(
        f"tl_softsign(c={c:g})",
        lambda z: c * z / (1.0 + xp(z).abs(z)),
        lambda z: c / (1.0 + xp(z).abs(z)) ** 2,
    )


@ACTIVATIONS.register("tl_bump")
def _bump() -> Activation:
    return Activation(
        "tl_bump",
        lambda z: namespace_of(z).exp(-0.5 * z * z),
        lambda z: -z * namespace_of(z).exp(-0.5 * z * z),
    )


class BumpIndex(Teacher):
    """y = link(<beta, x>) + noise xi, the link a registered activation (default tl_bump)."""

    task = "regression"

    def __init__(self, d, rng, link="tl_bump", noise=0.0):
        self.d = d
        self.link = as_activation(link)
        self.noise = float(noise)
        self.beta = random_orthonormal(1, d, rng)[0]

    def sample_numpy(self, n, rng):
        X = rng.standard_normal((n, self.d))
        y = self.link(X @ self.beta) + self.noise * rng.standard_normal(n)
        return X, y


TEACHERS.add("tl_bump_index", BumpIndex)
'''


def _spec(module: str) -> dict:
    return {
        "name": "plugged",
        "plugins": [module],
        "seeds": 2,
        "teacher": {"name": "tl_bump_index", "d": 8, "link": "tl_bump", "noise": 0.1},
        "student": {"N": 16, "activation": {"name": "tl_softsign", "c": 2.0}},
        "train": {"protocol": "giant_steps", "n": 32, "steps": [{"eta": {"c": 1.0}}]},
        "readout": {"lambdas": [1.0e-2]},
        "evaluate": {"n_test": 200, "chunk": 100},
        "sweep": {"teacher.link": ["tl_bump", "sin"]},
    }


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A fresh plugin module on sys.path (a unique name); the registries, sys.modules and the
    record of loaded plugins are restored afterwards."""
    name = f"tl_plugin_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    saved = {reg: dict(reg._items) for reg in (ACTIVATIONS, TEACHERS, MEASUREMENTS)}
    loaded = dict(plugins_mod._loaded)
    yield name
    for reg, items in saved.items():
        reg._items.clear()
        reg._items.update(items)
    plugins_mod._loaded.clear()
    plugins_mod._loaded.update(loaded)
    for mod in [m for m in sys.modules if m == name or m.startswith("tl_ep_")]:
        del sys.modules[mod]


def _metrics(path: Path) -> dict[str, dict[str, float]]:
    frame = load(path)
    cols = [c for c in frame.columns if c.startswith(("readout.", "network."))]
    cols = [c for c in cols if frame[c].dtype.kind == "f"]
    return {row["id"]: {c: row[c] for c in cols} for _, row in frame.iterrows()}


def test_spec_plugin_registers_before_validation_serial_and_local(tmp_path, plugin):
    assert "tl_softsign" not in ACTIVATIONS
    spec = load_spec(_spec(plugin))
    assert spec.plugins == [plugin] and "tl_softsign" in ACTIVATIONS
    assert spec.to_dict()["plugins"] == [plugin]  # kept with the sweep in the store
    serial = run_spec(spec, store=tmp_path / "serial.sqlite", executor="serial")
    assert serial.counts() == {"done": 4}, [r.error for r in serial.records]
    local = run_spec(_spec(plugin), store=tmp_path / "local.sqlite", executor="local", jobs=2)
    assert local.executor == "local" and local.counts() == {"done": 4}
    assert {r.pid for r in local.records} != {os.getpid()}
    assert _metrics(tmp_path / "local.sqlite") == _metrics(tmp_path / "serial.sqlite")
    frame = load(tmp_path / "serial.sqlite")
    assert np.all(np.isfinite(frame["readout.test_mse"]))


def test_a_fresh_worker_process_imports_the_plugins(plugin):
    """A spawned process (as a Dask worker or a spawn/forkserver pool) knows nothing of the
    driver's imports: execute_group imports the plugins it is given before running."""
    _, runs = load_spec_with_runs(_spec(plugin))
    items = [(r.id, r.config, r.seed) for r in runs[:2]]
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        without = pool.submit(execute_group, items).result()
        plugged = pool.submit(execute_group, items, plugins=[plugin]).result()
    assert [r.status for r in without] == ["failed", "failed"]
    assert "unknown teacher 'tl_bump_index'" in without[0].error
    assert [r.status for r in plugged] == ["done", "done"], [r.error for r in plugged]
    assert all(r.pid != os.getpid() for r in plugged)


def test_a_worker_that_cannot_import_a_plugin_fails_its_runs_saying_why(plugin):
    _, runs = load_spec_with_runs(_spec(plugin))
    items = [(r.id, r.config, r.seed) for r in runs[:3]]
    records = execute_group(items, plugins=[plugin, "tl_not_installed_here"])
    assert [r.status for r in records] == ["failed"] * 3
    assert [r.run_id for r in records] == [i[0] for i in items]
    assert "PluginError: cannot import plugin module 'tl_not_installed_here'" in records[0].error
    assert "PYTHONPATH" in records[0].error


def test_dask_local_cluster_of_processes_imports_the_plugins(tmp_path, plugin):
    pytest.importorskip("dask.distributed")
    result = run_spec(_spec(plugin), store=tmp_path / "dask.sqlite", executor="dask", jobs=2)
    assert result.executor == "dask"
    assert result.counts() == {"done": 4}, [r.error for r in result.records]
    assert all(r.pid != os.getpid() for r in result.records)


def test_a_module_that_cannot_be_imported_is_one_spec_error(tmp_path, plugin):
    spec = _spec(plugin)
    spec["plugins"] = ["tl_no_such_module"]
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert len(info.value.problems) == 1 and info.value.path == "plugins[0]"
    text = str(info.value)
    assert text.startswith("<dict>: plugins[0]: cannot import plugin module 'tl_no_such_module'")
    assert "No module named 'tl_no_such_module'" in text and "PYTHONPATH" in text
    assert "Traceback" not in text


def test_plugin_errors_name_their_index_and_line(tmp_path, plugin):
    (tmp_path / "lab" / "tl_plugin_broken.py").write_text("raise RuntimeError('no licence')\n")
    path = tmp_path / "spec.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: broken
            plugins:
              - {plugin}
              - tl_plugin_broken
              - my-lab
            teacher: {{name: tl_bump_index, d: 4}}
            student: {{N: 4, activation: tl_softsign}}
            """
        )
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    problems = {p.path: p for p in info.value.problems}
    assert set(problems) == {"plugins[1]", "plugins[2]"}
    assert problems["plugins[1]"].line == 4 and problems["plugins[2]"].line == 5
    assert "RuntimeError: no licence" in problems["plugins[1]"].message
    assert "not a module name" in problems["plugins[2]"].message
    with pytest.raises(PluginError) as err:
        load_plugins([plugin, "tl_plugin_broken"])
    assert err.value.index == 1 and err.value.module == "tl_plugin_broken"
    assert isinstance(err.value.__cause__, RuntimeError)


def test_an_unknown_name_without_the_plugin_still_says_what_is_registered(plugin):
    spec = _spec(plugin)
    spec["plugins"] = []
    with pytest.raises(SpecError, match="unknown teacher 'tl_bump_index'"):
        load_spec(spec)


def _fake_distribution(root: Path, entry_points: str) -> None:
    dist = root / "tl_lab_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tl-lab-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)


def test_entry_point_plugins_load_on_the_first_registry_miss(tmp_path, plugin, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "tl_ep_acts.py").write_text(
        "from twolayer.activations import ACTIVATIONS, Activation\n"
        "ACTIVATIONS.add('tl_ep_cube', lambda: Activation('tl_ep_cube', lambda z: z**3,"
        " lambda z: 3 * z**2))\n"
    )
    (site / "tl_ep_func.py").write_text(
        "from twolayer.activations import ACTIVATIONS, Activation\n"
        "def register():\n"
        "    ACTIVATIONS.add('tl_ep_neg', lambda: Activation('tl_ep_neg', lambda z: -z,"
        " lambda z: z * 0 - 1.0))\n"
    )
    _fake_distribution(
        site,
        "[twolayer.plugins]\nacts = tl_ep_acts\nfunc = tl_ep_func:register\n"
        "broken = tl_ep_missing_module\n",
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setattr(plugins_mod, "_entry_points_state", "no")
    names = {ep.name for ep in plugins_mod.entry_points()}
    assert {"acts", "func", "broken"} <= names
    assert "relu" in ACTIVATIONS  # a hit loads nothing
    assert plugins_mod._entry_points_state == "no"
    with pytest.warns(PluginWarning, match="'broken'.*tl_ep_missing_module"):
        act = get_activation("tl_ep_cube")  # the miss loads every entry point, once
    assert plugins_mod._entry_points_state == "done"
    np.testing.assert_allclose(act(np.array([2.0])), [8.0])
    assert "tl_ep_neg" in ACTIVATIONS
    assert load_entry_points() is False  # once per process
    with pytest.raises(UnknownNameError, match="unknown activation 'tl_ep_nothing'"):
        get_activation("tl_ep_nothing")
    # a spec may name an entry-point plugin's component without listing it under plugins
    spec = _spec(plugin)
    spec["plugins"] = [plugin]
    spec["student"]["activation"] = "tl_ep_neg"
    spec.pop("sweep")
    assert load_spec(spec).student["activation"] == "tl_ep_neg"


def test_threads_missing_together_all_see_the_entry_point_plugins(tmp_path, plugin, monkeypatch):
    """Dask with threads: a second thread that misses while the first loads the entry points
    waits for them instead of reporting the name unknown."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "tl_ep_slow.py").write_text(
        "import time\n"
        "from twolayer.activations import ACTIVATIONS, Activation\n"
        "time.sleep(0.3)\n"
        "ACTIVATIONS.add('tl_ep_slow', lambda: Activation('tl_ep_slow', lambda z: z * 1.0,"
        " lambda z: z * 0 + 1.0))\n"
    )
    _fake_distribution(site, "[twolayer.plugins]\nslow = tl_ep_slow\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setattr(plugins_mod, "_entry_points_state", "no")
    with cf.ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: "tl_ep_slow" in ACTIVATIONS, range(4)))
    assert found == [True] * 4
