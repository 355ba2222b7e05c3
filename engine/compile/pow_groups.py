"""POWER over a subscripted variable's elements, eight at a time: the C kernel's scalar statements rewritten so that
the k-th ``np.power`` of each element's statement is computed by one vector call (``lx_vpow8`` in c_runtime.h:
glibc's AVX-512 ``pow`` from libmvec where the CPU has it, the C library's ``pow`` lane by lane elsewhere).

A variable over a dimension is one statement per element with the same shape (Linxiang's sectors: seven
Cobb-Douglas productions, labour attractions, migration elasticities), and glibc's scalar ``pow`` is most of one
run's kernel (docs/architecture.md, "One run's overhead, third pass"). Eight powers in one AVX-512 call cost about
60 ns against about 140 ns for seven scalar calls.

The rewrite moves the variable's temporaries (``_r`` lines, which never read its own elements) before its element
statements, then, innermost powers first, replaces the k-th power of every element statement by a name bound to a
lane of a vector line ``_pgv<g> = _vpow(b_0, .., b_m-1, e_0, .., e_m-1)`` placed before the element statements
(engine.compile.c_code prints it as an 8-lane call). A variable that reads its own elements, has fewer than
``MIN_GROUP`` elements, or whose elements hold different numbers of powers is left as it is.
"""
from __future__ import annotations

import ast
import re

LANES = 8
MIN_GROUP = 4   # fewer elements: the scalar calls are as fast
_SLOT = re.compile(r"v\d+")


def _powers(node: ast.AST) -> list[ast.Call]:
    """The ``np.power`` calls of an expression, each after the calls inside its arguments (post-order)."""
    found: list[ast.Call] = []

    def visit(n: ast.AST) -> None:
        for child in ast.iter_child_nodes(n):
            visit(child)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "np.power" and len(n.args) == 2 and not n.keywords:
            found.append(n)

    visit(node)
    return found


class _Swap(ast.NodeTransformer):
    def __init__(self, names: dict[int, str]) -> None:
        self.names = names

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if id(node) in self.names:
            return ast.Name(id=self.names[id(node)], ctx=ast.Load())
        self.generic_visit(node)
        return node


def group_powers(lines: list[str], first_group: int) -> tuple[list[str], int]:
    """``lines`` (one variable's statements, ``name = expression``) with its elements' powers in vector lines, and
    the number of groups used (numbered from ``first_group``); the lines unchanged where the rewrite does not apply."""
    parsed: list[tuple[str, ast.expr]] = []
    for line in lines:
        tree = ast.parse(line, mode="exec")
        st = tree.body[0] if len(tree.body) == 1 else None
        if not (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)):
            return lines, 0
        parsed.append((st.targets[0].id, st.value))
    own = {t for t, _ in parsed if _SLOT.fullmatch(t)}
    elements = [(t, v) for t, v in parsed if t in own]
    if len(elements) < MIN_GROUP:
        return lines, 0
    for _, value in parsed:   # a variable reading its own elements keeps its order
        if any(isinstance(n, ast.Name) and n.id in own for n in ast.walk(value)):
            return lines, 0
    calls = [_powers(v) for _, v in elements]
    k = len(calls[0])
    if k == 0 or any(len(c) != k for c in calls):
        return lines, 0
    # the powers of level j may hold those of earlier levels (post-order): those are named by then
    names: dict[int, str] = {}
    vector_lines: list[str] = []
    g = first_group
    for j in range(k):
        column = [c[j] for c in calls]
        for start in range(0, len(column), LANES):
            chunk = column[start:start + LANES]
            bases = [ast.unparse(_Swap(names).visit(c.args[0])) for c in chunk]
            exps = [ast.unparse(_Swap(names).visit(c.args[1])) for c in chunk]
            vector_lines.append(f"_pgv{g} = _vpow({', '.join(bases + exps)})")
            for lane, c in enumerate(chunk):
                names[id(c)] = f"_pg{g}_{lane}"
            g += 1
    temps = [f"{t} = {ast.unparse(v)}" for t, v in parsed if t not in own]
    body = [f"{t} = {ast.unparse(_Swap(names).visit(v))}" for t, v in elements]
    return temps + vector_lines + body, g - first_group

