"""Generate the numba backend's scalar kernel from the resolved model (the same pieces, ASTs and
dependency order as engine.compile.model_code).

Every value of one run lives in one float vector ``V``: the static values (constants, equations of
constants, INITIAL values, in ``layout.static_names`` order) first, then the stocks (the packed
state's rows, in order), then the DELAY FIXED outputs (the C kernel's ring buffers write them each
step; ``delay_in`` names the slot each element's input is read from), then every dynamic variable's
elements in evaluation order. A RANDOM call becomes ``_rnd(t, column)``: the run's draws table at
the step holding t (engine.compile.random_table fills it; ``random_sites`` maps each call site to its
columns; in the numba module the call reads the table handed to ``_base``/``_extra``). A subscripted
variable is flattened into element slots at generation time: a reference to an element is a fixed
slot, a reduction (SUM, PROD, VMIN, VMAX) is unrolled element by element, a subscripted lookup
selects its table here. Lookup tables sit in one flat array ``TAB`` (xs then ys of each table).

The generated module holds two functions:

``_eval(t, dt, t0, t1, saveper, V, dS, full, r, TAB, data...)``
    evaluates the variables the net flows need and writes the flows into ``dS``; with ``full``,
    every other dynamic variable too (saving steps);
``kernel(...)`` / ``kernel_par(...)``
    the loop over runs (``prange`` in ``kernel_par``) and steps t = t0 + k*dt, with the DELAY FIXED
    ring buffers of the C kernel (a ring space a run, filled and read as ``lx_one`` does), the Solver's
    step (0 Euler, 1 RK2, 2 RK4, as engine.integrate.solvers, operation for operation), clipping of
    non-negative stocks, saving every ``save_every`` steps the slots asked for, and a per-run flag
    when a saved value or the state is not finite.

The source holds only slot numbers, numbers written with ``repr`` and the helpers' names: no text
of the model (names included) reaches it. What it cannot express raises :class:`NotSupported`
with the reason; the caller runs the model on numpy.
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from engine.compile import random_streams
from engine.compile.expressions import Ctx, DimensionError, ExprCompiler
from engine.compile.model_code import ModelCode
from engine.parse.expr import BinOp, Call, Node, Num, Ref, Table, Unary
from engine.resolve import builtins, graph
from engine.resolve.structure import Piece, RVar

_NP1 = {"ABS": "np.abs", "EXP": "np.exp", "LN": "np.log", "SQRT": "np.sqrt", "INTEGER": "np.trunc",
        "INT": "np.trunc", "SIN": "np.sin", "COS": "np.cos", "TAN": "np.tan", "ARCSIN": "np.arcsin",
        "ARCCOS": "np.arccos", "ARCTAN": "np.arctan", "SIGN": "np.sign"}
_NP2 = {"MIN": "_fmin", "MAX": "_fmax", "POWER": "np.power", "MODULO": "np.fmod"}
_REDUCE = {"SUM", "PROD", "VMIN", "VMAX"}
_CMP = {"=": "==", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_HELPERS = ("where", "b2f", "and", "or", "not", "fmin", "fmax", "lookup", "series", "xidz", "zidz", "quantum", "step",
            "ramp", "ramp_end", "pulse", "pulse_width", "pulse_train", "log", "rnd")


def _py(helper: str) -> str:
    """The helper's name in engine.compile.numba_runtime (and, or, not are keywords there)."""
    return helper + "_" if helper in ("and", "or", "not") else helper


class NotSupported(Exception):
    """A construct the scalar kernel does not have (the run falls back to numpy)."""


class ScalarCode:
    """The scalar kernel's source for one model, and the slot layout the caller packs values by."""

    def __init__(self, code: ModelCode) -> None:
        self.code = code
        self.model = code.model
        self.rvars = code.rvars
        lay = code.layout
        # a compiler with its own globals: used for the axes of an expression and the reference plans
        self.ex = ExprCompiler(self.model, self.rvars, {})
        self.slot: dict[str, int] = {}
        n = 0
        for name in lay.static_names:
            self.slot[name] = n
            n += self.rvars[name].size
        self.n_static = n
        self.static_sizes = [self.rvars[name].size for name in lay.static_names]
        self.stock0 = n
        for s in lay.stocks:
            self.slot[s.name] = self.stock0 + s.start
        n += lay.rows
        # DELAY FIXED outputs (the kernel's ring buffers write them each step), then: the slot each element's
        # input is read from after the step's first evaluation (an input of one element feeds every element)
        self.delay0 = n
        self.delay_in: list[int] = []
        for d in lay.delay_fixed:
            self.slot[d] = n
            n += self.rvars[d].size
        self.n_delay = n - self.delay0
        self.n_in = n   # statics, stocks and DELAY FIXED outputs: the values _base and _extra read from V
        if code.blocks["dyn"]:
            # loops only between elements (C-LEARN) are computed in element chunks by the numpy code
            raise NotSupported("variables computed element by element (a loop between their elements) "
                               "are not compiled")
        self.order = graph.order(code.dyn_graph)
        rate_deps: set[str] = set()
        for s in lay.stocks:
            for p in self.rvars[s.name].pieces:
                rate_deps |= graph.node_deps(p.ast, self.rvars)
        rate_deps |= set(lay.delay_inputs)   # a DELAY FIXED input is pushed every step
        base = graph.closure({d for d in rate_deps if d in code.dyn_graph}, code.dyn_graph)
        # dynamic slots: what the flows need (every step) first, then the rest (saving steps)
        self.base = [name for name in self.order if name in base]
        self.extra = [name for name in self.order if name not in base]
        for name in self.base:
            self.slot[name] = n
            n += self.rvars[name].size
        self.n_base_end = n
        for name in self.extra:
            self.slot[name] = n
            n += self.rvars[name].size
        self.n_slots = n
        for d, x in zip(lay.delay_fixed, lay.delay_inputs, strict=True):
            size, xv = self.rvars[d].size, self.rvars.get(x)
            if xv is None or x not in self.slot or xv.size not in (1, size) or (xv.size > 1 and xv.dims !=
                                                                               self.rvars[d].dims):
                raise NotSupported(f"{self.rvars[d].host or d}: a DELAY FIXED input of another shape")
            self.delay_in += [self.slot[x] + (e if xv.size > 1 else 0) for e in range(size)]
        self.tables: list[float] = []
        self._table_at: dict[tuple, tuple[int, int, bool]] = {}
        self.data = list(lay.data_names)
        self._tmp = 0
        self._pre: list[str] = []
        # RANDOM call sites met so far: (variable, 'dyn' or 'rate', call number in the equation) -> its first
        # column in the draws table and the shape of its values (engine.compile.random_table fills the table)
        self.random_sites: dict[tuple[str, str, int], tuple[int, tuple[int, ...]]] = {}
        self.n_random = 0
        # the element being generated: variable, kind, its position, the piece's shape
        self._where: tuple[str, str, tuple[int, ...], tuple[int, ...] | None] | None = None
        self._calls: dict[int, int] = {}   # id of a RANDOM call node -> its number in the equation (pre-order)
        self._rnd_form = "_rnd(t, {col})"   # how a draw is written (the numba module's form: see ``source``)

    @functools.cached_property
    def source(self) -> str:
        """The numba module's source (generated on first use: the C backend prints the statements itself)."""
        # a RANDOM draw reads the run's table handed to _base/_extra (the C printer takes the 2-argument form)
        self._rnd_form = "_rnd(RND, t, t0, dt, {col})"
        return self._module()

    # ------------------------------------------------------------------ the module
    def _module(self) -> str:
        lay = self.code.layout
        # Values are locals (v<slot>), read from V and handed back as tuples: the statics and stocks come in
        # as a slice of V unpacked in one statement; the flows and the dynamic values go out as tuples that
        # the loop copies into arrays (numba's to_fixed_tuple is quadratic at run time: not used). numba's
        # typing costs milliseconds per operation and tens of milliseconds per array access, and types every
        # integer constant as its own literal type: the generated equations access no array at all. Every
        # local is assigned once (numba's SSA pass is quadratic in redefinitions). Each tuple ends with a
        # 0.0, so none is empty.
        ins = [f"v{slot}" for slot in range(self.n_in)] + ["_u"]
        head_in = f"({', '.join(ins)},) = V[:{self.n_in + 1}]"
        base_body: list[str] = [head_in]
        for name in self.base:
            base_body += self._var(name)
        for s in lay.stocks:
            v = self.rvars[s.name]
            base_body += self._elements(v, v.pieces[:1], lambda e, s=s: f"_d{s.start + e}")
        flows = [f"_d{row}" for row in range(lay.rows)] + ["0.0"]
        base_vals = [f"v{slot}" for slot in range(self.n_in, self.n_base_end)] + ["0.0"]
        base_body.append(f"return ({', '.join(flows)},), ({', '.join(base_vals)},)")
        extra_body: list[str] = [head_in, f"({', '.join(base_vals[:-1] + ['_u2'])},) = B"]
        for name in self.extra:
            extra_body += self._var(name)
        extra_vals = [f"v{slot}" for slot in range(self.n_base_end, self.n_slots)] + ["0.0"]
        extra_body.append(f"return ({', '.join(extra_vals)},)")
        data_args = "".join(f", D{i}t, D{i}v" for i in range(len(self.data)))
        ev = "\n".join([f"def _base(t, dt, t0, t1, saveper, V, r, TAB, RND{data_args}):"]
                       + ["    " + b for b in base_body]
                       + ["", "", "@njit(**_NB)", f"def _extra(t, dt, t0, t1, saveper, V, r, B, TAB, RND{data_args}):"]
                       + ["    " + b for b in extra_body])
        head = ('"""Generated by engine.compile.scalar_code (checked against a fresh generation before use)."""\n'
                "import numpy as np\nfrom numba import njit, prange\n\n"
                f"from engine.compile.numba_runtime import {', '.join(f'{_py(h)} as _{h}' for h in _HELPERS)}\n\n"
                "_NB = {'cache': True, 'error_model': 'numpy'}\n\n\n")
        args = "S0, PF, OFF, VR, TAB, OUTS, out, bad, t0, dt, t1, saveper, n_steps, save_every, method"
        # runs r_lo .. r_hi-1 of the batch; RND: their RANDOM draws tables (runs x steps x columns; one placeholder
        # table without RANDOM), D0/LAG/ROFF/RING: the DELAY FIXED rings (ScalarProgram._pipelines)
        kernels = "\n\n".join(f"""@njit(**_NB{par})
def {name}({args}, r_lo, r_hi, RND, D0, LAG, ROFF, RING{data_args}):
    for i in {rng}(r_hi - r_lo):
        _one(np.int64(r_lo + i), np.int64(i), {args}, RND, D0, LAG, ROFF, RING{data_args})
    return 0
""" for name, rng, par in (("kernel", "range", ""), ("kernel_par", "prange", ", parallel=True")))
        return head + "@njit(**_NB)\n" + ev + "\n\n\n" + self._one(data_args) + "\n\n" + kernels

    def _one(self, data_args: str) -> str:
        """One run: the loop over steps (the kernels call it for each run; a parallel loop's body must
        stay this simple for numba's parfor lowering)."""
        lay = self.code.layout
        rows, s0 = lay.rows, self.stock0
        nb, ne = self.n_base_end - self.n_in, self.n_slots - self.n_base_end
        clip = [f"            for i in range({a}, {b}):\n"
                "                if Sn[i] < 0.0:\n"
                "                    Sn[i] = 0.0" for a, b in lay.non_negative]
        ev = f"TAB, RND{data_args}"
        nd, dl0 = self.n_delay, self.delay0
        # DELAY FIXED (the C kernel's lx_one, operation for operation): element e's output at step k is its input
        # at step k - LAG[e, r] (its initial value before), read from the run's ring space RB; the inputs are
        # taken from the step's first evaluation (X) and pushed once the step is done
        ring_init = (f"""        RB = np.empty(max(RING, 1))
        X = np.zeros({nd})
        for e in range({nd}):
            lag = LAG[e, r]
            d0 = D0[e, r]
            for q in range(lag):
                RB[ROFF[e] + q] = d0
""" if nd else "")
        ring_read = (f"""            for e in range({nd}):
                V[{dl0} + e] = RB[ROFF[e] + k % LAG[e, r]]
""" if nd else "")
        # each input read where the evaluation left it: a static, stock or delay output in V, a dynamic value in
        # the tuple B (a constant index: no copy of the tuple, as np.asarray(B) would make every step)
        ring_take = "".join(f"            X[{e}] = {'V' if slot < self.n_in else 'B'}"
                            f"[{slot if slot < self.n_in else slot - self.n_in}]\n"
                            for e, slot in enumerate(self.delay_in))
        ring_push = (f"""            for e in range({nd}):
                RB[ROFF[e] + k % LAG[e, r]] = X[e]
""" if nd else "")

        def stage(time: str, k: str) -> str:
            return (f"_base({time}, dt, t0, t1, saveper, V, r, {ev})\n"
                    f"                Fa = np.asarray(F)\n"
                    f"                for i in range({rows}):\n"
                    f"                    {k}[i] = Fa[i]")
        return f"""@njit(**_NB)
def _one(r, i_chunk, S0, PF, OFF, VR, TAB, OUTS, out, bad, t0, dt, t1, saveper, n_steps, save_every, method, RNDS, D0,
         LAG, ROFF, RING{data_args}):
    if True:
        RND = RNDS[min(i_chunk, RNDS.shape[0] - 1)]   # this run's draws (the one placeholder table without RANDOM)
        V = np.zeros({self.n_slots + 1})
        S = np.empty({max(rows, 1)})
        Sn = np.empty({max(rows, 1)})
        k1 = np.zeros({max(rows, 1)})
        k2 = np.zeros({max(rows, 1)})
        k3 = np.zeros({max(rows, 1)})
        k4 = np.zeros({max(rows, 1)})
        for i in range({self.n_static}):
            V[i] = PF[OFF[i] + r * VR[i]]
        for i in range({rows}):
            S[i] = S0[i, r]
{ring_init}        j = 0
        for k in range(n_steps + 1):
            t = t0 + k * dt
            for i in range({rows}):
                V[{s0} + i] = S[i]
{ring_read}            F, B = _base(t, dt, t0, t1, saveper, V, r, {ev})
{ring_take}            Fa = np.asarray(F)   # a tuple indexed at run time is a switch over its elements: copy it once
            for i in range({rows}):
                k1[i] = Fa[i]
            if k % save_every == 0:
                Ba = np.asarray(B)
                for i in range({nb}):
                    V[{self.n_in} + i] = Ba[i]
                Ea = np.asarray(_extra(t, dt, t0, t1, saveper, V, r, B, {ev}))
                for i in range({ne}):
                    V[{self.n_base_end} + i] = Ea[i]
                for c in range(OUTS.shape[0]):
                    x = V[OUTS[c]]
                    out[j, c, r] = x
                    if not np.isfinite(x):
                        bad[r] = True
                j += 1
            if k >= n_steps or bad[r]:
                break
            if method == 0:
                for i in range({rows}):
                    Sn[i] = S[i] + dt * k1[i]
            elif method == 1:
                for i in range({rows}):
                    V[{s0} + i] = S[i] + dt * k1[i]
                F, B = {stage("t + dt", "k2")}
                for i in range({rows}):
                    Sn[i] = S[i] + (0.5 * dt) * (k1[i] + k2[i])
            else:
                h = 0.5 * dt
                for i in range({rows}):
                    V[{s0} + i] = S[i] + h * k1[i]
                F, B = {stage("t + h", "k2")}
                for i in range({rows}):
                    V[{s0} + i] = S[i] + h * k2[i]
                F, B = {stage("t + h", "k3")}
                for i in range({rows}):
                    V[{s0} + i] = S[i] + dt * k3[i]
                F, B = {stage("t + dt", "k4")}
                for i in range({rows}):
                    Sn[i] = S[i] + (dt / 6.0) * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i])
{chr(10).join(clip) if clip else "            pass"}
            for i in range({rows}):
                if not np.isfinite(Sn[i]):
                    bad[r] = True
                S[i] = Sn[i]
{ring_push}            if bad[r]:
                break
    return 0
"""

    # ------------------------------------------------------------------ variables
    def _var(self, name: str) -> list[str]:
        v = self.rvars[name]
        if self.code.phase[name] == "data":
            i = self.data.index(name)
            hold = self.model.variables[name].interpolation == "step"
            base = self.slot[name]
            return [f"v{base + e} = _series(t, D{i}t, D{i}v, {float(e)!r}, r, {float(hold)!r})"
                    for e in range(v.size)]
        base = self.slot[name]
        return self._elements(v, v.pieces, lambda e: f"v{base + e}")

    def _elements(self, v: RVar, pieces: list[Piece], target) -> list[str]:
        """Statements assigning each element of v from the piece that covers it (later pieces win)."""
        out: list[str] = []
        kind = "rate" if v.kind == "stock" else "dyn"
        # RANDOM calls numbered as the numpy code meets them: pre-order over the pieces, in order
        self._calls = {}
        for p in pieces:
            for node in _preorder(p.ast):
                if isinstance(node, Call) and node.func.upper() in random_streams.ARITY:
                    self._calls[id(node)] = len(self._calls)
        for e in range(v.size):
            idx = np.unravel_index(e, v.sizes) if v.sizes else ()
            piece = None
            for p in pieces:
                if v.internal or all(r is None or int(i) in r for r, i in zip(p.region, idx, strict=True)):
                    piece = p
            if piece is None:
                raise NotSupported(f"{v.host or v.name}: element {e} has no equation")
            if v.internal:
                ctx = Ctx(v.host or v.name, v.dims, v.context or tuple(None for _ in v.dims))
                bind = {d: int(i) for d, i in zip(v.dims, idx, strict=True)}
            else:
                ctx = Ctx(v.name, v.dims, piece.region)
                bind = {d: (int(i) if r is None else r.index(int(i)))
                        for d, r, i in zip(v.dims, piece.region, idx, strict=True)}
            self._pre = []
            if v.internal:
                shape = tuple(v.sizes) if all(r is None for r in ctx.region) else None
            else:
                shape = tuple(s if r is None else len(r) for r, s in zip(piece.region, v.sizes, strict=True))
            self._where = (v.name, kind, tuple(bind[d] for d in v.dims), shape)
            try:
                code = self._float(piece.ast, ctx, bind)
            except (DimensionError, KeyError, IndexError, ValueError) as exc:
                raise NotSupported(f"{v.host or v.name}: {type(exc).__name__}: {exc}") from None
            out += self._pre
            out.append(f"{target(e)} = {code}")
        return out

    # ------------------------------------------------------------------ expressions
    def _float(self, node: Node, ctx: Ctx, bind: dict[str, int]) -> str:
        code, is_bool = self._x(node, ctx, bind)
        return f"_b2f({code})" if is_bool else code

    def _bool(self, node: Node, ctx: Ctx, bind: dict[str, int]) -> str:
        code, is_bool = self._x(node, ctx, bind)
        return code if is_bool else f"({code} != 0.0)"

    @staticmethod
    def _num(value: float) -> str:
        if value != value:
            return "np.nan"
        if math.isinf(value):
            return "np.inf" if value > 0 else "(-np.inf)"
        return repr(float(value))

    def _x(self, node: Node, ctx: Ctx, bind: dict[str, int]) -> tuple[str, bool]:
        """(code, is it a bool) of one element of node."""
        if isinstance(node, Num):
            return self._num(node.value), False
        if isinstance(node, Ref):
            return self._ref(node, ctx, bind), False
        if isinstance(node, Unary):
            if node.op == "not":
                return f"_not({self._bool(node.operand, ctx, bind)})", True
            if node.op == "+":
                return self._x(node.operand, ctx, bind)
            return f"(-{self._float(node.operand, ctx, bind)})", False
        if isinstance(node, BinOp):
            if node.op in ("and", "or"):
                fn = "_and" if node.op == "and" else "_or"
                return f"{fn}({self._bool(node.left, ctx, bind)}, {self._bool(node.right, ctx, bind)})", True
            a, b = self._float(node.left, ctx, bind), self._float(node.right, ctx, bind)
            if node.op in _CMP:
                return f"({a} {_CMP[node.op]} {b})", True
            if node.op == "^":
                return f"np.power({a}, {b})", False
            if node.op in ("+", "-", "*", "/"):
                return f"({a} {node.op} {b})", False
            raise NotSupported(f"operator {node.op}")
        if isinstance(node, Call):
            return self._call(node, ctx, bind), False
        if isinstance(node, Table):
            raise NotSupported("an inline lookup table outside WITH_LOOKUP")
        raise NotSupported(f"cannot compile {type(node).__name__}")

    def _element(self, node: Ref, dims: tuple[str, ...], ctx: Ctx, bind: dict[str, int]) -> int:
        """The flat element of a value over ``dims`` that this reference reads for the binding."""
        int_index, takes, axes = self.ex.ref_plan(node, dims, ctx)
        take = dict(takes)
        idx: list[int] = []
        ax = 0
        for ii in int_index:
            if ii != ":":
                idx.append(int(ii))
                continue
            pos = bind[axes[ax]]
            positions = take.get(ax)
            idx.append(positions[pos] if positions is not None else pos)
            ax += 1
        sizes = tuple(len(self.model.dim_elements(d)) for d in dims)
        if any(not 0 <= i < s for i, s in zip(idx, sizes, strict=True)):
            raise NotSupported(f"{node.name}: an element outside its dimension")
        return int(np.ravel_multi_index(idx, sizes)) if sizes else 0

    def _ref(self, node: Ref, ctx: Ctx, bind: dict[str, int]) -> str:
        upper = node.name.upper()
        if node.name not in self.rvars and upper in builtins.TIME_NAMES:
            return builtins.TIME_NAMES[upper]
        if node.name not in self.rvars:   # a dimension used as a value: the position, 1-based
            return repr(float(self._element(node, (node.name,), ctx, bind) + 1))
        target = self.rvars[node.name]
        if target.kind == "lookup":
            raise NotSupported(f"the lookup {node.name} used as a value")
        if node.name not in self.slot:
            raise NotSupported(f"{node.name} ({target.kind}) has no slot")
        if target.internal:
            idx = [bind[d] for d in ctx.dims]
            e = int(np.ravel_multi_index(idx, target.sizes)) if target.sizes else 0
            return f"v{self.slot[node.name] + e}"
        return f"v{self.slot[node.name] + self._element(node, target.dims, ctx, bind)}"

    def _table(self, key: tuple, xs, ys, linear: bool) -> tuple[int, int, bool]:
        if key not in self._table_at:
            xs, ys = [float(x) for x in xs], [float(y) for y in ys]
            if len(xs) != len(ys) or not xs:
                raise NotSupported("a lookup table with x and y of different lengths")
            self._table_at[key] = (len(self.tables), len(xs), linear)
            self.tables += xs + ys
        return self._table_at[key]

    def _tmpname(self) -> str:
        self._tmp += 1
        return f"_r{self._tmp}"

    def _call(self, node: Call, ctx: Ctx, bind: dict[str, int]) -> str:
        if node.func in self.rvars and self.rvars[node.func].kind == "lookup":
            x = self._float(node.args[0], ctx, bind)
            table = self.rvars[node.func]
            var = self.model.variables[node.func]
            linear = var.extrapolation == "linear"
            if not table.dims:
                off, n, lin = self._table((node.func,), var.xs, var.ys, linear)
            else:
                e = self._element(Ref(node.func, node.subs), table.dims, ctx, bind)
                nested = bool(var.xs) and isinstance(var.xs[0], tuple)
                xs = var.xs[e] if nested else var.xs
                ys = var.ys[e] if var.ys and isinstance(var.ys[0], tuple) else var.ys
                off, n, lin = self._table((node.func, e), xs, ys, linear)
            # offsets as floats: an integer constant would be typed as its own literal type (slow to compile)
            return f"_lookup({x}, TAB, {float(off)!r}, {float(n)!r}, {float(lin)!r})"
        f = node.func.upper()
        if f == "WITH_LOOKUP":
            tbl = node.args[1]
            if not isinstance(tbl, Table):
                raise NotSupported("WITH_LOOKUP without an inline table")
            off, n, _ = self._table(("inline", tuple(tbl.xs), tuple(tbl.ys)), tbl.xs, tbl.ys, False)
            return f"_lookup({self._float(node.args[0], ctx, bind)}, TAB, {float(off)!r}, {float(n)!r}, 0.0)"
        if f in _REDUCE:
            return self._reduce(f, node.args[0], ctx, bind)
        if f in random_streams.ARITY:
            return self._random(node)
        args = node.args
        if f == "IF_THEN_ELSE":
            c = self._bool(args[0], ctx, bind)
            # both branches evaluated, as numpy.where does: no branch in the generated code (numba's
            # compile time grows with the number of basic blocks)
            return f"_where({c}, {self._float(args[1], ctx, bind)}, {self._float(args[2], ctx, bind)})"
        codes = [self._float(a, ctx, bind) for a in args]
        if f in _NP1 and len(codes) == 1:
            return f"{_NP1[f]}({codes[0]})"
        if f in _NP2 and len(codes) == 2:
            return f"{_NP2[f]}({codes[0]}, {codes[1]})"
        simple = {("LOG", 1): "np.log10({0})", ("LOG", 2): "_log({0}, {1})", ("XIDZ", 3): "_xidz({0}, {1}, {2})",
                  ("ZIDZ", 2): "_zidz({0}, {1})", ("QUANTUM", 2): "_quantum({0}, {1})",
                  ("STEP", 2): "_step(t, {0}, {1}, dt)", ("RAMP", 2): "_ramp(t, {0}, {1})",
                  ("RAMP", 3): "_ramp_end(t, {0}, {1}, {2})", ("PULSE", 1): "_pulse(t, dt, {0})",
                  ("PULSE", 2): "_pulse_width(t, dt, {0}, {1})",
                  ("PULSE_TRAIN", 4): "_pulse_train(t, dt, {0}, {1}, {2}, {3})"}
        if (f, len(codes)) in simple:
            return simple[(f, len(codes))].format(*codes)
        raise NotSupported(f"the function {node.func} is not compiled")

    def _random(self, node: Call) -> str:
        """A RANDOM call: this element's column of the run's draws table (one row per time step), which
        engine.compile.random_table fills before the run with the numpy code's own draws."""
        if self._where is None or id(node) not in self._calls:
            raise NotSupported(f"{node.func} outside an equation the C backend numbers")
        name, kind, pos, shape = self._where
        if shape is None or len(pos) != len(shape):
            raise NotSupported(f"{self.rvars[name].host or name}: {node.func} inside a function over part of a "
                               f"dimension")
        key = (name, kind, self._calls[id(node)])
        if key not in self.random_sites:
            self.random_sites[key] = (self.n_random, shape)
            self.n_random += math.prod(shape)
        col = self.random_sites[key][0] + (int(np.ravel_multi_index(pos, shape)) if shape else 0)
        return self._rnd_form.format(col=repr(float(col)))

    def _reduce(self, f: str, arg: Node, ctx: Ctx, bind: dict[str, int]) -> str:
        """A reduction unrolled: one statement per element, in numpy's order (sequential along the axes)."""
        axes = self.ex.compile(arg, ctx).axes
        red = [a for a in axes if a.endswith("!")]
        if not red:
            raise NotSupported(f"{f} without a dimension to reduce")
        sizes = [len(self.model.dim_elements(a[:-1])) for a in red]
        acc = ""
        for combo in itertools.product(*(range(s) for s in sizes)):
            b = dict(bind)
            b.update(zip(red, combo, strict=True))
            term = self._float(arg, ctx, b)
            new = self._tmpname()   # a new name each time: every local is assigned once (see _module)
            if not acc:
                self._pre.append(f"{new} = {term}")
            elif f == "SUM":
                self._pre.append(f"{new} = {acc} + {term}")
            elif f == "PROD":
                self._pre.append(f"{new} = {acc} * {term}")
            elif f == "VMIN":
                self._pre.append(f"{new} = _fmin({acc}, {term})")
            else:
                self._pre.append(f"{new} = _fmax({acc}, {term})")
            acc = new
        return acc


def _preorder(node: Node):
    """node and its sub-expressions, depth first, in the order they are written (as the numpy code is)."""
    yield node
    if isinstance(node, BinOp):
        yield from _preorder(node.left)
        yield from _preorder(node.right)
    elif isinstance(node, Unary):
        yield from _preorder(node.operand)
    elif isinstance(node, Call):
        for a in node.args:
            yield from _preorder(a)


def pack_statics(sc: ScalarCode, statics, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The static values as one flat array PF with, per static slot, its offset and whether it varies
    by run (slot i of run r is PF[OFF[i] + r * VR[i]]); for both scalar backends (numba, C)."""
    names = sc.code.layout.static_names
    if not names:
        return np.zeros(1), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    sizes = sc.static_sizes
    if all(np.size(v) == e for v, e in zip(statics, sizes, strict=True)):
        # no static value varies by run (always so for one run): one concatenation, offsets 0, 1, 2, ...
        total = int(sum(sizes))
        return (np.concatenate([np.asarray(v, dtype=float).ravel() for v in statics]),
                np.arange(total, dtype=np.int64), np.zeros(total, dtype=np.int64))
    parts = []
    varies = np.zeros(len(names), dtype=np.int64)
    for k, (name, value, e) in enumerate(zip(names, statics, sizes, strict=True)):
        a = np.asarray(value, dtype=float)
        if a.size == e:       # one value per element, shared by the runs
            parts.append(a.reshape(e))
            continue
        rv = sc.rvars[name]
        b = a.shape[-1] if a.ndim == len(rv.sizes) + 1 else 1
        if b not in (1, n):
            raise NotSupported(f"{name}: {b} values for a batch of {n} runs")
        a = np.broadcast_to(a if a.ndim == len(rv.sizes) + 1 else a[..., None], tuple(rv.sizes) + (b,))
        parts.append(a.reshape(e * b))
        varies[k] = b > 1
    E = np.asarray(sizes, dtype=np.int64)
    stride = np.where(varies > 0, n, 1)
    base = np.concatenate([[0], np.cumsum(E * stride)[:-1]])
    within = np.arange(int(E.sum())) - np.repeat(np.cumsum(E) - E, E)
    off = np.repeat(base, E) + within * np.repeat(stride, E)
    return (np.ascontiguousarray(np.concatenate(parts), dtype=float), np.ascontiguousarray(off, dtype=np.int64),
            np.ascontiguousarray(np.repeat(varies, E), dtype=np.int64))
