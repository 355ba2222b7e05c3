"""Global sensitivity: Sobol indices (first and total order) and Morris screening, via SALib.

The samples are drawn in the unit hypercube by SALib (with an explicit seed) and mapped
through each factor's distribution (:class:`engine.analysis.ensemble.Factor`: uniform over
the constant's range by default), then run in shards of one vectorised batch each,
in-process or over Dask. Outputs are expressions over the model's outputs (a name,
``name[element]`` or arithmetic), read in chosen years.
"""
from __future__ import annotations

import time as _time
import warnings
from dataclasses import dataclass
from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine.analysis.distributed import Executor, ModelRef, remember, shards
from engine.analysis.calibration import pyplot
from engine.analysis.ensemble import DEFAULT_CHUNK, Expr, ParamSpace, annual_saveper, check_columns, run_shard
from engine.errors import EngineError

METHODS = ("sobol", "morris")


@dataclass
class Sensitivity:
    method: str
    table: pd.DataFrame   # output, year, parameter, rank, and the indices
    runs: int
    seconds: float
    notes: list[str]


def _outputs(model, outputs: list[str]) -> list[Expr]:
    exprs = []
    for o in outputs:
        e = Expr(o, f"--outputs {o}")
        bad = check_columns(model, e)
        if bad:
            raise EngineError(f"--outputs {o}: {', '.join(bad)} is not an output of {model.model.file}"
                              + (" (a subscripted variable needs [element])" if any(
                                  model.rvars.get(b) is not None and model.rvars[b].dims for b in bad) else ""))
        exprs.append(e)
    if not exprs:
        raise EngineError("--outputs is empty: name at least one output")
    return exprs


def evaluate_batch(model, ref: ModelRef, space: ParamSpace, X: np.ndarray, exprs: list[Expr], years: list[float],
                   overrides: Mapping | None, executor: Executor, chunk: int) -> np.ndarray:
    """Run the (M, k) samples in shards; returns Y of shape (M, outputs, years)."""
    remember(ref, model)
    variables = sorted({v for e in exprs for v in e.variables})
    saveper = annual_saveper(model)
    pieces = shards(len(X), chunk)
    payloads = [{"params": space.to_params(X[a:b], overrides), "overrides": dict(overrides or {}),
                 "variables": variables, "saveper": saveper, "n": b - a} for a, b in pieces]
    Y = np.full((len(X), len(exprs), len(years)), np.nan)
    done = 0
    try:
        for i, r in executor.imap(run_shard, ref, payloads):
            a, b = pieces[i]
            times = r["times"]
            idx = []
            for y in years:
                hit = np.flatnonzero(np.isclose(times, y))
                if not len(hit):
                    raise EngineError(f"--years: {y:g} is not among the saved times {times[0]:g}-{times[-1]:g}")
                idx.append(hit[0])
            cols = r["columns"]

            def column(c: str, cols: dict = cols, idx: list = idx) -> np.ndarray:   # this shard's, bound now
                return cols[c][:, idx]

            for j, e in enumerate(exprs):
                Y[a:b, j, :] = np.broadcast_to(e.evaluate(column), (b - a, len(years)))
            done += 1
    except EngineError as exc:
        raise EngineError(f"stopped after {done} of {len(pieces)} shards: {exc}") from None
    return Y


def sensitivity(model, ref: ModelRef, space: ParamSpace, outputs: list[str], years: list[float] | None = None,
                method: str = "sobol", n: int = 1024, seed: int = 0, overrides: Mapping | None = None,
                executor: Executor | None = None, chunk: int = DEFAULT_CHUNK, levels: int = 4,
                resamples: int = 100) -> Sensitivity:
    """Sobol (n base samples: n (k + 2) runs) or Morris (n trajectories: n (k + 1) runs)."""
    t0 = _time.perf_counter()
    if method not in METHODS:
        raise EngineError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    if n < 1:
        raise EngineError(f"--samples must be at least 1, got {n}")
    exprs = _outputs(model, outputs)
    years = list(years) if years else [model.time.stop]
    k = len(space.factors)
    problem = {"num_vars": k, "names": space.labels, "bounds": [[0.0, 1.0]] * k}
    notes = []
    if method == "sobol":
        from SALib.sample import sobol as sobol_sample

        if n & (n - 1):
            notes.append(f"{n} base samples is not a power of 2; Sobol' sequences balance best at 2^m")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            U = sobol_sample.sample(problem, n, calc_second_order=False, seed=seed)
    else:
        from SALib.sample import morris as morris_sample

        U = morris_sample.sample(problem, n, num_levels=levels, seed=seed)
    X = np.column_stack([f.ppf(U[:, j]) for j, f in enumerate(space.factors)])
    Y = evaluate_batch(model, ref, space, X, exprs, years, overrides, executor or Executor(), chunk)
    rows = []
    for j, e in enumerate(exprs):
        for t, y in enumerate(years):
            v = Y[:, j, t]
            if not np.all(np.isfinite(v)):
                notes.append(f"{e.text} {y:g}: {int(np.sum(~np.isfinite(v)))} runs gave no finite value; skipped")
                continue
            if np.ptp(v) == 0:
                notes.append(f"{e.text} {y:g}: the output does not vary; every index is 0")
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                if method == "sobol":
                    from SALib.analyze import sobol as sobol_an

                    Si = sobol_an.analyze(problem, v, calc_second_order=False, num_resamples=resamples,
                                          seed=seed, print_to_console=False)
                    part = pd.DataFrame({"parameter": space.labels, "S1": Si["S1"], "S1_conf": Si["S1_conf"],
                                         "ST": Si["ST"], "ST_conf": Si["ST_conf"]}).sort_values("ST", ascending=False)
                else:
                    from SALib.analyze import morris as morris_an

                    Si = morris_an.analyze(problem, U, v, num_levels=levels, num_resamples=resamples, seed=seed,
                                           print_to_console=False)
                    part = pd.DataFrame({"parameter": space.labels, "mu_star": np.asarray(Si["mu_star"]),
                                         "mu_star_conf": np.asarray(Si["mu_star_conf"]),
                                         "mu": np.asarray(Si["mu"]), "sigma": np.asarray(Si["sigma"])}
                                        ).sort_values("mu_star", ascending=False)
            part.insert(0, "rank", np.arange(1, k + 1))
            part.insert(0, "year", y)
            part.insert(0, "output", e.text)
            rows.append(part)
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return Sensitivity(method, table, len(X), _time.perf_counter() - t0, notes)


def plot_sensitivity(result: Sensitivity, path, top: int = 15):
    """Horizontal bars per output and year: S1 and ST (Sobol) or mu* and sigma (Morris)."""
    from pathlib import Path

    path = Path(path)
    groups = list(result.table.groupby(["output", "year"], sort=False))
    a, b = ("S1", "ST") if result.method == "sobol" else ("mu_star", "sigma")
    if path.suffix.lower() == ".html":
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=len(groups), cols=1, subplot_titles=[f"{o} {y:g}" for (o, y), _ in groups])
        for i, (_, g) in enumerate(groups, start=1):
            g = g.head(top)[::-1]
            fig.add_trace(go.Bar(y=g["parameter"], x=g[a], name=a, orientation="h"), row=i, col=1)
            fig.add_trace(go.Bar(y=g["parameter"], x=g[b], name=b, orientation="h"), row=i, col=1)
        fig.update_layout(height=max(300, 30 * top) * len(groups), barmode="group")
        fig.write_html(str(path))
        return path
    plt = pyplot(path)
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, max(2.5, 0.3 * top) * len(groups)), squeeze=False)
    for ax, ((o, y), g) in zip(axes[:, 0], groups, strict=True):
        g = g.head(top)[::-1]
        pos = np.arange(len(g))
        ax.barh(pos - 0.2, g[a], height=0.4, label=a)
        ax.barh(pos + 0.2, g[b], height=0.4, label=b)
        ax.set_yticks(pos, g["parameter"], fontsize=7)
        ax.set_title(f"{o} in {y:g}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
