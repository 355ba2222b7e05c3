"""The model's structure, read from its equations: causal links with their polarity,
feedback loops, a stock-flow diagram (Graphviz DOT) and an equation listing.

Link polarity is found from the equation's form, assuming (as SD quantities usually
are) that the other variables in it are positive: ``y = a * x`` and ``y = x / b`` give
x -> y positive, ``y = a - x`` and ``y = a / x`` negative; an outflow drains its stock.
Where the sign cannot be told (IF THEN ELSE, a non-monotone lookup, a product with a
difference) the link is marked unknown (0), and so is every loop through it.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from engine.errors import EngineError
from engine.ir import Model
from engine.parse.expr import BinOp, Call, Node, Num, Ref, Unary, parse_expression, references

_INCREASING = {"MIN", "MAX", "ABS", "EXP", "LN", "LOG", "SQRT", "INTEGER", "INT", "SUM", "VMIN", "VMAX", "PROD",
               "SMOOTH", "SMOOTHI", "SMOOTH3", "SMOOTH3I", "SMOOTHN", "DELAY1", "DELAY1I", "DELAY3", "DELAY3I",
               "DELAYN", "DELAY_FIXED", "INITIAL", "FORECAST", "STEP", "QUANTUM", "ACTIVE_INITIAL"}


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    polarity: int  # +1, -1, or 0 when it cannot be told
    kind: str = "info"  # info | flow (a flow filling or draining its stock)


@dataclass(frozen=True)
class Loop:
    variables: tuple[str, ...]
    polarity: int  # +1 reinforcing, -1 balancing, 0 unknown

    @property
    def kind(self) -> str:
        return {1: "reinforcing (R)", -1: "balancing (B)", 0: "polarity unknown"}[self.polarity]


def _combine(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a == b else 0


def _sign(node: Node, x: str, model: Model) -> int | None:
    """Sign of d(node)/d(x) under positivity; None if x does not appear; 0 if unknown."""
    if isinstance(node, Num):
        return None
    if isinstance(node, Ref):
        return 1 if node.name == x else None
    if isinstance(node, Unary):
        s = _sign(node.operand, x, model)
        return None if s is None else (-s if node.op == "-" else (0 if node.op == "not" else s))
    if isinstance(node, BinOp):
        return _binop_sign(node, _sign(node.left, x, model), _sign(node.right, x, model))
    if isinstance(node, Call):
        return _call_sign(node, [_sign(arg, x, model) for arg in node.args], model)
    return 0


def _binop_sign(node: BinOp, a: int | None, b: int | None) -> int | None:
    """Sign of a binary operation's derivative from its operands' signs a and b."""
    if node.op == "+":
        return _combine(a, b)
    if node.op == "-":
        return _combine(a, None if b is None else -b)
    if node.op == "*":
        return _combine(a if a is None or _positive(node.right) else 0,
                        b if b is None or _positive(node.left) else 0)
    if node.op == "/":
        return _combine(a if a is None or _positive(node.right) else 0,
                        None if b is None else (-b if _positive(node.left) else 0))
    if node.op == "^":
        if b is not None:
            return 0
        return a if isinstance(node.right, Num) and node.right.value > 0 else (None if a is None else 0)
    return None if a is None and b is None else 0


def _call_sign(node: Call, signs: list[int | None], model: Model) -> int | None:
    """Sign of a function call's derivative from its arguments' signs (a lookup: its monotonicity)."""
    if all(s is None for s in signs):
        return None
    f = node.func.upper()
    var = model.variables.get(node.func)
    if var is not None and var.kind == "lookup":
        ys = var.ys if var.ys and not isinstance(var.ys[0], tuple) else ()
        diffs = [b - a for a, b in itertools.pairwise(ys)]
        mono = 1 if diffs and all(d >= 0 for d in diffs) else (-1 if diffs and all(d <= 0 for d in diffs) else 0)
        return signs[0] * mono if signs[0] is not None else None
    if f in _INCREASING:
        return signs[0] if f not in ("MIN", "MAX") else _combine(signs[0], signs[1] if len(signs) > 1 else None)
    if f in ("XIDZ", "ZIDZ"):
        a, b = signs[0], signs[1]
        return _combine(a, None if b is None else -b)
    if f == "TREND":
        return signs[0]
    return 0


def _positive(node: Node) -> bool:
    """Whether an expression is taken as positive: numbers > 0, variables, and their products."""
    if isinstance(node, Num):
        return node.value > 0
    if isinstance(node, Ref):
        return True
    if isinstance(node, BinOp) and node.op in ("*", "/", "^"):
        return _positive(node.left) and (node.op == "^" or _positive(node.right))
    if isinstance(node, Call):
        return node.func.upper() in _INCREASING or node.func.upper() in ("XIDZ", "ZIDZ")
    return False


def links(model: Model) -> list[Link]:
    """Every causal link of the model, with its polarity."""
    out: list[Link] = []
    for name, var in model.variables.items():
        if var.kind == "stock":
            for f in var.inflows:
                out.append(Link(f, name, 1, "flow"))
            for f in var.outflows:
                out.append(Link(f, name, -1, "flow"))
            continue
        if var.kind not in ("auxiliary", "flow"):
            continue
        asts = []
        for text in var.equations.values():
            try:
                asts.append(parse_expression(text))
            except EngineError:  # a model that does not parse has no structure to show
                continue
        sources = {name for ast in asts for name in references(ast) if name in model.variables}
        for src in sorted(sources):
            if model.variables[src].kind == "lookup":
                continue
            pol: int | None = None
            for ast in asts:
                pol = _combine(pol, _sign(ast, src, model))
            out.append(Link(src, name, 0 if pol is None else pol))
    return out


def feedback_loops(model: Model, max_length: int = 10, max_loops: int = 500) -> list[Loop]:
    """Elementary feedback loops (through at least one stock), shortest first."""
    graph: dict[str, list[tuple[str, int]]] = {}
    for link in links(model):
        graph.setdefault(link.source, []).append((link.target, link.polarity))
    stocks = {n for n, v in model.variables.items() if v.kind == "stock"}
    loops: list[Loop] = []
    seen: set[frozenset] = set()
    order = sorted(graph)
    rank = {n: i for i, n in enumerate(order)}
    for start in order:
        # loops whose smallest-ranked member is `start` (each loop found once)
        stack = [(start, [start], 1)]
        while stack and len(loops) < max_loops:
            node, path, pol = stack.pop()
            for nxt, p in graph.get(node, ()):
                if nxt == start:
                    key = frozenset(path)
                    if key not in seen and stocks & set(path):
                        seen.add(key)
                        first = next(i for i, v in enumerate(path) if v in stocks)  # read from a stock
                        loops.append(Loop(tuple(path[first:] + path[:first]), pol * p))
                elif nxt not in path and rank.get(nxt, -1) > rank[start] and len(path) < max_length:
                    stack.append((nxt, path + [nxt], pol * p))
    loops.sort(key=lambda lp: (len(lp.variables), lp.variables))
    return loops


def stock_flow_dot(model: Model, lang: str = "en") -> str:
    """A Graphviz DOT diagram: stocks as boxes, flows as valves (double arrows), links as arrows."""
    def label(name: str) -> str:
        var = model.variables[name]
        text = (var.label_zh if lang == "zh" else var.label_en) or name
        return text.replace('"', "'")

    lines = ["digraph model {", '  rankdir=LR; fontname="Noto Sans CJK SC";',
             '  node [fontname="Noto Sans CJK SC", fontsize=10]; edge [fontsize=8];']
    for name, var in model.variables.items():
        if var.kind == "stock":
            lines.append(f'  "{name}" [shape=box, style=filled, fillcolor="#dbe9f6", label="{label(name)}"];')
        elif var.kind == "flow":
            lines.append(f'  "{name}" [shape=hexagon, label="{label(name)}"];')
        elif var.kind in ("auxiliary", "data"):
            lines.append(f'  "{name}" [shape=ellipse, label="{label(name)}"];')
    for link in links(model):
        src, dst = model.variables[link.source], model.variables[link.target]
        if src.kind == "constant" or dst.kind == "constant":
            continue
        sign = {1: "+", -1: "−", 0: "?"}[link.polarity]
        if link.kind == "flow":
            lines.append(f'  "{link.source}" -> "{link.target}" [penwidth=2.5, color="#3b6ea5", label="{sign}"];')
        else:
            lines.append(f'  "{link.source}" -> "{link.target}" [color="#888888", label="{sign}"];')
    lines.append("}")
    return "\n".join(lines)


def equation_listing(model: Model, lang: str = "en") -> str:
    """Every variable as a markdown table row: name, kind, unit, label, equation, source."""
    rows = ["| name | kind | unit | label | equation | source |", "|---|---|---|---|---|---|"]
    for name, v in model.variables.items():
        dims = f"[{','.join(v.dims)}]" if v.dims else ""
        if v.kind == "constant":
            eq = str(v.value) + (f" (range {v.range[0]:g}–{v.range[1]:g})" if v.range else "")
        elif v.kind == "stock":
            eq = (f"INTEG({' + '.join(v.inflows) or '0'}{''.join(' − ' + o for o in v.outflows)}, {v.initial})")
        elif v.kind in ("flow", "auxiliary"):
            eq = "; ".join(f"[{k}] {e}" if k else e for k, e in v.equations.items())
        elif v.kind == "lookup":
            eq = "table"
        else:
            eq = f"series {v.times[0]:g}–{v.times[-1]:g}" if v.times else "series"
        label = (v.label_zh if lang == "zh" else v.label_en) or ""
        cells = [f"`{name}{dims}`", v.kind, v.unit or "", label, f"`{eq}`", v.source or ""]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(rows)
