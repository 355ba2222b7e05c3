"""Links, polarity and feedback loops read from the equations; lxsd doc."""
from __future__ import annotations

from pathlib import Path

from engine.analysis.structure import equation_listing, feedback_loops, links, stock_flow_dot
from engine.cli import main
from engine.parse.model_file import model_from_dict

ROOT = Path(__file__).resolve().parent.parent


def model(aux: dict, stocks: dict, flows: dict):
    return model_from_dict({"time": {"start": 0, "stop": 1, "dt": 1}, "auxiliaries": aux, "stocks": stocks,
                            "flows": flows, "constants": {"k": {"value": 0.1}}}, "m.toml")


def test_decay_is_one_balancing_loop():
    m = model({}, {"x": {"initial": 1, "outflows": ["loss"]}}, {"loss": {"equation": "k * x"}})
    loops = feedback_loops(m)
    assert [(lp.variables, lp.kind) for lp in loops] == [(("x", "loss"), "balancing (B)")]


def test_growth_is_reinforcing_and_a_goal_gap_is_balancing():
    m = model({"gap": {"equation": "100 - x"}},
              {"x": {"initial": 1, "inflows": ["grow", "close"]}},
              {"grow": {"equation": "k * x"}, "close": {"equation": "gap / 4"}})
    kinds = {lp.variables: lp.polarity for lp in feedback_loops(m)}
    assert kinds[("x", "grow")] == 1
    assert kinds[("x", "gap", "close")] == -1


def test_if_then_else_makes_the_polarity_unknown():
    m = model({}, {"x": {"initial": 1, "inflows": ["f"]}}, {"f": {"equation": "IF_THEN_ELSE(x > 5, 1, x)"}})
    assert feedback_loops(m)[0].polarity == 0


def test_link_signs_of_division_and_subtraction():
    m = model({"r": {"equation": "k / x"}, "d": {"equation": "k - x"}}, {"x": {"initial": 1}}, {})
    signs = {(lk.source, lk.target): lk.polarity for lk in links(m)}
    assert signs[("x", "r")] == -1 and signs[("k", "r")] == 1 and signs[("x", "d")] == -1


def test_dot_and_listing_name_every_variable():
    m = model({"gap": {"equation": "100 - x"}}, {"x": {"initial": 1, "inflows": ["close"]}},
              {"close": {"equation": "gap / 4"}})
    dot = stock_flow_dot(m)
    assert dot.startswith("digraph") and '"x" [shape=box' in dot and '"close" -> "x"' in dot
    listing = equation_listing(m)
    assert "`gap`" in listing and "INTEG(close, 1.0)" in listing


def test_lxsd_doc_writes_the_generated_section(tmp_path, capsys):
    out = tmp_path / "doc.md"
    out.write_text("# Title\n\nkept text\n", encoding="utf-8")
    assert main(["doc", str(ROOT / "tests" / "models" / "decay.toml"), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nkept text") and "<!-- generated:start -->" in text and "balancing" in text
    assert main(["doc", str(ROOT / "tests" / "models" / "decay.toml"), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").count("<!-- generated:start -->") == 1  # replaced, not appended


def test_linxiang_has_reinforcing_and_balancing_loops_and_the_app_shows_them():
    from engine import load_model
    from lxapp import diagram

    class Bundle:  # the app's bundle holds the compiled model as .model
        model = load_model(ROOT / "model" / "linxiang.toml")

    loops = diagram.feedback_loops(Bundle())
    kinds = {lp.polarity for lp in loops}
    assert {1, -1} <= kinds
    assert any(lp.variables == ("capital", "depreciation") and lp.polarity == -1 for lp in loops)
