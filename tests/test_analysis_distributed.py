"""Dask: a local cluster gives exactly the in-process numbers; an unreachable scheduler is a clear error."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import load_model
from engine.analysis.calibration import calibrate, load_data
from engine.analysis.distributed import DaskExecutor, ModelRef, get_executor, shards
from engine.analysis.ensemble import build_space, read_ensemble, run_ensemble
from engine.analysis.sensitivity import sensitivity
from engine.cli import main
from engine.errors import EngineError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"
LOGISTIC = MODELS / "logistic.toml"


@pytest.fixture(scope="module")
def model():
    return load_model(LOGISTIC)


@pytest.fixture(scope="module")
def cluster():
    ex = DaskExecutor(workers=2)
    yield ex
    ex.close()


def test_shards():
    assert shards(10, 4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(EngineError):
        shards(10, 0)


def test_ensemble_on_local_cluster_equals_in_process(model, cluster, tmp_path):
    ref = ModelRef(str(LOGISTIC))
    space = build_space(model)
    scen = {"base": {}, "lever": {"lever": 20.0}}
    a = run_ensemble(model, ref, scen, space, 1000, 17, "sobol", chunk=150, out=tmp_path / "a.parquet")
    b = run_ensemble(model, ref, scen, space, 1000, 17, "sobol", chunk=150, executor=cluster,
                     out=tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(a.percentiles, b.percentiles, check_exact=True)
    da = read_ensemble(tmp_path / "a.parquet").sort_values(["scenario", "sample", "time"]).reset_index(drop=True)
    db = read_ensemble(tmp_path / "b.parquet").sort_values(["scenario", "sample", "time"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(da, db, check_exact=True)


def test_sobol_and_calibration_restarts_on_cluster(model, cluster):
    ref = ModelRef(str(LOGISTIC))
    space = build_space(model, ["r", "K", "x0"])
    a = sensitivity(model, ref, space, ["x"], [2030], "sobol", 128, seed=2, chunk=100)
    b = sensitivity(model, ref, space, ["x"], [2030], "sobol", 128, seed=2, chunk=100, executor=cluster)
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    series = load_data(MODELS / "logistic_obs.csv", model, mapping=MODELS / "logistic_map.toml")
    c1 = calibrate(model, ref, space.factors, series, restarts=3, seed=4)
    c2 = calibrate(model, ref, space.factors, series, restarts=3, seed=4, executor=cluster)
    assert np.array_equal(c1.estimates, c2.estimates)


def test_unreachable_scheduler_is_a_quick_clear_error():
    t0 = time.perf_counter()
    with pytest.raises(EngineError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        get_executor(scheduler="tcp://127.0.0.1:9", timeout=2)
    assert time.perf_counter() - t0 < 20
    with pytest.raises(EngineError, match="tcp://HOST:PORT"):
        get_executor(scheduler="localhost")
    with pytest.raises(EngineError, match="not both"):
        get_executor(workers=2, scheduler="tcp://127.0.0.1:9")


def test_cli_workers_and_bad_scheduler(tmp_path, capsys):
    args = ["ensemble", str(LOGISTIC), "--samples", "300", "--seed", "5", "--no-targets", "--chunk", "100"]
    assert main(args + ["--summary", str(tmp_path / "a.csv")]) == 0
    assert main(args + ["--summary", str(tmp_path / "b.csv"), "--workers", "2"]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    capsys.readouterr()
    rc = main(args + ["--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "2"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and "Traceback" not in err
    assert main(args + ["--workers", "0"]) != 0


def test_posterior_on_local_cluster_equals_in_process(model, cluster):
    """Each SMC step's batch cut in shards over 2 Dask workers: the same draws as in-process."""
    from engine.analysis.likelihood import Likelihood, load_observations, read_data_map
    from engine.analysis.posterior import sample_posterior

    obs = load_observations(MODELS / "logistic_obs.csv", model, read_data_map(MODELS / "logistic_map.toml"))
    like = Likelihood(model, build_space(model, ["r", "K"]), obs)
    ref = ModelRef(str(LOGISTIC))
    a = sample_posterior(model, ref, like, samples=80, seed=3)
    b = sample_posterior(model, ref, like, samples=80, seed=3, executor=cluster, chunk=25)
    assert np.array_equal(a.idata.posterior["r"].values, b.idata.posterior["r"].values)
    assert np.array_equal(a.idata.posterior["K"].values, b.idata.posterior["K"].values)
