"""Uploads of actuals (calibration page) and the [presentation] table of a model file."""
from __future__ import annotations

import sys
from pathlib import Path as _P

sys.path.insert(0, str(_P(__file__).resolve().parent.parent))  # lxapp/ beside app.py

import io
from pathlib import Path

import pandas as pd
import pytest

from lxapp import core, uploads

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "lxapp" / "demo" / "demo_model.toml"
HEAD = "scope,indicator,unit,year,value,source\n"


@pytest.fixture(scope="module")
def bundle():
    return core.load_bundle(ROOT / "model" / "linxiang.toml")


def test_good_csv_is_mapped(bundle):
    data = (HEAD + "linxiang,gdp,亿元,2024,360.5,bulletin\nlinxiang,urbanization_rate,%,2024,60.1,b\n"
            "linxiang,births,人,2024,3000,b\n").encode("utf-8-sig")
    frame = uploads.read_actuals(bundle, "a.csv", data)
    assert list(frame["column"]) == ["gdp_nominal", "urbanization_rate"]      # births is not mapped
    assert frame["value"].tolist() == pytest.approx([360.5, 0.601])           # % -> fraction, as the model


def test_good_xlsx(bundle):
    buf = io.BytesIO()
    pd.DataFrame({"scope": ["linxiang"], "indicator": ["gdp"], "unit": ["亿元"], "year": [2024], "value": [360.5],
                  "source": ["x"]}).to_excel(buf, index=False)
    frame = uploads.read_actuals(bundle, "a.xlsx", buf.getvalue())
    assert frame["value"].tolist() == [360.5]


@pytest.mark.parametrize("body,needle", [
    (HEAD + "linxiang,gdp,亿元,2024,abc,x\n", "row 2, value 'abc' is not a number"),
    (HEAD + "linxiang,gdp,亿元,2024,nan,x\n", "row 2, value is not a finite number"),
    (HEAD + "linxiang,gdp,亿元,twenty,1,x\n", "row 2, year 'twenty' is not a number"),
    ("indicator,value\ngdp,1\n", "missing column(s) year"),
    (HEAD, "no rows"),
    (HEAD + "linxiang,births,人,2024,1,x\n", "no row names an indicator"),
    (HEAD + "linxiang,gdp,亿元,2024,1,x\n" * (uploads.MAX_ROWS + 1), "more than 20,000 rows"),
])
def test_bad_csv_names_the_problem(bundle, body, needle):
    with pytest.raises(uploads.UploadError) as err:
        uploads.read_actuals(bundle, "bad.csv", body.encode())
    assert needle in str(err.value) and str(err.value).startswith("bad.csv")


def test_size_and_binary(bundle):
    with pytest.raises(uploads.UploadError, match="bytes; the limit"):
        uploads.read_actuals(bundle, "big.csv", b"x" * (uploads.MAX_BYTES + 1))
    with pytest.raises(uploads.UploadError, match="not UTF-8"):
        uploads.read_actuals(bundle, "b.csv", b"\xff\xfe\x00")
    with pytest.raises(uploads.UploadError, match="not a readable Excel"):
        uploads.read_actuals(bundle, "b.xlsx", b"PK not really")


def test_key_count_stops_early():
    assert uploads.count_keys({"a": {"b": [1, 2, 3]}}) == 5   # a, b and three items
    assert uploads.count_keys({"a": list(range(10**6))}, limit=10) > 10


def _calib_script(data: bytes, name: str):
    import streamlit as st

    from lxapp import core, pages, ui
    bundle = ui.get_bundle(core.bundle_key())
    ctx = ui.Ctx(bundle, "en", "calibration", ["actual_trend"], "actual_trend", "actual_trend", {}, False)
    ui.compute(ctx)

    class Up:
        def __init__(self):
            self.name = name

        def getvalue(self):
            return data
    st.file_uploader = lambda *a, **k: Up()
    pages.page_calibration(ctx)


@pytest.mark.parametrize("body,ok", [(HEAD + "linxiang,gdp,亿元,2024,360.5,x\n", True),
                                     (HEAD + "linxiang,gdp,亿元,2024,nan,x\n", False)])
def test_upload_on_the_calibration_page(body, ok, monkeypatch):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("LXSD_MODEL", str(ROOT / "model" / "linxiang.toml"))
    import streamlit as st
    keep = st.file_uploader
    try:
        at = AppTest.from_function(_calib_script, args=(body.encode(), "mine.csv"), default_timeout=120).run()
    finally:
        st.file_uploader = keep
    assert not at.exception, [e.value for e in at.exception]
    if ok:
        assert any("mine.csv" in s.value for s in at.success)
    else:
        assert at.error and "not a finite number" in at.error[0].value


# ------------------------------------------------------------------ the [presentation] table
MODEL = """
[model]
name = "p"
[time]
start = 0
stop = 2
dt = 1
[constants.k]
value = 1.0
range = [0, 2]
[auxiliaries.y]
equation = "k * 2"
"""


def _load(text: str):
    from engine.parse.model_file import model_from_dict
    import tomllib
    return model_from_dict(tomllib.loads(text), "p.toml")


def test_presentation_table_is_read():
    m = _load(MODEL + """
[presentation]
headline = ["y"]
cards = ["y"]
card_years = [1]
lever_groups = [{name = "g", label_zh = "组", label_en = "G", levers = ["k"]}]
actuals = {obs = {column = "y", factor = 0.01}}
""")
    assert m.presentation == {"headline": ["y"], "cards": ["y"], "card_years": [1],
                              "lever_groups": [{"name": "g", "label_zh": "组", "label_en": "G", "levers": ["k"]}],
                              "actuals": {"obs": {"column": "y", "factor": 0.01}}}
    assert _load(MODEL).presentation == {}


@pytest.mark.parametrize("table,needle", [
    ('headline = "y"', "presentation.headline: must be a list"),
    ('headline = ["nope"]', "'nope' is not a variable"),
    ('card_years = [2025.5]', "whole years"),
    ('lever_groups = [{name = "g", levers = ["y"]}]', "'y' is not a constant"),
    ('lever_groups = [{name = "g", levers = ["k"], colour = "red"}]', "unknown field"),
    ('actuals = {obs = {column = "y", factor = 0}}', "finite non-zero"),
    ('actuals = {obs = {column = "no_such"}}', "'no_such' is not a variable"),
    ('colour = "red"', "not a presentation field"),
])
def test_presentation_errors_name_the_field(table, needle):
    from engine.errors import ModelError
    with pytest.raises(ModelError) as err:
        _load(MODEL + "[presentation]\n" + table + "\n")
    assert needle in str(err.value) and "p.toml" in str(err.value)


def test_app_prefers_the_model_table(tmp_path, monkeypatch):
    path = tmp_path / "m.toml"
    path.write_text(MODEL + '[presentation]\nheadline = ["y"]\n', encoding="utf-8")
    b = core.load_bundle(path)
    assert b.presentation == {"headline": ["y"]} and core.headline(b) == ["y"]
    plain = tmp_path / "n.toml"
    plain.write_text(MODEL, encoding="utf-8")
    pres = tmp_path / "p.toml"
    pres.write_text('[presentation]\nheadline = ["gdp_real"]\n', encoding="utf-8")
    monkeypatch.setenv("LXSD_PRESENTATION", str(pres))
    # no table: $LXSD_PRESENTATION's (default: model/linxiang.toml's), unknown names dropped
    b2 = core.load_bundle(plain)
    assert b2.presentation["headline"] == [] and any("gdp_real" in n for n in b2.presentation_notes)
