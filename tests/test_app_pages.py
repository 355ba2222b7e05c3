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


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [h.value for h in at.header] + [h.value for h in at.title]
    parts += [str(m.label) + str(m.value) for m in at.metric]
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
    # the fan note shows on compare
    at = app("compare", "en", unc="1")
    assert any("500" in c.value for c in at.caption)


def _metric_values(at):
    return [m.value for m in at.metric]


def test_moving_a_lever_changes_the_numbers(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("overview", "zh")
    before = _metric_values(at)
    table_before = at.dataframe[0].value.copy()
    at.sidebar.slider(key="lv_rongyue_pace").set_value(2.5).run()
    assert not at.exception
    after = _metric_values(at)
    assert before != after
    assert not at.dataframe[0].value.equals(table_before)
    # the URL holds the lever
    assert "rongyue_pace:2.5" in at.query_params["lv"][0] if isinstance(at.query_params["lv"], list) \
        else "rongyue_pace:2.5" in at.query_params["lv"]


def test_lever_year_and_multiplier(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("overview", "en")
    before = _metric_values(at)
    at.sidebar.slider(key="lv_efficiency_trend").set_value(2.0).run()
    mid = _metric_values(at)
    assert mid != before
    at.sidebar.slider(key="lv_shock_size").set_value(0.2).run()
    at.sidebar.slider(key="lv_shock_year").set_value(2025).run()
    assert _metric_values(at) != mid


def test_url_reopens_the_view(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("compare", "en", sc="current,plan,rongyue_fast", ref="plan", base="plan", lv="rongyue_pace:2")
    assert not at.exception
    assert at.sidebar.toggle(key="en").value is True
    assert at.sidebar.radio(key="page").value == "compare"
    assert at.sidebar.multiselect(key="sc_en").value == ["current", "plan", "rongyue_fast"]
    assert at.sidebar.selectbox(key="ref_en").value == "plan"
    assert at.sidebar.slider(key="lv_rongyue_pace").value == 2.0


def test_language_switch(monkeypatch):
    monkeypatch.setenv("LXSD_MODEL", DEMO)
    at = app("overview", "zh")
    assert "总览" in texts(at)
    at.sidebar.multiselect(key="sc_zh").set_value(["current", "rongyue_fast", "plan"]).run()
    at.sidebar.toggle(key="en").set_value(True).run()
    assert "Overview" in texts(at)
    assert "GDP" in texts(at)
    # the choice survives the switch, in the English widget
    assert at.sidebar.multiselect(key="sc_en").value == ["current", "rongyue_fast", "plan"]
    assert at.sidebar.selectbox(key="ref_en").value == "plan"


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
    at.sidebar.radio(key="page").set_value("compare").run()
    assert not at.exception
    at.sidebar.multiselect(key="sc_en").set_value(["current", "plan", "carbon_peak_strict", "shock_2025",
                                                "rongyue_fast"]).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 4
