"""The pages. Each ``page_<id>(ctx)`` draws one page from the context ``lxapp.ui.Ctx``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from lxapp import charts, core, lmdi
from lxapp.core import CURRENT
from lxapp.i18n import t
from lxapp.leverpage import page_levers  # noqa: F401 - the lever screen is a page too
from lxapp.ui import bind, chart_options, default_charts

YEARS = (2025, 2030, 2035)
is_fraction = core.is_fraction


def _at(series: pd.Series, year: float) -> float:
    x = series.index.to_numpy(dtype=float)
    if not (x[0] <= year <= x[-1]):
        return np.nan
    return float(np.interp(year, x, series.to_numpy()))


def _years(ctx) -> list[int]:
    ts = ctx.bundle.model.time
    return [y for y in YEARS if ts.start <= y <= ts.stop]


def history_end(bundle) -> float | None:
    """The last year with a published actual: the end of history on the charts (once per bundle)."""
    if "_history_end" not in bundle.__dict__:
        bundle.__dict__["_history_end"] = _history_end(bundle)
    return bundle.__dict__["_history_end"]


def _history_end(bundle) -> float | None:
    a = bundle.actuals
    if a is None or not len(a):
        return None
    a = a[a["kind"] == "actual"]
    return float(a["year"].max()) if len(a) else None


def fmt(x: float, digits: int = 4) -> str:
    """A number as people read it: thousands separators, no exponent for everyday sizes."""
    if x is None or not np.isfinite(x):
        return ""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _row_label(ctx, col: str) -> tuple[str, str]:
    if col == "_growth":
        return t("growth", ctx.lang), "%"
    return ctx.vlabel(col), core.unit_label(ctx.bundle, col, ctx.lang)


def _series(ctx, scenario: str, col: str) -> pd.Series | None:
    if scenario not in ctx.df.index.get_level_values("scenario"):
        return None
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


def overview_rows(ctx) -> list[str]:
    """The headline variables as table rows: scalars as they are, subscripted ones by their subranges."""
    rows = []
    m = ctx.bundle.model.model
    for h in core.headline(ctx.bundle):
        var = m.variables[h]
        if not var.dims:
            rows.append(h)
            if h == "gdp_real":
                rows.append("_growth")
            continue
        subs = [s for s, (p, _e) in m.subranges.items() if p == var.dims[0] and f"{h}[{s}]" in ctx.df.columns]
        if h == "industry_share":
            rows += [f"{h}[{s}]" for s in subs]
    return rows


def headline_table(ctx, scenario: str) -> pd.DataFrame:
    """The chosen scenario's headline figures, the difference from the reference, plan and actuals."""
    years = _years(ctx)
    targets = core.target_markers(ctx.bundle)
    actuals = ctx.bundle.actuals
    rows = []
    for col in overview_rows(ctx):
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
            tr = [x for x in ctx.bundle.targets if x.get("expression") == "gdp_real" and x.get("measure") == "cagr_pct"]
            if tr and tr[0].get("target_2025") is not None:
                target = float(tr[0]["target_2025"])
        row[t("plan_target", ctx.lang) + " 2025"] = fmt(target) if target is not None else ""
        a = actuals[(actuals["column"] == col) & (actuals["kind"] == "actual")] if actuals is not None else []
        if len(a):
            last = a.sort_values("year").iloc[-1]
            row[t("actual", ctx.lang)] = f"{fmt(last['value'] * scale)} ({int(last['year'])})"
        else:
            row[t("actual", ctx.lang)] = ""
        rows.append(row)
    return pd.DataFrame(rows)


def _number_columns(table: pd.DataFrame, text: list[str]) -> dict:
    return {c: st.column_config.NumberColumn(format="localized") for c in table.columns if c not in text}


# ------------------------------------------------------------------ overview
def page_overview(ctx) -> None:
    st.header(t("overview", ctx.lang))
    chosen = st.selectbox(t("scenario", ctx.lang), ctx.selected, format_func=ctx.label,
                          **bind("ov_sc", ctx.lang, lambda v: v if v in ctx.selected else ctx.selected[0]))
    st.caption(f"Δ = {ctx.label(chosen)} − {ctx.label(ctx.reference)} ({t('reference', ctx.lang)})")
    years = _years(ctx)
    y0 = years[0] if years else int(ctx.bundle.model.time.stop)
    cards = [c for c in ctx.bundle.presentation.get("cards", []) if c in ctx.df.columns]
    cols = st.columns(max(len(cards), 1))
    for c, col in zip(cols, cards, strict=False):
        s, r = _series(ctx, chosen, col), _series(ctx, ctx.reference, col)
        v, d = _at(s, y0), _at(s, y0) - _at(r, y0)
        unit = core.unit_label(ctx.bundle, col, ctx.lang)
        zero = abs(d) < 1e-9 * max(1.0, abs(v))
        c.metric(f"{ctx.vlabel(col)} {y0} ({unit})", fmt(v), "±0" if zero else f"{d:+,.3g}",
                 delta_color="off" if zero else ("inverse" if col.startswith("co2") else "normal"))
    st.subheader(t("headline", ctx.lang))
    table = headline_table(ctx, chosen)
    text = [t("indicator", ctx.lang), t("unit", ctx.lang), t("actual", ctx.lang), t("plan_target", ctx.lang) + " 2025"]
    st.dataframe(table, hide_index=True, width="stretch", column_config=_number_columns(table, text))


# ------------------------------------------------------------------ compare
def line(ctx, col: str, df: pd.DataFrame | None = None, labels: dict | None = None, fast: bool = True):
    """A chart of one column with the plan's path, actuals, history and, where both are drawn,
    the base dashed under the current settings (``fast``: a ``charts.Prebuilt`` for st.plotly_chart)."""
    df = ctx.df.loc[list(dict.fromkeys(ctx.selected))] if df is None else df
    run = ctx.df.xs(ctx.base, level="scenario")
    shown = set(df.index.get_level_values("scenario"))
    dashed = (ctx.base,) if CURRENT in shown and ctx.base in shown else ()
    spec = charts.line_spec(ctx.bundle, df, col, ctx.lang, labels or ctx.labels, bands=ctx.bands,
                            actuals=ctx.bundle.actuals, targets=core.target_markers(ctx.bundle),
                            plan=core.plan_paths(ctx.bundle, run).get(col), dashed=dashed,
                            history_end=history_end(ctx.bundle))
    return charts.Prebuilt(spec) if fast else charts.go.Figure(spec)


def page_compare(ctx) -> None:
    st.header(t("compare", ctx.lang))
    options = chart_options(ctx.bundle)
    if st.session_state.get("ch") is None:
        st.session_state["ch"] = default_charts(ctx.bundle, options)
    chosen = st.multiselect(t("variables", ctx.lang), options, format_func=ctx.vlabel,
                            max_selections=core.MAX_CHARTS, select_all=False, placeholder=t("choose", ctx.lang),
                            help=t("max_charts", ctx.lang).format(n=core.MAX_CHARTS),
                            **bind("ch", ctx.lang, lambda v: [c for c in (v or []) if c in options][:core.MAX_CHARTS]))
    st.caption(t("max_charts", ctx.lang).format(n=core.MAX_CHARTS) + " · " + t("chart_legend", ctx.lang))
    if ctx.unc:
        st.caption(t("fan_note", ctx.lang) + f" ({t('ensemble_' + (ctx.ensemble_kind or 'prior'), ctx.lang)})")
    grid = st.columns(2)
    for i, col in enumerate(dict.fromkeys(chosen)):
        if col in ctx.df.columns:
            with grid[i % 2]:
                st.plotly_chart(line(ctx, col), width="stretch", key=f"cmp_{i}_{col}")
    st.subheader(t("structure", ctx.lang))
    if st.session_state.get("grp") not in (3, 7):
        st.session_state["grp"] = 3
    grp = st.radio(t("grouping", ctx.lang), [3, 7], horizontal=True,
                   format_func=lambda g: t("three_sectors" if g == 3 else "all_sectors", ctx.lang),
                   **bind("grp", ctx.lang, lambda v: v if v in (3, 7) else 3))
    fig = charts.structure_figure(ctx.bundle, ctx.df.loc[ctx.selected], ctx.lang, ctx.labels, grp == 3)
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key="structure")
    lmdi_section(ctx)
    st.subheader(t("differences", ctx.lang))
    st.dataframe(differences(ctx, list(chosen) or default_charts(ctx.bundle, options)), hide_index=True,
                 width="stretch")


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
    alt = c1.selectbox(t("scenario", ctx.lang), others, format_func=ctx.label,
                       **bind("lmdi_alt", ctx.lang, lambda v: v if v in others else others[0]))
    years = [int(y) for y in ctx.bundle.years()]
    default = 2030 if 2030 in years else years[-1]
    year = c2.select_slider(t("lmdi_year", ctx.lang), years,
                            **bind("ly", ctx.lang, lambda v: v if v in years else default))
    eff = lmdi.decompose_frame(ctx.df, ctx.reference, alt)
    row = eff.loc[float(year)]
    unit = core.unit_label(ctx.bundle, "co2_emissions", ctx.lang)
    title = f"{ctx.label(alt)} − {ctx.label(ctx.reference)}, {year} ({unit})"
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
            row = {t("indicator", ctx.lang): ctx.vlabel(col),
                   t("unit", ctx.lang): core.unit_label(ctx.bundle, col, ctx.lang),
                   t("scenario", ctx.lang): ctx.label(s)}
            for y in _years(ctx):
                a, b = _at(v, y), _at(r, y)
                row[f"Δ{y}"] = a - b
                row[f"Δ{y} %"] = 100 * (a - b) / b if b else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def lever_table(ctx) -> pd.DataFrame:
    rows = []
    values = ctx.lever_values
    for lv in core.levers(ctx.bundle, st.session_state.get("more", []), ctx.base):
        v = ctx.bundle.variables[lv.name]
        unit = "× " + t("times_default", ctx.lang) if lv.kind == "multiplier" else \
            core.translate_unit(v.unit or "", ctx.lang)
        rows.append({t("indicator", ctx.lang): core.var_label(ctx.bundle, lv.name, ctx.lang), "name": lv.name,
                     t("value", ctx.lang): (f"{values[lv.name]:.0f}" if lv.kind == "year" else f"{values[lv.name]:g}")
                     if lv.name in values else "",
                     t("moved", ctx.lang): "✔" if lv.name in ctx.moved else "",
                     t("range", ctx.lang): f"{lv.low:g} – {lv.high:g}",
                     t("unit", ctx.lang): unit, t("doc", ctx.lang): v.doc or "",
                     t("source", ctx.lang): v.source or ""})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ scorecard
def page_scorecard(ctx) -> None:
    from lxapp import scoring
    st.header(t("scorecard", ctx.lang))
    try:
        long = scoring.scorecard_table(ctx.bundle, ctx.df.loc[ctx.selected])
    except Exception as exc:  # noqa: BLE001 - no targets file, or one with errors: say which
        st.info(t("no_scorecard", ctx.lang) + f" {str(exc)[:500]}")
        return
    matrix, status = scoring.matrix(long, ctx.selected, ctx.reference, ctx.lang, ctx.label, ctx.prob)
    st.caption(t("score_legend", ctx.lang))
    if ctx.prob is not None and len(ctx.prob):
        kind = t("ensemble_" + (ctx.ensemble_kind or "prior"), ctx.lang)
        st.caption(t("probability_note", ctx.lang) + f" ({kind})")

    def colour(row):
        out = []
        for c in row.index:
            s = status.loc[row.name, c] if c in status.columns else ""
            out.append({"met": "background-color: #d5f5e3", "missed": "background-color: #fadbd8",
                        "changed_met": "background-color: #abebc6; font-weight: bold",
                        "changed_missed": "background-color: #f5b7b1; font-weight: bold"}.get(s, ""))
        return out

    st.dataframe(matrix.style.apply(colour, axis=1), hide_index=True, width="stretch",
                 height=min(38 * (len(matrix) + 1), 900))
    summary = scoring.summary(long, ctx.selected, ctx.lang, ctx.label)
    st.subheader(t("score_summary", ctx.lang))
    st.dataframe(summary, hide_index=True)


# ------------------------------------------------------------------ calibration
def page_calibration(ctx) -> None:
    st.header(t("calibration", ctx.lang))
    b = ctx.bundle
    opts = ctx.selected
    default = "actual_trend" if "actual_trend" in opts else opts[0]
    sc = st.selectbox(t("calib_scenario", ctx.lang), opts, format_func=ctx.label,
                      **bind("cal_sc", ctx.lang, lambda v: v if v in opts else default))
    uploaded = upload_actuals(ctx)
    actuals = uploaded if uploaded is not None else b.actuals
    run = ctx.df.xs(sc, level="scenario")
    table = core.fit_table(b, run, actuals)
    if table.empty:
        st.info(t("no_actuals", ctx.lang))
        return
    stats = core.fit_statistics(table)
    st.subheader(t("fit", ctx.lang))
    c = st.columns(5)
    c[0].metric("MAPE", f"{stats['mape']:.2f} %")
    c[1].metric(t("bias", ctx.lang), f"{stats['bias_pct']:+.2f} %")
    c[2].metric(t("max_error", ctx.lang), f"{stats['max_abs_pct']:.2f} %")
    c[3].metric("≤ 3 %", f"{100 * stats['within_3pct']:.0f} %  (n={stats['n']})")
    c[4].metric("Theil U_M / U_S / U_C", f"{stats['u_m']:.2f} / {stats['u_s']:.2f} / {stats['u_c']:.2f}")
    st.caption(t("fit_note", ctx.lang))
    show = pd.DataFrame({t("indicator", ctx.lang): [ctx.vlabel(c) for c in table["column"]],
                         t("unit", ctx.lang): [core.unit_label(b, c, ctx.lang) for c in table["column"]],
                         t("year", ctx.lang): table["year"].astype(str),
                         t("kind", ctx.lang): [t("actual", ctx.lang) if k == "actual" else t("plan_2020", ctx.lang)
                                               for k in table["kind"]],
                         t("actual", ctx.lang): [v * (100 if is_fraction(b, c) else 1)
                                                 for v, c in zip(table["actual"], table["column"], strict=True)],
                         t("model_value", ctx.lang): [v * (100 if is_fraction(b, c) else 1)
                                                      for v, c in zip(table["model"], table["column"], strict=True)],
                         t("error_pct", ctx.lang): table["error_pct"]})
    st.dataframe(show, hide_index=True, width="stretch",
                 column_config=_number_columns(show, [t("indicator", ctx.lang), t("unit", ctx.lang),
                                                      t("year", ctx.lang), t("kind", ctx.lang)]))
    st.plotly_chart(charts.fit_figure(table, ctx.lang), width="stretch", key="fit")
    grid = st.columns(2)
    sub = ctx.df.loc[[sc]]
    for i, col in enumerate(list(dict.fromkeys(table["column"]))[:core.MAX_CHARTS]):
        if col in ctx.df.columns:
            with grid[i % 2]:
                st.plotly_chart(charts.line_figure(b, sub, col, ctx.lang, {sc: ctx.label(sc)}, actuals=actuals,
                                                   history_end=history_end(b)),
                                width="stretch", key=f"cal_{i}_{col}")


def upload_actuals(ctx) -> pd.DataFrame | None:
    """An upload of actuals in data/'s long format (CSV or XLSX), validated; None when there is none."""
    from lxapp import uploads
    with st.expander(t("upload_actuals", ctx.lang)):
        st.caption(t("upload_actuals_help", ctx.lang).format(
            cols=", ".join(core.ACTUAL_COLUMNS), mb=uploads.MAX_BYTES // 1_000_000, rows=uploads.MAX_ROWS))
        up = st.file_uploader(t("upload_actuals", ctx.lang), type=["csv", "xlsx"], key="actuals_upload",
                              label_visibility="collapsed")
        if up is None:
            return None
        try:
            frame = uploads.read_actuals(ctx.bundle, up.name, up.getvalue())
        except uploads.UploadError as exc:
            st.error(t("upload_bad", ctx.lang) + f" {exc}")
            return None
        st.success(t("actuals_ok", ctx.lang).format(n=len(frame), name=up.name))
        plan = ctx.bundle.actuals
        plan = plan[plan["kind"] != "actual"] if plan is not None else None
        return pd.concat([frame, plan], ignore_index=True) if plan is not None and len(plan) else frame


# ------------------------------------------------------------------ model
def page_model(ctx) -> None:
    from lxapp import diagram
    st.header(t("model", ctx.lang))
    b = ctx.bundle
    m = b.model.model
    st.markdown(f"**{(m.label_zh if ctx.lang == 'zh' else m.label_en) or m.name}** — {m.doc or ''}")
    query = st.text_input(t("search", ctx.lang), key="model_q", max_chars=80)
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
                               t("loop_polarity", ctx.lang): [polarity.get(lp.polarity, "?") for lp in loops],
                               t("loop", ctx.lang): [" → ".join(core.var_label(b, n, ctx.lang)
                                                               for n in list(lp.variables) + [lp.variables[0]])
                                                     for lp in loops],
                               t("length", ctx.lang): [len(lp.variables) for lp in loops]}),
                 hide_index=True, width="stretch")


# ------------------------------------------------------------------ library
def page_library(ctx) -> None:
    from lxapp import libpage
    libpage.render(ctx)


# ------------------------------------------------------------------ export
def page_export(ctx) -> None:
    from lxapp import report
    from lxapp.ui import current_view, state
    st.header(t("export", ctx.lang))
    st.info(t("share_link", ctx.lang))
    from urllib.parse import urlencode
    try:
        base = st.context.url or "http://localhost:8501/"
    except Exception:  # noqa: BLE001
        base = "http://localhost:8501/"
    view = current_view(ctx) | {"page": st.session_state.get("_view_page", "overview")}
    st.caption(t("share_page", ctx.lang).format(page=t(view["page"], ctx.lang)))
    st.code(base + "?" + urlencode(state.encode(view)), language=None, wrap_lines=True)
    df = ctx.df.loc[ctx.selected]
    levers = lever_table(ctx)       # here: the files are built later, in a thread without the session

    def labelled():
        return report.labelled_results(ctx.bundle, df, ctx.lang, ctx.label)

    def excel() -> bytes:
        sheets = {t("headline", ctx.lang): report.headline_sheet(ctx, df),
                  t("scorecard", ctx.lang): _scorecard_or_none(ctx), t("lever_settings", ctx.lang): levers}
        return report.results_excel(labelled(), sheets, results_name=t("results", ctx.lang))

    c1, c2, c3 = st.columns(3)
    # the files are built only when someone clicks (the HTML report embeds plotly.js, ~4 MB)
    c1.download_button(t("download_csv", ctx.lang), lambda: report.results_csv(labelled()), "linxiang_results.csv",
                       "text/csv")
    c2.download_button(t("download_xlsx", ctx.lang), excel, "linxiang_results.xlsx",
                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    c3.download_button(t("download_html", ctx.lang),
                       lambda: build_report(ctx, _scorecard_or_none(ctx), levers).encode("utf-8"),
                       "linxiang_report.html", "text/html")


def _scorecard_or_none(ctx):
    from lxapp import scoring
    try:
        long = scoring.scorecard_table(ctx.bundle, ctx.df.loc[ctx.selected])
        return scoring.matrix(long, ctx.selected, ctx.reference, ctx.lang, ctx.label, ctx.prob)[0]
    except Exception:  # noqa: BLE001 - no targets: the export goes without a scorecard
        return None


def build_report(ctx, score=None, levers=None) -> str:
    from lxapp import report
    cols = default_charts(ctx.bundle, ctx.df.columns)
    figs = [line(ctx, c, fast=False) for c in cols]
    figs.append(charts.structure_figure(ctx.bundle, ctx.df.loc[ctx.selected], ctx.lang, ctx.labels))
    others = [s for s in ctx.selected if s != ctx.reference]
    lm = None
    if others and lmdi.available(ctx.df):
        eff = lmdi.decompose_frame(ctx.df, ctx.reference, others[0])
        y = 2030.0 if 2030.0 in eff.index else float(eff.index[-1])
        title = f"{t('lmdi', ctx.lang)}: {ctx.label(others[0])} − {ctx.label(ctx.reference)}, {int(y)}"
        figs.append(charts.lmdi_figure(eff.loc[y].to_dict(), ctx.lang, title))
        lm = eff.reset_index()
        lm["time"] = lm["time"].astype(int)
        lm = lm.rename(columns={"time": t("year", ctx.lang)} | {f: t(f, ctx.lang) for f in lmdi.FACTORS}
                       | {"total": t("total", ctx.lang)})
    tables = [(t("headline", ctx.lang) + f" — {ctx.label(s)}", headline_table(ctx, s)) for s in ctx.selected[:5]]
    tables.append((t("scorecard", ctx.lang), score))
    tables.append((t("differences", ctx.lang), differences(ctx, cols)))
    if lm is not None:
        tables.append((t("lmdi", ctx.lang), lm))
    notes = [ctx.bundle.load_error and (t("demo_warning", ctx.lang) + " " + ctx.bundle.load_error[:300]) or "",
             f"{t('reference', ctx.lang)}: {ctx.label(ctx.reference)}; {t('base', ctx.lang)}: {ctx.label(ctx.base)}"]
    return report.html_report(t("report_title", ctx.lang), ctx.lang, [ctx.label(s) for s in ctx.selected],
                              lever_table(ctx) if levers is None else levers, tables, figs, [n for n in notes if n])
