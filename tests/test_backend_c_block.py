"""The C backend's batch kernel (engine/compile/block_code.py: 8 runs side by side in SIMD lanes, libmvec's pow,
exp and log on AVX-512) against the numpy backend, the reference (issue 12).

Oracle: the numpy backend on the same model and batch; every saved value agrees to 1e-10 relative (as the scalar
kernel's tests: backend_helpers.assert_same_scalar). ``BLOCK_MIN_RUNS`` is lowered so that small batches,
including ones that are not a multiple of 8 (padded lanes), take the block kernel; each test checks it did.
"""
from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from backend_helpers import assert_same_scalar, suite_pair
from backend_helpers import build as _build

from engine import SimulationError, load_model
from engine.backends import c_compiler_found
from engine.results import RunStatus

if not c_compiler_found():
    pytest.skip("the C backend needs a C compiler (cc or $CC)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _block(tmp_path_factory, monkeypatch):
    """Every batch of 2 runs or more on the block kernel; a cache folder of this module's own."""
    from engine.compile import c_backend

    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "c-block-cache"))
    monkeypatch.setattr(c_backend, "BLOCK_MIN_RUNS", 2)


def used_block(m) -> bool:
    return getattr(m._c, "_block_fn", None) is not None


def same(mn, mc, **kw):
    rn, rc = mn.run(**kw), mc.run(**kw)
    assert used_block(mc), getattr(mc._c, "_block_broken", "the block kernel was not built")
    assert_same_scalar(rn, rc, "c")
    return rn, rc


@pytest.fixture(scope="module")
def builtins_models():
    from test_backend_c import BUILTINS

    return _build("numpy", name="blk", **BUILTINS), _build("c", name="blk", **BUILTINS)


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
@pytest.mark.parametrize("n", [2, 9, 70])
def test_builtins_equal_numpy(builtins_models, method, n, monkeypatch):
    from engine.compile import c_backend

    monkeypatch.setattr(c_backend, "PARALLEL_MIN_RUNS", 64)   # 70 runs: the threaded loop (when OpenMP works)
    mn, mc = builtins_models
    params = {"k": np.linspace(0.1, 0.5, n), "h": np.linspace(1, 3, n)}
    same(mn, mc, params=params, method=method)


def test_varied_series_and_subscripted_constants(builtins_models):
    """Data series that differ by run (read lane by lane), a subscripted constant per run, chosen outputs."""
    mn, mc = builtins_models
    sc = {"a": {"d": {"time": [0, 10], "values": [5, 25]}}, "b": {"w": [3, 2, 1]}, "c": {}}
    same(mn, mc, scenarios=sc)
    same(mn, mc, scenarios=sc, variables=["x", "vs", "tot"], saveper=1.0, stop=9.5)


def test_linxiang_and_reference_batches():
    from engine.scenarios import load_scenario

    path = ROOT / "model" / "linxiang.toml"
    mn, mc = load_model(path, backend="numpy"), load_model(path, backend="c")
    runs = {}
    for f in sorted(glob.glob(str(ROOT / "scenarios" / "*.toml"))):
        sc = load_scenario(f, mn)
        runs[sc.name] = sc.overrides
    assert len(runs) >= 10
    same(mn, mc, scenarios=runs)
    same(mn, mc, scenarios=runs, method="rk4")
    ref = ROOT / "benchmarks" / "regional_economy.toml"
    rn, rc = load_model(ref, backend="numpy"), load_model(ref, backend="c")
    same(rn, rc, params={"savings_rate": np.linspace(0.2, 0.4, 13)})


def test_failing_runs_get_numpy_s_errors_and_status():
    from test_backend_c import BLOWUP

    mn, mc = _build("numpy", name="blkblow", **BLOWUP), _build("c", name="blkblow", **BLOWUP)
    T = np.array([100.0, 4.0, 50.0] * 4)
    with pytest.raises(SimulationError) as en:
        mn.run(params={"T": T})
    with pytest.raises(SimulationError) as ec:
        mc.run(params={"T": T})
    assert str(en.value) == str(ec.value)
    rn, rc = mn.run(params={"T": T}, throw=False), mc.run(params={"T": T}, throw=False)
    assert rc.status.tolist() == rn.status.tolist() and rc.status[1] == int(RunStatus.NON_FINITE)
    np.testing.assert_array_equal(rn["x"], rc["x"])
    rc = mc.run(params={"T": np.full(11, 100.0)})
    assert rc.backend == "c" and used_block(mc)


def test_cache_key_names_the_cpu(tmp_path, monkeypatch):
    """-march=native code is keyed by the CPU: another CPU's line gives another file."""
    from engine.compile import block_code

    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path))
    spec = {"stocks": {"x": {"initial": "1", "inflows": ["g"]}}, "flows": {"g": {"equation": "0.1 * x"}}}
    _build("c", name="cpu1", **spec).run(n=4)
    first = set(glob.glob(str(tmp_path / "c" / "lxsd_block_*.so")))
    assert len(first) == 1
    monkeypatch.setattr(block_code, "cpu_key", lambda: "model name : another cpu")
    _build("c", name="cpu1", **spec).run(n=4)
    assert len(set(glob.glob(str(tmp_path / "c" / "lxsd_block_*.so")))) == 2


SUITE = Path(os.environ.get("SD_TEST_MODELS", SHARED / "sd-test-models"))
TESTS = SUITE / "tests" if (SUITE / "tests").is_dir() else SUITE
LISTED = [ln.strip() for ln in (ROOT / "tests" / "data" / "pysd_passing.txt").read_text(encoding="utf-8").splitlines()
          if ln.strip() and not ln.startswith("#")]


@pytest.mark.slow
@pytest.mark.skipif(not TESTS.is_dir(), reason=f"SDXorg test-models not found at {TESTS}")
@pytest.mark.parametrize("rel", LISTED[::4])
def test_suite_model_equal_numpy(rel):
    """Every fourth listed suite model, 3 copies of its run (two lanes of padding), on the block kernel."""
    mn, mc = suite_pair(TESTS / rel, "c")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        rn, rc = mn.run(n=3), mc.run(n=3)
    if rc.backend != "c":
        pytest.skip("not compiled by the C backend")
    if mc._c.plain():
        assert used_block(mc), mc._c._block_broken
    else:   # DELAY FIXED or RANDOM: their rings and draws are the scalar kernel's
        assert not used_block(mc)
    assert_same_scalar(rn, rc, "c")


def test_without_avx512_the_scalar_kernel_runs_the_batch(monkeypatch, capsys):
    """A compiler whose native target has no AVX-512 builds no block kernel (emulated lanes are slower): the batch
    runs on the scalar kernel, silently, with the same numbers."""
    from engine.compile import block_code

    monkeypatch.setattr(block_code, "native_avx512", lambda cc: False)
    spec = {"stocks": {"x": {"initial": "1", "inflows": ["g"]}}, "flows": {"g": {"equation": "k * x"}},
            "const": {"k": {"value": 0.1}}}
    mn, mc = _build("numpy", name="noavx", **spec), _build("c", name="noavx", **spec)
    k = np.linspace(0.05, 0.2, 12)
    rn, rc = mn.run(params={"k": k}), mc.run(params={"k": k})
    assert not used_block(mc) and "AVX-512" in mc._c._block_broken
    assert_same_scalar(rn, rc, "c")
    assert capsys.readouterr().err == ""


def test_scalar_kernel_with_threads_below_the_block_size(builtins_models, monkeypatch):
    """Batches under BLOCK_MIN_RUNS stay on the scalar kernel (its OpenMP loop here): same numbers as numpy."""
    from engine.compile import c_backend

    monkeypatch.setattr(c_backend, "BLOCK_MIN_RUNS", 10**9)
    monkeypatch.setattr(c_backend, "PARALLEL_MIN_RUNS", 64)
    mn, _ = builtins_models
    from test_backend_c import BUILTINS

    mc = _build("c", name="blkscalar", **BUILTINS)
    params = {"k": np.linspace(0.1, 0.5, 70), "h": np.linspace(1, 3, 70)}
    rn, rc = mn.run(params=params, method="rk4"), mc.run(params=params, method="rk4")
    assert not used_block(mc)
    assert_same_scalar(rn, rc, "c")
