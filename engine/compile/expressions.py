"""Compile one resolved expression into numpy source code, with its dimension axes.

Each compiled expression is a pair (code, axes): ``axes`` names the dimension axes of
the array the code evaluates to, in order, with the batch axis always last and
implicit. Axes are aligned at compile time (transposes and ``None`` insertions), so
at run time every operator is one numpy call on whole arrays. Dimension mismatches
are found here and reported with the variable's name.

The source is generated from our own checked AST only; identifiers in it are the
model's validated names with a prefix, and numbers are written with ``repr``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.compile import random_streams
from engine.ir import Model
from engine.parse.expr import BinOp, Call, Node, Num, Ref, Table, Unary
from engine.resolve import builtins
from engine.resolve.structure import Region, RVar


class DimensionError(Exception):
    """A dimension mismatch inside one equation (turned into a Problem by the caller)."""


@dataclass(frozen=True)
class Ctx:
    """Where an equation is evaluated: the host variable's dims and the piece's region."""

    owner: str
    dims: tuple[str, ...]
    region: Region


@dataclass(frozen=True)
class CExpr:
    code: str
    axes: tuple[str, ...]
    is_bool: bool = False
    scalar: bool = False  # a plain number or the clock: no batch axis at all


def vname(name: str) -> str:
    """The Python local name holding a variable's value."""
    return f"v_{name}"


_NP1 = {"ABS": "np.abs", "EXP": "np.exp", "LN": "np.log", "SQRT": "np.sqrt", "INTEGER": "np.trunc",
        "INT": "np.trunc", "SIN": "np.sin", "COS": "np.cos", "TAN": "np.tan", "ARCSIN": "np.arcsin",
        "ARCCOS": "np.arccos", "ARCTAN": "np.arctan", "SIGN": "np.sign"}
# MODULO keeps the dividend's sign, as Vensim and XMILE define it (C fmod): MODULO(-7, 3) = -1
_NP2 = {"MIN": "np.minimum", "MAX": "np.maximum", "POWER": "np.power", "MODULO": "np.fmod"}
_REDUCE = {"SUM": "np.sum", "PROD": "np.prod", "VMIN": "np.min", "VMAX": "np.max"}
_VECTOR = {"VECTOR_SELECT", "INVERT_MATRIX", "VECTOR_SORT_ORDER", "VECTOR_REORDER", "VECTOR_RANK",
           "ALLOCATE_BY_PRIORITY", "ALLOCATE_AVAILABLE"}
_CMP = {"=": "==", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class ExprCompiler:
    """Compiles expressions for one model; collects constant arrays it needs as globals."""

    def __init__(self, model: Model, rvars: dict[str, RVar], globals_: dict) -> None:
        self.model = model
        self.rvars = rvars
        self.globals = globals_
        self._n = 0

    # -------------------------------------------------------------- helpers
    def const_global(self, value: object, prefix: str = "_k") -> str:
        self._n += 1
        name = f"{prefix}{self._n}"
        self.globals[name] = value
        return name

    def elements(self, dim: str) -> tuple[str, ...]:
        return self.model.dim_elements(dim)

    def parent(self, dim: str) -> str:
        return self.model.parent_dim(dim)

    @staticmethod
    def num(value: float) -> str:
        if value != value:
            return "np.nan"
        if value in (float("inf"), float("-inf")):
            return "np.inf" if value > 0 else "(-np.inf)"
        return repr(float(value))

    def align(self, e: CExpr, target: tuple[str, ...], full: bool = False) -> str:
        """Code for e's array laid out to broadcast against arrays with axes ``target``;
        with ``full``, leading missing axes are inserted too (ndim = len(target) + 1)."""
        if not e.axes:
            if full and target:
                return f"np.reshape({e.code}, {(1,) * len(target) + (-1,)})"
            return e.code
        if e.axes == target:
            return e.code
        order = sorted(e.axes, key=target.index)
        code = e.code
        if tuple(order) != e.axes:
            perm = tuple(e.axes.index(a) for a in order) + (len(e.axes),)
            code = f"np.transpose({code}, {perm})"
        idx = []
        present = set(order)
        first = 0 if full else min(target.index(a) for a in order)
        for a in target[first:]:
            idx.append(":" if a in present else "None")
        if "None" not in idx:
            return code
        return f"{code}[{', '.join(idx)}, :]"

    @staticmethod
    def union(*axes_lists: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for axes in axes_lists:
            for a in axes:
                if a not in out:
                    out.append(a)
        return tuple(out)

    def as_float(self, e: CExpr) -> str:
        return f"({e.code} * 1.0)" if e.is_bool else e.code

    # -------------------------------------------------------------- nodes
    def compile(self, node: Node, ctx: Ctx) -> CExpr:
        if isinstance(node, Num):
            return CExpr(self.num(node.value), (), scalar=True)
        if isinstance(node, Ref):
            return self.ref(node, ctx)
        if isinstance(node, Unary):
            e = self.compile(node.operand, ctx)
            if node.op == "not":
                return CExpr(f"np.logical_not({e.code})", e.axes, is_bool=True, scalar=e.scalar)
            if node.op == "+":
                return e
            return CExpr(f"(-{self.as_float(e)})", e.axes, scalar=e.scalar)
        if isinstance(node, BinOp):
            a, b = self.compile(node.left, ctx), self.compile(node.right, ctx)
            axes = self.union(a.axes, b.axes)
            ca, cb = self.align(a, axes), self.align(b, axes)
            scalar = a.scalar and b.scalar
            if node.op in ("and", "or"):
                fn = "np.logical_and" if node.op == "and" else "np.logical_or"
                return CExpr(f"{fn}({ca}, {cb})", axes, is_bool=True, scalar=scalar)
            if node.op in _CMP:
                return CExpr(f"({ca} {_CMP[node.op]} {cb})", axes, is_bool=True, scalar=scalar)
            if a.is_bool:
                ca = f"({ca} * 1.0)"
            if b.is_bool:
                cb = f"({cb} * 1.0)"
            if node.op == "^":
                return CExpr(f"np.power({ca}, {cb})", axes, scalar=scalar)
            if node.op == "/" and scalar:
                # two plain floats (time, numbers): numpy gives inf/nan where Python would raise
                return CExpr(f"np.divide({ca}, {cb})", axes, scalar=scalar)
            return CExpr(f"({ca} {node.op} {cb})", axes, scalar=scalar)
        if isinstance(node, Call):
            return self.call(node, ctx)
        if isinstance(node, Table):
            raise DimensionError("an inline lookup table can only be an argument of WITH_LOOKUP")
        raise DimensionError(f"cannot compile {node!r}")

    def ref(self, node: Ref, ctx: Ctx) -> CExpr:
        upper = node.name.upper()
        if node.name not in self.rvars and upper in builtins.TIME_NAMES:
            return CExpr(builtins.TIME_NAMES[upper], (), scalar=True)
        if node.name not in self.rvars:
            # a dimension used as a value: each element's position, 1-based (as Vensim)
            n = len(self.elements(node.name))
            code = f"_dimval_{node.name}"
            self.globals.setdefault(code, np.arange(1.0, n + 1.0).reshape(n, 1))
            dims: tuple[str, ...] = (node.name,)
        else:
            target = self.rvars[node.name]
            if target.internal:
                # internal variables live on their host piece's region: same layout as ctx
                return CExpr(vname(node.name), ctx.dims)
            dims = target.dims
            code = vname(node.name)
        int_index, takes, axes = self.ref_plan(node, dims, ctx)
        if any(i != ":" for i in int_index):
            code = f"{code}[{', '.join(int_index)}]"
        for pos, positions in takes:
            if positions == list(range(positions[0], positions[-1] + 1)):
                sl = [":"] * pos + [f"{positions[0]}:{positions[-1] + 1}"]
                code = f"{code}[{', '.join(sl)}]"
            else:
                g = self.const_global(np.array(positions, dtype=np.intp), "_idx")
                code = f"np.take({code}, {g}, axis={pos})"
        return CExpr(code, tuple(axes))

    def _claimed_axes(self, subs: tuple[str, ...], ctx: Ctx) -> dict[int, str]:
        """Which host axis each subscript follows: the same name first, then one of the same parent."""
        claimed: dict[int, str] = {}
        for i, sub in enumerate(subs):
            if not sub.endswith("!") and sub in ctx.dims:
                claimed[i] = sub
        for i, sub in enumerate(subs):
            if i in claimed or sub.endswith("!") or not (sub in self.model.dimensions or sub in self.model.subranges):
                continue
            for h in ctx.dims:
                if h not in claimed.values() and (self.parent(h) == self.parent(sub)
                                                  or self.model.mapped(h, self.parent(sub))):
                    claimed[i] = h
                    break
        return claimed

    def _range_positions(self, node: Ref, sub: str, xd: str, host_dim: str | None, ctx: Ctx
                         ) -> tuple[list[int] | None, str]:
        """A dimension or subrange subscript ``sub`` of the referenced dimension ``xd``: the positions it takes
        along ``xd`` (None: all, in order) and the label of the axis it becomes."""
        x_elems = self.elements(xd)
        reduce = sub.endswith("!")
        s = sub[:-1] if reduce else sub
        by_position = self.parent(s) != self.parent(xd) and self.model.mapped(s, xd)
        if self.parent(s) != self.parent(xd) and not by_position:
            raise DimensionError(f"{node.name}[{sub}]: {s!r} is not a subrange of {xd!r}, "
                                 f"the dimension of {node.name}")
        if host_dim is not None and self.parent(host_dim) != self.parent(s):
            # a host dimension mapped onto the subscript's: element i goes with element i
            if not (by_position or s == xd):
                raise DimensionError(f"{node.name}[{sub}]: cannot combine a mapping with a subrange here")
            k = ctx.dims.index(host_dim)
            region = ctx.region[k] if ctx.region else None
            return list(range(len(self.elements(host_dim))) if region is None else region), host_dim
        if by_position:
            return None, f"{s}!" if reduce else s
        if host_dim is not None:
            k = ctx.dims.index(host_dim)
            h_elems = self.elements(host_dim)
            region = ctx.region[k] if ctx.region else None
            wanted = [h_elems[j] for j in (range(len(h_elems)) if region is None else region)]
            missing = [e for e in wanted if e not in self.elements(s) or e not in x_elems]
            if missing:
                raise DimensionError(f"{node.name}[{sub}] is used for element(s) {missing} of "
                                     f"{host_dim!r} that {s!r} does not have")
            return [x_elems.index(e) for e in wanted], host_dim
        outside = [e for e in self.elements(s) if e not in x_elems]
        if outside:
            raise DimensionError(f"{node.name}[{sub}]: elements {outside} of {s!r} are not in {xd!r}")
        return [x_elems.index(e) for e in self.elements(s)], f"{s}!" if reduce else s

    def ref_plan(self, node: Ref, dims: tuple[str, ...], ctx: Ctx
                 ) -> tuple[list[str], list[tuple[int, list[int]]], list[str]]:
        """How a reference to a value over ``dims`` picks its elements: per subscript an element index
        (a number) or ":" (an axis); the positions each axis takes; the axes' labels. Shared by the
        numpy code (slices and takes) and the scalar code (engine.compile.scalar_code: one element)."""
        subs = node.subs if node.subs is not None else dims
        if len(subs) != len(dims):
            raise DimensionError(f"{node.name} has {len(dims)} dimension(s) {list(dims)}, "
                                 f"referenced with {len(subs)} subscript(s) {list(subs)}")
        int_index: list[str] = []
        takes: list[tuple[int, list[int]]] = []  # (axis position after int indexing, positions)
        axes: list[str] = []
        claimed = self._claimed_axes(subs, ctx)
        for i, (sub, xd) in enumerate(zip(subs, dims, strict=True)):
            x_elems = self.elements(xd)
            reduce = sub.endswith("!")
            s = sub[:-1] if reduce else sub
            if s in self.model.dimensions or s in self.model.subranges:
                positions, label = self._range_positions(node, sub, xd, claimed.get(i), ctx)
                int_index.append(":")
                if positions is not None and positions != list(range(len(x_elems))):
                    takes.append((len(axes), positions))
                axes.append(label)
            elif s in x_elems and not reduce:
                int_index.append(str(x_elems.index(s)))
            else:
                raise DimensionError(f"{node.name}[{sub}]: {sub!r} is not an element or subrange of "
                                     f"{xd!r} (elements: {', '.join(x_elems)})")
        return int_index, takes, axes

    def call(self, node: Call, ctx: Ctx) -> CExpr:
        if node.func in self.rvars and self.rvars[node.func].kind == "lookup":
            return self.lookup_call(node, ctx)
        f = node.func.upper()
        if f == "WITH_LOOKUP":
            x = self.compile(node.args[0], ctx)
            tbl: Table = node.args[1]  # type: ignore[assignment]
            gx = self.const_global(np.array(tbl.xs, dtype=float), "_tx")
            gy = self.const_global(np.array(tbl.ys, dtype=float), "_ty")
            return CExpr(f"_rt.lookup({self.as_float(x)}, {gx}, {gy})", x.axes, scalar=x.scalar)
        if f in _REDUCE:
            e = self.compile(node.args[0], ctx)
            red = [i for i, a in enumerate(e.axes) if a.endswith("!")]
            if not red:
                raise DimensionError(f"{f} needs a dimension to reduce, marked with '!': {f}(x[dim!])")
            keep = tuple(a for a in e.axes if not a.endswith("!"))
            return CExpr(f"{_REDUCE[f]}({self.as_float(e)}, axis={tuple(red)})", keep)
        if f in _VECTOR:
            return self.vector_call(f, node, ctx)
        if f in random_streams.ARITY:
            return self.random_call(f, node, ctx)
        if f == "VECTOR_ELM_MAP":
            return self.vector_elm_map(node, ctx)
        return self.elementwise_call(f, node, ctx)

    def lookup_call(self, node: Call, ctx: Ctx) -> CExpr:
        """A lookup table called as a function, subscripted or not."""
        x = self.compile(node.args[0], ctx)
        table = self.rvars[node.func]
        if not table.dims:
            if node.subs:
                raise DimensionError(f"lookup {node.func} has no dimensions but is called with {list(node.subs)}")
            return CExpr(f"_lk_{node.func}({self.as_float(x)})", x.axes, scalar=x.scalar)
        idx = self.ref(Ref(node.func, node.subs), ctx)
        axes = self.union(x.axes, idx.axes)
        cx = self.align(CExpr(self.as_float(x), x.axes), axes)
        return CExpr(f"_rt.lookup_multi({cx}, {self.align(idx, axes)}, _lkx_{node.func}, _lky_{node.func}, "
                     f"_lklin_{node.func})", axes)

    def elementwise_call(self, f: str, node: Call, ctx: Ctx) -> CExpr:
        """The builtins computed element by element (their arguments broadcast to one set of axes)."""
        args = [self.compile(a, ctx) for a in node.args]
        axes = self.union(*(a.axes for a in args))
        scalar = all(a.scalar for a in args)
        codes = [self.align(CExpr(self.as_float(a), a.axes), axes) for a in args]
        if f == "IF_THEN_ELSE":
            cond = self.align(args[0], axes)
            return CExpr(f"np.where({cond}, {codes[1]}, {codes[2]})", axes, scalar=scalar)
        if f in _NP1:
            return CExpr(f"{_NP1[f]}({codes[0]})", axes, scalar=scalar)
        if f in _NP2:
            return CExpr(f"{_NP2[f]}({codes[0]}, {codes[1]})", axes, scalar=scalar)
        if f == "LOG":
            return CExpr(f"_rt.log({', '.join(codes)})", axes, scalar=scalar)
        if f == "XIDZ":
            return CExpr(f"_rt.xidz({codes[0]}, {codes[1]}, {codes[2]})", axes, scalar=scalar)
        if f == "ZIDZ":
            return CExpr(f"_rt.zidz({codes[0]}, {codes[1]})", axes, scalar=scalar)
        if f == "QUANTUM":
            return CExpr(f"_rt.quantum({codes[0]}, {codes[1]})", axes, scalar=scalar)
        if f == "STEP":
            return CExpr(f"_rt.step(t, {codes[0]}, {codes[1]}, dt)", axes)
        if f == "RAMP":
            return CExpr(f"_rt.ramp(t, {', '.join(codes)})", axes)
        if f == "PULSE":
            return CExpr(f"_rt.pulse(t, dt, {', '.join(codes)})", axes)
        if f == "PULSE_TRAIN":
            return CExpr(f"_rt.pulse_train(t, dt, {', '.join(codes)})", axes)
        if f == "GET_TIME_VALUE":
            return CExpr(f"_rt.get_time_value(t, t0, {', '.join(codes)})", axes)
        raise DimensionError(f"function {node.func} cannot be compiled")

    def vector_elm_map(self, node: Call, ctx: Ctx) -> CExpr:
        """VECTOR_ELM_MAP(x[..., dim!], offset): x at 0-based position offset along dim (NaN outside)."""
        x, off = (self.compile(a, ctx) for a in node.args)
        red = [a for a in x.axes if a.endswith("!")]
        if len(red) != 1 or any(a.endswith("!") for a in off.axes):
            raise DimensionError("VECTOR ELM MAP needs its vector's dimension marked with '!' (x[dim!])")
        keep = self.union(tuple(a for a in x.axes if a != red[0]), off.axes)
        xa = self.align(CExpr(self.as_float(x), x.axes), keep + (red[0],), full=True)
        oa = self.align(CExpr(self.as_float(off), off.axes), keep, full=True)
        self.globals.setdefault("_vem", random_streams)
        return CExpr(f"_vem.vector_elm_map({xa}, {oa})", keep)

    def random_call(self, f: str, node: Call, ctx: Ctx) -> CExpr:
        """A RANDOM function: one draw per element of the variable, per run and per time step
        (engine/compile/random_streams.py); the call site names its stream."""
        n_params = max(random_streams.ARITY[f] - 1, 0)
        params, seed = list(node.args[:n_params]), node.args[n_params:]
        compiled = [self.compile(a, ctx) for a in params]
        for a in compiled:
            extra = [x for x in a.axes if x not in ctx.dims]
            if extra:
                raise DimensionError(f"{f}'s arguments have dimension(s) {extra} that the variable does not have")
        codes = [self.align(CExpr(self.as_float(a), a.axes), ctx.dims, full=True) for a in compiled]
        seed_code = self.compile(seed[0], ctx).code if seed else "None"
        self.globals.setdefault("_rand", random_streams)
        self.globals.setdefault("_streams", random_streams.Streams())
        sites = self.__dict__.setdefault("_rand_sites", {})
        sites[ctx.owner] = sites.get(ctx.owner, 0) + 1
        site = random_streams.site_key(f"{ctx.owner}#{sites[ctx.owner]}")
        sizes = tuple(len(self.elements(d)) for d in ctx.dims)
        idx = "()"
        if ctx.region and any(r is not None for r in ctx.region):
            ix = np.ix_(*[np.arange(s) if r is None else np.array(r) for r, s in zip(ctx.region, sizes, strict=True)])
            idx = self.const_global(ix + (slice(None),), "_rix")
        u = f"_rand.uniforms(_streams, {site}, {seed_code}, t, t0, dt, {sizes}, {idx}, _streams.n)"
        return CExpr(f"_rand.draw({f!r}, {u}{''.join(', ' + c for c in codes)})", ctx.dims)

    def vector_call(self, f: str, node: Call, ctx: Ctx) -> CExpr:
        """Functions that work along a dimension: selection, sorting, allocation, inversion."""
        nodes = list(node.args)
        pp = nodes[1] if len(nodes) > 1 else None
        if f == "ALLOCATE_AVAILABLE" and isinstance(pp, Ref) and pp.subs and pp.name in self.rvars:
            # Vensim passes the priority profile as pp[..., ptype]: the profile's first element
            last_dim = self.rvars[pp.name].dims[-1]
            if pp.subs[-1] in self.elements(last_dim):
                if self.elements(last_dim).index(pp.subs[-1]) != 0:
                    raise DimensionError("ALLOCATE AVAILABLE's profile must start at the profile's first element")
                nodes[1] = Ref(pp.name, pp.subs[:-1] + (last_dim,))
        args = [self.compile(a, ctx) for a in nodes]
        axes = self.union(*(a.axes for a in args))
        codes = [self.align(CExpr(self.as_float(a), a.axes), axes, full=True) for a in args]
        if f == "VECTOR_SELECT":
            red = tuple(i for i, a in enumerate(axes) if a.endswith("!"))
            if not red:
                raise DimensionError("VECTOR SELECT needs the dimension to select over marked with '!'")
            keep = tuple(a for a in axes if not a.endswith("!"))
            if any(a.endswith("!") for arg in args[2:] for a in arg.axes):
                raise DimensionError("VECTOR SELECT's missing value and actions cannot be reduced over a dimension")
            rest = [self.align(CExpr(self.as_float(a), a.axes), keep, full=True) for a in args[2:]]
            return CExpr(f"_rt.vector_select({codes[0]}, {codes[1]}, {red}, {', '.join(rest)})", keep)
        if f == "INVERT_MATRIX":
            if len(args[0].axes) < 2:
                raise DimensionError("INVERT MATRIX needs a variable over (at least) two dimensions; "
                                     "it inverts over the last two")
            return CExpr(f"_rt.invert_matrix({self.align(args[0], args[0].axes)})", args[0].axes)
        # the dimension the function runs along: the equation's last dimension (as Vensim)
        first = args[0].axes
        along = next((d for d in reversed(ctx.dims) if d in first), first[-1] if first else None)
        if along is None:
            raise DimensionError(f"{f} needs a subscripted first argument")
        k = axes.index(along)
        if f in ("VECTOR_SORT_ORDER", "VECTOR_RANK", "VECTOR_REORDER"):
            return CExpr(f"_rt.{f.lower()}({codes[0]}, {codes[1]}, {k})", axes)
        if f == "ALLOCATE_BY_PRIORITY":
            return CExpr(f"_rt.allocate_by_priority({codes[0]}, {codes[1]}, {codes[3]}, {codes[4]}, {k})", axes)
        # ALLOCATE AVAILABLE: the priority profile is pp's one axis the request does not have
        extra = [a for a in args[1].axes if a not in args[0].axes and a not in ctx.dims]
        if len(extra) != 1:
            raise DimensionError("ALLOCATE AVAILABLE's priority profile needs exactly one extra dimension")
        out_axes = tuple(a for a in axes if a != extra[0])
        req = self.align(CExpr(self.as_float(args[0]), args[0].axes), axes, full=True)
        avail = self.align(CExpr(self.as_float(args[2]), args[2].axes), axes, full=True)
        return CExpr(f"_rt.allocate_available({req}, {codes[1]}, {avail}, {k}, {axes.index(extra[0])})", out_axes)

    def piece_value(self, ast: Node, ctx: Ctx, sizes: tuple[int, ...]) -> str:
        """Code for a piece's value with the full shape (*sizes, batch) of its region."""
        e = self.compile(ast, ctx)
        extra = [a for a in e.axes if a not in ctx.dims]
        if extra:
            reduce = [a for a in extra if a.endswith("!")]
            if reduce:
                raise DimensionError(f"{', '.join(reduce)} marks a dimension to reduce, "
                                     f"but no SUM/PROD/VMIN/VMAX reduces it")
            raise DimensionError(f"the equation has dimension(s) {extra} that the variable "
                                 f"(dims {list(ctx.dims) or 'none'}) does not have")
        if e.axes == ctx.dims and not e.scalar and ctx.dims:
            return self.align(CExpr(self.as_float(e), e.axes), ctx.dims)
        if not ctx.dims:
            return self.as_float(e) if not e.scalar else f"np.full(1, {e.code}, dtype=float)"
        # laid out with every axis present (size 1 where missing) so fit() sees the batch axis last
        return f"_rt.fit({self.align(CExpr(self.as_float(e), e.axes), ctx.dims, full=True)}, {sizes})"
