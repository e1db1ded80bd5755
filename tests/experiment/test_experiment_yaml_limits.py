"""Hostile YAML: a 'billion laughs' file, 100,000 nested '[', a self-referring alias, a file
that is not UTF-8 and one over the size limit are one clear SpecError (CLI: exit 2, one line)
within a second or two; a normal spec (aliases included) still loads with line numbers."""

from __future__ import annotations

import time

import pytest
import yaml
from click.testing import CliRunner

from twolayer.cli import main
from twolayer.experiment import SpecError, load_spec_with_runs
from twolayer.experiment.spec import MAX_SPEC_BYTES, parse_yaml


def _laughs(levels: int = 9, refs: int = 9) -> str:
    text = "a: &a [" + ", ".join(['"lol"'] * refs) + "]\n"
    prev = "a"
    for i in range(levels - 1):
        name = f"l{i}"
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * refs) + "]\n"
        prev = name
    return text


def _fails_fast(path, match: str) -> SpecError:
    # CPU time of this process, not wall time: the unguarded parser spent > 120 s of CPU here,
    # and a loaded machine stretches wall time but not the work done
    start = time.process_time()
    with pytest.raises(SpecError, match=match) as info:
        load_spec_with_runs(path)
    assert time.process_time() - start < 2.0
    assert str(info.value).startswith(f"{path}: ")
    return info.value


def test_billion_laughs_is_refused_quickly(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(_laughs())
    assert len(path.read_bytes()) < 1024
    err = _fails_fast(path, r"expands to more than 100000 values through aliases")
    assert err.problems[0].line == 6  # the first level past the limit: 9^6 values


def test_deep_nesting_is_refused_quickly_without_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 100_000)
    _fails_fast(path, r"line 1: mappings and lists nested more than 50 deep")
    block = tmp_path / "block.yaml"
    block.write_text("- " * 100_000 + "1\n")
    _fails_fast(block, r"nested more than 50 deep")


def test_alias_nesting_and_self_reference_are_refused(tmp_path):
    # 10 levels of 6 brackets each, deep only once the aliases are followed
    text = "a0: &a0 [[[[[[1]]]]]]\n"
    for i in range(1, 10):
        text += f"a{i}: &a{i} [[[[[[*a{i - 1}]]]]]]\n"
    deep = tmp_path / "alias_deep.yaml"
    deep.write_text(text)
    _fails_fast(deep, r"nests more than 50 deep through aliases")
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: x\nsweep: &s {a: [1, *s]}\n")
    _fails_fast(loop, r"line 2: an alias \(\*name\) refers to the value that contains it")


def test_non_utf8_file_names_the_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\nteacher: {d: 8}\n".encode("latin-1"))
    _fails_fast(path, r"line 1: not UTF-8 text: byte 0xe9 at offset 9 cannot be decoded")


def test_oversized_file_and_text_are_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * MAX_SPEC_BYTES + b"\nname: x\n")
    _fails_fast(path, r"larger than the limit of 1048576 bytes \(1 MiB\)")
    with pytest.raises(SpecError, match=r"more than the limit of 1048576 bytes"):
        parse_yaml("# " + "x" * MAX_SPEC_BYTES + "\n")


@pytest.mark.parametrize(
    "content",
    [_laughs().encode(), b"[" * 100_000, b"name: \xff\n"],
    ids=["laughs", "deep", "not-utf8"],
)
def test_cli_exit_2_with_one_line(tmp_path, monkeypatch, content):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_bytes(content)
    start = time.process_time()  # CPU seconds (see _fails_fast)
    res = CliRunner().invoke(main, ["run", "bad.yaml"])
    assert time.process_time() - start < 2.0
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: bad.yaml: line 1") or "line 6" in res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert not list(tmp_path.glob("*.sqlite"))


def test_normal_spec_with_aliases_loads_and_keeps_line_numbers(tmp_path, tiny):
    tiny["name"] = "aliases"
    tiny["sweep"] = {"train.n": [32, 40]}
    text = yaml.safe_dump(tiny, sort_keys=False)
    text = text.replace("n_test: 200", "n_test: &n 200").replace("chunk: 100", "chunk: *n")
    path = tmp_path / "ok.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # a byte order mark is fine
    spec, runs = load_spec_with_runs(path)
    assert spec.name == "aliases" and len(runs) == 2
    assert spec.evaluate["chunk"] == 200
    data, _ = parse_yaml("a: &x {d: 8}\nb: [*x, *x]\n")
    assert data == {"a": {"d": 8}, "b": [{"d": 8}, {"d": 8}]}
    lines = text.splitlines()
    n_line = next(i for i, line in enumerate(lines) if line.strip().startswith("N: 16")) + 1
    lines[n_line - 1] = lines[n_line - 1].replace("16", "-3")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=rf"ok.yaml: line {n_line}: student.N"):
        load_spec_with_runs(path)
