"""Errors in user-supplied files (scenarios, targets.yaml), each located at file:line:column.

`ScenarioError` is a `UsageError`, so any command that lets one escape exits 2 with the message and no
traceback (the exit-code contract for invalid input).
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file. line and column are 1-based, as editors count."""

    source: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class ScenarioError(UsageError):
    """A scenario or targets file is unreadable, unsafe or invalid. `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))

    @classmethod
    def at(cls, source: str, line: int, column: int, message: str) -> ScenarioError:
        return cls([Problem(source, line, column, message)])
