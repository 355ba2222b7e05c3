"""The shipped posterior of the Linxiang model (model/linxiang_posterior.nc, `make posterior`):
ensembles drawn from it reproduce the 2023 bulletin and do not explode."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from engine import load_model
from engine.analysis.distributed import ModelRef
from engine.analysis.ensemble import run_ensemble
from engine.analysis.posterior import posterior_space, read_posterior
from engine.scenarios import load_scenario

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "model" / "linxiang.toml"
POSTERIOR = ROOT / "model" / "linxiang_posterior.nc"
DATA = ROOT / "data" / "linxiang_statistics.csv"
# bulletin indicator -> (model output, factor from the model's unit to the bulletin's)
CHECKED = {"gdp": ("gdp_nominal", 1.0), "resident_population": ("population_resident", 1.0),
           "urbanization_rate": ("urbanization_rate", 100.0), "general_budget_revenue": ("budget_revenue", 1.0)}


def _bulletin_2023() -> dict[str, float]:
    with DATA.open(encoding="utf-8") as fh:
        return {r["indicator"]: float(r["value"]) for r in csv.DictReader(fh)
                if r["scope"] == "linxiang" and r["year"] == "2023" and r["indicator"] in CHECKED}


@pytest.fixture(scope="module")
def ensemble():
    if not POSTERIOR.exists():
        pytest.fail("model/linxiang_posterior.nc is missing: the model ships it (regenerate with make posterior)")
    model = load_model(MODEL)
    post = read_posterior(POSTERIOR)
    space = posterior_space(model, post)
    overrides = dict(load_scenario(ROOT / "scenarios" / "actual_trend.toml", model).overrides)
    variables = sorted({v for v, _ in CHECKED.values()} | {"gdp_real"})
    res = run_ensemble(model, ModelRef(str(MODEL)), {"actual_trend": overrides}, space, 1000, 11,
                       variables=variables, posterior=post, keep=True)
    return model, post, res, variables


def test_posterior_matches_the_model(ensemble):
    _, post, _, _ = ensemble
    meta = post.meta
    assert meta.get("scenario", "").endswith("actual_trend.toml")
    assert len(post.labels) >= 15
    lo = np.array([f["low"] for f in post.factors])
    hi = np.array([f["high"] for f in post.factors])
    assert (post.values >= lo - 1e-12).all() and (post.values <= hi + 1e-12).all()


def test_posterior_ensemble_reproduces_2023(ensemble):
    """At least 90 % of the samples reproduce each of the 2023 bulletin's GDP, resident population,
    urbanization and budget revenue within 3 %; none explodes (finite, real GDP 2035 under 5x 2020)."""
    model, post, res, variables = ensemble
    # the per-sample paths: re-run the same draws (the ensemble keeps only percentiles)
    X = res.samples
    space = posterior_space(model, post)
    overrides = dict(load_scenario(ROOT / "scenarios" / "actual_trend.toml", model).overrides)
    params = space.to_params(X, overrides)
    runs = model.run(params={**overrides, **params}, n=len(X), variables=variables, saveper=1, throw=False)
    assert runs.ok.all(), runs.failures[:3]
    t = list(runs.times)
    actual = _bulletin_2023()
    share = {}
    for ind, (var, factor) in CHECKED.items():
        sim = runs[var][:, t.index(2023.0)] * factor
        share[ind] = float(np.mean(np.abs(sim / actual[ind] - 1) <= 0.03))
    g = runs["gdp_real"]
    ratio = g[:, t.index(2035.0)] / g[:, t.index(2020.0)]
    print("share within 3 %:", share, "largest real GDP 2035/2020:", ratio.max())
    assert all(s >= 0.9 for s in share.values()), share
    assert np.isfinite(g).all() and ratio.max() < 5.0, ratio.max()
