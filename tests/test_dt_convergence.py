"""The dt-convergence check (dt against dt/2, largest relative difference per stock)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine import compile_model, load_model
from engine.analysis.convergence import dt_convergence
from engine.parse import model_from_dict

DECAY = Path(__file__).parent / "models" / "decay.toml"
K, X0, DT = 0.3, 100.0, 0.5  # as in tests/models/decay.toml (stop 10, saveper 1)


def decay(dt=DT, k=K, stop=10.0):
    return compile_model(model_from_dict({
        "model": {"name": "decay"},
        "time": {"start": 0, "stop": stop, "dt": dt, "saveper": 1},
        "constants": {"k": {"value": k}},
        "stocks": {"x": {"initial": X0, "outflows": ["loss"]}},
        "flows": {"loss": {"equation": "k * x"}},
    }, "decay.toml"))


def euler_diff(k, dt, stop=10):
    t = np.arange(0, stop + 1)
    a = X0 * (1 - k * dt) ** (t / dt)
    b = X0 * (1 - k * dt / 2) ** (2 * t / dt)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def model():
    return load_model(DECAY)


def test_rows_are_the_declared_stocks(model):
    rows = dt_convergence(model)
    assert [name for name, _ in rows] == ["x"]  # internal SMOOTH stocks are not listed


def test_euler_on_decay_is_the_recurrence(model):
    (name, diff), = dt_convergence(model, method="euler")
    assert diff == pytest.approx(euler_diff(K, DT), rel=1e-9)


def test_euler_on_decay_is_about_what_theory_says(model):
    # Euler's error at t is about X0 k^2 dt t e^{-kt} / 2, so dt vs dt/2 differ by half that;
    # the largest, at t = 1/k, relative to X0: k dt / (4 e)
    (_, diff), = dt_convergence(model, method="euler")
    theory = K * DT / (4 * math.e)
    assert diff == pytest.approx(theory, rel=0.15)
    assert diff > 0.005  # at dt 0.5 this model is not converged to 0.5%


def test_euler_difference_halves_with_dt():
    d1 = dt_convergence(decay(0.5))[0][1]
    d2 = dt_convergence(decay(0.25))[0][1]
    d3 = dt_convergence(decay(0.125))[0][1]
    assert d1 / d2 == pytest.approx(2, rel=0.1)
    assert d2 / d3 == pytest.approx(2, rel=0.05)


def test_rk4_is_much_smaller(model):
    euler = dt_convergence(model, method="euler")[0][1]
    rk2 = dt_convergence(model, method="rk2")[0][1]
    rk4 = dt_convergence(model, method="rk4")[0][1]
    assert rk4 < 1e-5
    assert rk4 < euler / 1000
    assert rk4 < rk2 < euler


def test_rk4_difference_is_about_dt4_over_16():
    # RK4 difference between dt and dt/2 shrinks 16-fold when dt halves
    d1 = dt_convergence(decay(0.5), method="rk4")[0][1]
    d2 = dt_convergence(decay(0.25), method="rk4")[0][1]
    assert math.log2(d1 / d2) == pytest.approx(4, abs=0.3)


def test_variables_and_batch_params(model):
    rows = dt_convergence(model, variables=["x"], params={"k": np.array([0.1, 0.3, 0.9])})
    assert rows[0][0] == "x"
    # the worst run (largest k) dominates
    assert rows[0][1] == pytest.approx(euler_diff(0.9, DT), rel=1e-9)


def test_model_dt_is_unchanged_afterwards(model):
    dt_convergence(model)
    assert model.time.dt == DT
    assert model.run()["x"].shape == (1, 11)


def test_constant_stock_has_zero_difference():
    m = decay(k=0.0)
    assert dt_convergence(m)[0][1] == 0.0
