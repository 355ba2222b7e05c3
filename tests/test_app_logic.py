"""The app's logic without Streamlit: LMDI, URL state, levers, runs, ensemble, report."""
from __future__ import annotations

import sys
from pathlib import Path as _P

sys.path.insert(0, str(_P(__file__).resolve().parent.parent))  # lxapp/ beside app.py

from pathlib import Path

import numpy as np
import pytest

from lxapp import CJK_FONT, charts, core, lmdi, report, state

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "lxapp" / "demo" / "demo_model.toml"


@pytest.fixture(scope="module")
def bundle():
    return core.load_bundle(DEMO)


def test_lmdi_effects_sum_to_the_change():
    ref = {"population": 42.5, "gdp": 343.9, "energy": 120.0, "co2": 260.0}
    alt = {"population": 44.0, "gdp": 420.0, "energy": 118.0, "co2": 230.0}
    eff = lmdi.decompose(ref, alt)
    assert sum(eff[f] for f in lmdi.FACTORS) == pytest.approx(eff["total"], rel=1e-12)
    assert eff["population"] > 0 and eff["gdp_per_person"] > 0 and eff["carbon_intensity"] < 0
    same = lmdi.decompose(ref, ref)
    assert all(abs(float(same[f])) < 1e-12 for f in lmdi.FACTORS)


def test_lmdi_on_runs(bundle):
    df = core.combine({"a": core.run_one(bundle, {}), "b": core.run_one(bundle, {"carbon_policy_strength": 2.5})})
    eff = lmdi.decompose_frame(df, "a", "b")
    total = eff[list(lmdi.FACTORS)].sum(axis=1)
    np.testing.assert_allclose(total, eff["total"], rtol=1e-9, atol=1e-9)
    assert eff.loc[2030.0, "total"] < 0


def test_state_round_trip():
    view = {"lang": "en", "page": "compare", "sc": ["current", "plan"], "ref": "plan", "base": "actual_trend",
            "lv": {"rongyue_pace": 2.0, "ethylene_start_year": 2026.0}, "unc": True, "more": ["x"]}
    assert state.decode(state.encode(view)) == view
    assert state.decode({"page": "nope", "lang": "fr", "lv": "a:b;c:1"}) == {"lv": {"c": 1.0}}


def test_levers_come_from_the_model(bundle):
    names = [lv.name for lv in core.levers(bundle)]
    assert names[:3] == ["ethylene_start_year", "ethylene_scale", "rongyue_pace"]
    eff = next(lv for lv in core.levers(bundle) if lv.name == "efficiency_trend")
    assert eff.kind == "multiplier" and eff.default == 1.0
    over = core.current_overrides(bundle, {}, {"efficiency_trend": 1.5, "rongyue_pace": 99})
    assert over["rongyue_pace"] == 2.5                         # clipped to the range
    assert over["efficiency_trend"]["heavy"] == pytest.approx(0.045 * 1.5)
    assert core.var_label(bundle, "industry_share[heavy]", "zh") == "产业结构[heavy]"


def test_ensemble_bands_are_ordered(bundle):
    bands, res = core.ensemble(bundle, {}, ["gdp_real", "industry_share"], n=200)
    b = bands["gdp_real"]
    assert b.shape == (5, 21)
    assert np.all(np.diff(b, axis=0) >= -1e-9)
    assert "industry_share[heavy]" in bands
    assert b[4, -1] > b[0, -1]      # there is spread


def test_actuals_and_fit(bundle):
    df = core.run_one(bundle, {})
    table = core.fit_table(bundle, df)
    assert set(table["column"]) >= {"gdp_nominal", "urbanization_rate"}
    stats = core.fit_statistics(table)
    assert stats["n"] == len(table) and stats["mape_pct"] >= 0


def test_figures_name_a_cjk_font(bundle):
    df = core.add_aggregates(bundle, core.combine({"current": core.run_one(bundle, {})}))
    fig = charts.line_figure(bundle, df, "gdp_real", "zh", {"current": "当前设置"}, actuals=bundle.actuals)
    assert fig.layout.font.family == CJK_FONT
    assert "Noto Sans CJK SC" in fig.layout.font.family
    html = report.html_report("报告", "zh", ["当前设置"], None, [], [fig])
    assert "Noto Sans CJK SC" in html and "报告" in html
    assert charts.structure_figure(bundle, df, "zh", {"current": "x"}) is not None


def test_excel_and_csv(bundle):
    df = core.combine({"current": core.run_one(bundle, {})})
    assert report.results_csv(df).startswith("\ufeff".encode("utf-8"))
    assert report.results_excel(df)[:2] == b"PK"


def test_real_model_levers_if_it_loads():
    b = core.load_bundle()
    assert not b.is_demo, f"model/linxiang.toml does not load: {b.load_error[:200]}"
    names = {lv.name for lv in core.levers(b)}
    assert {"ethylene_start_year", "ethylene_scale", "rongyue_pace", "carbon_policy_strength",
            "shock_year", "shock_size"} <= names
    assert not b.scenario_errors, b.scenario_errors
    for h in core.HEADLINE:
        assert h in b.variables, h


def test_diagram_and_loops(bundle):
    from lxapp import diagram
    dot = diagram.dot(bundle, "zh")
    assert dot.startswith("digraph") and "capacity" in dot
    assert "gdp_real" in diagram.dot(bundle, "en", "gdp_real")
    loops = diagram.stock_loops(bundle)
    assert any(lp == ["capacity"] for lp in loops)       # capacity grows from itself
    table = diagram.variable_table(bundle, "zh")
    assert {"name", "equation", "unit", "source"} <= set(table.columns)
