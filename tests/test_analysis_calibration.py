"""Calibration: recovers known constants from synthetic data; bad data files are clear errors."""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from engine import load_model
from engine.analysis.calibration import calibrate, fit_stats, load_data, write_scenario
from engine.analysis.distributed import ModelRef
from engine.analysis.ensemble import build_space
from engine.cli import main
from engine.errors import ModelError
from engine.scenarios import load_scenario

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"
LOGISTIC = MODELS / "logistic.toml"
OBS = MODELS / "logistic_obs.csv"
MAP = MODELS / "logistic_map.toml"
TRUE = {"r": 0.45, "K": 150.0, "x0": 12.0}  # what tests/models/logistic_obs.csv was made from (1% noise)


@pytest.fixture(scope="module")
def model():
    return load_model(LOGISTIC)


def _synthetic(model, tmp_path, truth, noise=0.0, seed=0, years=range(2015, 2031)):
    res = model.run(params=truth, saveper=1)
    x = res["x"][0]
    rng = np.random.default_rng(seed)
    lines = ["indicator,unit,year,value,source"]
    for t, v in zip(res.times, x, strict=True):
        if int(t) in years:
            lines.append(f"x,t,{int(t)},{v * (1 + noise * rng.standard_normal()):.8g},synthetic")
    path = tmp_path / "obs.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_recovers_known_parameters_exactly_without_noise(model, tmp_path):
    truth = {"r": 0.37, "K": 123.0, "x0": 7.5}
    data = _synthetic(model, tmp_path, truth)
    series = load_data(data, model)
    space = build_space(model, ["r", "K", "x0"])
    cal = calibrate(model, ModelRef(str(LOGISTIC)), space.factors, series)
    for lab, est in zip(cal.labels, cal.estimates, strict=True):
        assert est == pytest.approx(truth[lab], rel=1e-4)
    fit = cal.stats.iloc[0]
    assert fit["mape"] < 1e-3 and fit["r2"] > 0.999999


def test_recovers_parameters_from_noisy_data_with_intervals(model):
    series = load_data(OBS, model, mapping=MAP)
    assert [s.indicator for s in series] == ["x", "output_100kg"]
    space = build_space(model, ["r", "K", "x0"])
    cal = calibrate(model, ModelRef(str(LOGISTIC)), space.factors, series, restarts=3, seed=7)
    for lab, est, lo, hi in zip(cal.labels, cal.estimates, cal.low, cal.high, strict=True):
        assert est == pytest.approx(TRUE[lab], rel=0.03)
        assert lo < est < hi
        assert lo <= TRUE[lab] <= hi or abs(est - TRUE[lab]) / TRUE[lab] < 0.01
    for line, lab in zip(cal.lines(), cal.labels, strict=True):
        assert line.startswith(f"{lab} = ") and line.count("[") == 1 and line.endswith("]")
    fit = cal.stats[cal.stats["period"] == "fit"]
    assert np.allclose(fit[["u_m", "u_s", "u_c"]].sum(axis=1), 1.0)
    assert (fit["mape"] < 2).all()


def test_backtest_scores_the_forecast(model):
    series = load_data(OBS, model, mapping=MAP)
    space = build_space(model, ["r", "K"])
    cal = calibrate(model, ModelRef(str(LOGISTIC)), space.factors, series, until=2022)
    assert set(cal.stats["period"]) == {"fit", "forecast"}
    fc = cal.stats[(cal.stats["indicator"] == "x") & (cal.stats["period"] == "forecast")].iloc[0]
    assert fc["n"] == 8  # 2023-2030


def test_same_seed_same_restarts(model):
    series = load_data(OBS, model, mapping=MAP)
    space = build_space(model, ["r", "K", "x0"])
    a = calibrate(model, ModelRef(str(LOGISTIC)), space.factors, series, restarts=3, seed=11)
    b = calibrate(model, ModelRef(str(LOGISTIC)), space.factors, series, restarts=3, seed=11)
    assert np.array_equal(a.estimates, b.estimates)


def test_theil_statistics():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    s = a + 1.0  # pure bias
    st = fit_stats(a, s)
    assert st["u_m"] == pytest.approx(1.0) and st["u_s"] == pytest.approx(0.0) and st["u_c"] == pytest.approx(0.0)
    st = fit_stats(a, a[::-1])  # no bias, same spread: all unequal covariation
    assert st["u_c"] == pytest.approx(1.0)
    assert st["rmse"] == pytest.approx(np.sqrt(5.0))


def test_scenario_file_is_valid_and_atomic(model, tmp_path):
    series = load_data(OBS, model, mapping=MAP)
    space = build_space(model, ["r", "K", "split[a]"])
    cal = calibrate(model, ModelRef(str(LOGISTIC)), space.factors, series)
    out = write_scenario(cal, tmp_path / "cal.toml", "cal", "m.toml", "d.csv")
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    assert data["scenario"]["name"] == "cal"
    assert set(data["set"]["split"]) == {"a", "b"} and data["set"]["split"]["b"] == 0.4
    sc = load_scenario(out, model)  # in range, the right types: the engine accepts it
    assert sc.overrides["r"] == pytest.approx(cal.estimates[0])
    assert [p.name for p in tmp_path.iterdir()] == ["cal.toml"]  # no temp file left behind


def _csv(tmp_path, body: str) -> Path:
    p = tmp_path / "bad.csv"
    p.write_text("indicator,unit,year,value,source\n" + body, encoding="utf-8")
    return p


@pytest.mark.parametrize("body, words", [
    ("x,t,,10,s\n", ["row 2", "year is missing"]),
    ("x,t,2016-2020,10,s\n", ["row 2", "not a number"]),
    ("x,t,2016,ten,s\n", ["row 2", "'ten' is not a number"]),
    ("x,t,2016,10,s\nx,t,2016,11,s\n", ["row 3", "duplicate", "row 2"]),
    ("gdp_mystery,t,2016,10,s\n", ["unknown indicator", "gdp_mystery"]),
    ("x,t,1990,10,s\n", ["row 2", "outside the model's time"]),
])
def test_bad_data_is_an_error_naming_file_and_row(model, tmp_path, body, words):
    path = _csv(tmp_path, body)
    with pytest.raises(ModelError) as err:
        load_data(path, model)
    text = str(err.value)
    assert str(path) in text
    for w in words:
        assert w in text


def test_scope_must_be_chosen(model, tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("scope,indicator,unit,year,value,source\na,x,t,2016,1,s\nb,x,t,2016,2,s\n", encoding="utf-8")
    with pytest.raises(ModelError, match="--scope"):
        load_data(p, model)
    assert load_data(p, model, scope="b")[0].values.tolist() == [2.0]


def test_parameter_without_range(model):
    with pytest.raises(ModelError, match="noise_free: has no range"):
        build_space(model, ["noise_free"])


def test_cli_calibrate(tmp_path, capsys):
    out = tmp_path / "calibrated.toml"
    plot = tmp_path / "fit.png"
    rc = main(["calibrate", str(LOGISTIC), "--data", str(OBS), "--map", str(MAP), "--params", "r,K,x0",
               "--write", str(out), "--plot", str(plot), "--until", "2026"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "r = " in text and "U_M" in text and "forecast" in text
    assert out.exists()
    assert plot.exists() and plot.stat().st_size > 0


def test_cli_bad_data_exits_non_zero(tmp_path, capsys):
    bad = _csv(tmp_path, "x,t,2016,abc,s\n")
    rc = main(["calibrate", str(LOGISTIC), "--data", str(bad), "--params", "r"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "bad.csv" in err and "abc" in err and "Traceback" not in err


def test_jacobian_is_one_batch(model, monkeypatch):
    """Each Jacobian is ONE run call of k+1 runs."""
    series = load_data(OBS, model, mapping=MAP)
    space = build_space(model, ["r", "K", "x0"])
    sizes = []
    orig = type(model).run

    def spy(self, *a, **kw):
        sizes.append(kw.get("n"))
        return orig(self, *a, **kw)
    monkeypatch.setattr(type(model), "run", spy)
    calibrate(model, ModelRef(str(LOGISTIC)), space.factors, series)
    assert 4 in sizes and set(sizes) <= {1, 4}
