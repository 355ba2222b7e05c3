"""Sobol indices and Morris screening on the vectorised engine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import load_model
from engine.analysis.distributed import ModelRef
from engine.analysis.ensemble import build_space
from engine.analysis.sensitivity import sensitivity
from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
LOGISTIC = ROOT / "tests" / "models" / "logistic.toml"


@pytest.fixture(scope="module")
def model():
    return load_model(LOGISTIC)


def test_sobol_ranks_and_ignores_inert_constants(model):
    # cost_rate does not reach x: its indices must be ~0; K and r drive x
    space = build_space(model, ["r", "K", "x0", "cost_rate"])
    res = sensitivity(model, ModelRef(str(LOGISTIC)), space, ["x"], [2035], "sobol", 512, seed=3)
    t = res.table.set_index("parameter")
    assert res.runs == 512 * (4 + 2)
    assert abs(t.loc["cost_rate", "ST"]) < 0.02 and abs(t.loc["cost_rate", "S1"]) < 0.02
    assert t.loc["K", "rank"] == 1 and t.loc["K", "ST"] > 0.3
    assert (t["ST"] >= t["S1"] - 0.05).all()
    again = sensitivity(model, ModelRef(str(LOGISTIC)), space, ["x"], [2035], "sobol", 512, seed=3)
    assert np.array_equal(res.table["ST"].to_numpy(), again.table["ST"].to_numpy())


def test_morris_and_expressions(model):
    space = build_space(model, ["r", "K", "cost_rate", "lever"])
    res = sensitivity(model, ModelRef(str(LOGISTIC)), space, ["output[a] / total_output", "cost"], [2030],
                      "morris", 20, seed=1)
    share = res.table[res.table.output == "output[a] / total_output"]
    assert np.allclose(share["mu_star"], 0.0)  # the share is split[a], whatever r, K are
    cost = res.table[res.table.output == "cost"].set_index("parameter")
    assert set(cost[cost["rank"] <= 2].index) == {"cost_rate", "lever"}
    assert cost.loc["r", "mu_star"] == 0 and cost.loc["K", "mu_star"] == 0


def test_cli_sensitivity(tmp_path, capsys):
    out, plot = tmp_path / "s.csv", tmp_path / "s.png"
    rc = main(["sensitivity", str(LOGISTIC), "--outputs", "x,total_output", "--years", "2025,2035",
               "--samples", "64", "--params", "r,K,x0", "--out", str(out), "--plot", str(plot)])
    assert rc == 0 and out.exists() and plot.exists()
    assert "ST" in capsys.readouterr().out
    assert main(["sensitivity", str(LOGISTIC), "--outputs", "nope", "--samples", "8"]) != 0
    assert "nope" in capsys.readouterr().err
    assert main(["sensitivity", str(LOGISTIC), "--outputs", "x", "--samples", "0"]) != 0
