"""Which constants vary: roles (lever, uncertain, test, fixed), explicit --params and --levers
winning over a scenario's settings, calibrate writing no file unless asked, and the app's
choice of constants by role."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import load_model
from engine.analysis.distributed import ModelRef
from engine.analysis.ensemble import build_space, run_ensemble
from engine.cli import main
from engine.errors import EngineError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"
LOGISTIC = MODELS / "logistic.toml"
OBS = MODELS / "logistic_obs.csv"
MAP = MODELS / "logistic_map.toml"
TARGETS = MODELS / "logistic_targets.toml"
LINXIANG = ROOT / "model" / "linxiang.toml"
SCEN = ROOT / "scenarios"


def _with_roles(tmp_path: Path, roles: dict[str, str]) -> Path:
    """A copy of the logistic model with ``role = ...`` added to some constants."""
    text = LOGISTIC.read_text(encoding="utf-8")
    for name, role in roles.items():
        head = f"[constants.{name}]\n"
        assert head in text
        text = text.replace(head, f'{head}role = "{role}"\n')
    path = tmp_path / "logistic_roles.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _scenario(tmp_path: Path, name: str, settings: str) -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(f'[scenario]\nname = "{name}"\n\n[set]\n{settings}\n', encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def roles_model(tmp_path_factory):
    path = _with_roles(tmp_path_factory.mktemp("roles"), {"lever": "lever", "cost_rate": "test", "x0": "fixed"})
    return path, load_model(path)


def _linxiang():
    return load_model(LINXIANG)  # part of the repository: it must load


# ---------------------------------------------------------------------------- roles
def test_default_samples_only_uncertain_constants(roles_model):
    _, model = roles_model
    space = build_space(model)
    assert space.labels == ["r", "K", "split[a]", "split[b]"]          # no lever, test or fixed constant
    assert "4 factors" in space.summary() and "r, K, split" in space.summary()
    named = build_space(model, ["lever", "cost_rate", "x0"])            # any ranged constant when named
    assert named.labels == ["lever", "cost_rate", "x0"]
    with pytest.raises(EngineError, match="no parameters to sample"):
        build_space(model, exclude={"r", "K", "split"})


def test_default_leaves_out_what_the_scenario_sets_and_says_so(roles_model, tmp_path, capsys):
    path, _ = roles_model
    sc = _scenario(tmp_path, "k80", "K = 80.0")
    rc = main(["ensemble", str(path), str(sc), "--samples", "40", "--seed", "1", "--vars", "x", "--years", "2035",
               "--no-targets"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "sampled 2 constant(s) (3 factors) of role uncertain: r, split" in err
    assert "not sampled, set by the scenario: K" in err


def test_named_constant_is_sampled_even_where_the_scenario_sets_it(roles_model):
    path, model = roles_model
    ref = ModelRef(str(path))
    explicit = build_space(model, ["K"])
    res = run_ensemble(model, ref, {"k80": {"K": 80.0}}, explicit, 200, 3, variables=["capacity"])
    row = res.percentiles.query("time == 2035").iloc[0]
    assert row["p95"] - row["p5"] > 50                                  # K varies over [50, 200]
    assert res.held == {}
    default = build_space(model)                                        # K by default: held where set
    res = run_ensemble(model, ref, {"k80": {"K": 80.0}}, default, 50, 3, variables=["capacity"])
    row = res.percentiles.query("time == 2035").iloc[0]
    assert row["p5"] == pytest.approx(80.0) and row["p95"] == pytest.approx(80.0)
    assert res.held == {"k80": ["K"]}


def test_cli_ensemble_and_sensitivity_with_a_named_scenario_constant(roles_model, tmp_path, capsys):
    path, _ = roles_model
    sc = _scenario(tmp_path, "k80", "K = 80.0\nlever = 10.0")
    summary = tmp_path / "s.csv"
    rc = main(["ensemble", str(path), str(sc), "--samples", "100", "--seed", "2", "--params", "K", "--vars",
               "capacity", "--no-targets", "--summary", str(summary)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "k80 sets K; sampled anyway" in err
    pct = pd.read_csv(summary).query("time == 2035").iloc[0]
    assert pct["p95"] > pct["p5"] + 50
    rc = main(["sensitivity", str(path), str(sc), "--outputs", "x", "--params", "K,lever", "--samples", "64",
               "--method", "morris"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "no parameters to sample" not in err and "k80 sets K, lever; sampled anyway" in err
    table = out.splitlines()
    assert any(" K " in line for line in table) and any(" lever " in line for line in table)


# ---------------------------------------------------------------------------- optimize
def test_named_levers_override_the_scenario(tmp_path, capsys):
    sc = _scenario(tmp_path, "base", "lever = 0.0\ncost_rate = 0.1")
    out = tmp_path / "policy.toml"
    rc = main(["optimize", str(LOGISTIC), str(sc), "--levers", "lever", "--objective", "change", "--minimize",
               "--targets", str(TARGETS), "--write", str(out)])
    text, err = capsys.readouterr()
    assert rc == 0, err
    assert "every binding target is met" in text  # impossible with the lever held at 0
    assert "base sets lever; searched over anyway" in err
    written = out.read_text(encoding="utf-8")
    assert "lever = " in written and "lever = 0.0\n" not in written
    assert "base = " in written                  # beside its scenario: named as the base


def test_linxiang_optimize_moves_the_levers(capsys):
    _linxiang()
    rc = main(["optimize", str(LINXIANG), str(SCEN / "plan.toml"), "--levers", "rongyue_pace,carbon_policy_strength",
               "--objective", "gdp_real@2025", "--seed", "1", "--samples", "32"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.strip().startswith(("rongyue_pace", "carbon_policy_strength"))}
    moved = [name for name, parts in rows.items() if abs(float(parts[1]) - float(parts[2])) > 1e-3]
    assert moved, out  # not simply the plan's setting


# ---------------------------------------------------------------------------- Linxiang ensemble
def test_linxiang_default_ensemble_brackets_the_deterministic_path(tmp_path, capsys):
    model = _linxiang()
    scen = SCEN / "actual_trend.toml"
    space = build_space(model, exclude=set())
    assert {model.role(f.name) for f in space.factors} == {"uncertain"}
    assert not {"investment_switch", "rongyue_pace", "carbon_policy_strength"} & {f.name for f in space.factors}
    summary = tmp_path / "band.csv"
    # --prior: the ranges, not the shipped posterior (the default since issue 11)
    rc = main(["ensemble", str(LINXIANG), str(scen), "--samples", "100", "--seed", "1", "--vars", "gdp_real",
               "--no-targets", "--summary", str(summary), "--prior"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "of role uncertain" in err and "draws: PRIOR" in err
    from engine.scenarios import load_scenario

    det = model.run(params=dict(load_scenario(scen, model).overrides), variables=["gdp_real"], saveper=1)
    path = dict(zip(det.times, det["gdp_real"][0], strict=True))
    band = pd.read_csv(summary)
    for year in (2020, 2021, 2022, 2023):
        row = band[np.isclose(band["time"], year)].iloc[0]
        assert row["p5"] <= path[float(year)] <= row["p95"], (year, row.to_dict(), path[float(year)])


# ---------------------------------------------------------------------------- calibrate
def test_calibrate_writes_no_file_unless_asked(tmp_path, monkeypatch, capsys):
    (tmp_path / "scenarios").mkdir()
    monkeypatch.chdir(tmp_path)
    rc = main(["calibrate", str(LOGISTIC), "--data", str(OBS), "--map", str(MAP), "--params", "r,K,x0"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert list((tmp_path / "scenarios").iterdir()) == [] and not list(tmp_path.glob("*.toml"))
    assert "# ---- calibrated scenario" in out and "[set]" in out
    import tomllib

    text = out[out.index("# ---- calibrated scenario"):]
    settings = tomllib.loads(text)["set"]
    assert settings["r"] == pytest.approx(0.45, rel=0.02)
    assert settings["K"] == pytest.approx(150, rel=0.02)
    assert settings["x0"] == pytest.approx(12, rel=0.05)


def test_calibrate_finds_the_mapping_beside_the_data(capsys):
    rc = main(["calibrate", str(LOGISTIC), "--data", str(OBS), "--params", "r,K"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "using the mapping file" in err and "logistic_map.toml" in err


def test_calibrate_without_a_mapping_keeps_the_clear_error(tmp_path, capsys):
    data = tmp_path / "obs.csv"
    data.write_text(OBS.read_text(encoding="utf-8"), encoding="utf-8")   # no *_map.toml beside it
    rc = main(["calibrate", str(LOGISTIC), "--data", str(data), "--params", "r,K"])
    assert rc != 0
    assert "unknown indicator(s) output_100kg" in capsys.readouterr().err


def test_calibrate_fits_a_constant_the_scenario_sets(tmp_path, capsys):
    sc = _scenario(tmp_path, "start", "r = 0.2\nK = 100.0")
    out = tmp_path / "cal.toml"
    rc = main(["calibrate", str(LOGISTIC), "--data", str(OBS), "--map", str(MAP), "--params", "r,K,x0",
               "--scenario", str(sc), "--write", str(out)])
    text, err = capsys.readouterr()
    assert rc == 0, err
    assert "r = 0.449" in text or "r = 0.45" in text
    assert out.exists()


# ---------------------------------------------------------------------------- the app
def test_app_picks_constants_by_role():
    sys.path.insert(0, str(ROOT))
    from lxapp import core

    model = _linxiang()
    bundle = core.Bundle(model, str(LINXIANG), "test")
    more = core.more_constants(bundle)
    assert more and {model.role(n) for n in more} <= {"lever", "uncertain"}
    assert "investment_switch" not in more and "birth_rate_multiplier" not in more
    # the app's ensemble is the engine's: the shipped posterior's constants jointly, the rest from their priors
    bands, _prob, kind = core.ensemble(bundle, {}, ["gdp_real"], n=20, seed=1)
    assert kind == "posterior" and bands["gdp_real"].shape[0] == 5
    assert np.all(np.diff(bands["gdp_real"], axis=0) >= 0)          # percentiles in order


def test_app_drops_a_main_lever_marked_test(tmp_path):
    sys.path.insert(0, str(ROOT))
    from lxapp import core

    demo = ROOT / "lxapp" / "demo" / "demo_model.toml"
    text = demo.read_text(encoding="utf-8")
    head = "[constants.rd_intensity_2025]\n"
    assert head in text
    path = tmp_path / "demo_model.toml"
    path.write_text(text.replace(head, head + 'role = "test"\n'), encoding="utf-8")
    bundle = core.load_bundle(path)   # the demo has no [presentation]: model/linxiang.toml's lever groups
    names = [lv.name for lv in core.levers(bundle, ["rd_intensity_2025"])]
    assert "rd_intensity_2025" not in names and "rongyue_pace" in names
    assert "rd_intensity_2025" not in core.more_constants(bundle)
