"""The analysis commands' registration, the scorecard wrapper, and partial results on failure."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import load_model
from engine.analysis.distributed import ModelRef
from engine.analysis.ensemble import build_space, draw, run_ensemble
from engine.cli import build_parser, main
from engine.errors import EngineError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"
LOGISTIC = MODELS / "logistic.toml"


def test_commands_are_registered():
    text = build_parser().format_help()
    for cmd in ("calibrate", "ensemble", "sensitivity", "optimize", "scorecard"):
        assert cmd in text


def test_scorecard_command(tmp_path, capsys):
    pytest.importorskip("engine.scorecard")
    out = tmp_path / "sc.csv"
    rc = main(["scorecard", str(LOGISTIC), str(MODELS / "logistic_lever.toml"), "--targets",
               str(MODELS / "logistic_targets.toml"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    df = pd.read_csv(out)
    assert set(df["scenario"]) == {"lever"} and len(df) == 4
    assert main(["scorecard", str(LOGISTIC), str(MODELS / "logistic_lever.toml"), "--targets",
                 str(tmp_path / "missing.toml")]) != 0


def test_partial_results_are_kept(tmp_path, monkeypatch):
    """A shard that cannot run stops the ensemble; the shards written before it stay on disk.

    (Changed with per-run status, issue 11: a run that fails no longer stops anything, so the
    stop is a shard whose batch call raises, as a worker that dies would.)"""
    from engine.analysis import ensemble

    path = tmp_path / "blow.toml"
    path.write_text('[model]\nname="b"\n[time]\nstart=0\nstop=3\ndt=1\n'
                    '[constants.a]\nvalue=1\nrange=[-1, 1]\n[auxiliaries.y]\nequation="LN(a) + TIME"\n',
                    encoding="utf-8")
    m = load_model(path, check_units=False)
    space = build_space(m)
    calls = []
    real = ensemble.run_batch

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 7:
            raise EngineError("the worker died")
        return real(*a, **kw)

    monkeypatch.setattr(ensemble, "run_batch", flaky)
    out = tmp_path / "e.parquet"
    with pytest.raises(EngineError, match=r"stopped after 6 of 40 shards.*the worker died.*kept"):
        run_ensemble(m, ModelRef(str(path), False), {"s": {}}, space, 40, 0, variables=["y"], chunk=1, out=out)
    parts = sorted((out / "scenario=s").glob("part-*.parquet"))
    assert len(parts) == 6
    man = json.loads((out / "_lxsd_ensemble.json").read_text())
    assert man["complete"] is False and man["shards_done"] == 6


def test_failed_runs_do_not_stop_an_ensemble(tmp_path):
    """Runs with a <= 0 fail (LN); the others' values are those of the same runs alone."""
    path = tmp_path / "blow.toml"
    path.write_text('[model]\nname="b"\n[time]\nstart=0\nstop=3\ndt=1\n'
                    '[constants.a]\nvalue=1\nrange=[-1, 1]\n[auxiliaries.y]\nequation="LN(a) + TIME"\n',
                    encoding="utf-8")
    m = load_model(path, check_units=False)
    space = build_space(m)
    X = draw(space, 40, 0)
    bad = X[:, 0] <= 0
    assert 0 < bad.sum() < 40
    res = run_ensemble(m, ModelRef(str(path), False), {"s": {}}, space, 40, 0, variables=["y"], chunk=7)
    assert res.failed == {"s": int(bad.sum())}
    last = res.percentiles[res.percentiles["time"] == 3].iloc[0]
    assert last["p50"] == pytest.approx(np.median(np.log(X[~bad, 0]) + 3))


def test_linxiang_smoke(tmp_path, capsys):
    """The analysis commands on the Linxiang model, when it and its scenarios are there."""
    model = ROOT / "model" / "linxiang.toml"
    plan = ROOT / "scenarios" / "plan.toml"
    load_model(model)  # part of the repository: a failure to load is a failure here
    assert plan.exists()
    rc = main(["ensemble", str(model), str(plan), "--samples", "64", "--seed", "1", "--summary",
               str(tmp_path / "s.csv")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "s_targets.csv").exists()
