"""Export to Vensim .mdl / XMILE: PySD loads the export and gives our Euler results."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ModelError
from engine.io.export_mdl import export_mdl, translate
from engine.io.export_xmile import export_xmile
from engine.io.pysd_import import import_model

SUITE = Path(os.environ.get("SD_TEST_MODELS", Path(__file__).resolve().parents[2] / "shared" / "sd-test-models"))
TESTS = SUITE / "tests" if (SUITE / "tests").is_dir() else SUITE
needs_suite = pytest.mark.skipif(not TESTS.is_dir(), reason="SDXorg test-models not found")
LINXIANG = Path(__file__).resolve().parents[1] / "model" / "linxiang.toml"


def test_translate():
    assert translate("IF_THEN_ELSE(a and not b, TIME_STEP, x == 1)") == \
        "IF THEN ELSE(a :AND: :NOT: b, TIME STEP, x = 1)"
    assert translate("DELAY_FIXED(x, 2, 0) + PULSE_TRAIN(1, 1, 3, 9)") == \
        "DELAY FIXED(x, 2, 0) + PULSE TRAIN(1, 1, 3, 9)"
    assert translate("y * 2", var_dims={"y": ["sector"]}) == "y[sector] * 2"


def _ours(d, source):
    from engine.io.conformance import run_imported
    return run_imported(d, source)


def _pysd_run(text, suffix, tmp_path):
    pysd = pytest.importorskip("pysd")
    f = tmp_path / f"export{suffix}"
    f.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pysd.read_vensim(str(f)) if suffix == ".mdl" else pysd.read_xmile(str(f))
        return m.run()


def _close(ours, theirs):
    for c in ours.columns:
        assert c in theirs.columns, c
        a = ours[c].to_numpy(dtype=float)
        b = theirs[c].reindex(ours.index).to_numpy(dtype=float)
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12, err_msg=c)


@needs_suite
@pytest.mark.parametrize("model", [
    "sqrt/test_sqrt.mdl", "subscript_2d_arrays/test_subscript_2d_arrays.mdl",
    "lookups/test_lookups.mdl", "smooth/test_smooth.mdl", "except/test_except.mdl",
    "subscript_aggregation/test_subscript_aggregation.mdl", "input_functions/test_inputs.mdl",
])
def test_pysd_runs_mdl_export(model, tmp_path):
    d = import_model(TESTS / model)
    _close(_ours(d, model), _pysd_run(export_mdl(d), ".mdl", tmp_path))


@needs_suite
@pytest.mark.parametrize("model", ["sqrt/test_sqrt.mdl", "lookups/test_lookups.mdl", "if_stmt/if_stmt.mdl"])
def test_pysd_runs_xmile_export(model, tmp_path):
    d = import_model(TESTS / model)
    _close(_ours(d, model), _pysd_run(export_xmile(d), ".xmile", tmp_path))


def test_mdl_header_units_labels():
    d = {"model": {"name": "m"}, "time": {"start": 2020, "stop": 2025, "dt": 1, "unit": "year"},
         "constants": {"rate": {"value": 0.3, "range": [0.2, 0.4], "unit": "dmnl", "label_zh": "储蓄率"}},
         "stocks": {"k": {"initial": "100", "inflows": ["inv"], "outflows": [], "unit": "亿元"}},
         "flows": {"inv": {"equation": "rate * k", "unit": "亿元/year"}}}
    text = export_mdl(d)
    assert text.startswith("{UTF-8}")
    assert "dmnl [0.2,0.4]" in text and "储蓄率" in text and "INTEG(" in text


@pytest.mark.skipif(not LINXIANG.exists(), reason="model/linxiang.toml not written yet")
def test_linxiang_mdl_export_matches_pysd(tmp_path):
    import tomllib
    from engine import load_model
    d = tomllib.loads(LINXIANG.read_text(encoding="utf-8"))
    res = load_model(LINXIANG).run()  # part of the repository: it must run
    ours = res.to_dataframe()
    first = ours.index.get_level_values(0)[0]
    _close(ours.xs(first, level=0), _pysd_run(export_mdl(d), ".mdl", tmp_path))


SCENARIOS = LINXIANG.parents[1] / "scenarios"


def _pysd_params(d, overrides):
    """Scenario overrides as PySD params (numbers, or DataArrays over the constant's dim)."""
    import xarray as xr
    from engine.io.export_mdl import _dim_elements
    out = {}
    for name, value in overrides.items():
        spec = (d.get("constants") or {}).get(name)
        assert spec is not None, f"scenario sets {name}, which is not a constant"
        dims = spec.get("dims") or []
        if not dims:
            out[name] = float(value)
            continue
        elems = _dim_elements(d, dims[0])
        vals = [float(value[e]) for e in elems] if isinstance(value, dict) else [float(value)] * len(elems)
        out[name] = xr.DataArray(vals, {dims[0]: elems}, [dims[0]])
    return out


@pytest.mark.skipif(not LINXIANG.exists() or not SCENARIOS.is_dir(),
                    reason="model/linxiang.toml or scenarios/ not written yet")
def test_linxiang_mdl_export_matches_pysd_every_scenario(tmp_path):
    """PySD's Euler run of the .mdl export equals ours for every scenario (rtol 1e-9)."""
    import tomllib
    from engine import load_model
    from engine.scenarios import load_scenario
    pysd = pytest.importorskip("pysd")
    d = tomllib.loads(LINXIANG.read_text(encoding="utf-8"))
    model = load_model(LINXIANG)  # part of the repository: it must compile
    files = sorted(SCENARIOS.glob("*.toml"))
    assert files, "scenarios/ holds the Linxiang scenarios"
    f = tmp_path / "export.mdl"
    f.write_text(export_mdl(d), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pysd.read_vensim(str(f))
    for path in files:
        sc = load_scenario(path, model)
        res = model.run(scenarios={sc.name: sc.overrides})
        ours = res.to_dataframe()
        ours = ours.xs(ours.index.get_level_values(0)[0], level=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.reload()   # PySD keeps params from one run to the next
            theirs = m.run(params=_pysd_params(d, sc.overrides))
        try:
            _close(ours, theirs)
        except AssertionError as exc:
            raise AssertionError(f"scenario {path.name}: {exc}") from None


def test_printers_work_from_the_ast():
    """The exporters print the parsed equation: a logical word before a parenthesis is an operator,
    not a call (the old token rewrite wrote `(a<b)OR(c)` as a call of OR); precedence is kept."""
    from engine.io.export_xmile import translate_xmile

    assert translate("(Time < a)or(b > 1)") == "Time < a :OR: b > 1"
    assert translate("-(a + b) * c ^ 2") == "-(a + b) * c ^ 2"
    assert translate("SMOOTHN(x, 3, x, 2) + vector_select(a, b, c, d, e)") == \
        "SMOOTH N(x, 3, x, 2) + VECTOR SELECT(a, b, c, d, e)"
    assert translate("x[sector] + y", var_dims={"y": ["sector"]}, subst={"sector": "heavy"}) == \
        "x[heavy] + y[heavy]"
    assert translate_xmile("IF_THEN_ELSE(a and TIME_STEP > 1, SMOOTHI(x, 2, 0), INITIAL_TIME)") == \
        "(IF a AND DT > 1 THEN SMTH1(x, 2, 0) ELSE STARTTIME)"
    assert translate("VECTOR_ELM_MAP(x[r, d!], k + 1)", elements={"d": ["e1", "e2"]}) == \
        "VECTOR ELM MAP(x[r,e1], k + 1)"         # Vensim names the vector's first element
    with pytest.raises(ModelError, match="y: cannot export"):
        translate("a +", where="y")
