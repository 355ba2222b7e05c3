"""AppTest tests of the Streamlit app: every page in both languages, levers, the URL."""
from __future__ import annotations

import sys
from pathlib import Path as _P

sys.path.insert(0, str(_P(__file__).resolve().parent.parent))  # lxapp/ beside app.py

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from lxapp.state import PAGES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
DEMO = str(ROOT / "lxapp" / "demo" / "demo_model.toml")
REAL = str(ROOT / "model" / "linxiang.toml")


@pytest.fixture(autouse=True)
def _db(tmp_path, monkeypatch):
    monkeypatch.setenv("LXSD_DB", str(tmp_path / "workshop.sqlite"))


def app(page: str = "overview", lang: str = "zh", **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = page
    at.query_params["lang"] = lang
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def qp(at: AppTest, key: str) -> str:
    v = at.query_params[key]
    return v[0] if isinstance(v, list) else v


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [h.value for h in at.header] + [h.value for h in at.title]
    parts += [str(m.label) + str(m.value) for m in at.metric] + [h.proto.body for h in at.get("html")]
    return "\n".join(parts)


@pytest.mark.parametrize("model", ["demo", "real"])
@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(page, lang, model, monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO if model == "demo" else REAL)
    at = app(page, lang)
    assert not at.exception, [e.value for e in at.exception]
    title = at.title[0].value
    assert ("临湘" in title) if lang == "zh" else ("Linxiang" in title)
    assert at.header, "each page has a header"


def test_uncertainty_pages_render(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    for page in ("compare", "levers", "scorecard", "overview"):
        at = app(page, "en", unc="1")
        assert not at.exception, [e.value for e in at.exception]
    # the fan note shows on compare, with the kind of ensemble the engine reports
    at = app("compare", "en", unc="1")
    assert any("500" in c.value and "prior ensemble" in c.value for c in at.caption)


def _cards(at):
    """The lever screen's Δ cards (one HTML block of cards: label, value, Δ as data attributes)."""
    import html
    import re
    out = {}
    for h in at.get("html"):
        for lab, val, delta in re.findall(r'class="lx-card" data-label="([^"]*)" data-value="([^"]*)" '
                                          r'data-delta="([^"]*)"', h.proto.body):
            out[html.unescape(lab)] = (html.unescape(val), html.unescape(delta))
    return out


def test_lever_screen_starts_at_zero_and_moves(monkeypatch):
    """Issue 13 item 1: before any lever moves every Δ is zero (the reference is the levers'
    base, not the plan); moving one changes the cards and the URL, and only that lever is set."""
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("levers", "zh")
    assert not at.exception
    cards = _cards(at)
    assert len(cards) >= 4 and all(d == "±0" for _, d in cards.values()), cards
    assert at.session_state["lv"] == {}
    at.slider(key="lv_rongyue_pace_zh").set_value(2.5).run()
    assert not at.exception
    after = _cards(at)
    assert any(d != "±0" for _, d in after.values())
    assert at.session_state["lv"] == {"rongyue_pace": 2.5}
    assert "rongyue_pace:2.5" in qp(at, "lv")
    # back to the base value: nothing is moved any more
    base = at.slider(key="lv_rongyue_pace_zh").value
    at.slider(key="lv_rongyue_pace_zh").set_value(1.0).run()
    assert base == 2.5 and at.session_state["lv"] in ({}, {"rongyue_pace": 1.0})


def test_untouched_sliders_keep_calibrated_values(monkeypatch):
    """investment_rate_future is calibrated to six digits in the real model: its widget shows it exactly, and
    moving another lever leaves it out of the moved set."""
    monkeypatch.setenv("LXSD_MODEL", REAL)
    at = app("levers", "en", base="actual_trend")
    from lxapp import core
    b = core.load_bundle(REAL)
    lv = next(x for x in core.levers(b, base="actual_trend") if x.name == "investment_rate_future")
    exact = core.scenario_value(b, "actual_trend", lv)
    # a slider (never a number input), on a grid through the calibrated value, showing every digit
    assert not at.number_input
    s = at.slider(key="lv_investment_rate_future_en")
    assert s.value == exact and len(f"{exact}".split(".")[1]) >= 5
    assert s.step == pytest.approx(0.005) and s.min == lv.low and s.max == lv.high
    assert s.proto.format == f"%.{core.decimals(lv)}f" and f"{s.proto.format % exact}" == f"{exact}"
    at.slider(key="lv_ethylene_start_year_en").set_value(2026).run()
    assert not at.exception
    assert at.session_state["lv"] == {"ethylene_start_year": 2026.0}
    assert at.slider(key="lv_investment_rate_future_en").value == exact     # still untouched, still exact
    # moved one step: the value is the base's plus the step, and it is the one moved lever it adds
    at.slider(key="lv_investment_rate_future_en").set_value(round(exact + 0.005, 10)).run()
    assert at.session_state["lv"] == {"ethylene_start_year": 2026.0, "investment_rate_future": round(exact + 0.005, 10)}


def test_moved_levers_line_is_current(monkeypatch):
    """The "levers moved" line shows the move just made (on the lever screen it lives inside the
    fragment; elsewhere in the sidebar, which every other page's run redraws)."""
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("levers", "en")
    assert not [c for c in at.caption if c.value.startswith("Levers moved")]
    at.slider(key="lv_rongyue_pace_en").set_value(2.5).run()
    lines = [c.value for c in at.main.caption if c.value.startswith("Levers moved")]
    assert len(lines) == 1 and "2.5" in lines[0], lines
    assert not [c for c in at.sidebar.caption if c.value.startswith("Levers moved")]   # not twice, not stale
    at.slider(key="lv_rongyue_pace_en").set_value(2.0).run()
    lines = [c.value for c in at.main.caption if c.value.startswith("Levers moved")]
    assert len(lines) == 1 and "= 2;" not in lines[0] and lines[0].endswith("= 2"), lines
    at.sidebar.radio(key="w_page_en").set_value("compare").run()
    side = [c.value for c in at.sidebar.caption if c.value.startswith("Levers moved")]
    assert len(side) == 1 and side[0].endswith("= 2"), side


def test_lever_year_and_multiplier(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("levers", "en")
    before = _cards(at)
    at.slider(key="lv_efficiency_trend_en").set_value(2.0).run()
    mid = _cards(at)
    assert mid != before
    at.slider(key="lv_shock_size_en").set_value(0.2).run()
    at.slider(key="lv_shock_year_en").set_value(2025).run()
    assert _cards(at) != mid and not at.exception


def test_url_reopens_the_view(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("compare", "en", sc="current,plan,rongyue_fast", ref="plan", base="plan", lv="rongyue_pace:2",
             ch="gdp_real;co2_emissions;industry_share[secondary]", grp="7", ly="2028")
    assert not at.exception
    assert not at.warning, [w.value for w in at.warning]
    assert at.sidebar.toggle(key="w_en").value is True
    assert at.sidebar.radio(key="w_page_en").value == "compare"
    assert at.sidebar.multiselect(key="w_sc_en").value == ["current", "plan", "rongyue_fast"]
    assert at.sidebar.selectbox(key="w_ref_en").value == "plan"
    assert at.session_state["lv"] == {"rongyue_pace": 2.0}
    assert at.multiselect(key="w_ch_en").value == ["gdp_real", "co2_emissions", "industry_share[secondary]"]
    assert at.radio(key="w_grp_en").value == 7
    assert at.select_slider(key="w_ly_en").value == 2028
    assert len(at.get("plotly_chart")) == 3 + 2          # three charts, structure, LMDI
    q = {k: qp(at, k) for k in at.query_params}
    assert q["ch"] == "gdp_real;co2_emissions;industry_share[secondary]" and q["grp"] == "7" and q["ly"] == "2028"


@pytest.mark.parametrize("lv,needle", [
    ("ethylene_scale:nan", "not a finite number"), ("ethylene_scale:inf", "not a finite number"),
    ("ethylene_scale:99", "outside its range"), ("no_such_lever:1", "no such lever"),
])
def test_bad_link_is_a_message(lv, needle, monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("levers", "en", lv=lv, sc="current,nope", page2="x")
    assert not at.exception
    text = "\n".join(w.value for w in at.warning)
    assert needle in text and "sc=nope" in text
    assert at.session_state["lv"] == {}


def test_too_many_charts_in_a_link(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    from lxapp import core, ui
    cols = ui.chart_options(core.load_bundle(DEMO))[:20]
    at = app("compare", "en", ch=";".join(cols))
    assert not at.exception
    assert any("the first 12" in w.value for w in at.warning)
    assert len(at.multiselect(key="w_ch_en").value) == 12


def test_language_switch_keeps_the_page(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("overview", "zh")
    at.sidebar.radio(key="w_page_zh").set_value("compare").run()
    at.sidebar.multiselect(key="w_sc_zh").set_value(["current", "rongyue_fast", "plan"]).run()
    at.sidebar.selectbox(key="w_ref_zh").set_value("plan").run()
    for _ in range(4):                                   # back and forth: the page never changes
        at.sidebar.toggle(key="w_en").set_value(True).run()
        assert at.sidebar.radio(key="w_page_en").value == "compare" and "Compare" in texts(at)
        at.sidebar.toggle(key="w_en").set_value(False).run()
        assert at.sidebar.radio(key="w_page_zh").value == "compare" and "情景比较" in texts(at)
    assert at.sidebar.multiselect(key="w_sc_zh").value == ["current", "rongyue_fast", "plan"]
    assert at.sidebar.selectbox(key="w_ref_zh").value == "plan"
    assert not at.exception


def test_bad_model_degrades_to_demo(monkeypatch, tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[model]\nname = 'x'\n[time]\nstart = 0\nstop = 1\ndt = 1\n[auxiliaries.a]\nequation = 'b + '\n")
    monkeypatch.setenv("LXSD_MODEL", str(bad))
    at = app("overview", "en")
    assert not at.exception
    assert any("demo model" in w.value for w in at.warning)


def test_switch_page_and_scenarios(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("overview", "en")
    at.sidebar.radio(key="w_page_en").set_value("compare").run()
    assert not at.exception
    at.sidebar.multiselect(key="w_sc_en").set_value(["current", "plan", "carbon_peak_strict", "shock_2025",
                                                    "rongyue_fast"]).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 4


def test_scorecard_is_a_localised_matrix(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", REAL)
    at = app("scorecard", "zh", sc="current,actual_trend,plan", ref="actual_trend")
    assert not at.exception
    m = at.dataframe[0].value
    assert list(m.columns[:4]) == ["指标", "单位", "类型", "目标 2025"]
    assert {"当前设置"} <= set(m.columns)
    cells = m.drop(columns=["指标", "单位", "类型", "目标 2025"]).astype(str).to_numpy().ravel()
    assert not any(c in ("None", "nan") for c in cells)
    assert any(c.startswith("✔") for c in cells) and any(c.startswith("✘") for c in cells)
    import re
    assert not [u for u in m["单位"] if re.search(r"[a-z]{2,}", u)], list(m["单位"])    # units in Chinese
    summary = at.dataframe[1].value
    assert list(summary.columns) == ["情景", "达标数", "约束性指标达标数"]


def test_lever_screen_keeps_the_comparison_in_the_url(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("levers", "en", sc="current,plan,rongyue_fast", ref="plan")
    at.slider(key="lv_rongyue_pace_en").set_value(2.0).run()
    assert not at.exception
    assert qp(at, "sc") == "current,plan,rongyue_fast" and qp(at, "ref") == "plan"


def _report_script():
    import streamlit as st

    from lxapp import core, pages, ui
    bundle = ui.get_bundle(core.bundle_key())
    ctx = ui.Ctx(bundle, "zh", "export", [core.CURRENT, "actual_trend", "plan"], "actual_trend", "actual_trend",
                 {"rongyue_pace": 2.0}, False)
    ui.compute(ctx)
    html = pages.build_report(ctx, pages._scorecard_or_none(ctx))
    st.session_state["html"] = html


def test_html_report(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", REAL)
    at = AppTest.from_function(_report_script, default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    html = at.session_state["html"]
    assert "Noto Sans CJK SC" in html and "情景比较报告" in html and "目标记分卡" in html
    import re
    text = re.sub(r"<script.*?</script>", "", html, flags=re.S)     # the tables and headings, not plotly.js
    assert "2,02" not in text and "e+0" not in text and "None" not in text   # plain years, no exponents


def test_export_link_opens_the_page_before(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("compare", "en", sc="current,plan", lv="rongyue_pace:2")
    at.sidebar.radio(key="w_page_en").set_value("export").run()
    assert not at.exception
    link = at.code[0].value
    assert link.startswith("http") and "page=compare" in link and "rongyue_pace%3A2" in link and "ch=" in link


def test_lever_doc_table_only_when_opened(monkeypatch):
    """The lever screen's documentation table is drawn when its expander is open (a closed one
    would still make every browser load the data grid before the first chart)."""
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("levers", "en")
    assert not at.exception and not at.dataframe
    at.session_state["lever_doc_open"] = True
    at.run()
    assert not at.exception and len(at.dataframe) == 1
    names = set(at.dataframe[0].value["name"])
    assert {"rongyue_pace", "ethylene_scale"} <= names


@pytest.mark.parametrize("lang,text", [("zh", "请选择"), ("en", "Choose options")])
def test_multiselect_placeholders_follow_the_language(lang, text):
    at = app(lang=lang)
    boxes = list(at.sidebar.multiselect)
    assert boxes and all(box.placeholder == text for box in boxes)


SVG = "{http://www.w3.org/2000/svg}"


def _lever_svgs(at):
    """The lever screen's charts: the SVG documents of its markdown images, parsed."""
    import base64
    import xml.etree.ElementTree as ET
    return [ET.fromstring(base64.b64decode(m.value.split("base64,", 1)[1].rstrip(")")))
            for m in at.markdown if "](data:image/svg+xml;base64," in m.value]


def _polylines(svg) -> dict[str, dict]:
    return {p.get("data-name"): p.attrib for p in svg.iter(SVG + "polyline")}


def test_lever_charts_carry_the_plan_and_a_move_changes_the_current_line(monkeypatch):
    """The lever screen's charts (SVG images drawn on the server, lighter in the browser than
    plotly or Vega-Lite): history shaded, the 2025 mark, the base dashed, the current settings
    solid and on top, the plan's path, actuals and targets; a lever move changes the current
    line's numbers only (the y axis may rescale, moving the others in pixels)."""
    monkeypatch.setenv("LXSD_MODEL", REAL)
    at = app("levers", "zh")
    assert not at.exception and not at.get("plotly_chart")
    charts = _lever_svgs(at)
    assert len(charts) == 4
    gdp = charts[0]
    assert "地区生产总值" in gdp.find(SVG + "title").text
    assert any(r.get("fill-opacity") == "0.10" for r in gdp.iter(SVG + "rect"))        # history shaded
    assert [ln for ln in gdp.iter(SVG + "line") if ln.get("class") == "lx-mark"]       # the 2025 mark
    lines = _polylines(gdp)
    base = next(v for k, v in lines.items() if "基础" in k)
    assert base["stroke-dasharray"] == "6 4"                                          # the base, dashed
    current = [v for v in lines.values() if "lx-current" in v["class"]]
    assert len(current) == 1 and current[0]["stroke-width"] == "3" and "stroke-dasharray" not in current[0]
    order = list(lines.values())
    assert order.index(current[0]) > order.index(base)                                # over the base
    assert any(v.get("stroke-dasharray") == "2 3" for v in lines.values())            # the plan's path
    assert any(g.get("class") == "lx-point" for c in charts for g in c.iter(SVG + "g"))  # actuals, targets
    assert any(c.iter(SVG + "polygon") for c in charts)                               # a target's star
    at.slider(key="lv_rongyue_pace_zh").set_value(2.5).run()
    assert not at.exception
    after = _polylines(_lever_svgs(at)[0])
    assert after.keys() == lines.keys()
    changed = {k for k in lines if after[k]["data-values"] != lines[k]["data-values"]}
    assert changed == {current[0]["data-name"]}


def test_interactive_toggle_draws_the_lever_charts_in_plotly_and_is_in_the_link(monkeypatch):
    """The lever screen's "interactive charts" switch: plotly charts (hover, zoom) instead of the
    server-drawn images, the same lines; kept in the URL (ia=1), and a link with ia=1 opens so."""
    monkeypatch.setenv("LXSD_MODEL", REAL)
    at = app("levers", "en")
    assert len(_lever_svgs(at)) == 4 and not at.get("plotly_chart")
    at.toggle(key="w_ia_en").set_value(True).run()
    assert not at.exception and not _lever_svgs(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 4 and qp(at, "ia") == "1"
    import json
    fig = json.loads(charts[0].proto.spec)
    names = [tr.get("name") for tr in fig["data"]]
    assert "Current settings" in names and any("(base)" in (n or "") for n in names)
    opened = app("levers", "zh", ia="1")
    assert not opened.exception and len(opened.get("plotly_chart")) == 4 and not _lever_svgs(opened)
