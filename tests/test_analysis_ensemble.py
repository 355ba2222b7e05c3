"""Monte Carlo ensembles: reproducible, chunked, Parquet by scenario, target probabilities, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import load_model
from engine.analysis.distributed import ModelRef
from engine.analysis.ensemble import (Expr, build_space, draw, load_targets, open_ensemble, read_ensemble,
                                      run_ensemble)
from engine.cli import main
from engine.errors import EngineError, ModelError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"
LOGISTIC = MODELS / "logistic.toml"
TARGETS = MODELS / "logistic_targets.toml"


@pytest.fixture(scope="module")
def model():
    return load_model(LOGISTIC)


@pytest.fixture(scope="module")
def ref():
    return ModelRef(str(LOGISTIC))


@pytest.mark.parametrize("design", ["random", "lhs", "sobol"])
def test_same_seed_same_numbers(model, design):
    space = build_space(model)
    a, b = draw(space, 257, 42, design), draw(space, 257, 42, design)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, draw(space, 257, 43, design))
    lo, hi = space.bounds
    assert (a >= lo).all() and (a <= hi).all()


def test_default_space_is_every_ranged_constant(model):
    space = build_space(model)
    assert space.labels == ["r", "K", "x0", "lever", "cost_rate", "split[a]", "split[b]"]


def test_distributions_file(model, tmp_path):
    f = tmp_path / "d.toml"
    f.write_text('[sample]\ninclude = ["r", "K"]\n[distributions.r]\nkind = "normal"\nmean = 0.3\nsd = 0.01\n'
                 '[distributions.K]\nkind = "triangular"\nmode = 60\n', encoding="utf-8")
    space = build_space(model, dist_file=f)
    X = draw(space, 20000, 1)
    assert space.labels == ["r", "K"]
    assert X[:, 0].mean() == pytest.approx(0.3, abs=1e-3) and X[:, 0].std() == pytest.approx(0.01, rel=0.05)
    assert (X[:, 1] >= 50).all() and np.median(X[:, 1]) < 125
    f.write_text('[distributions.r]\nkind = "weird"\n', encoding="utf-8")
    with pytest.raises(ModelError, match="unknown distribution"):
        build_space(model, dist_file=f)


def test_chunks_do_not_change_the_numbers(model, ref):
    space = build_space(model)
    a = run_ensemble(model, ref, {"base": {}}, space, 500, 5, chunk=500)
    b = run_ensemble(model, ref, {"base": {}}, space, 500, 5, chunk=64)
    pd.testing.assert_frame_equal(a.percentiles, b.percentiles)


def test_percentiles_and_probabilities(model, ref):
    targets, notes = load_targets(TARGETS, model)
    assert [t.id for t in targets] == ["01_level_2030", "02_cost", "03_growth"]
    assert any("04_not_modelled" in n for n in notes)
    space = build_space(model, ["r", "K"])
    res = run_ensemble(model, ref, {"base": {}, "lever": {"lever": 30.0}}, space, 2000, 1, "lhs",
                       targets=targets)
    p = res.percentiles
    row = p[(p.scenario == "base") & (p.variable == "x") & (p.time == 2030)].iloc[0]
    assert row.p5 < row.p25 < row.p50 < row.p75 < row.p95
    prob = res.probabilities.set_index(["scenario", "id"])["p_met"]
    assert 0 < prob["base", "01_level_2030"] < prob["lever", "01_level_2030"] <= 1
    assert prob["base", "02_cost"] == 1.0 and prob["lever", "02_cost"] == 0.0  # 0.1 * 30^2 = 90 > 40
    # the probability agrees with a direct count over the same samples
    X = draw(space, 2000, 1, "lhs")
    direct = model.run(params={"r": X[:, 0], "K": X[:, 1]}, saveper=1, variables=["x"])
    x2030 = direct["x"][:, list(direct.times).index(2030.0)]
    assert prob["base", "01_level_2030"] == pytest.approx(np.mean(x2030 >= 100))


def test_parquet_partitioned_by_scenario_and_read_lazily(model, ref, tmp_path):
    out = tmp_path / "ens.parquet"
    space = build_space(model, ["r"])
    run_ensemble(model, ref, {"a": {}, "b": {"K": 80.0}}, space, 300, 2, out=out, chunk=100, variables=["x"])
    assert sorted(p.name for p in out.iterdir()) == ["_lxsd_ensemble.json", "scenario=a", "scenario=b"]
    assert len(list((out / "scenario=a").glob("part-*.parquet"))) == 3
    man = json.loads((out / "_lxsd_ensemble.json").read_text())
    assert man["complete"] and man["seed"] == 2
    assert open_ensemble(out).count_rows() == 2 * 300 * 21
    df = read_ensemble(out, scenario="b", columns=["x"], time=2035)
    assert len(df) == 300 and set(df["scenario"]) == {"b"}
    assert df["x"].max() <= 80.0 + 1e-9


def test_failed_runs_are_isolated(tmp_path, ref):
    """A run that blows up is left out (NaN) instead of failing the whole batch."""
    path = tmp_path / "blow.toml"
    path.write_text('[model]\nname="b"\n[time]\nstart=0\nstop=5\ndt=1\n'
                    '[constants.a]\nvalue=1\nrange=[-1, 1]\n[auxiliaries.y]\nequation="LN(a) + TIME"\n',
                    encoding="utf-8")
    m = load_model(path, check_units=False)
    space = build_space(m)
    res = run_ensemble(m, ModelRef(str(path), False), {"s": {}}, space, 64, 0, variables=["y"])
    X = draw(space, 64, 0)
    assert res.failed["s"] == int(np.sum(X[:, 0] <= 0))
    assert res.percentiles["p50"].notna().all()


def test_expr():
    e = Expr("MAX(a[x, y], 2) ^ 2 - -b / c")
    assert e.columns == ["a[x,y]", "b", "c"]
    assert e.evaluate({"a[x,y]": np.array([1.0, 3.0]), "b": 1.0, "c": 2.0}.__getitem__).tolist() == [4.5, 9.5]
    with pytest.raises(EngineError):
        Expr("__import__('os')")
    with pytest.raises(EngineError):
        Expr("a.b")


def test_cli_ensemble_and_bad_input(tmp_path, capsys):
    out = tmp_path / "e.csv"
    rc = main(["ensemble", str(LOGISTIC), "--samples", "200", "--seed", "1", "--targets", str(TARGETS),
               "--out", str(out), "--summary", str(tmp_path / "s.csv")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "p50" in text and "01_level_2030" in text
    df = pd.read_csv(out)
    assert len(df) == 200 * 21 and (tmp_path / "s_targets.csv").exists()
    assert main(["ensemble", str(LOGISTIC), "--samples", "0", "--seed", "1"]) != 0
    assert "at least 1" in capsys.readouterr().err
    assert main(["ensemble", str(LOGISTIC), "--samples", "5", "--seed", "1", "--params", "noise_free"]) != 0
    assert "has no range" in capsys.readouterr().err


def test_cli_same_seed_same_output(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["ensemble", str(LOGISTIC), "--samples", "100", "--seed", "9", "--design", "sobol",
                     "--no-targets", "--summary", str(tmp_path / f"{name}.csv")]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
