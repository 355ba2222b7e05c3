"""Resolve a declared Model: parse every equation, split it into regional pieces,
check names and arity, and rewrite stateful builtins into internal stocks.

Every problem is collected (not raised one by one), so ``lxsd check`` lists them all.
"""
from __future__ import annotations

import difflib
import itertools

from engine.errors import ExpressionSyntaxError, ModelError, Problem
from engine.ir import INITIAL, Model, Variable
from engine.parse.expr import BinOp, Call, Node, Num, Ref, Table, Unary
from engine.resolve import builtins
from engine.resolve.structure import Piece, Region, RVar


class Resolver:
    """Turns a Model into resolved variables (``self.rvars``) or collects problems."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.problems: list[Problem] = []
        self.rvars: dict[str, RVar] = {}
        self._counter = itertools.count()

    # -------------------------------------------------------------- helpers
    def bad(self, var: str | None, msg: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.model.file, var, msg, hint))

    def sizes(self, dims: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(len(self.model.dim_elements(d)) for d in dims)

    def parse(self, var: Variable, selector: str, what: str = "equation") -> Node | None:
        """The variable's parsed equation (held by the model, see Variable.ast), or None after
        reporting its syntax error."""
        try:
            return var.ast(selector)
        except ExpressionSyntaxError as exc:
            self.bad(var.name, f"syntax error in {what}: {exc}")
            return None

    # -------------------------------------------------------------- main
    def run(self) -> dict[str, RVar]:
        m = self.model
        for var in m.variables.values():
            unknown = [d for d in var.dims if d not in m.dimensions and d not in m.subranges]
            if unknown:
                self.bad(var.name, f"unknown dimension(s) {unknown}",
                         f"declared dimensions: {', '.join(list(m.dimensions) + list(m.subranges)) or 'none'}")
                continue
            if len(set(var.dims)) != len(var.dims):
                self.bad(var.name, f"dims {list(var.dims)} name a dimension twice",
                         "declare a subrange with all its elements to use it as a second axis")
                continue
            self._resolve_var(var)
        self._check_references()  # also when some equations did not parse: list every problem
        if self.problems:
            raise ModelError(self.problems)
        return self.rvars

    def _resolve_var(self, var: Variable) -> None:
        dims = var.dims
        rv = RVar(var.name, var.kind, dims, self.sizes(dims), non_negative=var.non_negative)
        full: Region = tuple(None for _ in dims)
        if var.kind in ("auxiliary", "flow"):
            for selector in var.equations:
                region = self._region(var, selector)
                if region is None:
                    continue
                ast = self.parse(var, selector)
                if ast is None:
                    continue
                rv.pieces.append(Piece(region, ast, is_default=selector in ("", "default")))
            rv.pieces.sort(key=lambda p: not p.is_default)  # the default first; the others overwrite
            if len(var.equations) > 1 and not any(p.is_default for p in rv.pieces):
                self._check_coverage(var, rv)
        elif var.kind == "stock":
            init = self.parse(var, INITIAL, "initial value")
            rate = self._net_flow(var)
            if init is None:
                return
            rv.pieces = [Piece(full, rate)]
            rv.init_pieces = [Piece(full, init)]
        self.rvars[var.name] = rv
        # stateful builtins become internal variables
        for pieces_attr in ("pieces", "init_pieces"):
            pieces = getattr(rv, pieces_attr)
            if pieces:
                for p in pieces:
                    p.ast = self._expand(rv, p, p.ast)

    def _net_flow(self, var: Variable) -> Node:
        """A stock's rate: its inflows minus its outflows (each flow checked to exist and be one)."""
        rate: Node = Num(0.0)
        terms: list[tuple[str, str]] = [("+", f) for f in var.inflows] + [("-", f) for f in var.outflows]
        for i, (sign, flow) in enumerate(terms):
            ref = Ref(flow)
            if i == 0:
                rate = ref if sign == "+" else Unary("-", ref)
            else:
                rate = BinOp(sign, rate, ref)
        for flow in var.inflows + var.outflows:
            target = self.model.variables.get(flow)
            if target is None:
                self.bad(var.name, f"flow {flow!r} is not defined", self._suggest(flow))
            elif target.kind not in ("flow", "auxiliary", "constant", "data"):
                self.bad(var.name, f"{flow!r} is a {target.kind}, not a flow")
        return rate

    def _region(self, var: Variable, selector: str) -> Region | None:
        """Region for an equation selector: '' / 'default' / 'elem' / 'subrange' / 'a,b'."""
        if selector in ("", "default"):
            return tuple(None for _ in var.dims)
        parts = [s.strip() for s in selector.split(",")]
        if len(parts) != len(var.dims):
            self.bad(var.name, f"equation selector {selector!r} names {len(parts)} subscript(s); "
                     f"the variable has dims {list(var.dims)}")
            return None
        region: list[tuple[int, ...] | None] = []
        for part, dim in zip(parts, var.dims, strict=True):
            elems = self.model.dim_elements(dim)
            if part == dim:
                region.append(None)
            elif part in elems:
                region.append((elems.index(part),))
            elif part in self.model.subranges and all(e in elems for e in self.model.dim_elements(part)):
                region.append(tuple(elems.index(e) for e in self.model.dim_elements(part)))
            else:
                self.bad(var.name, f"equation selector {part!r} is not an element or subrange of {dim!r}",
                         f"elements: {', '.join(elems)}")
                return None
        return tuple(region)

    def _check_coverage(self, var: Variable, rv: RVar) -> None:
        covered: set[tuple[int, ...]] = set()
        for p in rv.pieces:
            axes = [range(s) if r is None else r for r, s in zip(p.region, rv.sizes, strict=True)]
            covered.update(itertools.product(*axes))
        total = set(itertools.product(*[range(s) for s in rv.sizes]))
        missing = sorted(total - covered)
        if missing:
            names = [",".join(self.model.dim_elements(d)[i] for d, i in zip(var.dims, idx, strict=True))
                     for idx in missing[:5]]
            self.bad(var.name, f"no equation for element(s) {names}", "add them or a 'default' equation")

    # -------------------------------------------------------------- stateful builtins
    def _new(self, host: RVar, piece: Piece, kind: str, tag: str) -> RVar:
        name = f"_{tag}_{host.name}_{next(self._counter)}"
        sizes = tuple(s if r is None else len(r) for r, s in zip(piece.region, host.sizes, strict=True))
        rv = RVar(name, kind, host.dims, sizes, internal=True, host=host.name, context=piece.region)
        self.rvars[name] = rv
        return rv

    def _aux(self, host: RVar, piece: Piece, tag: str, ast: Node) -> Node:
        """A reference to a new internal auxiliary holding ``ast`` (a number stays a number)."""
        if isinstance(ast, Num):
            return ast
        rv = self._new(host, piece, "auxiliary", tag)
        rv.pieces = [Piece(piece.region, ast)]
        return Ref(rv.name)

    def _stock(self, host: RVar, piece: Piece, tag: str, init: Node, rate: Node) -> Ref:
        rv = self._new(host, piece, "stock", tag)
        rv.pieces = [Piece(piece.region, rate)]
        rv.init_pieces = [Piece(piece.region, init)]
        return Ref(rv.name)

    def _expand(self, host: RVar, piece: Piece, node: Node) -> Node:
        if isinstance(node, BinOp):
            return BinOp(node.op, self._expand(host, piece, node.left), self._expand(host, piece, node.right))
        if isinstance(node, Unary):
            return Unary(node.op, self._expand(host, piece, node.operand))
        if not isinstance(node, Call):
            return node
        fname = node.func.upper()
        if fname in builtins.REWRITES and node.func not in self.model.variables:
            owner = host.host or host.name
            if len(node.args) != 1:
                self.bad(owner, f"{fname} takes 1 argument, got {len(node.args)}")
                return Num(0.0)
            if fname == "GAME":
                return self._expand(host, piece, node.args[0])
            arg = node.args[0]
            dim = arg.name if isinstance(arg, Ref) else None
            if dim in self.model.dimensions or dim in self.model.subranges:
                return Num(float(len(self.model.dim_elements(dim))))
            self.bad(owner, "ELMCOUNT takes the name of a dimension")
            return Num(0.0)
        args = tuple(self._expand(host, piece, a) for a in node.args)
        if fname not in builtins.STATEFUL or node.func in self.model.variables:
            return Call(node.func, args, node.subs)
        lo, hi = builtins.STATEFUL[fname]
        if not lo <= len(args) <= hi:
            self.bad(host.host or host.name, f"{fname} takes {lo if lo == hi else f'{lo} to {hi}'} "
                     f"arguments, got {len(args)}")
            return Num(0.0)
        return self._stateful(host, piece, fname, args)

    def _stateful(self, host: RVar, piece: Piece, f: str, a: tuple) -> Node:
        """A stateful builtin's call replaced by internal variables; the node that stands for its value."""
        if f == "INTEG":
            return self._stock(host, piece, "integ", a[1], a[0])
        if f == "INITIAL":
            rv = self._new(host, piece, "initial", "initial")
            rv.pieces = [Piece(piece.region, a[0])]
            return Ref(rv.name)
        if f == "ACTIVE_INITIAL":
            rv = self._new(host, piece, "auxiliary", "active_initial")
            rv.pieces = [Piece(piece.region, a[0])]
            rv.init_pieces = [Piece(piece.region, a[1])]
            return Ref(rv.name)
        if f in ("SMOOTH", "SMOOTHI", "SMOOTH3", "SMOOTH3I", "SMOOTHN"):
            return self._smooth(host, piece, f, a)
        if f in ("DELAY1", "DELAY1I", "DELAY3", "DELAY3I", "DELAYN"):
            return self._delay(host, piece, f, a)
        if f == "DELAY_FIXED":
            inp = self._aux(host, piece, "delay_fixed_in", a[0])
            fixed = self._new(host, piece, "delay_fixed", "delay_fixed")
            fixed.delay_time = a[1]
            fixed.delay_input = inp.name if isinstance(inp, Ref) else None
            if fixed.delay_input is None:  # a constant input: keep it as an aux so it can be pushed
                aux = self._new(host, piece, "auxiliary", "delay_fixed_in")
                aux.pieces = [Piece(piece.region, inp)]
                fixed.delay_input = aux.name
            fixed.init_pieces = [Piece(piece.region, a[2])]
            return Ref(fixed.name)
        if f == "SAMPLE_IF_TRUE":
            # out = IF cond THEN input ELSE (out one step ago); "one step ago" is a one-step
            # DELAY FIXED pipeline of out itself, which starts at the initial value.
            sample = self._new(host, piece, "auxiliary", "sample")
            held = self._new(host, piece, "delay_fixed", "sample_prev")
            held.delay_time = Ref("TIME_STEP")
            held.delay_input = sample.name
            held.init_pieces = [Piece(piece.region, a[2])]
            # the variable read inside its own SAMPLE IF TRUE is its value so far (Vensim holds it
            # as a state): PEAK = SAMPLE IF TRUE(x > PEAK, x, x)
            cond, x = (_replace_ref(e, host, Ref(held.name)) for e in (a[0], a[1]))
            sample.pieces = [Piece(piece.region, Call("IF_THEN_ELSE", (cond, x, Ref(held.name))))]
            return Ref(sample.name)
        if f in ("TREND", "FORECAST"):
            return self._trend(host, piece, f, a)
        raise AssertionError(f)

    def _smooth(self, host: RVar, piece: Piece, f: str, a: tuple) -> Node:
        """SMOOTH, SMOOTHI, SMOOTH3, SMOOTH3I, SMOOTHN: a chain of first-order stocks."""
        owner = host.host or host.name
        order = 3 if f.startswith("SMOOTH3") else 1
        if f == "SMOOTHN":
            order = self._const_int(owner, a[3], f)
        x = self._aux(host, piece, "smooth_in", a[0])
        T = self._aux(host, piece, "smooth_time", a[1])
        init = a[2] if f in ("SMOOTHI", "SMOOTH3I", "SMOOTHN") else x
        stage_t = _div(T, Num(float(order))) if order > 1 else T
        prev: Node = x
        for _ in range(order):
            # build lazily: the stock's rate refers to itself, so name it first
            rv = self._new(host, piece, "stock", "smooth")
            me = Ref(rv.name)
            rv.pieces = [Piece(piece.region, _div(_sub(prev, me), stage_t))]
            rv.init_pieces = [Piece(piece.region, init)]
            prev = me
        return prev

    def _delay(self, host: RVar, piece: Piece, f: str, a: tuple) -> Node:
        """DELAY1, DELAY1I, DELAY3, DELAY3I, DELAYN: a chain of material stages."""
        owner = host.host or host.name
        order = 3 if f.startswith("DELAY3") else 1
        if f == "DELAYN":
            order = self._const_int(owner, a[3], f)
        x = self._aux(host, piece, "delay_in", a[0])
        T = self._aux(host, piece, "delay_time", a[1])
        init = a[2] if f in ("DELAY1I", "DELAY3I", "DELAYN") else x
        if order == 1:
            rv = self._new(host, piece, "stock", "delay")
            out1 = self._aux(host, piece, "delay_out", _div(Ref(rv.name), T))
            rv.pieces = [Piece(piece.region, _sub(x, out1))]
            rv.init_pieces = [Piece(piece.region, _mul(init, T))]
            return out1
        # As Vensim (and PySD): when order * TIME STEP exceeds the delay time at the start,
        # the order drops to the whole number of steps in the delay (at least 1). The dropped
        # stages pass their inflow straight through.
        k_rv = self._new(host, piece, "initial", "delay_order")
        steps = Call("INTEGER", (_add(_div(T, Ref("TIME_STEP")), Num(1e-9)),))
        k_rv.pieces = [Piece(piece.region, Call("MIN", (Num(float(order)), Call("MAX", (Num(1.0), steps)))))]
        k = Ref(k_rv.name)
        stage_t = self._aux(host, piece, "delay_stage_time", _div(T, k))
        inflow: Node = x
        out: Node = x
        last: Node = Num(0.0)
        lag1: Node = stage_t
        for i in range(order):
            rv = self._new(host, piece, "stock", "delay")
            me = Ref(rv.name)
            active = BinOp(">", k, Num(float(i)))
            t_i = stage_t
            if f == "DELAYN" and i > 0 and isinstance(T, Ref):
                # DELAY N: material in stage i moves at the delay time of i steps ago (as PySD)
                lagged = self._new(host, piece, "delay_fixed", "delayn_time")
                lagged.delay_time = _mul(Num(float(i)), Ref("TIME_STEP"))
                lagged.delay_input = T.name
                lagged.init_pieces = [Piece(piece.region, T)]
                t_i = _div(Ref(lagged.name), k)
                if i == 1:
                    lag1 = t_i
            out = self._aux(host, piece, "delay_out", Call("IF_THEN_ELSE", (active, _div(me, t_i), inflow)))
            rv.pieces = [Piece(piece.region, Call("IF_THEN_ELSE", (active, _sub(inflow, out), Num(0.0))))]
            rv.init_pieces = [Piece(piece.region, Call("IF_THEN_ELSE", (active, _mul(init, stage_t), Num(0.0))))]
            last = _add(last, Call("IF_THEN_ELSE", (BinOp("=", k, Num(float(i + 1))), me, Num(0.0))))
            inflow = out
        if f == "DELAYN":
            # the output is the last stage's content over the stage time of one step ago (as PySD)
            return self._aux(host, piece, "delay_out", _div(last, lag1))
        return out

    def _trend(self, host: RVar, piece: Piece, f: str, a: tuple) -> Node:
        """TREND and FORECAST, built as Vensim defines them."""
        x = self._aux(host, piece, "trend_in", a[0])
        T = self._aux(host, piece, "trend_time", a[1])
        init_trend = a[2] if f == "TREND" else Num(0.0)
        # Vensim: average = SMOOTHI(input, T, input / (1 + init_trend * T))
        rv = self._new(host, piece, "stock", "trend_avg")
        avg = Ref(rv.name)
        rv.pieces = [Piece(piece.region, _div(_sub(x, avg), T))]
        rv.init_pieces = [Piece(piece.region, _div(x, _add(Num(1.0), _mul(init_trend, T))))]
        trend = Call("ZIDZ", (_sub(x, avg), _mul(T, Call("ABS", (avg,)))))
        if f == "TREND":
            return self._aux(host, piece, "trend", trend)
        # Vensim: FORECAST = input * (1 + TREND(input, T, 0) * horizon)
        return self._aux(host, piece, "forecast", _mul(x, _add(Num(1.0), _mul(trend, a[2]))))

    def _const_int(self, owner: str, node: Node, f: str) -> int:
        if isinstance(node, Num) and node.value == int(node.value) and node.value >= 1:
            return int(node.value)
        if isinstance(node, Ref):
            var = self.model.variables.get(node.name)
            if var is not None and var.kind == "constant" and isinstance(var.value, (int, float)) \
                    and var.value == int(var.value) and var.value >= 1:
                return int(var.value)
        self.bad(owner, f"the order of {f} must be a constant whole number >= 1")
        return 1

    # -------------------------------------------------------------- references
    def _suggest(self, name: str) -> str | None:
        pool = list(self.model.variables) + [n.lower() for n in builtins.TIME_NAMES]
        close = difflib.get_close_matches(name, pool, n=3)
        return f"did you mean {', '.join(close)}?" if close else None

    def _check_references(self) -> None:
        for rv in list(self.rvars.values()):
            owner = rv.host or rv.name
            for pieces in (rv.pieces, rv.init_pieces or []):
                for p in pieces:
                    self._check_node(owner, p.ast)

    def _check_node(self, owner: str, node: Node) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, Ref):
                self._check_ref(owner, n)
            elif isinstance(n, Call):
                stack.extend(n.args)
                self._check_call(owner, n)
            elif isinstance(n, BinOp):
                stack.extend((n.left, n.right))
            elif isinstance(n, Unary):
                stack.append(n.operand)

    def _check_ref(self, owner: str, n: Ref) -> None:
        m = self.model
        if n.name in self.rvars:
            if self.rvars[n.name].kind == "lookup":
                self.bad(owner, f"lookup {n.name!r} is used as a value", f"call it: {n.name}(x)")
        elif n.name in m.variables:
            pass  # declared, but its own equation has a problem (reported there)
        elif n.name in m.dimensions or n.name in m.subranges:
            pass  # a dimension used as a value: its elements' positions
        elif n.name.upper() not in builtins.TIME_NAMES:
            self.bad(owner, f"unknown name {n.name!r}", self._suggest(n.name))

    def _check_call(self, owner: str, n: Call) -> None:
        """One call's own problems (its arguments are checked as nodes of their own)."""
        m = self.model
        if n.func in self.rvars:
            target = self.rvars[n.func]
            if target.kind != "lookup":
                self.bad(owner, f"{n.func!r} is a {target.kind}, not a lookup or function")
            elif n.subs and len(n.subs) != len(target.dims):
                self.bad(owner, f"lookup {n.func!r} has dims {list(target.dims)}, called with "
                                f"subscripts {list(n.subs)}")
            elif len(n.args) != 1:
                self.bad(owner, f"lookup {n.func!r} takes 1 argument, got {len(n.args)}")
            return
        fname = n.func.upper()
        if n.subs:
            self.bad(owner, f"{n.func!r} is called with subscripts but is not a subscripted lookup")
            return
        if fname not in builtins.STATELESS:
            close = difflib.get_close_matches(fname, list(builtins.ALL), n=3)
            lookups = [v for v in m.variables if m.variables[v].kind == "lookup"]
            self.bad(owner, f"unknown function {n.func!r}",
                     f"did you mean {', '.join(close)}?" if close else
                     (f"lookups here: {', '.join(lookups)}" if lookups else None))
            return
        lo, hi = builtins.STATELESS[fname]
        if not lo <= len(n.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            self.bad(owner, f"{fname} takes {want} argument(s), got {len(n.args)}")
        if fname == "WITH_LOOKUP" and len(n.args) == 2 and not isinstance(n.args[1], Table):
            self.bad(owner, "WITH_LOOKUP needs an inline table ((x1,y1),(x2,y2),...) as 2nd argument")
        for a in n.args:
            if isinstance(a, Table) and fname != "WITH_LOOKUP":
                self.bad(owner, f"an inline table can only be given to WITH_LOOKUP, not {fname}")


def _mul(x: Node, y: Node) -> Node:
    return BinOp("*", x, y)


def _div(x: Node, y: Node) -> Node:
    return BinOp("/", x, y)


def _sub(x: Node, y: Node) -> Node:
    return BinOp("-", x, y)


def _add(x: Node, y: Node) -> Node:
    return BinOp("+", x, y)


def resolve(model: Model) -> dict[str, RVar]:
    """Resolve a model; raises ModelError listing every problem found."""
    rvars: dict[str, RVar] = {}
    r = Resolver(model)
    # constants, lookups and data have no equations but are values the compiler needs
    for var in model.variables.values():
        if var.kind in ("constant", "lookup", "data"):
            rvars[var.name] = RVar(var.name, var.kind, var.dims, tuple(
                len(model.dim_elements(d)) for d in var.dims if d in model.dimensions or d in model.subranges))
    r.rvars.update(rvars)
    return r.run()


def _replace_ref(node: Node, host: RVar, by: Node) -> Node:
    """node with references to the host variable itself (same subscripts as its dimensions) replaced."""
    if host.internal:
        return node
    if isinstance(node, Ref):
        if node.name == host.name and (node.subs is None or tuple(node.subs) == tuple(host.dims)):
            return by
        return node
    if isinstance(node, Call):
        return Call(node.func, tuple(_replace_ref(a, host, by) for a in node.args), node.subs)
    if isinstance(node, BinOp):
        return BinOp(node.op, _replace_ref(node.left, host, by), _replace_ref(node.right, host, by))
    if isinstance(node, Unary):
        return Unary(node.op, _replace_ref(node.operand, host, by))
    return node
