"""Regression tests of issue 15's fixes that need more than a one-line error (results, API, Dask)."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from engine import EngineError, ModelError, SimulationError, compile_model
from engine import limits
from engine.limits import LimitError, forced
from engine.parse.expr import BinOp, Ref, parse_expression, unparse
from engine.parse.model_file import model_from_dict
from engine.scenarios import load_scenario

TIME = {"start": 0, "stop": 2, "dt": 1}


def build(**sections):
    return compile_model(model_from_dict({"time": dict(TIME), **sections}, "m.toml"))


# ---------------------------------------------------------------- item 1: names never meet
@pytest.mark.parametrize("sections, message", [
    ({"data": {"d": {"time": [0, 10], "values": [7, 7]}}, "constants": {"d__v": {"value": 5}},
      "auxiliaries": {"f": {"equation": "d__v"}}}, "reserved for the series of data input 'd'"),
    ({"data": {"d": {"time": [0, 10], "values": [7, 7]}}, "constants": {"d__t": {"value": 5}}},
     "reserved for the series of data input 'd'"),
    ({"constants": {"_smooth_q_1": {"value": 5}, "inp": {"value": 10}},
      "auxiliaries": {"q": {"equation": "SMOOTH(inp, 2) + _smooth_q_1"}}}, "reserved for the engine's internal"),
    ({"constants": {"Time": {"value": 1}}}, "reserved name"),
    ({"constants": {"scenario": {"value": 1}}}, "reserved name"),
    ({"constants": {"k\n": {"value": 1}}}, "is not a valid name"),
    ({"constants": {"k" * 256: {"value": 1}}}, "at most 255"),
])
def test_names_that_could_meet_generated_names_are_refused(sections, message):
    with pytest.raises(ModelError, match=message):
        build(**sections)


def test_allowed_names_still_work_and_internal_names_stay_apart():
    # a digit after the underscore (the importer's names for "2nd stage"), and __ elsewhere, are fine
    m = build(constants={"_2nd": {"value": 2.0}, "a__b": {"value": 3.0}},
              data={"d": {"time": [0, 10], "values": [7, 7]}},
              auxiliaries={"f": {"equation": "_2nd * a__b + d"}, "q": {"equation": "SMOOTH(f, 2)"}})
    res = m.run()
    np.testing.assert_allclose(res["f"][0], 13.0)
    np.testing.assert_allclose(res["q"][0], 13.0)


# ---------------------------------------------------------------- item 6: a flat sum of 1 000 terms
def test_flat_sum_of_1000_terms_runs_and_is_right():
    m = build(constants={"k": {"value": 0.5}}, auxiliaries={"big": {"equation": " + ".join(["k"] * 1000)}})
    np.testing.assert_allclose(m.run(variables=["big"])["big"][0], 500.0)


@pytest.mark.parametrize("n", [3, 64, 65, 200, 1001])
@pytest.mark.parametrize("ops", ["+-", "*/"])
def test_long_chains_equal_left_to_right_and_round_trip(n, ops):
    rng = np.random.default_rng(15)
    vals = {"a": 1.01, "b": 0.99, "c": 1.02}
    names = list(rng.choice(list(vals), n))
    signs = list(rng.choice(list(ops), n - 1))
    text = names[0] + "".join(f" {o} {t}" for o, t in zip(signs, names[1:], strict=True))
    fns = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
    want = vals[names[0]]
    for o, t in zip(signs, names[1:], strict=True):
        want = fns[o](want, vals[t])

    def ev(node):
        return vals[node.name] if isinstance(node, Ref) else fns[node.op](ev(node.left), ev(node.right))

    tree = parse_expression(text)
    assert ev(tree) == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert parse_expression(unparse(tree)) == tree
    if n <= 64:   # short chains keep Vensim's left-to-right order exactly
        assert isinstance(tree, BinOp) and isinstance(tree.right, Ref)


# ---------------------------------------------------------------- item 7: messages
def test_a_bom_is_accepted(tmp_path):
    (tmp_path / "m.toml").write_bytes(b"\xef\xbb\xbf[time]\nstart = 0\nstop = 2\ndt = 1\n[constants.k]\nvalue = 1\n")
    (tmp_path / "s.toml").write_bytes(b"\xef\xbb\xbf[set]\nk = 2\n")
    from engine import load_model

    m = load_model(tmp_path / "m.toml")
    assert load_scenario(tmp_path / "s.toml", m).overrides == {"k": 2}


def test_nan_input_is_named_before_the_run():
    m = build(constants={"k": {"value": 1.0}}, stocks={"x": {"initial": 1, "inflows": ["f"]}},
              flows={"f": {"equation": "k * x"}})
    with pytest.raises(EngineError, match="input 'k' is nan in run 'bad'"):
        m.run(scenarios={"good": {"k": 1.0}, "bad": {"k": float("nan")}})


def test_failing_run_is_named_by_its_label():
    m = build(constants={"k": {"value": 1.0}}, stocks={"x": {"initial": 1, "inflows": ["f"]}},
              flows={"f": {"equation": "x / (k - 0.5)"}})
    with pytest.raises(SimulationError, match="run 'half'"):
        m.run(scenarios={"one": {"k": 1.0}, "half": {"k": 0.5}})


def test_long_unit_alias_chain_is_not_a_loop():
    aliases = {f"u{i}": f"u{i + 1}" for i in range(1, 15)} | {"u15": "t"}
    m = compile_model(model_from_dict({
        "time": dict(TIME), "units": aliases,
        "stocks": {"x": {"initial": 1, "inflows": ["f"], "unit": "u1"}},
        "constants": {"k": {"value": 0.1, "unit": "1/year"}},
        "flows": {"f": {"equation": "k * x", "unit": "t/year"}}}, "m.toml"))
    assert m.run()["x"].shape == (1, 3)
    with pytest.raises(ModelError, match="refers to itself: a -> b -> a"):
        compile_model(model_from_dict({"time": dict(TIME), "units": {"a": "b", "b": "a"},
                                       "constants": {"k": {"value": 1, "unit": "a"}}}, "m.toml"))


# ---------------------------------------------------------------- item 2: bases confined
def test_base_inside_an_allowed_folder_is_read(tmp_path):
    shared = tmp_path / "shared"
    mine = tmp_path / "mine"
    shared.mkdir()
    mine.mkdir()
    (shared / "b.toml").write_text("[set]\nk = 0.5\n")
    (mine / "a.toml").write_text('[scenario]\nbase = "../shared/b"\n')
    m = build(constants={"k": {"value": 1.0}})
    with pytest.raises(ModelError, match="outside the scenario's folder"):
        load_scenario(mine / "a.toml", m)
    assert load_scenario(mine / "a.toml", m, allowed=(shared,)).overrides == {"k": 0.5}


def test_base_through_a_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "secret.toml"
    outside.write_text("[set]\nk = 0.5\n")
    folder = tmp_path / "sc"
    folder.mkdir()
    (folder / "link.toml").symlink_to(outside)
    (folder / "a.toml").write_text('[scenario]\nbase = "link"\n')
    with pytest.raises(ModelError, match="outside the scenario's folder"):
        load_scenario(folder / "a.toml", build(constants={"k": {"value": 1.0}}))


# ---------------------------------------------------------------- items 3-4: limits
def test_limits_refuse_and_force_runs(monkeypatch):
    from engine import limits

    m = build(constants={"k": {"value": 1.0}}, auxiliaries={"a": {"equation": "k"}})
    with pytest.raises(LimitError, match="takes 2e\\+07 time steps"):
        m.run(stop=2e7)
    with pytest.raises(LimitError, match="1e\\+09 runs in one call"):
        m.run(n=10**9, variables=["a"])
    with pytest.raises(LimitError, match="value updates"):
        m.run(n=10**4, stop=5e6, variables=["a"])
    monkeypatch.setattr(limits, "available_memory", lambda: 2**20)   # 1 MiB: a batch of 10 000 needs more
    with pytest.raises(LimitError, match="of memory .* save fewer variables"):
        m.run(n=10**4, variables=["a"])
    with forced():
        assert m.run(stop=20).times[-1] == 20
        assert m.run(n=10**4, variables=["a"])["a"].shape == (10**4, 3)


def test_a_huge_dimension_is_refused_before_compiling(monkeypatch):
    # the limit is a million elements since compiling became linear (tests/test_dimension_scaling.py);
    # a lower one here keeps the test small, the behaviour is the same
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 1000)
    elems = [f"e{i}" for i in range(1001)]
    with pytest.raises(LimitError, match="dimension 'r' has 1001 elements"):
        build(dimensions={"r": elems}, constants={"k": {"value": 1.0, "dims": ["r"]}})


# ---------------------------------------------------------------- item 3: Dask hangs
def test_a_port_that_is_not_a_scheduler_fails_within_the_timeout():
    from engine.analysis.distributed import DaskExecutor

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held: list[socket.socket] = []

    def accept():
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(EngineError, match="did not answer as a Dask scheduler"):
            DaskExecutor(scheduler=f"tcp://127.0.0.1:{srv.getsockname()[1]}", timeout=1.0)
    finally:
        srv.close()
        for c in held:
            c.close()
    assert time.monotonic() - t0 < 30   # bounded (it waited forever before the fix)


def test_a_scheduler_without_workers_is_an_error():
    from dask.distributed import LocalCluster

    from engine.analysis.distributed import DaskExecutor

    cluster = LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    try:
        with pytest.raises(EngineError, match="has no workers"):
            DaskExecutor(scheduler=cluster.scheduler_address, timeout=1.0)
    finally:
        cluster.close()


# ---------------------------------------------------------------- item 5: calibration data units
LOGISTIC = "tests/models/logistic.toml"


def _obs(tmp_path, unit: str, value: float = 12.0):
    p = tmp_path / "obs.csv"
    p.write_text(f"indicator,unit,year,value,source\nx,{unit},2016,{value},test\n", encoding="utf-8")
    return p


def test_calibration_data_in_kt_are_converted_to_the_models_t(tmp_path):
    from engine import load_model
    from engine.analysis.calibration import load_data

    m = load_model(LOGISTIC)
    assert load_data(_obs(tmp_path, "t"), m)[0].values.tolist() == [12.0]
    s = load_data(_obs(tmp_path, "kt", 0.012), m)[0]
    assert s.values.tolist() == pytest.approx([12.0]) and s.unit == "t"


@pytest.mark.parametrize("unit", ["banana", "t/year", "yuan"])
def test_calibration_refuses_an_incompatible_unit_naming_the_indicator(tmp_path, unit):
    from engine import load_model
    from engine.analysis.calibration import load_data

    with pytest.raises(ModelError, match=r"obs.csv: x: the data's unit .* cannot be converted to x's unit 't'"):
        load_data(_obs(tmp_path, unit), load_model(LOGISTIC))


# ---------------------------------------------------------------- item 9: GET DIRECT confined
def _get_direct_model(folder, file_text: str):
    mdl = folder / "m.mdl"
    mdl.write_text("{UTF-8}\n"
                   f"direct constants := GET DIRECT CONSTANTS('{file_text}', ',', 'A1')\n\t~\t\t~\t\t|\n"
                   "FINAL TIME  = 2\n\t~\t\t~\t\t|\nINITIAL TIME  = 0\n\t~\t\t~\t\t|\n"
                   "SAVEPER  = 1\n\t~\t\t~\t\t|\nTIME STEP  = 1\n\t~\t\t~\t\t|\n"
                   "\\\\\\---/// Sketch information - do not modify anything except names\n", encoding="utf-8")
    return mdl


def test_get_direct_reads_inside_the_models_folder_only(tmp_path, monkeypatch):
    from engine import load_model

    monkeypatch.delenv("LXSD_ALLOW_DATA_OUTSIDE", raising=False)
    (tmp_path / "outside.csv").write_text("42\n")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "inside.csv").write_text("7\n")
    assert load_model(_get_direct_model(folder, "inside.csv")).run()["direct_constants"][0, 0] == 7
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(_get_direct_model(folder, "../outside.csv"))
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(_get_direct_model(folder, str(tmp_path / "outside.csv")))
    monkeypatch.setenv("LXSD_ALLOW_DATA_OUTSIDE", "1")   # what --allow-data-outside sets
    assert load_model(_get_direct_model(folder, "../outside.csv")).run()["direct_constants"][0, 0] == 42


def test_cli_allow_data_outside_flag(tmp_path, monkeypatch, capsys):
    from engine.cli import main

    monkeypatch.setenv("LXSD_ALLOW_DATA_OUTSIDE", "0")   # main() sets it: monkeypatch restores it after
    (tmp_path / "outside.csv").write_text("42\n")
    folder = tmp_path / "model"
    folder.mkdir()
    mdl = _get_direct_model(folder, "../outside.csv")
    assert main(["run", str(mdl)]) == 2
    assert "--allow-data-outside" in capsys.readouterr().err
    assert main(["run", str(mdl), "--allow-data-outside"]) == 0


def test_calibration_data_with_a_bom_is_read(tmp_path):
    from engine import load_model
    from engine.analysis.calibration import load_data

    p = tmp_path / "obs.csv"
    p.write_bytes("\ufeffindicator,unit,year,value,source\nx,t,2016,12.0,test\n".encode())
    assert load_data(p, load_model(LOGISTIC))[0].values.tolist() == [12.0]
