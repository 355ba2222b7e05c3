"""Every builtin of docs/model-format.md through a tiny model, against hand-computed values
(Vensim semantics). Memory functions with Euler are compared with the explicit Euler
recurrence written out here in numpy."""
from __future__ import annotations


import numpy as np
import pytest

from engine import compile_model
from engine.parse import model_from_dict


def build(aux=None, const=None, stocks=None, flows=None, lookups=None, data=None, dims=None,
          subranges=None, time=None, check_units=False):
    d = {"model": {"name": "t"}, "time": {"start": 0, "stop": 10, "dt": 1, **(time or {})}}
    for key, section in [("dimensions", dims), ("subranges", subranges), ("constants", const),
                         ("stocks", stocks), ("flows", flows), ("lookups", lookups), ("data", data)]:
        if section:
            d[key] = section
    if aux:
        d["auxiliaries"] = {k: (v if isinstance(v, dict) else {"equation": v}) for k, v in aux.items()}
    return compile_model(model_from_dict(d, "mem.toml"), check_units)


def y(eq, name="y", method=None, **kw):
    """Values of aux `y` = eq over time (first scenario), and the save times."""
    aux = dict(kw.pop("aux", {}) or {})
    aux[name] = eq
    m = build(aux=aux, **kw)
    res = m.run(method=method, variables=[name])
    return res.times, res[name][0]


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=tol, atol=tol)


# ---------------------------------------------------------------- stateless math
@pytest.mark.parametrize("eq, fn", [
    ("IF THEN ELSE(TIME > 2, 10, 20)", lambda t: np.where(t > 2, 10, 20)),
    ("IF_THEN_ELSE(TIME >= 2 :AND: TIME < 5, TIME, -1)", lambda t: np.where((t >= 2) & (t < 5), t, -1)),
    ("MIN(TIME, 4)", lambda t: np.minimum(t, 4)),
    ("MAX(TIME, 4)", lambda t: np.maximum(t, 4)),
    ("ABS(TIME - 5)", lambda t: np.abs(t - 5)),
    ("EXP(TIME / 10)", lambda t: np.exp(t / 10)),
    ("LN(TIME + 1)", lambda t: np.log(t + 1)),
    ("LOG(TIME + 1)", lambda t: np.log10(t + 1)),
    ("LOG(TIME + 1, 2)", lambda t: np.log2(t + 1)),
    ("LOG(TIME + 1, 3)", lambda t: np.log(t + 1) / np.log(3)),
    ("SQRT(TIME)", lambda t: np.sqrt(t)),
    ("POWER(TIME, 1.5)", lambda t: t ** 1.5),
    ("TIME ^ 2", lambda t: t ** 2),
    ("2 ^ TIME", lambda t: 2.0 ** t),
    ("INTEGER(TIME / 4 - 1.2)", lambda t: np.trunc(t / 4 - 1.2)),
    ("MODULO(TIME + 0.5, 3)", lambda t: np.mod(t + 0.5, 3)),
    ("SIN(TIME)", np.sin), ("COS(TIME)", np.cos), ("TAN(TIME / 10)", lambda t: np.tan(t / 10)),
    ("ARCSIN(TIME / 10)", lambda t: np.arcsin(t / 10)), ("ARCCOS(TIME / 10)", lambda t: np.arccos(t / 10)),
    ("ARCTAN(TIME)", np.arctan),
    ("XIDZ(TIME, TIME - 3, 99)", lambda t: np.where(t == 3, 99, t / np.where(t == 3, 1, t - 3))),
    ("ZIDZ(TIME, TIME - 3)", lambda t: np.where(t == 3, 0, t / np.where(t == 3, 1, t - 3))),
    ("QUANTUM(TIME * 1.1, 2)", lambda t: 2 * np.trunc(t * 1.1 / 2)),
    ("-TIME ^ 2", lambda t: -(t ** 2)),
    ("10 - 4 - 3 + TIME / 2 / 2", lambda t: 3 + t / 4),
])
def test_stateless(eq, fn):
    t, v = y(eq)
    close(v, fn(t))


def test_integer_truncates_toward_zero():
    for x, want in [(2.7, 2), (-2.7, -2), (-0.5, 0), (3.0, 3), (-3.0, -3)]:
        assert y(f"INTEGER({x})")[1][0] == want, x


def test_log_and_ln_values():
    assert y("LOG(1000)")[1][0] == pytest.approx(3)
    assert y("LOG(8, 2)")[1][0] == pytest.approx(3)
    assert y("LN(EXP(2))")[1][0] == pytest.approx(2)


def test_xidz_zidz_constants():
    assert y("XIDZ(6, 3, 5)")[1][0] == 2
    assert y("XIDZ(6, 0, 5)")[1][0] == 5
    assert y("ZIDZ(6, 3)")[1][0] == 2
    assert y("ZIDZ(6, 0)")[1][0] == 0


def test_comparisons_and_logic():
    cases = {"3 = 3": 1, "3 == 4": 0, "3 <> 4": 1, "3 != 3": 0, "2 < 3": 1, "3 < 3": 0, "3 <= 3": 1,
             "4 > 3": 1, "3 >= 4": 0, "1 and 0": 0, "1 and 2": 1, "0 or 0": 0, "0 or 5": 1, "not 0": 1,
             "not 3": 0, "1 :AND: 1": 1, "0 :OR: 1": 1, ":NOT: 1": 0, "(2 > 1) + (3 > 1)": 2}
    aux = {f"c{i}": eq for i, eq in enumerate(cases)}
    m = build(aux=aux, time={"stop": 1})
    res = m.run()
    for i, (eq, want) in enumerate(cases.items()):
        assert res[f"c{i}"][0, 0] == want, eq


# ---------------------------------------------------------------- time inputs
def test_time_names():
    m = build(aux={"a": "TIME", "b": "TIME_STEP", "c": "TIME STEP", "d": "INITIAL_TIME", "e": "FINAL_TIME",
                   "f": "SAVEPER"}, time={"start": 2, "stop": 5, "dt": 0.5, "saveper": 1})
    res = m.run()
    close(res["a"][0], [2, 3, 4, 5])
    close(res["b"][0], 0.5)
    close(res["c"][0], 0.5)
    close(res["d"][0], 2)
    close(res["e"][0], 5)
    close(res["f"][0], 1)


def test_step():
    t, v = y("STEP(5, 3)", time={"dt": 0.25, "saveper": 0.25})
    close(v, np.where(t >= 3, 5, 0))
    assert v[list(t).index(2.75)] == 0 and v[list(t).index(3.0)] == 5


def test_ramp():
    t, v = y("RAMP(2, 3, 6)", time={"dt": 0.5, "saveper": 0.5})
    close(v, 2 * np.clip(t - 3, 0, 3))
    t, v = y("RAMP(2, 3)", time={"dt": 0.5, "saveper": 0.5})
    close(v, 2 * np.clip(t - 3, 0, None))


def test_pulse():
    t, v = y("PULSE(2, 3)", time={"dt": 0.5, "saveper": 0.5})
    close(v, ((t >= 2) & (t < 5)) * 1.0)


def test_pulse_train():
    t, v = y("PULSE TRAIN(1, 1, 3, 7.5)", time={"dt": 0.5, "saveper": 0.5})
    want = ((t >= 1) & (t <= 7.5) & (np.mod(t - 1, 3) < 1)) * 1.0
    close(v, want)
    assert list(t[v == 1]) == [1, 1.5, 4, 4.5, 7, 7.5]


# ---------------------------------------------------------------- memory functions
DT = 0.25
T_END = 6


def _times():
    return np.arange(0, T_END + DT / 2, DT)


def _inp(t):
    # an input with a jump and a slope: exercises both
    return 2.0 + np.where(t >= 1, 5.0, 0.0) + 0.5 * t


INP = "2 + STEP(5, 1) + 0.5 * TIME"
MEM_TIME = {"stop": T_END, "dt": DT, "saveper": DT}


def mem(eq):
    return y(eq, aux={"inp": INP}, time=MEM_TIME)


def test_initial():
    t, v = y("INITIAL(TIME * 2 + 1)", time={"start": 2, "stop": 5})
    close(v, 5)
    t, v = mem("INITIAL(inp)")
    close(v, _inp(0.0))


def euler_smooth(x, T, init, order=1):
    stages = np.full(order, float(init))
    out = []
    for k in range(len(x)):
        out.append(stages[-1])
        prev = x[k]
        new = stages.copy()
        for i in range(order):
            new[i] = stages[i] + DT * (prev - stages[i]) / (T / order)
            prev = stages[i]
        stages = new
    return np.array(out)


def euler_delay(x, T, init, order=1):
    st_t = T / order
    L = np.full(order, float(init) * st_t)
    out = []
    for k in range(len(x)):
        outs = L / st_t
        out.append(outs[-1])
        inflow = np.concatenate([[x[k]], outs[:-1]])
        L = L + DT * (inflow - outs)
    return np.array(out)


def test_smooth():
    t, v = mem("SMOOTH(inp, 1.5)")
    x = _inp(t)
    close(v, euler_smooth(x, 1.5, x[0]))
    assert v[0] == x[0]  # SMOOTH starts at the input


def test_smoothi():
    t, v = mem("SMOOTHI(inp, 1.5, 10)")
    close(v, euler_smooth(_inp(t), 1.5, 10))


def test_smooth3():
    t, v = mem("SMOOTH3(inp, 1.5)")
    x = _inp(t)
    close(v, euler_smooth(x, 1.5, x[0], order=3))


def test_smooth3i_and_smoothn():
    t, v = mem("SMOOTH3I(inp, 1.5, 4)")
    close(v, euler_smooth(_inp(t), 1.5, 4, order=3))
    t, v = mem("SMOOTHN(inp, 2, 4, 4)")
    close(v, euler_smooth(_inp(t), 2, 4, order=4))


def test_delay1():
    t, v = mem("DELAY1(inp, 2)")
    x = _inp(t)
    close(v, euler_delay(x, 2, x[0]))
    assert v[0] == x[0]  # the stock starts at input * delay, so the output starts at the input


def test_delay1i():
    t, v = mem("DELAY1I(inp, 2, 7)")
    close(v, euler_delay(_inp(t), 2, 7))


def test_delay3():
    t, v = mem("DELAY3(inp, 1.5)")
    x = _inp(t)
    close(v, euler_delay(x, 1.5, x[0], order=3))


def test_delay3i():
    t, v = mem("DELAY3I(inp, 1.5, 1)")
    close(v, euler_delay(_inp(t), 1.5, 1, order=3))


@pytest.mark.parametrize("order", [1, 2, 5])
def test_delayn(order):
    t, v = mem(f"DELAYN(inp, 3, 1, {order})")
    close(v, euler_delay(_inp(t), 3, 1, order=order))


def test_delayn_order_from_a_constant():
    t, v = y("DELAYN(inp, 3, 1, nn)", aux={"inp": INP}, const={"nn": {"value": 4}}, time=MEM_TIME)
    close(v, euler_delay(_inp(t), 3, 1, order=4))


def test_delay_conserves_material_in_the_long_run():
    # a constant input through DELAY3 comes out unchanged once settled
    t, v = y("DELAY3(4, 1)", time={"stop": 40, "dt": 0.125})
    close(v, 4, 1e-9)


@pytest.mark.parametrize("delay", [1, 2, 2.5])
def test_delay_fixed(delay):
    t, v = y(f"DELAY FIXED(inp, {delay}, -1)", aux={"inp": "TIME * TIME"}, time={"stop": 6, "dt": 0.5,
                                                                               "saveper": 0.5})
    want = np.where(t >= delay - 1e-9, (t - delay) ** 2, -1)
    close(v, want)


def test_delay_fixed_of_a_constant_input():
    t, v = y("DELAY_FIXED(3, 2, 0)", time={"stop": 5, "dt": 0.5, "saveper": 0.5})
    close(v, np.where(t >= 2, 3, 0))


def euler_trend(x, T, init_trend):
    avg = x[0] / (1 + init_trend * T)
    out = []
    for k in range(len(x)):
        out.append((x[k] - avg) / (T * abs(avg)) if avg != 0 else 0.0)
        avg = avg + DT * (x[k] - avg) / T
    return np.array(out)


def test_trend():
    t, v = mem("TREND(inp, 2, 0.1)")
    close(v, euler_trend(_inp(t), 2, 0.1))
    assert v[0] == pytest.approx(0.1)  # TREND starts at its initial trend


def test_trend_of_exponential_growth_approaches_the_rate():
    t, v = y("TREND(inp, 1, 0.05)", aux={"inp": "100 * EXP(0.05 * TIME)"}, time={"stop": 40, "dt": 0.01,
                                                                                  "saveper": 1})
    assert v[-1] == pytest.approx(0.05, rel=0.06)


def test_forecast():
    t, v = mem("FORECAST(inp, 2, 3)")
    x = _inp(t)
    close(v, x * (1 + euler_trend(x, 2, 0.0) * 3))
    assert v[0] == pytest.approx(x[0])


def test_memory_of_a_constant_stays_constant():
    for eq in ["SMOOTH(3, 2)", "SMOOTH3(3, 2)", "DELAY1(3, 2)", "DELAY3(3, 2)", "DELAYN(3, 2, 3, 4)",
               "TREND(3, 2, 0)", "FORECAST(3, 2, 5)"]:
        close(y(eq)[1], 3 if not eq.startswith("TREND") else 0)


# ---------------------------------------------------------------- lookups
TABLE = {"tbl": {"x": [0, 1, 2], "y": [0, 10, 5]}}


def test_lookup_clamp_is_the_default():
    t, v = y("tbl(TIME - 1)", lookups=TABLE, time={"stop": 4, "dt": 0.5, "saveper": 0.5})
    close(v, np.interp(t - 1, [0, 1, 2], [0, 10, 5]))
    assert v[0] == 0 and v[-1] == 5


def test_lookup_linear_extrapolation():
    lk = {"tbl": {**TABLE["tbl"], "extrapolation": "linear"}}
    t, v = y("tbl(TIME - 1)", lookups=lk, time={"stop": 4})
    close(v, [-10, 0, 10, 5, 0])


def test_lookup_clamp_explicit():
    lk = {"tbl": {**TABLE["tbl"], "extrapolation": "clamp"}}
    t, v = y("tbl(TIME - 1)", lookups=lk, time={"stop": 4})
    close(v, [0, 0, 10, 5, 5])


def test_with_lookup():
    t, v = y("WITH_LOOKUP(TIME, ((0, 0), (2, 4), (4, 0)))", time={"stop": 6})
    close(v, [0, 2, 4, 2, 0, 0, 0])
    t, v = y("WITH LOOKUP(TIME - 1, ((0, 1), (1, 3)))", time={"stop": 3})
    close(v, [1, 1, 3, 3])


# ---------------------------------------------------------------- dimensions
DIMS = {"sector": ["a", "b", "c"], "region": ["u", "r"]}
SUBR = {"ab": {"of": "sector", "elements": ["a", "b"]}}
VEC = {"v": {"dims": ["sector"], "value": {"a": 2, "b": 3, "c": -1}},
       "m": {"dims": ["sector", "region"], "value": [[1, 2], [3, 4], [5, 6]]}}


def dimrun(aux, **kw):
    m = build(aux=aux, const=VEC, dims=DIMS, subranges=SUBR, time={"stop": 1}, **kw)
    return m.run()


def test_sum_prod_vmin_vmax():
    res = dimrun({"s": "SUM(v[sector!])", "p": "PROD(v[sector!])", "lo": "VMIN(v[sector!])",
                  "hi": "VMAX(v[sector!])"})
    assert res["s"][0, 0] == 4
    assert res["p"][0, 0] == -6
    assert res["lo"][0, 0] == -1
    assert res["hi"][0, 0] == 3


def test_sum_over_one_of_two_dimensions():
    res = dimrun({"per_region": {"dims": ["region"], "equation": "SUM(m[sector!, region])"},
                  "per_sector": {"dims": ["sector"], "equation": "VMAX(m[sector, region!])"},
                  "all": "SUM(m[sector!, region!])"})
    close(res["per_region"][0, 0], [9, 12])
    close(res["per_sector"][0, 0], [2, 4, 6])
    assert res["all"][0, 0] == 21


def test_sum_over_a_subrange():
    res = dimrun({"s": "SUM(v[ab!])", "p": "PROD(v[ab!])"})
    assert res["s"][0, 0] == 5
    assert res["p"][0, 0] == 6


def test_elementwise_and_picked_elements():
    res = dimrun({"w": {"dims": ["sector"], "equation": "v * 10 + v[b]"},
                  "cross": {"dims": ["sector", "region"], "equation": "v * m"},
                  "tr": {"dims": ["region", "sector"], "equation": "m[sector, region] + 0"}})
    close(res["w"][0, 0], [23, 33, -7])
    close(res["cross"][0, 0], [[2, 4], [9, 12], [-5, -6]])
    close(res["tr"][0, 0], [[1, 3, 5], [2, 4, 6]])
    assert list(res.to_dataframe().columns[:3]) == ["v[a]", "v[b]", "v[c]"]


def test_per_element_equations():
    res = dimrun({"e": {"dims": ["sector"], "equations": {"a": "1", "default": "v * 2"}},
                  "f": {"dims": ["sector"], "equations": {"ab": "100", "c": "-5"}},
                  "g": {"dims": ["sector"], "equations": {"ab": "v", "default": "0"}}})
    close(res["e"][0, 0], [1, 6, -2])
    close(res["f"][0, 0], [100, 100, -5])
    close(res["g"][0, 0], [2, 3, 0])


def test_subrange_as_dimension():
    res = dimrun({"sub": {"dims": ["ab"], "equation": "v[ab] * 2"},
                  "back": {"dims": ["sector"], "equations": {"ab": "sub[ab] + 1", "c": "0"}}})
    close(res["sub"][0, 0], [4, 6])
    close(res["back"][0, 0], [5, 7, 0])


def test_subscripted_memory_function():
    m = build(aux={"inp": {"dims": ["sector"], "equation": "v * TIME + v"},
                   "s": {"dims": ["sector"], "equation": "SMOOTH(inp, 2)"}},
              const=VEC, dims=DIMS, time={"stop": 6, "dt": DT, "saveper": DT})
    res = m.run()
    t = res.times
    for i, vv in enumerate([2, 3, -1]):
        close(res["s"][0, :, i], euler_smooth(vv * t + vv, 2, vv))


# ---------------------------------------------------------------- data inputs
def test_data_linear():
    data = {"d": {"time": [1, 3, 5], "values": [10, 30, 10], "interpolation": "linear"}}
    t, v = y("d * 1", data=data, time={"stop": 7, "dt": 0.5, "saveper": 0.5})
    close(v, np.interp(t, [1, 3, 5], [10, 30, 10]))


def test_data_step():
    data = {"d": {"time": [1, 3, 5], "values": [10, 30, 20], "interpolation": "step"}}
    t, v = y("d * 1", data=data, time={"stop": 7, "dt": 0.5, "saveper": 0.5})
    want = np.where(t < 3, 10, np.where(t < 5, 30, 20))
    close(v, want)


def test_data_referenced_directly_is_saved():
    data = {"d": {"time": [0, 10], "values": [0, 100]}}
    m = build(data=data, aux={"z": "d + 1"})
    res = m.run()
    close(res["d"][0], np.arange(0, 101, 10))
    close(res["z"][0], np.arange(0, 101, 10) + 1)


def test_data_series_in_a_stock():
    data = {"d": {"time": [0, 10], "values": [0, 10]}}
    m = build(data=data, stocks={"s": {"initial": 0, "inflows": ["f"]}}, flows={"f": {"equation": "d"}},
              time={"dt": 1})
    res = m.run()
    # Euler: s(t) = sum_{k < t} k
    close(res["s"][0], [sum(range(k)) for k in range(11)])


# ---------------------------------------------------------------- stocks
def test_stock_euler_recurrence_and_non_negative():
    m = build(stocks={"s": {"initial": 5, "outflows": ["out"], "non_negative": True},
                      "u": {"initial": 5, "outflows": ["out2"]}},
              flows={"out": {"equation": "2"}, "out2": {"equation": "2"}})
    res = m.run()
    close(res["s"][0], np.maximum(5 - 2 * np.arange(11), 0))
    close(res["u"][0], 5 - 2 * np.arange(11))


def test_vensim_euler_saves_state_at_t():
    m = build(stocks={"s": {"initial": 1, "inflows": ["g"]}}, flows={"g": {"equation": "s * 0.5"}},
              time={"stop": 3})
    res = m.run()
    close(res["s"][0], 1.5 ** np.arange(4))
    close(res["g"][0], 0.5 * 1.5 ** np.arange(4))


def test_builtin_names_are_case_insensitive():
    assert y("max(1, 2) + Min(3, 4) + abs(-1)")[1][0] == 6


def test_wrong_arity_is_a_model_error():
    from engine.errors import ModelError
    with pytest.raises(ModelError, match="MIN"):
        build(aux={"y": "MIN(1)"})
    with pytest.raises(ModelError):
        build(aux={"y": "DELAYN(1, 2, 3, 1.5)"})
