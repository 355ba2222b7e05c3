"""Error types of the engine: every user mistake becomes one of these, never a traceback.

A :class:`Problem` names the file, the variable (or field) and what is wrong, with a
hint where one exists. :class:`ModelError` carries every problem found, so ``lxsd check``
can list them all at once.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a model, scenario or input file."""

    file: str
    variable: str | None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file or "<model>"
        if self.variable:
            where += f": {self.variable}"
        text = f"{where}: {self.message}"
        if self.hint:
            text += f" (fix: {self.hint})"
        return text


class EngineError(Exception):
    """Base class of all errors the engine raises for bad input."""


class ModelError(EngineError):
    """A model (or scenario) file has one or more problems."""

    def __init__(self, problems: list[Problem] | Problem | str, file: str = "") -> None:
        if isinstance(problems, str):
            problems = [Problem(file, None, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionSyntaxError(EngineError):
    """An equation's text could not be parsed."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        self.bare_message = message
        pointer = f"\n    {text}\n    {' ' * position}^" if len(text) < 200 else ""
        super().__init__(f"{message} at column {position + 1}{pointer}")


class SimulationError(EngineError):
    """A run produced a non-finite value or could not proceed.

    The driver sets ``variable`` (the equation that failed, when known) and ``partial`` ((time, saved
    values so far), when a batch stopped part-way)."""

    variable: str | None = None
    partial: tuple | None = None
