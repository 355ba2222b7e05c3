"""The compiled (JAX) backend against the numpy backend, the reference (issue 12).

Oracle: the numpy backend on the same model and batch; every saved value must agree to 1e-10
relative (values near zero: 1e-10 absolute on the variable's scale). Skipped without jax.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import pytest
from backend_helpers import (DELAYS, RANDOMS, REL, SCALAR_BUILTINS, SUITE_DELAY_FIXED, build, check_delay_fixed,
                             check_suite_model)

from engine import EngineError, SimulationError, compile_model, load_model
from engine.parse import model_from_dict
from engine.results import RunStatus

jax = pytest.importorskip("jax", reason="the compiled backend needs jax (pip install jax)")

ROOT = Path(__file__).resolve().parents[1]


def assert_same(rn, rj):
    assert rj.backend == "jax", "the run fell back to numpy"
    np.testing.assert_array_equal(rn.times, rj.times)
    assert rn.variables == rj.variables
    for v in rn.variables:
        a, b = rn[v], rj[v]
        assert a.shape == b.shape, v
        scale = np.maximum(np.abs(a), np.nanmax(np.abs(a)) * 1e-6 if a.size else 0) + 1e-300
        err = np.max(np.abs(a - b) / scale) if a.size else 0.0
        assert err <= REL, f"{v}: relative difference {err:.2e}"


# the JAX tests' builtins model: the scalar backends' (backend_helpers) less its subranges, the `hit` lookup and the
# `red`, `hits` and `pick` auxiliaries (the model these tests always ran, now written once)
BUILTINS = {**{k: v for k, v in SCALAR_BUILTINS.items() if k != "subranges"},
            "lookups": {k: v for k, v in SCALAR_BUILTINS["lookups"].items() if k != "hit"},
            "aux": {k: v for k, v in SCALAR_BUILTINS["aux"].items() if k not in ("red", "hits", "pick")}}


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
@pytest.mark.parametrize("n", [1, 3])
def test_builtins_equal_numpy(method, n):
    mn, mj = build("numpy", **BUILTINS), build("jax", **BUILTINS)
    params = {"k": np.linspace(0.1, 0.5, n), "h": np.linspace(1, 3, n)} if n > 1 else {}
    rn = mn.run(params=params, n=n, method=method)
    rj = mj.run(params=params, n=n, method=method)
    assert_same(rn, rj)


def test_saveper_not_dividing_the_run_and_chosen_outputs():
    mn, mj = build("numpy", **BUILTINS), build("jax", **BUILTINS)
    kw = {"stop": 9.75, "saveper": 1.0, "variables": ["x", "vs", "tot"]}
    assert_same(mn.run(**kw), mj.run(**kw))


def test_reference_model_equal_numpy():
    path = ROOT / "benchmarks" / "regional_economy.toml"
    mn, mj = load_model(path, backend="numpy"), load_model(path, backend="jax")
    rate = np.linspace(0.2, 0.4, 5)
    assert_same(mn.run(), mj.run())
    assert_same(mn.run(params={"savings_rate": rate}), mj.run(params={"savings_rate": rate}))


@pytest.mark.slow
def test_linxiang_scenarios_equal_numpy():
    from engine.scenarios import load_scenario

    path = ROOT / "model" / "linxiang.toml"
    mn, mj = load_model(path, backend="numpy"), load_model(path, backend="jax")
    runs = {}
    for f in sorted(glob.glob(str(ROOT / "scenarios" / "*.toml"))):
        sc = load_scenario(f, mn)
        runs[sc.name] = sc.overrides
    assert len(runs) >= 10
    assert_same(mn.run(scenarios=runs), mj.run(scenarios=runs))


def test_unsupported_construct_falls_back_with_one_line(capsys):
    # a vector function without a JAX version (DELAY FIXED, refused here before, is compiled now:
    # test_delay_fixed_equal_numpy)
    spec = {"dims": {"s": ["a", "b", "c"]}, "const": {"w": {"dims": ["s"], "value": {"a": 3, "b": 1, "c": 2}}},
            "aux": {"y": {"dims": ["s"], "equation": "VECTOR_SORT_ORDER(w[s], 1) + TIME"}},
            "time": {"dt": 1, "saveper": 1}}
    mj = build("jax", name="sort_order", **spec)
    res = mj.run()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "numpy" in err[0] and "vector_sort_order" in err[0] and "sort_order.toml" in err[0]
    assert res.backend == "numpy"
    np.testing.assert_array_equal(res["y"], build("numpy", **spec).run()["y"])
    mj.run()
    assert capsys.readouterr().err == ""     # said once


def test_default_backend_is_c_with_a_compiler_else_numpy(monkeypatch, tmp_path):
    """The C backend is the default where a C compiler is found, numpy elsewhere (engine/backends.py says
    why; changed from numpy by the C backend, issue 12)."""
    from engine.backends import c_compiler_found

    monkeypatch.delenv("LXSD_BACKEND", raising=False)
    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path))
    spec = {"model": {"name": "q"}, "time": {"start": 0, "stop": 3, "dt": 1},
            "auxiliaries": {"y": {"equation": "TIME"}}}
    m = compile_model(model_from_dict(spec, "q.toml"))
    assert m.backend == ("c" if c_compiler_found() else "numpy")
    monkeypatch.setenv("CC", "no-such-compiler-lxsd")
    assert compile_model(model_from_dict(spec, "q.toml")).backend == "numpy"


def test_jax_by_environment_falls_back_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("LXSD_BACKEND", "jax")
    m = compile_model(model_from_dict({"model": {"name": "q2"}, "time": {"start": 0, "stop": 3, "dt": 1},
                                       "auxiliaries": {"y": {"equation": "RANDOM_UNIFORM(0, TIME + 1, 3)"}}},
                                      "q2.toml"))
    m.run()   # draws whose arguments change during the run (DELAY FIXED, used here before, is compiled now)
    assert "numpy" in capsys.readouterr().err


def test_unknown_backend_is_an_error():
    with pytest.raises(EngineError, match="unknown backend 'fortran'; one of numpy, jax"):
        load_model(ROOT / "tests" / "models" / "decay.toml", backend="fortran")


BLOWUP = {"const": {"T": {"value": 100}}, "stocks": {"x": {"initial": "0", "inflows": ["g"]}},
          "flows": {"g": {"equation": "1 / (T - TIME)"}}, "time": {"dt": 1, "saveper": 1}}


def test_errors_are_the_same_on_both_backends():
    mn, mj = build("numpy", name="blow", **BLOWUP), build("jax", name="blow", **BLOWUP)
    with pytest.raises(SimulationError) as en:
        mn.run(params={"T": [100.0, 4.0]})
    with pytest.raises(SimulationError) as ej:
        mj.run(params={"T": [100.0, 4.0]})
    # the run's label (issue 15), was "scenario #1"
    assert str(en.value) == str(ej.value) and "g" in str(ej.value) and "run '1' (#1)" in str(ej.value)


def test_per_run_status_is_the_same_on_both_backends():
    mn, mj = build("numpy", name="blow", **BLOWUP), build("jax", name="blow", **BLOWUP)
    T = np.array([100.0, 4.0, 50.0])
    rn, rj = mn.run(params={"T": T}, throw=False), mj.run(params={"T": T}, throw=False)
    assert rj.status.tolist() == rn.status.tolist() == [0, int(RunStatus.NON_FINITE), 0]
    assert rj.failures == rn.failures
    np.testing.assert_array_equal(rn["x"], rj["x"])


def test_batch_sizes_that_are_padded_or_chunked(monkeypatch):
    from engine.compile import jax_backend

    monkeypatch.setattr(jax_backend, "CHUNK", 4)
    mn, mj = build("numpy", **BUILTINS), build("jax", **BUILTINS)
    for n in (5, 9):
        k = np.linspace(0.1, 0.5, n)
        assert_same(mn.run(params={"k": k}), mj.run(params={"k": k}))


def test_compilation_cache_is_on_disk_and_keyed_by_content():
    from engine.compile import jax_backend

    m = build("jax", name="cached", **BUILTINS)
    m.run(stop=7.5)
    folder = jax_backend.cache_dir()
    files = sorted(Path(folder).glob("cached-*.xla"))
    assert files
    assert jax.__version__ in jax_backend.version()
    # the same model in a fresh object finds the exported program; a changed constant array does not
    again = build("jax", name="cached", **BUILTINS)
    assert again._jax.fingerprint(("x",)) == m._jax.fingerprint(("x",))
    changed = {**BUILTINS, "lookups": {**BUILTINS["lookups"], "tbl": {"x": [0, 2, 5, 9], "y": [1, 3, 2, 7]}}}
    assert build("jax", name="cached", **changed)._jax.fingerprint(("x",)) != m._jax.fingerprint(("x",))
    assert_same(build("numpy", name="cached", **BUILTINS).run(stop=7.5), again.run(stop=7.5))
    assert sorted(Path(folder).glob("cached-*.xla")) == files   # nothing new written, the file was read


@pytest.mark.gpu
def test_runs_unchanged_on_a_gpu():
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        pytest.skip("no GPU visible to jax here (jax.devices('gpu') is empty); run on a machine with one "
                    "and jax[cuda] installed")
    path = ROOT / "benchmarks" / "regional_economy.toml"
    mn = load_model(path, backend="numpy")
    with jax.default_device(gpus[0]):
        mj = load_model(path, backend="jax")
        rate = np.linspace(0.2, 0.4, 64)
        rj = mj.run(params={"savings_rate": rate})
    assert_same(mn.run(params={"savings_rate": rate}), rj)


def test_cli_backend_option(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "r.csv"
    env = {**os.environ, "LXSD_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("LXSD_BACKEND", None)
    model = ROOT / "tests" / "models" / "decay.toml"
    for backend in ("numpy", "jax"):
        done = subprocess.run([sys.executable, "-m", "engine", "run", str(model), "--backend", backend,
                               "--out", str(out)], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "engine", "describe", str(model)], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False)
    from engine.backends import c_compiler_found

    # the default (engine/backends.py): c with a C compiler, numpy without
    assert f"backend {'c' if c_compiler_found() else 'numpy'}" in done.stdout
    done = subprocess.run([sys.executable, "-m", "engine", "describe", str(model)], capture_output=True, text=True,
                          env={**env, "LXSD_BACKEND": "jax"}, cwd=ROOT, check=False)
    assert "backend jax" in done.stdout


def test_small_batches_share_one_program_whatever_they_save():
    mj = build("jax", name="shared", **BUILTINS)
    mn = build("numpy", name="shared", **BUILTINS)
    for variables in (["x"], ["vs", "tot"], None):
        assert_same(mn.run(variables=variables), mj.run(variables=variables))
    assert len(mj._jax._loops) == 1


# ------------------------------------------------------------------ DELAY FIXED (ring buffers in the scan's state)
@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
def test_delay_fixed_equal_numpy(method):
    """DELAY FIXED in the compiled loop: the numpy loop's lags (whole steps, half rounded up, beyond the run),
    initial values and pushes; SAMPLE IF TRUE and DELAY N's lagged delay times ride on it."""
    check_delay_fixed("jax", method, assert_same)


def test_delay_rings_share_programs_and_chunks(monkeypatch):
    """A ring's length is the longest lag rounded up to a power of two: delay times in the same bucket share
    one compiled program, a longer one compiles another; chunked and padded batches keep each run's lags."""
    from engine.compile import jax_backend

    mn, mj = build("numpy", name="rings", **DELAYS), build("jax", name="rings", **DELAYS)
    for T in (2.0, 1.75):       # 8 and 7 steps of 0.25: one ring of 8
        assert_same(mn.run(params={"T": T}), mj.run(params={"T": T}))
    assert len(mj._jax._loops) == 1
    assert_same(mn.run(params={"T": 3.5}), mj.run(params={"T": 3.5}))   # 14 steps: a ring of 16, another program
    assert len(mj._jax._loops) == 2
    monkeypatch.setattr(jax_backend, "CHUNK", 4)
    T = np.array([0.25, 1.0, 2.6, 5.0, 7.5])
    assert_same(mn.run(params={"T": T}), mj.run(params={"T": T}))


def test_delay_time_not_finite_same_error_as_numpy():
    """A DELAY FIXED whose delay time is not finite: the batch is re-run on numpy, so the error is numpy's."""
    spec = {**DELAYS, "const": {**DELAYS["const"], "z": {"value": 0.0}},
            "aux": {**DELAYS["aux"], "df": "DELAY_FIXED(x, T / z, x0)"}}
    mn, mj = build("numpy", name="badT", **spec), build("jax", name="badT", **spec)
    with pytest.raises(SimulationError) as en:
        mn.run()
    with pytest.raises(SimulationError) as ej:
        mj.run()
    assert str(en.value) == str(ej.value) and "DELAY FIXED" in str(ej.value)


# ------------------------------------------------------------------ RANDOM (tables of numpy's own draws)
@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_random_functions_equal_numpy(method, monkeypatch):
    """RANDOM functions read tables of the numpy code's own draws (engine.compile.jax_random): equal to numpy's
    bit for bit, in batches (a run's draws independent of the batch), with a seed, in chunks of runs."""
    from engine.compile import random_table

    mn, mj = build("numpy", name="rnd", **RANDOMS), build("jax", name="rnd", **RANDOMS)
    rn, rj = mn.run(method=method), mj.run(method=method)
    assert_same(rn, rj)
    for v in ("r01", "u", "ex", "gm", "wb", "bt", "ps", "tri", "parts"):
        assert np.array_equal(rn[v], rj[v]), v
    # the disk cache's key: the same for another object of the model (the streams' state is not content)
    assert build("jax", name="rnd", **RANDOMS)._jax.fingerprint(("x",)) == mj._jax.fingerprint(("x",))
    sd = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    draws = mj._jax.draws()
    assert draws is not None and draws.chunk_runs(40) > 5
    # two runs' tables a chunk (41 steps of 8 bytes an element): chunks of runs 0-1, 2-3 and 4, each drawing its own
    monkeypatch.setattr(random_table, "CHUNK_BYTES", 2 * 41 * 8 * draws.elements)
    assert draws.chunk_runs(40) == 2
    rn, rj = mn.run(params={"sd": sd}, n=5, seed=42, method=method), mj.run(params={"sd": sd}, n=5, seed=42,
                                                                           method=method)
    assert_same(rn, rj)
    assert np.array_equal(rn["r01"], rj["r01"]) and not np.array_equal(rj["r01"][0], rj["r01"][1])
    assert np.array_equal(rn["u"], rj["u"]) and np.array_equal(rn["parts"], rj["parts"])


def test_random_with_changing_arguments_falls_back_with_one_line(capsys):
    spec = {"aux": {"y": "RANDOM_UNIFORM(0, TIME + 1, 3)"}, "time": {"dt": 1, "saveper": 1}}
    res = build("jax", name="moving_random", **spec).run()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "numpy" in err[0] and "RANDOM" in err[0] and "moving_random.toml" in err[0]
    assert "change during the run" in err[0] and res.backend == "numpy"


def test_delays_and_draws_together():
    spec = {**DELAYS, "aux": {**DELAYS["aux"], "noise": "RANDOM_NORMAL(-3, 3, 0, 1, 1) + df"}}
    mn, mj = build("numpy", name="both", **spec), build("jax", name="both", **spec)
    T = np.linspace(0.25, 12.0, 6)
    rn, rj = mn.run(params={"T": T}, seed=3), mj.run(params={"T": T}, seed=3)
    assert_same(rn, rj)
    assert np.array_equal(rn["noise"], rj["noise"])


SUITE = Path(os.environ.get("SD_TEST_MODELS", ROOT.parent / "shared" / "sd-test-models"))
TESTS = SUITE / "tests" if (SUITE / "tests").is_dir() else SUITE


@pytest.mark.slow
@pytest.mark.skipif(not TESTS.is_dir(), reason=f"SDXorg test-models not found at {TESTS}")
@pytest.mark.parametrize("rel", SUITE_DELAY_FIXED)
def test_suite_delay_fixed_models_equal_numpy(rel):
    check_suite_model(TESTS / rel, "jax", assert_same)


E4A = ROOT.parent / "shared" / "real-models" / "earth4all" / "mov220501-18 E4A-global jr TLTL.mdl"


@pytest.mark.slow
@pytest.mark.skipif(not E4A.is_file(), reason=f"Earth4All not found at {E4A} (../shared absent)")
def test_earth4all_equal_numpy():
    """Earth4All (855 variables, 7 681 steps, DELAY FIXED, RANDOM PINK NOISE) on JAX, to 1e-10 of each variable's
    scale (as test_backend_c's: XLA's exp/log/pow and numpy's may differ in the last bit, and 240 years of
    feedback carry that)."""
    mn = load_model(E4A, backend="numpy")
    mj = compile_model(mn.model, check_units=False, backend="jax")   # the .mdl read once
    rj = mj.run()
    assert rj.backend == "jax", "Earth4All fell back to numpy"
    with np.errstate(all="ignore"):
        rn = mn.run()
    np.testing.assert_array_equal(rn.times, rj.times)
    assert rn.variables == rj.variables
    for v in rn.variables:
        a, b = rn[v], rj[v]
        assert a.shape == b.shape and (np.isnan(a) == np.isnan(b)).all(), v
        scale = np.nanmax(np.abs(a), initial=0.0)
        assert np.nanmax(np.abs(a - b), initial=0.0) <= 1e-10 * scale, v
