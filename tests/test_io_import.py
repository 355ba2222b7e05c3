"""Vensim/XMILE import through PySD: names, dims, stocks, errors."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from engine.errors import ModelError
from engine.io.pysd_import import import_model, to_identifier, to_toml

SUITE = Path(os.environ.get("SD_TEST_MODELS", Path(__file__).resolve().parents[2] / "shared" / "sd-test-models"))
TESTS = SUITE / "tests" if (SUITE / "tests").is_dir() else SUITE
BAD = Path(__file__).parent / "data" / "bad_models"
needs_suite = pytest.mark.skipif(not TESTS.is_dir(), reason=f"SDXorg test-models not found at {TESTS} "
                                 "(clone SDXorg/test-models into ../shared/sd-test-models or set SD_TEST_MODELS)")

GOOD_MDL = """{UTF-8}
Stock= INTEG (
\tinflow - outflow, 10)
\t~\twidgets
\t~\t库存|

inflow=
\tStock * growth rate
\t~\twidgets/Month
\t~\t|

outflow=
\tSMOOTH(Stock * 0.05, 2)
\t~\twidgets/Month
\t~\t|

growth rate=
\t0.1
\t~\t1/Month [0,1]
\t~\t|

FINAL TIME  = 10
\t~\tMonth
\t~\t|

INITIAL TIME  = 0
\t~\tMonth
\t~\t|

SAVEPER  = TIME STEP
\t~\tMonth
\t~\t|

TIME STEP  = 0.5
\t~\tMonth
\t~\t|
"""


def test_identifiers():
    assert to_identifier("Capital Primary") == "capital_primary"
    assert to_identifier('"Hyphenated-Stockname"') == "hyphenated_stockname"
    assert to_identifier("2nd  stage") == "_2nd_stage"
    assert to_identifier("Ölpreis") == "olpreis"


def test_import_small_model(tmp_path):
    f = tmp_path / "small.mdl"
    f.write_text(GOOD_MDL, encoding="utf-8")
    d = import_model(f)
    assert d["time"] == {"start": 0, "stop": 10, "dt": 0.5, "saveper": 0.5, "unit": "Month", "method": "euler"}
    st = d["stocks"]["stock"]
    assert st["inflows"] == ["inflow"] and st["outflows"] == ["outflow"] and st["initial"] == 10
    assert d["flows"]["outflow"]["equation"] == "SMOOTHI(stock * 0.05, 2, stock * 0.05)"
    assert d["constants"]["growth_rate"]["value"] == 0.1
    assert d["constants"]["growth_rate"]["range"] == [0, 1]
    assert d["model"]["names"]["growth_rate"] == "growth rate"
    # the TOML dump reads back to the same dict
    assert tomllib.loads(to_toml(d)) == d


def test_imported_model_runs(tmp_path):
    from engine import load_model
    f = tmp_path / "small.mdl"
    f.write_text(GOOD_MDL, encoding="utf-8")
    res = load_model(f).run()
    df = res.to_dataframe()
    assert "stock" in df.columns and len(df) == 21


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.iterdir()) if BAD.is_dir() else [])
def test_bad_models_raise_model_error(name):
    with pytest.raises(ModelError) as info:
        import_model(BAD / name)
    assert str(BAD / name) in str(info.value)


def test_unknown_function_names_function_and_variable():
    with pytest.raises(ModelError) as info:
        import_model(BAD / "unknown_function.mdl")
    msg = str(info.value)
    assert "FROBNICATE" in msg and "inflow" in msg


@needs_suite
def test_subscripts_and_except():
    d = import_model(TESTS / "except" / "test_except.mdl")
    assert d["dimensions"]["store"] == ["s1", "s2", "s3", "s4"]
    inv = d["stocks"]["inventory"]
    assert inv["dims"] == ["store", "product"]
    flow = d["flows"][inv["inflows"][0]]
    assert "s3,p5" in flow["equations"] and len(flow["equations"]) == 20


@needs_suite
def test_subranges_and_mapping():
    d = import_model(TESTS / "subscript_mapping_vensim" / "test_subscript_mapping_vensim.mdl")
    assert d["subranges"]["all_but_youngest"]["of"] == "age"
    net = d["flows"]["population_net_flow"]["equations"]
    assert net["child"] == "aging[infant] - aging[child]"


@needs_suite
def test_macro_is_inlined():
    d = import_model(TESTS / "macro_expression" / "test_macro_expression.mdl")
    assert any("expression_macro" in k for k in d["auxiliaries"])


def test_unsupported_construct_is_named(tmp_path):
    # FORECAST with a non-zero initial trend has no equivalent here: the error names it and the variable
    mdl = tmp_path / "forecast.mdl"
    mdl.write_text("{UTF-8}\nx = 1\n~ ~|\ny = FORECAST(x, 2, 3, 0.5)\n~ ~|\n"
                   "INITIAL TIME = 0\n~ ~|\nFINAL TIME = 1\n~ ~|\nTIME STEP = 1\n~ ~|\nSAVEPER = 1\n~ ~|\n",
                   encoding="utf-8")
    with pytest.raises(ModelError) as info:
        import_model(mdl)
    assert "FORECAST" in str(info.value) and "y" in str(info.value)


def test_unbalanced_parenthesis_names_the_variable(tmp_path):
    mdl = tmp_path / "paren.mdl"
    mdl.write_text("{UTF-8}\nx = (3 + 2\n\t~\t\t~\t\t|\nFINAL TIME = 10\n\t~\t\t~\t\t|\n"
                   "INITIAL TIME = 0\n\t~\t\t~\t\t|\nTIME STEP = 1\n\t~\t\t~\t\t|\n", encoding="utf-8")
    with pytest.raises(ModelError) as info:
        import_model(mdl)
    problem = info.value.problems[0]
    assert problem.variable == "x" and "cannot parse the equation" in problem.message


def test_undefined_xmile_equation_names_the_variable(tmp_path):
    x = tmp_path / "undefined.xmile"
    x.write_text("""<xmile xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0" version="1.0">
<header><vendor>t</vendor><product lang="en">t</product></header>
<sim_specs method="Euler"><start>0</start><stop>2</stop><dt>1</dt></sim_specs>
<model><variables><aux name="Rate A"><eqn> ??? </eqn></aux>
<aux name="b"><eqn>Rate_A * 2</eqn></aux></variables></model></xmile>""", encoding="utf-8")
    with pytest.raises(ModelError) as info:
        import_model(x)
    problem = info.value.problems[0]
    assert problem.variable == "Rate A" and "'???'" in problem.message


def test_vensim_names_work_wherever_identifiers_do(tmp_path, capsys):
    """A Vensim user types 'growth rate' and 'Stock' as written in the .mdl (case and spaces free)."""
    import numpy as np

    from engine import load_model
    from engine.cli import main

    f = tmp_path / "small.mdl"
    f.write_text(GOOD_MDL, encoding="utf-8")
    m = load_model(f)
    a = m.run(params={"Growth Rate": 0.2}, variables=["Stock"])
    b = m.run(params={"growth_rate": 0.2}, variables=["stock"])
    np.testing.assert_array_equal(a["stock"], b["stock"])
    assert not np.array_equal(a["stock"], m.run(variables=["stock"])["stock"])
    assert main(["run", str(f), "--set", "growth rate=0.2", "--vars", "Stock"]) == 0
    by_vensim_name = capsys.readouterr().out
    assert main(["run", str(f), "--set", "growth_rate=0.2", "--vars", "stock"]) == 0
    assert capsys.readouterr().out == by_vensim_name
    assert main(["run", str(f), "--set", "growth ratio=0.2"]) != 0
    assert "did you mean growth_rate" in capsys.readouterr().err


def test_run_can_name_columns_as_the_vensim_file_does(tmp_path, capsys):
    from engine.cli import main

    f = tmp_path / "small.mdl"
    f.write_text(GOOD_MDL, encoding="utf-8")
    assert main(["run", str(f), "--vars", "stock,growth rate", "--names", "original"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "scenario,time,Stock,growth rate"


@needs_suite
def test_original_subscripted_columns_match_the_canonical_output(capsys):
    from engine.cli import main
    from engine.io.conformance import load_canonical

    folder = TESTS / "subscript_2d_arrays"
    assert main(["run", str(folder / "test_subscript_2d_arrays.mdl"), "--names", "original"]) == 0
    import csv
    ours = set(next(csv.reader(capsys.readouterr().out.splitlines()))[2:])
    canon = {c for c in load_canonical(folder / "output.tab").columns if c not in ("FINAL TIME", "INITIAL TIME",
                                                                                  "SAVEPER", "TIME STEP")}
    assert canon <= ours, sorted(canon - ours)[:5]


def _stella(variables: str) -> str:
    return f"""<xmile xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0" version="1.0">
<header><vendor>isee systems, inc.</vendor><product lang="en">Stella</product></header>
<sim_specs method="Euler"><start>0</start><stop>4</stop><dt>1</dt></sim_specs>
<model><variables>{variables}</variables></model></xmile>"""


def test_stella_flow_names_that_are_no_identifiers_and_lookup_calls(tmp_path):
    """What Stella writes and PySD does not read: a stock's flows named bare with commas, slashes
    and parentheses; LOOKUP(table, x) of an aux that is itself a graphical function of its equation."""
    import numpy as np

    from engine import load_model
    f = tmp_path / "stella.stmx"
    f.write_text(_stella("""
<stock name="Stock"><eqn>10</eqn><inflow>Flow_w/_division,_lists(and_calls)</inflow><outflow>out</outflow></stock>
<flow name="Flow w/ division, lists(and calls)"><eqn>table_call</eqn></flow>
<flow name="out"><eqn>1</eqn></flow>
<aux name="shape"><eqn>2</eqn><gf><yscale min="0" max="10"/><xpts>0,2,4</xpts><ypts>0,4,10</ypts></gf></aux>
<aux name="table call"><eqn>LOOKUP(shape, TIME)</eqn></aux>"""), encoding="utf-8")
    res = load_model(f).run(variables=["stock", "table_call", "shape"])
    np.testing.assert_allclose(res["table_call"][0], [0, 2, 4, 7, 10])        # the table at TIME
    np.testing.assert_allclose(res["shape"][0], 4.0)                         # the aux: the table at 2
    np.testing.assert_allclose(res["stock"][0], [10, 9, 10, 13, 19])        # + table(t) - 1 per step
