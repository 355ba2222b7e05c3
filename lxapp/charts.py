"""Plotly figures of the app (and of the HTML report). Every figure names a CJK font family,
so Chinese shows wherever one of those fonts is installed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lxapp import CJK_FONT
from lxapp.core import Bundle, is_fraction, split_column, unit_label, var_label
from lxapp.i18n import t
from lxapp.lmdi import FACTORS

PALETTE = ["#c0392b", "#2471a3", "#229954", "#d68910", "#7d3c98", "#17a589", "#a04000", "#5d6d7e",
           "#cb4335", "#2e86c1"]
SECTOR_COLORS = ["#7dcea0", "#873600", "#e67e22", "#f4d03f", "#2e86c1", "#85c1e9", "#aab7b8",
                 "#58d68d", "#dc7633", "#5dade2"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def base_layout(title: str = "", height: int = 360) -> dict:
    return dict(title=dict(text=title, font=dict(family=CJK_FONT, size=15)),
                font=dict(family=CJK_FONT, size=12), height=height,
                margin=dict(l=55, r=20, t=45 if title else 15, b=80),
                legend=dict(orientation="h", yanchor="top", y=-0.12, x=0),
                hovermode="x unified", plot_bgcolor="white", paper_bgcolor="white",
                xaxis=dict(gridcolor="#eeeeee", zeroline=False), yaxis=dict(gridcolor="#eeeeee", zeroline=False))


class Prebuilt(go.Figure):
    """A figure already laid out as a plain dict, handed to ``st.plotly_chart`` as is.

    Streamlit validates a dict by building a plotly Figure from it (~50 ms a chart on this
    machine, a quarter of a lever move); a Figure instance it only asks for ``to_dict()``. Our
    dicts are built here from known keys, so validating them again buys nothing: this Figure
    skips plotly's constructor and returns the dict. Use it for the app's charts only;
    ``line_figure`` gives a real Figure (for the HTML report and anything else).
    """

    def __init__(self, spec: dict) -> None:  # noqa: D107 - no super().__init__: that is the cost avoided
        object.__setattr__(self, "_spec", spec)

    def to_dict(self) -> dict:
        return self._spec

    def to_plotly_json(self) -> dict:
        return self._spec


def line_figure(*args, **kw) -> go.Figure:
    """``line_spec`` as a plotly Figure (validated)."""
    return go.Figure(line_spec(*args, **kw))


def line_spec(bundle: Bundle, df: pd.DataFrame, column: str, lang: str, labels: dict[str, str],
              bands: dict[str, dict] | None = None, actuals: pd.DataFrame | None = None,
              targets: pd.DataFrame | None = None, plan: dict | None = None, dashed: tuple = (),
              history_end: float | None = None, mark_year: float | None = 2025) -> dict:
    """One variable (column) over time, a line per scenario (those in ``dashed`` dashed: the
    base the current settings are compared with); bands[scenario][column] = (5, T) percentiles
    give a fan; actuals and plan targets as points; ``plan`` = the plan's path
    (``core.plan_paths``) as a dotted gold line; the history up to ``history_end`` shaded and
    the plan year ``mark_year`` marked."""
    traces = []
    scale = 100.0 if is_fraction(bundle, column) else 1.0
    scenarios = list(dict.fromkeys(df.index.get_level_values("scenario")))
    shapes, annotations = [], []
    if column in df.columns and scenarios:
        x_all = df.xs(scenarios[0], level="scenario").index.to_numpy(dtype=float)
        if history_end is not None and x_all[0] < history_end:
            shapes.append(dict(type="rect", xref="x", yref="paper", x0=x_all[0], x1=history_end, y0=0, y1=1,
                               fillcolor="rgba(128,128,128,0.10)", line=dict(width=0), layer="below"))
            annotations.append(dict(x=x_all[0], y=1, xref="x", yref="paper", xanchor="left", yanchor="top",
                                    text=t("history", lang), showarrow=False,
                                    font=dict(family=CJK_FONT, size=10, color="#777")))
        if mark_year is not None and x_all[0] <= mark_year <= x_all[-1]:
            shapes.append(dict(type="line", xref="x", yref="paper", x0=mark_year, x1=mark_year, y0=0, y1=1,
                               line=dict(color="#d4ac0d", width=1, dash="dot")))
    # the current settings are drawn last (on top, thicker): a scenario with the same values
    # must not hide them; colours stay with the scenario's place in the comparison
    order = sorted(range(len(scenarios)), key=lambda k: scenarios[k] == "current")
    for i in order:
        sc = scenarios[i]
        if column not in df.columns:
            break
        sub = df.xs(sc, level="scenario")[column]
        x = sub.index.to_numpy()
        is_dashed = sc in dashed
        c = "#555555" if is_dashed else color(i)
        band = (bands or {}).get(sc, {}).get(column)
        if band is not None:
            for lo, hi, alpha, tag in ((0, 4, 0.12, "5-95%"), (1, 3, 0.25, "25-75%")):
                traces.append(dict(type="scatter", x=np.concatenate([x, x[::-1]]),
                                   y=np.concatenate([band[lo], band[hi][::-1]]) * scale,
                                   fill="toself", fillcolor=_rgba(c, alpha), line=dict(width=0),
                                   hoverinfo="skip", name=f"{labels.get(sc, sc)} {tag}",
                                   legendgroup=sc, showlegend=False))
        traces.append(dict(type="scatter", x=x, y=sub.to_numpy() * scale, mode="lines", name=labels.get(sc, sc),
                           line=dict(color=c, width=2 if is_dashed else (3 if sc == "current" else 2),
                                     dash="dash" if is_dashed else "solid"),
                           legendgroup=sc, hovertemplate="%{y:,.4~g}"))
    if plan is not None:
        name = plan["name_zh"] if lang == "zh" else plan["name_en"]
        traces.append(dict(type="scatter", x=plan["x"], y=np.asarray(plan["y"]) * scale, mode="lines",
                           name=t("plan_path", lang), line=dict(color="#d4ac0d", width=2, dash="dot"),
                           text=[name] * len(plan["x"]), hovertemplate="%{text}: %{y:,.4~g}<extra></extra>"))
    if actuals is not None and len(actuals):
        a = actuals[actuals["column"] == column]
        if len(a):
            traces.append(dict(type="scatter", x=a["year"].to_numpy(), y=a["value"].to_numpy() * scale, mode="markers",
                               name=t("actual", lang), marker=dict(color="black", size=9, symbol="circle"),
                               text=a["kind"].tolist(), hovertemplate="%{text}: %{y:,.4~g}<extra></extra>"))
    if targets is not None and len(targets):
        g = targets[targets["column"] == column]
        if len(g):
            names = g["name_zh"] if lang == "zh" else g["name_en"]
            traces.append(dict(type="scatter", x=g["year"].to_numpy(), y=g["value"].to_numpy() * scale, mode="markers",
                               name=t("plan_target", lang),
                               marker=dict(color="#d4ac0d", size=15, symbol="star", line=dict(color="black", width=1)),
                               text=names.tolist(), hovertemplate="%{text}: %{y:,.4~g}<extra></extra>"))
    layout = base_layout(var_label(bundle, column, lang))
    layout["yaxis"]["title"] = dict(text=unit_label(bundle, column, lang))
    layout["yaxis"]["tickformat"] = ",~g"
    layout["xaxis"]["tickformat"] = "d"
    layout["shapes"] = shapes
    layout["annotations"] = annotations
    return {"data": traces, "layout": layout}


def structure_figure(bundle: Bundle, df: pd.DataFrame, lang: str, labels: dict[str, str],
                     three: bool = True) -> go.Figure | None:
    """Industrial structure as stacked areas, one panel per scenario (one figure, built as a
    dict: make_subplots costs ~100 ms)."""
    m = bundle.model.model
    var = m.variables.get("industry_share")
    if var is None or len(var.dims) != 1:
        return None
    dim = var.dims[0]
    groups = []
    if three:
        subs = [(s, els) for s, (p, els) in m.subranges.items() if p == dim]
        covered = {e for _, els in subs for e in els}
        groups = [(e, [e]) for e in m.dim_elements(dim) if e not in covered] + [(s, list(els)) for s, els in subs]
    if not groups:
        groups = [(e, [e]) for e in m.dim_elements(dim)]
    scenarios = list(dict.fromkeys(df.index.get_level_values("scenario")))
    n = len(scenarios)
    gap = 0.02
    traces, annotations = [], []
    layout = base_layout(var_label(bundle, "industry_share", lang) + " (%)", height=340)
    for j, sc in enumerate(scenarios):
        sub = df.xs(sc, level="scenario")
        ax = "" if j == 0 else str(j + 1)
        lo, hi = j / n + (gap if j else 0), (j + 1) / n - (gap if j < n - 1 else 0)
        layout[f"xaxis{ax}"] = dict(domain=[lo, hi], anchor="y", gridcolor="#eeeeee")
        annotations.append(dict(text=labels.get(sc, sc), x=(lo + hi) / 2, y=1.0, xref="paper", yref="paper",
                                xanchor="center", yanchor="bottom", showarrow=False,
                                font=dict(family=CJK_FONT, size=12)))
        x = sub.index.to_numpy()
        for k, (gname, els) in enumerate(groups):
            cols = [f"industry_share[{e}]" for e in els]
            if not all(c in sub.columns for c in cols):
                continue
            y = sub[cols].sum(axis=1).to_numpy() * 100
            shown = m.element_label(gname, lang) if hasattr(m, "element_label") else gname
            traces.append(dict(type="scatter", x=x, y=y, stackgroup=f"s{j}", name=shown, legendgroup=gname,
                               showlegend=(j == 0), mode="lines", xaxis=f"x{ax}", yaxis="y",
                               line=dict(width=0.5, color=SECTOR_COLORS[k % len(SECTOR_COLORS)])))
    layout["yaxis"] = dict(range=[0, 100], gridcolor="#eeeeee")
    layout["annotations"] = annotations
    layout["margin"]["t"] = 60
    return go.Figure(dict(data=traces, layout=layout))


def lmdi_figure(effects: dict[str, float], lang: str, title: str) -> go.Figure:
    """The CO2 change as a waterfall: the four effects, then the total."""
    names = [t(f, lang) for f in FACTORS] + [t("total", lang)]
    vals = [float(effects[f]) for f in FACTORS] + [float(effects["total"])]
    fig = go.Figure(go.Waterfall(x=names, y=vals, measure=["relative"] * 4 + ["total"],
                                 text=[f"{v:+.1f}" for v in vals], textposition="outside",
                                 increasing=dict(marker=dict(color="#c0392b")),
                                 decreasing=dict(marker=dict(color="#229954")),
                                 totals=dict(marker=dict(color="#2471a3"))),
                    layout=base_layout(title, height=340) | dict(showlegend=False, hovermode="closest"))
    return fig


def fit_figure(table: pd.DataFrame, lang: str) -> go.Figure:
    """Model against actual, one point per actual; the diagonal is a perfect fit."""
    rel = table["model"] / table["actual"]
    fig = go.Figure(go.Bar(x=[f"{r.indicator} {r.year}" for r in table.itertuples()],
                           y=(rel - 1) * 100, marker_color=["#229954" if abs(v - 1) <= 0.03 else "#c0392b"
                                                            for v in rel]),
                    layout=base_layout(t("fit", lang) + " (% " + ("误差" if lang == "zh" else "error") + ")"))
    fig.update_layout(hovermode="closest")
    return fig


def figure_labels(column: str) -> str:
    return split_column(column)[0]
