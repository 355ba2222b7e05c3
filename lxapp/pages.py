"""The pages. Each ``page_<id>(ctx)`` draws one page from the context ``lxapp.ui.Ctx``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from lxapp import charts, core, lmdi
from lxapp.core import CURRENT
from lxapp.i18n import t
from lxapp.ui import widget_key

YEARS = (2025, 2030, 2035)
OVERVIEW_ROWS = ["gdp_nominal", "gdp_real", "_growth", "industry_share[primary]", "industry_share[secondary]",
                 "industry_share[tertiary]", "urbanization_rate", "population_resident", "energy_intensity",
                 "co2_intensity", "co2_emissions", "budget_revenue", "investment_total_nominal", "government_debt",
                 "forest_cover"]
DEFAULT_CHARTS = ["gdp_real", "urbanization_rate", "co2_emissions", "energy_intensity", "budget_revenue",
                  "gdp_nominal"]


is_fraction = core.is_fraction


def _at(series: pd.Series, year: float) -> float:
    x = series.index.to_numpy(dtype=float)
    if not (x[0] <= year <= x[-1]):
        return np.nan
    return float(np.interp(year, x, series.to_numpy()))


def _years(ctx) -> list[int]:
    ts = ctx.bundle.model.time
    return [y for y in YEARS if ts.start <= y <= ts.stop]


def _row_label(ctx, col: str) -> tuple[str, str]:
    if col == "_growth":
        return t("growth", ctx.lang), "%"
    return ctx.vlabel(col), core.unit_label(ctx.bundle, col, ctx.lang)


def _series(ctx, scenario: str, col: str) -> pd.Series | None:
    sub = ctx.df.xs(scenario, level="scenario")
    if col == "_growth":
        if "gdp_real" not in sub.columns:
            return None
        g = sub["gdp_real"]
        x = g.index.to_numpy(dtype=float)
        base = _at(g, 2020)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = np.where(x > 2020, 100 * ((g.to_numpy() / base) ** (1 / np.maximum(x - 2020, 1e-9)) - 1), np.nan)
        return pd.Series(vals, index=g.index)
    if col not in sub.columns:
        return None
    s = sub[col]
    return s * 100 if is_fraction(ctx.bundle, col) else s


def headline_table(ctx, scenario: str) -> pd.DataFrame:
    """The chosen scenario's headline figures, the difference from the reference, plan and actuals."""
    years = _years(ctx)
    targets = core.target_markers(ctx.bundle)
    actuals = ctx.bundle.actuals
    rows = []
    for col in OVERVIEW_ROWS:
        s = _series(ctx, scenario, col)
        if s is None:
            continue
        r = _series(ctx, ctx.reference, col)
        label, unit = _row_label(ctx, col)
        row = {t("indicator", ctx.lang): label, t("unit", ctx.lang): unit}
        for y in years:
            row[str(y)] = _at(s, y)
            row[f"Δ{y}"] = _at(s, y) - _at(r, y) if r is not None else np.nan
        scale = 100 if is_fraction(ctx.bundle, col) else 1
        tg = targets[targets["column"] == col] if len(targets) else targets
        target = float(tg["value"].iloc[0]) * scale if len(tg) else None
        if col == "_growth":
            tr = [x for x in ctx.bundle.targets if x.get("id", "").startswith("01")]
            if tr and tr[0].get("target_2025") is not None:
                target = float(tr[0]["target_2025"])
        row[t("plan_target", ctx.lang) + " 2025"] = f"{target:,.4g}" if target is not None else ""
        a = actuals[(actuals["column"] == col) & (actuals["kind"] == "actual")] if actuals is not None else []
        if len(a):
            last = a.sort_values("year").iloc[-1]
            row[t("actual", ctx.lang)] = f"{last['value'] * scale:,.4g} ({int(last['year'])})"
        else:
            row[t("actual", ctx.lang)] = ""
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ overview
def page_overview(ctx) -> None:
    st.header(t("overview", ctx.lang))
    w = widget_key("ov_scenario", ctx.lang, ctx.selected[0], lambda v: v if v in ctx.selected else ctx.selected[0])
    chosen = st.selectbox(t("scenario", ctx.lang), ctx.selected, key=w, format_func=ctx.label)
    st.session_state["ov_scenario"] = chosen
    st.caption(f"{t('reference', ctx.lang)}: {ctx.label(ctx.reference)}")
    years = _years(ctx)
    y0 = years[0] if years else int(ctx.bundle.model.time.stop)
    cols = st.columns(4)
    for c, col in zip(cols, ["gdp_nominal", "urbanization_rate", "co2_emissions", "budget_revenue"]):
        s, r = _series(ctx, chosen, col), _series(ctx, ctx.reference, col)
        if s is None:
            continue
        v, d = _at(s, y0), _at(s, y0) - _at(r, y0)
        unit = core.unit_label(ctx.bundle, col, ctx.lang)
        c.metric(f"{ctx.vlabel(col)} {y0} ({unit})", f"{v:,.2f}", f"{d:+,.2f}",
                 delta_color="inverse" if col.startswith("co2") else "normal")
    st.subheader(t("headline", ctx.lang))
    table = headline_table(ctx, chosen)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.2f") for c in table.columns
                                if c not in (t("indicator", ctx.lang), t("unit", ctx.lang), t("actual", ctx.lang),
                                             t("plan_target", ctx.lang) + " 2025")})
    st.caption("Δ = " + t("vs_ref", ctx.lang))


# ------------------------------------------------------------------ compare
def _column_options(ctx) -> list[str]:
    out = []
    for n in core.chart_variables(ctx.bundle):
        els = ctx.bundle.model.elements(n)
        out += [n] if els == [()] else [f"{n}[{','.join(e)}]" for e in els]
    out += [c for c in ctx.df.columns if c not in out]
    return out


def line(ctx, col: str):
    return charts.line_figure(ctx.bundle, ctx.df, col, ctx.lang, ctx.labels, bands=ctx.bands,
                              actuals=ctx.bundle.actuals, targets=core.target_markers(ctx.bundle))


def page_compare(ctx) -> None:
    st.header(t("compare", ctx.lang))
    options = _column_options(ctx)
    default = [c for c in DEFAULT_CHARTS if c in options][:4]
    w = widget_key("cmp_vars", ctx.lang, default, lambda v: [c for c in v if c in options])
    chosen = st.multiselect(t("variables", ctx.lang), options, key=w, format_func=ctx.vlabel)
    st.session_state["cmp_vars"] = list(chosen)
    if ctx.unc:
        st.caption(t("fan_note", ctx.lang))
    grid = st.columns(2)
    for i, col in enumerate(chosen):
        with grid[i % 2]:
            st.plotly_chart(line(ctx, col), width="stretch", key=f"cmp_{col}")
    st.subheader(t("structure", ctx.lang))
    three = st.toggle(t("three_sectors", ctx.lang), value=True, key="three")
    fig = charts.structure_figure(ctx.bundle, ctx.df, ctx.lang, ctx.labels, three)
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key="structure")
    lmdi_section(ctx)
    st.subheader(t("differences", ctx.lang))
    st.dataframe(differences(ctx, chosen or default), hide_index=True, width="stretch")


def lmdi_section(ctx) -> None:
    st.subheader(t("lmdi", ctx.lang))
    if not lmdi.available(ctx.df):
        st.info(t("missing_vars", ctx.lang) + " " + ", ".join(lmdi.COLUMNS.values()))
        return
    others = [s for s in ctx.selected if s != ctx.reference]
    if not others:
        st.info(t("need_two", ctx.lang))
        return
    c1, c2 = st.columns(2)
    w = widget_key("lmdi_alt", ctx.lang, others[0], lambda v: v if v in others else others[0])
    alt = c1.selectbox(t("scenario", ctx.lang), others, key=w, format_func=ctx.label)
    st.session_state["lmdi_alt"] = alt
    years = [int(y) for y in ctx.bundle.years()]
    year = c2.select_slider(t("lmdi_year", ctx.lang), years, value=2030 if 2030 in years else years[-1], key="lmdi_y")
    eff = lmdi.decompose_frame(ctx.df, ctx.reference, alt)
    row = eff.loc[float(year)]
    title = f"{ctx.label(alt)} − {ctx.label(ctx.reference)}, {year} ({core.unit_label(ctx.bundle, 'co2_emissions', ctx.lang)})"
    st.plotly_chart(charts.lmdi_figure(row.to_dict(), ctx.lang, title), width="stretch", key="lmdi")


def differences(ctx, cols: list[str]) -> pd.DataFrame:
    rows = []
    for col in cols:
        if col not in ctx.df.columns:
            continue
        r = _series(ctx, ctx.reference, col)
        for s in ctx.selected:
            if s == ctx.reference:
                continue
            v = _series(ctx, s, col)
            row = {t("indicator", ctx.lang): ctx.vlabel(col), t("scenario", ctx.lang): ctx.label(s)}
            for y in _years(ctx):
                a, b = _at(v, y), _at(r, y)
                row[f"Δ{y}"] = a - b
                row[f"Δ{y} %"] = 100 * (a - b) / b if b else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ levers
def page_levers(ctx) -> None:
    st.header(t("levers", ctx.lang))
    b = ctx.bundle
    if ctx.unc:
        st.caption(t("fan_note", ctx.lang))
    cols = [c for c in ("gdp_real", "co2_emissions", "urbanization_rate", "budget_revenue") if c in ctx.df.columns]
    sub = ctx.df.loc[[s for s in ctx.selected if s in (CURRENT, ctx.base)] or ctx.selected[:1]]
    labels = ctx.labels | {ctx.base: ctx.label(ctx.base)}
    grid = st.columns(2)
    for i, col in enumerate(cols):
        fig = charts.line_figure(b, sub, col, ctx.lang, labels, bands=ctx.bands, actuals=b.actuals,
                                 targets=core.target_markers(b))
        with grid[i % 2]:
            st.plotly_chart(fig, width="stretch", key=f"lev_{col}")
    st.subheader(t("lever_doc", ctx.lang))
    st.dataframe(lever_table(ctx), hide_index=True, width="stretch")


def lever_table(ctx) -> pd.DataFrame:
    rows = []
    for lv in core.levers(ctx.bundle, st.session_state.get("more", [])):
        v = ctx.bundle.variables[lv.name]
        rows.append({t("indicator", ctx.lang): core.var_label(ctx.bundle, lv.name, ctx.lang), "name": lv.name,
                     t("value", ctx.lang): ctx.lever_values.get(lv.name),
                     "range": f"{lv.low:g} – {lv.high:g}" + (" ×" if lv.kind == "multiplier" else ""),
                     t("unit", ctx.lang): v.unit or "", t("doc", ctx.lang): v.doc or "",
                     t("source", ctx.lang): v.source or ""})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ scorecard
def page_scorecard(ctx) -> None:
    from lxapp import scoring
    st.header(t("scorecard", ctx.lang))
    try:
        table = scoring.scorecard_table(ctx.bundle, ctx.df.loc[ctx.selected])
    except Exception as exc:  # noqa: BLE001 - the scorecard or targets are not there yet
        st.info(t("no_scorecard", ctx.lang) + f" {exc}")
        return
    if ctx.prob is not None and len(ctx.prob) and "id" in table.columns:
        p = ctx.prob.set_index("id")["p_met"]
        cur = table["scenario"] == CURRENT
        table[t("probability", ctx.lang)] = np.where(cur, table["id"].map(p), np.nan)
        st.caption(t("probability_note", ctx.lang))
    show = table.copy()
    if "scenario" in show.columns:
        show["scenario"] = show["scenario"].map(ctx.label)
    name_col = "name_zh" if ctx.lang == "zh" else "name_en"
    drop = [c for c in ("name_en" if ctx.lang == "zh" else "name_zh",) if c in show.columns]
    show = show.drop(columns=drop)
    if "met" in show.columns:
        show["met"] = show["met"].map({True: "✔ " + t("met", ctx.lang), False: "✘ " + t("missed", ctx.lang)})

    def colour(row):
        ok = table.loc[row.name, "met"] if "met" in table.columns else None
        c = "background-color: #d5f5e3" if ok is True else ("background-color: #fadbd8" if ok is False else "")
        return [c] * len(row)

    styled = show.style.apply(colour, axis=1).format(precision=2, na_rep="")
    st.dataframe(styled, hide_index=True, width="stretch",
                 column_config={name_col: st.column_config.TextColumn(t("indicator", ctx.lang))})
    if "met" in table.columns:
        summary = table.groupby("scenario")["met"].agg(lambda s: f"{int((s == True).sum())}/{int(s.notna().sum())}")  # noqa: E712
        st.write({ctx.label(k): v for k, v in summary.items()})


# ------------------------------------------------------------------ calibration
def page_calibration(ctx) -> None:
    st.header(t("calibration", ctx.lang))
    b = ctx.bundle
    opts = ctx.selected
    default = "actual_trend" if "actual_trend" in opts else opts[0]
    w = widget_key("cal_sc", ctx.lang, default, lambda v: v if v in opts else default)
    sc = st.selectbox(t("calib_scenario", ctx.lang), opts, key=w, format_func=ctx.label)
    st.session_state["cal_sc"] = sc
    run = ctx.df.xs(sc, level="scenario")
    table = core.fit_table(b, run)
    if table.empty:
        st.info(t("no_actuals", ctx.lang))
        return
    stats = core.fit_statistics(table)
    st.subheader(t("fit", ctx.lang))
    c = st.columns(4)
    c[0].metric("MAPE", f"{stats['mape_pct']:.2f} %")
    c[1].metric("Bias", f"{stats['bias_pct']:+.2f} %")
    c[2].metric("Max |error|", f"{stats['max_abs_pct']:.2f} %")
    c[3].metric("≤ 3 %", f"{100 * stats['within_3pct']:.0f} %  (n={stats['n']})")
    show = table.copy()
    show.insert(0, t("indicator", ctx.lang), [ctx.vlabel(c) for c in show["column"]])
    st.dataframe(show, hide_index=True, width="stretch",
                 column_config={"error_pct": st.column_config.NumberColumn(format="%.2f")})
    st.plotly_chart(charts.fit_figure(table, ctx.lang), width="stretch", key="fit")
    grid = st.columns(2)
    sub = ctx.df.loc[[sc]]
    for i, col in enumerate(dict.fromkeys(table["column"])):
        if col in ctx.df.columns:
            with grid[i % 2]:
                st.plotly_chart(charts.line_figure(b, sub, col, ctx.lang, {sc: ctx.label(sc)}, actuals=b.actuals),
                                width="stretch", key=f"cal_{col}")


# ------------------------------------------------------------------ model
def page_model(ctx) -> None:
    from lxapp import diagram
    st.header(t("model", ctx.lang))
    b = ctx.bundle
    m = b.model.model
    st.markdown(f"**{(m.label_zh if ctx.lang == 'zh' else m.label_en) or m.name}** — {m.doc or ''}")
    query = st.text_input(t("search", ctx.lang), key="model_q")
    table = diagram.variable_table(b, ctx.lang)
    if query:
        mask = table.apply(lambda r: r.astype(str).str.contains(query, case=False, regex=False).any(), axis=1)
        table = table[mask]
    st.dataframe(table, hide_index=True, width="stretch", height=320)
    st.subheader(t("diagram", ctx.lang))
    names = [n for n, v in m.variables.items() if v.kind not in ("lookup",)]
    hit = table["name"].tolist()[:1] if query and len(table) else []
    focus = st.selectbox(t("focus", ctx.lang), ["—"] + names, index=(names.index(hit[0]) + 1) if hit else 0,
                         key="model_focus")
    dot = diagram.dot(b, ctx.lang, None if focus == "—" else focus)
    st.graphviz_chart(dot, width="stretch")
    st.subheader(t("loops", ctx.lang))
    loops = diagram.feedback_loops(b)
    polarity = {1: t("loop_r", ctx.lang), -1: t("loop_b", ctx.lang), 0: t("loop_unknown", ctx.lang)}
    st.dataframe(pd.DataFrame({"#": range(1, len(loops) + 1),
                               t("loop_polarity", ctx.lang): [polarity[lp.polarity] for lp in loops],
                               "loop": [" → ".join(core.var_label(b, n, ctx.lang)
                                                   for n in list(lp.variables) + [lp.variables[0]])
                                        for lp in loops],
                               "length": [len(lp.variables) for lp in loops]}), hide_index=True, width="stretch")


# ------------------------------------------------------------------ library
def page_library(ctx) -> None:
    from lxapp import libpage
    libpage.render(ctx)


# ------------------------------------------------------------------ export
def page_export(ctx) -> None:
    from lxapp import report
    st.header(t("export", ctx.lang))
    st.info(t("share_link", ctx.lang))
    qs = "&".join(f"{k}={v}" for k, v in st.query_params.to_dict().items())
    st.code("?" + qs, language=None)
    df = ctx.df.loc[ctx.selected]
    c1, c2, c3 = st.columns(3)
    c1.download_button(t("download_csv", ctx.lang), report.results_csv(df), "linxiang_results.csv", "text/csv")
    score = _scorecard_or_none(ctx)
    c2.download_button(t("download_xlsx", ctx.lang),
                       report.results_excel(df, {"scorecard": score, "levers": lever_table(ctx)}),
                       "linxiang_results.xlsx",
                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    c3.download_button(t("download_html", ctx.lang), build_report(ctx, score).encode("utf-8"),
                       "linxiang_report.html", "text/html")


def _scorecard_or_none(ctx):
    from lxapp import scoring
    try:
        return scoring.scorecard_table(ctx.bundle, ctx.df.loc[ctx.selected])
    except Exception:  # noqa: BLE001
        return None


def build_report(ctx, score=None) -> str:
    from lxapp import report
    figs = [line(ctx, c) for c in DEFAULT_CHARTS[:4] if c in ctx.df.columns]
    figs.append(charts.structure_figure(ctx.bundle, ctx.df.loc[ctx.selected], ctx.lang, ctx.labels))
    others = [s for s in ctx.selected if s != ctx.reference]
    lm = None
    if others and lmdi.available(ctx.df):
        eff = lmdi.decompose_frame(ctx.df, ctx.reference, others[0])
        y = 2030.0 if 2030.0 in eff.index else float(eff.index[-1])
        figs.append(charts.lmdi_figure(eff.loc[y].to_dict(), ctx.lang,
                                       f"{t('lmdi', ctx.lang)}: {ctx.label(others[0])} − {ctx.label(ctx.reference)}, {int(y)}"))
        lm = eff.reset_index()
    tables = [(t("headline", ctx.lang) + f" — {ctx.label(s)}", headline_table(ctx, s)) for s in ctx.selected[:5]]
    tables.append((t("scorecard", ctx.lang), score))
    tables.append((t("differences", ctx.lang), differences(ctx, DEFAULT_CHARTS)))
    if lm is not None:
        tables.append((t("lmdi", ctx.lang), lm))
    notes = [ctx.bundle.load_error and (t("demo_warning", ctx.lang) + " " + ctx.bundle.load_error[:300]) or "",
             f"{t('reference', ctx.lang)}: {ctx.label(ctx.reference)}; {t('base', ctx.lang)}: {ctx.label(ctx.base)}"]
    return report.html_report(t("report_title", ctx.lang), ctx.lang, [ctx.label(s) for s in ctx.selected],
                              lever_table(ctx), tables, figs, [n for n in notes if n])
