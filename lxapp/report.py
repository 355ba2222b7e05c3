"""Downloads: results as CSV and Excel, and a one-page HTML report of the comparison."""
from __future__ import annotations

import datetime as _dt
import html
import io

import pandas as pd

from lxapp import CJK_FONT
from lxapp.i18n import t


def results_csv(df: pd.DataFrame) -> bytes:
    return df.reset_index().to_csv(index=False).encode("utf-8-sig")   # BOM: Excel reads Chinese


def results_excel(df: pd.DataFrame, sheets: dict[str, pd.DataFrame] | None = None) -> bytes:
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xw:
        df.reset_index().to_excel(xw, sheet_name="results", index=False)
        for name, extra in (sheets or {}).items():
            if extra is not None and len(extra):
                extra.to_excel(xw, sheet_name=name[:31], index=False)
    return buf.getvalue()


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
        parts.append(fig.to_html(full_html=False, include_plotlyjs=True if first else False,
                                 config={"displaylogo": False}))
        first = False
    for heading, table in tables:
        if table is None or not len(table):
            continue
        parts.append(f"<h2>{html.escape(heading)}</h2>" + table.to_html(index=False, float_format=_fmt,
                                                                        na_rep="", escape=True))
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(x: float) -> str:
    return f"{x:,.4g}"
