"""Print an equation's AST (``engine.parse.expr`` nodes) in Vensim's or XMILE's syntax.

The exporters print from the parsed equation, one printer per target syntax (as PySD's builders
print from its AST), instead of rewriting the text: operators, function names, logical words and
subscripts come from the tree, so ``(a<b)or(c)`` cannot be mistaken for a call of ``or``, and
parentheses are written where the target's precedence needs them.
"""
from __future__ import annotations

from engine.errors import ExpressionSyntaxError, ModelError, Problem
from engine.parse.expr import BinOp, Call, Node, Num, Ref, Table, Unary, parse_expression

# precedence, lowest first (as the parser's): or, and, not, comparisons, + -, * /, unary, ^
_PREC = {"or": 1, "and": 2, "=": 4, "<>": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6,
         "^": 8}

VENSIM_FUNCS = {"IF_THEN_ELSE": "IF THEN ELSE", "DELAYN": "DELAY N", "SMOOTHN": "SMOOTH N", "INT": "INTEGER"}
VENSIM_TIME = {"TIME": "Time", "TIME_STEP": "TIME STEP", "INITIAL_TIME": "INITIAL TIME",
               "FINAL_TIME": "FINAL TIME", "SAVEPER": "SAVEPER"}
XMILE_FUNCS = {"SMOOTHI": "SMTH1", "SMOOTH": "SMTH1", "SMOOTH3I": "SMTH3", "SMOOTH3": "SMTH3",
               "DELAY1I": "DELAY1", "DELAY3I": "DELAY3", "DELAY_FIXED": "DELAY", "INTEGER": "INT",
               "MODULO": "MOD", "ZIDZ": "SAFEDIV", "XIDZ": "SAFEDIV"}
XMILE_TIME = {"TIME": "TIME", "TIME_STEP": "DT", "INITIAL_TIME": "STARTTIME", "FINAL_TIME": "STOPTIME",
              "SAVEPER": "SAVEPER"}


def num(v: float) -> str:
    """A number as both syntaxes write it (whole numbers without a decimal point)."""
    v = float(v)
    if v != v:
        return ":NA:"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def parse(text: str, where: str) -> Node:
    """Parse an equation for export; a syntax error names ``where`` (the variable)."""
    try:
        return parse_expression(str(text))
    except ExpressionSyntaxError as exc:
        raise ModelError(Problem("export", where, f"cannot export the equation {text!r}: {exc}")) from None


class _Printer:
    """The common walk; subclasses name functions, the clock, logic and subscripts."""

    funcs: dict[str, str] = {}
    time: dict[str, str] = {}
    logic: dict[str, str] = {}
    variables: frozenset[str] = frozenset()

    def __init__(self, lookups: frozenset[str] | set[str] = frozenset()) -> None:
        self.lookups = frozenset(lookups)

    def print(self, node: Node) -> str:
        return self._p(node, 0)

    def ref(self, node: Ref) -> str:
        if node.subs is None and node.name.upper() in self.time and node.name not in self.variables:
            return self.time[node.name.upper()]
        return node.name if node.subs is None else f"{node.name}[{','.join(node.subs)}]"

    def func(self, node: Call) -> str:
        up = node.func.upper()
        return self.funcs.get(up, up)

    def call(self, node: Call) -> str:
        args = ", ".join(self._p(a, 0) for a in node.args)
        if node.func in self.lookups:
            subs = f"[{','.join(node.subs)}]" if node.subs else ""
            return f"{node.func}{subs}({args})"
        return f"{self.func(node)}({args})"

    def table(self, node: Table) -> str:
        return "(" + ",".join(f"({num(x)},{num(y)})" for x, y in zip(node.xs, node.ys, strict=True)) + ")"

    def _p(self, node: Node, ctx: int) -> str:
        if isinstance(node, Num):
            text = num(node.value)
            return f"({text})" if node.value < 0 else text
        if isinstance(node, Ref):
            return self.ref(node)
        if isinstance(node, Table):
            return self.table(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Unary):
            if node.op == "not":
                text = f"{self.logic['not']} {self._p(node.operand, 3)}"
                return f"({text})" if ctx > 3 else text
            text = f"{node.op}{self._p(node.operand, 7)}"
            return f"({text})" if ctx > 7 else text
        if isinstance(node, BinOp):
            p = _PREC[node.op]
            op = self.logic.get(node.op, node.op)
            if node.op == "^":
                text = f"{self._p(node.left, 9)} ^ {self._p(node.right, 7)}"
            else:
                text = f"{self._p(node.left, p)} {op} {self._p(node.right, p + 1)}"
            return f"({text})" if ctx > p else text
        raise TypeError(f"not an expression node: {node!r}")


class VensimPrinter(_Printer):
    """Vensim's syntax. ``var_dims`` (name -> dims) writes implicit subscripts explicitly (``x`` of a
    variable over [sector] as ``x[sector]``); ``subst`` (range -> element or subrange) rewrites
    subscripts in a per-element equation (in ``y[heavy]``'s equation, ``x[sector]`` is ``x[heavy]``)."""

    funcs = VENSIM_FUNCS
    time = VENSIM_TIME
    logic = {"and": ":AND:", "or": ":OR:", "not": ":NOT:"}

    def __init__(self, lookups=frozenset(), var_dims: dict | None = None, subst: dict | None = None,
                 elements: dict | None = None) -> None:
        super().__init__(lookups)
        self.var_dims = var_dims or {}
        self.subst = subst or {}
        self.elements = elements or {}   # dimension or subrange -> its elements
        self.variables = frozenset(self.var_dims) | self.lookups

    def call(self, node: Call) -> str:
        # our VECTOR_ELM_MAP(x[..., d!], offset) is Vensim's VECTOR ELM MAP(x[..., first element of d], offset)
        if node.func.upper() == "VECTOR_ELM_MAP" and node.func not in self.lookups and len(node.args) == 2:
            x = node.args[0]
            if isinstance(x, Ref) and x.subs and x.subs[-1].endswith("!") and self.elements.get(x.subs[-1][:-1]):
                first = self.elements[x.subs[-1][:-1]][0]
                node = Call(node.func, (Ref(x.name, x.subs[:-1] + (first,)), node.args[1]), node.subs)
        return super().call(node)

    def _sub(self, s: str) -> str:
        return s if s.endswith("!") else self.subst.get(s, s)

    def ref(self, node: Ref) -> str:
        if node.subs is not None:
            return f"{node.name}[{','.join(self._sub(s) for s in node.subs)}]"
        if self.var_dims.get(node.name):
            return f"{node.name}[{','.join(self._sub(s) for s in self.var_dims[node.name])}]"
        return super().ref(node)

    def func(self, node: Call) -> str:
        up = node.func.upper()
        return self.funcs.get(up, up.replace("_", " "))  # Vensim's builtins are words, never underscores

    def table(self, node: Table) -> str:
        rng = f"[({num(min(node.xs))},{num(min(node.ys))})-({num(max(node.xs))},{num(max(node.ys))})]"
        return f"({rng}," + ",".join(f"({num(x)},{num(y)})" for x, y in zip(node.xs, node.ys, strict=True)) + ")"


class XmilePrinter(_Printer):
    """XMILE's syntax: ``IF c THEN a ELSE b``, Stella's function names, ``DT`` and ``STARTTIME``."""

    funcs = XMILE_FUNCS
    time = XMILE_TIME
    logic = {"and": "AND", "or": "OR", "not": "NOT"}

    def call(self, node: Call) -> str:
        if node.func.upper() == "IF_THEN_ELSE" and node.func not in self.lookups and len(node.args) == 3:
            c, a, b = (self._p(x, 0) for x in node.args)
            return f"(IF {c} THEN {a} ELSE {b})"
        return super().call(node)


def to_vensim(text: str, where: str, lookups=frozenset(), var_dims: dict | None = None,
              subst: dict | None = None, elements: dict | None = None) -> str:
    """Our equation text -> Vensim's (``elements``: dimension -> its elements, for vector functions)."""
    return VensimPrinter(lookups, var_dims, subst, elements).print(parse(text, where))


def to_xmile(text: str, where: str, lookups=frozenset()) -> str:
    """Our equation text -> XMILE's."""
    return XmilePrinter(lookups).print(parse(text, where))

