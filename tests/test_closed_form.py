"""Models with closed-form solutions, for every method, and the observed order of
convergence as dt halves (error at the final time, saveper fixed)."""
from __future__ import annotations

import numpy as np
import pytest

from engine import compile_model
from engine.parse import model_from_dict

K_DECAY, X0 = 0.5, 100.0
R_LOG, CAP, P0 = 1.0, 100.0, 10.0
OMEGA = 2.0


def decay_model():
    return compile_model(model_from_dict({
        "model": {"name": "decay"},
        "time": {"start": 0, "stop": 4, "dt": 0.1, "saveper": 1},
        "constants": {"k": {"value": K_DECAY}},
        "stocks": {"x": {"initial": X0, "outflows": ["loss"]}},
        "flows": {"loss": {"equation": "k * x"}},
    }, "decay.toml"))


def logistic_model():
    return compile_model(model_from_dict({
        "model": {"name": "logistic"},
        "time": {"start": 0, "stop": 8, "dt": 0.1, "saveper": 1},
        "constants": {"r": {"value": R_LOG}, "cap": {"value": CAP}},
        "stocks": {"p": {"initial": P0, "inflows": ["growth"]}},
        "flows": {"growth": {"equation": "r * p * (1 - p / cap)"}},
    }, "logistic.toml"))


def oscillator_model():
    return compile_model(model_from_dict({
        "model": {"name": "oscillator"},
        "time": {"start": 0, "stop": 5, "dt": 0.1, "saveper": 1},
        "constants": {"w": {"value": OMEGA}},
        "stocks": {"pos": {"initial": 1, "inflows": ["vel_flow"]},
                   "vel": {"initial": 0, "inflows": ["acc"]}},
        "flows": {"vel_flow": {"equation": "vel"}, "acc": {"equation": "-w * w * pos"}},
    }, "oscillator.toml"))


def decay_exact(t):
    return {"x": X0 * np.exp(-K_DECAY * t)}


def logistic_exact(t):
    return {"p": CAP / (1 + (CAP / P0 - 1) * np.exp(-R_LOG * t))}


def oscillator_exact(t):
    return {"pos": np.cos(OMEGA * t), "vel": -OMEGA * np.sin(OMEGA * t)}


CASES = {
    "decay": (decay_model, decay_exact),
    "logistic": (logistic_model, logistic_exact),
    "oscillator": (oscillator_model, oscillator_exact),
}
_cache: dict = {}


def model(name):
    if name not in _cache:
        _cache[name] = CASES[name][0]()
    return _cache[name]


def final_error(name, method, dt):
    m = model(name)
    exact = CASES[name][1]
    res = m.run(method=method, dt=dt, saveper=1)
    t = res.times
    assert t[-1] == m.time.stop
    want = exact(t)
    return max(abs(res[s][0, -1] - want[s][-1]) for s in want), max(
        float(np.max(np.abs(res[s][0] - want[s]))) for s in want)


# ---------------------------------------------------------------- against the closed form
TOL = {"euler": 0.1, "rk2": 5e-3, "rk4": 1e-6}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
def test_fixed_step_matches_closed_form(name, method):
    dt = 0.01 if method == "euler" else 0.05
    _, worst = final_error(name, method, dt)
    scale = {"decay": X0, "logistic": CAP, "oscillator": OMEGA}[name]
    # the oscillator's phase and amplitude errors grow with w*t (w = 2, t = 5): looser
    loose = 10 if name == "oscillator" else 1
    assert worst / scale < TOL[method] * (0.1 if method == "euler" else 1) * loose


@pytest.mark.parametrize("name", sorted(CASES))
def test_adaptive_matches_closed_form(name):
    m = model(name)
    res = m.run(method="adaptive")
    want = CASES[name][1](res.times)
    for s, w in want.items():
        np.testing.assert_allclose(res[s][0], w, rtol=1e-6, atol=1e-6)


def test_saved_times_do_not_depend_on_dt():
    m = model("decay")
    for dt in (0.1, 0.05, 0.025):
        res = m.run(dt=dt, saveper=1)
        np.testing.assert_array_equal(res.times, np.arange(0, 5.0))


def test_euler_decay_is_the_geometric_recurrence():
    m = model("decay")
    dt = 0.1
    res = m.run(method="euler", dt=dt, saveper=1)
    steps = np.round(res.times / dt)
    np.testing.assert_allclose(res["x"][0], X0 * (1 - K_DECAY * dt) ** steps, rtol=1e-12)


def test_rk4_decay_is_its_amplification_factor():
    m = model("decay")
    dt = 0.2
    z = -K_DECAY * dt
    g = 1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24
    res = m.run(method="rk4", dt=dt, saveper=1)
    np.testing.assert_allclose(res["x"][0], X0 * g ** np.round(res.times / dt), rtol=1e-12)


def test_rk2_decay_is_its_amplification_factor():
    m = model("decay")
    dt = 0.2
    z = -K_DECAY * dt
    res = m.run(method="rk2", dt=dt, saveper=1)
    np.testing.assert_allclose(res["x"][0], X0 * (1 + z + z ** 2 / 2) ** np.round(res.times / dt), rtol=1e-12)


# ---------------------------------------------------------------- observed order
DTS = {"euler": [0.02, 0.01, 0.005, 0.0025], "rk2": [0.04, 0.02, 0.01, 0.005], "rk4": [0.2, 0.1, 0.05, 0.025]}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("method, order", [("euler", 1), ("rk2", 2), ("rk4", 4)])
def test_observed_order_of_convergence(name, method, order):
    errs = [final_error(name, method, dt)[0] for dt in DTS[method]]
    ratios = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(ratios - order) < 0.3), (errs, ratios)
