"""lxsd posterior: the data map and likelihood, parameter recovery, the NetCDF file, ensembles from it."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import load_model
from engine.analysis.distributed import ModelRef
from engine.analysis.ensemble import build_space, run_ensemble
from engine.analysis.likelihood import Likelihood, load_observations, read_data_map
from engine.analysis.posterior import read_posterior, sample_posterior, write_posterior
from engine.cli import main
from engine.errors import EngineError, ModelError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"
LOGISTIC = MODELS / "logistic.toml"
TRUE = {"r": 0.45, "K": 150.0, "x0": 12.0}

GROWTH = """
[model]
name = "growth"
[time]
start = 2015
stop = 2030
dt = 0.125
saveper = 1
[constants.g]
value = 0.05
range = [0.0, 0.2]
[constants.a]
value = 1
range = [-1, 2]
[stocks.x]
initial = "100"
inflows = ["dx"]
[flows.dx]
equation = "g * x"
[auxiliaries.y]
equation = "x * LN(a + 1)"
"""


@pytest.fixture(scope="module")
def logistic():
    return load_model(LOGISTIC)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _synthetic(model, tmp_path: Path, seed: int, sigma: float = 0.02) -> Path:
    """x every second year from the true constants, with log-normal noise of ``sigma``."""
    res = model.run(params=dict(TRUE), variables=["x"], saveper=1)
    years = np.arange(2015, 2031, 2)
    x = np.interp(years, res.times, res["x"][0])
    noisy = x * np.exp(np.random.default_rng(seed).normal(0, sigma, len(years)))
    rows = [{"indicator": "x", "unit": "t", "year": int(y), "value": f"{v:.6g}", "source": f"synthetic seed {seed}"}
            for y, v in zip(years, noisy, strict=True)]
    return _write(tmp_path / f"obs{seed}.csv", pd.DataFrame(rows).to_csv(index=False))


# ---------------------------------------------------------------------------- data map and likelihood
def test_period_rows_are_average_growth_between_the_ends(tmp_path):
    model = load_model(_write(tmp_path / "g.toml", GROWTH), check_units=False)
    data = _write(tmp_path / "d.csv", "indicator,unit,year,value,source\n"
                                      "x_growth,%/yr avg,2016-2020,5.0,t\nx,u,2020,128.4,t\nx_growth,%,2022,5.1,t\n")
    dm = _write(tmp_path / "m.toml", 'growth_sigma = 0.5\n[map]\nx_growth = { expression = "x", measure = "growth" }\n'
                                     'x = { expression = "x", sigma = 0.03 }\n')
    obs = {o.indicator: o for o in load_observations(data, model, read_data_map(dm))}
    g = obs["x_growth"]
    assert g.measure == "growth" and list(g.start) == [2016, 2021] and list(g.end) == [2020, 2022]
    assert g.sigma == 0.5 and obs["x"].sigma == 0.03
    space = build_space(model, ["g"])
    like = Likelihood(model, space, list(obs.values()))
    sims, failed = like.simulate(model, np.array([[0.05], [0.10]]))
    growth = sims[[o.indicator for o in like.observations].index("x_growth")]
    # Euler with dt = 1/8: x grows by (1 + g/8)^8 a year, whatever the period's length
    for row, g_ in enumerate((0.05, 0.10)):
        assert growth[row] == pytest.approx([100 * ((1 + g_ / 8) ** 8 - 1)] * 2, rel=1e-9)
    ll = like.loglik(sims, failed)
    assert ll[0] > ll[1] and np.isfinite(ll).all()


def test_a_failed_run_gets_zero_likelihood(tmp_path):
    model = load_model(_write(tmp_path / "g.toml", GROWTH), check_units=False)
    data = _write(tmp_path / "d.csv", "indicator,unit,year,value,source\ny,u,2020,100,t\n")
    like = Likelihood(model, build_space(model, ["a"]), load_observations(data, model))
    sims, failed = like.simulate(model, np.array([[1.0], [-1.0], [0.5]]))   # LN(0): the second run fails
    ll = like.loglik(sims, failed)
    assert failed.tolist() == [False, True, False]
    assert np.isfinite(ll[[0, 2]]).all() and ll[1] == -np.inf


@pytest.mark.parametrize("row, mapping, message", [
    ("x,u,2016-2020,5,t", "", "measures this indicator as a level"),
    ("x,u,2020,-3,t", "", "is not positive"),
    ("x,u,20x0,3,t", "", "neither a year nor a period"),
    ("x,u,2020,3,t", 'sigma = -1\n', "sigma: must be a positive number"),
    ("x,u,2020,3,t", '[map]\nx = { expression = "x", measure = "share" }\n', "unknown measure 'share'"),
    ("x,u,2020,3,t", 'colour = 1\n', "unknown key"),
    ("w,u,2020,3,t", "", "unknown indicator(s) w"),
])
def test_bad_data_or_map_is_one_clear_error(tmp_path, row, mapping, message):
    model = load_model(_write(tmp_path / "g.toml", GROWTH), check_units=False)
    data = _write(tmp_path / "d.csv", f"indicator,unit,year,value,source\n{row}\n")
    dm = _write(tmp_path / "m.toml", mapping)
    with pytest.raises(ModelError) as exc:
        load_observations(data, model, read_data_map(dm))
    assert message in str(exc.value)
    assert str(tmp_path) in str(exc.value)


# ---------------------------------------------------------------------------- recovery
def _grid_quantiles(model, data: np.ndarray, years: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """The exact posterior's 5 % and 95 % quantiles and sd per constant, from a 51^3 grid (one batch run)."""
    axes = {"r": np.linspace(0.40, 0.50, 51), "K": np.linspace(135, 165, 51), "x0": np.linspace(10.5, 13.5, 51)}
    grid = dict(zip(axes, (a.ravel() for a in np.meshgrid(*axes.values(), indexing="ij")), strict=True))
    if not hasattr(_grid_quantiles, "sim"):
        res = model.run(params=grid, n=len(grid["r"]), variables=["x"], saveper=1)
        _grid_quantiles.sim = res["x"][:, [list(res.times).index(y) for y in years]]
    ll = -0.5 * (((np.log(data) - np.log(_grid_quantiles.sim)) / 0.02) ** 2).sum(axis=1)
    w = np.exp(ll - ll.max())
    w /= w.sum()
    out = {}
    for name, vals in grid.items():
        o = np.argsort(vals, kind="stable")
        c = np.cumsum(w[o])
        mean = float(w @ vals)
        out[name] = (vals[o][np.searchsorted(c, 0.05)], vals[o][np.searchsorted(c, 0.95)],
                     float(np.sqrt(w @ (vals - mean) ** 2)))
    return out


def test_recovery_of_known_constants(logistic, tmp_path):
    """20 seeded data sets (true r, K, x0 and 2 % log-normal noise).

    * Each posterior's 5 % and 95 % quantiles agree with the exact posterior's (a 51^3 grid)
      within 0.2 posterior sd plus the grid's step: the sampler is right, data set by data set.
    * The 90 % intervals cover the true constants: at least 17 of 20 per constant in the issue's
      words, but the EXACT posterior covers r in only 16 of these 20 seeds (K 17, x0 20), and a
      correct sampler falls under 17 of 20 for a constant with probability 13 %; so the bar is
      pooled: at least 51 of the 60 (constant, repeat) pairs (85 %), and 16 of 20 per constant.
    * Every interval is narrower than half of the constant's prior range.
    """
    ref = ModelRef(str(LOGISTIC))
    space = build_space(logistic, list(TRUE))
    steps = {"r": 0.1 / 50, "K": 30 / 50, "x0": 3 / 50}
    covered = {k: 0 for k in TRUE}
    width = {k: [] for k in TRUE}
    for seed in range(20):
        obs = load_observations(_synthetic(logistic, tmp_path, seed), logistic)
        exact = _grid_quantiles(logistic, obs[0].values, obs[0].end)
        post = sample_posterior(logistic, ref, Likelihood(logistic, space, obs), samples=800, seed=seed)
        for r in post.summary.itertuples():
            lo, hi, sd = exact[r.label]
            tol = 0.2 * sd + steps[r.label]
            assert abs(r.q05 - lo) < tol and abs(r.q95 - hi) < tol, (seed, r.label, r.q05, r.q95, lo, hi)
            covered[r.label] += r.q05 <= TRUE[r.label] <= r.q95
            width[r.label].append((r.q95 - r.q05) / (r.high - r.low))
    assert sum(covered.values()) >= 51 and min(covered.values()) >= 16, covered
    assert all(max(w) < 0.5 for w in width.values()), {k: max(w) for k, w in width.items()}


def test_same_seed_same_posterior(logistic, tmp_path):
    ref = ModelRef(str(LOGISTIC))
    obs = load_observations(_synthetic(logistic, tmp_path, 3), logistic)
    like = Likelihood(logistic, build_space(logistic, ["r", "K"]), obs)
    for kw in ({"sampler": "smc", "samples": 100}, {"sampler": "emcee", "samples": 200, "steps": 60, "walkers": 8}):
        a = sample_posterior(logistic, ref, like, seed=5, **kw)
        b = sample_posterior(logistic, ref, like, seed=5, **kw)
        c = sample_posterior(logistic, ref, like, seed=6, **kw)
        va, vb = a.idata.posterior["r"].values, b.idata.posterior["r"].values
        assert np.array_equal(va, vb) and not np.array_equal(va, c.idata.posterior["r"].values)


# ---------------------------------------------------------------------------- the file and its uses
@pytest.fixture(scope="module")
def posterior_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("post") / "logistic_posterior.nc"
    rc = main(["posterior", str(LOGISTIC), "--data", str(MODELS / "logistic_obs.csv"), "--map",
               str(MODELS / "logistic_map.toml"), "--params", "r,K,x0,split", "--samples", "600",
               "--seed", "2", "--out", str(out), "--plot", str(out.with_suffix(".png"))])
    assert rc == 0
    return out


def test_posterior_command_prints_and_writes(posterior_file, capsys):
    post = read_posterior(posterior_file)
    assert post.labels == ["r", "K", "x0", "split[a]", "split[b]"]
    assert post.values.shape[1] == 5 and post.values.shape[0] >= 500
    assert {"posterior", "posterior_predictive", "observed_data", "sample_stats"} <= set(post.idata.groups())
    assert post.idata.posterior["split"].dims == ("chain", "draw", "split_element")
    assert np.median(post.values[:, 0]) == pytest.approx(0.45, rel=0.03)     # the file's data: r = 0.45
    assert posterior_file.with_suffix(".png").stat().st_size > 10_000


def test_posterior_output_format(tmp_path, capsys):
    out = tmp_path / "p.nc"
    rc = main(["posterior", str(LOGISTIC), "--data", str(MODELS / "logistic_obs.csv"), "--params", "r,K",
               "--samples", "100", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    lines = stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("r = ") and "R-hat" in lines[0] and "ESS" in lines[0]
    lo, hi = (float(v) for v in lines[0].split("[")[1].split("]")[0].split(","))
    assert lo <= float(lines[0].split()[2]) <= hi
    assert "tempering [" in err and "wrote" in err and "using the mapping file" not in err


def test_bad_posterior_arguments(tmp_path, capsys):
    args = ["posterior", str(LOGISTIC), "--data", str(MODELS / "logistic_obs.csv"), "--params", "r"]
    assert main(args + ["--out", str(tmp_path / "p.csv")]) == 2
    assert "ending in .nc" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "p.nc"), "--sampler", "emcee", "--walkers", "3"]) == 2
    assert "--walkers must be even" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "p.nc"), "--replicas", "1"]) == 2
    assert "--replicas must be at least 2" in capsys.readouterr().err
    assert main(["ensemble", str(LOGISTIC), "--samples", "5", "--seed", "1", "--posterior",
                 str(tmp_path / "none.nc")]) == 2
    assert "posterior file not found" in capsys.readouterr().err
    junk = _write(tmp_path / "junk.nc", "not netcdf")
    assert main(["ensemble", str(LOGISTIC), "--samples", "5", "--seed", "1", "--posterior", str(junk)]) == 2
    assert "cannot read the posterior" in capsys.readouterr().err


def test_ensemble_draws_jointly_from_the_posterior(logistic, posterior_file, capsys):
    post = read_posterior(posterior_file)
    space = build_space(logistic, post.labels + ["cost_rate"])
    res = run_ensemble(logistic, ModelRef(str(LOGISTIC)), {"base": {}}, space, 400, 7, posterior=post)
    X = res.samples
    rows = {tuple(r) for r in np.round(post.values, 12)}
    assert all(tuple(r) in rows for r in np.round(X[:, :5], 12))          # whole draws, not mixed columns
    assert np.mean(X[:, 0]) == pytest.approx(np.mean(post.values[:, 0]), rel=0.01)
    lo, hi = space.bounds
    assert X[:, 5].min() >= lo[5] and X[:, 5].max() <= hi[5] and X[:, 5].std() > 0.02   # the prior's uniform
    rc = main(["ensemble", str(LOGISTIC), "--samples", "50", "--seed", "1", "--posterior", str(posterior_file),
               "--vars", "x", "--no-targets"])
    err = capsys.readouterr().err
    assert rc == 0 and "draws: POSTERIOR" in err
    assert main(["ensemble", str(LOGISTIC), "--samples", "50", "--seed", "1", "--prior", "--vars", "x",
                 "--no-targets"]) == 0
    assert "draws: PRIOR" in capsys.readouterr().err


def test_the_shipped_posterior_is_the_default(tmp_path, posterior_file, capsys):
    model = _write(tmp_path / "logistic.toml", LOGISTIC.read_text(encoding="utf-8"))
    (tmp_path / "logistic_posterior.nc").write_bytes(posterior_file.read_bytes())
    assert main(["ensemble", str(model), "--samples", "20", "--seed", "1", "--vars", "x", "--no-targets"]) == 0
    assert "shipped with the model" in capsys.readouterr().err
    out = tmp_path / "sc.csv"
    assert main(["scorecard", str(model), str(MODELS / "logistic_lever.toml"), "--targets",
                 str(MODELS / "logistic_targets.toml"), "--samples", "200", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert set(df["p_met_from"].dropna()) == {"posterior logistic_posterior.nc"}
    p = df.set_index("id")["p_met"]
    assert 0 <= p["01_level_2030"] <= 1 and math.isnan(p["04_not_modelled"])


def test_diff_uses_common_random_numbers(logistic, tmp_path):
    """With the same constants in both, a scenario minus itself is exactly zero, and the lever's effect
    has a narrower spread than the difference of two independent ensembles."""
    space = build_space(logistic, ["r", "K"])
    ref = ModelRef(str(LOGISTIC))
    same = run_ensemble(logistic, ref, {"lev": {"lever": 30.0}}, space, 300, 4, variables=["x"],
                        base=("lev", {"lever": 30.0}))
    pct = same.percentiles
    assert (pct[["p5", "p95"]].abs().to_numpy() == 0).all()
    assert set(pct["scenario"]) == {"lev-minus-lev"}
    eff = run_ensemble(logistic, ref, {"lev": {"lever": 30.0}}, space, 300, 4, variables=["x"],
                       base=("zero", {"lever": 0.0})).percentiles
    a = run_ensemble(logistic, ref, {"lev": {"lever": 30.0}}, space, 300, 4, variables=["x"]).percentiles
    b = run_ensemble(logistic, ref, {"zero": {"lever": 0.0}}, space, 300, 99, variables=["x"]).percentiles
    row = eff[np.isclose(eff["time"], 2030)].iloc[0]
    spread_indep = a[np.isclose(a["time"], 2030)].iloc[0]["p95"] - b[np.isclose(b["time"], 2030)].iloc[0]["p5"]
    assert 0 <= row["p5"] <= row["p95"] <= 30.0 + 1e-9
    assert row["p95"] - row["p5"] < spread_indep


def test_posterior_space_must_match_the_model(tmp_path, posterior_file, capsys):
    other = _write(tmp_path / "m.toml", LOGISTIC.read_text(encoding="utf-8").replace("[constants.x0]",
                                                                                       "[constants.x_start]")
                   .replace('initial = "x0"', 'initial = "x_start"'))
    rc = main(["ensemble", str(other), "--samples", "5", "--seed", "1", "--posterior", str(posterior_file),
               "--no-targets", "--vars", "x"])
    assert rc == 2
    assert "x0" in capsys.readouterr().err


def test_write_is_atomic(logistic, tmp_path):
    obs = load_observations(_synthetic(logistic, tmp_path, 1), logistic)
    post = sample_posterior(logistic, ModelRef(str(LOGISTIC)), Likelihood(logistic, build_space(logistic, ["r"]),
                            obs), samples=50, seed=1)
    with pytest.raises(EngineError, match="does not exist"):
        write_posterior(post, tmp_path / "no" / "p.nc")
    write_posterior(post, tmp_path / "p.nc")
    assert [p.name for p in tmp_path.glob("*.nc")] == ["p.nc"]
    from engine.analysis.posterior import plot_posterior

    plot_posterior(post, Likelihood(logistic, build_space(logistic, ["r"]), obs), tmp_path / "p.html")
    assert "plotly" in (tmp_path / "p.html").read_text(encoding="utf-8")[:5000].lower()


def test_calibrate_reads_a_data_map(tmp_path):
    """The likelihood's keys (scope, sigma, growth_sigma) and growth rows do not upset calibrate:
    it fits the levels and leaves the growth rates out."""
    from engine.analysis.calibration import load_data

    model = load_model(_write(tmp_path / "g.toml", GROWTH), check_units=False)
    data = _write(tmp_path / "d.csv", "indicator,unit,year,value,source\n"
                                      "x_growth,%/yr avg,2016-2020,5.0,t\nx,u,2020,128.4,t\n")
    dm = _write(tmp_path / "m.toml", 'sigma = 0.03\ngrowth_sigma = 0.5\n'
                                     '[map]\nx_growth = { expression = "x", measure = "growth" }\n')
    series = load_data(data, model, mapping=dm)
    assert [s.indicator for s in series] == ["x"]
