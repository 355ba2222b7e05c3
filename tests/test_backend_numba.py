"""The numba backend (a scalar kernel generated from the resolved model) against the numpy backend,
the reference (issue 12).

Oracle: the numpy backend on the same model and batch; every saved value must agree to 1e-10
relative (values near zero: 1e-10 absolute on the variable's scale). Each model compiles once per
module (numba takes seconds per model; the compiled kernels are cached on disk, so a second session
is fast). Skipped without numba.
"""
from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from backend_helpers import (DELAYS, SCALAR_BUILTINS, SUITE_DELAY_FIXED, assert_same_scalar, check_delay_fixed,
                             check_random_draws, check_suite_model)
from backend_helpers import build as _build

from engine import SimulationError, compile_model, load_model
from engine.parse import model_from_dict
from engine.results import RunStatus

pytest.importorskip("numba", reason="the numba backend needs numba (pip install numba)")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WORLD3 = SHARED / "real-models" / "WRLD3-03" / "wrld3-03.mdl"
E4A = SHARED / "real-models" / "earth4all" / "mov220501-18 E4A-global jr TLTL.mdl"


def build(backend, **sections):
    return _build(backend, **{"name": "nb", **sections})


def assert_same(rn, rb):
    assert_same_scalar(rn, rb, "numba")


BUILTINS = SCALAR_BUILTINS


@pytest.fixture(scope="module")
def builtins_models():
    return build("numpy", **BUILTINS), build("numba", **BUILTINS)


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
@pytest.mark.parametrize("n", [1, 3, 70])
def test_builtins_equal_numpy(builtins_models, method, n, monkeypatch):
    from engine.compile import numba_backend

    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_RUNS", 64)   # 70 runs: the prange kernel
    mn, mb = builtins_models
    params = {"k": np.linspace(0.1, 0.5, n), "h": np.linspace(1, 3, n)} if n > 1 else {}
    assert_same(mn.run(params=params, n=n, method=method), mb.run(params=params, n=n, method=method))


def test_chosen_outputs_saveper_and_varied_series(builtins_models):
    mn, mb = builtins_models
    kw = {"stop": 9.75, "saveper": 1.0, "variables": ["x", "vs", "tot", "k"]}
    assert_same(mn.run(**kw), mb.run(**kw))
    sc = {"a": {"d": {"time": [0, 10], "values": [5, 25]}}, "b": {"w": [3, 2, 1]}, "c": {}}
    assert_same(mn.run(scenarios=sc), mb.run(scenarios=sc))


def test_reference_model_equal_numpy():
    path = ROOT / "benchmarks" / "regional_economy.toml"
    mn, mb = load_model(path, backend="numpy"), load_model(path, backend="numba")
    rate = np.linspace(0.2, 0.4, 5)
    assert_same(mn.run(), mb.run())
    assert_same(mn.run(params={"savings_rate": rate}), mb.run(params={"savings_rate": rate}))


@pytest.mark.slow
def test_linxiang_scenarios_equal_numpy():
    from engine.scenarios import load_scenario

    path = ROOT / "model" / "linxiang.toml"
    mn, mb = load_model(path, backend="numpy"), load_model(path, backend="numba")
    runs = {}
    for f in sorted(glob.glob(str(ROOT / "scenarios" / "*.toml"))):
        sc = load_scenario(f, mn)
        runs[sc.name] = sc.overrides
    assert len(runs) >= 10
    assert_same(mn.run(scenarios=runs), mb.run(scenarios=runs))
    assert_same(mn.run(method="rk4"), mb.run(method="rk4"))


@pytest.mark.slow
@pytest.mark.skipif(not WORLD3.is_file(), reason=f"World3-03 not found at {WORLD3}")
def test_world3_equal_numpy():
    mn, mb = load_model(WORLD3, backend="numpy"), load_model(WORLD3, backend="numba")
    with np.errstate(all="ignore"):
        assert_same(mn.run(), mb.run())


def test_unsupported_construct_falls_back_with_one_line(capsys):
    # a RANDOM function whose arguments change during the run: its draws cannot be tabulated before the run
    # (DELAY FIXED, refused here before, is compiled now: test_delay_fixed_equal_numpy)
    spec = {"aux": {"y": "RANDOM_UNIFORM(0, TIME + 1, 3)"}, "time": {"dt": 1, "saveper": 1}}
    mb = build("numba", name="moving_random_nb", **spec)
    res = mb.run()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "numpy" in err[0] and "RANDOM" in err[0] and "moving_random_nb.toml" in err[0]
    assert "change during the run" in err[0]
    assert res.backend == "numpy"
    np.testing.assert_array_equal(res["y"][0], build("numpy", **spec).run()["y"][0])
    mb.run()
    assert capsys.readouterr().err == ""     # said once
    res = build("numba", name="adaptive_nb", aux={"y": "TIME"}).run(method="adaptive")
    assert res.backend == "numpy" and "adaptive" in capsys.readouterr().err


def test_too_many_values_for_numba_s_tuples_fall_back_at_once(capsys):
    """numba refuses tuples of 1 000 values or more, after typing the kernel for a minute: said before compiling."""
    spec = {"dims": {"d": [f"e{i}" for i in range(1000)]},
            "stocks": {"v": {"dims": ["d"], "initial": "1", "inflows": ["f"]}},
            "flows": {"f": {"dims": ["d"], "equation": "0.1 * v"}}, "time": {"stop": 2, "dt": 1, "saveper": 1}}
    mb = build("numba", name="wide_nb", **spec)
    res = mb.run()
    err = capsys.readouterr().err.strip().splitlines()
    assert res.backend == "numpy" and len(err) == 1 and "1000 values" in err[0] and "numba's limit of 999" in err[0]
    assert mb._numba._module is None   # refused before the kernel was built
    np.testing.assert_array_equal(res["v"], build("numpy", name="wide_nb", **spec).run()["v"])


BLOWUP = {"const": {"T": {"value": 100}}, "stocks": {"x": {"initial": "0", "inflows": ["g"]}},
          "flows": {"g": {"equation": "1 / (T - TIME)"}}, "time": {"dt": 1, "saveper": 1}}


def test_errors_and_per_run_status_are_numpy_s():
    mn, mb = build("numpy", name="blow", **BLOWUP), build("numba", name="blow", **BLOWUP)
    with pytest.raises(SimulationError) as en:
        mn.run(params={"T": [100.0, 4.0]})
    with pytest.raises(SimulationError) as eb:
        mb.run(params={"T": [100.0, 4.0]})
    assert str(en.value) == str(eb.value) and "g" in str(eb.value) and "run '1' (#1)" in str(eb.value)
    T = np.array([100.0, 4.0, 50.0])
    rn, rb = mn.run(params={"T": T}, throw=False), mb.run(params={"T": T}, throw=False)
    assert rb.status.tolist() == rn.status.tolist() == [0, int(RunStatus.NON_FINITE), 0]
    assert rb.failures == rn.failures
    np.testing.assert_array_equal(rn["x"], rb["x"])
    assert mb.run(params={"T": 100.0}).backend == "numba"    # a batch that does not fail stays compiled


def test_disk_cache_is_reused_and_a_tampered_file_is_never_run(tmp_path, monkeypatch):
    from engine.compile import numba_backend

    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path))
    spec = {"const": {"a": {"value": 0.5}}, "stocks": {"x": {"initial": "1", "inflows": ["f"]}},
            "flows": {"f": {"equation": "a * x"}}}
    m = build("numba", name="cache_nb", **spec)
    r1 = m.run()
    assert r1.backend == "numba"
    file = m._numba.cache_file
    assert file is not None and file.parent == tmp_path / "numba"
    assert list((tmp_path / "numba" / "__pycache__").glob(f"{file.stem}*.nbi")), "numba wrote no cache index"
    # another model object with the same structure and another constant: the same source file, not rewritten
    stamp = file.stat().st_mtime_ns
    m2 = build("numba", name="cache_nb", **{**spec, "const": {"a": {"value": 0.25}}})
    r2 = m2.run()
    assert m2._numba.cache_file == file and file.stat().st_mtime_ns == stamp
    assert_same(build("numpy", name="cache_nb", **{**spec, "const": {"a": {"value": 0.25}}}).run(), r2)
    # a tampered file: detected by its bytes, rewritten before it is imported
    text = file.read_text(encoding="utf-8")
    assert "return (_d0, " in text
    file.write_text(text.replace("return (_d0, ", "return (_d0 * 2.0, "), encoding="utf-8")
    m3 = build("numba", name="cache_nb", **spec)
    assert_same(build("numpy", name="cache_nb", **spec).run(), m3.run())
    assert "_d0 * 2.0" not in file.read_text(encoding="utf-8")
    assert numba_backend.version().startswith("numba-")


def test_backend_names_and_cli(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "LXSD_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("LXSD_BACKEND", None)
    model = ROOT / "tests" / "models" / "decay.toml"
    out = tmp_path / "r.csv"
    done = subprocess.run([sys.executable, "-m", "engine", "run", str(model), "--backend", "numba", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and "numpy backend" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "engine", "describe", str(model)], capture_output=True, text=True,
                          env={**env, "LXSD_BACKEND": "numba"}, cwd=ROOT, check=False)
    assert "backend numba" in done.stdout


# ------------------------------------------------------------------ SDXorg suite models (as test_backend_suite)
SUITE = Path(os.environ.get("SD_TEST_MODELS", SHARED / "sd-test-models"))
TESTS = SUITE / "tests" if (SUITE / "tests").is_dir() else SUITE
LISTED = [ln.strip() for ln in (ROOT / "tests" / "data" / "pysd_passing.txt").read_text(encoding="utf-8").splitlines()
          if ln.strip() and not ln.startswith("#")]
if os.environ.get("LXSD_BACKEND_SUITE") != "all":
    LISTED = LISTED[::8]     # numba compiles each model (seconds); LXSD_BACKEND_SUITE=all runs all of them


@pytest.mark.slow
@pytest.mark.skipif(not TESTS.is_dir(), reason=f"SDXorg test-models not found at {TESTS}")
@pytest.mark.parametrize("rel", LISTED)
def test_suite_model_equal_numpy(rel):
    from engine.io.pysd_import import import_model

    model = TESTS / rel
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        data_files = [f for f in (model.parent / "data.tab", model.parent / "data.csv") if f.is_file()]
        d = import_model(model, data_files=data_files)
        mn = compile_model(model_from_dict(d, str(model)), check_units=False, backend="numpy")
        mb = compile_model(model_from_dict(d, str(model)), check_units=False, backend="numba", )
        mb._say_fallback = False
        rn, rb = mn.run(), mb.run()
    if rb.backend != "numba":
        pytest.skip(f"not compiled by the numba backend: {mb._numba.broken if mb._numba else 'numba missing'}")
    assert_same(rn, rb)


def test_models_without_stocks_or_dynamics():
    for name, spec in (("nostock_nb", {"aux": {"y": "TIME * 2", "z": "IF_THEN_ELSE(y > 5, 1, 0)"}}),
                       ("constonly_nb", {"const": {"c": {"value": 3}}, "aux": {"y": "c * 2"}})):
        assert_same(build("numpy", name=name, **spec).run(n=2), build("numba", name=name, **spec).run(n=2))


# ------------------------------------------------------------------ DELAY FIXED and RANDOM (as the C backend)
@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
def test_delay_fixed_equal_numpy(method):
    """DELAY FIXED in the kernel (a ring buffer a run, as the C kernel): the numpy loop's lags, initial values
    and pushes; SAMPLE IF TRUE and DELAY N's lagged delay times ride on it (backend_helpers.DELAYS)."""
    check_delay_fixed("numba", method, assert_same)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_random_functions_equal_numpy(method, monkeypatch):
    """RANDOM functions in the kernel read the numpy code's own draws, bit for bit (backend_helpers)."""
    check_random_draws("numba", method, assert_same, monkeypatch)


def test_delays_and_draws_in_parallel(monkeypatch):
    """70 runs on the prange kernel: each run its own ring space and its own draws."""
    from engine.compile import numba_backend

    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_RUNS", 64)
    spec = {**DELAYS, "aux": {**DELAYS["aux"], "noise": "RANDOM_NORMAL(-3, 3, 0, 1, 1) + df"}}
    mn, mb = build("numpy", name="threads", **spec), build("numba", name="threads", **spec)
    T = np.linspace(0.25, 12.0, 70)
    rn, rb = mn.run(params={"T": T}, n=70, seed=3), mb.run(params={"T": T}, n=70, seed=3)
    assert_same(rn, rb)
    assert np.array_equal(rn["noise"], rb["noise"])


def test_delay_time_not_finite_same_error_as_numpy():
    """A DELAY FIXED whose delay time is not finite: the batch is re-run on numpy, so the error is numpy's."""
    spec = {**DELAYS, "const": {**DELAYS["const"], "z": {"value": 0.0}},
            "aux": {**DELAYS["aux"], "df": "DELAY_FIXED(x, T / z, x0)"}}
    mn, mb = build("numpy", name="badT", **spec), build("numba", name="badT", **spec)
    with pytest.raises(SimulationError) as en:
        mn.run()
    with pytest.raises(SimulationError) as eb:
        mb.run()
    assert str(en.value) == str(eb.value) and "DELAY FIXED" in str(eb.value)


@pytest.mark.slow
@pytest.mark.skipif(not TESTS.is_dir(), reason=f"SDXorg test-models not found at {TESTS}")
@pytest.mark.parametrize("rel", SUITE_DELAY_FIXED)
def test_suite_delay_fixed_models_equal_numpy(rel):
    """The suite's models with DELAY FIXED (and SAMPLE IF TRUE, which the numpy code builds on it) on numba."""
    check_suite_model(TESTS / rel, "numba", assert_same)


@pytest.mark.slow
@pytest.mark.skipif(not E4A.is_file(), reason=f"Earth4All not found at {E4A} (../shared absent)")
def test_earth4all_equal_numpy():
    """Earth4All (855 variables, 7 681 steps, DELAY FIXED, RANDOM PINK NOISE) on numba, to 1e-10 of each
    variable's scale (as test_backend_c's: numpy's exp/log/pow and LLVM's math library may differ in the last
    bit, and 240 years of feedback carry that). numba compiles it for minutes the first time (cached after)."""
    mn = load_model(E4A, backend="numpy")
    mb = compile_model(mn.model, check_units=False, backend="numba")   # the .mdl read once
    rb = mb.run()
    assert rb.backend == "numba", "Earth4All fell back to numpy"
    with np.errstate(all="ignore"):
        rn = mn.run()
    np.testing.assert_array_equal(rn.times, rb.times)
    assert rn.variables == rb.variables
    for v in rn.variables:
        a, b = rn[v], rb[v]
        assert a.shape == b.shape and (np.isnan(a) == np.isnan(b)).all(), v
        scale = np.nanmax(np.abs(a), initial=0.0)
        assert np.nanmax(np.abs(a - b), initial=0.0) <= 1e-10 * scale, v
