"""Read Vensim (.mdl) and XMILE (.xmile/.xml/.stmx) models through PySD's translators.

PySD parses the file into its *abstract model* (sections -> elements -> components, each
component holding an abstract syntax tree).  :func:`import_model` walks that tree and
writes a plain dict with exactly the shape of our TOML model format (``model``, ``time``,
``dimensions``, ``subranges``, ``constants``, ``stocks``, ``flows``, ``auxiliaries``,
``lookups``, ``data``), equations written in our expression syntax.

Names: a Vensim name becomes an identifier (lower case, non-alphanumerics -> ``_``,
repeats collapsed, ``_`` in front of a leading digit).  The original name is kept in the
variable's ``label_en`` and in ``d["model"]["names"]`` (identifier -> original name);
subscript elements likewise in ``d["model"]["element_names"]``.

Anything we cannot run raises :class:`engine.errors.ModelError` naming the function and
the variable; nothing is dropped silently.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

try:  # the core's error type
    from engine.errors import ModelError, Problem
except Exception:  # pragma: no cover - only while the core is missing
    class ModelError(ValueError):  # type: ignore[no-redef]
        def __init__(self, problems, file=""):
            super().__init__(str(problems))
            self.problems = [problems]

    Problem = None  # type: ignore[assignment]

from . import IMPORT_SUFFIXES  # noqa: F401
from .toml_writer import to_toml  # noqa: F401 - re-exported: engine.io.pysd_import.to_toml
from .vensim_names import CONTROL_NAMES, RESERVED, _Names, display_name, name_key, to_identifier  # noqa: F401
from .vensim_reader import PARSE_TIMEOUT_S, _error, parse_abstract_model  # noqa: F401

from .convert_common import (  # noqa: F401 - re-exported
    ALLOW_DATA_OUTSIDE_ENV,
    Unsupported,
    _atom,
    _balanced_outer,
    _finite,
    _is_number,
    _NeedExpand,
    _NotConstant,
    _num,
    _OneComponent,
    _order,
    fmt_number,
    pd_to_numeric,
)
from .vensim_data import DataSources

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

# ----------------------------------------------------------------------------------------
# names


# ----------------------------------------------------------------------------------------
# errors and parsing






# ----------------------------------------------------------------------------------------
# expression helpers


from .convert_common import NA_TEXT, NA_VALUE  # noqa: E402,F401 - :NA: as PySD represents it
_UNDEFINED = 1.2345e301   # marks elements a partial definition leaves out










# ----------------------------------------------------------------------------------------
# the converter


class _Ctx:
    """Where an expression is being converted."""

    def __init__(self, var: str, ns: dict, subst: dict | None = None, lhs: list | None = None,
                 prefix: str = ""):
        self.var = var            # original variable name, for messages
        self.ns = ns              # name_key -> identifier (or marker) for references
        self.subst = subst or {}  # range key -> element key (element-wise expansion)
        self.lhs = lhs or []      # range keys on the left-hand side
        self.prefix = prefix      # identifier prefix for helper variables


class Converter(DataSources):
    def __init__(self, am, path: Path, data_files=()):
        self.data_files = [Path(f) for f in data_files or ()]
        self.am = am
        self.path = Path(path)
        self.main = next(s for s in am.sections if s.type == "main")
        self.macros = {name_key(s.name): s for s in am.sections if s.type == "macro"}
        self.names = _Names(RESERVED)
        self.elem_names = self.names   # one namespace: the core forbids a variable named as an element
        self.problems: list = []
        self.out: dict[str, Any] = {
            "model": {}, "time": {}, "dimensions": {}, "subranges": {}, "constants": {},
            "stocks": {}, "flows": {}, "auxiliaries": {}, "lookups": {}, "data": {},
        }
        self.original: dict[str, str] = {}      # identifier -> original display name
        self.element_original: dict[str, str] = {}
        self.macro_count = 0
        self.macro_consts: dict[str, float] = {}   # macro parameter -> its constant argument
        self.flow_refs: set[str] = set()

    # ------------------------------------------------------------------ subscripts
    def _subscripts(self):
        self.ranges: dict[str, list[str]] = {}     # range key -> element keys
        self.range_ident: dict[str, str] = {}
        self.range_name: dict[str, str] = {}
        self.elements: dict[str, str] = {}         # element key -> identifier
        self.mapping: dict[str, set[str]] = {}
        raw: dict[str, Any] = {}
        for r in self.main.subscripts:
            key = name_key(r.name)
            subs = r.subscripts
            if isinstance(subs, dict):
                raw[key] = ("list", self._external_subscripts(r))
            elif isinstance(subs, str):      # copy of another range (DimB <-> DimA)
                raw[key] = ("copy", name_key(subs))
            else:
                raw[key] = ("list", [str(e) for e in subs])
            self.range_name[key] = r.name
            for m in r.mapping or []:
                mk = name_key(m if isinstance(m, str) else m[0])
                self.mapping.setdefault(key, set()).add(mk)
                self.mapping.setdefault(mk, set()).add(key)

        def expand(key, seen=()):
            # element keys of a range; a member that names another range stands for its elements
            if key in self.ranges:
                return self.ranges[key]
            if key in seen:
                raise _error(self.path, "subscript ranges defined in a circle",
                             variable=self.range_name.get(key, key))
            kind, val = raw[key]
            if kind == "copy":
                if val not in raw:
                    raise _error(self.path, f"subscript range copies unknown range '{val}'",
                                 variable=self.range_name[key])
                elems = list(expand(val, seen + (key,)))
            else:
                elems = []
                for e in val:
                    ek = name_key(e)
                    if ek in raw and ek != key:
                        elems.extend(expand(ek, seen + (key,)))
                        continue
                    if ek not in self.elements:
                        ident = self.elem_names.new(e)
                        self.elements[ek] = ident
                        self.element_original[ident] = display_name(e)
                    elems.append(ek)
            self.ranges[key] = elems
            return elems

        for key in raw:
            expand(key)
        # keep the definition order
        self.ranges = {k: self.ranges[k] for k in raw}
        # dimension / subrange classification
        keys = list(self.ranges)
        dims_out, subs_out = self.out["dimensions"], self.out["subranges"]
        self.parent: dict[str, str] = {}
        for key in keys:
            elems = set(self.ranges[key])
            containers = [k for k in keys if k != key and elems < set(self.ranges[k])]
            # equal sets: the first defined is the dimension, later ones its subranges
            equal_before = [k for k in keys[:keys.index(key)] if set(self.ranges[k]) == elems]
            ident = self.names.new(self.range_name[key])
            self.range_ident[key] = ident
            self.original[ident] = display_name(self.range_name[key])
            if containers:
                top = max(containers, key=lambda k: (len(self.ranges[k]), -keys.index(k)))
                while True:  # climb to a range that nothing contains
                    up = [k for k in keys if set(self.ranges[top]) < set(self.ranges[k])]
                    if not up:
                        break
                    top = max(up, key=lambda k: len(self.ranges[k]))
                self.parent[key] = top
            elif equal_before:
                # an equal range or a copy (DimB <-> DimA): a subrange with all the elements
                self.parent[key] = equal_before[0]
        for key in keys:
            ident = self.range_ident[key]
            elems = [self.elements[e] for e in self.ranges[key]]
            if key in self.parent:
                top = self.parent[key]
                while top in self.parent:
                    top = self.parent[top]
                self.parent[key] = top
                subs_out[ident] = {"of": self.range_ident[top], "elements": elems}
            else:
                dims_out[ident] = elems
        # Vensim subscript mappings between whole ranges of equal length: positional correspondences
        maps_out: dict[str, list[str]] = {}
        for key, others in self.mapping.items():
            for other in sorted(others):
                if key in self.parent or other in self.parent or other not in self.ranges:
                    continue
                if len(self.ranges[key]) == len(self.ranges[other]):
                    maps_out.setdefault(self.range_ident[key], []).append(self.range_ident[other])
        if maps_out:
            self.out["mappings"] = maps_out
        self.list_map = self._list_mappings()
        self.out["model"]["element_names"] = dict(self.element_original)

    def _list_mappings(self) -> dict[tuple[str, str], dict[str, str]]:
        """(range, other range) -> {element of the other: element of the range} for mappings written as
        element lists (``r: a, b -> (s: s1, s2)``, which mdl_text drops from the text PySD reads)."""
        if self.path.suffix.lower() != ".mdl" or not self.path.is_file():
            return {}
        from .mdl_text import list_mappings
        out: dict[tuple[str, str], dict[str, str]] = {}
        for src, (dst, listed) in list_mappings(self.path.read_text(encoding="utf-8", errors="replace")).items():
            sk, dk = name_key(src), name_key(dst)
            if sk not in self.ranges or dk not in self.ranges or len(listed) != len(self.ranges[sk]):
                continue
            corr: dict[str, str] = {}
            for elem, name in zip(self.ranges[sk], listed, strict=True):
                k = name_key(name)
                for e in self.ranges.get(k, [k]):
                    corr[e] = elem
            out[(sk, dk)] = corr
        return out

    # XMILE's <sim_specs method=...> -> ours (RK45 is adaptive: scipy's RK45 over the span)
    _XMILE_METHODS = {"euler": "euler", "rk2": "rk2", "rk4": "rk4", "rk45": "adaptive"}

    def _xmile_method(self) -> str:
        """The integration method of an XMILE file's ``<sim_specs method=...>``.

        Euler for .mdl files (PySD's translator does not read Vensim's setting) and for XMILE written
        by Vensim: those claim RK4 where Vensim ran Euler (SDXorg's zeroled_decimals: a flow equal to
        Time, whose output is Euler's, exported with method="RK4"), so the claim is not taken."""
        if self.path.suffix.lower() not in (".xmile", ".xml", ".stmx") or not self.path.is_file():
            return "euler"
        head = self.path.read_bytes()[:200_000]
        m = re.search(rb"<sim_specs\b[^>]*\bmethod\s*=\s*[\"']([^\"']*)", head)
        name = m.group(1).decode("ascii", "replace").strip() if m else ""
        if not name or re.search(rb"<vendor>\s*Ventana|<product\b[^>]*>\s*Vensim", head):
            return "euler"
        method = self._XMILE_METHODS.get(name.lower())
        if method is None:
            raise _error(self.path, f"integration method {name!r} is not available "
                         f"(Euler, RK2, RK4 and RK45 are)", variable="sim_specs method")
        return method

    def _top(self, key: str) -> str:
        """The range a subrange belongs to (a range is its own)."""
        return self.parent.get(key, key)

    def _is_copy(self, key):
        for r in self.main.subscripts:
            if name_key(r.name) == key:
                return isinstance(r.subscripts, str)
        return False

    def _external_subscripts(self, r):
        try:
            from pysd.py_backend.external import ExtSubscript
            info = r.subscripts
            ext = ExtSubscript(info["file"], info["tab"], info["firstcell"], info["lastcell"],
                               info.get("prefix", ""), self.path.parent)
            names = list(ext.subscript)
        except Exception as exc:  # noqa: BLE001
            raise _error(self.path, f"cannot read subscript range from file: {exc}",
                         variable=r.name) from None
        for e in names:
            if name_key(e) not in self.elements:
                ident = self.elem_names.new(e)
                self.elements[name_key(e)] = ident
                self.element_original[ident] = display_name(e)
        return [name_key(e) for e in names]

    def _sub_elements(self, s: str) -> list[str]:
        """Element keys designated by a subscript (range or single element)."""
        k = name_key(s.rstrip("!"))
        if k in self.ranges:
            return self.ranges[k]
        if k in self.elements:
            return [k]
        raise _error(self.path, f"unknown subscript '{s}'")

    # ------------------------------------------------------------------ driver
    def run(self) -> dict:
        self._subscripts()
        m = self.out["model"]
        m["name"] = to_identifier(self.path.stem)
        m["label_en"] = self.path.stem
        m["doc"] = f"Imported from {self.path.name} by lxsd (through PySD's translator)."
        m["source"] = str(self.path.name)

        # namespace of the main section
        self.ns: dict[str, Any] = {}
        self.kinds: dict[str, str] = {}
        controls = {}
        for el in self.main.elements:
            key = name_key(el.name)
            if type(el).__name__ == "AbstractControlElement" or key in CONTROL_NAMES:
                if key in CONTROL_NAMES:
                    controls[key] = el
                    self.ns[key] = CONTROL_NAMES[key]
                    continue
            if key in self.ns:
                raise _error(self.path, "variable defined twice", variable=el.name)
            ident = self.names.new(el.name)
            self.ns[key] = ident
            self.original[ident] = display_name(el.name)
        self.ns.setdefault("time", "TIME")
        for key in CONTROL_NAMES:
            self.ns.setdefault(key, CONTROL_NAMES[key])
        self.lookup_elems = {
            name_key(el.name): el for el in self.main.elements
            if el.components and type(el.components[0]).__name__ == "AbstractLookup"
        }
        self.elements_by_key = {name_key(el.name): el for el in self.main.elements}
        self.sublookups: dict[str, dict] = {}

        self._time(controls)
        ordered = sorted(self.main.elements,
                         key=lambda e: 0 if name_key(e.name) in self.lookup_elems else 1)
        for el in ordered:
            key = name_key(el.name)
            if key in CONTROL_NAMES:
                continue
            try:
                self._element(el, self.ns[key], self.ns)
            except Unsupported as u:
                why = f": {u.why}" if u.why else ""
                self.problems.append((el.name, f"uses {u.function}, which the engine cannot run{why}"))
            except ModelError:
                raise
        if self.problems:
            if Problem is not None:
                raise ModelError([Problem(str(self.path), display_name(v), msg) for v, msg in self.problems])
            raise ModelError("; ".join(f"{v}: {msg}" for v, msg in self.problems))
        # a referenced flow moves to [flows]
        for ident in list(self.out["auxiliaries"]):
            if ident in self.flow_refs:
                self.out["flows"][ident] = self.out["auxiliaries"].pop(ident)
        m["names"] = dict(self.original)
        m["element_names"] = dict(self.element_original)
        if not m["element_names"]:
            del m["element_names"]
        for st in self.out["stocks"].values():
            if re.fullmatch(r"\(?-?\d+(\.\d*)?([eE][-+]?\d+)?\)?", st.get("initial", "x")):
                st["initial"] = _num(float(st["initial"].strip("()")))
        return {k: v for k, v in self.out.items() if v or k in ("model", "time")}

    # ------------------------------------------------------------------ time
    def _time(self, controls):
        vals = {}
        unit = None

        def ev(key, depth=0):
            if key in vals:
                return vals[key]
            el = controls.get(key)
            if el is None:
                return None
            if depth > 10:
                raise _error(self.path, "circular time settings", variable=el.name)
            comp = el.components[0]
            try:
                v = self._const_eval(comp.ast, lambda k: number(ev(k, depth + 1)), fold_refs=False)
            except _NotConstant:
                # it changes during the run (or depends on one that does): kept as an equation,
                # which the engine evaluates every step (engine.integrate.dynamic_clock)
                try:
                    v = self.expr(comp.ast, _Ctx(el.name, self.ns))
                except _NeedExpand:
                    raise _error(self.path, "a time setting cannot be subscripted", variable=el.name) from None
            vals[key] = v
            return v

        def number(v):
            if isinstance(v, str):
                raise _NotConstant   # an equation: whatever uses it changes during the run too
            return v

        t = self.out["time"]
        for key, field in (("initial_time", "start"), ("final_time", "stop"),
                           ("time_step", "dt"), ("saveper", "saveper")):
            v = ev(key)
            if v is None:
                if key == "saveper":
                    continue
                raise _error(self.path, f"the model has no {key.upper().replace('_', ' ')}")
            if isinstance(v, str):
                t[field] = v
            else:
                t[field] = int(v) if float(v).is_integer() and abs(v) < 1e15 else float(v)
            el = controls[key]
            if not unit and el.units:
                unit = el.units.strip()
        nums = {f: v for f, v in t.items() if f in ("start", "stop", "dt", "saveper") and not isinstance(v, str)}
        if nums.get("dt", 1) <= 0:
            raise _error(self.path, "TIME STEP must be positive", variable="TIME STEP")
        if "stop" in nums and "start" in nums and nums["stop"] < nums["start"]:
            raise _error(self.path, "FINAL TIME is before INITIAL TIME", variable="FINAL TIME")
        if "saveper" in nums and "dt" in nums:
            steps = nums["saveper"] / nums["dt"]
            if abs(steps - round(steps)) > 1e-6 or steps < 1 - 1e-9:
                # Vensim runs a SAVEPER that is not a whole number of steps; we save every n steps,
                # n = SAVEPER / TIME STEP rounded (at least 1), and say so in the model
                n = max(1, round(steps))
                v = n * nums["dt"]
                t["saveper"] = int(v) if float(v).is_integer() else float(v)
                self.out["model"]["note_saveper"] = (f"SAVEPER {_num(nums['saveper'])} is not a whole number of "
                                                     f"TIME STEP {_num(nums['dt'])}: saved every {n} step(s)")
        if unit:
            t["unit"] = unit
        t["method"] = self._xmile_method()
        self.time_values = {"initial_time": t["start"], "final_time": t["stop"],
                            "time_step": t["dt"], "saveper": t.get("saveper", t["dt"])}
        # an equation (changes during the run) cannot be folded into a number
        self.time_values = {k: v for k, v in self.time_values.items() if not isinstance(v, str)}

    def _const_eval(self, ast, lookup, fold_refs: bool = True):
        """A number, or _NotConstant. ``fold_refs=False``: a reference to a model variable is not
        folded (a time setting that reads a constant must follow it when the constant is set)."""
        from pysd.translators.structures import abstract_expressions as ae
        if _is_number(ast):
            return float(ast)
        if isinstance(ast, ae.ReferenceStructure) and not ast.subscripts:
            k = name_key(ast.reference)
            if k in CONTROL_NAMES:
                v = lookup(k)
                if v is None:
                    raise _NotConstant
                return v
            if k == "time" and "initial_time" in (getattr(self, "time_values", None) or {}):
                return self.time_values["initial_time"]
            el = self.elements_by_key.get(k)
            if fold_refs and el is not None and len(el.components) == 1 and not el.components[0].subscripts[0]:
                return self._const_eval(el.components[0].ast, lookup, fold_refs)
            raise _NotConstant
        if isinstance(ast, ae.CallStructure) and "initial_time" in (getattr(self, "time_values", None) or {}):
            f = name_key(ast.function.reference)
            args = [self._const_eval(a, lookup, fold_refs) for a in ast.arguments]
            t = self.time_values["initial_time"]
            fns = {"step": lambda h, t0: h if t >= t0 else 0.0,
                   "min": min, "max": max, "abs": abs, "integer": lambda x: float(int(x)),
                   "if_then_else": lambda c, a, b: a if c else b}
            if f in fns:
                return float(fns[f](*args))
            raise _NotConstant
        if isinstance(ast, ae.ArithmeticStructure):
            args = [self._const_eval(a, lookup, fold_refs) for a in ast.arguments]
            if ast.operators == ["negative"]:
                return -args[0]
            v = args[0]
            for op, a in zip(ast.operators, args[1:]):
                v = {"+": v + a, "-": v - a, "*": v * a, "/": v / a if a else math.inf,
                     "^": v ** a}[op]
            return v
        raise _NotConstant

    # ------------------------------------------------------------------ elements
    def _dims(self, el) -> list[str]:
        """Range keys of a variable's dimensions, from all its components."""
        comps = el.components
        n = len(comps[0].subscripts[0])
        for c in comps:
            if len(c.subscripts[0]) != n:
                raise _error(self.path, "components have different numbers of subscripts",
                             variable=el.name)
        dims = []
        for i in range(n):
            used = [name_key(c.subscripts[0][i]) for c in comps]
            if all(u == used[0] for u in used) and used[0] in self.ranges:
                dims.append(used[0])
                continue
            covered = set()
            for c in comps:
                covered.update(self._sub_elements(c.subscripts[0][i]))
            cands = [k for k in self.ranges if covered <= set(self.ranges[k])]
            if not cands:
                raise _error(self.path, "its subscripts do not belong to one range",
                             variable=el.name)
            exact = [k for k in cands if set(self.ranges[k]) == covered and k not in self.parent]
            if exact:
                dims.append(exact[0])
                continue
            # the top-level dimension that holds them
            tops = [k for k in cands if k not in self.parent] or cands
            dims.append(min(tops, key=lambda k: len(self.ranges[k])))
        return self._axes(dims)

    def _same_as_parent(self, k) -> bool:
        """A range equal to its parent, in the same order (a Vensim copy or an equal range)."""
        p = self.parent.get(k)
        return p is not None and self.ranges[k] == self.ranges[p]

    def _axes(self, dims: list[str]) -> list[str]:
        """Axes of a variable: a copy of a dimension becomes the dimension itself unless that
        one is also an axis; a dimension named twice gets a generated full subrange."""
        out: list[str] = []
        for d in dims:
            c = self.parent[d] if self._same_as_parent(d) else d
            if c not in dims and c not in out:
                out.append(c)
            elif d not in out:
                out.append(d)
            else:
                out.append(self._dup_range(d, out))
        return out

    def _dup_range(self, d: str, used: list[str]) -> str:
        n = 2
        while True:
            key = f"{d}\x00{n}"
            if key not in used:
                break
            n += 1
        if key not in self.ranges:
            top = self.parent.get(d, d)
            self.ranges[key] = list(self.ranges[d])
            self.range_name[key] = f"{self.range_name[d]}_{n}"
            ident = self.names.new(f"{self.range_name[d]}_{n}")
            self.range_ident[key] = ident
            self.parent[key] = top
            self.out["subranges"][ident] = {"of": self.range_ident[top],
                                            "elements": [self.elements[e] for e in self.ranges[d]]}
        return key

    def _lhs_keys(self, comp, dims) -> list[str]:
        """A component's subscript keys, a range replaced by the variable's own axis when
        that axis is the same range under another name (copy, repeated dimension)."""
        keys = [name_key(s) for s in comp.subscripts[0]]
        out = []
        for i, k in enumerate(keys):
            if (i < len(dims) and k in self.ranges and k != dims[i]
                    and set(self.ranges[k]) == set(self.ranges[dims[i]])
                    and self.parent.get(k, k) == self.parent.get(dims[i], dims[i])):
                k = dims[i]
            out.append(k)
        return out

    def _equal_range(self, k: str, among) -> str | None:
        """A range of `among` holding the same elements in the same order as range k."""
        for c in among:
            if c in self.ranges and c != k and self.ranges[c] == self.ranges[k] \
                    and self.parent.get(c, c) == self.parent.get(k, k):
                return c
        return None

    def _position(self, k: str, elem: str) -> int:
        """Vensim's value of a subscript: its position in the family (top-level) range."""
        top = self.parent.get(k, k)
        if elem in self.ranges[top]:
            return self.ranges[top].index(elem) + 1
        return self.ranges[k].index(elem) + 1

    def _combos(self, comp):
        """Element-key tuples a component defines (EXCEPT removed)."""
        lists = [self._sub_elements(s) for s in comp.subscripts[0]]
        combos = list(itertools.product(*lists))
        for exc in comp.subscripts[1] or []:
            ex_lists = [self._sub_elements(s) for s in exc]
            ex = set(itertools.product(*ex_lists))
            combos = [c for c in combos if c not in ex]
        return combos

    def _element(self, el, ident, ns, prefix=""):
        from pysd.translators.structures import abstract_expressions as ae
        comps = el.components
        if not comps:
            raise _error(self.path, "variable has no equation", variable=el.name)
        dims = self._dims(el)
        entry: dict[str, Any] = {}
        if dims:
            entry["dims"] = [self.range_ident[d] for d in dims]
        if el.units:
            entry["unit"] = str(el.units).strip()
        entry["label_en"] = display_name(el.name)
        if el.documentation and str(el.documentation).strip():
            entry["doc"] = str(el.documentation).strip()
        kind_names = {type(c).__name__ for c in comps}
        asts = [c.ast for c in comps]

        if "AbstractLookup" in kind_names:
            return self._lookup(el, ident, dims, entry)
        if "AbstractData" in kind_names:
            return self._data(el, ident, dims, entry, ns)
        if any(isinstance(a, ae.IntegStructure) for a in asts):
            if not all(isinstance(a, ae.IntegStructure) or _is_number(a) for a in asts):
                raise _error(self.path, "some elements are stocks (INTEG) and some are equations",
                             variable=el.name, hint="only numbers may stand beside INTEG elements")
            # an element given as a number beside INTEG ones is a stock that does not move
            for c in comps:
                if _is_number(c.ast):
                    c.ast = ae.IntegStructure(0, c.ast, False)
            return self._stock(el, ident, dims, entry, ns)
        if all(_is_number(a) or isinstance(a, np.ndarray) for a in asts):
            return self._constant(el, ident, dims, entry)
        if all(_is_number(a) or isinstance(a, (np.ndarray, ae.GetConstantsStructure)) for a in asts):
            return self._ext_constant(el, ident, dims, entry)
        # auxiliary
        eq = self._equations(el, dims, ns, lambda c: c.ast, prefix or ident)
        entry.update(eq)
        self.out["auxiliaries"][ident] = entry

    # ---- constants
    def _fill_values(self, el, dims, value_of_comp):
        shape = [len(self.ranges[d]) for d in dims]
        index = [{e: i for i, e in enumerate(self.ranges[d])} for d in dims]
        arr = np.full(shape, _UNDEFINED) if dims else np.array(_UNDEFINED)
        for c in el.components:
            combos = self._combos(c)
            lists = [self._sub_elements(s) for s in c.subscripts[0]]
            val = value_of_comp(c)
            if isinstance(val, np.ndarray) and val.size > 1:
                try:
                    val = np.asarray(val, dtype=float).reshape([len(x) for x in lists])
                except ValueError:
                    raise _error(self.path, f"array of {val.size} values does not fit subscripts "
                                 f"{c.subscripts[0]}", variable=el.name) from None
                for combo in combos:
                    pos = tuple(lists[i].index(combo[i]) for i in range(len(combo)))
                    arr[tuple(index[i][combo[i]] for i in range(len(combo)))] = val[pos]
            else:
                v = float(np.asarray(val, dtype=float).reshape(-1)[0]) if isinstance(val, np.ndarray) else float(val)
                if not dims:
                    arr = np.array(v)
                for combo in combos:
                    arr[tuple(index[i][combo[i]] for i in range(len(combo)))] = v
        return arr

    def _value_table(self, dims, arr):
        """A number, or {element: number} (nested tables for 2+ dimensions).
        :NA: becomes PySD's -1e38; elements no equation defines are 0, as in Vensim."""
        arr = np.where(np.isnan(arr), NA_VALUE, arr)
        arr = np.where(arr == _UNDEFINED, 0.0, arr)
        if not dims:
            return _num(float(arr))

        def rec(level, sub):
            out = {}
            for i, e in enumerate(self.ranges[dims[level]]):
                if level == len(dims) - 1:
                    v = sub[i]
                    if not np.isnan(v):
                        out[self.elements[e]] = _num(float(v))
                else:
                    inner = rec(level + 1, sub[i])
                    if inner:
                        out[self.elements[e]] = inner
            return out
        return rec(0, arr)

    def _constant(self, el, ident, dims, entry):
        arr = self._fill_values(el, dims, lambda c: c.ast)
        entry["value"] = self._value_table(dims, arr)
        lo, hi = (tuple(el.limits) + (None, None))[:2] if el.limits else (None, None)
        if lo is not None and hi is not None and _finite(lo) and _finite(hi) and lo < hi:
            entry["range"] = [_num(lo), _num(hi)]
        self.out["constants"][ident] = _order(entry)


    def _orig_elem(self, key):
        return self.element_original.get(self.elements.get(key, ""), key)

    # ---- lookups
    def _lookup(self, el, ident, dims, entry):
        from pysd.translators.structures import abstract_expressions as ae
        tables = []
        for c in el.components:
            a = c.ast
            if isinstance(a, ae.GetLookupsStructure):
                tables.append((c, self._ext_lookup(el, ident, c)))
            elif isinstance(a, ae.LookupsStructure):
                tables.append((c, self._lookup_table(a, el.name)))
            else:
                raise Unsupported(type(a).__name__, "a lookup must be a table")
        if not dims:
            xs, ys, extra = tables[0][1]
            entry.update({"x": xs, "y": ys, **extra})
            entry.pop("dims", None)
            self.out["lookups"][ident] = _order(entry)
            return
        # one table per element combination: <name>__<e1>__<e2>
        per = {}
        for c, tab in tables:
            for combo in self._combos(c):
                if isinstance(tab, dict):      # external, per combo
                    xs, ys, extra = tab[combo]
                else:
                    xs, ys, extra = tab
                name = ident + "__" + "__".join(self.elements[e] for e in combo)
                e2 = {k: v for k, v in entry.items() if k != "dims"}
                e2["label_en"] = f"{display_name(el.name)}[{','.join(self._orig_elem(e) for e in combo)}]"
                e2.update({"x": xs, "y": ys, **extra})
                self.out["lookups"][name] = _order(e2)
                per[combo] = name
        self.sublookups[ident] = {"dims": dims, "tables": per}

    def _lookup_table(self, a, var):
        xs = [float(v) for v in a.x]
        ys = [float(v) for v in a.y]
        if any(math.isnan(v) for v in xs + ys):
            raise Unsupported("lookup with missing values", "")
        extra = {}
        kind = (a.type or "interpolate").lower()
        if kind == "interpolate":
            extra["extrapolation"] = "clamp"
        elif kind == "extrapolate":
            extra["extrapolation"] = "linear"
        else:
            raise Unsupported(f"lookup of type '{a.type}'", "only continuous lookups are supported")
        return [_num(v) for v in xs], [_num(v) for v in ys], extra



    # ---- data

    def _elem_key(self, ident: str) -> str:
        for k, v in self.elements.items():
            if v == ident:
                return k
        raise KeyError(ident)







    # ---- stocks
    def _stock(self, el, ident, dims, entry, ns):
        comps = el.components
        simple = (len(comps) == 1 and not comps[0].subscripts[1]
                  and [name_key(s) for s in comps[0].subscripts[0]] == dims)
        non_neg = any(bool(getattr(c.ast, "non_negative", False)) for c in comps)
        flows = None
        if simple:
            try:
                flows = self._flow_refs(comps[0].ast.flow, dims, ns)
            except _NeedExpand:
                flows = None
        if flows is not None:
            inflows, outflows = flows
        else:
            fname = self.names.new(ident + "_net_flow")
            fl = {"dims": entry["dims"]} if dims else {}
            if entry.get("unit"):
                fl["unit"] = f"({entry['unit']})/({self.out['time'].get('unit', 'time')})"
                fl.pop("unit")  # units of imported models are not checked; keep it clean
            fl["label_en"] = f"net flow of {display_name(el.name)}"
            fl.update(self._equations(el, dims, ns, lambda c: c.ast.flow, fname))
            self.out["flows"][fname] = fl
            self.original[fname] = fl["label_en"]
            inflows, outflows = [fname], []
        # initial value
        init = self._equations(el, dims, ns, lambda c: c.ast.initial, ident + "_init")
        if "equation" in init:
            entry["initial"] = init["equation"]
        else:
            iname = self.names.new(ident + "_init")
            ie = {"dims": entry["dims"], "label_en": f"initial value of {display_name(el.name)}"}
            ie.update(init)
            self.out["auxiliaries"][iname] = ie
            self.original[iname] = ie["label_en"]
            entry["initial"] = iname
        entry["inflows"] = inflows
        entry["outflows"] = outflows
        if non_neg:
            entry["non_negative"] = True
        self.out["stocks"][ident] = _order(entry)

    def _flow_refs(self, ast, dims, ns):
        """(inflows, outflows) if the rate is a sum/difference of plain auxiliaries."""
        from pysd.translators.structures import abstract_expressions as ae
        terms = []
        if isinstance(ast, ae.ReferenceStructure):
            terms = [("+", ast)]
        elif isinstance(ast, ae.ArithmeticStructure) and all(o in "+-" for o in ast.operators) \
                and len(ast.arguments) == len(ast.operators) + 1:
            terms = [("+", ast.arguments[0])] + list(zip(ast.operators, ast.arguments[1:]))
        else:
            return None
        ins, outs = [], []
        for sign, t in terms:
            if not isinstance(t, ae.ReferenceStructure):
                return None
            k = name_key(t.reference)
            target = ns.get(k)
            el = self.elements_by_key.get(k) if ns is self.ns else None
            if not isinstance(target, str) or el is None:
                return None
            # only auxiliaries with the stock's own dimensions
            if any(type(c.ast).__name__ == "IntegStructure" for c in el.components):
                return None
            if any(_is_number(c.ast) or isinstance(c.ast, np.ndarray) for c in el.components):
                return None
            if type(el.components[0]).__name__ != "AbstractComponent":
                return None
            try:
                tdims = self._dims(el)
            except ModelError:
                return None
            if tdims != dims:
                return None
            if t.subscripts is not None and [name_key(s) for s in t.subscripts.subscripts] != dims:
                return None
            (ins if sign == "+" else outs).append(target)
        if len(set(ins + outs)) != len(ins + outs):
            return None
        self.flow_refs.update(ins + outs)
        return ins, outs

    # ---- equations of (possibly subscripted) variables
    def _equations(self, el, dims, ns, pick, prefix) -> dict:
        comps = el.components
        dims_ident = [self.range_ident[d] for d in dims]
        if len(comps) == 1 and not comps[0].subscripts[1] and \
                self._lhs_keys(comps[0], dims) == dims and \
                not (isinstance(pick(comps[0]), np.ndarray) and pick(comps[0]).size > 1):
            ctx = _Ctx(el.name, ns, lhs=list(dims), prefix=prefix)
            try:
                return {"equation": self.expr(pick(comps[0]), ctx)}
            except _NeedExpand:
                pass
        eqs: dict[str, str] = {}
        for c in comps:
            lhs_keys = self._lhs_keys(c, dims)
            a = pick(c)
            if isinstance(a, np.ndarray) and a.size > 1:
                lists = [self._sub_elements(s) for s in c.subscripts[0]]
                vals = np.asarray(a, dtype=float).reshape([len(x) for x in lists])
                for combo in self._combos(c):
                    pos = tuple(lists[i].index(combo[i]) for i in range(len(combo)))
                    eqs[",".join(self.elements[e] for e in combo)] = self.expr(float(vals[pos]), None)
                continue
            if not c.subscripts[1]:
                ctx = _Ctx(el.name, ns, lhs=[k for k in lhs_keys if k in self.ranges], prefix=prefix)
                try:
                    key = ",".join(self.range_ident[k] if k in self.ranges else self.elements[k]
                                   for k in lhs_keys)
                    eqs[key] = self.expr(pick(c), ctx)
                    continue
                except _NeedExpand:
                    pass
            for combo in self._combos(c):
                subst = {}
                for i, k in enumerate([name_key(x) for x in c.subscripts[0]]):
                    if k in self.ranges:
                        subst.setdefault(k, combo[i])
                for i, k in enumerate(lhs_keys):
                    if k in self.ranges:
                        subst.setdefault(k, combo[i])
                # the variable's own dimensions name the same element too
                for i, d in enumerate(dims):
                    subst.setdefault(d, combo[i])
                ctx = _Ctx(el.name, ns, subst=subst, lhs=[], prefix=prefix)
                key = ",".join(self.elements[e] for e in combo)
                eqs[key] = self.expr(pick(c), ctx)
        del dims_ident
        covered = set()
        for c in comps:
            covered.update(self._combos(c))
        if dims and len(covered) < math.prod(len(self.ranges[d]) for d in dims):
            eqs["default"] = "0"   # Vensim leaves undefined elements at 0
        return {"equations": eqs}

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
            for op, p in zip(ast.operators, parts[1:]):
                if op == "negative":
                    raise Unsupported("negation operator in a chain")
                out = f"{out} {op} {_atom(p)}"
            return out
        if isinstance(ast, ae.LogicStructure):
            ops = {":AND:": "and", ":OR:": "or", "and": "and", "or": "or",
                   "=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
            if ast.operators and ast.operators[0].lower() in (":not:", "not") and len(ast.arguments) == 1:
                return "not " + _atom(self.expr(ast.arguments[0], ctx))
            parts = [self.expr(a, ctx) for a in ast.arguments]
            out = _atom(parts[0])
            for op, p in zip(ast.operators, parts[1:]):
                o = ops.get(op) or ops.get(op.lower())
                if o is None:
                    raise Unsupported(f"operator {op}")
                out = f"{out} {o} {_atom(p)}"
            return out
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
        if isinstance(ast, ae.InlineLookupsStructure):
            xs, ys, extra = self._lookup_table(ast.lookups, ctx.var)
            if extra.get("extrapolation") != "clamp":
                raise Unsupported("an extrapolating inline lookup")
            pts = ", ".join(f"({x}, {y})" for x, y in zip(xs, ys))
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
            if not bang and ctx.subst:
                # a mapped range (Vensim subscript mapping) follows an expanded one
                for lhs_range, elem in ctx.subst.items():
                    if k in self.mapping.get(lhs_range, ()) or lhs_range in self.mapping.get(k, ()):
                        i = self.ranges[lhs_range].index(elem)
                        if i < len(self.ranges[k]):
                            return self.elements[self.ranges[k][i]]
                    corr = self.list_map.get((k, lhs_range)) or self.list_map.get((k, self._top(lhs_range)))
                    if corr and elem in corr:
                        return self.elements[corr[elem]]
            if not bang and ctx.lhs and k not in ctx.lhs and not getattr(ctx, "vector", False):
                for lhs_range in ctx.lhs:
                    if k in self.mapping.get(lhs_range, ()) or lhs_range in self.mapping.get(k, ()):
                        raise _NeedExpand
                    if (k, lhs_range) in self.list_map or (k, self._top(lhs_range)) in self.list_map:
                        raise _NeedExpand
            return self.range_ident[k] + ("!" if bang else "")
        if k in self.elements:
            return self.elements[k]
        raise _error(self.path, f"unknown subscript '{s}'", variable=ctx.var)

    def reference(self, ast, ctx: _Ctx) -> str:
        k = name_key(ast.reference)
        if k.startswith('"') and k.endswith('"') and k not in ctx.ns:
            k2 = k[1:-1]
            if k2 in ctx.ns:
                k = k2
        target = ctx.ns.get(k)
        if target is None and k in self.ranges and not ast.subscripts:
            # a subscript range used as a value: the element's position (1-based)
            if k in ctx.subst:
                return str(self._position(k, ctx.subst[k]))
            eq = self._equal_range(k, ctx.subst)
            if eq is not None:
                return str(self._position(k, ctx.subst[eq]))
            if k in ctx.lhs or self._equal_range(k, ctx.lhs) is not None:
                raise _NeedExpand
            for lhs_range, elem in ctx.subst.items():
                if elem in self.ranges[k]:
                    return str(self._position(k, elem))
            raise Unsupported(f"subscript range '{ast.reference}' as a value",
                              "it is not a dimension of this variable")
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
        if fk == "vector_elm_map":
            return self._vector_elm_map(args, ctx)
        if fk == "vector_lookup":
            return self._vector_lookup(args, ctx)
        if fk == "delay_material":
            # Vensim's material (conveyor) delay; with no loss argument (0) it is a pipeline delay:
            # the output is the input of one delay time before, the initial value until then
            if len(args) == 4 and not (_is_number(args[3]) and float(args[3]) == 0):
                raise Unsupported("DELAY MATERIAL with a loss/extra argument other than 0")
            if len(args) not in (3, 4):
                raise Unsupported(f"DELAY MATERIAL with {len(args)} arguments")
            return (f"DELAY_FIXED({self.expr(args[0], ctx)}, {self.expr(args[1], ctx)}, "
                    f"{self.expr(args[2], ctx)})")
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
                sub_ctx = _Ctx(ctx.var, ctx.ns, subst={**ctx.subst, **dict(zip(banged, combo))},
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
        banged, fixed = [], []
        for i, x in enumerate(subs):
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
        for p, a in zip(sec.params, args):
            pid = self.names.new(f"{base}_{p}")
            if ctx.ns is self.ns:
                try:
                    self.macro_consts[pid] = self._const_eval(a, lambda k: self.time_values.get(k))
                except (_NotConstant, TypeError, ZeroDivisionError, OverflowError):
                    pass
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
        if result is None:
            if sec.returns:
                result = ns.get(name_key(sec.returns[0]))
        if result is None:
            raise Unsupported(f"macro {sec.name}", "it has no output variable")
        return result
















def import_model(path: str | Path, data_files=()) -> dict:
    """Read a Vensim or XMILE model and return it as our model dict (TOML shape).

    data_files: .tab/.csv files (Time column, one column per variable or element) holding
    the values of DATA variables that have no GET DATA source, as PySD's ``data_files``."""
    path = Path(path)
    am = parse_abstract_model(path)
    conv = Converter(am, path, data_files)
    try:
        d = conv.run()
    except ModelError:
        raise
    except Unsupported as u:
        raise _error(path, f"uses {u.function}, which the engine cannot run") from None
    except RecursionError:
        raise _error(path, "the expressions are nested too deeply") from None
    for sec in ("constants", "stocks", "flows", "auxiliaries", "lookups", "data"):
        if sec in d:
            d[sec] = {k: _order(v) for k, v in d[sec].items()}
    return d


# ----------------------------------------------------------------------------------------
# TOML output


