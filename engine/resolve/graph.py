"""Dependency graphs and evaluation order, found once at build time.

Two orders are needed: the *initial* order (stocks stand for their initial-value
equations; used once at the start) and the *dynamic* order (stocks and delays are
state, so they break loops; used every step). A loop that no stock breaks is an
algebraic loop: an error naming the variables in it.
"""
from __future__ import annotations

import graphlib

from engine.parse.expr import Call, Node, references
from engine.resolve import builtins
from engine.resolve.structure import RVar

STATE_KINDS = ("stock", "delay_fixed")


def node_deps(node: Node, rvars: dict[str, RVar]) -> set[str]:
    """Variables an expression reads (lookup tables are fixed data, not dependencies)."""
    return {n for n in references(node) if n in rvars}


def var_deps(rv: RVar, rvars: dict[str, RVar], phase: str) -> set[str]:
    """What ``rv`` needs to be computed in phase 'init' or 'dynamic'."""
    if phase == "init":
        pieces = rv.init_pieces if rv.init_pieces is not None else rv.pieces
    else:
        if rv.kind in STATE_KINDS:
            return set()
        pieces = rv.pieces
    deps: set[str] = set()
    for p in pieces or []:
        deps |= node_deps(p.ast, rvars)
    if phase == "init" and rv.kind == "delay_fixed" and rv.delay_time is not None:
        deps |= node_deps(rv.delay_time, rvars)
    return deps


def uses_time(rv: RVar) -> bool:
    """Whether an equation reads the clock (TIME or a time-input function)."""
    from engine.parse.expr import BinOp, Ref, Unary

    stack: list[Node] = [p.ast for p in rv.pieces]
    while stack:
        n = stack.pop()
        if isinstance(n, Ref) and n.name.upper() == "TIME":
            return True
        if isinstance(n, Call):
            if n.func.upper() in builtins.TIME_INPUTS:
                return True
            stack.extend(n.args)
        elif isinstance(n, BinOp):
            stack.extend((n.left, n.right))
        elif isinstance(n, Unary):
            stack.append(n.operand)
    return False


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
        return None
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        return cycle


def order(graph: dict[str, set[str]]) -> list[str]:
    """A topological order of ``graph`` (name -> dependencies), deterministic."""
    ts = graphlib.TopologicalSorter({k: sorted(v) for k, v in sorted(graph.items())})
    return list(ts.static_order())


def closure(targets: set[str], graph: dict[str, set[str]]) -> set[str]:
    """Every node ``targets`` need, themselves included."""
    seen: set[str] = set()
    stack = list(targets)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(graph.get(n, ()))
    return seen


def loops(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of ``graph`` that hold a loop (two or more nodes, or one
    that needs itself), in a deterministic order (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    n = stack.pop()
                    on_stack.discard(n)
                    comp.append(n)
                    if n == node:
                        break
                if len(comp) > 1 or node in graph.get(node, ()):
                    found.append(frozenset(comp))
    return sorted(found, key=lambda c: sorted(c))


def condensed_order(graph: dict[str, set[str]], blocks: list[frozenset[str]]) -> list[str | int]:
    """A topological order of ``graph`` in which each block (a loop's variables, see ``loops``) is one
    item, given by its index in ``blocks``; every other item is a node's name."""
    where = {n: i for i, b in enumerate(blocks) for n in b}

    def key(n: str) -> str:
        return f"\0{where[n]}" if n in where else n

    cg: dict[str, set[str]] = {}
    for n, deps in graph.items():
        cg.setdefault(key(n), set()).update(key(d) for d in deps if key(d) != key(n))
    return [int(k[1:]) if k.startswith("\0") else k for k in order(cg)]
