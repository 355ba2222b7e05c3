"""Write a model (our dict / TOML form) as XMILE 1.0.

Stocks keep their inflows/outflows (``<non_negative/>`` where set), flows and
auxiliaries their equations (per-element equations as ``<element subscript=...>``),
lookups become graphical functions (``<gf>``), data series graphical functions of TIME.
Names are written with underscores, as XMILE allows; labels and docs go to ``<doc>``.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from engine.errors import ModelError, Problem

from .export_mdl import _dim_elements, _element_entries, _num, load_dict
from .print_expr import to_xmile

def translate_xmile(expr: str, lookups=frozenset(), where: str = "equation") -> str:
    """Our expression text -> XMILE expression text, printed from its AST (``print_expr``)."""
    return to_xmile(str(expr), where, lookups)


def _doc(spec: dict) -> str:
    parts = [str(spec[k]) for k in ("label_zh", "label_en", "doc") if spec.get(k)]
    if spec.get("source"):
        parts.append("Source: " + str(spec["source"]))
    return f"<doc>{escape(' | '.join(parts))}</doc>" if parts else ""


def _units(spec: dict) -> str:
    return f"<units>{escape(str(spec['unit']))}</units>" if spec.get("unit") else ""


def _dims(spec: dict) -> str:
    dims = spec.get("dims") or []
    if not dims:
        return ""
    return "<dimensions>" + "".join(f"<dim name={quoteattr(d)}/>" for d in dims) + "</dimensions>"


def _gf(xs, ys, extrapolate=False) -> str:
    kind = ' type="extrapolate"' if extrapolate else ""
    return (f"<gf{kind}><xpts>{','.join(_num(x) for x in xs)}</xpts>"
            f"<ypts>{','.join(_num(y) for y in ys)}</ypts></gf>")


_XMILE_METHOD = {"euler": "Euler", "rk2": "RK2", "rk4": "RK4", "adaptive": "RK45"}


def _header(d: dict, t: dict) -> list[str]:
    meta = d.get("model") or {}
    return ['<?xml version="1.0" encoding="utf-8"?>',
            '<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">',
            "  <header>", f"    <name>{escape(str(meta.get('name', 'model')))}</name>",
            "    <vendor>Linxiang SD</vendor>", '    <product version="1.0" lang="en">lxsd</product>',
            "  </header>",
            f'  <sim_specs method="{_XMILE_METHOD.get(str(t.get("method", "euler")), "Euler")}" '
            f'time_units={quoteattr(str(t.get("unit", "year")))}>',
            f"    <start>{_num(t['start'])}</start>", f"    <stop>{_num(t['stop'])}</stop>",
            f"    <dt>{_num(t['dt'])}</dt>", f"    <save_step>{_num(t.get('saveper', t['dt']))}</save_step>",
            "  </sim_specs>"]


def _dimensions(d: dict) -> tuple[dict, list[str]]:
    dims = dict(d.get("dimensions") or {})
    for name, spec in (d.get("subranges") or {}).items():
        dims[name] = spec["elements"]
    if not dims:
        return dims, []
    lines = ["  <dimensions>"]
    for name, elems in dims.items():
        lines.append(f"    <dim name={quoteattr(name)}>"
                     + "".join(f"<elem name={quoteattr(e)}/>" for e in elems) + "</dim>")
    return dims, lines + ["  </dimensions>"]


def _per_element(d: dict, dims: dict, spec: dict) -> dict[str, str]:
    """Element selector ("e1,e2") -> equation text of a variable given per element."""
    eqs = dict(spec.get("equations") or {})
    default = eqs.pop("default", None)
    per: dict[str, str] = {}
    for sel, text in eqs.items():
        lists = [_dim_elements(d, p) if p in dims else [p] for p in sel.split(",")]
        for combo in itertools.product(*lists):
            per[",".join(combo)] = text
    if default is not None:
        for sel, _ in _element_entries(d, spec.get("dims") or [], 0):
            per.setdefault(sel, default)
    return per


def _variables(d: dict, dims: dict, tr) -> list[str]:
    L = []
    for name, spec in (d.get("constants") or {}).items():
        vd = spec.get("dims") or []
        if not vd:
            body = f"<eqn>{_num(spec['value'])}</eqn>"
        else:
            body = "".join(f"<element subscript={quoteattr(sel)}><eqn>{_num(v)}</eqn></element>"
                           for sel, v in _element_entries(d, vd, spec["value"]))
        L.append(f"      <aux name={quoteattr(name)}>{_dims(spec)}{body}{_units(spec)}{_doc(spec)}</aux>")
    for name, spec in (d.get("stocks") or {}).items():
        init = spec.get("initial", 0)
        init = _num(init) if isinstance(init, (int, float)) else tr(init, name)
        flows = "".join(f"<inflow>{escape(f)}</inflow>" for f in spec.get("inflows") or [])
        flows += "".join(f"<outflow>{escape(f)}</outflow>" for f in spec.get("outflows") or [])
        nn = "<non_negative/>" if spec.get("non_negative") else ""
        L.append(f"      <stock name={quoteattr(name)}>{_dims(spec)}<eqn>{init}</eqn>{flows}{nn}"
                 f"{_units(spec)}{_doc(spec)}</stock>")
    for section, tag in (("flows", "flow"), ("auxiliaries", "aux")):
        for name, spec in (d.get(section) or {}).items():
            if "equation" in spec:
                body = f"<eqn>{tr(spec['equation'], name)}</eqn>"
            else:
                body = "".join(f"<element subscript={quoteattr(sel)}><eqn>{tr(str(text), name)}</eqn></element>"
                               for sel, text in _per_element(d, dims, spec).items())
            L.append(f"      <{tag} name={quoteattr(name)}>{_dims(spec)}{body}{_units(spec)}{_doc(spec)}</{tag}>")
    for name, spec in (d.get("lookups") or {}).items():
        kind = ' type="extrapolate"' if spec.get("extrapolation") == "linear" else ""
        L.append(f"      <gf name={quoteattr(name)}{kind}>"
                 f"<xpts>{','.join(_num(x) for x in spec['x'])}</xpts>"
                 f"<ypts>{','.join(_num(y) for y in spec['y'])}</ypts>{_units(spec)}{_doc(spec)}</gf>")
    for name, spec in (d.get("data") or {}).items():
        kind = "discrete" if spec.get("interpolation") == "step" else "continuous"
        L.append(f"      <aux name={quoteattr(name)}><eqn>TIME</eqn>"
                 f"<gf type=\"{kind}\"><xpts>{','.join(_num(x) for x in spec['time'])}</xpts>"
                 f"<ypts>{','.join(_num(y) for y in spec['values'])}</ypts></gf>{_units(spec)}{_doc(spec)}</aux>")
    return L


def export_xmile(model: str | Path | dict, source: str | None = None) -> str:
    """XMILE text of a model; ``source`` names the file in error messages."""
    d = load_dict(model)
    lookups = set(d.get("lookups") or {})
    t = d.get("time") or {}

    def tr(text: str, where: str) -> str:
        return escape(translate_xmile(text, lookups, where))
    for key, label in (("start", "INITIAL TIME"), ("stop", "FINAL TIME"), ("dt", "TIME STEP"),
                       ("saveper", "SAVEPER")):
        if isinstance(t.get(key), str):
            where = source or (str(model) if not isinstance(model, dict) else "<model>")
            raise ModelError(Problem(where, f"time.{key}",
                                     f"{label} is an equation here, and XMILE's sim_specs hold numbers only",
                                     "export to .mdl (Vensim allows equations for the time settings)"))
    dims, dim_lines = _dimensions(d)
    L = _header(d, t) + dim_lines + ["  <model>", "    <variables>"] + _variables(d, dims, tr)
    L += ["    </variables>", "  </model>", "</xmile>", ""]
    return "\n".join(L)


def write_xmile(model, out) -> Path:
    out = Path(out)
    out.write_text(export_xmile(model), encoding="utf-8")
    return out
