"""The C backend's one-run path (issue 12, "One run's overhead, third pass" in docs/architecture.md): a small batch
of a plain model runs init and kernel in one ``lx_run`` call whose argument block is kept between runs; the saved
values are views made when read (engine.results.SavedArrays); a subscripted variable's powers are computed eight
at a time (engine.compile.pow_groups).

Oracle: the numpy backend on the same model and settings (every saved value to 1e-10 relative, as in
tests/test_backend_c.py), and numpy.power for POWER's special cases (bases zero and negative)."""
from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from backend_helpers import assert_same_scalar
from backend_helpers import build as _build

from engine import load_model
from engine.backends import c_compiler_found
from engine.results import Results, SavedArrays

if not c_compiler_found():
    pytest.skip("the C backend needs a C compiler (cc or $CC)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "c-onerun-cache"))


MODEL = {
    "dims": {"sector": ["a", "b", "c"]},
    "const": {"k": {"value": 0.3}, "w": {"dims": ["sector"], "value": {"a": 1, "b": 2, "c": 3}}},
    "data": {"d": {"time": [0, 3, 5, 8], "values": [10, 30, 10, 15], "interpolation": "linear"}},
    "stocks": {"x": {"initial": "1 + d / 10", "inflows": ["grow"]},
               "v": {"dims": ["sector"], "initial": "w * k", "inflows": ["fill"], "non_negative": True}},
    "flows": {"grow": {"equation": "k * POWER(x, 0.5) / (1 + x)"},
              "fill": {"dims": ["sector"], "equation": "w * k - POWER(v, 1.5) * 0.1 + d / 100"}},
    "aux": {"tot": "SUM(v[sector!])", "share": {"dims": ["sector"], "equation": "v / tot"}},
}


def build(backend, name="onerun", **sections):
    return _build(backend, **{"name": name, **sections})


def test_the_kept_call_follows_every_setting_run_after_run():
    """Outputs, clock, method, batch size and inputs change between runs (each rebuilds or reuses the kept
    argument block): every run equals numpy's, and runs of the same settings again equal the first."""
    mn, mc = build("numpy", **MODEL), build("c", **MODEL)
    calls = [{}, {"variables": ["x"]}, {"variables": ["share", "x"]}, {}, {"dt": 0.125}, {"method": "rk4"},
             {"stop": 6}, {"saveper": 1}, {"n": 3}, {"params": {"k": 0.4}}, {"params": {"k": [0.1, 0.2]}},
             {"params": {"d": {"time": [0, 10], "values": [5, 25]}}}, {}, {"variables": ["x"]}, {"method": "rk4"}]
    for kw in calls:
        assert_same_scalar(mn.run(**kw), mc.run(**kw), "c")
    first = mc.run(variables=["x", "v"])
    again = mc.run(variables=["x", "v"])
    assert first["x"] is not again["x"]
    np.testing.assert_array_equal(first["v"], again["v"])
    assert mc._c._kept is not None, "the small batches did not take the one-call path"


def test_results_own_their_values():
    """A run's saved values are its own: the next run (which reuses the kept output array) leaves them alone."""
    mc = build("c", **MODEL)
    a = mc.run(params={"k": 0.3})
    keep = a["x"].copy()
    mc.run(params={"k": 0.5})
    mc.run()
    np.testing.assert_array_equal(a["x"], keep)


def test_threads_running_the_same_model_get_their_own_numbers():
    """Threads that run one model at once (the app's sessions) each get their own run's values (the kept block is
    used by one thread at a time; the others build their own)."""
    mn, mc = build("numpy", **MODEL), build("c", **MODEL)
    ks = [0.1 + 0.05 * i for i in range(8)]
    want = {k: mn.run(params={"k": k})["x"] for k in ks}
    mc.run()
    got: dict[float, list[np.ndarray]] = {k: [] for k in ks}
    errors: list[BaseException] = []

    def work(k: float) -> None:
        try:
            for _ in range(30):
                got[k].append(mc.run(params={"k": k})["x"])
                got[k].append(mc.run()["x"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in ks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    base = mn.run()["x"]
    for k in ks:
        for i, arr in enumerate(got[k]):
            np.testing.assert_allclose(arr, want[k] if i % 2 == 0 else base, rtol=1e-10, atol=0)


def test_saved_arrays_behave_as_a_dict():
    mc = build("c", **MODEL)
    res = mc.run(variables=["v", "x", "share"])
    assert isinstance(res, Results) and isinstance(res._data, SavedArrays)
    assert res.variables == ["v", "x", "share"] and "x" in res and "tot" not in res
    assert res["v"].shape == (1, len(res.times), 3) and res["x"].shape == (1, len(res.times))
    with pytest.raises(KeyError, match="'tot' was not saved"):
        res["tot"]
    df = res.to_dataframe()
    assert list(df.columns) == ["v[a]", "v[b]", "v[c]", "x", "share[a]", "share[b]", "share[c]"]
    ds = res.to_xarray()
    np.testing.assert_array_equal(ds["v"].values, res["v"])
    assert ds.attrs["backend"] == "c"
    back = pickle.loads(pickle.dumps(res))
    assert back.variables == res.variables and isinstance(back._data, SavedArrays)
    for v in res.variables:
        np.testing.assert_array_equal(back[v], res[v])


# POWER's special cases: zero and negative bases, whole and fractional exponents, exponents 0 and 1; every result
# finite (a single POWER: the C library's pow)
POW = {"const": {"b": {"value": 2.0}, "e": {"value": 0.5}},
       "stocks": {"s": {"initial": "0", "inflows": ["f"]}},
       "flows": {"f": {"equation": "p"}},
       "aux": {"p": "POWER(b + 0 * TIME, e)"}}


@pytest.mark.parametrize("b, e", [(0.0, 2.0), (0.0, 0.0), (-2.0, 3.0), (-2.0, 2.0), (-0.5, -3.0), (3.0, 0.0),
                                  (3.0, 1.0), (1.0, 7.5), (1e-300, 0.5), (1e300, 0.5), (0.25, -1.5), (1e5, 0.37)])
def test_power_special_cases_equal_numpy(b, e):
    mn, mc = build("numpy", name="pw", **POW), build("c", name="pw", **POW)
    rn, rc = mn.run(params={"b": b, "e": e}), mc.run(params={"b": b, "e": e})
    assert_same_scalar(rn, rc, "c")
    assert rc["p"][0, 0] == pytest.approx(float(np.power(b, e)), rel=5e-16, abs=0)   # an ulp: numpy's own pow


def test_linxiang_one_run_equals_numpy_to_1e_12():
    """The one-run path on the Linxiang model, every variable saved: within 1e-12 of numpy's, relative, on each
    variable's scale (the grouped powers are libmvec's, not glibc's scalar pow's bits: 8.9e-15 measured on the
    scale, docs/architecture.md)."""
    path = ROOT / "model" / "linxiang.toml"
    rn, rc = load_model(path, backend="numpy").run(), load_model(path, backend="c").run()
    assert rc.backend == "c"
    for v in rn.variables:
        a, b = rn[v], rc[v]
        top = float(np.nanmax(np.abs(a), initial=0.0))
        if top > 0:
            assert float(np.nanmax(np.abs(a - b))) <= 1e-12 * top, v


# a subscripted POWER over 10 elements (two vector lines: 8 and 2 lanes), nested (the inner powers grouped first),
# with a temporary (SUM) between the elements' statements, and the special bases of the scalar case
VPOW = {"dims": {"i": [f"e{k}" for k in range(10)]},
        "const": {"b": {"dims": ["i"], "value": {f"e{k}": v for k, v in enumerate(
                      [0.0, 0.0, -2.0, -2.0, -0.5, 3.0, 1.0, 1e-300, 0.25, 1e5])}},
                  "e": {"dims": ["i"], "value": {f"e{k}": v for k, v in enumerate(
                      [2.0, 0.0, 3.0, 2.0, -3.0, 0.0, 7.5, 0.5, -1.5, 0.37])}}},
        "stocks": {"s": {"dims": ["i"], "initial": "0", "inflows": ["f"]}},
        "flows": {"f": {"dims": ["i"], "equation": "p"}},
        "aux": {"p": {"dims": ["i"], "equation": "POWER(b + 0 * TIME, e)"},
                "q": {"dims": ["i"], "equation": "POWER(POWER(ABS(b) + 1 + ABS(s), 0.5) * SUM(e[i!]), e / 10)"}}}


def test_grouped_powers_equal_numpy():
    """The elements' powers computed eight at a time (engine.compile.pow_groups) equal numpy's, the special bases
    included (libmvec's vector pow where the CPU has AVX-512, the C library's pow lane by lane elsewhere)."""
    from engine.compile import c_code

    mn, mc = build("numpy", name="vpw", **VPOW), build("c", name="vpw", **VPOW)
    rn, rc = mn.run(), mc.run()
    assert_same_scalar(rn, rc, "c")
    if c_code.VPOW:
        assert mc._c.ccode().groups >= 3, "the elements' powers were not grouped"
    want = np.power(list(VPOW["const"]["b"]["value"].values()), list(VPOW["const"]["e"]["value"].values()))
    np.testing.assert_allclose(rc["p"][0, 0], want, rtol=2e-14, atol=0)


def test_grouped_powers_without_libmvec(tmp_path, monkeypatch):
    """Where the library does not link with libmvec it is built again without (the groups run the C library's pow
    lane by lane): a library name that does not exist stands for a system without libmvec."""
    from engine.compile import c_backend, c_code

    if not c_code.VPOW:
        pytest.skip("the power groups are off (LXSD_C_VPOW=0)")
    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(c_backend, "MVEC_FLAGS", ("-DLX_MVEC", "-Wl,--no-as-needed", "-llxsd_no_such_library"))
    mn, mc = build("numpy", name="vpw", **VPOW), build("c", name="vpw", **VPOW)
    rn, rc = mn.run(), mc.run()
    assert_same_scalar(rn, rc, "c")
    assert mc._c.ccode().groups >= 3
