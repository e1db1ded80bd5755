"""What survives what (issue 15): damaged stores (cut short, data appended, a bad page), stores
on read-only storage, an export into a missing directory, and Ctrl-C during a sweep. Each is
one clear message and the right exit code, and a damaged store is left byte for byte as it
was (docs/engine.md, "What survives what")."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from twolayer.cli import main
from twolayer.experiment import Store, StoreError, load, run_spec
from twolayer.experiment.executors import SerialExecutor
from twolayer.experiment.store import reader_uri

SRC = str(Path(__file__).resolve().parents[2] / "src")
COMMANDS = ("status", "export", "plot", "run")


_BUILT: dict[str, Path] = {}


@pytest.fixture
def good_store(tmp_path_factory, tiny) -> Path:
    """A store with two finished runs, written once for the module (tests copy it)."""
    if "store" not in _BUILT:
        spec = dict(tiny, name="faults", sweep={"student.N": [8, 12]})
        folder = tmp_path_factory.mktemp("faults")
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
        path = folder / "good.sqlite"
        run_spec(spec, store=path, executor="serial")
        assert not path.with_name("good.sqlite-wal").exists()  # closed cleanly: one file
        _BUILT["store"] = path
    return _BUILT["store"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cut_short(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _garbage_tail(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(bytes(range(256)) * 20)


def _bad_page(path: Path) -> None:
    """Overwrite the b-tree page header of the metrics table's root page: a resumed sweep with
    nothing to do and `status` never read that page, `export` does."""
    con = sqlite3.connect(path)
    root, page_size = con.execute(
        "SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master "
        "WHERE name = 'metrics'"
    ).fetchone()
    con.close()
    with open(path, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\x0d\xff\xff\x00\x50")


DAMAGE = {"cut short": _cut_short, "garbage tail": _garbage_tail}


def _cli_args(command: str, store: Path) -> list[str]:
    spec = str(store.parent / "spec.yaml")
    return {
        "status": ["status", str(store)],
        "export": ["export", str(store), "-o", str(store.with_suffix(".csv"))],
        "plot": ["plot", str(store), "--out", str(store.parent / "figures")],
        "run": ["run", spec, "--store", str(store), "--executor", "serial", "-q"],
    }[command]


@pytest.fixture
def damaged(tmp_path, good_store, request):
    def make(kind: str) -> Path:
        shutil.copy(good_store.parent / "spec.yaml", tmp_path / "spec.yaml")
        path = tmp_path / "store.sqlite"
        shutil.copy(good_store, path)
        DAMAGE.get(kind, _bad_page)(path)
        return path

    return make


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_store_is_one_message_exit_1_and_untouched(damaged, kind, command):
    path = damaged(kind)
    before = _digest(path)
    res = CliRunner().invoke(main, _cli_args(command, path))
    assert res.exit_code == 1, res.output
    assert res.output.startswith(f"error: {path} is damaged (")
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert "left untouched" in res.output
    assert _digest(path) == before
    assert not path.with_suffix(".csv").exists() and not (path.parent / "figures").exists()


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_store_load_raises_store_error(damaged, kind):
    path = damaged(kind)
    before = _digest(path)
    with pytest.raises(StoreError, match=rf"^{path} is damaged \("):
        load(path)
    assert _digest(path) == before


def test_garbage_tail_message_says_how_to_cut_it_off(damaged, good_store):
    path = damaged("garbage tail")
    with pytest.raises(StoreError) as info:
        Store(path, create=False)
    size = good_store.stat().st_size
    assert "5120 bytes after the end of the database" in str(info.value)
    assert f"truncate -s {size} {path}" in str(info.value)
    os.truncate(path, size)  # following the advice gives the store back
    assert len(load(path)) == 2


def test_bad_page_is_found_before_run_writes(damaged):
    """A page that does not check is found by the writer's quick_check before its first write
    (before, `run` wrote into the file); readers report it when they read that page."""
    path = damaged("bad page")
    before = _digest(path)
    res = CliRunner().invoke(main, _cli_args("run", path))
    assert res.exit_code == 1, res.output
    assert res.output.startswith(f"error: {path} is damaged (")
    assert res.output.count("\n") == 1
    assert _digest(path) == before
    status = CliRunner().invoke(main, _cli_args("status", path))
    assert status.exit_code == 0 and "faults" in status.output  # reads no metric
    export = CliRunner().invoke(main, _cli_args("export", path))
    assert export.exit_code == 1
    assert export.output.startswith(f"error: {path} is damaged (database disk image is malformed)")
    assert _digest(path) == before


def test_sqlite_errors_inside_a_store_block_become_store_errors(good_store, tmp_path):
    path = tmp_path / "s.sqlite"
    shutil.copy(good_store, path)
    with pytest.raises(StoreError, match=rf"cannot use store {path}: .*no such table"):
        with Store(path, create=False) as st:
            st.con.execute("SELECT * FROM nowhere")


# -- read-only storage ------------------------------------------------------------------------


def test_readers_open_read_only_writers_do_not(good_store, tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    shutil.copy(good_store, path)
    before = _digest(path)
    with Store(path, create=False) as st:
        assert st.readonly
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            st.con.execute("CREATE TABLE x (a)")
    with pytest.raises(StoreError, match=rf"cannot use store {path}: attempt to write a readonly"):
        Store(path, create=False).acquire("x")
    assert _digest(path) == before
    assert reader_uri(path) == f"file:{path}?mode=ro"
    with Store(path) as st:
        assert not st.readonly
    # a directory that cannot be written and no -shm: immutable (the WAL reader needs one)
    for extra in ("-wal", "-shm"):
        path.with_name(path.name + extra).unlink(missing_ok=True)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    assert reader_uri(path) == f"file:{path}?mode=ro&immutable=1"
    with Store(path, create=False) as st:
        assert st.counts() == {"done": 2}
    assert _digest(path) == before
    # with both -wal and -shm there, mode=ro reads them
    path.with_name(path.name + "-wal").write_bytes(b"")
    path.with_name(path.name + "-shm").write_bytes(b"")
    assert reader_uri(path) == f"file:{path}?mode=ro"
    # a pending log without -shm on such storage cannot be read: say so
    path.with_name(path.name + "-shm").unlink()
    path.with_name(path.name + "-wal").write_bytes(b"x" * 32)
    with pytest.raises(StoreError, match="pending write-ahead log"):
        reader_uri(path)


_READ_ALL = (
    "import sys; from twolayer.experiment import load; from twolayer.cli import main; "
    "print('rows', len(load(sys.argv[1]))); "
    "main(['status', sys.argv[1]], standalone_mode=False); "
    "main(['export', sys.argv[1], '-o', sys.argv[2]], standalone_mode=False)"
)


def _read_only_command(folder: Path, mount: Path, out: Path) -> list[str] | None:
    """A command that reads the store in ``folder`` through a read-only view ``mount``: a
    read-only bind mount in a private mount namespace as root (root ignores permissions),
    else the folder and file made read-only with chmod. None if neither is possible."""
    read = [sys.executable, "-c", _READ_ALL, str(mount / "s.sqlite"), str(out)]
    if os.geteuid() != 0:
        mount.rmdir()
        folder.rename(mount)
        (mount / "s.sqlite").chmod(0o444)
        mount.chmod(0o555)
        return read
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {folder} {mount} && "
         f"mount -o remount,bind,ro {mount} && ! touch {mount}/probe"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return None
    script = f"mount --bind {folder} {mount} && mount -o remount,bind,ro {mount} && exec \"$@\""
    return ["unshare", "-m", "sh", "-c", script, "sh", *read]


def test_store_on_read_only_storage_can_be_read(good_store, tmp_path):
    folder, mount = tmp_path / "data", tmp_path / "ro"
    folder.mkdir()
    mount.mkdir()
    shutil.copy(good_store, folder / "s.sqlite")
    before = _digest(folder / "s.sqlite")
    command = _read_only_command(folder, mount, tmp_path / "out.csv")
    if command is None:
        pytest.skip("cannot make read-only storage here (root without mount namespaces)")
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC},
            timeout=120,
        )
    finally:
        if os.geteuid() != 0:
            mount.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    assert "rows 2" in proc.stdout and "faults" in proc.stdout
    assert (tmp_path / "out.csv").read_text().count("\n") == 3
    store = mount / "s.sqlite" if os.geteuid() != 0 else folder / "s.sqlite"
    assert _digest(store) == before
    assert sorted(p.name for p in store.parent.iterdir()) == ["s.sqlite"]


# -- export and Ctrl-C --------------------------------------------------------------------------


def test_export_into_missing_directory_is_one_message(good_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(good_store, "s.sqlite")
    res = CliRunner().invoke(main, ["export", "s.sqlite", "-o", "missing/x.csv"])
    assert res.exit_code == 1
    assert res.output == (
        "error: cannot write missing/x.csv: no directory missing (create it first, or choose "
        "another output file)\n"
    )
    assert not Path("missing").exists()


class _InterruptedExecutor(SerialExecutor):
    """The serial executor, interrupted (as by Ctrl-C) after ``after`` groups."""

    def __init__(self, after: int, **kwargs) -> None:
        super().__init__()
        self.after = after

    def run(self, groups):
        for i, records in enumerate(super().run(groups)):
            if i == self.after:
                raise KeyboardInterrupt
            yield records


def test_ctrl_c_says_what_is_stored_and_how_to_resume(tmp_path, tiny, monkeypatch):
    import twolayer.experiment.runner as runner

    monkeypatch.chdir(tmp_path)
    tiny["sweep"] = {"student.N": [8, 10, 12, 14]}
    Path("s.yaml").write_text(yaml.safe_dump(tiny))
    real = runner.run_spec
    def factory(kind, **kw):
        return _InterruptedExecutor(2)

    monkeypatch.setattr(runner, "run_spec", functools.partial(real, executor_factory=factory))
    res = CliRunner().invoke(main, ["run", "s.yaml", "--store", "s.sqlite", "-q"])
    assert res.exit_code == 130, res.output
    assert res.output == (
        "Interrupted: 2 of 4 runs finished and stored in s.sqlite; run the same command again "
        "to resume.\n"
    )
    with Store("s.sqlite", create=False) as st:
        assert st.counts() == {"done": 2, "running": 2} and st.lock_holder() is None
    monkeypatch.setattr(runner, "run_spec", real)
    again = CliRunner().invoke(main, ["run", "s.yaml", "--store", "s.sqlite", "--executor",
                                      "serial"])
    assert again.exit_code == 0, again.output
    assert "2 runs: 2 done (2 already stored)" in again.output


def test_ctrl_c_before_any_run_started(tmp_path, tiny, monkeypatch):
    import twolayer.experiment.runner as runner

    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text(yaml.safe_dump(tiny))

    def factory(kind, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(
        runner, "run_spec", functools.partial(runner.run_spec, executor_factory=factory)
    )
    res = CliRunner().invoke(main, ["run", "s.yaml", "-q"])
    assert res.exit_code == 130, res.output
    assert res.output == (
        "Interrupted before any run started; run the same command again to start.\n"
    )


def test_export_write_error_is_one_message(good_store, tmp_path, monkeypatch):
    import pandas as pd

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    res = CliRunner().invoke(main, ["export", str(good_store), "-o", str(tmp_path / "x.csv")])
    assert res.exit_code == 1
    assert res.output == f"error: cannot write {tmp_path / 'x.csv'}: No space left on device\n"
