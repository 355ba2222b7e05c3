"""Downloads: results as CSV and Excel, and a one-page HTML report of the comparison."""
from __future__ import annotations

import datetime as _dt
import html
import io

import pandas as pd

from lxapp import CJK_FONT
from lxapp.i18n import t


def labelled_results(bundle, df: pd.DataFrame, lang: str, label) -> pd.DataFrame:
    """Results with people's headers: "label (unit) [name]" per column, percentages for
    fractions, scenario labels and whole years; the internal name stays in brackets so a
    column can be traced back to the model."""
    from lxapp import core

    out = df.copy()
    cols = {}
    for c in out.columns:
        if core.is_fraction(bundle, c):
            out[c] = out[c] * 100
        unit = core.unit_label(bundle, c, lang)
        vl = core.var_label(bundle, c, lang)
        cols[c] = f"{vl} ({unit}) [{c}]" if unit else f"{vl} [{c}]"
    out = out.rename(columns=cols).reset_index()
    out["scenario"] = out["scenario"].map(label)
    out["time"] = out["time"].round().astype(int) if (out["time"] % 1 == 0).all() else out["time"]
    return out.rename(columns={"scenario": t("scenario", lang), "time": t("year", lang)})


def headline_sheet(ctx, df: pd.DataFrame) -> pd.DataFrame:
    """The headline variables per scenario in the plan years (2020, 2025, 2030, 2035), labelled."""
    from lxapp import core

    years = [y for y in (2020, 2025, 2030, 2035) if y in set(df.index.get_level_values("time").astype(float))]
    cols = [c for c in core.headline(ctx.bundle) if c in df.columns] + \
        [c for c in df.columns if "[" in c and c.split("[")[0] == "industry_share" and
         c.split("[")[1].rstrip("]") in ctx.bundle.model.model.subranges]
    rows = []
    for sc in dict.fromkeys(df.index.get_level_values("scenario")):
        sub = df.xs(sc, level="scenario")
        for c in cols:
            scale = 100 if core.is_fraction(ctx.bundle, c) else 1
            row = {t("scenario", ctx.lang): ctx.label(sc), t("indicator", ctx.lang): ctx.vlabel(c),
                   t("unit", ctx.lang): core.unit_label(ctx.bundle, c, ctx.lang), "name": c}
            for y in years:
                row[str(y)] = float(sub.loc[float(y), c]) * scale
            rows.append(row)
    return pd.DataFrame(rows)


def results_csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8-sig")   # BOM: Excel reads Chinese


def results_excel(df: pd.DataFrame, sheets: dict[str, pd.DataFrame] | None = None,
                  results_name: str = "results") -> bytes:
    """The workbook: the given sheets in order (the headline sheet first), then all results."""
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xw:
        for name, extra in (sheets or {}).items():
            if extra is not None and len(extra):
                extra.to_excel(xw, sheet_name=_sheet(name), index=False)
        df.to_excel(xw, sheet_name=_sheet(results_name), index=False)
    return buf.getvalue()


def _sheet(name: str) -> str:
    return "".join(ch for ch in name if ch not in "[]:*?/\\")[:31] or "sheet"


def html_report(title: str, lang: str, scenarios: list[str], levers: pd.DataFrame | None,
                tables: list[tuple[str, pd.DataFrame]], figures: list, notes: list[str] | None = None) -> str:
    """A self-contained page: plotly.js embedded once, every figure interactive; Chinese in a
    named CJK font family."""
    parts = [f"""<!DOCTYPE html><html lang="{'zh-CN' if lang == 'zh' else 'en'}"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: {CJK_FONT}; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 1.4em; }}
.met {{ background: #d5f5e3; }} .missed {{ background: #fadbd8; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{t('generated', lang)}: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} &nbsp;·&nbsp;
{t('scenarios', lang)}: {html.escape('、'.join(scenarios) if lang == 'zh' else ', '.join(scenarios))}</p>"""]
    for note in notes or []:
        parts.append(f"<p><em>{html.escape(note)}</em></p>")
    if levers is not None and len(levers):
        parts.append(f"<h2>{t('lever_settings', lang)}</h2>" + levers.to_html(index=False, float_format=_fmt))
    first = True
    for fig in figures:
        if fig is None:
            continue
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first,
                                 config={"displaylogo": False}))
        first = False
    for heading, table in tables:
        if table is None or not len(table):
            continue
        parts.append(f"<h2>{html.escape(heading)}</h2>" + _plain(table).to_html(index=False, float_format=_fmt,
                                                                                na_rep="", escape=True))
    parts.append("</body></html>")
    return "\n".join(parts)


def _plain(table: pd.DataFrame) -> pd.DataFrame:
    """Years as plain whole numbers (2026, not "2,026"): a column named like a year or holding
    whole years is written as integers."""
    out = table.copy()
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_float_dtype(col) and str(c).lower() in ("time", "year", "年份", "年") \
                and col.dropna().mod(1).eq(0).all():
            out[c] = col.astype("Int64").astype(str)
    return out


def _fmt(x: float) -> str:
    """Thousands separators, no exponent for everyday sizes (18,000 not 1.8e+04)."""
    if x != x:
        return ""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 0.001 or x == 0:
        return f"{x:,.4g}"
    return f"{x:.3e}"
