"""The resolved model: every equation parsed, split into pieces over subscript regions,
and every stateful builtin (SMOOTH, DELAY, TREND, INITIAL, ...) turned into internal
variables, so the compiler sees only stocks, plain equations and static values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.parse.expr import Node

# Index positions a piece covers, per dimension of its variable; None = the whole dimension.
Region = tuple[tuple[int, ...] | None, ...]


@dataclass
class Piece:
    """One equation over one region of a variable (the whole variable for most)."""

    region: Region
    ast: Node
    is_default: bool = False


@dataclass
class RVar:
    """A resolved variable: what the compiler needs, nothing about files."""

    name: str
    kind: str  # constant | stock | auxiliary | flow | lookup | data | initial | delay_fixed
    dims: tuple[str, ...]
    sizes: tuple[int, ...]  # shape of the value without the batch axis
    pieces: list[Piece] = field(default_factory=list)  # dynamic equation (aux/flow), or the stock's rate
    init_pieces: list[Piece] | None = None  # equation used at the initial time, if different
    internal: bool = False
    host: str | None = None  # for internal variables: the user variable they came from
    context: Region | None = None  # for internal variables: the host piece's region
    non_negative: bool = False
    delay_time: Node | None = None  # delay_fixed
    delay_input: str | None = None  # delay_fixed: name of the internal aux holding the input

    @property
    def size(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n
