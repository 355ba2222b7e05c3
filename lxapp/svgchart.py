"""A line chart drawn on the server as SVG: the lever screen's charts.

Why not Vega-Lite or plotly there: the lever screen is the page a policymaker opens first and
moves sliders on, and a browser draws an image as it draws text, where a Vega-Lite chart first
loads and compiles Vega's script and a plotly chart plotly.js (1.5 s of a page open here;
docs/benchmarks-app.md). The chart is sent as a markdown image (``markdown_image``), which the
markdown renderer already in the page draws; inline SVG would first load its HTML parser.

What the chart shows is what the plotly chart shows: the lines (base dashed, current solid on
top), the plan's path, actuals and plan targets as points, the history shaded and the plan year
marked, a legend. What it gives up is interaction in the page (hover, zoom): the Δ cards above
give the numbers, and the compare page draws the same charts in plotly. Opened on its own (the
browser's "open image in new tab"), the SVG shows each year's values on hover (``<title>``).

The input is ``charts.line_spec``'s figure (the dict plotly draws), so the two cannot disagree
on what is shown. Hand-written rather than a library's: matplotlib's SVG takes ~40 ms a chart,
and vl-convert would add a JavaScript runtime to the server; this draws a chart in about 1 ms.
"""
from __future__ import annotations

import base64
import html
import math
import unicodedata
from dataclasses import dataclass

import numpy as np

from lxapp.charts import CJK_FONT

W = 440                  # the width in px (about a lever-screen column at 1500 px; the image scales to its column)
PLOT_H = 220             # the plot area's height in px; the title's lines and the legend's rows add to the image's
PAD_L, PAD_R = 58, 12    # plot area margins: the y labels; the right edge
TITLE_LINE, LEGEND_ROW = 18, 18
_DASH = {"dash": "6 4", "dot": "2 3", "dashdot": "6 3 2 3"}


def _dash(dash: str | None) -> str:
    """A stroke's dash attribute for plotly's dash name ('' for a solid line)."""
    d = _DASH.get(dash or "solid")
    return f' stroke-dasharray="{d}"' if d else ""


def _esc(text: object) -> str:
    """Text for SVG: XML-escaped."""
    return html.escape(str(text), quote=True)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps 1, 2, 2.5 or 5 × 10^k), the first at
    or below ``lo`` and the last at or above ``hi``; a range flat up to rounding gets ±5 % around it."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi - lo <= max(1e-9 * max(abs(lo), abs(hi)), 1e-300):    # flat up to rounding: a band around it
        mid = (lo + hi) / 2
        pad = max(abs(mid) * 0.05, hi - lo)
        pad = pad if pad > 1e-300 else 1.0     # a line at zero: the band 0 ± 1
        lo, hi = mid - pad, mid + pad
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    k0 = math.floor(lo / step + 1e-12)      # the 1e-12: no extra tick for a bound off a round value by rounding
    k1 = math.ceil(hi / step - 1e-12)
    return [float(f"{k * step:.12g}") for k in range(k0, k1 + 1)]   # .12g: 0.3, not 0.30000000000000004


def fmt_tick(v: float) -> str:
    """A tick label: thousands separators, no trailing zeros (``1,234``, ``0.25``, ``55.6``)."""
    if v == 0:
        return "0"
    if not 1e-3 <= abs(v) < 1e12:
        return f"{v:.3g}"
    return f"{v:,.6f}".rstrip("0").rstrip(".")


def fmt_value(v: float) -> str:
    """A hover value: four significant digits with thousands separators."""
    if not math.isfinite(v):
        return "–"
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    return f"{float(f'{v:.4g}'):,}".rstrip("0").rstrip(".") if v else "0"


def _traces(spec: dict) -> list[dict]:
    """The figure's drawable traces (a fan band is plotly's: skipped), x and y as float arrays."""
    out = []
    for tr in spec.get("data", []):
        if tr.get("fill") or tr.get("x") is None or tr.get("y") is None:
            continue
        x = np.asarray(tr["x"], dtype=float)
        y = np.asarray(tr["y"], dtype=float)
        out.append({**tr, "x": x, "y": y})
    return out


@dataclass(frozen=True)
class Frame:
    """The plot area and its scales: data x (year) and y to SVG px."""
    x0: float
    x1: float
    y0: float
    y1: float
    top: float           # px of the plot's top edge (the title is above)
    bottom: float        # px of the plot's bottom edge (the x labels and the legend are below)

    def px(self, x):
        return PAD_L + (np.asarray(x, dtype=float) - self.x0) / (self.x1 - self.x0) * (W - PAD_L - PAD_R)

    def py(self, y):
        return self.bottom - (np.asarray(y, dtype=float) - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)


def _frame(traces: list[dict], title_lines: int) -> tuple[Frame, list[float]]:
    """The scales covering every trace (y widened to round ticks, x to the traces' years), and the y ticks."""
    xs = np.concatenate([t["x"] for t in traces]) if traces else np.array([0.0, 1.0])
    ys = np.concatenate([t["y"] for t in traces]) if traces else np.array([0.0, 1.0])
    xs, ys = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
    x0, x1 = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    yt = nice_ticks(float(ys.min()), float(ys.max())) if ys.size else [0.0, 1.0]
    top = 12 + TITLE_LINE * max(title_lines, 1)
    return Frame(x0, x1 if x1 > x0 else x0 + 1, yt[0], yt[-1], top, top + PLOT_H), yt


def title_lines(spec: dict) -> int:
    """How many lines (1 or 2) the figure's title takes in ``svg_line``."""
    return len(wrap((spec.get("layout", {}).get("title") or {}).get("text", ""), W - 8, 14, 2))


def svg_line(spec: dict, year_label: str = "year", title_space: int = 1) -> str:
    """``charts.line_spec``'s figure (``spec``: its ``data`` and ``layout``) as a standalone SVG
    document, ``W`` px wide; its height is the title's lines, the plot and the legend's rows. The
    current settings' line (the figure's thickest solid line) carries the class ``lx-current``,
    every line ``lx-line``, the SVG ``lx-chart``. Hover texts (``<title>``: every line's value per
    year, each point's value) show where the SVG is opened on its own (the browser's "open image
    in new tab"). ``title_space``: lines kept for the title at least (charts side by side keep the
    same, so their plots line up). Units: the figure's (years; its y values)."""
    traces = _traces(spec)
    layout = spec.get("layout", {})
    title = (layout.get("title") or {}).get("text", "")
    names: dict[str, dict] = {}                 # legend: each name once, in the figure's order
    for tr in traces:
        if tr.get("showlegend", True):
            names.setdefault(tr.get("name", ""), tr)
    heading = wrap(title, W - 8, 14, 2)
    f, yt = _frame(traces, max(len(heading), title_space))
    legend, legend_h = _legend(list(names.items()), f.bottom + 32)
    h = f.bottom + 32 + legend_h
    lines = [t for t in traces if t.get("mode", "lines") == "lines"]
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lx-chart" viewBox="0 0 {W} {h:.0f}" width="{W}" '
         f'height="{h:.0f}" role="img" aria-label="{_esc(title)}" font-family="{_esc(CJK_FONT)}">'
         f'<title>{_esc(title)}</title><rect width="{W}" height="{h:.0f}" fill="#ffffff"/>']
    o += [f'<text x="4" y="{18 + TITLE_LINE * k}" font-size="14" fill="#262730">{_esc(ln)}</text>'
          for k, ln in enumerate(heading)]
    o += _decorations(layout, f)
    o += _axes(f, yt, ((layout.get("yaxis") or {}).get("title") or {}).get("text", ""))
    o += _lines(lines, f)                        # in the figure's order: the current settings over the base
    o += _hover_columns(lines, f, year_label)
    o += _points([t for t in traces if t.get("mode") == "markers"], f)
    o += legend
    o.append("</svg>")
    return "".join(o)


def markdown_image(svg: str, alt: str) -> str:
    """``svg`` as a markdown image (a ``data:`` URI): what ``st.markdown`` draws with the markdown
    renderer already in the page. Inline SVG (``unsafe_allow_html``) would first load the
    renderer's HTML parser, half a second later on a page open here (docs/benchmarks-app.md)."""
    alt = " ".join(alt.replace("[", "(").replace("]", ")").split())
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"


def _decorations(layout: dict, f: Frame) -> list[str]:
    """The history shading, the plan-year mark and their label (the figure's shapes and annotations)."""
    o = []
    for s in layout.get("shapes", []):
        if s.get("type") == "rect":
            a, b = float(f.px(max(float(s["x0"]), f.x0))), float(f.px(min(float(s["x1"]), f.x1)))
            o.append(f'<rect x="{a:.1f}" y="{f.top}" width="{max(b - a, 0):.1f}" height="{f.bottom - f.top:.1f}" '
                     f'fill="#808080" fill-opacity="0.10"/>')
        elif s.get("type") == "line":
            a = float(f.px(float(s["x0"])))
            ln = s.get("line", {})
            o.append(f'<line class="lx-mark" x1="{a:.1f}" x2="{a:.1f}" y1="{f.top}" y2="{f.bottom:.1f}" '
                     f'stroke="{_esc(ln.get("color", "#d4ac0d"))}" stroke-width="{ln.get("width", 1)}"'
                     f'{_dash(ln.get("dash", "dot"))}/>')
    for ann in layout.get("annotations", []):
        o.append(f'<text x="{float(f.px(float(ann["x"]))) + 4:.1f}" y="{f.top + 12}" font-size="10" '
                 f'fill="#777777">{_esc(ann.get("text", ""))}</text>')
    return o


def _axes(f: Frame, yt: list[float], ytitle: str) -> list[str]:
    """The y grid and labels, x labels at round years, the x axis line and the y title."""
    o = []
    for v in yt:
        yy = float(f.py(v))
        o.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eeeeee"/>'
                 f'<text x="{PAD_L - 6}" y="{yy + 4:.1f}" font-size="11" fill="#555" text-anchor="end">'
                 f'{_esc(fmt_tick(v))}</text>')
    for v in nice_ticks(f.x0, f.x1, 7):
        if f.x0 <= v <= f.x1 and float(v).is_integer():
            xx = float(f.px(v))
            o.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{f.top}" y2="{f.bottom:.1f}" stroke="#f3f3f3"/>'
                     f'<text x="{xx:.1f}" y="{f.bottom + 15:.1f}" font-size="11" fill="#555" '
                     f'text-anchor="middle">{int(v)}</text>')
    o.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{f.bottom:.1f}" y2="{f.bottom:.1f}" stroke="#999"/>')
    if ytitle:
        o.append(f'<text transform="translate(12,{(f.top + f.bottom) / 2:.1f}) rotate(-90)" font-size="11" '
                 f'fill="#555" text-anchor="middle">{_esc(ytitle)}</text>')
    return o


def _lines(lines: list[dict], f: Frame) -> list[str]:
    """The lines' polylines (the thickest solid one is the current settings')."""
    widest = max((t.get("line", {}).get("width", 2) for t in lines), default=2)
    o = []
    for t in lines:
        ln = t.get("line", {})
        ok = np.isfinite(t["y"]) & np.isfinite(t["x"])
        if not ok.any():
            continue
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(f.px(t["x"][ok]), f.py(t["y"][ok]), strict=True))
        current = ln.get("dash", "solid") == "solid" and ln.get("width", 2) == widest and widest > 2
        values = ",".join(f"{v:.6g}" for v in t["y"][ok])     # the numbers drawn, for whoever reads the SVG
        o.append(f'<polyline class="lx-line{" lx-current" if current else ""}" '
                 f'data-name="{_esc(t.get("name", ""))}" data-values="{values}" '
                 f'fill="none" stroke="{_esc(ln.get("color", "#333"))}" '
                 f'stroke-width="{ln.get("width", 2)}" stroke-linejoin="round"{_dash(ln.get("dash"))} '
                 f'points="{pts}"/>')
    return o


def _points(markers: list[dict], f: Frame) -> list[str]:
    """Actuals and plan targets: a marker each, with its hover text."""
    o = []
    for t in markers:
        text = t.get("text")
        for i, (a, b) in enumerate(zip(t["x"], t["y"], strict=True)):
            if not (np.isfinite(a) and np.isfinite(b)):
                continue
            what = text[i] if text is not None else t.get("name", "")
            label = f"{what} · {int(a) if float(a).is_integer() else a}: {fmt_value(float(b))}"
            o.append(f'<g class="lx-point">{_marker(t.get("marker", {}), float(f.px(a)), float(f.py(b)))}'
                     f'<title>{_esc(label)}</title></g>')
    return o


def _hover_columns(lines: list[dict], f: Frame, year_label: str) -> list[str]:
    """A transparent column per year of the lines' x: hovering it shows every line's value then
    (the unified hover of the plotly charts, as the browser's own tooltip)."""
    if not lines:
        return []
    years = np.unique(np.concatenate([t["x"] for t in lines]))
    years = years[(years >= f.x0) & (years <= f.x1) & (years == np.round(years))]
    if years.size == 0:
        return []
    edges = np.concatenate([[f.x0], (years[1:] + years[:-1]) / 2, [f.x1]])
    out = ['<g class="lx-hover" fill="#ffffff" fill-opacity="0">']
    for k, yr in enumerate(years):
        parts = [f"{year_label} {int(yr)}"]
        for t in lines:
            hit = np.flatnonzero(t["x"] == yr)
            if hit.size and np.isfinite(t["y"][hit[0]]):
                parts.append(f"{t.get('name', '')}: {fmt_value(float(t['y'][hit[0]]))}")
        a, b = float(f.px(edges[k])), float(f.px(edges[k + 1]))
        out.append(f'<rect x="{a:.1f}" y="{f.top}" width="{b - a:.1f}" height="{f.bottom - f.top:.1f}">'
                   f'<title>{_esc(chr(10).join(parts))}</title></rect>')
    out.append("</g>")
    return out


def _star(cx: float, cy: float, r: float) -> str:
    pts = []
    for k in range(10):
        ang = -math.pi / 2 + k * math.pi / 5
        rr = r if k % 2 == 0 else r * 0.45
        pts.append(f"{cx + rr * math.cos(ang):.1f},{cy + rr * math.sin(ang):.1f}")
    return " ".join(pts)


def _marker(m: dict, cx: float, cy: float) -> str:
    color = _esc(m.get("color", "black"))
    if m.get("symbol") == "star":
        line = m.get("line", {})
        return (f'<polygon points="{_star(cx, cy, m.get("size", 15) / 2 + 1)}" fill="{color}" '
                f'stroke="{_esc(line.get("color", "black"))}" stroke-width="{line.get("width", 1)}"/>')
    return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{m.get("size", 9) / 2:.1f}" fill="{color}"/>'


def _legend(names: list[tuple[str, dict]], top: float) -> tuple[list[str], float]:
    """The legend under the plot: a line's colour and dash, or the marker, and the name; two
    entries a row where every name fits half the width, else one (a name too long for the width
    is cut with "…"). Returns the elements and the legend's height in px."""
    size = 11
    col_w = (W - PAD_L) / 2
    cols = 2 if all(text_width(n, size) <= col_w - 36 for n, _ in names) else 1
    out = []
    for k, (name, t) in enumerate(names):
        x = PAD_L + (k % cols) * col_w
        y = top + (k // cols) * LEGEND_ROW
        if t.get("mode", "lines") == "markers":
            m = t.get("marker", {})
            sample = _marker({**m, "size": min(m.get("size", 9), 11)}, x + 12, y - 4)
        else:
            ln = t.get("line", {})
            sample = (f'<line x1="{x}" x2="{x + 24}" y1="{y - 4}" y2="{y - 4}" '
                      f'stroke="{_esc(ln.get("color", "#333"))}" stroke-width="{ln.get("width", 2)}"'
                      f'{_dash(ln.get("dash"))}/>')
        shown = wrap(name, (W - x) - 36, size, 1)[0] if name else ""
        out.append(f'{sample}<text x="{x + 30}" y="{y}" font-size="{size}" fill="#333">{_esc(shown)}</text>')
    return out, math.ceil(len(names) / cols) * LEGEND_ROW


def text_width(text: str, size: float) -> float:
    """An estimate of ``text``'s width in px at font ``size`` px: a full-width (CJK) character
    is 1 em, others about 0.55 em (the fonts are the browser's: no exact measure on the server)."""
    return size * sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.55 for c in text)


def wrap(text: str, width: float, size: float, max_lines: int) -> list[str]:
    """``text`` on at most ``max_lines`` lines of ``width`` px (breaking at spaces where it can,
    anywhere in CJK text), the last cut with "…" if it does not fit."""
    lines: list[str] = []
    rest = text.strip()
    while rest and len(lines) < max_lines:
        if text_width(rest, size) <= width:
            lines.append(rest)
            return lines
        cut = 1
        while cut < len(rest) and text_width(rest[:cut + 1], size) <= width:
            cut += 1
        space = rest.rfind(" ", 0, cut + 1)
        if len(lines) == max_lines - 1:      # the last line: cut, with the ellipsis
            while cut > 1 and text_width(rest[:cut] + "…", size) > width:
                cut -= 1
            lines.append(rest[:cut].rstrip() + "…")
            return lines
        if space > cut // 2:
            cut = space
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    return lines or [""]
