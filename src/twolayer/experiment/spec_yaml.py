"""Reading a spec's YAML, with the limits that keep hostile input from exhausting the machine.

:func:`parse_yaml` checks the text before anything is built from it: at most
:data:`MAX_SPEC_BYTES`, nested at most :data:`MAX_SPEC_DEPTH` deep, aliases expanding to at most
:data:`MAX_SPEC_VALUES` values (docs/engine.md, "Faults and hostile inputs"). It returns the
node tree too, from which :func:`_line` finds the line of a key path for error messages.
Depends on the error types only.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import yaml

from twolayer.experiment.errors import Problem, SpecError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


MAX_SPEC_BYTES = 1 << 20
"""Largest spec file (or YAML text) read: 1 MiB; a spec is a few hundred bytes."""
MAX_SPEC_DEPTH = 50
"""Deepest nesting of mappings and lists in a spec, aliases followed (a spec needs about 6)."""
MAX_SPEC_VALUES = 100_000
"""Most values a spec with aliases (``*name``) may expand to: a 1 KB file of nested aliases
("billion laughs") would otherwise expand to 10^9 values while it is validated."""


def _check_yaml_shape(text: str, source: str) -> None:
    """Reject YAML too large, too deep or expanding too much through aliases, before a node
    tree is built (PyYAML composes recursively) or data is constructed.

    One pass over the event stream bounds the nesting (the stream is flat, so 100,000 ``[``
    cost nothing more than the first 50).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            [Problem("", f"{size} bytes of YAML, more than the limit of {MAX_SPEC_BYTES} "
                     f"bytes (1 MiB) for a spec")],
            source,
        )
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_SPEC_DEPTH:
                mark = event.start_mark
                raise SpecError(
                    [Problem("", f"mappings and lists nested more than {MAX_SPEC_DEPTH} deep "
                             f"(column {mark.column + 1})", mark.line + 1)],
                    source,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Reject a node graph that aliases expand by more than MAX_SPEC_VALUES values or to more
    than MAX_SPEC_DEPTH levels, or that refers to itself. Linear in the nodes: each node is
    sized once, however often aliases repeat it."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) when expanded
    on_path: set[int] = set()
    seen = 0  # distinct nodes met so far
    stack: list[tuple[yaml.Node, int]] = [(root, -1)]  # (node, distinct nodes before it or -1)
    while stack:
        node, before = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if before >= 0:  # every child is sized: size the node
            on_path.discard(key)
            values = 1 + sum(sizes[id(c)][0] for c in children)
            depth = 1 + max((sizes[id(c)][1] for c in children), default=0)
            sizes[key] = (values, depth)
            what = ""
            if depth > MAX_SPEC_DEPTH:
                what = f"nests more than {MAX_SPEC_DEPTH} deep"
            elif values - (seen - before) > MAX_SPEC_VALUES:
                what = f"expands to more than {MAX_SPEC_VALUES} values"
            if what:
                raise SpecError(
                    [Problem("", f"this value {what} through aliases (*name); a spec needs "
                             "far fewer (a 'billion laughs' file?)", node.start_mark.line + 1)],
                    source,
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise SpecError(
                [Problem("", "an alias (*name) refers to the value that contains it",
                         node.start_mark.line + 1)],
                source,
            )
        on_path.add(key)
        stack.append((node, seen))
        seen += 1
        stack.extend((child, -1) for child in children)


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, yaml.Node | None]:
    """Parse YAML text into data and its node tree (for line numbers).

    The text is checked before anything is built from it: at most MAX_SPEC_BYTES, nesting at
    most MAX_SPEC_DEPTH deep, and aliases expanding to at most MAX_SPEC_VALUES values.

    Raises
    ------
    SpecError
        On a syntax error, with its line and column, or on a document over those limits.
    """
    try:
        _check_yaml_shape(text, source)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_expansion(node, source)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = f", column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecError([Problem("", f"YAML syntax error{col}: {what}", line)], source) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem("", f"YAML error: {exc}")], source) from None
    return data, node


def _decode_spec(raw: bytes, source: str) -> str:
    """The text of a spec file: UTF-8 (a byte order mark is dropped), else a SpecError naming
    the byte offset and line of the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise SpecError(
            [Problem("", f"not UTF-8 text: byte 0x{byte} at offset {exc.start} cannot be "
                     "decoded; save the spec as UTF-8", line)],
            source,
        ) from None

def read_yaml_file(path: Path, label: str) -> tuple[Any, yaml.Node | None]:
    """Read and parse a spec file (:func:`parse_yaml`), refusing one larger than
    MAX_SPEC_BYTES before reading the rest of it.

    Raises
    ------
    SpecError
        If the file cannot be read, is too large, is not UTF-8 or is not valid YAML within the
        limits (``label`` names the file in the message).
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        problem = Problem("", f"cannot read spec file: {exc.strerror}")
        raise SpecError([problem], label) from None
    if len(raw) > MAX_SPEC_BYTES:
        problem = Problem("", f"the file is larger than the limit of {MAX_SPEC_BYTES} "
                          "bytes (1 MiB) for a spec")
        raise SpecError([problem], label)
    return parse_yaml(_decode_spec(raw, label), label)


def _line(node: yaml.Node | None, path: typing.Sequence[str | int]) -> int | None:
    """1-based line of the deepest node of ``path`` found in the YAML node tree."""
    if node is None:
        return None
    line = None
    cur: Any = node
    for part in path:
        if isinstance(cur, yaml.MappingNode):
            for key_node, value_node in cur.value:
                if getattr(key_node, "value", None) == str(part):
                    line = key_node.start_mark.line + 1
                    cur = value_node
                    break
            else:
                return line
        elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int):
            if not -len(cur.value) <= part < len(cur.value):
                return line
            cur = cur.value[part]
            line = cur.start_mark.line + 1
        else:
            return line
    return line
