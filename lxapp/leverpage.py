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
    with st.expander(t("lever_doc", ctx.lang)):
        st.dataframe(lever_table(ctx), hide_index=True, width="stretch")


@st.fragment
def lever_screen(ctx) -> None:
    from lxapp import ui
    ss = st.session_state
    ctx.moved = dict(ss.get("lv", {}))
    # the screen is about the current settings against their base, whatever else is compared
    view = replace(ctx, selected=list(dict.fromkeys([CURRENT, ctx.base])), reference=ctx.base)
    shown = {core.split_column(c)[0] for c in ctx.bundle.presentation.get("cards", [])}
    ui.compute(view, tuple(sorted(n for n in shown if n in ctx.bundle.model.visible)) or None)
    left, right = st.columns([1, 2.4], gap="medium")
    with left:
        sliders(view)
    with right:
        cards(view)
        charts_grid(view)
    ui.write_url(ctx)          # the URL keeps the sidebar's scenarios and reference


def sliders(ctx) -> None:
    b = ctx.bundle
    levers = core.levers(b, st.session_state.get("more", []))
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
    st.session_state[key] = int(value) if lv.kind == "year" else float(value)
    kw = dict(key=key, help=helptext, on_change=_moved, args=(key, lv, base_pos))
    if lv.kind == "year":
        st.slider(label, int(lv.low), int(lv.high), step=1, **kw)
    elif lv.kind == "number":
        st.number_input(label, float(lv.low), float(lv.high), step=float(lv.step), format="%g", **kw)
    else:
        decimals = max(0, -int(np.floor(np.log10(lv.step) + 1e-9)))
        st.slider(label, float(lv.low), float(lv.high), step=float(lv.step), format=f"%.{decimals}f", **kw)


def _moved(key: str, lv: core.Lever, base_pos: float) -> None:
    ss = st.session_state
    moved = dict(ss.get("lv", {}))
    val = core.fit(lv, ss[key])
    if abs(val - base_pos) <= 1e-12 * max(1.0, abs(base_pos)):
        moved.pop(lv.name, None)
    else:
        moved[lv.name] = val
    ss["lv"] = moved


def cards(ctx) -> None:
    """Δ cards: the current settings minus their base, for the presentation's cards and years."""
    from lxapp.pages import _at, _series, fmt
    b = ctx.bundle
    cols = [c for c in b.presentation.get("cards", []) if c in ctx.df.columns]
    years = [y for y in b.presentation.get("card_years", [2025, 2030]) if b.model.time.start <= y <= b.model.time.stop]
    if not cols or not years:
        return
    grid = st.columns(len(cols))
    for box, col in zip(grid, cols, strict=True):
        cur, base = _series(ctx, CURRENT, col), _series(ctx, ctx.base, col)
        frac = core.is_fraction(b, col)
        unit = core.unit_label(b, col, ctx.lang)
        for y in years:
            v, d = _at(cur, y), _at(cur, y) - _at(base, y)
            dtext = (f"{d:+.2f} " + t("pp", ctx.lang)) if frac else f"{d:+,.3g} {unit}"
            if abs(d) < 1e-9 * max(1.0, abs(v)):
                dtext = "±0"
            box.metric(f"{ctx.vlabel(col)} {y} ({unit})", fmt(v), dtext,
                       delta_color="off" if dtext == "±0" else ("inverse" if col.startswith("co2") else "normal"))


def charts_grid(ctx) -> None:
    from lxapp.pages import line
    b = ctx.bundle
    cols = [c for c in b.presentation.get("cards", []) if c in ctx.df.columns]
    df = ctx.df.loc[[CURRENT, ctx.base]] if ctx.base != CURRENT else ctx.df.loc[[CURRENT]]
    labels = {CURRENT: ctx.label(CURRENT), ctx.base: ctx.label(ctx.base) + f" ({t('base_short', ctx.lang)})"}
    grid = st.columns(2)
    for i, col in enumerate(cols):
        with grid[i % 2]:
            st.plotly_chart(line(ctx, col, df, labels), width="stretch", key=f"lev_{col}")
