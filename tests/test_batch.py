"""A batch of N runs equals N single runs; invariants (non-negative stocks, conservation)
checked with hypothesis under explicit seeds."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import compile_model, load_model
from engine.cli import main
from engine.parse import model_from_dict

MODELS = Path(__file__).parent / "models"

RICH = {
    "model": {"name": "rich"},
    "time": {"start": 0, "stop": 12, "dt": 0.25, "saveper": 1},
    "dimensions": {"sector": ["a", "b", "c"]},
    "constants": {
        "k": {"value": 0.3, "range": [0.0, 2.0]},
        "t_step": {"value": 3.0},
        "lag": {"value": 2.0},
        "share": {"dims": ["sector"], "value": {"a": 0.2, "b": 0.3, "c": 0.5}},
        "smooth_time": {"value": 1.5},
    },
    "lookups": {"effect": {"x": [0, 50, 100, 200], "y": [1.2, 1.0, 0.6, 0.2]}},
    "data": {"price": {"time": [0, 6, 12], "values": [1, 3, 2]}},
    "stocks": {
        "x": {"initial": 100, "inflows": ["inflow"], "outflows": ["loss"]},
        "cap": {"dims": ["sector"], "initial": "50 * share", "inflows": ["inv"], "non_negative": True},
    },
    "flows": {
        "loss": {"equation": "k * x * effect(x)"},
        "inflow": {"equation": "STEP(20, t_step) + DELAY FIXED(loss, lag, 0) * 0.5"},
        "inv": {"dims": ["sector"], "equation": "share * SMOOTH(x, smooth_time) * 0.1 - price * cap * 0.05"},
    },
    "auxiliaries": {
        "total": {"equation": "SUM(cap[sector!])"},
        "ratio": {"equation": "ZIDZ(total, x)"},
    },
}


@pytest.fixture(scope="module")
def rich():
    return compile_model(model_from_dict(RICH, "rich.toml"))


def assert_same(batch, singles, names=None):
    names = names or batch.variables
    for i, single in enumerate(singles):
        for v in names:
            np.testing.assert_allclose(batch[v][i], single[v][0], rtol=1e-12, atol=1e-12, err_msg=f"{v} run {i}")


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4", "adaptive"])
def test_batch_of_scalar_constants(method):
    m = load_model(MODELS / "decay.toml")
    ks = np.array([0.1, 0.25, 0.5, 0.9])
    batch = m.run(params={"k": ks}, method=method)
    assert batch["x"].shape[0] == 4
    singles = [m.run(params={"k": float(k)}, method=method) for k in ks]
    if method == "adaptive":
        # one step-size control for the whole batch: equal within the solver's tolerance only
        for i, single in enumerate(singles):
            np.testing.assert_allclose(batch["x"][i], single["x"][0], rtol=1e-7)
    else:
        assert_same(batch, singles)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_batch_rich_model(rich, method):
    ks = np.array([0.1, 0.5, 1.0])
    steps = np.array([1.0, 3.0, 5.5])
    lags = np.array([1.0, 2.0, 3.75])
    batch = rich.run(params={"k": ks, "t_step": steps, "lag": lags}, method=method)
    singles = [rich.run(params={"k": float(a), "t_step": float(b), "lag": float(c)}, method=method)
               for a, b, c in zip(ks, steps, lags, strict=True)]
    assert_same(batch, singles)


def test_batch_list_values(rich):
    batch = rich.run(params={"k": [0.1, 0.2]})
    assert_same(batch, [rich.run(params={"k": 0.1}), rich.run(params={"k": 0.2})])


def test_batch_subscripted_constants():
    m = load_model(MODELS / "subscripts.toml")
    shares = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    batch = m.run(params={"share": shares})
    singles = [m.run(params={"share": s}) for s in shares]
    assert_same(batch, singles)
    # as tables, one scenario each
    scen = {f"s{i}": {"share": dict(zip("abc", map(float, s), strict=True))} for i, s in enumerate(shares)}
    by_scen = m.run(scenarios=scen)
    assert by_scen.scenarios == ["s0", "s1", "s2"]
    assert_same(by_scen, singles)


def test_batch_two_dimensional_constant():
    m = load_model(MODELS / "subscripts.toml")
    ms = np.arange(2 * 6, dtype=float).reshape(2, 3, 2)
    batch = m.run(params={"m": ms})
    assert_same(batch, [m.run(params={"m": x}) for x in ms])


def test_scenarios_dict(rich):
    scen = {"base": {}, "fast": {"k": 0.9}, "late": {"t_step": 8.0, "lag": 1.0},
            "shares": {"share": {"a": 0.5, "b": 0.25, "c": 0.25}},
            "prices": {"price": {"time": [0, 12], "values": [0.5, 4.0]}}}
    batch = rich.run(scenarios=scen)
    assert batch.scenarios == list(scen)
    singles = [rich.run(params=o) for o in scen.values()]
    assert_same(batch, singles)
    df = batch.to_dataframe()
    assert list(df.index.names) == ["scenario", "time"]
    assert list(df.index.get_level_values(0).unique()) == list(scen)


def test_params_apply_on_top_of_scenarios(rich):
    scen = {"a": {"k": 0.2}, "b": {"k": 0.4, "lag": 3.0}}
    batch = rich.run(scenarios=scen, params={"lag": 1.0})
    assert_same(batch, [rich.run(params={"k": 0.2, "lag": 1.0}), rich.run(params={"k": 0.4, "lag": 1.0})])


def test_data_series_batch(rich):
    series = [{"time": [0, 12], "values": [1, 2]}, {"time": [0, 3, 12], "values": [2, 0, 5]},
              {"time": [1, 2], "values": [7, 8]}]
    batch = rich.run(scenarios={f"s{i}": {"price": s} for i, s in enumerate(series)})
    assert_same(batch, [rich.run(params={"price": s}) for s in series])


def test_n_copies(rich):
    batch = rich.run(n=3)
    one = rich.run()
    assert_same(batch, [one, one, one])


def test_sweep_equals_single_runs(capsys):
    path = str(MODELS / "decay.toml")
    assert main(["run", path, "--sweep", "k=0.2:0.6:3", "--vars", "x,loss"]) == 0
    sweep = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(sweep["scenario"].unique()) == ["k=0.2", "k=0.4", "k=0.6"]
    for k in (0.2, 0.4, 0.6):
        assert main(["run", path, "--set", f"k={k}", "--vars", "x,loss"]) == 0
        single = pd.read_csv(io.StringIO(capsys.readouterr().out))
        part = sweep[sweep["scenario"] == f"k={k:g}"].reset_index(drop=True)
        np.testing.assert_allclose(part[["time", "x", "loss"]].to_numpy(),
                                   single[["time", "x", "loss"]].to_numpy(), rtol=1e-12)


def test_batch_of_one_thousand_matches_samples(rich):
    rng = np.random.default_rng(7)
    ks = rng.uniform(0.05, 1.5, 1000)
    batch = rich.run(params={"k": ks}, variables=["x", "total"])
    for i in (0, 17, 999):
        single = rich.run(params={"k": float(ks[i])}, variables=["x", "total"])
        np.testing.assert_allclose(batch["x"][i], single["x"][0], rtol=1e-12)
        np.testing.assert_allclose(batch["total"][i], single["total"][0], rtol=1e-12)


# ---------------------------------------------------------------- hypothesis invariants
def drain_model():
    return compile_model(model_from_dict({
        "model": {"name": "drain"},
        "time": {"start": 0, "stop": 10, "dt": 0.5},
        "constants": {"s0": {"value": 10}, "rate": {"value": 1}, "k": {"value": 0.5}},
        "stocks": {"s": {"initial": "s0", "outflows": ["out"], "inflows": ["back"], "non_negative": True}},
        "flows": {"out": {"equation": "rate + k * s"}, "back": {"equation": "PULSE(5, 1) * rate"}},
    }, "drain.toml"))


def transfer_model():
    return compile_model(model_from_dict({
        "model": {"name": "transfer"},
        "time": {"start": 0, "stop": 10, "dt": 0.25},
        "constants": {"a0": {"value": 10}, "b0": {"value": 5}, "k1": {"value": 0.3}, "k2": {"value": 0.1}},
        "stocks": {"a": {"initial": "a0", "outflows": ["ab"], "inflows": ["ba"]},
                   "b": {"initial": "b0", "inflows": ["ab"], "outflows": ["ba"]}},
        "flows": {"ab": {"equation": "k1 * a * MIN(1, b / 10 + 0.5)"},
                  "ba": {"equation": "k2 * b + SMOOTH(b, 2) * 0.01 + PULSE(3, 1) * 0.1 * a"}},
        "auxiliaries": {"total": {"equation": "a + b"}},
    }, "transfer.toml"))


_drain = drain_model()
_transfer = transfer_model()

pos = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
rates = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.lists(st.tuples(pos, rates, st.floats(0, 3)), min_size=1, max_size=6),
       st.sampled_from(["euler", "rk2", "rk4"]))
def test_non_negative_stock_never_negative(rows, method):
    s0, rate, k = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    res = _drain.run(params={"s0": s0, "rate": rate, "k": k}, method=method)
    assert np.all(res["s"] >= 0)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.lists(st.tuples(pos, pos, st.floats(0, 2), st.floats(0, 2)), min_size=1, max_size=6),
       st.sampled_from(["euler", "rk2", "rk4"]))
def test_closed_transfer_conserves_the_total(rows, method):
    a0, b0, k1, k2 = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    res = _transfer.run(params={"a0": a0, "b0": b0, "k1": k1, "k2": k2}, method=method)
    total = res["a"] + res["b"]
    np.testing.assert_allclose(total, (a0 + b0)[:, None] * np.ones_like(total), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res["total"], total, rtol=1e-12, atol=1e-12)


@settings(derandomize=True, max_examples=8, deadline=None)
@given(st.lists(st.tuples(pos, pos, st.floats(0, 2), st.floats(0, 2)), min_size=1, max_size=3))
def test_closed_transfer_conserves_the_total_adaptive(rows):
    a0, b0, k1, k2 = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    res = _transfer.run(params={"a0": a0, "b0": b0, "k1": k1, "k2": k2}, method="adaptive")
    total = res["a"] + res["b"]
    np.testing.assert_allclose(total, (a0 + b0)[:, None] * np.ones_like(total), rtol=1e-6, atol=1e-6)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 12.0), st.floats(0.25, 5.0),
                          st.floats(0.3, 4.0)), min_size=1, max_size=5),
       st.sampled_from(["euler", "rk2", "rk4"]))
def test_batch_equals_single_property(rows, method):
    k, t_step, lag, sm = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    batch = _rich_model().run(params={"k": k, "t_step": t_step, "lag": lag, "smooth_time": sm}, method=method)
    for i in range(len(k)):
        single = _rich_model().run(params={"k": float(k[i]), "t_step": float(t_step[i]), "lag": float(lag[i]),
                                           "smooth_time": float(sm[i])}, method=method)
        for v in ("x", "cap", "total", "inflow"):
            np.testing.assert_allclose(batch[v][i], single[v][0], rtol=1e-12, atol=1e-12, err_msg=v)


_RICH_CACHE: list = []


def _rich_model():
    if not _RICH_CACHE:
        _RICH_CACHE.append(compile_model(model_from_dict(RICH, "rich.toml")))
    return _RICH_CACHE[0]


def test_non_negative_stock_with_adaptive():
    res = _drain.run(method="adaptive")
    assert np.all(res["s"] >= -1e-9)


def test_delay_fixed_per_element_and_per_run_delays():
    m = compile_model(model_from_dict({
        "model": {"name": "df"},
        "time": {"start": 0, "stop": 6, "dt": 0.5, "saveper": 0.5},
        "dimensions": {"s": ["a", "b"]},
        "constants": {"lag": {"dims": ["s"], "value": {"a": 1, "b": 2}}},
        "auxiliaries": {"inp": {"dims": ["s"], "equation": "TIME"},
                        "y": {"dims": ["s"], "equation": "DELAY FIXED(inp, lag, -1)"}},
    }, "df.toml"))
    lags = np.array([[1.0, 2.0], [3.0, 0.5]])
    batch = m.run(params={"lag": lags})
    t = batch.times
    for i, run_lags in enumerate(lags):
        for j, lag in enumerate(run_lags):
            np.testing.assert_allclose(batch["y"][i, :, j], np.where(t >= lag, t - lag, -1))
        single = m.run(params={"lag": run_lags})
        np.testing.assert_array_equal(batch["y"][i], single["y"][0])
