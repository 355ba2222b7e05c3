"""Arbitrary small models never crash the engine: they compile and run, or raise its own error type."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import compile_model
from engine.errors import EngineError
from engine.parse.model_file import model_from_dict

NAMES = ["a", "b", "c", "s"]
TOKENS = ["a", "b", "c", "s", "1", "0", "2.5", "-", "+", "*", "/", "^", "(", ")", ",", "TIME", "d", "d!", "e1",
          "[", "]", "SMOOTH(", "DELAY1(", "STEP(", "IF THEN ELSE(", "MIN(", "SUM(", "LN(", "XIDZ(", "tbl(",
          "DELAY FIXED(", "INITIAL(", ">", "=", "and", "PULSE(", "SAMPLE IF TRUE(", "VECTOR SORT ORDER("]


@st.composite
def models(draw):
    spec: dict = {"time": {"start": 0, "stop": 2, "dt": draw(st.sampled_from([0.25, 0.5, 1.0]))},
                  "dimensions": {"d": ["e1", "e2"]},
                  "lookups": {"tbl": {"x": [0, 1], "y": [0, 2]}},
                  "constants": {"k": {"value": draw(st.floats(-2, 2, allow_nan=False)), "range": [-2, 2]}}}
    for name in NAMES:
        kind = draw(st.sampled_from(["auxiliaries", "flows", "stocks", "constants", None]))
        if kind is None:
            continue
        dims = draw(st.sampled_from([[], ["d"]]))
        text = " ".join(draw(st.lists(st.sampled_from(TOKENS + ["k"]), min_size=1, max_size=8)))
        if kind == "constants":
            entry = {"value": draw(st.floats(-3, 3, allow_nan=False))}
        elif kind == "stocks":
            entry = {"initial": text, "inflows": draw(st.lists(st.sampled_from(NAMES), max_size=2)),
                     "non_negative": draw(st.booleans())}
        else:
            entry = {"equation": text}
        if dims:
            entry["dims"] = dims
        spec.setdefault(kind, {})[name] = entry
    return spec


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(models(), st.sampled_from(["euler", "rk4", "adaptive"]), st.integers(1, 3))
def test_any_model_compiles_and_runs_or_raises_an_engine_error(spec, method, n):
    try:
        model = compile_model(model_from_dict(spec, "fuzz.toml"))
        res = model.run(params={"k": np.linspace(-1, 1, n)} if n > 1 else None, method=method)
        res.to_dataframe()
    except EngineError as exc:
        assert str(exc)  # a message, naming what is wrong


FUNCTIONS = [("MIN({}, {})", 2), ("IF THEN ELSE({}, {}, {})", 3), ("LN({})", 1), ("XIDZ({}, {}, {})", 3),
             ("SMOOTH({}, {})", 2), ("DELAY1({}, {})", 2), ("DELAY3({}, {})", 2), ("STEP({}, {})", 2),
             ("DELAY FIXED({}, {}, {})", 3), ("INITIAL({})", 1), ("tbl({})", 1), ("PULSE({}, {})", 2),
             ("SAMPLE IF TRUE({}, {}, {})", 3), ("TREND({}, {}, {})", 3), ("ABS({})", 1),
             ("DELAYN({}, {}, {}, 2)", 3), ("RAMP({}, {}, {})", 3), ("MODULO({}, {})", 2)]


def expressions(leaves: list[str]):
    """Well-formed equations over ``leaves`` (so that a generated model has no algebraic loop)."""
    leaf = st.sampled_from(leaves + ["k", "TIME", "1", "0", "2.5"])

    def extend(inner):
        binop = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "^", ">", "=", "and"]), inner).map(" ".join)
        calls = st.sampled_from(FUNCTIONS).flatmap(
            lambda fn: st.tuples(*[inner] * fn[1]).map(lambda args, fmt=fn[0]: fmt.format(*args)))
        return st.one_of(binop, calls, inner.map(lambda e: f"({e})"))

    return st.recursive(leaf, extend, max_leaves=6)


@st.composite
def valid_models(draw):
    spec: dict = {"time": {"start": 0, "stop": 2, "dt": draw(st.sampled_from([0.25, 0.5, 1.0]))},
                  "dimensions": {"d": ["e1", "e2"]},
                  "lookups": {"tbl": {"x": [0, 1], "y": [0, 2]}},
                  "constants": {"k": {"value": draw(st.floats(-2, 2, allow_nan=False)), "range": [-2, 2]}}}
    # s is a stock (state breaks loops); a, b, c may use the stock and the ones before them
    spec["stocks"] = {"s": {"initial": draw(st.sampled_from(["1", "k", "0"])), "inflows": ["f"],
                            "non_negative": draw(st.booleans())}}
    done: list[str] = ["s"]
    for name in ["a", "b", "c", "f"]:
        kind = "flows" if name == "f" else draw(st.sampled_from(["auxiliaries", "constants"]))
        dims = [] if name == "f" else draw(st.sampled_from([[], ["d"]]))
        refs = [r for r in done if r == "s" or spec_dims(spec, r) == [] or dims == ["d"]]
        refs += [f"SUM({r}[d!])" for r in done if spec_dims(spec, r) == ["d"]]
        refs += [f"{r}[e2]" for r in done if spec_dims(spec, r) == ["d"]]
        text = draw(expressions(refs).filter(lambda t: len(t) < 300))
        if kind == "constants":
            entry = {"value": draw(st.floats(-3, 3, allow_nan=False))}
        else:
            entry = {"equation": text}
        if dims:
            entry["dims"] = dims
        spec.setdefault(kind, {})[name] = entry
        done.append(name)
    return spec


def spec_dims(spec: dict, name: str) -> list[str]:
    for section in ("constants", "auxiliaries", "flows", "stocks"):
        if name in spec.get(section, {}):
            return spec[section][name].get("dims", [])
    return []


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(valid_models(), st.sampled_from(["euler", "rk2", "rk4", "adaptive"]), st.integers(1, 3))
def test_well_formed_equations_compile_and_run_or_raise_an_engine_error(spec, method, n):
    try:
        model = compile_model(model_from_dict(spec, "fuzz.toml"))
        res = model.run(params={"k": np.linspace(-1, 1, n)} if n > 1 else None, method=method)
        res.to_dataframe()
        event("ran")
    except EngineError as exc:
        assert str(exc)
        event(f"engine error: {type(exc).__name__}")
