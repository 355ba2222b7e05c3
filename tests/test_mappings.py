"""Positional dimension mappings ([mappings]): element i of one dimension goes with element i of the other."""
from __future__ import annotations

import numpy as np
import pytest

from engine import compile_model
from engine.errors import ModelError
from engine.parse.model_file import model_from_dict


def build(extra: dict) -> dict:
    d = {"time": {"start": 0, "stop": 0, "dt": 1},
         "dimensions": {"company": ["c1", "c2", "c3"], "slot": ["s1", "s2", "s3"]},
         "mappings": {"company": ["slot"]},
         "constants": {"revenue": {"dims": ["company"], "value": [5.0, 1.0, 3.0]}}}
    d.update(extra)
    return d


def test_a_mapped_dimension_follows_by_position():
    m = compile_model(model_from_dict(build({"auxiliaries": {
        "copy": {"dims": ["slot"], "equation": "revenue[company] * 2"},
        "order": {"dims": ["slot"], "equation": "VECTOR_SORT_ORDER(revenue[company], 1)"}}}), "m.toml"))
    res = m.run(variables=["copy", "order"])
    assert np.allclose(res["copy"][0, 0], [10, 2, 6])
    assert np.allclose(res["order"][0, 0], [1, 2, 0])  # 0-based positions of 1, 3, 5


def test_without_the_mapping_it_is_a_dimension_error():
    d = build({"auxiliaries": {"copy": {"dims": ["slot"], "equation": "revenue[company] * 2"}}})
    del d["mappings"]
    with pytest.raises(ModelError) as info:
        compile_model(model_from_dict(d, "m.toml"))
    assert "copy" in str(info.value) and "company" in str(info.value)


def test_a_mapping_needs_equal_lengths():
    d = build({})
    d["dimensions"]["slot"] = ["s1", "s2"]
    with pytest.raises(ModelError) as info:
        model_from_dict(d, "m.toml")
    assert "equal lengths" in str(info.value)


def test_element_labels_are_read_and_checked():
    d = build({"element_labels": {"c1": {"zh": "公司一", "en": "company one"}, "company": {"zh": "公司"}}})
    m = model_from_dict(d, "m.toml")
    assert m.element_label("c1", "zh") == "公司一" and m.element_label("c1", "en") == "company one"
    assert m.element_label("company", "en") == "公司"  # falls back to the other language
    assert m.element_label("c2", "zh") == "c2"
    with pytest.raises(ModelError) as info:
        model_from_dict(build({"element_labels": {"nope": {"zh": "x"}}}), "m.toml")
    assert "element_labels.nope" in str(info.value)
