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
            "lv": {"rongyue_pace": 2.0, "ethylene_start_year": 2026.0, "investment_rate_future": 0.1204},
            "unc": True, "more": ["x"], "ch": ["gdp_real", "industry_share[secondary]"], "grp": 7, "ly": 2028,
            "ia": True}
    assert state.decode(state.encode(view)) == (view, [])
    assert state.decode(state.encode(view | {"ch": []}))[0]["ch"] == []      # "no charts" is kept


@pytest.mark.parametrize("query,needle", [
    ({"lv": "ethylene_scale:nan"}, "not a finite number"),
    ({"lv": "ethylene_scale:inf"}, "not a finite number"),
    ({"lv": "ethylene_scale:-Infinity"}, "not a finite number"),
    ({"lv": "ethylene_scale:abc"}, "not a number"),
    ({"lv": "ethylene_scale"}, "no value"),
    ({"page": "nope"}, "page=nope"),
    ({"lang": "fr"}, "lang=fr"),
    ({"grp": "5"}, "grp=5"),
    ({"ly": "20x"}, "ly=20x"),
    ({"sc": "x" * 3000}, "longer than"),
])
def test_state_decode_names_what_is_wrong(query, needle):
    view, problems = state.decode(query)
    assert len(problems) == 1 and needle in problems[0]
    assert "lv" not in view or not view["lv"]


def test_levers_come_from_the_presentation(bundle):
    names = [lv.name for lv in core.levers(bundle)]
    assert names[:3] == ["ethylene_start_year", "ethylene_scale", "rongyue_pace"]
    assert {lv.group for lv in core.levers(bundle)} >= {"projects", "energy"}
    eff = next(lv for lv in core.levers(bundle) if lv.name == "efficiency_trend")
    assert eff.kind == "multiplier" and eff.default == 1.0
    over = core.current_overrides(bundle, {}, {"efficiency_trend": 1.5, "rongyue_pace": 99})
    assert over["rongyue_pace"] == 2.5                         # clipped to the range
    assert over["efficiency_trend"]["heavy"] == pytest.approx(0.045 * 1.5)
    assert core.var_label(bundle, "industry_share[heavy]", "zh") == "产业结构[heavy]"


def test_precision_step_keeps_calibrated_values():
    assert core.precision_step([0.1, 0.5, 0.1204], 0.4) == pytest.approx(1e-4)
    assert core.precision_step([0.0, 2.5, 1.0], 2.5) == pytest.approx(0.05)     # the nice step when it fits
    lv = core.Lever("x", "value", 0.1, 0.5, 0.1204, core.precision_step([0.1, 0.5, 0.1204], 0.4))
    assert core.fit(lv, 0.1204) == 0.1204                       # an untouched slider shows the exact value


def test_calibrated_lever_is_a_slider_through_the_base_value():
    """A value calibrated to six digits (0.388274 in 0.1-0.5) would need 400 000 steps on its
    precision's grid: the slider takes the range's step on a grid through the base's value."""
    b = core.load_bundle()
    base = core.scenario_value(b, "actual_trend", next(x for x in core.levers(b) if x.name == "investment_rate_future"))
    lv = next(x for x in core.levers(b, base="actual_trend") if x.name == "investment_rate_future")
    assert lv.kind == "value" and lv.anchor == base and len(f"{base}".split(".")[1]) >= 5
    assert lv.step == pytest.approx(0.005)
    assert 0.1 <= lv.low < 0.1 + lv.step and 0.5 - lv.step < lv.high <= 0.5
    assert core.fit(lv, base) == base                            # untouched: the exact value
    assert core.fit(lv, base + 0.0051) == round(base + 0.005, 10)   # moved: one step from it
    assert core.decimals(lv) >= len(f"{base}".split(".")[1])     # the slider shows every digit
    # another base: the grid goes through its value
    plan = next(x for x in core.levers(b, base="plan") if x.name == "investment_rate_future")
    assert core.fit(plan, core.scenario_value(b, "plan", plan)) == core.scenario_value(b, "plan", plan)


def test_untouched_levers_keep_every_scenario_value():
    """Issue 13: an untouched slider never changes a value; every scenario's lever values lie on
    its slider's steps, and the current settings without moves equal the base scenario."""
    b = core.load_bundle()
    for name in b.scenarios:
        for lv in core.levers(b, base=name):
            v = core.scenario_value(b, name, lv)
            assert lv.kind in ("value", "year", "multiplier"), lv      # every lever is a slider
            if lv.kind in ("value", "year"):
                assert core.fit(lv, v) == v, (lv.name, name, v, lv.step)
                assert (lv.high - lv.low) / lv.step <= 20000
    for sc in b.scenarios.values():
        assert core.current_overrides(b, dict(sc.overrides), {}) == dict(sc.overrides)


def test_ensemble_comes_from_the_engine(bundle):
    bands, prob, kind = core.ensemble(bundle, {}, ["gdp_real", "industry_share"], n=200, seed=3)
    b = bands["gdp_real"]
    assert b.shape == (5, 21)
    assert np.all(np.diff(b, axis=0) >= -1e-9)
    assert "industry_share[heavy]" in bands
    assert b[4, -1] > b[0, -1]      # there is spread
    assert kind == "prior" and list(prob.columns) == ["id", "p_met", "median_margin"]
    again, _, _ = core.ensemble(bundle, {}, ["gdp_real"], n=200, seed=3)
    np.testing.assert_array_equal(again["gdp_real"], b)      # seeded


def test_plan_paths_follow_the_targets():
    b = core.load_bundle()
    df = core.run_one(b, dict(b.scenarios["plan"].overrides))
    paths = core.plan_paths(b, df)
    g = paths["gdp_real"]
    x2020 = float(df.loc[2020.0, "gdp_real"])
    assert g["x"][0] == 2020 and g["x"][-1] == 2025
    assert g["y"][-1] == pytest.approx(x2020 * 1.104 ** 5)
    e = paths["energy_intensity"]
    red = next(t for t in b.targets if t["id"] == "18_energy_intensity_reduction")["target_2025"]
    assert e["y"][-1] == pytest.approx(float(df.loc[2020.0, "energy_intensity"]) * (1 - red / 100))
    u = paths["urbanization_rate"]
    assert u["y"][0] == pytest.approx(0.556) and u["y"][-1] == pytest.approx(0.65)


def test_units_read_as_people_read_them():
    b = core.load_bundle()
    assert not core.is_fraction(b, "income_ratio")              # 1.74, not "174 %"
    assert core.is_fraction(b, "urbanization_rate")
    assert core.unit_label(b, "gdp_nominal", "zh") == "亿元"
    assert core.translate_unit("yuan/person/year", "zh") == "元/人"
    assert core.translate_unit("mu/year", "zh") == "亩/年"
    assert core.translate_unit("1e8 yuan (2020 prices)/year", "zh").startswith("亿元 (2020年价)")
    for v in b.variables.values():                             # no raw English unit words in Chinese
        zh = core.translate_unit(v.unit or "", "zh")
        assert not any(w in zh for w in ("yuan", "person", "dmnl", "mu/")), (v.name, v.unit, zh)


def test_actuals_and_fit(bundle):
    df = core.run_one(bundle, {})
    table = core.fit_table(bundle, df)
    assert set(table["column"]) >= {"gdp_nominal", "urbanization_rate"}
    stats = core.fit_statistics(table)
    assert stats["n"] == len(table) and stats["mape"] >= 0
    assert stats["mape"] == pytest.approx(np.mean(np.abs(table["error_pct"])))
    assert stats["u_m"] + stats["u_s"] + stats["u_c"] == pytest.approx(1.0)


def test_figures_name_a_cjk_font(bundle):
    df = core.add_aggregates(bundle, core.combine({"current": core.run_one(bundle, {})}))
    fig = charts.line_figure(bundle, df, "gdp_real", "zh", {"current": "当前设置"}, actuals=bundle.actuals)
    assert fig.layout.font.family == CJK_FONT
    assert "Noto Sans CJK SC" in fig.layout.font.family
    html = report.html_report("报告", "zh", ["当前设置"], None, [], [fig])
    assert "Noto Sans CJK SC" in html and "报告" in html
    assert charts.structure_figure(bundle, df, "zh", {"current": "x"}) is not None


def test_excel_and_csv_are_labelled(bundle):
    df = core.combine({"current": core.run_one(bundle, {})})
    lab = report.labelled_results(bundle, df, "zh", lambda s: "当前设置")
    label = core.var_label(bundle, "urbanization_rate", "zh")
    assert f"{label} (%) [urbanization_rate]" in lab.columns and "城" in label
    assert lab[f"{label} (%) [urbanization_rate]"].iloc[0] > 1            # a percentage, not a fraction
    assert lab["年份"].dtype.kind == "i" and set(lab["情景"]) == {"当前设置"}
    assert report.results_csv(lab).startswith("\ufeff".encode("utf-8"))
    import io

    import pandas as pd
    head = pd.DataFrame({"a": [1]})
    xlsx = report.results_excel(lab, {"主要指标": head}, results_name="结果")
    # the headline sheet first
    assert pd.ExcelFile(io.BytesIO(xlsx), engine="openpyxl").sheet_names == ["主要指标", "结果"]


def test_report_numbers_are_plain():
    import pandas as pd
    html = report.html_report("r", "en", ["a"], None, [("t", pd.DataFrame({"year": [2026.0], "x": [18000.0],
                                                                        "y": [0.5]}))], [])
    assert "2026" in html and "2,026" not in html and "18,000" in html and "e+04" not in html


def test_real_model_presentation():
    b = core.load_bundle()
    assert not b.is_demo, f"model/linxiang.toml does not load: {b.load_error[:200]}"
    names = {lv.name for lv in core.levers(b)}
    assert {"ethylene_start_year", "ethylene_scale", "rongyue_pace", "carbon_policy_strength",
            "shock_year", "shock_size"} <= names
    assert not b.scenario_errors, b.scenario_errors
    assert core.headline(b)[:2] == ["gdp_real", "gdp_nominal"]
    assert {a["column"] for a in b.presentation["actuals"].values()} >= {"gdp_nominal", "urbanization_rate"}


def test_diagram_and_loops(bundle):
    from lxapp import diagram
    dot = diagram.dot(bundle, "zh")
    assert dot.startswith("digraph") and "capacity" in dot
    assert "gdp_real" in diagram.dot(bundle, "en", "gdp_real")
    loops = diagram.feedback_loops(bundle)                 # the engine's loops (engine.analysis.structure)
    assert any(lp.variables == ("capacity", "capacity_growth") for lp in loops)   # capacity grows from itself
    assert any(lp.polarity == -1 for lp in loops) and any(lp.polarity == 1 for lp in loops)
    table = diagram.variable_table(bundle, "zh")
    assert {"name", "equation", "unit", "source"} <= set(table.columns)


def test_scorecard_numbers_have_no_exponents():
    import pandas as pd

    from lxapp import scoring
    long = pd.DataFrame([{"scenario": "a", "id": "x", "name_zh": "指标", "name_en": "x", "kind": "expected",
                          "unit": "%", "target_2025": 2.8, "value_2025": 2.8 + 4.44e-16, "met": True,
                          "margin": 4.44e-16},
                         {"scenario": "a", "id": "y", "name_zh": "就业", "name_en": "y", "kind": "binding",
                          "unit": "person", "target_2025": 18000.0, "value_2025": -3000.0, "met": False,
                          "margin": -21000.0}])
    m, status = scoring.matrix(long, ["a"], "a", "zh", lambda s: "甲")
    assert m["甲"].tolist() == ["✔ 2.8 (余量 +0)", "✘ -3,000 (余量 −21,000)"]
    assert m["单位"].tolist() == ["%", "人"] and status["甲"].tolist() == ["met", "missed"]
