"""Time settings given as equations (Vensim's dynamic FINAL TIME, TIME STEP, SAVEPER,
INITIAL TIME): engine.integrate.dynamic_clock. Oracles: the fixed clock (an equation that is
a constant gives the same numbers bit for bit), closed forms, and the Vensim rules."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import EngineError, ModelError, SimulationError, compile_model, load_model
from engine.integrate import dynamic_clock
from engine.parse import model_from_dict


def build(time: dict, aux=None, const=None, stocks=None, flows=None):
    d = {"model": {"name": "t"}, "time": {"start": 0, "stop": 10, "dt": 1, **time}}
    for key, sec in (("constants", const), ("stocks", stocks), ("flows", flows)):
        if sec:
            d[key] = sec
    d["auxiliaries"] = {k: {"equation": v} for k, v in (aux or {}).items()}
    return compile_model(model_from_dict(d, "dyn.toml"), check_units=False)


GROWTH = dict(stocks={"x": {"initial": "1", "inflows": ["inflow"]}},
              flows={"inflow": {"equation": "rate * x"}},
              const={"rate": {"value": 0.1}})


def test_final_time_equation_stops_when_condition_holds():
    m = build({"stop": "IF_THEN_ELSE(x > 2, TIME, 100)"}, **GROWTH)
    assert m.time.stop == 100          # its value at the start
    res = m.run()
    x = res["x"][0]
    # Euler: x_k = 1.1^k; the first k with x > 2 is 8 (1.1^8 = 2.14), where the run ends
    assert res.times[-1] == 8
    np.testing.assert_allclose(x, 1.1 ** np.arange(9), rtol=1e-12)
    np.testing.assert_array_equal(res["FINAL_TIME"][0][-1], 8)


def test_final_time_per_run_in_a_batch_ends_runs_separately():
    m = build({"stop": "IF_THEN_ELSE(x > limit, TIME, 100)"}, const={"rate": {"value": 0.1}, "limit": {"value": 2}},
              stocks=GROWTH["stocks"], flows=GROWTH["flows"])
    batch = m.run(params={"limit": [1.5, 2.0, 3.0]})
    assert batch.times[-1] == 12        # 1.1^12 = 3.14 > 3
    for i, lim in enumerate([1.5, 2.0, 3.0]):
        single = m.run(params={"limit": lim})
        T = len(single.times)
        np.testing.assert_array_equal(batch.times[:T], single.times)
        np.testing.assert_array_equal(batch["x"][i][:T], single["x"][0])
        assert np.all(np.isnan(batch["x"][i][T:])), "a run that has ended holds NaN afterwards"


def test_constant_equations_give_the_fixed_clock_bit_for_bit():
    """The dynamic loop with settings that never change equals the fixed-clock driver."""
    fixed = build({"stop": 30, "dt": 0.25, "saveper": 0.5}, **GROWTH)
    dyn = build({"stop": "30", "dt": "0.25", "saveper": "0.5"}, **GROWTH)
    for method in ("euler", "rk2", "rk4"):
        a, b = fixed.run(method=method), dyn.run(method=method)
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a["x"], b["x"])


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 60), per=st.integers(1, 4), dt=st.sampled_from([1.0, 0.5, 0.25, 0.125, 0.1, 1 / 3]),
       start=st.sampled_from([0.0, 2015.0, -5.5]))
def test_dynamic_clock_matches_fixed_clock(steps, per, dt, start):
    stop = start + steps * per * dt
    t = {"start": start, "stop": stop, "dt": dt, "saveper": per * dt}
    a = build(t, **GROWTH).run(method="rk4")
    b = build({**t, "stop": repr(stop), "dt": repr(dt)}, **GROWTH).run(method="rk4")
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a["x"], b["x"])


def test_time_step_change_keeps_time_exact_and_integrates_exactly():
    # inflow 1: the stock equals the elapsed time whatever the step; time never drifts
    m = build({"stop": 20, "dt": "IF_THEN_ELSE(TIME < 4, 1, 0.1)", "saveper": "TIME_STEP"},
              stocks={"s": {"initial": "0", "inflows": ["one"]}}, flows={"one": {"equation": "1"}})
    res = m.run()
    expected = np.concatenate([np.arange(0, 4), 4 + np.arange(0, 161) * 0.1])
    np.testing.assert_array_equal(res.times, expected)   # t_s + k*dt, not accumulated sums
    np.testing.assert_allclose(res["s"][0], res.times, rtol=1e-12)
    assert res["TIME_STEP"][0][3] == 1 and res["TIME_STEP"][0][4] == 0.1


def test_saveper_equation_and_vensim_control_vars_rules():
    """The SDXorg control_vars model, written in our format: the canonical save times."""
    m = build({"start": "IF_THEN_ELSE(TIME < 3, 0, 0.2)", "stop": "IF_THEN_ELSE(TIME < 5, 10, 50)",
               "dt": "IF_THEN_ELSE(TIME < 4, 1, 0.5)", "saveper": "IF_THEN_ELSE(TIME < 10, TIME_STEP, 5)"},
              aux={"var": "TIME"})
    res = m.run()
    want = [0, 1, 2, 3, 4] + list(np.arange(4.5, 10, 0.5)) + list(range(10, 51, 5))
    np.testing.assert_allclose(res.times, want)
    np.testing.assert_allclose(res["var"][0], want)
    assert res["INITIAL_TIME"][0][3] == 0.2      # reported as it changes; the run started at 0


def test_rk4_with_a_step_change_converges_at_fourth_order():
    # dx/dt = -x from 0 to 4, the step halving at t = 2: error ~ h^4
    def err(h):
        m = build({"stop": 4, "dt": f"IF_THEN_ELSE(TIME < 2, {h}, {h / 2})", "saveper": 1},
                  stocks={"x": {"initial": "1", "outflows": ["out"]}}, flows={"out": {"equation": "x"}})
        res = m.run(method="rk4")
        return abs(res["x"][0][-1] - np.exp(-4.0))
    order = np.log2(err(0.2) / err(0.1))
    assert 3.7 < order < 4.3


# ------------------------------------------------------------------ errors


def test_time_step_differing_across_the_batch_is_an_error():
    m = build({"dt": "step_size"}, const={"step_size": {"value": 1}}, aux={"y": "TIME"})
    with pytest.raises(SimulationError, match="TIME STEP differs between the runs"):
        m.run(params={"step_size": [1.0, 0.5]})


def test_non_positive_time_step_is_an_error():
    with pytest.raises(ModelError, match="TIME STEP must be positive"):
        build({"dt": "0 * TIME"}, aux={"y": "TIME"})
    m = build({"dt": "IF_THEN_ELSE(TIME < 3, 1, -1)"}, aux={"y": "TIME"})
    with pytest.raises(SimulationError, match="TIME STEP must be positive; it is -1 at time 3"):
        m.run()


def test_final_time_running_away_stops_with_a_message(monkeypatch):
    monkeypatch.setattr(dynamic_clock, "MAX_STEPS", 500)
    m = build({"stop": "TIME + 1"}, aux={"y": "TIME"})
    with pytest.raises(SimulationError, match="has not reached FINAL TIME after 500 steps"):
        m.run()


def test_initial_time_without_a_fixed_point_is_reported():
    with pytest.raises(ModelError, match="do not settle"):
        build({"start": "TIME + 1"}, aux={"y": "TIME"})


def test_adaptive_method_is_refused():
    m = build({"stop": "IF_THEN_ELSE(TIME > 5, TIME, 10)"}, aux={"y": "TIME"})
    with pytest.raises(SimulationError, match="fixed-step method"):
        m.run(method="adaptive")


def test_delay_fixed_with_a_changing_step_is_refused():
    m = build({"dt": "IF_THEN_ELSE(TIME < 3, 1, 0.5)"}, aux={"y": "DELAY_FIXED(TIME, 2, 0)"})
    with pytest.raises(SimulationError, match="y: DELAY FIXED.*needs a constant TIME STEP"):
        m.run()


def test_delay_fixed_with_a_dynamic_final_time_runs():
    m = build({"stop": "IF_THEN_ELSE(TIME >= 6, TIME, 10)"}, aux={"y": "DELAY_FIXED(TIME, 2, 0)"})
    res = m.run()
    np.testing.assert_array_equal(res.times, np.arange(7))
    np.testing.assert_array_equal(res["y"][0], [0, 0, 0, 1, 2, 3, 4])


def test_bad_time_equation_names_the_field():
    with pytest.raises(ModelError, match=r"time\.stop.*cannot parse"):
        build({"stop": "IF_THEN_ELSE(TIME > 5, TIME"})
    with pytest.raises(ModelError, match=r"time\.dt.*must be a number or an equation"):
        build({"dt": [1, 2]})


def test_a_variable_may_not_take_a_time_setting_name():
    with pytest.raises(ModelError, match="FINAL_TIME.*time setting"):
        build({"stop": "10 + 0 * TIME"}, aux={"FINAL_TIME": "3"})


def test_a_number_cannot_replace_a_setting_that_is_an_equation():
    # equations that use FINAL_TIME would still see the equation's value: refused, not half-applied
    m = build({"stop": "IF_THEN_ELSE(TIME >= 6, TIME, 10)"}, aux={"y": "TIME"})
    assert m.run().times[-1] == 6
    with pytest.raises(EngineError, match="FINAL TIME is an equation"):
        m.run(stop=3)
    assert m.run(dt=0.5).times[-1] == 6     # the settings that are numbers can still be given


@pytest.mark.parametrize("given, message", [
    ({"saveper": 0}, "SAVEPER must be positive"),
    ({"dt": 0}, "TIME STEP must be positive"),
    ({"dt": float("nan")}, "TIME STEP must be a finite number"),
    ({"dt": 0.25, "saveper": 0.3}, "must be a multiple of TIME STEP"),
])
def test_numbers_beside_equations_are_checked(given, message):
    m = build({"stop": "IF_THEN_ELSE(TIME >= 6, TIME, 10)"}, aux={"y": "TIME"})
    with pytest.raises(EngineError, match=message):
        m.run(**given)


def test_final_time_before_the_start_is_an_error():
    m = build({"stop": "end"}, const={"end": {"value": 10}}, aux={"y": "TIME"})
    with pytest.raises(EngineError, match=r"FINAL TIME \(10\) is before INITIAL TIME \(20\)"):
        m.run(start=20)


def test_step_sees_the_new_time_step_where_it_changes():
    # PySD and Vensim: STEP switches where TIME + TIME_STEP/2 > its time, TIME_STEP read at that time
    m = build({"stop": 5, "dt": "IF_THEN_ELSE(TIME < 4, 1, 0.1)", "saveper": "TIME_STEP"}, aux={"s": "STEP(1, 4.42)"})
    res = m.run()
    s = dict(zip(np.round(res.times, 9), res["s"][0], strict=True))
    assert s[4.0] == 0 and s[4.3] == 0 and s[4.4] == 1 and s[5.0] == 1


def test_numpy_errors_name_the_equation():
    m = build({"stop": "5 + 0 * TIME"}, const={"a": {"value": 1}}, aux={"y": "LN(a - 1) * 0 + 1"},
              stocks={"x": {"initial": "1", "inflows": ["g"]}}, flows={"g": {"equation": "y"}})
    with pytest.raises(SimulationError, match="not finite"):
        m.run()


def test_non_finite_blames_a_run_still_going():
    # w is -inf in run 0 once it has ended (its end is past); the real culprit is f in run 1
    m = build({"stop": "end"}, const={"end": {"value": 3}, "k": {"value": 0}},
              aux={"w": "LN(end - TIME + 1)"},
              stocks={"x": {"initial": "10", "inflows": ["f"]}}, flows={"f": {"equation": "k * x * x * x + 0 * w"}})
    with pytest.raises(SimulationError) as info:
        m.run(params={"end": [3.0, 40.0], "k": [0.0, 1.0]})
    # the run's label (issue 15), was 'scenario #1'
    assert "run '1'" in str(info.value) and "w" not in str(info.value).split(":")[1]


def vensim(*equations: str) -> str:
    """A small .mdl: the equations given (no units), INITIAL TIME 0 and TIME STEP 1."""
    body = "".join(f"{eq}\n\t~\t\t~\t\t|\n" for eq in equations)
    return ("{UTF-8}\n" + body + "INITIAL TIME  = 0\n\t~\t\t~\t\t|\nSAVEPER  = TIME STEP\n\t~\t\t~\t\t|\n"
            "TIME STEP  = 1\n\t~\t\t~\t\t|\n\\\\\\---/// Sketch information - do not modify anything except names\n")


def test_imported_vensim_model_with_dynamic_final_time(tmp_path):
    mdl = tmp_path / "dyn.mdl"
    mdl.write_text(vensim("level= INTEG (growth, 1)", "growth= level * 0.5",
                          "FINAL TIME  = IF THEN ELSE(level > 10, Time, 100)"), encoding="utf-8")
    res = load_model(mdl).run()
    # Euler: 1.5^k; 1.5^6 = 11.4 > 10
    assert res.times[-1] == 6
    np.testing.assert_allclose(res["level"][0], 1.5 ** np.arange(7))


def test_delay_fixed_longer_than_the_first_final_time():
    # FINAL TIME moves from 5 to 20 during the run: a 12-step delay must not be cut at the first horizon
    m = build({"stop": "IF_THEN_ELSE(TIME < 3, 5, 20)"}, aux={"y": "DELAY_FIXED(TIME, 12, -1)"})
    res = m.run()
    np.testing.assert_array_equal(res.times, np.arange(21))
    np.testing.assert_array_equal(res["y"][0], [-1] * 12 + list(range(9)))


def test_runs_that_have_ended_do_not_constrain_the_clock():
    # run 0 ends at 3; afterwards its TIME STEP would be 0.5 while run 1's is 1: no conflict
    m = build({"stop": "IF_THEN_ELSE(TIME >= limit, TIME, 100)", "dt": "IF_THEN_ELSE(TIME > limit, 0.5, 1)"},
              const={"limit": {"value": 3}}, aux={"y": "TIME"})
    res = m.run(params={"limit": [3.0, 6.0]})
    np.testing.assert_array_equal(res.times, np.arange(7))
    np.testing.assert_array_equal(res["y"][0], [0, 1, 2, 3] + [np.nan] * 3)
    np.testing.assert_array_equal(res["y"][1], np.arange(7))


def test_imported_final_time_that_reads_a_constant_follows_it(tmp_path):
    # FINAL TIME = final year: setting final year changes the run's length (as in Vensim and PySD)
    mdl = tmp_path / "years.mdl"
    mdl.write_text(vensim("final year = 10", "y = Time", "FINAL TIME  = final year"), encoding="utf-8")
    m = load_model(mdl)
    assert m.time.stop == 10 and m.run().times[-1] == 10
    assert m.run(params={"final year": 5}).times[-1] == 5
    from engine.cli import original_column
    assert original_column(m.model, "FINAL_TIME") == "FINAL TIME"


SUITE = Path(os.environ.get("SD_TEST_MODELS", Path(__file__).resolve().parents[2] / "shared" / "sd-test-models"))
TESTS = SUITE / "tests" if (SUITE / "tests").is_dir() else SUITE


@pytest.mark.skipif(not TESTS.is_dir(), reason=f"SDXorg test-models not found at {TESTS}")
@pytest.mark.parametrize("folder", ["control_vars", "dynamic_final_time"])
def test_convert_then_export_round_trip_runs_the_same_in_pysd(folder, tmp_path):
    """.mdl -> our TOML -> .mdl again: PySD runs the export as we run the TOML."""
    import warnings

    import pysd

    from engine.cli import main

    src = next((TESTS / folder).glob("*.mdl"))
    toml, mdl = tmp_path / "m.toml", tmp_path / "m.mdl"
    assert main(["convert", str(src), "--out", str(toml)]) == 0
    assert main(["export", str(toml), "--to", "mdl", "--out", str(mdl)]) == 0
    ours = load_model(toml).run()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pysd.read_vensim(str(mdl)).run()
    np.testing.assert_allclose(ours.times, theirs.index.to_numpy(dtype=float))
    for ident in ("FINAL_TIME", "TIME_STEP", "SAVEPER"):
        if ident in ours.variables:
            np.testing.assert_allclose(ours[ident][0], theirs[ident.replace("_", " ")].to_numpy(dtype=float))
