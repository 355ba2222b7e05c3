"""Write a model (our dict / TOML form) as a Vensim ``.mdl`` text file.

The file starts with the ``{UTF-8}`` header; each variable carries its unit, its
``[low,high]`` range (constants with a ``range``) and, in the comment field, its Chinese
and English labels, documentation and source.  Equations are parsed and printed in
Vensim's syntax from their AST (``engine.io.print_expr``: ``IF_THEN_ELSE`` -> ``IF THEN ELSE``,
``and`` -> ``:AND:``, ``TIME_STEP`` -> ``TIME STEP`` ...); stocks become ``INTEG(inflows - outflows,
initial)``, lookups Vensim lookup tables, data series lookups of ``Time``.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from engine.errors import ModelError, Problem

from .print_expr import to_vensim

def load_dict(model: str | Path | dict) -> dict:
    """A model dict from a dict, a .toml file, or (through the importer) a .mdl/.xmile."""
    if isinstance(model, dict):
        return model
    path = Path(model)
    if path.suffix.lower() in (".mdl", ".xmile", ".xml", ".stmx"):
        from .pysd_import import import_model
        return import_model(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(Problem(str(path), None, "file not found")) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(Problem(str(path), None, f"not a valid TOML model: {exc}")) from None


def translate(expr: str, lookups=frozenset(), var_dims: dict | None = None,
              subst: dict | None = None, where: str = "equation", elements: dict | None = None) -> str:
    """Our expression text -> Vensim expression text, printed from its AST (``print_expr``).

    ``var_dims`` (name -> dims) makes implicit subscripts explicit: ``x`` of a variable
    with dims [sector] is written ``x[sector]`` as Vensim requires.  ``subst`` (range name ->
    element or subrange) rewrites the subscripts of a per-element equation: in the equation of
    ``y[heavy]``, our ``x`` (or ``x[sector]``) means ``x[heavy]``.
    """
    return to_vensim(str(expr), where, lookups, var_dims, subst, elements)


def _selector_subst(d: dict, dims: list[str], sel: str) -> dict:
    """Range name -> element/subrange for the equation of one selector ("heavy", "e1,sub")."""
    family = {n: n for n in (d.get("dimensions") or {})}
    family.update({n: s["of"] for n, s in (d.get("subranges") or {}).items()})
    out = {}
    for dim, part in zip(dims, [p.strip() for p in sel.split(",")], strict=False):
        if part == dim:
            continue
        top = family.get(dim, dim)
        for name, fam in family.items():
            if fam == top and name != part:
                out[name] = part
    return out


def _num(v) -> str:
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _comment(spec: dict) -> str:
    parts = []
    for key, label in (("label_zh", ""), ("label_en", ""), ("doc", ""), ("source", "Source: ")):
        if spec.get(key):
            parts.append(label + str(spec[key]).replace("~", "-").replace("|", "/"))
    return "\n\t".join(parts)


def _units(spec: dict, with_range: bool = True) -> str:
    u = str(spec.get("unit", "") or "").replace("~", "-").replace("|", "/")
    if with_range and spec.get("range"):
        lo, hi = spec["range"]
        u = f"{u} [{_num(lo)},{_num(hi)}]"
    return u


def _dim_elements(d: dict, name: str) -> list[str]:
    if name in (d.get("dimensions") or {}):
        return list(d["dimensions"][name])
    return list((d.get("subranges") or {})[name]["elements"])


def _value_rows(d: dict, dims: list[str], value) -> str:
    """Numbers of a subscripted constant in Vensim's array layout."""
    if not dims:
        return _num(value)

    def flat(level, v):
        if isinstance(v, dict):
            return [flat(level + 1, v[e]) for e in _dim_elements(d, dims[level])]
        if isinstance(v, list):
            return [flat(level + 1, x) for x in v]
        return v

    table = flat(0, value)
    if len(dims) == 1:
        if not isinstance(table, list):
            return _num(table)
        return ", ".join(_num(x) for x in table)
    if len(dims) == 2:
        return ";\n\t".join(", ".join(_num(x) for x in row) for row in table) + ";"
    raise ValueError("constants with more than two dimensions are written element by element")


def _element_entries(d: dict, dims: list[str], value) -> list[tuple[str, float]]:
    out = []

    def rec(level, v, prefix):
        if level == len(dims):
            out.append((",".join(prefix), v))
            return
        elems = _dim_elements(d, dims[level])
        if isinstance(v, dict):
            for e in elems:
                rec(level + 1, v[e], prefix + [e])
        elif isinstance(v, list):
            for e, x in zip(elems, v, strict=False):
                rec(level + 1, x, prefix + [e])
        else:
            for e in elems:
                rec(level + 1, v, prefix + [e])
    rec(0, value, [])
    return out


_MDL_METHOD_CODES = {"euler": 0, "rk4": 1, "rk2": 3, "adaptive": 5}


class _MdlWriter:
    """The .mdl text of one model dict, section by section."""

    def __init__(self, d: dict) -> None:
        self.d = d
        self.lookups = set(d.get("lookups") or {})
        self.var_dims = {n: list(s.get("dims") or []) for sec in ("constants", "stocks", "flows", "auxiliaries")
                         for n, s in (d.get(sec) or {}).items() if s.get("dims")}
        self.lines = ["{UTF-8}"]
        self.elements = {**{n: list(e) for n, e in (d.get("dimensions") or {}).items()},
                         **{n: list(s["elements"]) for n, s in (d.get("subranges") or {}).items()}}

    def tr(self, text: str, where: str = "equation", subst: dict | None = None) -> str:
        return translate(text, self.lookups, self.var_dims, subst, where, self.elements)

    def eq(self, lhs: str, rhs: str, spec: dict, with_range: bool = False) -> None:
        self.lines += [f"{lhs}=\n\t{rhs}", f"\t~\t{_units(spec, with_range)}", f"\t~\t{_comment(spec)}", "\t|", ""]

    @staticmethod
    def lhs(name: str, spec: dict, sel: str | None = None) -> str:
        dims = spec.get("dims") or []
        if sel is not None:
            return f"{name}[{sel}]"
        return f"{name}[{','.join(dims)}]" if dims else name

    def ranges(self) -> None:
        for name, elems in (self.d.get("dimensions") or {}).items():
            self.lines += [f"{name}:\n\t{', '.join(elems)}", "\t~\t", "\t~\t", "\t|", ""]
        for name, spec in (self.d.get("subranges") or {}).items():
            self.lines += [f"{name}:\n\t{', '.join(spec['elements'])}", "\t~\t",
                           f"\t~\tsubrange of {spec['of']}", "\t|", ""]

    def constants(self) -> None:
        for name, spec in (self.d.get("constants") or {}).items():
            dims = spec.get("dims") or []
            if len(dims) <= 2:
                self.eq(self.lhs(name, spec), _value_rows(self.d, dims, spec["value"]), spec, True)
            else:
                for sel, v in _element_entries(self.d, dims, spec["value"]):
                    self.eq(self.lhs(name, spec, sel), _num(v), spec, True)

    def stocks(self) -> None:
        for name, spec in (self.d.get("stocks") or {}).items():
            rate = " + ".join(self.tr(f, name) for f in spec.get("inflows") or []) or "0"
            outs = spec.get("outflows") or []
            if outs:
                rate = (rate if spec.get("inflows") else "0") + "".join(f" - {self.tr(o, name)}" for o in outs)
            init = spec.get("initial", 0)
            init = _num(init) if isinstance(init, (int, float)) else self.tr(init, name)
            spec2 = dict(spec)
            if spec.get("non_negative"):
                spec2["doc"] = (spec.get("doc", "") + " (non-negative stock in lxsd)").strip()
            self.eq(self.lhs(name, spec), f"INTEG(\n\t{rate},\n\t\t{init})", spec2)

    def equations(self) -> None:
        for section in ("flows", "auxiliaries"):
            for name, spec in (self.d.get(section) or {}).items():
                if "equation" in spec:
                    self.eq(self.lhs(name, spec), self.tr(spec["equation"], name), spec)
                    continue
                eqs = dict(spec.get("equations") or {})
                default = eqs.pop("default", None)
                for sel, text in eqs.items():
                    sub = _selector_subst(self.d, spec.get("dims") or [], sel)
                    self.eq(self.lhs(name, spec, sel), self.tr(str(text), name, sub), spec)
                if default is not None:
                    dims = spec.get("dims") or []
                    exc = ", ".join(f"[{sel}]" for sel in eqs)
                    head = f"{name}[{','.join(dims)}]" + (f" :EXCEPT: {exc}" if exc else "")
                    self.eq(head, self.tr(str(default), name), spec)

    def table(self, name: str, xs: list, ys: list, unit_spec: dict, comment: str) -> None:
        rng = f"[({_num(min(xs))},{_num(min(ys))})-({_num(max(xs))},{_num(max(ys))})]"
        pts = ",".join(f"({_num(x)},{_num(y)})" for x, y in zip(xs, ys, strict=True))
        self.lines += [f"{name}(\n\t{rng},{pts})", f"\t~\t{_units(unit_spec, False)}", f"\t~\t{comment}", "\t|", ""]

    def tables(self) -> None:
        for name, spec in (self.d.get("lookups") or {}).items():
            spec2 = dict(spec)
            if spec.get("extrapolation") == "linear":
                spec2["doc"] = (spec.get("doc", "") + " (extrapolates linearly in lxsd)").strip()
            self.table(name, list(spec["x"]), list(spec["y"]), spec, _comment(spec2))
        for name, spec in (self.d.get("data") or {}).items():
            ts, vs = list(spec["time"]), list(spec["values"])
            if spec.get("interpolation") == "step":
                # hold each value until the next point: a lookup with near-vertical steps
                xs, ys = [ts[0]], [vs[0]]
                for i in range(1, len(ts)):
                    eps = 1e-9 * max(1.0, abs(ts[i]))
                    xs += [ts[i] - eps, ts[i]]
                    ys += [vs[i - 1], vs[i]]
                ts, vs = xs, ys
            self.table(f"{name}_series", ts, vs, spec, f"data series of {name}")
            self.eq(name, f"{name}_series(Time)", spec)

    def control(self) -> None:
        t = self.d.get("time") or {}
        unit = t.get("unit", "year")
        self.lines += ["********************************************************", "\t.Control",
                       "********************************************************~",
                       "\t\tSimulation Control Parameters", "\t|", ""]

        def setting(v) -> str:
            # a number, or an equation that changes during the run (Vensim allows both)
            return self.tr(v, "time") if isinstance(v, str) else _num(v)
        for vname, key in (("FINAL TIME", "stop"), ("INITIAL TIME", "start"), ("TIME STEP", "dt")):
            self.lines += [f"{vname}  = {setting(t[key])}", f"\t~\t{unit}", f"\t~\t{vname.title()}", "\t|", ""]
        self.lines += [f"SAVEPER  = {setting(t.get('saveper', t['dt']))}", f"\t~\t{unit}",
                       "\t~\tThe frequency with which output is stored.", "\t|", ""]
        self.lines += ["\\\\\\---/// Sketch information - do not modify anything except names",
                       "V300  Do not put anything below this section - it will be ignored",
                       "*View 1",
                       "$192-192-192,0,Times New Roman|12||0-0-0|0-0-0|0-0-255|-1--1--1|-1--1--1|96,96,100,0",
                       "///---\\\\\\", ":L<%^E!@",
                       # the integration type (the 4th number; 0 Euler, 1 RK4, 3 RK2, 5 RK4 auto)
                       f"15:0,0,0,{_MDL_METHOD_CODES.get(str(t.get('method', 'euler')), 0)},0,0", ""]


def export_mdl(model: str | Path | dict) -> str:
    """Vensim .mdl text of a model (a dict, a .toml file, or an imported .mdl/.xmile)."""
    w = _MdlWriter(load_dict(model))
    for section in (w.ranges, w.constants, w.stocks, w.equations, w.tables, w.control):
        section()
    return "\n".join(w.lines)


def write_mdl(model: str | Path | dict, out: str | Path) -> Path:
    out = Path(out)
    out.write_text(export_mdl(model), encoding="utf-8")
    return out
