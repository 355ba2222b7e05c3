"""Element-level evaluation order for variables that form a loop only between different elements.

Vensim orders equations element by element: ``x[t2] = y[t1]``, ``y[Target] = x[Target] * 2`` is a
loop between the variables x and y, but not between their elements (x[t1] -> y[t1] -> x[t2] -> y[t2]),
so Vensim runs it (C-LEARN's cumulative emission targets are built this way). The engine orders whole
variables everywhere else; only the variables of such a loop (one strongly connected component of the
variable graph) are split into *chunks*: elements of one variable (boxes of its pieces) computed by one
statement each, in an order in which every element is computed after the elements it reads. A loop that remains
between elements is an algebraic loop, reported with the elements in it.

Which elements of a variable an equation reads is found with the compiler itself, so it follows the
compiler's subscript rules exactly (subranges, mappings, positional correspondences, reductions): the
reference is compiled in the piece's context and evaluated with the variable's value replaced by the
flat index of each element. A reference inside a function that mixes elements (VECTOR SORT ORDER,
ALLOCATE ...) is taken to read every element of the variable.
"""
from __future__ import annotations

import graphlib
import itertools
import types
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engine.compile.expressions import CExpr, Ctx, DimensionError, ExprCompiler, vname
from engine.parse.expr import BinOp, Call, Node, Ref, Unary
from engine.resolve import builtins
from engine.resolve.structure import Piece, Region, RVar

# functions whose value at an element reads their arguments at that element only (reductions over a
# `d!` axis show up as extra axes of the reference, so they are exact too)
_MIXING = {"VECTOR_SELECT", "INVERT_MATRIX", "VECTOR_SORT_ORDER", "VECTOR_REORDER", "VECTOR_RANK",
           "VECTOR_ELM_MAP", "ALLOCATE_BY_PRIORITY", "ALLOCATE_AVAILABLE"}


@dataclass(frozen=True)
class Chunk:
    """Elements of the variable ``name`` computed together (one statement): ``parts`` holds
    (piece number among the phase's pieces, box), a box giving positions along each axis of the
    variable's own array."""

    name: str
    parts: tuple[tuple[int, tuple[tuple[int, ...], ...]], ...]


class ElementLoop(Exception):
    """A loop between elements: ``path`` names them in order (``x[t1]``, ``y[t1]``, ...)."""

    def __init__(self, path: list[str]) -> None:
        super().__init__(" -> ".join(path))
        self.path = path


def phase_pieces(rv: RVar, phase: str) -> list[Piece]:
    """The pieces that compute ``rv`` in phase 'init' or 'dyn' (as graph.var_deps reads them)."""
    if phase == "init" and rv.init_pieces is not None:
        return rv.init_pieces
    return rv.pieces or []


class ElementOrder:
    """Orders the elements of loops for one model (``ex`` is the model's expression compiler)."""

    def __init__(self, ex: ExprCompiler, rvars: dict[str, RVar]) -> None:
        self.ex = ex
        self.rvars = rvars
        self._alias = itertools.count()

    # ------------------------------------------------------------------ layout
    def _full(self, rv: RVar) -> tuple[int, ...]:
        return tuple(len(self.ex.elements(d)) for d in rv.dims)

    def _ctx_positions(self, rv: RVar, piece_region: Region | None) -> list[tuple[int, ...]]:
        """Absolute positions, per axis, of the context a piece of rv is compiled in (internal
        variables: their host piece's region, which is also the layout of their own array)."""
        region = rv.context if rv.internal else piece_region
        full = self._full(rv)
        return [tuple(range(n)) if r is None else tuple(r) for r, n in zip(region or (None,) * len(full), full,
                                                                           strict=True)]

    def _ctx(self, rv: RVar, piece: Piece, region: Region | None = None) -> Ctx:
        where = region if region is not None else (rv.context if rv.internal else piece.region)
        return Ctx(rv.host or rv.name, rv.dims, where or (None,) * len(rv.dims))

    def _elements(self, rv: RVar, phase: str) -> dict[tuple[int, ...], int]:
        """Each element of rv's own array (local positions) -> the index of the piece that computes it."""
        out: dict[tuple[int, ...], int] = {}
        for k, p in enumerate(phase_pieces(rv, phase)):
            cpos = self._ctx_positions(rv, p.region)
            axes: list[Sequence[int]]
            if rv.internal:
                axes = [range(len(c)) for c in cpos]
            else:
                axes = [range(n) if r is None else r for r, n in zip(p.region, self._full(rv), strict=True)]
            for el in itertools.product(*axes):
                out[el] = k  # later pieces overwrite earlier ones, as the compiled value does
        return out

    def label(self, name: str, local: tuple[int, ...]) -> str:
        """``x[e1,e2]`` for an element (internal variables by their host and its elements)."""
        rv = self.rvars[name]
        if not rv.dims:
            return rv.host or name
        if rv.internal:
            cpos = self._ctx_positions(rv, None)
            local = tuple(c[i] for c, i in zip(cpos, local, strict=True))
        elems = [self.ex.elements(d)[i] for d, i in zip(rv.dims, local, strict=True)]
        return f"{rv.host or name}[{','.join(elems)}]"

    # ------------------------------------------------------------------ dependencies
    def _refs(self, node: Node, loop: set[str], mixing: bool = False) -> list[tuple[Ref, bool]]:
        out: list[tuple[Ref, bool]] = []
        stack = [(node, mixing)]
        while stack:
            n, mix = stack.pop()
            if isinstance(n, Ref):
                if n.name in loop:
                    out.append((n, mix))
            elif isinstance(n, Call):
                f = n.func.upper()
                known = f in builtins.STATELESS or (n.func in self.rvars and self.rvars[n.func].kind == "lookup")
                stack.extend((a, mix or f in _MIXING or not known) for a in n.args)
            elif isinstance(n, BinOp):
                stack.extend(((n.left, mix), (n.right, mix)))
            elif isinstance(n, Unary):
                stack.append((n.operand, mix))
        return out

    def _probe(self, ref: Ref, ctx: Ctx) -> np.ndarray | None:
        """For each element of ctx (axes ctx.dims, then the reference's own extra axes), the flat
        index of the element of ``ref.name`` it reads; None when that cannot be worked out."""
        target = self.rvars[ref.name]
        try:
            e = self.ex.compile(ref, ctx)
            axes = tuple(ctx.dims) + tuple(a for a in e.axes if a not in ctx.dims)
            code = self.ex.align(CExpr(e.code, e.axes), axes, full=True) if axes else e.code
        except DimensionError:
            return None
        g = dict(self.ex.globals)
        g[vname(ref.name)] = np.arange(float(target.size)).reshape(target.sizes + (1,))
        src = f"def _probe():\n    return {code}\n"
        fn_code = next(c for c in compile(src, "<element-probe>", "exec").co_consts
                       if isinstance(c, types.CodeType) and c.co_name == "_probe")
        try:
            value = np.asarray(types.FunctionType(fn_code, g, "_probe")(), dtype=float)
        except Exception:  # noqa: BLE001 - any surprise: the reference reads every element
            return None
        return value.reshape(value.shape[:len(axes)] + (-1,))[..., 0] if axes else value.reshape(-1)[:1]

    def deps(self, loop: set[str], phase: str) -> dict[tuple[str, tuple[int, ...]], set[tuple[str, tuple[int, ...]]]]:
        """Element graph of a loop: (name, local position) -> the elements of the loop it reads."""
        out: dict = {}
        for name in sorted(loop):
            rv = self.rvars[name]
            pieces = phase_pieces(rv, phase)
            elements = self._elements(rv, phase)
            by_piece: dict[int, list[tuple[int, ...]]] = {}
            for el, k in elements.items():
                by_piece.setdefault(k, []).append(el)
            for k, els in by_piece.items():
                p = pieces[k]
                ctx = self._ctx(rv, p)
                cpos = self._ctx_positions(rv, p.region)
                reads: list[tuple[str, Any]] = []
                for ref, mix in self._refs(p.ast, loop):
                    tgt = self.rvars[ref.name]
                    every = {(ref.name, idx) for idx in np.ndindex(*tgt.sizes)}
                    if mix:  # the function may read any element the reference hands it
                        arr = None if tgt.internal else self._probe(ref, ctx)
                        reads.append(("all", every if arr is None else {
                            (ref.name, tuple(int(i) for i in np.unravel_index(int(f), tgt.sizes)))
                            for f in np.unique(arr)}))
                    elif tgt.internal:
                        reads.append(("same", ref.name))  # laid out as the context: element for element
                    else:
                        arr = self._probe(ref, ctx)
                        reads.append(("all", every) if arr is None else ("map", (ref.name, tgt.sizes, arr)))
                for el in els:
                    c = el if rv.internal else tuple(cp.index(i) for cp, i in zip(cpos, el, strict=True))
                    d: set = set()
                    for how, what in reads:
                        if how == "all":
                            d |= what
                        elif how == "same":
                            d.add((what, c))
                        else:
                            tname, tsizes, marr = what
                            at = tuple(ci if marr.shape[j] > 1 else 0 for j, ci in enumerate(c[:marr.ndim]))
                            for flat in np.unique(np.asarray(marr[at]).ravel()):
                                d.add((tname, tuple(int(i) for i in np.unravel_index(int(flat), tsizes))))
                    out[(name, el)] = d
        return out

    # ------------------------------------------------------------------ order
    def order(self, loop: set[str], phase: str) -> list[Chunk]:
        """Chunks computing every element of the loop's variables, each after what it reads;
        raises ElementLoop when elements depend on each other in a loop."""
        g = self.deps(loop, phase)
        ts = graphlib.TopologicalSorter({k: sorted(v) for k, v in sorted(g.items())})
        try:
            ts.prepare()
        except graphlib.CycleError as exc:
            labels = [self.label(n, el) for n, el in reversed(exc.args[1])]  # each needs the next
            path = [lab for i, lab in enumerate(labels) if i == 0 or lab != labels[i - 1]]
            raise ElementLoop(path) from None
        pieces_of = {name: self._elements(self.rvars[name], phase) for name in loop}
        chunks: list[Chunk] = []
        while ts.is_active():
            ready = sorted(ts.get_ready())
            groups: dict[str, dict[int, list[tuple[int, ...]]]] = {}
            for name, el in ready:
                if el in pieces_of[name]:   # an element no piece computes is reported by the resolver
                    groups.setdefault(name, {}).setdefault(pieces_of[name][el], []).append(el)
            for name, by_piece in groups.items():
                parts: list[tuple[int, tuple[tuple[int, ...], ...]]] = []
                for k, els in by_piece.items():
                    axes = tuple(tuple(sorted({e[j] for e in els})) for j in range(len(els[0])))
                    if int(np.prod([len(a) for a in axes])) == len(els):
                        parts.append((k, axes))
                    else:
                        parts.extend((k, tuple((i,) for i in e)) for e in els)
                chunks.append(Chunk(name, tuple(parts)))
            ts.done(*ready)
        return chunks

    # ------------------------------------------------------------------ code
    def code(self, chunk: Chunk, phase: str, first: bool) -> list[str]:
        """Statements computing one chunk into the variable's array (allocated by its first chunk)."""
        rv = self.rvars[chunk.name]
        lines: list[str] = []
        values = []
        for k, box in chunk.parts:
            value = self._part(rv, phase_pieces(rv, phase)[k], box, lines)
            idx = np.ix_(*[np.array(a, dtype=np.intp) for a in box]) + (slice(None),) if box else (slice(None),)
            values.append(f"({self.ex.const_global(idx, '_reg')}, {value})")
        target = vname(chunk.name)
        if not first:
            values.insert(0, f"({self.ex.const_global((Ellipsis,), '_reg')}, {target})")
        lines.append(f"{target} = _rt.assemble({rv.sizes}, [{', '.join(values)}])")
        return lines

    def _part(self, rv: RVar, p: Piece, box: tuple[tuple[int, ...], ...], lines: list[str]) -> str:
        """Code for piece p's value over a box of rv's elements (statements it needs go to ``lines``)."""
        cpos = self._ctx_positions(rv, p.region)
        if rv.internal:
            absolute = tuple(tuple(c[i] for i in loc) for c, loc in zip(cpos, box, strict=True))
        else:
            absolute = box
        sizes = tuple(len(a) for a in box)
        aliases: dict[str, RVar] = {}

        def alias(node: Node) -> Node:
            if isinstance(node, Ref) and node.name in self.rvars and self.rvars[node.name].internal:
                inner = self.rvars[node.name]
                key = f"{node.name}__part{next(self._alias)}"
                ipos = self._ctx_positions(inner, None)
                idx = np.ix_(*[np.array([ip.index(a) for a in ax], dtype=np.intp)
                               for ip, ax in zip(ipos, absolute, strict=True)]) + (slice(None),)
                lines.append(f"{vname(key)} = {vname(node.name)}[{self.ex.const_global(idx, '_reg')}]")
                aliases[key] = replace(inner, name=key, sizes=sizes, context=absolute)
                return Ref(key, node.subs)
            if isinstance(node, Call):
                return Call(node.func, tuple(alias(a) for a in node.args), node.subs)
            if isinstance(node, BinOp):
                return BinOp(node.op, alias(node.left), alias(node.right))
            if isinstance(node, Unary):
                return Unary(node.op, alias(node.operand))
            return node

        ast = alias(p.ast)
        self.rvars.update(aliases)
        try:
            return self.ex.piece_value(ast, self._ctx(rv, p, absolute), sizes)
        finally:
            for key in aliases:
                del self.rvars[key]

