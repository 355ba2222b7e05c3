"""Compile a resolved model into two Python functions built once:

``init(t, dt, t0, t1, saveper, P0, N) -> (S0, P, D0, DT)``
    evaluates every initial value in dependency order; returns the packed state
    S0 of shape (rows, N), the static values P (constants, equations that never
    change, INITIAL values), the initial outputs of DELAY FIXED pipelines and
    their delay times.
``dyn(t, dt, t0, t1, saveper, S, P, D, want) -> (dS, X, outputs or None)``
    evaluates the dynamic equations in their build-time order and the stocks'
    net flows; with ``want``, also the variables asked to be saved.

Both are generated as Python source from the checked AST (see
``engine.compile.expressions``) and compiled with ``compile``; the function
objects are taken from the code object, so nothing is ``exec``'d.
"""
from __future__ import annotations

import functools
import types
from dataclasses import dataclass, field

import numpy as np

from engine.compile import runtime
from engine.compile.element_order import Chunk, ElementLoop, ElementOrder
from engine.compile.expressions import Ctx, DimensionError, ExprCompiler, vname
from engine.errors import ModelError, Problem
from engine.ir import Model
from engine.resolve import graph
from engine.resolve.structure import Region, RVar

# the phase a variable's kind puts it in before its dependencies are looked at (auxiliaries and flows are
# classified static or dynamic from their inputs; stateful kinds are "state")
_PHASE_OF_KIND = {"constant": "param", "data": "data", "lookup": "lookup", "initial": "static"}


@dataclass
class StockSlot:
    name: str
    start: int
    rows: int
    sizes: tuple[int, ...]


@dataclass
class Layout:
    """Where each stock lives in the packed state and what the static tuple holds."""

    stocks: list[StockSlot] = field(default_factory=list)
    rows: int = 0
    non_negative: list[tuple[int, int]] = field(default_factory=list)
    param_names: list[str] = field(default_factory=list)  # order of P0 (constants, data tables)
    static_names: list[str] = field(default_factory=list)  # order of P
    delay_fixed: list[str] = field(default_factory=list)  # order of D
    delay_inputs: list[str] = field(default_factory=list)  # order of X
    data_names: list[str] = field(default_factory=list)  # time-series inputs, tables at the end of P


class ModelCode:
    """Generated code for one model, with the dynamic function cached per output set."""

    def __init__(self, model: Model, rvars: dict[str, RVar]) -> None:
        self.model = model
        self.rvars = rvars
        self.globals: dict = {"np": np, "_rt": runtime}
        self.ex = ExprCompiler(model, rvars, self.globals)
        # loops between variables that are not loops between their elements (Vensim orders elements):
        # per phase ('dyn', 'init'), the loops' variables and, per loop, its chunks in evaluation order
        self.elements = ElementOrder(self.ex, rvars)
        self.blocks: dict[str, list[frozenset[str]]] = {"dyn": [], "init": []}
        self.chunks: dict[str, dict[frozenset[str], list[Chunk]]] = {"dyn": {}, "init": {}}
        self.problems: list[Problem] = []
        self.layout = Layout()
        self._dyn_cache: dict[tuple[str, ...], types.FunctionType] = {}
        self.sources: dict[str, str] = {}
        self._classify()
        if self.problems:
            raise ModelError(self.problems)
        self._piece_code: dict[tuple[str, str], list[str]] = {}
        self._compile_pieces()
        if self.problems:
            raise ModelError(self.problems)
        self.init_fn = self._build_init()

    # -------------------------------------------------------------- classification and order
    def _classify(self) -> None:
        rv = self.rvars
        self.phase: dict[str, str] = {}
        for name, v in rv.items():
            phase = _PHASE_OF_KIND.get(v.kind) or ("state" if v.kind in graph.STATE_KINDS else None)
            if phase is not None:
                self.phase[name] = phase
            if v.kind == "lookup":
                self._register_lookup(v)
        # auxiliaries: static when all their inputs are static and they do not read the clock
        dyn_graph = {n: graph.var_deps(v, rv, "dynamic") for n, v in rv.items()
                     if v.kind in ("auxiliary", "flow")}
        dyn_sub = {n: d & set(dyn_graph) for n, d in dyn_graph.items()}
        blocks = graph.loops(dyn_sub)
        if not self._order_loops(blocks, "dyn"):
            return
        for item in graph.condensed_order(dyn_sub, blocks):
            members = sorted(blocks[item]) if isinstance(item, int) else [item]
            deps = set().union(*(dyn_graph[m] for m in members)) - set(members)
            static = all(rv[m].init_pieces is None and not graph.uses_time(rv[m]) for m in members) and all(
                self.phase.get(d) in ("param", "static") for d in deps)
            for m in members:
                self.phase[m] = "static" if static else "dynamic"
        self.dyn_graph = {n: {d for d in deps if self.phase.get(d) in ("dynamic", "data")}
                          for n, deps in dyn_graph.items() if self.phase[n] == "dynamic"}
        for n in rv:
            if self.phase[n] == "data":
                self.dyn_graph[n] = set()
        self.blocks["dyn"] = [b for b in blocks if b <= self.dyn_graph.keys()]
        # the initial-value graph
        init_graph = {n: graph.var_deps(v, rv, "init") for n, v in rv.items() if v.kind != "lookup"}
        if not self._order_loops(graph.loops(init_graph), "init"):
            return
        self.init_graph = init_graph
        self._lay_out()

    def _lay_out(self) -> None:
        """The stocks' rows in the state vector, the delay buffers, and the static, parameter and data lists."""
        rv, lay = self.rvars, self.layout
        for name, v in rv.items():
            if v.kind == "stock":
                slot = StockSlot(name, lay.rows, v.size, v.sizes)
                lay.stocks.append(slot)
                if v.non_negative:
                    lay.non_negative.append((lay.rows, lay.rows + v.size))
                lay.rows += v.size
            elif v.kind == "delay_fixed":
                lay.delay_fixed.append(name)
                lay.delay_inputs.append(v.delay_input or "")
            if self.phase[name] in ("param", "data"):
                lay.param_names.append(name)
        lay.static_names = [n for n in rv if self.phase[n] in ("param", "static")]
        lay.data_names = [n for n in rv if self.phase[n] == "data"]

    def _register_lookup(self, v: RVar) -> None:
        var = self.model.variables[v.name]
        linear = var.extrapolation == "linear"
        nested = bool(var.xs) and isinstance(var.xs[0], tuple) or bool(var.ys) and isinstance(var.ys[0], tuple)
        if not v.dims:
            if nested:
                self.problems.append(Problem(self.model.file, v.name, "one table per element needs 'dims'"))
                return
            self.globals[f"_lk_{v.name}"] = functools.partial(
                runtime.lookup, xs=np.array(var.xs), ys=np.array(var.ys), linear=linear)
            return
        n = v.size
        xs = [np.array(t) for t in var.xs] if var.xs and isinstance(var.xs[0], tuple) else [np.array(var.xs)] * n
        ys = [np.array(t) for t in var.ys] if var.ys and isinstance(var.ys[0], tuple) else [np.array(var.ys)] * n
        if len(xs) != n or len(ys) != n:
            self.problems.append(Problem(self.model.file, v.name, f"has {max(len(xs), len(ys))} tables for {n} "
                                         f"elements of {list(v.dims)}", "give one x/y list per element"))
            return
        # the table number of each element: references select tables like values
        self.globals[vname(v.name)] = np.arange(n).reshape(v.sizes + (1,))
        self.globals[f"_lkx_{v.name}"] = xs
        self.globals[f"_lky_{v.name}"] = ys
        self.globals[f"_lklin_{v.name}"] = linear

    def _order_loops(self, blocks: list[frozenset[str]], phase: str) -> bool:
        """Order the elements of each loop between variables; False (with a problem) for a loop
        that is one between elements too."""
        for b in blocks:
            try:
                self.chunks[phase][b] = self.elements.order(set(b), phase)
            except ElementLoop as exc:
                path = exc.path
                owner = self._owner(min(b))
                what = ("algebraic loop (no stock in it; each needs the next): " if phase == "dyn" else
                        "initial values depend on each other in a loop (each needs the next): ")
                hint = ("put a stock (or SMOOTH/DELAY) somewhere in the loop" if phase == "dyn" else
                        "give one of the stocks a constant initial value")
                first = path[0].split("[")[0] if path else owner
                self.problems.append(Problem(self.model.file, first, what + " -> ".join(path), hint))
                return False
        self.blocks[phase] = list(blocks)
        return True

    def ordered(self, g: dict[str, set[str]], phase: str) -> list[str | Chunk]:
        """The evaluation order of graph ``g`` (a part of the phase's graph, closed under its loops):
        variable names, and where variables form a loop only between their elements, the ``Chunk``s
        that compute their elements in order (the variable's array is complete after its last chunk)."""
        blocks = [b for b in self.blocks[phase] if b <= g.keys()]
        out: list[str | Chunk] = []
        for item in graph.condensed_order(g, blocks):
            if isinstance(item, int):
                out.extend(self.chunks[phase][blocks[item]])
            else:
                out.append(item)
        return out

    def evaluation_rank(self) -> dict[str, int]:
        """Position of each dynamic variable in the per-step evaluation order."""
        return {(it.name if isinstance(it, Chunk) else it): i
                for i, it in enumerate(self.ordered(self.dyn_graph, "dyn"))}

    def _owner(self, name: str) -> str:
        v = self.rvars[name]
        return v.host or name

    # -------------------------------------------------------------- pieces
    def _ctx(self, v: RVar, region: Region) -> Ctx:
        # an internal variable is computed over its host piece's region (the resolver sets context for each)
        return Ctx(v.host or v.name, v.dims, v.context if v.internal and v.context is not None else region)

    def _value_code(self, v: RVar, pieces) -> list[str]:
        """Statements assigning v's value from its pieces."""
        target = vname(v.name)
        if len(pieces) == 1 and (v.internal or all(r is None for r in pieces[0].region)):
            p = pieces[0]
            return [f"{target} = {self.ex.piece_value(p.ast, self._ctx(v, p.region), v.sizes)}"]
        parts = []
        for p in pieces:
            region_sizes = tuple(s if r is None else len(r) for r, s in zip(p.region, v.sizes, strict=True))
            code = self.ex.piece_value(p.ast, self._ctx(v, p.region), region_sizes)
            axes_idx = [np.arange(s) if r is None else np.array(r) for r, s in zip(p.region, v.sizes, strict=True)]
            idx = np.ix_(*axes_idx) + (slice(None),) if axes_idx else (slice(None),)
            g = self.ex.const_global(idx, "_reg")
            parts.append(f"({g}, {code})")
        return [f"{target} = _rt.assemble({v.sizes}, [{', '.join(parts)}])"]

    def _compile_pieces(self) -> None:
        for name, v in self.rvars.items():
            try:
                if v.kind in ("auxiliary", "flow", "initial"):
                    self._piece_code[(name, "dyn")] = self._value_code(v, v.pieces)
                if v.init_pieces is not None:
                    self._piece_code[(name, "init")] = self._value_code(v, v.init_pieces)
                if v.kind == "stock":
                    p = v.pieces[0]
                    code = self.ex.piece_value(p.ast, self._ctx(v, p.region), v.sizes)
                    self._piece_code[(name, "rate")] = [code]
                if v.kind == "delay_fixed" and v.delay_time is not None and v.context is not None:
                    code = self.ex.piece_value(v.delay_time, self._ctx(v, v.context), v.sizes)
                    self._piece_code[(name, "delay_time")] = [f"{vname(name)}__T = {code}"]
            except DimensionError as exc:
                what = "" if not v.internal else " (inside a delay/smooth function)"
                self.problems.append(Problem(self.model.file, v.host or name, f"dimension mismatch{what}: {exc}"))
        self._chunk_code: dict[tuple[str, Chunk], list[str]] = {}
        self._last_chunk: set[tuple[str, Chunk]] = set()
        for phase, by_block in self.chunks.items():
            for chunks in by_block.values():
                seen: set[str] = set()
                for ch in chunks:
                    try:
                        self._chunk_code[(phase, ch)] = self.elements.code(ch, phase, first=ch.name not in seen)
                    except DimensionError as exc:
                        v = self.rvars[ch.name]
                        self.problems.append(Problem(self.model.file, v.host or ch.name, f"dimension mismatch: {exc}"))
                    seen.add(ch.name)
                last = {ch.name: ch for ch in chunks}
                self._last_chunk |= {(phase, ch) for ch in last.values()}

    # -------------------------------------------------------------- functions
    def _make(self, name: str, source: str) -> types.FunctionType:
        self.sources[name] = source
        try:
            code = compile(source, f"<linxiang-sd:{self.model.name}:{name}>", "exec")
        except (RecursionError, SyntaxError, MemoryError) as exc:
            raise ModelError(Problem(self.model.file, None, f"an equation is nested too deeply to compile ({exc})",
                                     "split long nested equations into several variables")) from None
        fn_code = next(c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == name)
        return types.FunctionType(fn_code, self.globals, name)

    @staticmethod
    def _unpack(names: list[str], src: str) -> list[str]:
        if not names:
            return []
        return [f"({', '.join(vname(n) for n in names)},) = {src}"]

    def _build_init(self) -> types.FunctionType:
        lay = self.layout
        targets = [f"({vname(n)}__t, {vname(n)}__v)" if self.phase[n] == "data" else vname(n)
                   for n in lay.param_names]
        body = [f"({', '.join(targets)},) = P0"] if targets else []
        needed = {s.name for s in lay.stocks} | set(lay.delay_fixed) | {
            n for n in self.rvars if self.phase[n] == "static"}
        closure = graph.closure(needed, self.init_graph)
        for item in self.ordered(self.init_graph, "init"):
            if isinstance(item, Chunk):
                if item.name in closure:
                    body += self._chunk_code[("init", item)]
                    if self.rvars[item.name].kind == "delay_fixed" and ("init", item) in self._last_chunk:
                        body += self._piece_code[(item.name, "delay_time")]
                continue
            n = item
            if n not in closure:
                continue
            v = self.rvars[n]
            ph = self.phase[n]
            if ph == "param":
                continue
            if ph == "data":
                body.append(f"{vname(n)} = _rt.series(t, {vname(n)}__t, {vname(n)}__v, {self._hold(n)})")
            elif (n, "init") in self._piece_code:
                body += self._piece_code[(n, "init")]
            elif (n, "dyn") in self._piece_code:
                body += self._piece_code[(n, "dyn")]
            if v.kind == "delay_fixed":
                body += self._piece_code[(n, "delay_time")]
        if "_streams" in self.globals:  # RANDOM functions draw one value per run
            body.insert(0, "_streams.n = N")
        body.append(f"S0 = np.empty(({lay.rows}, N))")
        for s in lay.stocks:
            body.append(f"S0[{s.start}:{s.start + s.rows}] = np.broadcast_to({vname(s.name)}, "
                        f"{s.sizes + ('N',)}).reshape({s.rows}, N)".replace("'N'", "N"))
        statics = [vname(n) for n in lay.static_names]
        statics += [f"{vname(n)}__{k}" for n in lay.data_names for k in ("t", "v")]
        body.append(f"P = ({', '.join(statics)},)" if statics else "P = ()")
        dfs = [f"_rt.fit({vname(n)}, {self.rvars[n].sizes})" for n in lay.delay_fixed]
        body.append(f"D0 = ({', '.join(dfs)},)" if dfs else "D0 = ()")
        dts = [f"{vname(n)}__T" for n in lay.delay_fixed]
        body.append(f"DT = ({', '.join(dts)},)" if dts else "DT = ()")
        body.append("return S0, P, D0, DT")
        src = "def _init(t, dt, t0, t1, saveper, P0, N):\n" + "\n".join("    " + line for line in body) + "\n"
        return self._make("_init", src)

    def _hold(self, name: str) -> str:
        return repr(self.model.variables[name].interpolation == "step")

    def _compute(self, names: set[str], exclude: frozenset[str] | set[str] = frozenset()) -> list[str]:
        body: list[str] = []
        todo = graph.closure(names, self.dyn_graph) - exclude
        for n in self.ordered({k: self.dyn_graph[k] & todo for k in todo}, "dyn"):
            if isinstance(n, Chunk):
                body += self._chunk_code[("dyn", n)]
            elif self.phase[n] == "data":
                body.append(f"{vname(n)} = _rt.series(t, {vname(n)}__t, {vname(n)}__v, {self._hold(n)})")
            else:
                body += self._piece_code[(n, "dyn")]
        return body

    def dynamic(self, outputs: tuple[str, ...]) -> types.FunctionType:
        """The step function saving ``outputs`` when asked (built once per output set)."""
        if outputs in self._dyn_cache:
            return self._dyn_cache[outputs]
        fn = self._make("_dyn", self.dynamic_source(outputs))
        self._dyn_cache[outputs] = fn
        return fn

    def dynamic_source(self, outputs: tuple[str, ...], functional: bool = False, fname: str = "_dyn") -> str:
        """Source of the step function. ``functional``: the net flows are assembled without writing
        into an array (``_rt.rows`` and a concatenation), for backends whose arrays are immutable."""
        lay = self.layout
        statics = list(lay.static_names) + [f"{n}__{k}" for n in lay.data_names for k in ("t", "v")]
        body = self._unpack(statics, "P") if statics else []
        for s in lay.stocks:
            if s.sizes:
                body.append(f"{vname(s.name)} = S[{s.start}:{s.start + s.rows}].reshape({s.sizes + (-1,)})")
            else:
                body.append(f"{vname(s.name)} = S[{s.start}]")
        for i, n in enumerate(lay.delay_fixed):
            body.append(f"{vname(n)} = D[{i}]")
        rate_deps: set[str] = set()
        for s in lay.stocks:
            for p in self.rvars[s.name].pieces:
                rate_deps |= graph.node_deps(p.ast, self.rvars)
        rate_deps |= set(lay.delay_inputs)
        rate_deps = {d for d in rate_deps if d in self.dyn_graph}
        base = self._compute(rate_deps)
        body += base
        if functional:
            blocks = [f"_rt.rows({self._piece_code[(s.name, 'rate')][0]}, {s.rows}, S.shape[-1])"
                      for s in lay.stocks]
            body.append(f"dS = np.concatenate([{', '.join(blocks)}], axis=0)" if blocks else "dS = S * 0.0")
        else:
            body.append("dS = np.empty_like(S)")
            for s in lay.stocks:
                code = self._piece_code[(s.name, "rate")][0]
                if s.sizes:
                    body.append(f"dS[{s.start}:{s.start + s.rows}] = np.reshape({code}, ({s.rows}, -1))")
                else:
                    body.append(f"dS[{s.start}] = {code}")
        xs = [vname(n) for n in lay.delay_inputs]
        body.append(f"X = ({', '.join(xs)},)" if xs else "X = ()")
        done = graph.closure(rate_deps, self.dyn_graph)
        want_names = {o for o in outputs if o in self.dyn_graph}
        extra = self._compute(want_names, exclude=done)
        body.append("if want:")
        body += ["    " + line for line in extra]
        saved = "".join(vname(o) + ", " for o in outputs)
        body.append(f"    return dS, X, ({saved})")
        body.append("return dS, X, None")
        return (f"def {fname}(t, dt, t0, t1, saveper, S, P, D, want):\n"
                + "\n".join("    " + ln for ln in body) + "\n")
