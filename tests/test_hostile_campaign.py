"""A hypothesis campaign of hostile model, scenario and data files (issue 15).

Each example mutates a good file at a random place with a hostile value (NaN, infinities, denormals,
huge numbers, wrong types, odd names, deep or long equations) and runs it the way a user would. The
outcome must be the engine's own error or a result: never a traceback, never the last-guard "internal
error", and never more than LIMIT_S seconds. Seeded and bounded, so the same examples run every time.
"""
from __future__ import annotations

import contextlib
import io
import math
import time
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from engine import EngineError
from engine.cli import main

LIMIT_S = 30.0   # per example, generous for a shared machine; a hang or an hour-long run is far past it
CAMPAIGN = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

GOOD_MODEL = {
    "model": {"name": "m"},
    "time": {"start": 0, "stop": 10, "dt": 1, "saveper": 1},
    "dimensions": {"r": ["a", "b"]},
    "constants": {"k": {"value": 0.3, "range": [0.0, 1.0]}, "w": {"value": [1.0, 2.0], "dims": ["r"]}},
    "stocks": {"x": {"initial": 100, "outflows": ["loss"]}},
    "flows": {"loss": {"equation": "k * x"}},
    "auxiliaries": {"y": {"equation": "SMOOTH(x, 2) + SUM(w[r!])"}},
    "data": {"d": {"time": [0, 10], "values": [1, 2]}},
    "lookups": {"g": {"x": [0, 1], "y": [0, 2]}},
}

hostile_scalars = st.sampled_from([
    math.nan, math.inf, -math.inf, 5e-324, 1e308, -1e308, 0, -1, 1e12, 10**30, True, "", " ", "x", "k\n",
    "nan", "1e8", "MAX()", "((((((1))))))", "(" * 300 + "1" + ")" * 300, " + ".join(["k"] * 400),
    "SMOOTH(x)", "x[zz]", "__import__('os')", "../../etc/passwd", "/etc/hostname", "a" * 300, "时间",
])
values = st.recursive(hostile_scalars | st.floats(allow_nan=True) | st.integers(-10**20, 10**20) | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                    max_size=3),
                      max_leaves=6)


def _paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += _paths(v, (*prefix, k))
    return out


PATHS = _paths(GOOD_MODEL)


def _mutate(base: dict, path: tuple, value: object, new_key: str | None) -> dict:
    import copy

    d = copy.deepcopy(base)
    node = d
    for k in path[:-1]:
        node = node[k]
    if new_key is not None and isinstance(node, dict):
        node[new_key] = value
    else:
        node[path[-1]] = value
    return d


def _write(path: Path, data: dict) -> bool:
    try:
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
    except (TypeError, ValueError):   # a value TOML cannot hold: not a file a user could give
        return False
    return True


def _run_cli(args: list[str]) -> tuple[int, str, float]:
    err = io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(args)
        except SystemExit as exc:   # argparse's own errors
            rc = int(exc.code or 0)
    return rc, err.getvalue(), time.monotonic() - t0


def _assert_clean(rc: int, err: str, seconds: float) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert rc in (0, 1, 2), (rc, err)
    if rc:
        assert err.strip(), "a failure must say why"
    assert seconds < LIMIT_S, f"took {seconds:.1f} s"


@seed(15)
@CAMPAIGN
@given(path=st.sampled_from(PATHS), value=values, new_key=st.none() | st.sampled_from(["zz", "time", "_q", "x"]))
def test_hostile_model_files(tmp_path_factory, path, value, new_key):
    folder = tmp_path_factory.mktemp("m")
    model = folder / "m.toml"
    if not _write(model, _mutate(GOOD_MODEL, path, value, new_key)):
        return
    _assert_clean(*_run_cli(["run", str(model), "--vars", "x"]))


SCENARIO_KEYS = st.sampled_from(["scenario", "set", "series", "zz"])


@seed(15)
@CAMPAIGN
@given(section=SCENARIO_KEYS, key=st.sampled_from(["k", "w", "d", "x", "base", "name", "zz"]), value=values)
def test_hostile_scenario_files(tmp_path_factory, section, key, value):
    folder = tmp_path_factory.mktemp("s")
    model = folder / "m.toml"
    _write(model, GOOD_MODEL)
    sc = folder / "s.toml"
    if not _write(sc, {section: {key: value}} if section != "zz" else {key: value}):
        return
    _assert_clean(*_run_cli(["run", str(model), str(sc), "--vars", "x"]))


cells = st.sampled_from(["", "x", "2016", "2015.5", "nan", "inf", "-1e308", "1,000", "t", "kt", "banana", "%",
                         "1e400", "２０１６", '"', "\n"])


@seed(15)
@CAMPAIGN
@given(rows=st.lists(st.tuples(cells, cells, cells, cells), min_size=0, max_size=6),
       header=st.sampled_from(["indicator,unit,year,value", "indicator,year,value", "a,b", ""]))
def test_hostile_calibration_data(tmp_path_factory, rows, header):
    from engine.analysis.calibration import load_data

    folder = tmp_path_factory.mktemp("d")
    csv = folder / "obs.csv"
    csv.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    model = _logistic()
    t0 = time.monotonic()
    try:
        series = load_data(csv, model)
    except EngineError as exc:
        assert str(exc).strip()
    else:
        assert all(len(s.years) == len(s.values) and all(map(math.isfinite, s.values)) for s in series)
    assert time.monotonic() - t0 < LIMIT_S


_LOGISTIC: list = []


def _logistic():
    if not _LOGISTIC:
        from engine import load_model

        _LOGISTIC.append(load_model("tests/models/logistic.toml"))
    return _LOGISTIC[0]


@pytest.mark.parametrize("flag, value", [("--dt", "1e-300"), ("--stop", "1e300"), ("--saveper", "-1"),
                                         ("--start", "-inf"), ("--sweep", "k=0:1:99999999999"),
                                         ("--set", "k=1e400"), ("--vars", "x[" * 50), ("--out", "/")])
def test_hostile_flags(tmp_path, flag, value):
    model = tmp_path / "m.toml"
    _write(model, GOOD_MODEL)
    _assert_clean(*_run_cli(["run", str(model), flag, value]))
