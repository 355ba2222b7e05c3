"""Policy search: meets binding targets, reports which bind, or by how much they are missed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import load_model
from engine.analysis.distributed import ModelRef
from engine.analysis.ensemble import build_space, load_targets
from engine.analysis.optimize import optimize, parse_objective
from engine.cli import main
from engine.errors import EngineError

ROOT = Path(__file__).resolve().parents[1]
LOGISTIC = ROOT / "tests" / "models" / "logistic.toml"
TARGETS = ROOT / "tests" / "models" / "logistic_targets.toml"


@pytest.fixture(scope="module")
def model():
    return load_model(LOGISTIC)


def test_least_change_that_meets_the_targets(model):
    targets, _ = load_targets(TARGETS, model, binding_only=True)
    space = build_space(model, ["lever"])
    res = optimize(model, ModelRef(str(LOGISTIC)), space, targets, parse_objective("change", model, "min"))
    assert res.feasible
    st = res.targets.set_index("id")
    assert st.loc["01_level_2030", "status"] == "binding" and st.loc["02_cost", "status"] == "slack"
    lever = res.levers.iloc[0]["value"]
    # check directly: x(2030) just reaches 100 at the lever found, and not with a smaller one
    r = model.run(params={"lever": np.array([lever, lever - 0.05])}, saveper=1, variables=["x"])
    x2030 = r["x"][:, list(r.times).index(2030.0)]
    assert x2030[0] >= 100 - 1e-6 and x2030[1] < 100


def test_maximise_objective_with_a_binding_cost(model):
    targets, _ = load_targets(TARGETS, model, binding_only=True)
    space = build_space(model, ["lever", "cost_rate"])
    res = optimize(model, ModelRef(str(LOGISTIC)), space, targets, parse_objective("x@2035", model, "max"))
    assert res.feasible
    v = res.levers.set_index("lever")["value"]
    assert v["cost_rate"] == pytest.approx(0.05, abs=1e-6)
    assert v["lever"] == pytest.approx(np.sqrt(40 / 0.05), rel=1e-3)  # cost = rate * lever^2 <= 40
    assert res.targets.set_index("id").loc["02_cost", "status"] == "binding"


def test_infeasible_reports_the_miss(model, tmp_path):
    t = tmp_path / "t.toml"
    t.write_text('[[indicator]]\nid = "big"\nkind = "binding"\ndirection = "min"\nexpression = "x"\n'
                 'target_2025 = 500\ntarget_year = 2030\n', encoding="utf-8")
    targets, _ = load_targets(t, model)
    space = build_space(model, ["lever"])
    res = optimize(model, ModelRef(str(LOGISTIC)), space, targets, parse_objective("change", model, "min"))
    assert not res.feasible
    row = res.targets.iloc[0]
    assert row["status"] == "missed" and row["margin"] < 0
    assert res.levers.iloc[0]["value"] == pytest.approx(50.0)  # as close as the range allows


def test_bad_objective(model):
    with pytest.raises(EngineError, match="EXPRESSION@YEAR"):
        parse_objective("gdp", model, "max")
    with pytest.raises(EngineError, match="not an output"):
        parse_objective("gdp@2030", model, "max")
    with pytest.raises(EngineError, match="outside"):
        parse_objective("x@1990", model, "max")


def test_cli_optimize(tmp_path, capsys):
    out = tmp_path / "policy.toml"
    rc = main(["optimize", str(LOGISTIC), "--levers", "lever", "--objective", "change", "--minimize",
               "--targets", str(TARGETS), "--write", str(out), "--out", str(tmp_path / "p.csv")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "every binding target is met" in text and "binding (at their limit): 01_level_2030" in text
    assert out.exists() and (tmp_path / "p.csv").exists()
