"""The C backend (the numba backend's scalar kernel printed as C, compiled by the system compiler)
against the numpy backend, the reference (issue 12).

Oracle: the numpy backend on the same model and batch; every saved value must agree to 1e-10
relative (values near zero: 1e-10 absolute on the variable's scale). Skipped without a C compiler.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from backend_helpers import (DELAYS, SCALAR_BUILTINS, assert_same_scalar, check_delay_fixed, check_random_draws,
                             suite_pair)
from backend_helpers import build as _build

from engine import SimulationError, compile_model, load_model
from engine.backends import c_compiler_found
from engine.results import RunStatus

if not c_compiler_found():
    pytest.skip("the C backend needs a C compiler (cc or $CC)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WORLD3 = SHARED / "real-models" / "WRLD3-03" / "wrld3-03.mdl"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """A cache folder of this test module's own (compiled libraries are reused between its tests)."""
    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "c-cache"))


def build(backend, **sections):
    return _build(backend, **{"name": "cb", **sections})


def assert_same(rn, rb):
    assert_same_scalar(rn, rb, "c")


BUILTINS = {**SCALAR_BUILTINS, "aux": {
    **SCALAR_BUILTINS["aux"],
    "trig": "SIN(x) + COS(TIME) + TAN(0.1 * x) + ARCTAN(x) + ARCSIN(0.1) + ARCCOS(0.2) + SIGN(x - 2)",
    "ramp2": "RAMP(0.5, 1, 4) + PULSE(2, 1.5) + LOG(x + 2)"}}


@pytest.fixture(scope="module")
def builtins_models():
    return build("numpy", **BUILTINS), build("c", **BUILTINS)


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
@pytest.mark.parametrize("n", [1, 3, 70])
def test_builtins_equal_numpy(builtins_models, method, n, monkeypatch):
    from engine.compile import c_backend

    monkeypatch.setattr(c_backend, "PARALLEL_MIN_RUNS", 64)   # 70 runs: the threaded loop (when OpenMP works)
    mn, mc = builtins_models
    params = {"k": np.linspace(0.1, 0.5, n), "h": np.linspace(1, 3, n)} if n > 1 else {}
    assert_same(mn.run(params=params, n=n, method=method), mc.run(params=params, n=n, method=method))


def test_chosen_outputs_saveper_and_varied_series(builtins_models):
    mn, mc = builtins_models
    kw = {"stop": 9.75, "saveper": 1.0, "variables": ["x", "vs", "tot", "k"]}
    assert_same(mn.run(**kw), mc.run(**kw))
    sc = {"a": {"d": {"time": [0, 10], "values": [5, 25]}}, "b": {"w": [3, 2, 1]}, "c": {}}
    assert_same(mn.run(scenarios=sc), mc.run(scenarios=sc))


def test_reference_model_equal_numpy():
    path = ROOT / "benchmarks" / "regional_economy.toml"
    mn, mc = load_model(path, backend="numpy"), load_model(path, backend="c")
    rate = np.linspace(0.2, 0.4, 5)
    assert_same(mn.run(), mc.run())
    assert_same(mn.run(params={"savings_rate": rate}), mc.run(params={"savings_rate": rate}))


def test_linxiang_scenarios_equal_numpy():
    from engine.scenarios import load_scenario

    path = ROOT / "model" / "linxiang.toml"
    mn, mc = load_model(path, backend="numpy"), load_model(path, backend="c")
    runs = {}
    for f in sorted(glob.glob(str(ROOT / "scenarios" / "*.toml"))):
        sc = load_scenario(f, mn)
        runs[sc.name] = sc.overrides
    assert len(runs) >= 10
    assert_same(mn.run(scenarios=runs), mc.run(scenarios=runs))
    assert_same(mn.run(method="rk4"), mc.run(method="rk4"))


@pytest.mark.skipif(not WORLD3.is_file(), reason=f"World3-03 not found at {WORLD3}")
def test_world3_equal_numpy():
    mn, mc = load_model(WORLD3, backend="numpy"), load_model(WORLD3, backend="c")
    with np.errstate(all="ignore"):
        assert_same(mn.run(), mc.run())
        assert_same(mn.run(method="rk2"), mc.run(method="rk2"))


def test_unsupported_construct_falls_back_with_one_line(capsys):
    # a RANDOM function whose arguments change during the run: its draws cannot be tabulated before the run
    spec = {"aux": {"y": "RANDOM_UNIFORM(0, TIME + 1, 3)"}, "time": {"dt": 1, "saveper": 1}}
    mc = build("c", name="moving_random_c", **spec)
    res = mc.run()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "numpy" in err[0] and "RANDOM" in err[0] and "moving_random_c.toml" in err[0]
    assert "change during the run" in err[0]
    assert res.backend == "numpy"
    np.testing.assert_array_equal(res["y"][0], build("numpy", **spec).run()["y"][0])
    mc.run()
    assert capsys.readouterr().err == ""     # said once
    res = build("c", name="adaptive_c", aux={"y": "TIME"}).run(method="adaptive")
    assert res.backend == "numpy" and "adaptive" in capsys.readouterr().err


def test_no_compiler_falls_back_with_one_line(capsys, monkeypatch):
    from engine.compile import c_backend

    monkeypatch.setenv("CC", "no-such-compiler-lxsd")
    spec = {"aux": {"y": "TIME * 2"}}
    res = build("c", name="nocc_c", **spec).run()
    err = capsys.readouterr().err.strip().splitlines()
    assert res.backend == "numpy"
    assert len(err) == 1 and "nocc_c.toml" in err[0] and "no C compiler" in err[0]
    # a compiler found but failing: one line naming the failure, numbers from numpy
    monkeypatch.setenv("CC", "false")
    monkeypatch.setattr(c_backend, "_compiler_info", ("false", "false (test)", False))
    monkeypatch.setenv("LXSD_CACHE_DIR", str(Path(os.environ["LXSD_CACHE_DIR"]) / "broken"))
    res = build("c", name="badcc_c", **spec).run()
    err = capsys.readouterr().err.strip().splitlines()
    assert res.backend == "numpy" and len(err) == 1 and "C compiler failed" in err[0]
    np.testing.assert_array_equal(res["y"], build("numpy", **spec).run()["y"])


BLOWUP = {"const": {"T": {"value": 100}}, "stocks": {"x": {"initial": "0", "inflows": ["g"]}},
          "flows": {"g": {"equation": "1 / (T - TIME)"}}, "time": {"dt": 1, "saveper": 1}}


def test_errors_and_per_run_status_are_numpy_s():
    mn, mc = build("numpy", name="blow", **BLOWUP), build("c", name="blow", **BLOWUP)
    with pytest.raises(SimulationError) as en:
        mn.run(params={"T": [100.0, 4.0]})
    with pytest.raises(SimulationError) as ec:
        mc.run(params={"T": [100.0, 4.0]})
    assert str(en.value) == str(ec.value) and "g" in str(ec.value) and "run '1' (#1)" in str(ec.value)
    T = np.array([100.0, 4.0, 50.0])
    rn, rc = mn.run(params={"T": T}, throw=False), mc.run(params={"T": T}, throw=False)
    assert rc.status.tolist() == rn.status.tolist() == [0, int(RunStatus.NON_FINITE), 0]
    assert rc.failures == rn.failures
    np.testing.assert_array_equal(rn["x"], rc["x"])
    assert mc.run(params={"T": 100.0}).backend == "c"    # a batch that does not fail stays compiled


def test_disk_cache_is_reused(tmp_path, monkeypatch):
    from engine.compile import c_backend

    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path))
    spec = {"const": {"a": {"value": 0.5}}, "stocks": {"x": {"initial": "1", "inflows": ["f"]}},
            "flows": {"f": {"equation": "a * x"}}}
    m = build("c", name="cache_c", **spec)
    assert m.run().backend == "c"
    file = m._c.cache_file
    assert file is not None and file.parent == tmp_path / "c" and file.suffix == ".so"
    stamp = file.stat().st_mtime_ns
    # the same structure with another constant: the same library, not rebuilt
    other = {**spec, "const": {"a": {"value": 0.25}}}
    m2 = build("c", name="cache_c", **other)
    r2 = m2.run()
    assert m2._c.cache_file == file and file.stat().st_mtime_ns == stamp
    assert_same(build("numpy", name="cache_c", **other).run(), r2)
    # another structure: another library
    m3 = build("c", name="cache_c", **{**spec, "flows": {"f": {"equation": "a * x + 1"}}})
    assert m3.run().backend == "c" and m3._c.cache_file != file
    assert list((tmp_path / "c").glob("*.so")) and not list((tmp_path / "c").glob(".build-*"))
    # a new process finds the library and does not call the compiler
    code = ("import numpy as np; from engine import compile_model; from engine.parse import model_from_dict; "
            "from engine.compile import c_backend; import subprocess; "
            "called = []; real = subprocess.run; "
            "c_backend.subprocess.run = lambda a, **k: "
            "(called.append(a[0]) if str(a[-2]).endswith('kernel.c') else None) or real(a, **k); "
            f"d = {{'model': {{'name': 'cache_c'}}, 'time': {{'start': 0, 'stop': 10, 'dt': 0.25, 'saveper': 0.5}}, "
            f"'constants': {spec['const']!r}, 'stocks': {spec['stocks']!r}, 'flows': {spec['flows']!r}}}; "
            "m = compile_model(model_from_dict(d, 'cache_c.toml'), check_units=False, backend='c'); r = m.run(); "
            "print(r.backend, m._c.cache_file, len(called))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False,
                          env={**os.environ, "LXSD_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["c", str(file), "0"]
    assert c_backend.version() == " ".join(c_backend.compiler()[1:2]) + (" with OpenMP" if m._c.threads_ok else "")


def test_generated_c_holds_no_model_text():
    names = ["very_secret_name", "other_secret"]
    m = build("c", name="secret_c", const={names[0]: {"value": 2.0}},
              stocks={names[1]: {"initial": "1", "inflows": ["flow_secret"]}},
              flows={"flow_secret": {"equation": f"{names[0]} * {names[1]} / 10"}})
    assert m.run().backend == "c"
    src = m._c.ccode().source
    assert "secret" not in src and "flow" not in src


def test_printer_refuses_unknown_nodes():
    from engine.compile.c_code import _Printer
    from engine.compile.scalar_code import NotSupported
    import ast

    p = _Printer({"v0"})
    assert p.expr(ast.parse("_fmin(v0, -np.inf) + 1e-06", mode="eval").body) == "(lx_fmin(v0, (-INFINITY)) + 1e-06)"
    for bad in ("__import__('os')", "v0.real", "v0[0]", "v1", "lambda: 0", "'text'", "v0 ** 2", "open(v0)"):
        with pytest.raises(NotSupported):
            p.expr(ast.parse(bad, mode="eval").body)


def test_backend_names_and_cli(tmp_path):
    env = {**os.environ, "LXSD_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("LXSD_BACKEND", None)
    model = ROOT / "tests" / "models" / "decay.toml"
    out = tmp_path / "r.csv"
    done = subprocess.run([sys.executable, "-m", "engine", "run", str(model), "--backend", "c", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and "numpy backend" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "engine", "describe", str(model)], capture_output=True, text=True,
                          env={**env, "LXSD_BACKEND": "c"}, cwd=ROOT, check=False)
    assert "backend c" in done.stdout


def test_models_without_stocks_or_dynamics():
    for name, spec in (("nostock_c", {"aux": {"y": "TIME * 2", "z": "IF_THEN_ELSE(y > 5, 1, 0)"}}),
                       ("constonly_c", {"const": {"c": {"value": 3}}, "aux": {"y": "c * 2"}})):
        assert_same(build("numpy", name=name, **spec).run(n=2), build("c", name=name, **spec).run(n=2))


# ------------------------------------------------------------------ SDXorg suite models (as test_backend_suite)
SUITE = Path(os.environ.get("SD_TEST_MODELS", SHARED / "sd-test-models"))
TESTS = SUITE / "tests" if (SUITE / "tests").is_dir() else SUITE
LISTED = [ln.strip() for ln in (ROOT / "tests" / "data" / "pysd_passing.txt").read_text(encoding="utf-8").splitlines()
          if ln.strip() and not ln.startswith("#")]
# every listed model: the compiler takes a fraction of a second a model (the whole list ran in 34 s)


@pytest.mark.slow
@pytest.mark.skipif(not TESTS.is_dir(), reason=f"SDXorg test-models not found at {TESTS}")
@pytest.mark.parametrize("rel", LISTED)
def test_suite_model_equal_numpy(rel):
    mn, mc = suite_pair(TESTS / rel, "c")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        rn, rc = mn.run(), mc.run()
    if rc.backend != "c":
        why = (mc._c.broken or "a dynamic clock (time settings that are equations)") if mc._c else "no C compiler"
        pytest.skip(f"not compiled by the C backend: {why}")
    assert_same(rn, rc)


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
def test_delay_fixed_equal_numpy(method):
    """DELAY FIXED in the kernel (a ring buffer a run): the numpy loop's lags, initial values and pushes."""
    check_delay_fixed("c", method, assert_same)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_random_functions_equal_numpy(method, monkeypatch):
    """RANDOM functions in the kernel read the numpy code's own draws, bit for bit (backend_helpers)."""
    check_random_draws("c", method, assert_same, monkeypatch)


def test_uniform_table_is_uniforms_stacked():
    from engine.compile import random_streams as rs

    st = rs.Streams()
    st.seed, st.first_run = 7, 3
    idx = np.ix_(np.array([0, 2]), np.arange(2)) + (slice(None),)
    tab = rs.uniform_table(st, 12345, 2.0, 6, (3, 2), idx, 1, 4)
    assert tab.shape == (6, 2, 2, 4)
    for k in range(6):
        u = rs.uniforms(st, 12345, 2.0, 10 + k * 0.5, 10.0, 0.5, (3, 2), idx, 5)
        assert np.array_equal(tab[k], u[..., 1:])


E4A = SHARED / "real-models" / "earth4all" / "mov220501-18 E4A-global jr TLTL.mdl"


@pytest.mark.skipif(not E4A.is_file(), reason=f"Earth4All not found at {E4A} (../shared absent)")
def test_earth4all_equal_numpy():
    """Earth4All (855 variables, 7 681 steps, DELAY N with changing delay times, RANDOM PINK NOISE) on C.
    The bar is 1e-10 of each variable's scale (its largest absolute value) rather than of each value: numpy's
    exp, log and pow (its AVX-512 loops where the CPU has them) and the C library's differ in the last bit
    for a few per cent of arguments, and 240 years of feedback carry that to 1e-12 absolute, which near a
    zero crossing of a rate is 1e-9 of the value (measured: 4.5e-13 of the scale at most)."""
    mn = load_model(E4A, backend="numpy")
    mc = compile_model(mn.model, check_units=False, backend="c")   # the .mdl read once (its import takes seconds)
    rc = mc.run()
    assert rc.backend == "c", "Earth4All fell back to numpy"
    with np.errstate(all="ignore"):
        rn = mn.run()
    np.testing.assert_array_equal(rn.times, rc.times)
    assert rn.variables == rc.variables
    for v in rn.variables:
        a, b = rn[v], rc[v]
        assert a.shape == b.shape and (np.isnan(a) == np.isnan(b)).all(), v
        scale = np.nanmax(np.abs(a), initial=0.0)
        assert np.nanmax(np.abs(a - b), initial=0.0) <= 1e-10 * scale, v


def test_delays_and_draws_in_threads(monkeypatch):
    """70 runs on the threaded loop (when OpenMP works): each thread its own ring space, each run its own draws."""
    from engine.compile import c_backend

    monkeypatch.setattr(c_backend, "PARALLEL_MIN_RUNS", 64)
    spec = {**DELAYS, "aux": {**DELAYS["aux"], "noise": "RANDOM_NORMAL(-3, 3, 0, 1, 1) + df"}}
    mn, mc = build("numpy", name="threads", **spec), build("c", name="threads", **spec)
    T = np.linspace(0.25, 12.0, 70)
    rn, rc = mn.run(params={"T": T}, n=70, seed=3), mc.run(params={"T": T}, n=70, seed=3)
    assert_same(rn, rc)
    assert np.array_equal(rn["noise"], rc["noise"])


def test_delay_time_not_finite_same_error_as_numpy():
    """A DELAY FIXED whose delay time is not finite: the batch is re-run on numpy, so the error is numpy's."""
    spec = {**DELAYS, "const": {**DELAYS["const"], "z": {"value": 0.0}},
            "aux": {**DELAYS["aux"], "df": "DELAY_FIXED(x, T / z, x0)"}}
    mn, mc = build("numpy", name="badT", **spec), build("c", name="badT", **spec)
    with pytest.raises(SimulationError) as en:
        mn.run()
    with pytest.raises(SimulationError) as ec:
        mc.run()
    assert str(en.value) == str(ec.value) and "DELAY FIXED" in str(ec.value)
