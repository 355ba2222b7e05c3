"""Unit consistency, where units are declared.

A unit is a scale times a product of symbols with integer powers: ``1e8 yuan/year``,
``person``, ``1/year``, ``dmnl``. Symbols are opaque labels, as in Vensim (``亿元``
and ``yuan`` differ unless ``[units]`` says ``"亿元" = "1e8 yuan"``); we do not use
pint because SD units are mostly such labels (万人, 吨标准煤) that pint would need
defined one by one, and a mismatch is all we need to find.

Rules: literal numbers take the unit their context needs (as Vensim); sides of
``+``, ``-``, comparisons, MIN/MAX and IF THEN ELSE branches must agree; a flow of a
stock must have the stock's unit per time unit; an equation's unit must match the
variable's declared unit. Variables without a unit are not checked.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from engine.errors import ExpressionSyntaxError, ModelError, Problem
from engine.ir import INITIAL, Model
from engine.parse.expr import BinOp, Call, Node, Num, Ref, Table, Unary, parse_expression


@dataclass(frozen=True)
class Unit:
    scale: float
    powers: tuple[tuple[str, int], ...]  # sorted symbol powers

    def __mul__(self, other: Unit) -> Unit:
        return _make(self.scale * other.scale, _combine(self.powers, other.powers, 1))

    def __truediv__(self, other: Unit) -> Unit:
        return _make(self.scale / other.scale, _combine(self.powers, other.powers, -1))

    def __pow__(self, n: int) -> Unit:
        return _make(self.scale ** n, tuple((s, p * n) for s, p in self.powers))

    def same(self, other: Unit) -> bool:
        return self.powers == other.powers and math.isclose(self.scale, other.scale, rel_tol=1e-9)

    def __str__(self) -> str:
        if not self.powers:
            return "dmnl" if self.scale == 1 else f"{self.scale:g}"
        num = [s if p == 1 else f"{s}^{p}" for s, p in self.powers if p > 0]
        den = [s if p == -1 else f"{s}^{-p}" for s, p in self.powers if p < 0]
        text = " ".join(([f"{self.scale:g}"] if self.scale != 1 else []) + (num or ["1"]))
        return text + ("/" + ("(" + " ".join(den) + ")" if len(den) > 1 else den[0]) if den else "")


DMNL = Unit(1.0, ())
FREE = "free"  # a literal number: takes whatever unit its context needs
UNKNOWN = "unknown"  # not declared, or not inferable: never checked


def _make(scale: float, powers) -> Unit:
    return Unit(scale, tuple(sorted((s, p) for s, p in powers if p != 0)))


def _combine(a, b, sign):
    d = dict(a)
    for s, p in b:
        d[s] = d.get(s, 0) + sign * p
    return tuple(d.items())


_DIMENSIONLESS = {"", "1", "dmnl", "dimensionless", "fraction", "unitless", "none", "ratio"}
_TIME_PLURALS = {"years": "year", "yr": "year", "months": "month", "days": "day", "weeks": "week",
                 "quarters": "quarter", "hours": "hour"}
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|(?P<op>[*/^()])|(?P<sym>[^\s*/^()]+))")


class UnitError(Exception):
    pass


MAX_ALIAS_CHAIN = 100


class UnitParser:
    """Parses unit text, expanding aliases declared in the model's [units] table."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases
        self.cache: dict[str, Unit] = {}
        self._chain: tuple[str, ...] = ()   # the aliases being expanded, outermost first

    def parse(self, text: str) -> Unit:
        text = text.strip()
        if text.lower() in _DIMENSIONLESS:
            return DMNL
        if text in self.cache:
            return self.cache[text]
        toks = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise UnitError(f"cannot read unit {text!r}")
            if m.lastgroup:
                toks.append((m.lastgroup, m.group(m.lastgroup)))
            pos = m.end()
        self._toks, self._i = toks, 0
        unit = self._expr()
        if self._i != len(toks):
            raise UnitError(f"cannot read unit {text!r}")
        self.cache[text] = unit
        return unit

    def _peek(self):
        return self._toks[self._i] if self._i < len(self._toks) else (None, None)

    def _expr(self) -> Unit:
        unit = self._term()
        while True:
            kind, val = self._peek()
            if kind == "op" and val in "*/":
                self._i += 1
                rhs = self._term()
                unit = unit * rhs if val == "*" else unit / rhs
            elif kind in ("num", "sym") or (kind == "op" and val == "("):
                unit = unit * self._term()
            else:
                return unit

    def _term(self) -> Unit:
        base = self._atom()
        kind, val = self._peek()
        if kind == "op" and val == "^":
            self._i += 1
            sign = 1
            kind, val = self._peek()
            if kind == "sym" and val == "-":
                sign, self._i = -1, self._i + 1
                kind, val = self._peek()
            if kind != "num" or float(val) != int(float(val)):
                raise UnitError("unit powers must be whole numbers")
            self._i += 1
            return base ** (sign * int(float(val)))
        return base

    def _atom(self) -> Unit:
        kind, val = self._peek()
        self._i += 1
        if kind == "num":
            return Unit(float(val), ())
        if kind == "sym":
            if val.lower() in _DIMENSIONLESS:
                return DMNL
            if val in self.aliases:
                # a loop is a name met again on the chain; a long chain without one is fine
                # (the cap only keeps Python's recursion limit away)
                if val in self._chain:
                    loop = self._chain[self._chain.index(val):] + (val,)
                    raise UnitError(f"unit alias {val!r} refers to itself: {' -> '.join(loop)}")
                if len(self._chain) >= MAX_ALIAS_CHAIN:
                    raise UnitError(f"unit alias chain {self._chain[0]!r} -> ... is longer than "
                                    f"{MAX_ALIAS_CHAIN} aliases; define {val!r} more directly")
                saved = (self._toks, self._i)
                try:
                    sub = UnitParser(self.aliases)
                    sub._chain = (*self._chain, val)
                    return sub.parse(self.aliases[val])
                finally:
                    self._toks, self._i = saved
            sym = _TIME_PLURALS.get(val.lower(), val.lower() if val.isascii() else val)
            return Unit(1.0, ((sym, 1),))
        if kind == "op" and val == "(":
            unit = self._expr()
            kind, val = self._peek()
            if val != ")":
                raise UnitError("unbalanced parentheses in unit")
            self._i += 1
            return unit
        raise UnitError("cannot read unit")


def check_units(model: Model, rvars=None) -> None:
    """Raise ModelError listing every unit inconsistency among declared units."""
    checker = _Checker(model)
    checker.run()
    if checker.problems:
        raise ModelError(checker.problems)


class _Checker:
    def __init__(self, model: Model) -> None:
        self.model = model
        self.parser = UnitParser(model.unit_aliases)
        self.problems: list[Problem] = []
        self.units: dict[str, Unit | str] = {}
        try:
            self.time = self.parser.parse(model.time.unit)
        except UnitError:
            self.time = Unit(1.0, ((model.time.unit, 1),))
        for name, var in model.variables.items():
            if var.unit is None:
                self.units[name] = UNKNOWN
                continue
            try:
                self.units[name] = self.parser.parse(var.unit)
            except UnitError as exc:
                self.problems.append(Problem(model.file, name, f"{exc}",
                                             "write e.g. '1e8 yuan/year', '1/year', 'dmnl'"))
                self.units[name] = UNKNOWN

    def run(self) -> None:
        for name, var in self.model.variables.items():
            self.owner = name
            declared = self.units[name]
            if var.kind in ("auxiliary", "flow"):
                for sel in var.equations:
                    got = self.infer_held(var, sel)
                    self.expect(declared, got, f"the equation{' for ' + sel if sel else ''}")
            elif var.kind == "stock":
                got = self.infer_held(var, INITIAL) if var.initial else self.infer_text("0")
                self.expect(declared, got, "the initial value")
                if isinstance(declared, Unit):
                    want = declared / self.time
                    for flow in var.inflows + var.outflows:
                        fu = self.units.get(flow, UNKNOWN)
                        if isinstance(fu, Unit) and not fu.same(want):
                            self.problems.append(Problem(self.model.file, name,
                                                         f"units: flow {flow!r} is in {fu}, but a flow of this stock "
                                                         f"must be in {want} (stock unit per {self.model.time.unit})"))

    def expect(self, declared, got, what: str) -> None:
        if isinstance(declared, Unit) and isinstance(got, Unit) and not declared.same(got):
            self.problems.append(Problem(self.model.file, self.owner,
                                         f"units: {what} gives {got}, but the variable declares {declared}",
                                         "fix the equation or the declared unit, or skip the check with --no-units"))

    def infer_held(self, var, selector: str):
        """Units of a variable's parsed equation (Variable.ast), UNKNOWN where it does not parse."""
        try:
            return self.infer(var.ast(selector))
        except ExpressionSyntaxError:
            return UNKNOWN  # reported by the resolver

    def infer_text(self, text: str):
        try:
            return self.infer(parse_expression(text))
        except ExpressionSyntaxError:
            return UNKNOWN  # reported by the resolver

    def agree(self, a, b, what: str):
        if isinstance(a, Unit) and isinstance(b, Unit):
            if not a.same(b):
                self.problems.append(Problem(self.model.file, self.owner, f"units: {what} mixes {a} and {b}",
                                             "both sides must have the same unit"))
            return a
        if isinstance(a, Unit):
            return a
        if isinstance(b, Unit):
            return b
        return UNKNOWN if UNKNOWN in (a, b) else FREE

    @staticmethod
    def mul(a, b):
        if UNKNOWN in (a, b):
            return UNKNOWN
        if a == FREE:
            return b
        if b == FREE:
            return a
        return a * b

    @staticmethod
    def inv(a):
        return a if not isinstance(a, Unit) else DMNL / a

    def infer(self, node: Node):
        if isinstance(node, Num):
            return FREE
        if isinstance(node, Table):
            return UNKNOWN
        if isinstance(node, Ref):
            if node.name in self.units:
                return self.units[node.name]
            up = node.name.upper()
            if up in ("TIME", "TIME_STEP", "INITIAL_TIME", "FINAL_TIME", "SAVEPER"):
                return self.time
            return UNKNOWN
        if isinstance(node, Unary):
            inner = self.infer(node.operand)
            return DMNL if node.op == "not" else inner
        if isinstance(node, BinOp):
            a, b = self.infer(node.left), self.infer(node.right)
            op = node.op
            if op in ("+", "-"):
                return self.agree(a, b, f"'{op}'")
            if op in ("=", "<>", "<", "<=", ">", ">="):
                self.agree(a, b, f"comparison '{op}'")
                return DMNL
            if op in ("and", "or"):
                return DMNL
            if op == "*":
                return self.mul(a, b)
            if op == "/":
                return self.mul(a, self.inv(b)) if b != FREE else a
            if op == "^":
                return self.power(a, node.right)
        if isinstance(node, Call):
            return self.call(node)
        return UNKNOWN

    def power(self, base, exponent: Node):
        if base in (FREE, UNKNOWN):
            return base
        if base.same(DMNL):
            return DMNL
        if isinstance(exponent, Num) and exponent.value == int(exponent.value):
            return base ** int(exponent.value)
        if isinstance(exponent, Unary) and exponent.op == "-" and isinstance(exponent.operand, Num) \
                and exponent.operand.value == int(exponent.operand.value):
            return base ** -int(exponent.operand.value)
        return UNKNOWN

    def call(self, node: Call):
        try:
            return self._call(node)
        except IndexError:  # wrong number of arguments: the resolver reports it
            return UNKNOWN

    def _call(self, node: Call):
        var = self.model.variables.get(node.func)
        if var is not None and var.kind == "lookup":
            self.infer(node.args[0])
            return self.units.get(node.func, UNKNOWN)
        f = node.func.upper()
        args = [self.infer(a) for a in node.args]
        if f in ("MIN", "MAX"):
            return self.agree(args[0], args[1], f)
        if f == "IF_THEN_ELSE" and len(args) == 3:
            return self.agree(args[1], args[2], "IF THEN ELSE branches")
        if f in ("ABS", "INTEGER", "INT", "QUANTUM", "MODULO", "SUM", "VMIN", "VMAX", "SMOOTH", "SMOOTHI",
                 "SMOOTH3", "SMOOTH3I", "SMOOTHN", "DELAY1", "DELAY1I", "DELAY3", "DELAY3I", "DELAYN",
                 "DELAY_FIXED", "INITIAL", "FORECAST", "ACTIVE_INITIAL") and args:
            return args[0]
        if f in ("EXP", "LN", "LOG", "SIN", "COS", "TAN", "ARCSIN", "ARCCOS", "ARCTAN", "SIGN", "PULSE",
                 "PULSE_TRAIN"):
            return DMNL
        if f == "TREND":
            return self.inv(self.time)
        if f == "SQRT" and args and isinstance(args[0], Unit):
            if all(p % 2 == 0 for _, p in args[0].powers):
                return _make(math.sqrt(args[0].scale), tuple((s, p // 2) for s, p in args[0].powers))
            return UNKNOWN
        if f == "POWER" and len(node.args) == 2:
            return self.power(args[0], node.args[1])
        if f in ("XIDZ", "ZIDZ") and len(args) >= 2:
            ratio = self.mul(args[0], self.inv(args[1])) if args[1] != FREE else args[0]
            if f == "XIDZ" and len(args) == 3:
                return self.agree(ratio, args[2], "XIDZ's result and its fallback")
            return ratio
        if f == "STEP" and args:
            return args[0]
        if f == "RAMP" and args:
            return self.mul(args[0], self.time)
        return UNKNOWN
