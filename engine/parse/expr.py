"""Parse equation text into a small, checked AST (no eval/exec ever touches the text).

The language is close to Vensim's: arithmetic, comparison, logic (``and``/``:AND:``),
function calls (multi-word names such as ``IF THEN ELSE`` may use spaces or
underscores), subscripted references ``x[sector]``, ``x[primary]``, ``x[sector!]``,
and inline lookup tables ``((x1,y1),(x2,y2))`` as the last argument of WITH_LOOKUP.

:func:`parse_expression` turns text into nodes; :func:`unparse` turns nodes back into
text that parses to the same nodes (tested as a round trip).
"""
from __future__ import annotations

import functools
import re
from itertools import pairwise
from dataclasses import dataclass

from engine.errors import ExpressionSyntaxError


# ---------------------------------------------------------------- nodes
@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Ref:
    """A reference to a variable, optionally subscripted. ``subs`` entries are names;
    a trailing ``!`` marks a dimension to be reduced (``SUM(x[d!])``)."""

    name: str
    subs: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Call:
    func: str  # as written; multi-word builtins joined by underscores
    args: tuple[Node, ...]
    subs: tuple[str, ...] | None = None  # a subscripted lookup: table[sector](x)


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / ^ = <> < <= > >= and or
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary:
    op: str  # - + not
    operand: Node


@dataclass(frozen=True)
class Table:
    """An inline lookup table (for WITH_LOOKUP)."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]


Node = Num | Ref | Call | BinOp | Unary | Table

# Multi-word function names, as word tuples -> canonical name.
_MULTIWORD = {
    ("IF", "THEN", "ELSE"): "IF_THEN_ELSE",
    ("PULSE", "TRAIN"): "PULSE_TRAIN",
    ("DELAY", "FIXED"): "DELAY_FIXED",
    ("WITH", "LOOKUP"): "WITH_LOOKUP",
    ("ACTIVE", "INITIAL"): "ACTIVE_INITIAL",
    ("SAMPLE", "IF", "TRUE"): "SAMPLE_IF_TRUE",
    ("TIME", "STEP"): "TIME_STEP",
    ("INITIAL", "TIME"): "INITIAL_TIME",
    ("FINAL", "TIME"): "FINAL_TIME",
    ("GET", "TIME", "VALUE"): "GET_TIME_VALUE",
    ("VECTOR", "SELECT"): "VECTOR_SELECT",
    ("VECTOR", "SORT", "ORDER"): "VECTOR_SORT_ORDER",
    ("VECTOR", "REORDER"): "VECTOR_REORDER",
    ("VECTOR", "RANK"): "VECTOR_RANK",
    ("INVERT", "MATRIX"): "INVERT_MATRIX",
    ("ALLOCATE", "BY", "PRIORITY"): "ALLOCATE_BY_PRIORITY",
    ("ALLOCATE", "AVAILABLE"): "ALLOCATE_AVAILABLE",
}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<vlogic>:(?:AND|OR|NOT):)
  | (?P<op><=|>=|<>|==|!=|[-+*/^()<>=,\[\]!])
    """,
    re.VERBOSE,
)

_COMPARE = {"=": "=", "==": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num name op end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExpressionSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = m.lastgroup
        value = m.group()
        if kind == "vlogic":
            toks.append(_Tok("name", value.strip(":").lower(), pos))
        elif kind != "ws":
            toks.append(_Tok(kind or "", value, pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return _join_multiword(toks)


_MULTI_BY_FIRST: dict[str, list[tuple[tuple[str, ...], str]]] = {}
for _words, _canon in sorted(_MULTIWORD.items(), key=lambda kv: -len(kv[0])):  # longest first
    _MULTI_BY_FIRST.setdefault(_words[0], []).append((_words, _canon))


def _join_multiword(toks: list[_Tok]) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    n_toks = len(toks)
    while i < n_toks:
        tok = toks[i]
        candidates = _MULTI_BY_FIRST.get(tok.text.upper()) if tok.kind == "name" else None
        if candidates:
            for words, canon in candidates:
                n = len(words)
                if i + n <= n_toks and all(t.kind == "name" and t.text.upper() == w
                                           for t, w in zip(toks[i + 1:i + n], words[1:], strict=True)):
                    out.append(_Tok("name", canon, tok.pos))
                    i += n
                    break
            else:
                out.append(tok)
                i += 1
        else:
            out.append(tok)
            i += 1
    return out


class _Parser:
    """A precedence-climbing parser over the token list."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: _Tok | None = None) -> ExpressionSyntaxError:
        tok = tok or self.peek()
        return ExpressionSyntaxError(message, self.text, tok.pos)

    def expect(self, text: str) -> _Tok:
        tok = self.take()
        if tok.text != text or tok.kind not in ("op",):
            got = "end of equation" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected {text!r}, found {got}", tok)
        return tok

    def is_op(self, *texts: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in texts

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.text.lower() == word

    # grammar, lowest precedence first
    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty equation")
        node = self.p_or()
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.peek().text!r}")
        return node

    def p_or(self) -> Node:
        node = self.p_and()
        while self.is_word("or"):
            self.take()
            node = BinOp("or", node, self.p_and())
        return node

    def p_and(self) -> Node:
        node = self.p_not()
        while self.is_word("and"):
            self.take()
            node = BinOp("and", node, self.p_not())
        return node

    def p_not(self) -> Node:
        if self.is_word("not"):
            self.take()
            return Unary("not", self.p_not())
        return self.p_compare()

    def p_compare(self) -> Node:
        node = self.p_add()
        while self.peek().kind == "op" and self.peek().text in _COMPARE:
            op = _COMPARE[self.take().text]
            node = BinOp(op, node, self.p_add())
        return node

    def p_add(self) -> Node:
        terms = [("+", self.p_mul())]
        while self.is_op("+", "-"):
            op = self.take().text
            terms.append((op, self.p_mul()))
        return _chain(terms, "+", "-")

    def p_mul(self) -> Node:
        terms = [("*", self.p_unary())]
        while self.is_op("*", "/"):
            op = self.take().text
            terms.append((op, self.p_unary()))
        return _chain(terms, "*", "/")

    def p_unary(self) -> Node:
        if self.is_op("-", "+"):
            op = self.take().text
            return Unary(op, self.p_unary())
        return self.p_power()

    def p_power(self) -> Node:
        base = self.p_atom()
        if self.is_op("^"):
            self.take()
            # right-associative; the exponent may carry a sign: 2^-1
            return BinOp("^", base, self.p_unary())
        return base

    def p_atom(self) -> Node:
        tok = self.peek()
        if tok.kind == "num":
            self.take()
            return Num(float(tok.text))
        if tok.kind == "op" and tok.text == "(":
            if self._looks_like_table():
                return self.p_table()
            self.take()
            node = self.p_or()
            self.expect(")")
            return node
        if tok.kind == "name":
            if tok.text.lower() in ("and", "or", "not"):
                raise self.error(f"unexpected operator {tok.text!r}")
            self.take()
            if self.is_op("("):
                return self.p_call(tok)
            if self.is_op("["):
                subs = self.p_subs()
                if self.is_op("("):
                    call = self.p_call(tok)
                    return Call(call.func, call.args, subs)
                return Ref(tok.text, subs)
            return Ref(tok.text)
        if tok.kind == "end":
            raise self.error("equation ends too early")
        raise self.error(f"unexpected {tok.text!r}")

    def p_call(self, name_tok: _Tok) -> Call:
        self.expect("(")
        args: list[Node] = []
        if not self.is_op(")"):
            while True:
                if self.is_op("(") and self._looks_like_table():
                    args.append(self.p_table())
                else:
                    args.append(self.p_or())
                if self.is_op(","):
                    self.take()
                    continue
                break
        self.expect(")")
        # Builtin names are matched case-insensitively later; a lookup's name keeps its case.
        return Call(name_tok.text, tuple(args))

    def p_subs(self) -> tuple[str, ...]:
        self.expect("[")
        subs: list[str] = []
        while True:
            tok = self.take()
            if tok.kind != "name":
                raise self.error("expected a dimension or element name in [...]", tok)
            name = tok.text
            if self.is_op("!"):
                self.take()
                name += "!"
            subs.append(name)
            if self.is_op(","):
                self.take()
                continue
            break
        self.expect("]")
        return tuple(subs)

    def _looks_like_table(self) -> bool:
        """An inline lookup table starts "( ( number , number )"; anything else is arithmetic."""
        toks, j = self.toks, self.i
        if not (toks[j].text == "(" and j + 1 < len(toks) and toks[j + 1].text == "("):
            return False
        j += 2
        for want_comma in (True, False):
            while j < len(toks) and toks[j].kind == "op" and toks[j].text in "+-":
                j += 1
            if j >= len(toks) or toks[j].kind != "num":
                return False
            j += 1
            if j >= len(toks) or toks[j].text != ("," if want_comma else ")"):
                return False
            j += 1
        return True

    def p_table(self) -> Table:
        self.expect("(")
        xs: list[float] = []
        ys: list[float] = []
        while True:
            self.expect("(")
            x = self.p_signed_number()
            self.expect(",")
            y = self.p_signed_number()
            self.expect(")")
            xs.append(x)
            ys.append(y)
            if self.is_op(","):
                self.take()
                continue
            break
        self.expect(")")
        if any(b < a for a, b in pairwise(xs)):
            raise self.error("lookup x values must be increasing")
        return Table(tuple(xs), tuple(ys))

    def p_signed_number(self) -> float:
        sign = 1.0
        while self.is_op("-", "+"):
            if self.take().text == "-":
                sign = -sign
        tok = self.take()
        if tok.kind != "num":
            raise self.error("expected a number in the lookup table", tok)
        return sign * float(tok.text)


# A chain of more operands than this is built as a balanced tree (depth log2 n), not left-nested
# (depth n): a flat sum of 1 000 terms would otherwise exceed the recursion limits of the resolver
# and the compiler. Shorter chains keep Vensim's left-to-right order, so their rounding is unchanged;
# a longer one is summed pairwise (as numpy does), equal up to rounding.
BALANCE_ABOVE = 64


def _chain(terms: list[tuple[str, Node]], same: str, inverse: str) -> Node:
    """Fold ``[(op, operand), ...]`` (the first op is ``same``) into BinOps."""
    if len(terms) <= BALANCE_ABOVE:
        node = terms[0][1]
        for op, operand in terms[1:]:
            node = BinOp(op, node, operand)
        return node
    return _balanced(terms, same, inverse)


def _balanced(terms: list[tuple[str, Node]], same: str, inverse: str) -> Node:
    # a0 op1 a1 ... = (left half) same/inverse (right half with its first op made `same`):
    # a - b + c = a - (b - c), a / b * c = a / (b / c)
    if len(terms) == 1:
        return terms[0][1]
    mid = len(terms) // 2
    left = _balanced(terms[:mid], same, inverse)
    right_terms = terms[mid:]
    op = right_terms[0][0]
    if op == inverse:
        right_terms = [(inverse if o == same else same, t) for o, t in right_terms]
    right_terms[0] = (same, right_terms[0][1])
    return BinOp(op, left, _balanced(right_terms, same, inverse))


def parse_expression(text: str) -> Node:
    """Parse one equation's text into an AST; raises ExpressionSyntaxError."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError(f"an equation must be text, not {type(text).__name__}", str(text), 0)
    return _parse_cached(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Node:
    # nodes are frozen dataclasses, so a cached tree can be shared safely
    parser = _Parser(text)
    try:
        return parser.parse()
    except RecursionError:
        raise ExpressionSyntaxError("the equation is nested too deeply (split it into several variables)",
                                    text, 0) from None


# ---------------------------------------------------------------- unparse
_PREC = {"or": 1, "and": 2, "=": 4, "<>": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6, "^": 8}


def _fmt_num(v: float) -> str:
    return repr(float(v)) if v == v and abs(v) != float("inf") else "0"


def unparse(node: Node) -> str:
    """Text for a node that parses back to the same node."""
    return _unparse(node, 0)


def _unparse(node: Node, ctx: int) -> str:
    if isinstance(node, Num):
        text = _fmt_num(node.value)
        return f"({text})" if node.value < 0 else text
    if isinstance(node, Ref):
        return node.name if node.subs is None else f"{node.name}[{', '.join(node.subs)}]"
    if isinstance(node, Table):
        pts = ", ".join(f"({_fmt_num(x)}, {_fmt_num(y)})" for x, y in zip(node.xs, node.ys, strict=True))
        return f"({pts})"
    if isinstance(node, Call):
        subs = f"[{', '.join(node.subs)}]" if node.subs else ""
        return f"{node.func}{subs}({', '.join(_unparse(a, 0) for a in node.args)})"
    if isinstance(node, Unary):
        if node.op == "not":
            text = f"not {_unparse(node.operand, 3)}"
            return f"({text})" if ctx > 3 else text
        text = f"{node.op}{_unparse(node.operand, 7)}"
        return f"({text})" if ctx > 7 else text
    if isinstance(node, BinOp):
        p = _PREC[node.op]
        if node.op == "^":
            text = f"{_unparse(node.left, 9)} ^ {_unparse(node.right, 7)}"
        else:
            text = f"{_unparse(node.left, p)} {node.op} {_unparse(node.right, p + 1)}"
        return f"({text})" if ctx > p else text
    raise TypeError(f"not a node: {node!r}")


def references(node: Node) -> set[str]:
    """Names of every variable a node refers to (function names excluded)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Ref):
            out.add(n.name)
        elif isinstance(n, Call):
            stack.extend(n.args)
        elif isinstance(n, BinOp):
            stack.extend((n.left, n.right))
        elif isinstance(n, Unary):
            stack.append(n.operand)
    return out
