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

import itertools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelError, Problem

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
from .convert_common import _Ctx  # noqa: F401 - re-exported
from .vensim_data import DataSources
from .vensim_expr import (  # noqa: F401 - re-exported
    AGGREGATES,
    EXTENDED_CALLS,
    RANDOM_CALLS,
    SIMPLE_CALLS,
    VENSIM_STATEFUL_CALLS,
    ExpressionTranslator,
)

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


class Converter(DataSources, ExpressionTranslator):
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
        raw = self._raw_ranges()
        for key in raw:
            self._expand_range(raw, key, ())
        # keep the definition order
        self.ranges = {k: self.ranges[k] for k in raw}
        self._classify_ranges()
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

    def _raw_ranges(self) -> dict[str, tuple[str, Any]]:
        """Each range as written: ("list", members) or ("copy", other range's key); mappings noted."""
        raw: dict[str, tuple[str, Any]] = {}
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
        return raw

    def _expand_range(self, raw: dict[str, tuple[str, Any]], key: str, seen: tuple[str, ...]) -> list[str]:
        """Element keys of a range; a member that names another range stands for its elements."""
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
            elems = list(self._expand_range(raw, val, seen + (key,)))
        else:
            elems = []
            for e in val:
                ek = name_key(e)
                if ek in raw and ek != key:
                    elems.extend(self._expand_range(raw, ek, seen + (key,)))
                    continue
                if ek not in self.elements:
                    ident = self.elem_names.new(e)
                    self.elements[ek] = ident
                    self.element_original[ident] = display_name(e)
                elems.append(ek)
        self.ranges[key] = elems
        return elems

    def _classify_ranges(self) -> None:
        """Each range a dimension or a subrange of one (self.parent), written to [dimensions]/[subranges]."""
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
            named = [self.elements[e] for e in self.ranges[key]]
            if key in self.parent:
                top = self.parent[key]
                while top in self.parent:
                    top = self.parent[top]
                self.parent[key] = top
                subs_out[ident] = {"of": self.range_ident[top], "elements": named}
            else:
                dims_out[ident] = named

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
    # Vensim's integration type: the 4th number of the settings line "15:" (after the sketch's
    # ":L<%^E!@" marker), as xmutil reads it: 1 and 5 are RK4 (fixed, auto), 3 and 4 RK2, others Euler
    _MDL_METHODS = {1: "rk4", 5: "rk4", 3: "rk2", 4: "rk2"}

    def _method(self) -> str:
        """The integration method the file names: Vensim's settings line ``15:`` or XMILE's
        ``<sim_specs method=...>`` (Euler, RK2, RK4; RK45 as the adaptive method).

        XMILE written by Vensim keeps Euler: those files claim RK4 where Vensim ran Euler (SDXorg's
        zeroled_decimals: a flow equal to Time, whose output is Euler's, exported with method="RK4")."""
        if not self.path.is_file():
            return "euler"
        if self.path.suffix.lower() == ".mdl":
            text = self.path.read_bytes()
            at = re.search(rb":L\x7f?<%\^E!@", text)
            m = re.search(rb"(?m)^15:([^\r\n]*)", text[at.end():]) if at else None
            fields = m.group(1).split(b",") if m else []
            code = int(fields[3]) if len(fields) > 3 and fields[3].strip().isdigit() else 0
            return self._MDL_METHODS.get(code, "euler")
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
            if key in CONTROL_NAMES:   # a control element under another name is an ordinary variable
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
            raise ModelError([Problem(str(self.path), display_name(v), msg) for v, msg in self.problems])
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
        self._check_time(t)
        if unit:
            t["unit"] = unit
        t["method"] = self._method()
        self.time_values = {"initial_time": t["start"], "final_time": t["stop"],
                            "time_step": t["dt"], "saveper": t.get("saveper", t["dt"])}
        # an equation (changes during the run) cannot be folded into a number
        self.time_values = {k: v for k, v in self.time_values.items() if not isinstance(v, str)}

    def _check_time(self, t: dict[str, Any]) -> None:
        """The numeric time settings checked; a SAVEPER that is not a whole number of steps rounded (noted)."""
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
            fns: dict[str, Any] = {"step": lambda h, t0: h if t >= t0 else 0.0,
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
            for op, a in zip(ast.operators, args[1:], strict=False):
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
            terms = [("+", ast.arguments[0])] + list(zip(ast.operators, ast.arguments[1:], strict=False))
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
    def _element_wise(self, el, c, dims, lhs_keys, ns, ast, prefix) -> dict[str, str]:
        """One component's equation written element by element: each element's key -> its equation."""
        eqs: dict[str, str] = {}
        for combo in self._combos(c):
            subst: dict[str, str] = {}
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
            eqs[",".join(self.elements[e] for e in combo)] = self.expr(ast, ctx)
        return eqs

    def _equations(self, el, dims, ns, pick, prefix) -> dict:
        comps = el.components
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
                    eqs[",".join(self.elements[e] for e in combo)] = self.expr(float(vals[pos]), _Ctx(el.name, ns))
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
            eqs.update(self._element_wise(el, c, dims, lhs_keys, ns, pick(c), prefix))
        covered = set()
        for c in comps:
            covered.update(self._combos(c))
        if dims and len(covered) < math.prod(len(self.ranges[d]) for d in dims):
            eqs["default"] = "0"   # Vensim leaves undefined elements at 0
        return {"equations": eqs}


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


