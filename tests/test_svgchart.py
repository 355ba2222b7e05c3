"""The lever screen's server-drawn charts (lxapp/svgchart.py): ticks, scales, escaping, bad values."""
from __future__ import annotations

import base64
import math
import xml.etree.ElementTree as ET

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lxapp import svgchart

SVG = "{http://www.w3.org/2000/svg}"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.floats(-1e9, 1e9, allow_nan=False), st.floats(0, 1e9, allow_nan=False))
def test_nice_ticks_cover_the_range_with_round_even_steps(lo, span):
    hi = lo + span
    ticks = svgchart.nice_ticks(lo, hi)
    tol = 1e-9 * max(span, abs(lo))         # bounds off a round value by rounding get no extra tick
    assert ticks[0] <= lo + tol and ticks[-1] >= hi - tol
    assert 2 <= len(ticks) <= 12
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0], rtol=1e-6, atol=1e-9 * max(1.0, abs(hi)))
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5, 10))


def test_tick_and_value_labels():
    assert svgchart.fmt_tick(1500) == "1,500"
    assert svgchart.fmt_tick(0.25) == "0.25"
    assert svgchart.fmt_tick(55.6) == "55.6"
    assert svgchart.fmt_tick(0) == "0"
    assert svgchart.fmt_tick(2e-11) == "2e-11"
    assert svgchart.fmt_value(343.94) == "343.9"
    assert svgchart.fmt_value(123456.7) == "123,457"
    assert svgchart.fmt_value(float("nan")) == "–"


def _figure(y, name="当前 <设置> & co", extra=()):
    x = list(range(2015, 2015 + len(y)))
    return {"data": [{"x": x, "y": y, "mode": "lines", "name": name, "line": {"width": 3, "color": "#c0392b"}},
                     {"x": x, "y": [v * 0.9 for v in y], "mode": "lines", "name": "base",
                      "line": {"width": 2, "dash": "dash"}}, *extra],
            "layout": {"title": {"text": "GDP <亿元>"}, "yaxis": {"title": {"text": "亿元"}},
                       "shapes": [{"type": "rect", "x0": 2015, "x1": 2023}, {"type": "line", "x0": 2025}],
                       "annotations": [{"x": 2015, "text": "历史"}]}}


def test_the_chart_is_well_formed_svg_with_escaped_text_and_its_numbers():
    y = [100.0 + 10 * k for k in range(21)]
    svg = svgchart.svg_line(_figure(y), "年")
    root = ET.fromstring(svg)               # well-formed, names escaped
    assert root.tag == SVG + "svg" and root.find(SVG + "title").text == "GDP <亿元>"
    lines = {p.get("data-name"): p for p in root.iter(SVG + "polyline")}
    cur = lines["当前 <设置> & co"]
    assert "lx-current" in cur.get("class") and "lx-current" not in lines["base"].get("class")
    assert [float(v) for v in cur.get("data-values").split(",")] == y
    # the first point sits at the plot's left edge, the last at its right edge
    pts = [tuple(map(float, p.split(","))) for p in cur.get("points").split()]
    assert pts[0][0] == svgchart.PAD_L and pts[-1][0] == svgchart.W - svgchart.PAD_R
    # higher values are drawn higher (smaller y px), in order
    assert all(a[1] > b[1] for a, b in zip(pts, pts[1:], strict=False))
    # a hover text per year with every line's value
    hover = [t.text for t in root.iter(SVG + "title")]
    assert any(h.startswith("年 2020") and "base: 135" in h for h in hover)


def test_non_finite_values_are_left_out_not_drawn_as_zero():
    y = [100.0, float("nan"), 120.0, float("inf"), 140.0]
    root = ET.fromstring(svgchart.svg_line(_figure(y)))
    cur = next(p for p in root.iter(SVG + "polyline") if "lx-current" in p.get("class"))
    assert cur.get("data-values") == "100,120,140"
    assert len(cur.get("points").split()) == 3


def test_markers_and_an_empty_figure():
    star = {"x": [2025], "y": [150.0], "mode": "markers", "name": "target", "text": ["规划目标"],
            "marker": {"symbol": "star", "color": "#d4ac0d", "size": 15}}
    root = ET.fromstring(svgchart.svg_line(_figure([100.0, 200.0], extra=[star])))
    assert [p for p in root.iter(SVG + "polygon")]
    assert any((t.text or "").startswith("规划目标 · 2025: 150") for t in root.iter(SVG + "title"))
    empty = ET.fromstring(svgchart.svg_line({"data": [], "layout": {}}))
    assert empty.tag == SVG + "svg" and not list(empty.iter(SVG + "polyline"))


def test_markdown_image_round_trips_and_keeps_the_alt_text_plain():
    svg = svgchart.svg_line(_figure([1.0, 2.0]))
    md = svgchart.markdown_image(svg, "GDP [2020年价]\nnext")
    alt, rest = md[2:].split("](", 1)
    assert alt == "GDP (2020年价) next"
    assert base64.b64decode(rest.removeprefix("data:image/svg+xml;base64,").rstrip(")")).decode() == svg


def test_long_titles_wrap_to_two_lines_and_long_legend_names_take_a_row_each():
    title = "General public budget revenue, all levels (一般公共预算收入 = the plan's fiscal revenue; current prices)"
    lines = svgchart.wrap(title, svgchart.W - 8, 14, 2)
    assert len(lines) == 2 and lines[0] == "General public budget revenue, all levels" and lines[1].endswith("…")
    assert all(svgchart.text_width(ln, 14) <= svgchart.W - 8 for ln in lines)
    assert svgchart.wrap("二氧化碳排放", 400, 14, 2) == ["二氧化碳排放"]
    fig = _figure([1.0, 2.0], name="Actual trend (calibrated to the 2023 bulletin) (base)")
    fig["layout"]["title"]["text"] = title
    root = ET.fromstring(svgchart.svg_line(fig))
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "General public budget revenue, all levels" in texts            # the title's first line
    legend = [t for t in root.iter(SVG + "text") if t.text in ("Actual trend (calibrated to the 2023 bulletin) (base)",
                                                               "base")]
    assert len(legend) == 2 and legend[0].get("x") == legend[1].get("x")   # one column: names this long
    two = ET.fromstring(svgchart.svg_line(fig, title_space=2))
    short = ET.fromstring(svgchart.svg_line(_figure([1.0, 2.0]), title_space=2))
    top = [float(r.get("y")) for r in two.iter(SVG + "rect") if r.get("fill-opacity") == "0.10"]
    assert top == [float(r.get("y")) for r in short.iter(SVG + "rect") if r.get("fill-opacity") == "0.10"]
