"""Benchmarks of issue 5, section 7 (called from `make bench`; prints a markdown table).

    .venv/bin/python benchmarks/bench_analysis.py [--quick] [--out FILE.md]

Each case runs in its own subprocess, so that its peak memory (VmHWM / ru_maxrss: the
whole process, interpreter and imports included) is its own:

1. a 100 000-sample ensemble of the Linxiang model 2015-2035 (scenario plan, every
   constant with a range sampled, the headline outputs and the targets' variables saved,
   Parquet written by scenario): wall time and peak memory (targets: <= 30 s, <= 4 GB);
2. Sobol indices with 2^12 base samples over 20 constants (N (k + 2) = 90 112 runs);
3. a 10-constant calibration on synthetic data made by the model itself from known
   values (target <= 60 s), with the largest relative error of the estimates;
4. the ensemble of 1 on a 2-worker local Dask cluster, and its overhead against the
   in-process run as a ratio (with and without the cluster's start-up);
5. (issue 11) the posterior of `actual_trend` as `make posterior` computes it (every
   constant of role uncertain or calibrated, all of data/ through the data map, SMC with
   2 000 particles in 4 replicas): wall time, the largest R-hat and the smallest ESS
   (targets: <= 600 s, R-hat < 1.05, at least 15 constants);
6. (issue 11) an ensemble of 10 000 samples drawn from the shipped posterior
   (model/linxiang_posterior.nc; the posterior of case 5 when none is shipped), scenario
   actual_trend, headline outputs and the targets' probabilities (target: <= 30 s).

When model/linxiang.toml does not load, benchmarks/regional_economy.toml stands in
and the table says so. A case that fails is reported as failed with its error.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
LINXIANG = ROOT / "model" / "linxiang.toml"
PLAN = ROOT / "scenarios" / "plan.toml"
TARGETS = ROOT / "model" / "targets.toml"
REGIONAL = HERE / "regional_economy.toml"
CASE_TIMEOUT_S = 1200


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup():
    from engine import load_model
    from engine.analysis.distributed import ModelRef

    try:
        model = load_model(LINXIANG)
        scen = {}
        if PLAN.exists():
            from engine.scenarios import load_scenario

            scen = dict(load_scenario(PLAN, model).overrides)
        return model, ModelRef(str(LINXIANG)), {"plan": scen}, "linxiang", (TARGETS if TARGETS.exists() else None)
    except Exception as exc:  # noqa: BLE001 - fall back, and say so
        print(f"Linxiang model unavailable ({exc}); using regional_economy", file=sys.stderr)
        model = load_model(REGIONAL, check_units=False)
        return model, ModelRef(str(REGIONAL), False), {"base": {}}, "regional_economy (Linxiang unavailable)", None


def _ensemble(n: int, workers: int | None) -> dict:
    from engine.analysis.distributed import get_executor
    from engine.analysis.ensemble import build_space, load_targets, run_ensemble

    model, ref, scen, name, tpath = _setup()
    targets = load_targets(tpath, model)[0] if tpath else None
    space = build_space(model, exclude=set(next(iter(scen.values()))))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with get_executor(workers=workers) as ex:
            t1 = time.perf_counter()
            res = run_ensemble(model, ref, scen, space, n, 1, "random", targets=targets,
                               out=Path(tmp) / "ens.parquet", executor=ex, keep=False)
            t2 = time.perf_counter()
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*.parquet"))
    return {"model": name, "samples": n, "factors": len(space.factors), "seconds": t2 - t0,
            "run_seconds": t2 - t1, "startup_seconds": t1 - t0, "parquet_mb": size / 2**20,
            "failed_runs": sum(res.failed.values()), "columns": int(res.percentiles["variable"].nunique())}


def _sobol(base: int, k: int) -> dict:
    from engine.analysis.ensemble import build_space
    from engine.analysis.sensitivity import sensitivity

    model, ref, scen, name, _ = _setup()
    overrides = next(iter(scen.values()))
    labels = [f.name for f in build_space(model, exclude=set(overrides)).factors if f.index is None]
    labels = list(dict.fromkeys(labels))[:k]
    space = build_space(model, labels)
    out = "gdp_real" if "gdp_real" in model.rvars else "gdp"
    t0 = time.perf_counter()
    res = sensitivity(model, ref, space, [out], [2025.0], "sobol", base, seed=1, overrides=overrides)
    top = res.table.head(3)
    return {"model": name, "base": base, "factors": len(labels), "runs": res.runs,
            "seconds": time.perf_counter() - t0,
            "top": ", ".join(f"{r.parameter} ST={r.ST:.2f}" for r in top.itertuples())}


def _calibration(k: int) -> dict:
    import numpy as np

    from engine.analysis.calibration import Series, calibrate
    from engine.analysis.ensemble import Expr, build_space

    model, ref, scen, name, _ = _setup()
    overrides = next(iter(scen.values()))
    labels = [f.name for f in build_space(model, exclude=set(overrides)).factors if f.index is None]
    labels = list(dict.fromkeys(labels))
    outs = [o for o in ("gdp_real", "population_resident", "urbanization_rate", "energy_consumption",
                        "budget_revenue", "co2_emissions", "gdp", "total_population", "fiscal_revenue",
                        "government_debt", "energy_intensity") if o in model.rvars and not model.rvars[o].dims]
    # pick k constants the outputs respond to (a quick one-batch screen)
    space_all = build_space(model, labels)
    lo, hi = space_all.bounds
    x0 = np.clip(space_all.defaults(overrides), lo, hi)
    X = np.repeat(x0[None, :], len(labels) + 1, axis=0)
    step = 0.05 * (hi - lo)
    for j in range(len(labels)):
        X[j + 1, j] = x0[j] + step[j] if x0[j] + step[j] <= hi[j] else x0[j] - step[j]
    res = model.run(params={**space_all.to_params(X, overrides), **overrides}, variables=outs, saveper=1,
                    n=len(X))
    effect = np.zeros(len(labels))
    for o in outs:
        a = res[o]
        effect += np.nanmax(np.abs(a[1:] - a[0]) / (np.abs(a[0]) + 1e-12), axis=1)
    chosen = [labels[j] for j in np.argsort(-effect)[:k]]
    space = build_space(model, chosen)
    lo, hi = space.bounds
    base = np.clip(space.defaults(overrides), lo, hi)
    truth = base + 0.15 * (hi - lo) * np.where(base + 0.15 * (hi - lo) <= hi, 1, -1)
    sim = model.run(params={**space.to_params(truth[None, :], overrides), **overrides}, variables=outs, saveper=1,
                    n=1)
    years = sim.times[sim.times <= min(2030.0, sim.times[-1])]
    series = [Series(o, Expr(o), years, sim[o][0][: len(years)]) for o in outs]
    t0 = time.perf_counter()
    cal = calibrate(model, ref, space.factors, series, overrides)
    secs = time.perf_counter() - t0
    err = np.abs(cal.estimates - truth) / (hi - lo)
    return {"model": name, "constants": len(chosen), "series": len(series), "points": int(len(years) * len(series)),
            "seconds": secs, "runs": cal.runs, "max_error_pct_of_range": float(err.max() * 100),
            "cost": cal.cost}


def _posterior(samples: int, out: Path) -> dict:
    from engine import load_model
    from engine.analysis.distributed import ModelRef
    from engine.analysis.ensemble import build_space
    from engine.analysis.likelihood import Likelihood, load_observations, read_data_map
    from engine.analysis.posterior import default_params, sample_posterior, write_posterior
    from engine.scenarios import load_scenario

    model = load_model(LINXIANG)
    overrides = dict(load_scenario(ROOT / "scenarios" / "actual_trend.toml", model).overrides)
    obs = load_observations(ROOT / "data" / "linxiang_statistics.csv", model,
                            read_data_map(ROOT / "model" / "linxiang_data_map.toml"))
    space = build_space(model, default_params(model))
    t0 = time.perf_counter()
    post = sample_posterior(model, ModelRef(str(LINXIANG)), Likelihood(model, space, obs, overrides),
                            samples=samples, seed=1)
    secs = time.perf_counter() - t0
    write_posterior(post, out)
    sm = post.summary
    return {"model": "linxiang", "constants": len({f.name for f in space.factors}),
            "factors": len(space.factors), "rows": int(sum(len(o.end) for o in obs)), "samples": samples,
            "seconds": secs, "runs": post.runs, "max_rhat": float(sm["r_hat"].max()),
            "min_ess": float(sm["ess_bulk"].min()), "median_ess": float(sm["ess_bulk"].median())}


def _posterior_ensemble(n: int) -> dict:
    from engine import load_model
    from engine.analysis.distributed import ModelRef
    from engine.analysis.ensemble import run_ensemble
    from engine.analysis.posterior import posterior_space, read_posterior
    from engine.analysis.targets import load_targets
    from engine.scenarios import load_scenario

    shipped = ROOT / "model" / "linxiang_posterior.nc"
    path = shipped
    if not shipped.exists():
        path = Path(tempfile.mkdtemp()) / "posterior.nc"
        _posterior(400, path)
    model = load_model(LINXIANG)
    overrides = dict(load_scenario(ROOT / "scenarios" / "actual_trend.toml", model).overrides)
    targets = load_targets(TARGETS, model)[0] if TARGETS.exists() else None
    t0 = time.perf_counter()
    post = read_posterior(path)
    space = posterior_space(model, post)
    res = run_ensemble(model, ModelRef(str(LINXIANG)), {"actual_trend": overrides}, space, n, 1, targets=targets,
                       posterior=post, keep=False)
    return {"model": "linxiang", "samples": n, "factors": len(space.factors), "seconds": time.perf_counter() - t0,
            "source": "shipped" if path == shipped else "case 5's settings, 400 particles",
            "failed_runs": sum(res.failed.values())}


def case_main(case: str, quick: bool) -> None:
    n = 10_000 if quick else 100_000
    if case == "ensemble":
        out = _ensemble(n, None)
    elif case == "ensemble_dask":
        out = _ensemble(n, 2)
    elif case == "sobol":
        out = _sobol(2 ** 8 if quick else 2 ** 12, 20)
    elif case == "calibration":
        out = _calibration(10)
    elif case == "posterior":
        with tempfile.TemporaryDirectory() as tmp:
            out = _posterior(500 if quick else 2000, Path(tmp) / "posterior.nc")
    elif case == "posterior_ensemble":
        out = _posterior_ensemble(1000 if quick else 10_000)
    else:
        raise SystemExit(f"unknown case {case}")
    out["peak_mb"] = _peak_mb()
    print("RESULT " + json.dumps(out))


def run_case(case: str, quick: bool) -> dict:
    cmd = [sys.executable, __file__, "--case", case] + (["--quick"] if quick else [])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT_S, cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CASE_TIMEOUT_S} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 000 samples and 2^8 Sobol base samples")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--out", help="also write the table to this markdown file")
    args = ap.parse_args()
    if args.case:
        case_main(args.case, args.quick)
        return 0
    r = {c: run_case(c, args.quick) for c in ("ensemble", "sobol", "calibration", "ensemble_dask", "posterior",
                                              "posterior_ensemble")}

    def cell(d, key, fmt="{:.1f}"):
        return "failed: " + d["error"] if "error" in d else fmt.format(d[key])
    e, s, c, d = r["ensemble"], r["sobol"], r["calibration"], r["ensemble_dask"]
    lines = ["# Analysis benchmarks (issue 5, section 7)", "",
             f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
             f"model: {e.get('model', s.get('model', '?'))}" + (" (--quick)" if args.quick else ""), "",
             "| case | size | wall time (s) | peak memory (MB) | target | notes |",
             "|---|---|---|---|---|---|"]
    if "error" in e:
        lines.append(f"| ensemble, in-process | | {cell(e, 'seconds')} | | <= 30 s, <= 4096 MB | |")
    else:
        lines.append(f"| ensemble, in-process | {e['samples']} samples x {e['factors']} constants | "
                     f"{e['seconds']:.1f} | {e['peak_mb']:.0f} | <= 30 s, <= 4096 MB | "
                     f"{e['columns']} columns saved, Parquet {e['parquet_mb']:.0f} MB, "
                     f"{e['failed_runs']} failed runs |")
    if "error" in s:
        lines.append(f"| Sobol | | {cell(s, 'seconds')} | | | |")
    else:
        lines.append(f"| Sobol (first and total order) | 2^{int(s['base']).bit_length() - 1} x "
                     f"{s['factors']} constants "
                     f"= {s['runs']} runs | {s['seconds']:.1f} | {s['peak_mb']:.0f} | | top: {s['top']} |")
    if "error" in c:
        lines.append(f"| calibration | | {cell(c, 'seconds')} | | <= 60 s | |")
    else:
        lines.append(f"| calibration | {c['constants']} constants, {c['series']} series, {c['points']} points | "
                     f"{c['seconds']:.1f} | {c['peak_mb']:.0f} | <= 60 s | {c['runs']} runs; largest error "
                     f"{c['max_error_pct_of_range']:.2g}% of a range |")
    if "error" in d:
        lines.append(f"| ensemble, 2-worker Dask | | {cell(d, 'seconds')} | | | |")
    else:
        ratio = d["seconds"] / e["seconds"] if "error" not in e else float("nan")
        ratio_run = d["run_seconds"] / e["run_seconds"] if "error" not in e else float("nan")
        lines.append(f"| ensemble, 2-worker Dask LocalCluster | {d['samples']} samples | {d['seconds']:.1f} | "
                     f"{d['peak_mb']:.0f} (client) | ratio to in-process | {ratio:.2f}x with start-up "
                     f"({d['startup_seconds']:.1f} s), {ratio_run:.2f}x without |")
    po, pe = r["posterior"], r["posterior_ensemble"]
    if "error" in po:
        lines.append(f"| posterior of actual_trend (SMC) | | {cell(po, 'seconds')} | | <= 600 s, R-hat < 1.05 | |")
    else:
        lines.append(f"| posterior of actual_trend (SMC) | {po['constants']} constants ({po['factors']} factors), "
                     f"{po['rows']} data rows, {po['samples']} particles | {po['seconds']:.1f} | {po['peak_mb']:.0f} | "
                     f"<= 600 s, R-hat < 1.05 | largest R-hat {po['max_rhat']:.3f}, bulk ESS min {po['min_ess']:.0f} "
                     f"median {po['median_ess']:.0f}; {po['runs']} runs |")
    if "error" in pe:
        lines.append(f"| posterior ensemble | | {cell(pe, 'seconds')} | | <= 30 s | |")
    else:
        lines.append(f"| posterior ensemble (actual_trend) | {pe['samples']} samples x {pe['factors']} factors | "
                     f"{pe['seconds']:.1f} | {pe['peak_mb']:.0f} | <= 30 s | posterior: {pe['source']}; "
                     f"{pe['failed_runs']} failed runs |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
