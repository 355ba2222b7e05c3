"""The model's structure for the Model page: variable table, stock-flow diagram (Graphviz
DOT, drawn in the browser by st.graphviz_chart) and the feedback loops between stocks."""
from __future__ import annotations

import contextlib

import pandas as pd

from lxapp import core


def dependencies(bundle) -> dict[str, set[str]]:
    """User variable -> user variables its equation reads (internal delay stocks folded in)."""
    cached = getattr(bundle, "_deps", None)
    if cached is not None:
        return cached
    from engine.resolve.graph import node_deps

    rvars = bundle.model.rvars
    user = set(bundle.variables)

    def owner(n: str) -> str | None:
        seen = 0
        while n not in user and seen < 20:
            rv = rvars.get(n)
            if rv is None or not rv.host:
                return None
            n, seen = rv.host, seen + 1
        return n if n in user else None

    deps: dict[str, set[str]] = {n: set() for n in user}
    for name, rv in rvars.items():
        o = owner(name)
        if o is None:
            continue
        pieces = list(rv.init_pieces or [])
        if rv.kind != "stock":        # a stock's equation is its flows; only its initial value depends on others
            pieces = list(rv.pieces or []) + pieces
        for p in pieces:
            for d in node_deps(p.ast, rvars):
                od = owner(d)
                if od and od != o:
                    deps[o].add(od)
    for name, var in bundle.variables.items():   # a stock depends on its flows
        if var.kind == "stock":
            deps[name] |= set(var.inflows) | set(var.outflows)
    bundle._deps = deps
    return deps


def variable_table(bundle, lang: str) -> pd.DataFrame:
    rows = []
    for name, v in bundle.variables.items():
        if v.internal:
            continue
        if v.kind == "stock":
            eq = f"∫ ({' + '.join(v.inflows) or '0'}) − ({' + '.join(v.outflows) or '0'}) dt; init = {v.initial}"
        elif v.kind == "constant":
            eq = str(v.value)
        elif v.kind == "data":
            eq = f"data ({len(v.times)} points)"
        elif v.kind == "lookup":
            eq = f"lookup ({len(v.xs)} points)"
        else:
            eq = "; ".join(f"{k}: {e}" if k else e for k, e in v.equations.items())
        rows.append({"name": name, "label": (v.label_zh if lang == "zh" else v.label_en) or "",
                     "kind": v.kind, "dims": ",".join(v.dims), "unit": v.unit or "", "equation": eq,
                     "doc": v.doc or "", "source": v.source or ""})
    return pd.DataFrame(rows)


def _q(s: str) -> str:
    return '"' + s.replace('"', "'") + '"'


def _node(bundle, name: str, lang: str, focus: bool = False) -> str:
    v = bundle.variables[name]
    label = core.var_label(bundle, name, lang)
    text = f"{label}\\n({name})" if label != name else name
    shape = {"stock": "box", "flow": "cds", "constant": "plaintext", "data": "note"}.get(v.kind, "ellipse")
    style = ',style="filled,bold",fillcolor="#fdebd0"' if focus else (
        ',style=filled,fillcolor="#d6eaf8"' if v.kind == "stock" else "")
    return f'{_q(name)} [label={_q(text)},shape={shape}{style}];'


def dot(bundle, lang: str, focus: str | None = None) -> str:
    """Stocks and flows (default) or one variable with its neighbours (focus)."""
    deps = dependencies(bundle)
    lines = ['digraph model {', 'rankdir=LR; bgcolor="transparent";',
             'node [fontname="Noto Sans CJK SC, Microsoft YaHei, PingFang SC, sans-serif", fontsize=10];',
             'edge [color="#555555"];']
    if focus and focus in bundle.variables:
        users = {n for n, ds in deps.items() if focus in ds}
        nodes = {focus} | deps.get(focus, set()) | users
        for n in sorted(nodes):
            lines.append(_node(bundle, n, lang, n == focus))
        for n in sorted(nodes):
            for d in sorted(deps.get(n, ())):
                if d in nodes and (n == focus or d == focus):
                    lines.append(f"{_q(d)} -> {_q(n)};")
    else:
        stocks = [n for n, v in bundle.variables.items() if v.kind == "stock"]
        flows = set()
        for s in stocks:
            v = bundle.variables[s]
            flows |= set(v.inflows) | set(v.outflows)
        for n in stocks + sorted(flows):
            lines.append(_node(bundle, n, lang))
        for s in stocks:
            v = bundle.variables[s]
            for f in v.inflows:
                lines.append(f'{_q(f)} -> {_q(s)} [penwidth=2.5,color="#2471a3"];')
            for f in v.outflows:
                lines.append(f'{_q(s)} -> {_q(f)} [penwidth=2.5,color="#c0392b"];')
        reach = stock_reach(bundle)
        for f in sorted(flows):
            for s in sorted(reach.get(f, ())):
                lines.append(f'{_q(s)} -> {_q(f)} [style=dashed,color="#aaaaaa",arrowsize=0.5];')
    lines.append("}")
    return "\n".join(lines)


def stock_reach(bundle) -> dict[str, set[str]]:
    """Variable -> stocks its value depends on through auxiliaries (not through other stocks)."""
    deps = dependencies(bundle)
    kinds = {n: v.kind for n, v in bundle.variables.items()}
    memo: dict[str, set[str]] = {}

    def reach(n: str, stack: frozenset) -> set[str]:
        if n in memo:
            return memo[n]
        out: set[str] = set()
        for d in deps.get(n, ()):
            if kinds.get(d) == "stock":
                out.add(d)
            elif d not in stack:
                out |= reach(d, stack | {d})
        memo[n] = out
        return out

    return {n: reach(n, frozenset({n})) for n, k in kinds.items() if k != "stock"}


def feedback_loops(bundle) -> list:
    """Feedback loops with polarity, read from the equations (engine.analysis.structure), cached."""
    cached = getattr(bundle, "_feedback_loops", None)
    if cached is None:
        from engine.analysis.structure import feedback_loops as _loops

        cached = _loops(bundle.model.model)
        with contextlib.suppress(AttributeError):  # a frozen bundle: compute each time (cheap: milliseconds)
            bundle._feedback_loops = cached
    return cached
