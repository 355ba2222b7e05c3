"""The lever screen: "what does this lever do" on one screen (issue 13, item 1).

Sliders (grouped as the model's [presentation] table says), Δ cards (current settings minus
their base scenario, in the card years) and the cards' charts (base dashed, current solid,
the plan's path, actuals, history shaded) live in one ``st.fragment``: moving a lever reruns
only this screen, not the sidebar or the rest of the page.

A slider shows the base scenario's value until someone moves it; only moved levers are
applied (``st.session_state["lv"]``), so an untouched slider never changes a value.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from lxapp import core
from lxapp.core import CURRENT
from lxapp.i18n import t


def page_levers(ctx) -> None:
    st.header(t("levers", ctx.lang))
    st.caption(t("lever_intro", ctx.lang).format(base=ctx.label(ctx.base)))
    lever_screen(ctx)
    from lxapp.pages import lever_table
    # drawn only when opened: a closed expander's table would still load and lay out the data grid
    # in every browser that opens the page (about 1.2 MB of script before the first chart)
    doc = st.expander(t("lever_doc", ctx.lang), key="lever_doc_open", on_change="rerun")
    if doc.open:
        with doc:
            st.dataframe(lever_table(ctx), hide_index=True, width="stretch")


@st.fragment
def lever_screen(ctx) -> None:
    """Sliders, Δ cards and charts; a lever move reruns only this (the model run of the current
    settings, then light work: the charts' fixed parts are built once per base and language)."""
    from lxapp import ui
    ss = st.session_state
    ctx.moved = dict(ss.get("lv", {}))
    # the screen is about the current settings against their base, whatever else is compared
    view = replace(ctx, selected=list(dict.fromkeys([CURRENT, ctx.base])), reference=ctx.base)
    b = ctx.bundle
    cols = [c for c in b.presentation.get("cards", []) if core.split_column(c)[0] in b.model.visible]
    shown = tuple(sorted({core.split_column(c)[0] for c in cols})) or None
    runs = ui.lever_runs(view, shown)
    if ctx.unc:                # the fan of the current settings: the engine's ensemble (cached by settings)
        ui.compute(view, shown)
    left, right = st.columns([1, 2.4], gap="medium")
    # sent charts first, then the cards into their place above them, then the sliders: the
    # browser takes the elements in the order they come, so a move's new lines (and, on opening,
    # the first chart) are drawn before it redoes the sliders and cards (docs/app.md, Speed)
    with right:
        card_box = st.container()
        st.toggle(t("interactive", ctx.lang), help=t("interactive_help", ctx.lang),
                  **ui.bind("ia", ctx.lang, bool))
        charts_grid(view, runs, cols, interactive=bool(ss.get("ia")))
    with card_box:
        cards(view, runs, cols)
    with left:
        moved_line(view)
        sliders(view)
    ui.write_url(ctx)          # the URL keeps the sidebar's scenarios and reference


def moved_line(ctx) -> None:
    """The levers moved so far (inside the fragment, so it is right after every move; the
    sidebar, outside it, shows this line on the other pages)."""
    if ctx.moved:
        st.caption(t("moved_levers", ctx.lang) + ": " + "; ".join(
            f"{core.var_label(ctx.bundle, k, ctx.lang)} = {v:g}" for k, v in ctx.moved.items()))


def sliders(ctx) -> None:
    b = ctx.bundle
    levers = core.levers(b, st.session_state.get("more", []), ctx.base)
    groups = {g["name"]: g for g in core.lever_groups(b)}
    shown = None
    values = ctx.lever_values
    for lv in levers:
        if lv.group != shown:
            g = groups.get(lv.group)
            title = (g["label_zh"] if ctx.lang == "zh" else g["label_en"]) if g else t("more_levers", ctx.lang)
            st.markdown(f"**{title or lv.group}**")
            shown = lv.group
        slider(ctx, lv, values[lv.name])
    if ctx.moved and st.button(t("reset", ctx.lang), key="reset_levers_screen"):
        st.session_state["lv"] = {}
        st.rerun(scope="fragment")


def slider(ctx, lv: core.Lever, value: float) -> None:
    """One lever; its callback records the new position, or forgets it when it is the base's again."""
    b = ctx.bundle
    label = core.var_label(b, lv.name, ctx.lang)
    var = b.variables[lv.name]
    if lv.kind == "multiplier":
        label += f" ({t('times_default', ctx.lang)})"
    elif var.unit and var.unit.strip() not in ("dmnl", "1", "year"):
        label += f" ({core.translate_unit(var.unit, ctx.lang)})"
    if lv.name in ctx.moved:
        label += " ●"
    base_pos = core.fit(lv, core.scenario_value(b, ctx.base, lv))
    helptext = (var.doc or "") + f"  [{t('base_value', ctx.lang)}: {base_pos:g}]"
    key = f"lv_{lv.name}_{ctx.lang}"
    want = int(value) if lv.kind == "year" else float(value)
    kw = dict(key=key, help=helptext, on_change=_moved, args=(key, lv, base_pos))
    if st.session_state.get(key) != want:
        st.session_state[key] = want   # a reset, another base, the other language: the slider must show it
    else:
        kw["value"] = want             # it shows it already; naming it spares Streamlit a scan of the state
    if lv.kind == "year":
        st.slider(label, int(lv.low), int(lv.high), step=1, **kw)
    else:
        st.slider(label, float(lv.low), float(lv.high), step=float(lv.step), format=f"%.{core.decimals(lv)}f", **kw)


def _moved(key: str, lv: core.Lever, base_pos: float) -> None:
    ss = st.session_state
    moved = dict(ss.get("lv", {}))
    val = core.fit(lv, ss[key])
    if abs(val - base_pos) <= 1e-12 * max(1.0, abs(base_pos)):
        moved.pop(lv.name, None)
    else:
        moved[lv.name] = val
    ss["lv"] = moved


def _at(x: np.ndarray, y: np.ndarray, year: float) -> float:
    return float(np.interp(year, x, y)) if x[0] <= year <= x[-1] else np.nan


def card_values(ctx, runs: dict, cols: list[str]) -> list[dict]:
    """The Δ cards' contents: for each card column and year, its label, the current value and Δ
    (current settings minus their base) as text, and how to colour Δ (``good``/``bad``/``none``)."""
    from lxapp.pages import fmt
    b = ctx.bundle
    cur, base = runs[CURRENT], runs[ctx.base]
    cols = [c for c in cols if c in cur.columns and c in base.columns]
    years = [y for y in b.presentation.get("card_years", [2025, 2030]) if b.model.time.start <= y <= b.model.time.stop]
    x = cur.index.to_numpy(dtype=float)
    xb = base.index.to_numpy(dtype=float)
    out = []
    for y in years:
        for col in cols:
            frac = core.is_fraction(b, col)
            scale = 100.0 if frac else 1.0
            unit = core.unit_label(b, col, ctx.lang)
            v = _at(x, cur[col].to_numpy() * scale, y)
            d = v - _at(xb, base[col].to_numpy() * scale, y)
            dtext = (f"{d:+.2f} " + t("pp", ctx.lang)) if frac else f"{d:+,.3g} {unit}"
            lower_better = col.startswith("co2")
            tone = "none" if abs(d) < 1e-9 * max(1.0, abs(v)) else ("good" if (d > 0) != lower_better else "bad")
            out.append({"column": col, "year": y, "label": f"{y} · {ctx.vlabel(col)} ({unit})", "value": fmt(v),
                        "delta": "±0" if tone == "none" else dtext, "tone": tone, "up": bool(d > 0)})
    return out


_TONE = {"good": "#1e8449", "bad": "#c0392b", "none": "#777777"}


def cards(ctx, runs: dict, cols: list[str]) -> None:
    """Δ cards for the presentation's cards and years, as one HTML block (one element for the
    browser to draw and update, where eight ``st.metric`` were 18 with their columns)."""
    import html
    items = card_values(ctx, runs, cols)
    if not items:
        return
    n = len({it["column"] for it in items})
    parts = []
    for it in items:       # the arrow gives the direction, the colour whether it is good (CO2: lower is)
        color = _TONE[it["tone"]]
        arrow = "" if it["tone"] == "none" else ("▲" if it["up"] else "▼")
        lab = html.escape(it["label"])
        parts.append(
            f'<div class="lx-card" data-label="{lab}" data-value="{html.escape(it["value"])}" '
            f'data-delta="{html.escape(it["delta"])}" style="min-width:0">'
            # the label on up to two lines (the year, then the variable's name and unit), cut only beyond
            f'<div title="{lab}" style="font-size:0.85rem;line-height:1.25;color:#555;overflow:hidden;'
            f'display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical">{lab}</div>'
            f'<div style="font-size:1.9rem;line-height:1.25">{html.escape(it["value"])}</div>'
            f'<div style="font-size:0.85rem;color:{color}">{arrow} {html.escape(it["delta"])}</div></div>')
    st.html(f'<div style="display:grid;grid-template-columns:repeat({n},minmax(0,1fr));gap:0.6rem 1rem;'
            f'margin-bottom:0.5rem">{"".join(parts)}</div>')


def charts_grid(ctx, runs: dict, cols: list[str], interactive: bool = False) -> None:
    """The cards' charts, two a row. By default they are SVG images drawn on the server
    (``lxapp.svgchart``: the browser shows them with the page's first elements, no chart library
    to load; docs/benchmarks-app.md), from a figure whose fixed traces are built once; a lever
    move puts the current settings' numbers into it. With the fan, or ``interactive`` (hover and
    zoom, the "interactive charts" toggle): plotly, as the compare page draws them."""
    from lxapp import svgchart
    from lxapp.pages import line
    cur = runs[CURRENT]
    grid = st.columns(2)
    shown = [c for c in cols if c in cur.columns]
    plotly = bool(ctx.bands) or interactive
    space = 1 if plotly else max((svgchart.title_lines(chart_template(ctx, runs, c)[0]) for c in shown),
                                 default=1)     # the charts' titles take as many lines: the plots line up
    view = ctx if ctx.bands or not plotly else replace(ctx, df=core.combine(runs), bands={})
    for i, col in enumerate(shown):
        with grid[i % 2]:
            if plotly:         # the whole chart, as the compare page draws it (with the fan when on)
                df = view.df.loc[list(dict.fromkeys([CURRENT, ctx.base]))]
                st.plotly_chart(line(view, col, df, _labels(ctx)), width="stretch", key=f"lev_{col}")
                continue
            spec, k, scale = chart_template(ctx, runs, col)
            if k is not None:  # the current settings' line: the one thing a move changes
                data = list(spec["data"])
                data[k] = {**data[k], "y": cur[col].to_numpy() * scale}
                spec = {**spec, "data": data}
            title = (spec["layout"].get("title") or {}).get("text", col)
            st.markdown(svgchart.markdown_image(svgchart.svg_line(spec, t("year", ctx.lang), space), title))


def _labels(ctx) -> dict[str, str]:
    return {CURRENT: ctx.label(CURRENT), ctx.base: ctx.label(ctx.base) + f" ({t('base_short', ctx.lang)})"}


def chart_template(ctx, runs: dict, col: str) -> tuple[dict, int | None, float]:
    """The figure of ``col`` (``charts.line_spec``'s) with everything but the current settings' line
    fixed (the base dashed, the plan's path, actuals, history, the 2025 mark, labels): (figure,
    the index of the current line's trace or None, the y scale: 100 for a fraction shown in %).
    Built once per bundle, base, language and column and shared by every session (read-only)."""
    from lxapp.pages import line
    b = ctx.bundle
    cache = b.__dict__.setdefault("_lever_charts", {})
    key = (ctx.base, ctx.lang, col)
    if key not in cache:
        both = {CURRENT: runs[ctx.base]} | ({ctx.base: runs[ctx.base]} if ctx.base != CURRENT else {})
        df = core.combine(both)
        view = replace(ctx, df=df, bands={})
        labels = _labels(ctx)
        spec = line(view, col, df, labels).to_dict()
        k = next((i for i, tr in enumerate(spec["data"]) if tr.get("name") == labels[CURRENT]
                  and tr.get("mode") == "lines"), None)
        cache[key] = (spec, k, 100.0 if core.is_fraction(b, col) else 1.0)
    return cache[key]
