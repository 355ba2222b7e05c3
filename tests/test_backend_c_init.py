"""The C backend's compiled init (engine/compile/static_code.py) against numpy's ``init`` (ModelCode.init_fn), the
reference: the same static values and initial stocks for every run, and the packing kept across runs following
the inputs (issue 12, one run's overhead).

Oracle: numpy's init through ScalarProgram._start on the same model and batch (the path the C backend took
before); values equal to 1e-15 relative (the same operations; exp/pow/log may differ in the last bit)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from backend_helpers import assert_same_scalar
from backend_helpers import build as _build

from engine import SimulationError, load_model
from engine.backends import c_compiler_found
from engine.compile.scalar_program import ScalarProgram
from engine.integrate.driver import Clock
from engine.results import RunStatus

if not c_compiler_found():
    pytest.skip("the C backend needs a C compiler (cc or $CC)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "c-init-cache"))


# initial values that read a data series at the start, another stock, a dynamic auxiliary, INITIAL, a lookup
# and a reduction; constants that vary by run, one subscripted
INIT = {
    "dims": {"sector": ["a", "b", "c"]},
    "const": {"k": {"value": 0.3}, "w": {"dims": ["sector"], "value": {"a": 1, "b": 2, "c": 3}},
              "c0": {"value": 2.0}},
    "lookups": {"tbl": {"x": [0, 2, 5, 9], "y": [1, 3, 2, 6]}},
    "data": {"d": {"time": [0, 3, 5, 8], "values": [10, 30, 10, 15], "interpolation": "linear"}},
    "stocks": {"x": {"initial": "c0 * tbl(c0) + d / 10", "inflows": ["grow"]},
               "y": {"initial": "x * 2 + yy", "inflows": ["gy"]},
               "v": {"dims": ["sector"], "initial": "w * k + SUM(w[sector!])", "inflows": ["fill"],
                     "non_negative": True}},
    "flows": {"grow": {"equation": "k * x / (1 + x)"}, "gy": {"equation": "0.1 * y - d / 100"},
              "fill": {"dims": ["sector"], "equation": "w * k - v * 0.1"}},
    "aux": {"yy": "EXP(k) + d", "start_x": "INITIAL(x)", "ratio": "x / start_x",
            "stat": "LN(c0) * POWER(k, 0.5) + tbl(k * 10)"},
}


def build(backend, name="cinit", **sections):
    return _build(backend, **{"name": name, **sections})


def _statics(PF, OFF, VR, n_static, n):
    """Static slot i of run r, as the kernel reads it: PF[OFF[i] + r * VR[i]]."""
    r = np.arange(n)
    return np.stack([PF[OFF[i] + r * VR[i]] for i in range(n_static)]) if n_static else np.zeros((0, n))


def _compare_init(mc, params, n):
    """The C init's (S0, statics) against numpy init's, for one batch."""
    mc.run(params=params, n=n)        # builds the library
    prog = mc._c
    assert prog._init is not None, "the model's init was not compiled"
    ts = mc.model.time
    clock = Clock(ts.start, ts.stop, ts.dt, ts.saveper)
    _labels, overrides = mc._batch(params, None, n, None)
    P0 = mc._inputs(overrides, n)
    data = prog._data(P0, n)
    c = prog._start(P0, n, clock, data)
    py = ScalarProgram._start(prog, P0, n, clock, data)
    assert c is not None and py is not None
    n_static = prog.scalar().n_static
    np.testing.assert_allclose(c[0], py[0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(_statics(*c[1:4], n_static, n), _statics(*py[1:4], n_static, n), rtol=1e-15, atol=0)


def test_init_equals_numpy_init_for_a_batch():
    mc = build("c", **INIT)
    params = {"k": np.linspace(0.1, 0.5, 4), "c0": np.linspace(1, 3, 4), "w": np.arange(12.0).reshape(4, 3) + 1}
    _compare_init(mc, params, 4)
    _compare_init(mc, {}, 1)
    assert_same_scalar(build("numpy", **INIT).run(params=params), mc.run(params=params), "c")


@pytest.mark.parametrize("path", ["model/linxiang.toml", "benchmarks/regional_economy.toml"])
def test_init_equals_numpy_init_on_the_models(path):
    mc = load_model(ROOT / path, backend="c")
    _compare_init(mc, {}, 1)
    for name in [n for n in mc.constants if not mc.rvars[n].dims][:3]:   # each varied by run, +-20 %
        value = float(mc.default(name))
        _compare_init(mc, {name: value * np.linspace(0.8, 1.2, 5)}, 5)


def test_packing_follows_the_inputs_run_after_run():
    """Default, overridden, default again, a series replaced, then the default series: each run equals numpy's
    (the kept packings of constants and series must not outlive the inputs they were made from)."""
    mn, mc = build("numpy", **INIT), build("c", **INIT)
    series = {"d": {"time": [0, 10], "values": [5, 25]}}
    for kw in ({}, {"params": {"k": 0.45}}, {}, {"params": series}, {"params": {"w": [3, 1, 2]}}, {},
               {"params": {"k": [0.2, 0.4]}}, {"n": 2}, {"params": series}):
        assert_same_scalar(mn.run(**kw), mc.run(**kw), "c")


NEG = {"const": {"s0": {"value": 1.0}},
       "stocks": {"x": {"initial": "s0", "inflows": ["g"], "non_negative": True}},
       "flows": {"g": {"equation": "0.1"}}}


def test_a_run_that_cannot_start_gets_numpy_s_error():
    mn, mc = build("numpy", name="neg", **NEG), build("c", name="neg", **NEG)
    with pytest.raises(SimulationError) as en:
        mn.run(params={"s0": [1.0, -2.0]})
    with pytest.raises(SimulationError) as ec:
        mc.run(params={"s0": [1.0, -2.0]})
    assert str(en.value) == str(ec.value) and "below zero" in str(ec.value)
    rn, rc = mn.run(params={"s0": [1.0, -2.0]}, throw=False), mc.run(params={"s0": [1.0, -2.0]}, throw=False)
    assert rc.status.tolist() == rn.status.tolist() == [0, int(RunStatus.NEGATIVE_STOCK)]
    assert mc.run(params={"s0": [1.0, 2.0]}).backend == "c"
    # a non-finite start (0/0 in an initial value) also goes back to numpy
    nan = {**NEG, "stocks": {"x": {"initial": "s0 / s0", "inflows": ["g"]}}}
    rn = build("numpy", name="nan0", **nan).run(params={"s0": [1.0, 0.0]}, throw=False)
    rc = build("c", name="nan0", **nan).run(params={"s0": [1.0, 0.0]}, throw=False)
    assert rc.status.tolist() == rn.status.tolist() and rc.status[1] != 0
    np.testing.assert_array_equal(rn["x"], rc["x"])


def test_initial_values_read_each_run_s_own_series():
    """A data series that differs by run (one column a run) read by initial values: each run's own at t0."""
    mn, mc = build("numpy", name="cinitser", **INIT), build("c", name="cinitser", **INIT)
    sc = {"a": {"d": {"time": [0, 10], "values": [5, 25]}}, "b": {"d": {"time": [0, 4], "values": [40, 0]}}, "c": {}}
    rn, rc = mn.run(scenarios=sc), mc.run(scenarios=sc)
    assert mc._c._init is not None
    assert_same_scalar(rn, rc, "c")
    assert len({float(rc["x"][0, i]) for i in range(3)}) == 3   # three different initial values
