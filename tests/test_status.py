"""Per-run status in a batch (issue 11 item 4): a failing run does not abort the others.

Oracles: the same runs made one at a time (a batch must return the others' values unchanged),
and the time at which each failing run's equations break, worked out by hand.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import SimulationError, compile_model
from engine.parse.model_file import model_from_dict
from engine.results import RunFailure, RunStatus


def build(stop=10, dt=1.0, **sections):
    spec = {"model": {"name": "status"}, "time": {"start": 0, "stop": stop, "dt": dt}}
    spec.update(sections)
    return compile_model(model_from_dict(spec, "status.toml"), check_units=False)


def blowup_model():
    # g = 1 / (T - TIME): infinite at TIME = T; x accumulates g
    return build(constants={"T": {"value": 100}},
                 stocks={"x": {"initial": "0", "inflows": ["g"]}},
                 flows={"g": {"equation": "1 / (T - TIME)"}},
                 auxiliaries={"y": {"equation": "x * 2"}})


def test_one_failing_run_leaves_the_others_unchanged():
    m = blowup_model()
    T = np.array([100.0, 4.0, 50.0, 7.0])
    res = m.run(params={"T": T}, throw=False)
    assert res.status.shape == (4,) and res.ok.tolist() == [True, False, True, False]
    for i in (0, 2):
        alone = m.run(params={"T": T[i]})
        np.testing.assert_array_equal(res["x"][i], alone["x"][0])
        np.testing.assert_array_equal(res["y"][i], alone["y"][0])
    # run 1: g is infinite at TIME = 4; values before are its own, NaN from 4 on
    assert np.isnan(res["x"][1][4:]).all() and np.isfinite(res["x"][1][:4]).all()
    first = m.run(params={"T": 4.0}, stop=3)
    np.testing.assert_array_equal(res["x"][1][:4], first["x"][0])
    f = {x.run: x for x in res.failures}
    assert set(f) == {1, 3}
    assert f[1].variable == "g" and f[1].time == 4 and f[1].status == RunStatus.NON_FINITE
    assert f[3].time == 7 and res.status[3] == RunStatus.NON_FINITE
    assert "not finite" in f[1].cause


def test_failure_names_the_scenario_label_and_message():
    m = blowup_model()
    res = m.run(scenarios={"calm": {"T": 100}, "crash": {"T": 5}}, throw=False)
    assert res.ok.tolist() == [True, False]
    (fail,) = res.failures
    assert isinstance(fail, RunFailure) and fail.label == "crash" and fail.run == 1
    msg = res.message(1)
    assert "\n" not in msg and "g" in msg and "time 5" in msg and "not finite" in msg and "crash" in msg
    assert res.message(0).endswith("ok")


def test_throw_keeps_raising():
    m = blowup_model()
    # the run's label (issue 15), was "scenario #1"
    with pytest.raises(SimulationError, match=r"g: value is not finite .* at time 4 in run '1' \(#1\)"):
        m.run(params={"T": [100.0, 4.0]})


def test_stock_overflow_is_its_own_status():
    # x doubles each step: from 1e307 the flow is finite but the stock overflows at TIME = 5
    m = build(constants={"x0": {"value": 1}},
              stocks={"x": {"initial": "x0", "inflows": ["g"]}}, flows={"g": {"equation": "x"}})
    res = m.run(params={"x0": [1.0, 1e307]}, throw=False)
    assert res.ok.tolist() == [True, False]
    (fail,) = res.failures
    assert fail.variable == "x" and fail.status == RunStatus.STOCK_OVERFLOW
    assert fail.time == 5
    x = res["x"][1]
    assert np.isnan(x[5:]).all()
    np.testing.assert_array_equal(x[:5], 1e307 * 2.0 ** np.arange(5))
    np.testing.assert_array_equal(res["x"][0], 2.0 ** np.arange(11))


def test_saved_variable_off_the_flow_path_fails_only_its_run():
    # w is saved but no flow uses it: the failure is found in the saved values
    m = build(constants={"a": {"value": 1}}, auxiliaries={"w": {"equation": "LN(a - TIME)"}},
              stocks={"x": {"initial": "1", "inflows": ["g"]}}, flows={"g": {"equation": "0.1 * x"}})
    res = m.run(params={"a": [100.0, 3.0]}, throw=False)
    assert res.ok.tolist() == [True, False]
    assert res.failures[0].variable == "w" and res.failures[0].time == 3
    assert np.isnan(res["x"][1][3:]).all() and np.isfinite(res["x"][1][:3]).all()
    np.testing.assert_array_equal(res["x"][0], m.run(params={"a": 100.0})["x"][0])


def test_a_guard_stops_only_its_run():
    # GET TIME VALUE refuses a relativeto other than 0 or 1: a guard inside the step, found by halving
    m = build(constants={"rel": {"value": 0}},
              auxiliaries={"v": {"equation": "GET_TIME_VALUE(rel, 0, 0)"}},
              stocks={"x": {"initial": "0", "inflows": ["g"]}}, flows={"g": {"equation": "v"}})
    res = m.run(params={"rel": [0.0, 1.0, 5.0]}, throw=False)
    assert res.ok.tolist() == [True, True, False]
    assert res.status[2] == RunStatus.GUARD and "GET TIME VALUE" in res.failures[0].cause
    np.testing.assert_array_equal(res["x"][0], m.run(params={"rel": 0.0})["x"][0])
    np.testing.assert_array_equal(res["x"][1], m.run(params={"rel": 1.0})["x"][0])
    assert np.isnan(res["x"][2]).all()
    with pytest.raises(SimulationError, match="GET TIME VALUE"):
        m.run(params={"rel": [0.0, 5.0]})


def test_non_negative_stock_starting_below_zero_fails_its_run():
    m = build(constants={"x0": {"value": 1}},
              stocks={"x": {"initial": "x0", "outflows": ["out"], "non_negative": True}},
              flows={"out": {"equation": "0.5"}})
    res = m.run(params={"x0": [3.0, -1.0]}, throw=False)
    assert res.ok.tolist() == [True, False] and res.status[1] == RunStatus.NEGATIVE_STOCK
    assert res.failures[0].time == 0 and np.isnan(res["x"][1]).all()
    np.testing.assert_array_equal(res["x"][0], [3, 2.5, 2, 1.5, 1, 0.5, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_dynamic_final_time_and_failures_together(method):
    m = build(stop="end", constants={"end": {"value": 10}, "T": {"value": 100}},
              stocks={"x": {"initial": "0", "inflows": ["g"]}}, flows={"g": {"equation": "1 / (T - TIME)"}})
    res = m.run(params={"end": [10.0, 5.0, 10.0], "T": [100.0, 100.0, 6.0]}, method=method, throw=False)
    assert res.ok.tolist() == [True, True, False]
    assert np.isnan(res["x"][1][6:]).all()          # ended at 5: NaN after, and not a failure
    assert res.failures[0].run == 2 and res.failures[0].time <= 6
