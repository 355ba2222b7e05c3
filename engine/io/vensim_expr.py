"""The converter's expressions: PySD's abstract expressions written as our equation text (references,
subscripts and mappings, calls and builtins, lookups, SUM over subscripted lookups, vector functions,
RANDOM PINK NOISE, macros). A mixin of ``pysd_import.Converter``: it uses the converter's ranges,
names and macro instances."""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .convert_common import (
    Unsupported,
    _atom,
    _Ctx,
    _is_number,
    _NeedExpand,
    _NotConstant,
    _num,
    fmt_number,
)
from .vensim_names import CONTROL_NAMES, _Names, display_name, name_key, to_identifier
from .vensim_reader import _error

# PySD's abstract function name -> our builtin name, for plain calls (same arguments).
SIMPLE_CALLS = {
    "abs": "ABS", "exp": "EXP", "ln": "LN", "sqrt": "SQRT", "integer": "INTEGER",
    "modulo": "MODULO", "sin": "SIN", "cos": "COS", "tan": "TAN", "arcsin": "ARCSIN",
    "arccos": "ARCCOS", "arctan": "ARCTAN", "xidz": "XIDZ", "zidz": "ZIDZ",
    "quantum": "QUANTUM", "step": "STEP", "ramp": "RAMP", "pulse": "PULSE",
    "if_then_else": "IF_THEN_ELSE", "min": "MIN", "max": "MAX", "power": "POWER",
    "log": "LOG",
}
# Functions over a dimension (argument carries a `dim!`).
AGGREGATES = {"sum": "SUM", "prod": "PROD", "vmin": "VMIN", "vmax": "VMAX"}
# Functions the core may provide beyond docs/model-format.md; emitted as calls so the
# core's own "unknown function" error names them if missing.
EXTENDED_CALLS = {
    "active_initial": "ACTIVE_INITIAL",
    "get_time_value": "GET_TIME_VALUE",
    "vector_select": "VECTOR_SELECT",
    "vector_sort_order": "VECTOR_SORT_ORDER",
    "vector_reorder": "VECTOR_REORDER",
    "vector_rank": "VECTOR_RANK",
    "invert_matrix": "INVERT_MATRIX",
    "random_0_1": "RANDOM_0_1",
    "random_uniform": "RANDOM_UNIFORM",
    "random_normal": "RANDOM_NORMAL",
    "random_exponential": "RANDOM_EXPONENTIAL",
}

# Vensim's RANDOM family (engine/compile/random_streams.py), written as PySD names them.
RANDOM_CALLS = {"RANDOM_0_1", "RANDOM_UNIFORM", "RANDOM_NORMAL", "RANDOM_EXPONENTIAL", "RANDOM_GAMMA",
                "RANDOM_WEIBULL", "RANDOM_BETA", "RANDOM_POISSON", "RANDOM_TRIANGULAR"}
# Vensim's stateful functions as calls (XMILE written by Vensim): name -> argument counts.
VENSIM_STATEFUL_CALLS = {"smooth": (2, 2), "smoothi": (3, 3), "smooth3": (2, 2), "smooth3i": (3, 3),
                         "delay1": (2, 2), "delay1i": (3, 3), "delay3": (2, 2), "delay3i": (3, 3)}


class ExpressionTranslator:
    """Expression conversion for one model (mixed into the Converter)."""

    # What the mixin reads of the Converter (pysd_import.Converter sets them), declared for the type checker.
    path: Path
    names: _Names
    ns: dict[str, Any]
    out: dict[str, Any]
    original: dict[str, str]
    ranges: dict[str, list[str]]            # range key -> element keys
    range_ident: dict[str, str]
    range_name: dict[str, str]
    elements: dict[str, str]                # element key -> identifier
    elements_by_key: dict[str, Any]
    mapping: dict[str, set[str]]
    list_map: dict[tuple[str, str], dict[str, str]]
    lookup_elems: dict[str, Any]
    sublookups: dict[str, dict]
    macros: dict[str, Any]
    macro_count: int
    macro_consts: dict[str, float]
    parent: dict[str, str]                  # subrange key -> its parent range key
    time_values: dict[str, Any]

    if TYPE_CHECKING:  # the Converter's methods the mixin calls
        def _top(self, key: str) -> str: ...
        def _equal_range(self, k: str, among: Any) -> str | None: ...
        def _position(self, k: str, elem: str) -> int: ...
        def _const_eval(self, ast: Any, lookup: Any, fold_refs: bool = True) -> float: ...
        def _dims(self, el: Any) -> list[str]: ...
        def _element(self, el: Any, ident: str, ns: dict[str, Any], prefix: str = "") -> Any: ...
        def _orig_elem(self, key: str) -> str: ...
        def _lookup_table(self, a: Any, var: str) -> Any: ...

    # ------------------------------------------------------------------ expressions
    def expr(self, ast, ctx: _Ctx) -> str:
        from pysd.translators.structures import abstract_expressions as ae
        if _is_number(ast):
            s = fmt_number(ast)
            return f"({s})" if s.startswith("-") else s
        if isinstance(ast, np.ndarray):
            if ast.size == 1:
                return self.expr(float(ast.reshape(-1)[0]), ctx)
            raise Unsupported("an array of numbers inside an expression")
        if isinstance(ast, str):
            raise Unsupported(f"'{ast.strip()[:40]}'", "unparsed text in the equation")
        if isinstance(ast, ae.ArithmeticStructure):
            return self._arithmetic(ast, ctx)
        if isinstance(ast, ae.LogicStructure):
            return self._logic(ast, ctx)
        if isinstance(ast, ae.ReferenceStructure):
            return self.reference(ast, ctx)
        if isinstance(ast, ae.CallStructure):
            return self.call(ast, ctx)
        if isinstance(ast, ae.GameStructure):
            return self.expr(ast.expression, ctx)
        if isinstance(ast, ae.InitialStructure):
            return f"INITIAL({self.expr(ast.initial, ctx)})"
        if isinstance(ast, ae.IntegStructure):
            raise Unsupported("INTEG inside an expression", "INTEG must be the whole equation")
        stateful = self._stateful_structure(ast, ctx)
        if stateful is not None:
            return stateful
        return self._special_structure(ast, ctx)

    def _special_structure(self, ast, ctx: _Ctx) -> str:
        """Inline lookups and the ALLOCATE functions as our calls; what cannot be a part of an expression is
        refused naming it."""
        from pysd.translators.structures import abstract_expressions as ae
        if isinstance(ast, ae.InlineLookupsStructure):
            xs, ys, extra = self._lookup_table(ast.lookups, ctx.var)
            if extra.get("extrapolation") != "clamp":
                raise Unsupported("an extrapolating inline lookup")
            pts = ", ".join(f"({x}, {y})" for x, y in zip(xs, ys, strict=False))
            return f"WITH_LOOKUP({self.expr(ast.argument, ctx)}, ({pts}))"
        if isinstance(ast, ae.AllocateAvailableStructure):
            return (f"ALLOCATE_AVAILABLE({self.expr(ast.request, ctx)}, {self.expr(ast.pp, ctx)}, "
                    f"{self.expr(ast.avail, ctx)})")
        if isinstance(ast, ae.AllocateByPriorityStructure):
            return (f"ALLOCATE_BY_PRIORITY({self.expr(ast.request, ctx)}, {self.expr(ast.priority, ctx)}, "
                    f"{self.expr(ast.size, ctx)}, {self.expr(ast.width, ctx)}, {self.expr(ast.supply, ctx)})")
        if isinstance(ast, (ae.GetDataStructure, ae.GetLookupsStructure, ae.GetConstantsStructure)):
            raise Unsupported("GET XLS/DIRECT inside an expression",
                              "it must be the whole equation")
        if isinstance(ast, ae.DataStructure):
            raise Unsupported("DATA")
        raise Unsupported(type(ast).__name__)

    def _arithmetic(self, ast, ctx: _Ctx) -> str:
        """+ - * / ^ and negation, as our equation text."""
        from pysd.translators.structures import abstract_expressions as ae
        ArithmeticStructure = ae.ArithmeticStructure
        if ast.operators == ["negative"]:
            return "-" + _atom(self.expr(ast.arguments[0], ctx))
        args = list(ast.arguments)
        if (ast.operators and all(o == "^" for o in ast.operators) and _is_number(args[0])
                and float(args[0]) < 0 and not self._paren_negative(args[0])):
            # PySD folds the sign of -2^2 into the literal; Vensim and XMILE read -(2^2)
            rest = ArithmeticStructure(ast.operators, (-float(args[0]),) + tuple(args[1:]))
            return "(-" + _atom(self.expr(rest, ctx)) + ")"
        parts = [self.expr(a, ctx) for a in args]
        out = _atom(parts[0])
        for op, p in zip(ast.operators, parts[1:], strict=False):
            if op == "negative":
                raise Unsupported("negation operator in a chain")
            out = f"{out} {op} {_atom(p)}"
        return out

    def _logic(self, ast, ctx: _Ctx) -> str:
        """Comparisons and :AND: :OR: :NOT:, as our equation text."""
        ops = {":AND:": "and", ":OR:": "or", "and": "and", "or": "or",
               "=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
        if ast.operators and ast.operators[0].lower() in (":not:", "not") and len(ast.arguments) == 1:
            return "not " + _atom(self.expr(ast.arguments[0], ctx))
        parts = [self.expr(a, ctx) for a in ast.arguments]
        out = _atom(parts[0])
        for op, p in zip(ast.operators, parts[1:], strict=False):
            o = ops.get(op) or ops.get(op.lower())
            if o is None:
                raise Unsupported(f"operator {op}")
            out = f"{out} {o} {_atom(p)}"
        return out

    def _stateful_structure(self, ast, ctx: _Ctx) -> str | None:
        """PySD's stateful structures (delays, smooths, TREND, FORECAST, SAMPLE IF TRUE) as our builtins' calls;
        None for any other node."""
        from pysd.translators.structures import abstract_expressions as ae
        if isinstance(ast, ae.DelayStructure):
            name = {1: "DELAY1I", 3: "DELAY3I"}.get(int(ast.order))
            if name is None:
                return (f"DELAYN({self.expr(ast.input, ctx)}, {self.expr(ast.delay_time, ctx)}, "
                        f"{self.expr(ast.initial, ctx)}, {fmt_number(ast.order)})")
            return (f"{name}({self.expr(ast.input, ctx)}, {self.expr(ast.delay_time, ctx)}, "
                    f"{self.expr(ast.initial, ctx)})")
        if isinstance(ast, ae.DelayNStructure):
            return (f"DELAYN({self.expr(ast.input, ctx)}, {self.expr(ast.delay_time, ctx)}, "
                    f"{self.expr(ast.initial, ctx)}, {self._int_order(ast.order, ctx, 'DELAY N')})")
        if isinstance(ast, ae.DelayFixedStructure):
            return (f"DELAY_FIXED({self.expr(ast.input, ctx)}, {self.expr(ast.delay_time, ctx)}, "
                    f"{self.expr(ast.initial, ctx)})")
        if isinstance(ast, ae.SmoothStructure):
            name = {1: "SMOOTHI", 3: "SMOOTH3I"}.get(int(ast.order))
            if name is None:
                return (f"SMOOTHN({self.expr(ast.input, ctx)}, {self.expr(ast.smooth_time, ctx)}, "
                        f"{self.expr(ast.initial, ctx)}, {fmt_number(ast.order)})")
            return (f"{name}({self.expr(ast.input, ctx)}, {self.expr(ast.smooth_time, ctx)}, "
                    f"{self.expr(ast.initial, ctx)})")
        if isinstance(ast, ae.SmoothNStructure):
            return (f"SMOOTHN({self.expr(ast.input, ctx)}, {self.expr(ast.smooth_time, ctx)}, "
                    f"{self.expr(ast.initial, ctx)}, {self._int_order(ast.order, ctx, 'SMOOTH N')})")
        if isinstance(ast, ae.TrendStructure):
            return (f"TREND({self.expr(ast.input, ctx)}, {self.expr(ast.average_time, ctx)}, "
                    f"{self.expr(ast.initial_trend, ctx)})")
        if isinstance(ast, ae.ForecastStructure):
            init = ast.initial_trend
            if not (_is_number(init) and float(init) == 0):
                raise Unsupported("FORECAST with an initial trend")
            return (f"FORECAST({self.expr(ast.input, ctx)}, {self.expr(ast.average_time, ctx)}, "
                    f"{self.expr(ast.horizon, ctx)})")
        if isinstance(ast, ae.SampleIfTrueStructure):
            return (f"SAMPLE_IF_TRUE({self.expr(ast.condition, ctx)}, {self.expr(ast.input, ctx)}, "
                    f"{self.expr(ast.initial, ctx)})")
        return None

    def _paren_negative(self, x) -> bool:
        """Whether the source writes this negative number in parentheses, as in (-2)^2."""
        if not hasattr(self, "_source_text"):
            try:
                self._source_text = re.sub(r"\s+", "", self.path.read_text(errors="replace"))
            except OSError:
                self._source_text = ""
        num = fmt_number(-float(x))
        return bool(re.search(r"\(-" + re.escape(num) + r"(\.0*)?\)\^", self._source_text))

    def _int_order(self, order, ctx, fname):
        if _is_number(order):
            return fmt_number(order)
        if hasattr(order, "reference") and not getattr(order, "subscripts", None):
            # a macro's parameter given a constant argument (DELAY N's order passed into a macro)
            folded = self.macro_consts.get(ctx.ns.get(name_key(order.reference)))
            if folded is not None:
                return fmt_number(round(folded))
        try:
            v = self._const_eval(order, lambda k: self.time_values.get(k))
        except _NotConstant:
            # a varying order: pass the expression; the engine requires a constant
            return self.expr(order, ctx)
        return fmt_number(round(v))

    def _subscript(self, s: str, ctx: _Ctx, pos: int | None = None) -> str:
        s = s.strip()
        bang = s.endswith("!")
        k = name_key(s.rstrip("!"))
        if not bang and k in ctx.subst:
            return self.elements[ctx.subst[k]]
        if not bang and k in self.ranges:
            eq = self._equal_range(k, ctx.subst)
            if eq is not None:
                return self.elements[ctx.subst[eq]]
            if ctx.lhs and k not in ctx.lhs:
                eq = self._equal_range(k, ctx.lhs)
                if eq is not None:
                    k = eq
        if k in self.ranges:
            return (None if bang else self._mapped_element(k, ctx)) or self.range_ident[k] + ("!" if bang else "")
        if k in self.elements:
            return self.elements[k]
        raise _error(self.path, f"unknown subscript '{s}'", variable=ctx.var)

    def _mapped_element(self, k: str, ctx: _Ctx) -> str | None:
        """The element a range maps to (Vensim subscript mapping) in an expanded equation; None where the range
        stays a range. Raises _NeedExpand where the left-hand side must be expanded element by element first."""
        for lhs_range, elem in ctx.subst.items():
            # a mapped range follows an expanded one
            if k in self.mapping.get(lhs_range, ()) or lhs_range in self.mapping.get(k, ()):
                i = self.ranges[lhs_range].index(elem)
                if i < len(self.ranges[k]):
                    return self.elements[self.ranges[k][i]]
            corr = self.list_map.get((k, lhs_range)) or self.list_map.get((k, self._top(lhs_range)))
            if corr and elem in corr:
                return self.elements[corr[elem]]
        if ctx.lhs and k not in ctx.lhs and not ctx.vector:
            for lhs_range in ctx.lhs:
                if k in self.mapping.get(lhs_range, ()) or lhs_range in self.mapping.get(k, ()):
                    raise _NeedExpand
                if (k, lhs_range) in self.list_map or (k, self._top(lhs_range)) in self.list_map:
                    raise _NeedExpand
        return None

    def _range_position(self, k: str, ast, ctx: _Ctx) -> str:
        """A subscript range used as a value: the position (1-based) of the element the equation is at."""
        if k in ctx.subst:
            return str(self._position(k, ctx.subst[k]))
        eq = self._equal_range(k, ctx.subst)
        if eq is not None:
            return str(self._position(k, ctx.subst[eq]))
        if k in ctx.lhs or self._equal_range(k, ctx.lhs) is not None:
            raise _NeedExpand
        for elem in ctx.subst.values():
            if elem in self.ranges[k]:
                return str(self._position(k, elem))
        raise Unsupported(f"subscript range '{ast.reference}' as a value",
                          "it is not a dimension of this variable")

    def reference(self, ast, ctx: _Ctx) -> str:
        k = name_key(ast.reference)
        if k.startswith('"') and k.endswith('"') and k not in ctx.ns:
            k2 = k[1:-1]
            if k2 in ctx.ns:
                k = k2
        target = ctx.ns.get(k)
        if target is None and k in self.ranges and not ast.subscripts:
            return self._range_position(k, ast, ctx)
        if target is None and k in self.elements and k not in self.ranges and not ast.subscripts:
            # an element used as a value: its position in its dimension (1-based)
            for rk, elems in self.ranges.items():
                if rk not in self.parent and k in elems:
                    return str(elems.index(k) + 1)
        if target is None:
            if k in self.sublookups or k in self.lookup_elems:
                raise Unsupported(f"lookup '{ast.reference}' used without an argument")
            raise _error(self.path, f"refers to '{ast.reference}', which is not defined",
                         variable=display_name(ctx.var))
        if isinstance(target, tuple):  # macro parameter bound to an expression
            return target[1]
        if ast.subscripts is None or not ast.subscripts.subscripts:
            return target
        subs = [self._subscript(s, ctx) for s in ast.subscripts.subscripts]
        return f"{target}[{', '.join(subs)}]"

    def call(self, ast, ctx: _Ctx) -> str:
        fname = ast.function.reference if hasattr(ast.function, "reference") else str(ast.function)
        fk = name_key(fname)
        args = ast.arguments
        # lookups called as functions
        if fk in self.sublookups or (fk in ctx.ns and fk in self.lookup_elems and ctx.ns is self.ns):
            return self._lookup_call(fk, ast, ctx)
        if fk in self.macros:
            return self._macro_call(fk, args, ctx)
        if fk in SIMPLE_CALLS:
            if fk in ("min", "max") and len(args) == 1:
                return self._aggregate(SIMPLE_CALLS[fk].replace("M", "VM", 1), args[0], ctx)
            return f"{SIMPLE_CALLS[fk]}({', '.join(self.expr(a, ctx) for a in args)})"
        if fk in AGGREGATES:
            return self._aggregate(AGGREGATES[fk], args[0], ctx)
        if fk in ("vmax_xmile", "vmin_xmile"):
            return self._aggregate("VMAX" if fk == "vmax_xmile" else "VMIN", args[0], ctx)
        rewritten = self._rewritten_call(fk, args, ctx)
        if rewritten is not None:
            return rewritten
        special = self._vensim_call(fk, fname, args, ctx)
        if special is not None:
            return special
        if fk == "vector_elm_map":
            return self._vector_elm_map(args, ctx)
        if fk == "vector_lookup":
            return self._vector_lookup(args, ctx)
        if fk == "random_pink_noise":
            return self._pink_noise(args, ctx)
        if fk.startswith("random_") and fk.upper() in RANDOM_CALLS:
            return f"{fk.upper()}({', '.join(self.expr(a, ctx) for a in args)})"
        if fk in EXTENDED_CALLS:
            if fk in ("vector_sort_order", "vector_rank", "vector_reorder") and not ctx.subst:
                # along the last dimension, which Vensim maps by position (company -> scompany)
                ctx.vector = True
                try:
                    return f"{EXTENDED_CALLS[fk]}({', '.join(self.expr(a, ctx) for a in args)})"
                finally:
                    ctx.vector = False
            return f"{EXTENDED_CALLS[fk]}({', '.join(self.expr(a, ctx) for a in args)})"
        raise Unsupported(fname.upper().replace("_", " ") + "()", "unknown function")

    def _vensim_call(self, fk: str, fname: str, args, ctx: _Ctx) -> str | None:
        """ELMCOUNT, GAME, DELAY MATERIAL and Vensim's stateful names in XMILE as our equation text; None for any
        other function."""
        if fk == "elmcount":
            a = args[0]
            name = a.reference if hasattr(a, "reference") else str(a)
            rk = name_key(str(name).rstrip("!"))
            if rk not in self.ranges:
                raise Unsupported("ELMCOUNT", f"'{name}' is not a subscript range")
            return str(len(self.ranges[rk]))
        if fk in VENSIM_STATEFUL_CALLS and ctx.ns is not None:
            # Vensim's names in an XMILE file written by Vensim (PySD's XMILE reader leaves them as calls)
            lo, hi = VENSIM_STATEFUL_CALLS[fk]
            if not lo <= len(args) <= hi:
                raise Unsupported(f"{fname.upper()} with {len(args)} arguments")
            return f"{fk.upper()}({', '.join(self.expr(a, ctx) for a in args)})"
        if fk == "game" and len(args) == 1:   # Vensim's gaming input: outside a game, its argument
            return self.expr(args[0], ctx)
        if fk == "delay_material":
            # Vensim's material (conveyor) delay; with no loss argument (0) it is a pipeline delay:
            # the output is the input of one delay time before, the initial value until then
            if len(args) == 4 and not (_is_number(args[3]) and float(args[3]) == 0):
                raise Unsupported("DELAY MATERIAL with a loss/extra argument other than 0")
            if len(args) not in (3, 4):
                raise Unsupported(f"DELAY MATERIAL with {len(args)} arguments")
            return (f"DELAY_FIXED({self.expr(args[0], ctx)}, {self.expr(args[1], ctx)}, "
                    f"{self.expr(args[2], ctx)})")
        return None

    def _rewritten_call(self, fk: str, args, ctx: _Ctx) -> str | None:
        """Functions written as other builtins (XMILE's PULSE and RAMP, PULSE TRAIN's argument order, PI, the
        hyperbolic functions); None for any other function."""
        if fk == "pulse_train":     # PySD order: start, interval, width, end
            start, interval, width, end = (self.expr(a, ctx) for a in args)
            return f"PULSE_TRAIN({start}, {width}, {interval}, {end})"
        if fk == "xpulse":          # XMILE PULSE(magnitude, start): one dt-wide spike
            start, mag = (self.expr(a, ctx) for a in args)
            return f"{_atom(mag)} / TIME_STEP * PULSE({start}, TIME_STEP / 2)"
        if fk == "xpulse_train":
            start, interval, mag = (self.expr(a, ctx) for a in args)
            return (f"{_atom(mag)} / TIME_STEP * PULSE_TRAIN({start}, TIME_STEP / 2, "
                    f"{interval}, 1e300)")
        if fk == "xramp":
            slope, start = (self.expr(a, ctx) for a in args)
            return f"{_atom(slope)} * MAX(0, TIME - {_atom(start)})"
        if fk == "pi":
            return repr(math.pi)
        if fk in ("sinh", "cosh", "tanh"):
            x = _atom(self.expr(args[0], ctx))
            return {"sinh": f"((EXP({x}) - EXP(-{x})) / 2)",
                    "cosh": f"((EXP({x}) + EXP(-{x})) / 2)",
                    "tanh": f"((EXP({x}) - EXP(-{x})) / (EXP({x}) + EXP(-{x})))"}[fk]
        return None

    def _vector_elm_map(self, args, ctx: _Ctx) -> str:
        """VECTOR ELM MAP(x[..., e0], offset): x at the element offset places after e0 along e0's
        dimension; written VECTOR_ELM_MAP(x[..., dim!], offset + position of e0)."""
        vec, off = args
        x, start, _ = self._vector_from(vec, ctx, "VECTOR ELM MAP")
        o = _atom(self.expr(off, ctx))
        return f"VECTOR_ELM_MAP({x}, {o} + {start})" if start else f"VECTOR_ELM_MAP({x}, {o})"

    def _vector_from(self, vec, ctx: _Ctx, fname: str) -> tuple[str, int, int]:
        """A vector function's first argument x[..., e0]: (x[..., dim!] as our text, the position of e0
        in dim, the number of elements of dim)."""
        from pysd.translators.structures import abstract_expressions as ae
        el = self.elements_by_key.get(name_key(getattr(vec, "reference", ""))) if ctx.ns is self.ns else None
        if el is None or not getattr(vec, "subscripts", None):
            raise Unsupported(fname, "its first argument must be a subscripted variable of the model")
        dims = self._dims(el)
        subs = [str(x).strip() for x in vec.subscripts.subscripts]
        at = [i for i, x in enumerate(subs) if name_key(x) in self.elements and name_key(x) not in self.ranges]
        if not at or len(dims) != len(subs):
            raise Unsupported(fname, "its first argument must name the starting element (x[dim, e0])")
        i = at[-1]
        start = self.ranges[dims[i]].index(name_key(subs[i])) if name_key(subs[i]) in self.ranges[dims[i]] else None
        if start is None:
            raise Unsupported(fname, f"'{subs[i]}' is not an element of {self.range_name[dims[i]]}")
        subs[i] = self.range_name[dims[i]] + "!"
        x = self.expr(ae.ReferenceStructure(vec.reference, ae.SubscriptsReferenceStructure(subs)), ctx)
        return x, start, len(self.ranges[dims[i]])

    def _vector_lookup(self, args, ctx: _Ctx) -> str:
        """VECTOR LOOKUP(vec[..., e0], x, xmin, xmax, mode): vec's values from e0 to the end of its last
        dimension as a lookup table with evenly spaced x values from xmin to xmax (Vensim's definition).
        Written with VECTOR_ELM_MAP: u = (x - xmin) / step; mode 0 interpolates (held beyond the ends),
        3 extrapolates the end segments, 2 holds the value at the point at or below x (LOOKUP BACKWARD),
        4 takes the point at or above (LOOKUP FORWARD); the area, invert and slope modes are refused."""
        if len(args) != 5:
            raise Unsupported("VECTOR LOOKUP", f"it takes 5 arguments, got {len(args)}")
        vec, x, xmin, xmax, mode = args
        try:
            m = self._const_eval(mode, lambda k: self.time_values.get(k))
        except _NotConstant:
            raise Unsupported("VECTOR LOOKUP", "its mode must be a number") from None
        if m not in (0, 2, 3, 4):
            raise Unsupported("VECTOR LOOKUP", f"mode {_num(m)} (the LOOKUP AREA, INVERT and SLOPE modes)")
        vx, start, size = self._vector_from(vec, ctx, "VECTOR LOOKUP")
        n = size - start
        if n < 2:
            raise Unsupported("VECTOR LOOKUP", "its vector needs at least two elements from the one named")
        X, lo, hi = (_atom(self.expr(a, ctx)) for a in (x, xmin, xmax))
        u = f"(({X} - {lo}) / (({hi} - {lo}) / {n - 1}))"

        def at(i: str) -> str:
            return f"VECTOR_ELM_MAP({vx}, {i} + {start})"
        if m == 2:
            return at(f"INTEGER(MIN(MAX({u}, 0), {n - 1}))")
        if m == 4:
            return at(f"({n - 1} - INTEGER({n - 1} - MIN(MAX({u}, 0), {n - 1})))")
        uc = u if m == 3 else f"MIN(MAX({u}, 0), {n - 1})"
        i = f"MIN(MAX(INTEGER({uc}), 0), {n - 2})"
        return f"({at(i)} + ({uc} - {i}) * ({at(i + ' + 1')} - {at(i)}))"

    def _pink_noise(self, args, ctx: _Ctx) -> str:
        """RANDOM PINK NOISE(mean, sd, correlation time, seed): first-order smooth of white noise scaled
        so the output keeps the standard deviation sd whatever TIME STEP is (Ed Anderson's pink noise
        molecule, which Vensim's function implements), starting at a random value of the same spread."""
        if len(args) not in (3, 4):
            raise _error(self.path, f"RANDOM PINK NOISE takes 4 arguments (mean, standard deviation, "
                         f"correlation time, seed), got {len(args)}", variable=ctx.var)
        mean, sd, tc = (_atom(self.expr(a, ctx)) for a in args[:3])
        seed = self.expr(args[3], ctx) if len(args) == 4 else "0"
        white = f"RANDOM_NORMAL(-6, 6, 0, 1, {seed})"
        scaled = f"{mean} + {sd} * SQRT((2 - TIME_STEP / {tc}) / (TIME_STEP / {tc})) * {white}"
        return f"SMOOTHI({scaled}, {tc}, {mean} + {sd} * {white})"

    def _banged_lookup_ranges(self, ast) -> list[str]:
        """Ranges marked '!' in the subscripts of a subscripted lookup called inside ast."""
        from pysd.translators.structures import abstract_expressions as ae
        found: list[str] = []

        def walk(node):
            if isinstance(node, ae.CallStructure):
                f = node.function
                if isinstance(f, ae.ReferenceStructure) and name_key(f.reference) in self.sublookups \
                        and f.subscripts:
                    for x in f.subscripts.subscripts:
                        k = name_key(str(x).strip().rstrip("!"))
                        if str(x).strip().endswith("!") and k in self.ranges and k not in found:
                            found.append(k)
            if dataclasses.is_dataclass(node):
                for fld in dataclasses.fields(node):
                    walk(getattr(node, fld.name))
            elif isinstance(node, (list, tuple)):
                for x in node:
                    walk(x)
        walk(ast)
        return found

    def _unbang(self, node, ranges: set[str]):
        """ast with the '!' of the given ranges removed from every subscript."""
        from pysd.translators.structures import abstract_expressions as ae
        if isinstance(node, ae.SubscriptsReferenceStructure):
            return ae.SubscriptsReferenceStructure(
                [str(x).strip().rstrip("!") if name_key(str(x).strip().rstrip("!")) in ranges else x
                 for x in node.subscripts])
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            return dataclasses.replace(node, **{f.name: self._unbang(getattr(node, f.name), ranges)
                                                for f in dataclasses.fields(node) if f.init})
        if isinstance(node, list):
            return [self._unbang(x, ranges) for x in node]
        if isinstance(node, tuple):
            return tuple(self._unbang(x, ranges) for x in node)
        return node

    def _aggregate(self, fname, arg, ctx):
        from pysd.translators.structures import abstract_expressions as ae
        banged = self._banged_lookup_ranges(arg)
        if banged:
            # SUM(table[r!](x)): one call of the element's table per element of r, combined
            plain = self._unbang(arg, set(banged))
            terms = []
            for combo in itertools.product(*(self.ranges[k] for k in banged)):
                sub_ctx = _Ctx(ctx.var, ctx.ns, subst={**ctx.subst, **dict(zip(banged, combo, strict=False))},
                               lhs=ctx.lhs, prefix=ctx.prefix)
                terms.append(_atom(self.expr(plain, sub_ctx)))
            if fname in ("SUM", "PROD"):
                return "(" + (" + " if fname == "SUM" else " * ").join(terms) + ")"
            out = terms[0]
            for t in terms[1:]:
                out = f"{'MAX' if fname == 'VMAX' else 'MIN'}({out}, {t})"
            return out
        if isinstance(arg, ae.ReferenceStructure) and not arg.subscripts and ctx.ns is self.ns:
            el = self.elements_by_key.get(name_key(arg.reference))
            if el is not None and el.components and el.components[0].subscripts[0]:
                dims = self._dims(el)
                subs = ae.SubscriptsReferenceStructure([self.range_name[d] + "!" for d in dims])
                arg = ae.ReferenceStructure(arg.reference, subs)
        elif (isinstance(arg, ae.ReferenceStructure) and arg.subscripts
                and not any(str(x).strip().endswith("!") for x in arg.subscripts.subscripts)):
            host = set(ctx.lhs) | set(ctx.subst)
            subs, changed = [], False
            for x in arg.subscripts.subscripts:
                k = name_key(str(x).strip())
                if k in self.ranges and k not in host and self._equal_range(k, host) is None:
                    subs.append(str(x).strip() + "!")
                    changed = True
                else:
                    subs.append(x)
            if changed:
                arg = ae.ReferenceStructure(arg.reference, ae.SubscriptsReferenceStructure(subs))
        return f"{fname}({self.expr(arg, ctx)})"

    def _banged_lookup(self, fk, ast, subs, arg: str, ctx) -> str:
        """``table[r!](x)`` outside SUM (VECTOR SELECT, ...): a helper variable over r holding each
        element's table at x, referenced as ``helper[r!]``.  x must not vary over dimensions."""
        info = self.sublookups[fk]
        name = ast.function.reference
        if "[" in arg:
            raise _error(self.path, f"lookup '{name}' is called over a dimension ({', '.join(map(str, subs))}) "
                         f"with a subscripted argument: write the sum or selection element by element",
                         variable=ctx.var)
        banged: list[str] = []
        fixed: list[str | None] = []
        for x in subs:
            k = name_key(str(x).strip().rstrip("!"))
            if str(x).strip().endswith("!") and k in self.ranges:
                banged.append(k)
                fixed.append(None)
            elif k in self.elements and k not in self.ranges:
                fixed.append(k)
            elif k in ctx.subst:
                fixed.append(ctx.subst[k])
            else:
                raise _error(self.path, f"lookup '{name}' called with subscripts {list(map(str, subs))}: "
                             f"mix ranges marked '!' with single elements only", variable=ctx.var)
        cache = self.__dict__.setdefault("_banged_helpers", {})
        key = (fk, arg, tuple(fixed), tuple(banged))
        if key not in cache:
            helper = self.names.new(f"{name} at")
            eqs = {}
            for combo in itertools.product(*(self.ranges[k] for k in banged)):
                it = iter(combo)
                full = tuple(f if f is not None else next(it) for f in fixed)
                table = info["tables"].get(full)
                if table is None:
                    raise _error(self.path, f"lookup '{name}' has no table for "
                                 f"[{', '.join(self._orig_elem(e) for e in full)}]", variable=ctx.var)
                eqs[",".join(self.elements[e] for e in combo)] = f"{table}({arg})"
            self.out["auxiliaries"][helper] = {
                "dims": [self.range_ident[k] for k in banged], "equations": eqs,
                "label_en": f"{display_name(name)} at ({arg})"}
            self.original[helper] = f"{display_name(name)} at ({arg})"
            cache[key] = helper
        return f"{cache[key]}[{', '.join(self.range_ident[k] + '!' for k in banged)}]"

    def _lookup_call(self, fk, ast, ctx):
        if len(ast.arguments) != 1:
            raise Unsupported(f"lookup '{ast.function.reference}' called with {len(ast.arguments)} arguments")
        arg = self.expr(ast.arguments[0], ctx)
        if fk not in self.sublookups:
            return f"{self.ns[fk]}({arg})"
        info = self.sublookups[fk]
        subs = ast.function.subscripts.subscripts if ast.function.subscripts else None
        if subs and any(str(x).strip().endswith("!") for x in subs):
            return self._banged_lookup(fk, ast, subs, arg, ctx)
        combo = []
        for i, d in enumerate(info["dims"]):
            s = name_key(subs[i]) if subs else d
            if s in self.elements and s not in self.ranges:
                combo.append(s)
            elif s in ctx.subst:
                combo.append(ctx.subst[s])
            elif d in ctx.subst:
                combo.append(ctx.subst[d])
            else:
                raise _NeedExpand
        name = info["tables"].get(tuple(combo))
        if name is None:
            raise _error(self.path, f"lookup '{ast.function.reference}' has no table for "
                         f"[{', '.join(self._orig_elem(e) for e in combo)}]", variable=ctx.var)
        return f"{name}({arg})"

    def _macro_call(self, fk, args, ctx: _Ctx) -> str:
        sec = self.macros[fk]
        if ctx.lhs and not ctx.subst:
            # a subscripted variable calls the macro element by element: one instance per element
            raise _NeedExpand
        if len(args) != len(sec.params):
            raise _error(self.path, f"macro {sec.name} takes {len(sec.params)} arguments, "
                         f"got {len(args)}", variable=ctx.var)
        self.macro_count += 1
        base = f"{ctx.prefix or 'm'}_{to_identifier(sec.name)}{self.macro_count}"
        ns: dict[str, Any] = {k: v for k, v in self.ns.items() if k in CONTROL_NAMES or k == "time"}
        # parameters become auxiliaries holding the argument
        for p, a in zip(sec.params, args, strict=False):
            pid = self.names.new(f"{base}_{p}")
            if ctx.ns is self.ns:
                with contextlib.suppress(_NotConstant, TypeError, ZeroDivisionError, OverflowError):
                    self.macro_consts[pid] = self._const_eval(a, lambda k: self.time_values.get(k))
            self.out["auxiliaries"][pid] = {"equation": self.expr(a, ctx),
                                           "label_en": f"{sec.name} argument {p}"}
            self.original[pid] = f"{sec.name}.{p}"
            ns[name_key(p)] = pid
        result = None
        for el in sec.elements:
            ek = name_key(el.name)
            eid = self.names.new(f"{base}_{el.name}")
            ns[ek] = eid
            self.original[eid] = f"{sec.name}.{display_name(el.name)}"
            if ek == fk:
                result = eid
        for el in sec.elements:
            self._element(el, ns[name_key(el.name)], ns, prefix=base)
        if result is None and sec.returns:
            result = ns.get(name_key(sec.returns[0]))
        if result is None:
            raise Unsupported(f"macro {sec.name}", "it has no output variable")
        return result
