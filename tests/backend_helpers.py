"""Shared by the backend tests (test_backend.py, test_backend_numba.py, test_backend_c.py): a model built
from sections, the scalar backends' comparison with numpy, and the builtins model they all run."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from engine import compile_model
from engine.parse import model_from_dict

REL = 1e-10   # every saved value agrees with numpy's to this, relative

# the builtins model the scalar backends (numba, C) run against numpy: every builtin their kernel covers
SCALAR_BUILTINS: dict = {
    "dims": {"sector": ["a", "b", "c"]},
    "subranges": {"sub": {"of": "sector", "elements": ["a", "c"]}},
    "const": {"k": {"value": 0.3}, "w": {"dims": ["sector"], "value": {"a": 1, "b": 2, "c": 3}},
              "h": {"value": 2.5}},
    "lookups": {"tbl": {"x": [0, 2, 5, 9], "y": [1, 3, 2, 6]},
                "lin": {"x": [0, 1, 2], "y": [0, 10, 5], "extrapolation": "linear"},
                "hit": {"x": [0, 1, 1, 3], "y": [0, 1, 4, 2]}},
    "data": {"d": {"time": [1, 3, 5, 8], "values": [10, 30, 10, 15], "interpolation": "linear"},
             "e": {"time": [1, 3, 5], "values": [1, 2, 3], "interpolation": "step"}},
    "stocks": {"x": {"initial": "1", "inflows": ["grow"], "outflows": ["loss"]},
               "v": {"dims": ["sector"], "initial": "w", "inflows": ["fill"], "non_negative": True}},
    "flows": {"grow": {"equation": "k * x * tbl(TIME) / (1 + x) + STEP(h, 3) + RAMP(0.1, 2, 6)"},
              "loss": {"equation": "XIDZ(x, 4 + PULSE(5, 1), 0) + ZIDZ(PULSE_TRAIN(1, 0.5, 2, 9), 2)"},
              "fill": {"dims": ["sector"], "equations": {"default": "d / 10 - v * k * w", "c": "e - 2 * v"}}},
    "aux": {"s": "SMOOTH(x, 2)", "dl": "DELAY3(x, 1.5)", "tot": "SUM(v[sector!])", "lg": "LOG(x + 1, 3) + LN(x + 1)",
            "q": "QUANTUM(x, 0.5) + INTEGER(x) + MODULO(TIME, 3) + MIN(x, 2) * MAX(x, 1) + ABS(-x) + SQRT(x)",
            "ex": "lin(TIME / 3 - 1) + EXP(-x) + POWER(x, 0.7) + IF_THEN_ELSE(x > 2 :AND: TIME < 7, 1, 0)",
            "wl": "WITH_LOOKUP(TIME, ((0, 0), (4, 4), (8, 1)))", "vs": {"dims": ["sector"], "equation": "v * w + x"},
            "red": "VMAX(v[sector!]) - VMIN(w[sector!]) + PROD(w[sub!])",
            "hits": "hit(MODULO(TIME, 4)) + IF_THEN_ELSE(:NOT: (x < 1 :OR: TIME = 2), 1, 0)",
            "pick": {"dims": ["sub"], "equation": "v[sub] * 2 + w[b]"}},
}


# DELAY FIXED in its forms (the scalar backends' ring buffers; SAMPLE IF TRUE and DELAY N ride on them)
DELAYS = {
    "dims": {"sector": ["a", "b", "c"]},
    "const": {"T": {"value": 2.0}, "Ts": {"dims": ["sector"], "value": {"a": 0.5, "b": 1.375, "c": 30}},
              "x0": {"value": 7.0}},
    "stocks": {"x": {"initial": "1", "inflows": ["grow"]},
               "v": {"dims": ["sector"], "initial": "1", "inflows": ["fill"]}},
    "flows": {"grow": {"equation": "0.1 * x - 0.05 * df"},
              "fill": {"dims": ["sector"], "equation": "0.2 * dv - 0.1 * v"}},
    "aux": {"df": "DELAY_FIXED(x, T, x0)",                       # a delay time set per run
            "half": "DELAY_FIXED(x * x, 0.625, 0)",             # 2.5 steps: 3 (half rounded up, as Vensim)
            "long": "DELAY_FIXED(TIME, 100, -1)",               # longer than the run: the initial value throughout
            "k": "DELAY_FIXED(3, 1, 0)",                        # a constant input
            "dv": {"dims": ["sector"], "equation": "DELAY_FIXED(v, Ts, v)"},   # one delay time per element
            "dtime": "T + 0.1 * x",
            "dn": "DELAYN(x, dtime, 1, 3)",                      # DELAY N with a changing delay time
            "peak": "SAMPLE_IF_TRUE(x > peak, x, x)"},
    "time": {"dt": 0.25, "saveper": 0.5},
}

# every RANDOM function (the scalar backends read tables of numpy's own draws)
RANDOMS = {
    "dims": {"sector": ["a", "b", "c"]},
    "const": {"sd": {"value": 0.3}, "lo": {"dims": ["sector"], "value": {"a": -1, "b": 0, "c": 2}}},
    "stocks": {"x": {"initial": "1", "inflows": ["grow"]}},
    "flows": {"grow": {"equation": "0.05 * x * (1 + nrm) + 0.01 * SUM(u[sector!])"}},
    "aux": {"r01": "RANDOM_0_1()",
            "u": {"dims": ["sector"], "equation": "RANDOM_UNIFORM(lo, lo + 2, 5)"},
            "nrm": "RANDOM_NORMAL(-2, 2, 0, sd, 1) + RANDOM_NORMAL(-2, 2, 0, sd, 1)",   # two sites, two streams
            "ex": "RANDOM_EXPONENTIAL(0, 10, 0, 2, 3)",
            "gm": "RANDOM_GAMMA(0, 50, 2, 0, 1, 4)",
            "wb": "RANDOM_WEIBULL(0, 50, 1.5, 0, 1, 4)",
            "bt": "RANDOM_BETA(0, 1, 2, 3, 0, 1, 4)",
            "ps": "RANDOM_POISSON(0, 50, 4, 0, 1, 4)",
            "tri": "RANDOM_TRIANGULAR(0, 10, 1, 2, 6, 4)",
            "parts": {"dims": ["sector"],
                      "equations": {"default": "RANDOM_0_1() + x", "c": "RANDOM_NORMAL(-1, 1, 0, 1, 2)"}},
            "pink": "SMOOTHI(RANDOM_NORMAL(-6, 6, 0, 1, 9), 2, 0)"},
    "time": {"dt": 0.25, "saveper": 0.25},
}


def build(backend, aux=None, const=None, stocks=None, flows=None, lookups=None, data=None, dims=None,
          time=None, name="t", subranges=None):
    """A model from its sections (0..10, dt 0.25, saving every 0.5 unless ``time`` says otherwise), on ``backend``."""
    d = {"model": {"name": name}, "time": {"start": 0, "stop": 10, "dt": 0.25, "saveper": 0.5, **(time or {})}}
    for key, section in [("dimensions", dims), ("subranges", subranges), ("constants", const), ("stocks", stocks),
                         ("flows", flows), ("lookups", lookups), ("data", data)]:
        if section:
            d[key] = section
    if aux:
        d["auxiliaries"] = {k: (v if isinstance(v, dict) else {"equation": v}) for k, v in aux.items()}
    return compile_model(model_from_dict(d, f"{name}.toml"), check_units=False, backend=backend)


def assert_same_scalar(rn, rb, backend: str) -> None:
    """A scalar backend's (numba, C) results equal numpy's: ran there, same times, variables, shapes and NaNs,
    values to REL (values near zero: REL on the variable's scale)."""
    assert rb.backend == backend, "the run fell back to numpy"
    np.testing.assert_array_equal(rn.times, rb.times)
    assert rn.variables == rb.variables
    for v in rn.variables:
        a, b = rn[v], rb[v]
        assert a.shape == b.shape, v
        assert (np.isnan(a) == np.isnan(b)).all(), f"{v}: NaN in one backend only"
        scale = np.maximum(np.abs(a), np.nanmax(np.abs(a), initial=0.0) * 1e-6) + 1e-300
        with np.errstate(all="ignore"):
            err = np.nanmax(np.abs(a - b) / scale, initial=0.0)
        assert err <= REL, f"{v}: relative difference {err:.2e}"


def suite_pair(model: Path, backend: str):
    """A suite model (with its data.tab/data.csv when present), imported once and compiled on numpy and on
    ``backend`` (the fallback line silenced: the caller checks where it ran)."""
    from engine.io.pysd_import import import_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data_files = [f for f in (model.parent / "data.tab", model.parent / "data.csv") if f.is_file()]
        d = import_model(model, data_files=data_files)
        mn = compile_model(model_from_dict(d, str(model)), check_units=False, backend="numpy")
        mb = compile_model(model_from_dict(d, str(model)), check_units=False, backend=backend)
    mb._say_fallback = False
    return mn, mb


def check_delay_fixed(backend: str, method: str, assert_same) -> None:
    """DELAY FIXED on ``backend`` equal to numpy's (``assert_same(numpy_results, backend_results)``): the numpy
    loop's lags (one step, whole steps, half rounded up, beyond the run), initial values and pushes; SAMPLE IF
    TRUE and DELAY N's lagged delay times ride on it (DELAYS). Copies of the input are exact."""
    mn, mb = build("numpy", name="delays", **DELAYS), build(backend, name="delays", **DELAYS)
    assert_same(mn.run(method=method), mb.run(method=method))
    T = np.array([0.25, 1.0, 2.6, 50.0])   # one step, whole steps, rounded, beyond the run
    rn, rb = mn.run(params={"T": T}, n=4, method=method), mb.run(params={"T": T}, n=4, method=method)
    assert_same(rn, rb)
    assert np.array_equal(rn["df"], rb["df"]) and np.array_equal(rn["dv"], rb["dv"])   # copies: exact


def check_random_draws(backend: str, method: str, assert_same, monkeypatch) -> None:
    """RANDOM functions on a scalar backend read the numpy code's own draws (engine.compile.random_table):
    equal to numpy's bit for bit, in batches (a run's draws independent of the batch), with a seed, in chunks."""
    from engine.compile import random_table

    mn, mb = build("numpy", name="rnd", **RANDOMS), build(backend, name="rnd", **RANDOMS)
    rn, rb = mn.run(method=method), mb.run(method=method)
    assert_same(rn, rb)
    for v in ("r01", "u", "ex", "gm", "wb", "bt", "ps", "tri", "parts"):
        assert np.array_equal(rn[v], rb[v]), v
    sd = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    monkeypatch.setattr(random_table, "CHUNK_BYTES", 2 * 41 * 64 * 8)   # two runs a chunk: three chunks
    rn = mn.run(params={"sd": sd}, n=5, seed=42, method=method)
    rb = mb.run(params={"sd": sd}, n=5, seed=42, method=method)
    assert_same(rn, rb)
    assert np.array_equal(rn["r01"], rb["r01"]) and not np.array_equal(rb["r01"][0], rb["r01"][1])


# the suite's models with DELAY FIXED (the suite has no RANDOM model), and SAMPLE IF TRUE, built on its ring
SUITE_DELAY_FIXED = ["delay_fixed/test_delay_fixed.mdl", "delay_pipeline/test_pipeline_delays.mdl",
                     "forecast/test_forecast.mdl", "sample_if_true/test_sample_if_true.mdl"]


def check_suite_model(model: Path, backend: str, assert_same) -> None:
    """A suite model on ``backend`` equal to numpy's (skipped when the suite lacks it)."""
    import pytest

    if not model.is_file():
        pytest.skip(f"{model.name} not in the suite")
    mn, mb = suite_pair(model, backend)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        rn, rb = mn.run(), mb.run()
    assert_same(rn, rb)
