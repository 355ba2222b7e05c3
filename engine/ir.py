"""The engine's model representation: what a model file declares, before compilation.

It is deliberately close to PySD's abstract model (elements with components per
subscript range, stocks with an initial expression, stateful builtins kept as calls
in the equation) so that Vensim and XMILE models convert into it one to one; the
compiler (``engine.compile``) turns it into the vectorised step function.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # engine.parse imports this module
    from engine.parse.expr import Node

KINDS = ("constant", "stock", "flow", "auxiliary", "lookup", "data")
INITIAL = "\0initial"  # Variable.ast's key for a stock's initial value (no selector can be this)


class Elements(tuple):
    """A dimension's or subrange's elements: a tuple whose ``in`` and ``index`` are dictionary look-ups.

    The resolver, compiler and checks ask "is e an element of d, and where" once per element or
    equation; on a plain tuple each answer scans it, which made models with one large dimension take
    time quadratic in its size (issue 15: 20 000 elements 10 s, 80 000 elements 192 s)."""

    _pos: dict

    def __new__(cls, items=()) -> Elements:
        self = super().__new__(cls, items)
        pos: dict = {}
        for i, e in enumerate(self):
            pos.setdefault(e, i)   # the first, as tuple.index
        self._pos = pos
        return self

    def __contains__(self, item: object) -> bool:
        try:
            return item in self._pos
        except TypeError:   # an unhashable item: compared as a tuple would
            return tuple.__contains__(self, item)

    def index(self, item, *bounds) -> int:  # type: ignore[override]
        if not bounds:
            try:
                return self._pos[item]
            except (KeyError, TypeError):
                pass
        return tuple.index(self, item, *bounds)


@dataclass
class TimeSettings:
    """Simulation clock, in the model's time unit."""

    start: float
    stop: float
    dt: float
    saveper: float
    unit: str = "year"
    method: str = "euler"
    # fields given as equations (Vensim lets FINAL TIME, TIME STEP, SAVEPER and INITIAL TIME change
    # during the run): field -> the auxiliary that holds the equation. Their numbers above are the
    # values at the start, filled in when the model is compiled.
    dynamic: dict[str, str] = field(default_factory=dict)


@dataclass
class Variable:
    """One named quantity of the model.

    ``equations`` maps a selector to equation text: ``""`` for the whole variable, or
    ``"elem"`` / ``"subrange"`` / ``"e1,e2"`` (one entry per dimension) for a part of a
    subscripted variable; ``"default"`` covers elements no other selector names.
    """

    name: str
    kind: str
    dims: tuple[str, ...] = ()
    equations: dict[str, str] = field(default_factory=dict)
    value: object = None  # constants: number | nested dict/list over dims
    initial: str | None = None  # stocks
    inflows: tuple[str, ...] = ()
    outflows: tuple[str, ...] = ()
    non_negative: bool = False
    unit: str | None = None
    label_zh: str | None = None
    label_en: str | None = None
    doc: str | None = None
    source: str | None = None
    range: tuple[float, float] | None = None
    # constants: "lever" (a policy choice: a slider, set by scenarios, not sampled by default),
    # "uncertain" (sampled by ensembles and sensitivity by default), "test" (an extreme-condition
    # switch: never sampled or shown by default), "fixed" (a datum or definition). Absent: "uncertain"
    # when the constant has a range, else "fixed" (see CompiledModel.role).
    role: str | None = None
    # lookups: one table, or (subscripted lookups) one table per element in C order
    xs: tuple = ()
    ys: tuple = ()
    extrapolation: str = "clamp"
    # data (time series inputs)
    times: tuple[float, ...] = ()
    values: tuple = ()
    interpolation: str = "linear"
    internal: bool = False  # created by the compiler (delay and smooth stocks)
    # parsed equations, held with the text they came from: selector (or INITIAL) -> (text, AST)
    _asts: dict[str, tuple[str, Node]] = field(default_factory=dict, repr=False, compare=False)

    def ast(self, selector: str = "") -> Node:
        """The parsed equation of ``selector`` (a key of ``equations``; ``INITIAL`` for a stock's
        initial value), parsed once and held; the text stays the source (a changed text is parsed
        again). Raises engine.errors.ExpressionSyntaxError."""
        from engine.parse.expr import parse_expression

        text = (self.initial or "") if selector == INITIAL else self.equations[selector]
        held = self._asts.get(selector)
        if held is not None and held[0] == text:
            return held[1]
        node = parse_expression(text)
        self._asts[selector] = (text, node)
        return node


@dataclass
class Model:
    """A whole model as declared in one file."""

    name: str
    file: str
    time: TimeSettings
    dimensions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subranges: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # name -> (parent, elements)
    variables: dict[str, Variable] = field(default_factory=dict)
    # positional correspondences between dimensions of equal length (Vensim's "dim: ... -> other"),
    # symmetric: mappings[a] holds b and mappings[b] holds a
    mappings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unit_aliases: dict[str, str] = field(default_factory=dict)
    # labels of dimensions, subranges and elements: name -> {"zh": ..., "en": ...}
    element_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    label_zh: str | None = None
    label_en: str | None = None
    doc: str | None = None
    original_names: dict[str, str] = field(default_factory=dict)  # identifier -> name in an imported file
    original_element_names: dict[str, str] = field(default_factory=dict)  # element identifier -> its name there
    # the optional [presentation] table: headline variables, lever groups, actuals mapping (for front ends)
    presentation: dict = field(default_factory=dict)

    def dim_elements(self, dim: str) -> tuple[str, ...]:
        """Elements of a dimension or a subrange (an :class:`Elements`, made once and kept)."""
        if dim in self.dimensions:
            elems = self.dimensions[dim]
            if type(elems) is not Elements:
                elems = self.dimensions[dim] = Elements(elems)
            return elems
        parent, elems = self.subranges[dim]
        if type(elems) is not Elements:
            elems = Elements(elems)
            self.subranges[dim] = (parent, elems)
        return elems

    def element_label(self, name: str, lang: str = "zh") -> str:
        """A dimension's, subrange's or element's label in a language, or its name."""
        labels = self.element_labels.get(name, {})
        return labels.get(lang) or labels.get("en") or labels.get("zh") or name

    def mapped(self, a: str, b: str) -> bool:
        """Whether dimensions a and b correspond element by element, by position."""
        return b in self.mappings.get(a, ())

    def parent_dim(self, dim: str) -> str:
        """The full dimension a subrange belongs to (a dimension is its own parent)."""
        return self.subranges[dim][0] if dim in self.subranges else dim
