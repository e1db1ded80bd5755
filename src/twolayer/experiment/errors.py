"""The one error type for bad experiment input, and the store's errors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec.

    Attributes
    ----------
    path : str
        Key path in the spec, e.g. ``train.steps[0].eta.alpha`` ("" for the whole spec).
    message : str
        What is wrong and what was expected.
    line : int or None
        1-based line in the YAML file, when known.
    """

    path: str
    message: str
    line: int | None = None

    def render(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"


class SpecError(ValueError):
    """A spec (YAML file or dict) is invalid.

    The message names the file (or ``<dict>``), the key path, the value and what was expected.
    The CLI prints it and exits with code 2.

    Parameters
    ----------
    problems : list of Problem
        Everything found wrong (at least one).
    source : str
        File name, or ``"<dict>"`` for a spec given as a Python dict.
    """

    def __init__(self, problems: list[Problem], source: str = "<dict>") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0].render()}"
        lines = [f"{self.source}: {len(self.problems)} problems"]
        lines += [f"  - {p.render()}" for p in self.problems]
        return "\n".join(lines)

    @property
    def path(self) -> str:
        """Key path of the first problem."""
        return self.problems[0].path


class StoreError(RuntimeError):
    """A store file cannot be used (not SQLite, not a twolayer store, newer schema, ...)."""


class StoreBusyError(StoreError):
    """Another live sweep holds the store's lock."""
