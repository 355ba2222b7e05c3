"""lxsd backtest: fit through a year, forecast the rows after it, report error and coverage."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"


def test_backtest_on_synthetic_data(tmp_path, capsys):
    out = tmp_path / "bt.csv"
    rc = main(["backtest", str(MODELS / "logistic.toml"), "--data", str(MODELS / "logistic_obs.csv"),
               "--params", "r,K,x0", "--until", "2022", "--samples", "400", "--seed", "3", "-q", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert "forecast of the rows after 2022" in stdout and "cover90" in stdout
    df = pd.read_csv(out).set_index("indicator")
    assert list(df.index) == ["x", "output_100kg", "all"]
    assert df.loc["x", "n"] == 8 and df.loc["output_100kg", "n"] == 4 and df.loc["all", "n"] == 12
    # the model that made the data forecasts it: small errors, and the 90 % intervals hold most rows
    assert df.loc["x", "mape"] < 5 and df.loc["x", "theil_u"] < 0.03
    assert df.loc["all", "coverage_90"] >= 0.75
    assert 0 <= df.loc["all", "coverage_50"] <= df.loc["all", "coverage_90"] <= 1


def test_backtest_needs_rows_after_until(capsys):
    rc = main(["backtest", str(MODELS / "logistic.toml"), "--data", str(MODELS / "logistic_obs.csv"),
               "--params", "r", "--until", "2035", "--samples", "50", "-q"])
    assert rc == 2
    assert "nothing to forecast" in capsys.readouterr().err


def test_backtest_on_linxiang_until_2020(tmp_path, capsys):
    """The Linxiang model with its data map: fit on the rows through 2020 (the census), forecast the
    2023 bulletin, and report MAPE, Theil's U and coverage per indicator."""
    out = tmp_path / "bt.csv"
    rc = main(["backtest", str(ROOT / "model" / "linxiang.toml"), str(ROOT / "scenarios" / "actual_trend.toml"),
               "--data", str(ROOT / "data" / "linxiang_statistics.csv"), "--until", "2020", "--samples", "200",
               "--seed", "1", "-q", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert "using the data map" in err and "linxiang_data_map.toml" in err
    df = pd.read_csv(out).set_index("indicator")
    assert "gdp" in df.index and "urbanization_rate" in df.index and "all" in df.index
    assert df.loc["all", "n"] >= 10
    assert np.isfinite(df.loc["gdp", ["mape", "theil_u", "coverage_50", "coverage_90"]].astype(float)).all()
    assert 0 <= df.loc["all", "coverage_50"] <= df.loc["all", "coverage_90"] <= 1
    assert "cover50" in stdout and "MAPE%" in stdout
    pytest.importorskip("arviz")
