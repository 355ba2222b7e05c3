"""Results as labelled arrays and the public value/default/elements of a model (issue 12, item 3).

Oracles: the arrays ``Results[name]`` hands out, and the model file's own numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import EngineError, load_model

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIPTS = ROOT / "tests" / "models" / "subscripts.toml"


@pytest.fixture(scope="module")
def model():
    return load_model(SUBSCRIPTS, backend="numpy")


def test_to_xarray_has_runs_times_and_dimensions(model):
    res = model.run(params={"share": np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])}, names=["low", "high"])
    ds = res.to_xarray()
    assert list(ds["run"].values) == ["low", "high"]
    np.testing.assert_array_equal(ds["time"].values, res.times)
    assert ds["k"].dims == ("run", "time", "sector")
    assert list(ds["sector"].values) == ["a", "b", "c"]
    np.testing.assert_array_equal(ds["k"].values, res["k"])
    np.testing.assert_array_equal(ds["m"].values, res["m"])
    assert ds["m"].dims == ("run", "time", "sector", "region")
    assert ds["total"].dims == ("run", "time")
    np.testing.assert_array_equal(ds["k"].sel(run="high", sector="c").values, res["k"][1, :, 2])
    assert ds["status"].values.tolist() == [0, 0]


def test_to_xarray_attributes_carry_units_and_labels():
    m = load_model(ROOT / "model" / "linxiang.toml", backend="numpy")
    res = m.run(variables=["gdp_real", "capital"], stop=2017)
    ds = res.to_xarray()
    var = m.model.variables["capital"]
    assert ds["capital"].attrs.get("units") == var.unit == "1e8 yuan"
    assert ds["capital"].attrs["label_en"] == var.label_en == "Capital stock (2020 prices)"
    assert ds["capital"].dims[:2] == ("run", "time") and len(ds["capital"].dims) == 3
    assert ds.attrs["backend"] == "numpy"


def test_public_value_default_elements(model):
    np.testing.assert_array_equal(model.default("share"), [0.2, 0.3, 0.5])
    np.testing.assert_array_equal(model.default("m"), [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(model.value("share", {"a": 1, "b": 2, "c": 3}), [1, 2, 3])
    np.testing.assert_array_equal(model.value("pop", 7), [7, 7])
    assert model.elements("m") == [(s, r) for s in "abc" for r in ("urban", "rural")]
    assert model.elements("total") == [()]
    with pytest.raises(EngineError, match=r"share: table keys must be the elements of 'sector'"):
        model.value("share", {"a": 1})
    with pytest.raises(EngineError, match=r"cannot set 'k': a stock"):
        model.default("k")
    with pytest.raises(EngineError, match="not a variable of the model"):
        model.elements("nonesuch")
    # the private names other modules use still work
    np.testing.assert_array_equal(model._value_array("share", 1.0, None)[..., 0], [1, 1, 1])
    np.testing.assert_array_equal(model._defaults["share"][..., 0], model.default("share"))


def test_results_elements_is_public(model):
    res = model.run()
    assert res.elements("k") == [("a",), ("b",), ("c",)]
    assert res.elements("k") == res._elements["k"]
    with pytest.raises(KeyError, match="was not saved"):
        res.elements("nonesuch")
