"""Calibration: fit chosen constants to actual series with scipy.optimize.least_squares.

* :func:`load_data`: the long CSV of published numbers (``indicator, unit, year, value,
  source``; an optional ``scope`` column), checked row by row: missing or non-numeric
  years and values, unknown indicators, duplicate (indicator, year) rows and years
  outside the model's time are errors naming the file and row. An indicator named like
  a model output needs no mapping; others are mapped by a small TOML file::

      ignore = ["gdp_growth_real"]           # rows of these indicators are skipped
      [map]
      gdp = "gdp_nominal"                     # indicator = expression over model outputs
      share_primary = "industry_share[primary] * 100"

* :func:`calibrate`: the residuals of every series (each scaled by its mean and weighted,
  so that series in different units count alike) are minimised within the constants'
  ranges; the Jacobian's finite differences are one batch run of k+1 runs. Restarts
  (``restarts > 1``: extra start points drawn by Latin hypercube from ``seed``) are
  independent fits, sharded over the executor (in-process or Dask).
* The result carries estimates with 95% confidence intervals (from the Jacobian at the
  optimum), per-series MAPE, RMSE, R^2 and Theil's U_M, U_S, U_C over the fit period
  and, with ``until``, over the forecast period (a backtest); it writes a calibrated
  scenario file and a plot of actual against simulated.
"""
from __future__ import annotations

import math
import re
import os
import tempfile
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine.analysis.distributed import Executor, ModelRef, remember
from engine.analysis.ensemble import (Expr, Factor, ParamSpace, annual_saveper, check_columns, output_columns,
                                      run_batch, uniforms)
from engine.parse.toml_file import read_toml
from engine.errors import EngineError, ModelError, Problem

REQUIRED = ("indicator", "year", "value")

# Units a statistics file uses that a model seldom declares; the model's own [units] win. A data unit is
# compared with the unit of the model variable it is fitted to: the same dimension is converted (kt -> t,
# 亿元 -> 1e8 yuan, % -> a fraction), another dimension ("banana" against t) is refused.
DATA_UNITS = {
    "%": "0.01", "percent": "0.01", "‰": "0.001",
    "kg": "1e-3 t", "kt": "1e3 t", "Mt": "1e6 t", "Gt": "1e9 t", "吨": "t", "万吨": "1e4 t", "亿吨": "1e8 t",
    "元": "yuan", "万元": "1e4 yuan", "亿元": "1e8 yuan",
    "人": "person", "万人": "1e4 person",
}
_PLAIN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\[[^\]]*\])?\s*")


@dataclass
class Series:
    """One observed indicator and the model expression that measures it."""

    indicator: str
    expr: Expr
    years: np.ndarray
    values: np.ndarray
    unit: str = ""
    weight: float = 1.0


# ---------------------------------------------------------------------------- data
def _read_mapping(path: str | Path | None) -> tuple[dict[str, str], set[str]]:
    if not path:
        return {}, set()
    path = Path(path)
    data = read_toml(path, "mapping file")
    problems = []
    for key in data:
        # scope, sigma, growth_sigma: the likelihood's keys (lxsd posterior's data map), not used here
        if key not in ("map", "ignore", "scope", "sigma", "growth_sigma"):
            problems.append(Problem(str(path), key, "unknown key", "`ignore = [...]` and a [map] table"))
    mapping = {}
    growth = []
    for ind, spec in (data.get("map") or {}).items():
        if isinstance(spec, str):
            mapping[ind] = spec
        elif isinstance(spec, dict) and spec.get("measure", "level") != "level":
            growth.append(ind)  # a growth rate: the least-squares fit compares levels only
        elif isinstance(spec, dict) and isinstance(spec.get("expression"), str):
            mapping[ind] = spec["expression"]
        else:
            problems.append(Problem(str(path), f"map.{ind}", "must be an expression (text)",
                                    'e.g. gdp = "gdp_nominal"'))
    ignore = data.get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(i, str) for i in ignore):
        problems.append(Problem(str(path), "ignore", "must be a list of indicator names"))
        ignore = []
    if problems:
        raise ModelError(problems)
    return mapping, set(ignore) | set(growth)


def unmapped_indicators(path: str | Path, model) -> list[str]:
    """Indicators of a data file that are not outputs of ``model`` (empty if the file cannot be
    read: :func:`load_data` then says why)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")  # a BOM is accepted
    except Exception:  # noqa: BLE001 - load_data reports the problem
        return []
    df.columns = [c.strip() for c in df.columns]
    if "indicator" not in df.columns:
        return []
    out = []
    for ind in dict.fromkeys(df["indicator"]):
        try:
            if ind.strip() and check_columns(model, Expr(ind)):
                out.append(ind)
        except EngineError:
            out.append(ind)
    return out


def find_mapping(data: str | Path, model_file: str | Path) -> Path | None:
    """A mapping file beside the data: ``<data stem>_map.toml``, else ``<model stem>_map.toml``."""
    data = Path(data)
    for stem in (data.stem, Path(model_file).stem):
        cand = data.with_name(f"{stem}_map.toml")
        if cand.is_file():
            return cand
    return None


def load_data(path: str | Path, model, mapping: str | Path | None = None, scope: str | None = None,
              indicators: list[str] | None = None, weights: Mapping[str, float] | None = None) -> list[Series]:
    """Read and check the actual data; one :class:`Series` per indicator (see the module doc).

    Values come back in the unit of the model variable each indicator is fitted to (see
    :func:`unit_factor`)."""
    file = str(path)
    df = _read_frame(Path(path), scope, indicators)
    mapmap, ignore = _read_mapping(mapping)
    df = df[~df["indicator"].isin(ignore)]
    problems: list[Problem] = []
    exprs = _expressions(df, model, file, mapping, mapmap, problems)
    rows, units = _rows(df, model, file, exprs, problems)
    weights = dict(weights or {})
    bad_w = [w for w in weights if w not in exprs]
    if bad_w:
        problems.append(Problem(file, "--weights", f"no series named {', '.join(bad_w)}",
                                f"series: {', '.join(exprs)}"))
    if problems:
        raise ModelError(problems)
    if not rows:
        raise ModelError(Problem(file, None, "no usable rows: nothing to fit"))
    out = []
    for ind, pts in rows.items():
        pts.sort()
        factor, unit, why = unit_factor(model, exprs[ind].text, units.get(ind, ""))
        if why:
            problems.append(Problem(file, ind, why, "correct the unit column, or map the indicator to an expression "
                                                    "in the model's unit in a mapping file (--map)"))
            continue
        out.append(Series(ind, exprs[ind], np.array([p[0] for p in pts]), np.array([p[1] for p in pts]) * factor,
                          unit, float(weights.get(ind, 1.0))))
    if problems:
        raise ModelError(problems)
    return out




def pyplot(path: str | Path):
    """matplotlib.pyplot on the Agg backend (files only, no screen), or an error naming the plot file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EngineError(f"{path}: matplotlib is not installed; write the plot as .html instead") from None
    return plt


def select_scope(df: pd.DataFrame, file: str, scope: str | None, hint: str, strict: bool) -> pd.DataFrame:
    """The rows of one scope (linxiang, yueyang, ...) of a long-format data file; an error names the file
    when the scope is absent, or when the file mixes scopes and none is chosen (``hint`` says how). With
    ``strict``, a scope asked of a file without a scope column is an error too."""
    if "scope" in df.columns:
        scopes = sorted(set(df["scope"]))
        if scope is not None:
            if scope not in scopes:
                raise ModelError(Problem(file, "scope", f"no rows of scope {scope!r}", f"scopes: {', '.join(scopes)}"))
            return df[df["scope"] == scope]
        if len(scopes) > 1:
            raise ModelError(Problem(file, "scope", f"the file mixes scopes {', '.join(scopes)}", hint))
    elif scope is not None and strict:
        raise ModelError(Problem(file, "scope", "--scope given but the file has no scope column"))
    return df


def _read_frame(path: Path, scope: str | None, indicators: list[str] | None) -> pd.DataFrame:
    """The CSV's rows of the scope and indicators asked for, with their line numbers in ``_row``."""
    file = str(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")  # a BOM is accepted
    except FileNotFoundError:
        raise ModelError(Problem(file, None, "data file not found")) from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ModelError(Problem(file, None, f"cannot read the CSV: {exc}")) from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ModelError(Problem(file, None, f"missing column(s) {', '.join(missing)}",
                                 "the long format: indicator, unit, year, value, source"))
    df["_row"] = np.arange(len(df)) + 2  # the CSV line (the header is line 1)
    df = select_scope(df, file, scope, "choose one with --scope", strict=True)
    if indicators is not None:
        present = set(df["indicator"])
        absent = [i for i in indicators if i not in present]
        if absent:
            raise ModelError(Problem(file, None, f"no rows for indicator(s) {', '.join(absent)}",
                                     f"indicators in the file: {', '.join(sorted(present))}"))
        df = df[df["indicator"].isin(indicators)]
    return df


def _expressions(df: pd.DataFrame, model, file: str, mapping, mapmap: dict[str, str],
                 problems: list[Problem]) -> dict[str, Expr]:
    """Indicator -> the model expression it is fitted to (its mapping, or an output of the same name)."""
    exprs: dict[str, Expr] = {}
    unknown = []
    for ind in dict.fromkeys(df["indicator"]):
        if not ind.strip():
            problems.append(Problem(file, "indicator", "empty indicator name on row(s) " +
                                    ", ".join(str(r) for r in df.loc[df["indicator"] == ind, "_row"])))
            continue
        text = mapmap.get(ind, ind)
        try:
            expr = Expr(text, f"{mapping or file}: {ind}")
        except EngineError as exc:
            problems.append(Problem(str(mapping or file), ind, str(exc)))
            continue
        bad = check_columns(model, expr)
        if bad:
            if ind in mapmap:
                problems.append(Problem(str(mapping), f"map.{ind}", f"{', '.join(bad)} is not an output of the model"))
            else:
                unknown.append(ind)
            continue
        exprs[ind] = expr
    if unknown:
        problems.append(Problem(file, "indicator", f"unknown indicator(s) {', '.join(unknown)}: not an output of "
                                f"the model and not in the mapping file",
                                "map them in a mapping file ([map] NAME = \"expression\"), list them under "
                                "`ignore`, or choose indicators with --indicators"))
    return exprs


def _rows(df: pd.DataFrame, model, file: str, exprs: dict[str, Expr],
          problems: list[Problem]) -> tuple[dict[str, list[tuple[float, float]]], dict[str, str]]:
    """(indicator -> [(year, value)], indicator -> unit) from the usable rows; problems for the others."""
    ts = model.time
    seen: dict[tuple[str, float], int] = {}
    rows: dict[str, list[tuple[float, float]]] = {}
    units: dict[str, str] = {}
    for r in df.to_dict("records"):
        ind, row = r["indicator"], r["_row"]
        if ind not in exprs:
            continue
        ytxt, vtxt = r["year"].strip(), r["value"].strip()
        if not ytxt:
            problems.append(Problem(file, f"row {row}", f"{ind}: the year is missing"))
            continue
        try:
            year = float(ytxt)
            if not math.isfinite(year):
                raise ValueError
        except ValueError:
            problems.append(Problem(file, f"row {row}", f"{ind}: year {ytxt!r} is not a number",
                                    "one row per year, e.g. 2023"))
            continue
        if not vtxt:
            problems.append(Problem(file, f"row {row}", f"{ind} {ytxt}: the value is missing"))
            continue
        try:
            value = float(vtxt.replace(",", ""))
            if not math.isfinite(value):
                raise ValueError
        except ValueError:
            problems.append(Problem(file, f"row {row}", f"{ind} {ytxt}: value {vtxt!r} is not a number"))
            continue
        if not (ts.start - 1e-9 <= year <= ts.stop + 1e-9):
            problems.append(Problem(file, f"row {row}", f"{ind}: year {year:g} is outside the model's time "
                                    f"{ts.start:g}-{ts.stop:g}"))
            continue
        key = (ind, year)
        if key in seen:
            problems.append(Problem(file, f"row {row}", f"duplicate row: {ind} {year:g} is also on row {seen[key]}",
                                    "keep one row per indicator and year"))
            continue
        seen[key] = row
        rows.setdefault(ind, []).append((year, value))
        unit = str(r.get("unit", "")).strip()
        if units.setdefault(ind, unit) != unit:
            problems.append(Problem(file, f"row {row}", f"{ind}: unit {unit!r} differs from {units[ind]!r} on the "
                                    f"indicator's earlier rows", "give every row of an indicator the same unit"))
    return rows, units


def unit_factor(model, expr_text: str, data_unit: str) -> tuple[float, str, str | None]:
    """(factor, unit, problem): data values times ``factor`` are in the model's unit ``unit``.

    Checked only when both sides say something: the data's unit column is not empty and the indicator is
    fitted to one model variable that declares a unit. An expression (``x * 100``) is taken as written,
    its unit not inferred: the mapping file converts it. ``problem`` says why the units cannot agree.
    """
    from engine.resolve.units import UnitError, UnitParser

    m = _PLAIN.fullmatch(expr_text)
    var = model.model.variables.get(m.group(1)) if m else None
    model_unit = (var.unit or "").strip() if var is not None else ""
    if not data_unit or not model_unit:
        return 1.0, data_unit or model_unit, None
    aliases = {**DATA_UNITS, **model.model.unit_aliases}
    try:
        have = UnitParser(aliases).parse(data_unit)
    except UnitError as exc:
        return 1.0, data_unit, f"cannot read the data's unit {data_unit!r}: {exc}"
    try:
        want = UnitParser(aliases).parse(model_unit)
    except UnitError:
        return 1.0, data_unit, None   # the model's own unit check reports it
    if have.powers != want.powers:
        # statistics give a year's flow without "/year" (GDP in 亿元): read it as per the model's time unit
        per_time = have / UnitParser(aliases).parse(model.model.time.unit or "year")
        if per_time.powers == want.powers and (model.model.time.unit or "year").lower() in ("year", "years"):
            return per_time.scale / want.scale, model_unit, None
        return 1.0, data_unit, (f"the data's unit {data_unit!r} ({have}) cannot be converted to "
                                f"{expr_text.strip()}'s unit {model_unit!r} ({want})")
    return have.scale / want.scale, model_unit, None


def parse_weights(text: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            w = float(value)
        except ValueError:
            w = float("nan")
        if not sep or not math.isfinite(w) or w < 0:
            raise EngineError(f"--weights {item!r}: expected INDICATOR=NUMBER (>= 0)")
        out[name.strip()] = w
    return out


# ---------------------------------------------------------------------------- simulation
def values_at(times: np.ndarray, arr: np.ndarray, years: np.ndarray) -> np.ndarray:
    """(B, T) -> (B, len(years)), linear in time between saved points."""
    idx = np.clip(np.searchsorted(times, years, side="right") - 1, 0, len(times) - 2) if len(times) > 1 else \
        np.zeros(len(years), dtype=int)
    if len(times) == 1:
        return arr[:, idx]
    t0, t1 = times[idx], times[idx + 1]
    w = np.clip((years - t0) / (t1 - t0), 0.0, 1.0)
    return arr[:, idx] * (1 - w) + arr[:, idx + 1] * w


class Fit:
    """The fit: data, parameters and how a batch of parameter vectors becomes residuals."""

    def __init__(self, model, factors: list[Factor], series: list[Series], overrides: Mapping | None = None,
                 until: float | None = None) -> None:
        self.model = model
        self.space = ParamSpace(model, factors)
        self.series = series
        self.overrides = dict(overrides or {})
        self.until = until
        self.variables = sorted({v for s in series for v in s.expr.variables})
        ts = model.time
        last = max(float(s.years.max()) for s in series)
        steps = math.ceil((last - ts.start) / ts.dt - 1e-9)
        self.stop = min(ts.stop, ts.start + steps * ts.dt)
        sp = annual_saveper(model)
        # saveper must divide the span; otherwise save every dt
        span = self.stop - ts.start
        self.saveper = sp if abs(span / sp - round(span / sp)) < 1e-9 else ts.dt
        lo, hi = self.space.bounds
        self.lo, self.width = lo, np.where(hi > lo, hi - lo, 1.0)
        self.fit_mask = [np.ones(len(s.years), bool) if until is None else s.years <= until for s in series]
        self.scale = []
        for s, m in zip(series, self.fit_mask, strict=True):
            obs = s.values[m] if m.any() else s.values
            sc = float(np.mean(np.abs(obs))) if len(obs) else 1.0
            self.scale.append(sc if sc > 0 else 1.0)
        self.n_fit = int(sum(m.sum() for m in self.fit_mask))
        if self.n_fit == 0:
            raise EngineError(f"no data at or before --until {until:g}: nothing to fit")
        self.runs = 0
        self.batches = 0

    def x_of(self, z: np.ndarray) -> np.ndarray:
        return self.lo + np.asarray(z) * self.width

    def z_of(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x) - self.lo) / self.width

    def simulate(self, X: np.ndarray) -> list[np.ndarray]:
        """(B, k) parameter vectors -> per series (B, len(years)) simulated values; one batch run."""
        X = np.atleast_2d(X)
        params = self.space.to_params(X, self.overrides)
        times, cols, failed = run_batch(self.model, params, self.overrides, X.shape[0], self.variables,
                                        stop=self.stop, saveper=self.saveper)
        self.runs += X.shape[0]
        self.batches += 1  # a failed run's values are NaN: its residuals become large (see residuals())
        out = []
        for s in self.series:
            def column(c: str, years: np.ndarray = s.years) -> np.ndarray:
                return values_at(times, cols[c], years)
            sim = s.expr.evaluate(column)
            out.append(np.broadcast_to(sim, (X.shape[0], len(s.years))))
        return out

    def residuals(self, sims: list[np.ndarray]) -> np.ndarray:
        """(B, m) weighted, scaled residuals over the fit rows."""
        parts = []
        for s, sim, m, sc in zip(self.series, sims, self.fit_mask, self.scale, strict=True):
            if not m.any():
                continue
            f = math.sqrt(s.weight / m.sum()) / sc
            parts.append((sim[:, m] - s.values[m]) * f)
        r = np.concatenate(parts, axis=1)
        return np.where(np.isfinite(r), r, 1e6)

    def fit_once(self, z0: np.ndarray, h: float = 1e-6, max_nfev: int | None = None):
        from scipy.optimize import least_squares

        cache: dict[bytes, np.ndarray] = {}

        def fun(z):
            key = np.asarray(z, float).tobytes()
            if key not in cache:
                cache[key] = self.residuals(self.simulate(self.x_of(z)[None, :]))[0]
            return cache[key]

        def jac(z):
            z = np.asarray(z, float)
            k = len(z)
            steps = np.where(z + h <= 1.0, h, -h)
            Z = np.repeat(z[None, :], k + 1, axis=0)
            Z[np.arange(1, k + 1), np.arange(k)] += steps
            R = self.residuals(self.simulate(self.x_of(Z)))  # ONE batch: centre + k perturbed runs
            cache[z.tobytes()] = R[0]
            return ((R[1:] - R[0]) / steps[:, None]).T

        z0 = np.clip(np.asarray(z0, float), 0.0, 1.0)
        sol = least_squares(fun, z0, jac=jac, bounds=(0.0, 1.0), method="trf", x_scale=1.0,
                            max_nfev=max_nfev or 100 * (len(z0) + 1), xtol=1e-10, ftol=1e-10, gtol=1e-10)
        return sol


def fit_restart(ref: ModelRef, payload: dict) -> dict:
    """One least-squares fit from one start point (runs on a worker or in-process)."""
    model = ref.load()
    prob = Fit(model, payload["factors"], payload["series"], payload["overrides"], payload["until"])
    try:
        sol = prob.fit_once(payload["z0"])
    except EngineError as exc:
        return {"error": str(exc), "z0": payload["z0"]}
    return {"z": sol.x, "cost": float(sol.cost), "nfev": int(sol.nfev), "status": int(sol.status),
            "message": str(sol.message), "runs": prob.runs, "batches": prob.batches, "z0": payload["z0"]}


# ---------------------------------------------------------------------------- statistics
def fit_stats(actual: np.ndarray, sim: np.ndarray) -> dict[str, float]:
    """MAPE (%), RMSE, R^2 and Theil's U_M, U_S, U_C (shares of the MSE; they sum to 1)."""
    a, s = np.asarray(actual, float), np.asarray(sim, float)
    n = len(a)
    if n == 0:
        return {k: float("nan") for k in ("n", "mape", "rmse", "r2", "u_m", "u_s", "u_c")}
    err = s - a
    mse = float(np.mean(err ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = float(np.mean(np.abs(err / a)) * 100) if np.all(a != 0) else float("nan")
    ss_tot = float(np.sum((a - a.mean()) ** 2))
    r2 = 1 - float(np.sum(err ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    sa, ss = float(a.std()), float(s.std())
    if mse > 0:
        um = (s.mean() - a.mean()) ** 2 / mse
        us = (ss - sa) ** 2 / mse
        r = float(np.corrcoef(a, s)[0, 1]) if sa > 0 and ss > 0 else 0.0
        uc = 2 * (1 - r) * ss * sa / mse
    else:
        um = us = uc = 0.0
    return {"n": n, "mape": mape, "rmse": math.sqrt(mse), "r2": r2, "u_m": float(um), "u_s": float(us),
            "u_c": float(uc)}


@dataclass
class Calibration:
    """The result of :func:`calibrate`."""

    labels: list[str]
    estimates: np.ndarray
    low: np.ndarray
    high: np.ndarray
    stderr: np.ndarray
    bounds: tuple[np.ndarray, np.ndarray]
    stats: pd.DataFrame            # indicator, period (fit/forecast), n, mape, rmse, r2, u_m, u_s, u_c
    fitted: list[tuple[Series, np.ndarray]]  # each series and the simulated values at its years
    settings: dict[str, object]    # scenario-file settings of the estimates
    cost: float
    restarts: list[dict | None] = field(default_factory=list)   # None: a restart that did not finish
    runs: int = 0
    seconds: float = 0.0
    until: float | None = None
    notes: list[str] = field(default_factory=list)
    factors: list[Factor] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = []
        for lab, v, lo, hi in zip(self.labels, self.estimates, self.low, self.high, strict=True):
            out.append(f"{lab} = {v:.6g} [{lo:.6g}, {hi:.6g}]")
        return out


def calibrate(model, ref: ModelRef, factors: list[Factor], series: list[Series], overrides: Mapping | None = None,
              until: float | None = None, restarts: int = 1, seed: int = 0,
              executor: Executor | None = None, progress=None) -> Calibration:
    """Fit ``factors`` to ``series``; see the module doc. Restarts are sharded over ``executor``."""
    from scipy import stats as sstats

    t0 = _time.perf_counter()
    if restarts < 1:
        raise EngineError(f"--restarts must be at least 1, got {restarts}")
    remember(ref, model)
    prob = Fit(model, factors, series, overrides, until)
    k = len(factors)
    starts = [np.clip(prob.z_of(prob.space.defaults(overrides)), 0.0, 1.0)]
    if restarts > 1:
        starts += list(uniforms(restarts - 1, k, seed, "lhs"))
    payloads = [{"factors": factors, "series": series, "overrides": dict(overrides or {}), "until": until,
                 "z0": z0} for z0 in starts]
    executor = executor or Executor()
    results: list[dict | None] = [None] * len(payloads)
    notes = []
    try:
        for i, r in executor.imap(fit_restart, ref, payloads):
            results[i] = r
            if progress:
                progress(f"restart {i + 1}/{len(payloads)}: " + (f"cost {r['cost']:.6g}" if "cost" in r
                                                                  else f"failed: {r['error']}"))
    except (EngineError, KeyboardInterrupt) as exc:
        done = [r for r in results if r and "cost" in r]
        if not done:
            raise
        notes.append(f"stopped after {len(done)} of {len(payloads)} restarts ({exc}); the best so far is reported")
    ok = [r for r in results if r and "cost" in r]
    if not ok:
        errs = "; ".join(r["error"] for r in results if r and "error" in r)
        raise EngineError(f"every fit failed: {errs}")
    best = min(ok, key=lambda r: r["cost"])
    z = best["z"]
    # Jacobian at the optimum, one batch, in the constants' own units
    h = 1e-6
    steps = np.where(z + h <= 1.0, h, -h)
    Z = np.repeat(z[None, :], k + 1, axis=0)
    Z[np.arange(1, k + 1), np.arange(k)] += steps
    sims = prob.simulate(prob.x_of(Z))
    R = prob.residuals(sims)
    J = ((R[1:] - R[0]) / (steps[:, None] * prob.width[:, None])).T  # d r / d x
    m = R.shape[1]
    x = prob.x_of(z)
    dof = m - k
    if dof > 0:
        s2 = float(R[0] @ R[0]) / dof
        cov = s2 * np.linalg.pinv(J.T @ J)
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
        tq = float(sstats.t.ppf(0.975, dof))
        low, high = x - tq * se, x + tq * se
        unid = np.flatnonzero(np.all(np.abs(J) < 1e-12, axis=0))
        for j in unid:
            se[j] = low[j] = high[j] = float("nan")
        if len(unid):
            notes.append("no data responds to " + ", ".join(prob.space.labels[j] for j in unid)
                         + ": its interval is undefined")
    else:
        se = low = high = np.full(k, float("nan"))
        notes.append(f"{m} data points for {k} parameters: too few for confidence intervals (nan)")
    at_bound = [prob.space.labels[j] for j in range(k) if z[j] <= 1e-6 or z[j] >= 1 - 1e-6]
    if at_bound:
        notes.append("at the edge of its range (the range may be too narrow): " + ", ".join(at_bound))
    rows = []
    fitted = []
    centre = [s_[0] for s_ in sims]
    for s, sim, mask in zip(series, centre, prob.fit_mask, strict=True):
        fitted.append((s, sim))
        rows.append({"indicator": s.indicator, "period": "fit", **fit_stats(s.values[mask], sim[mask])})
        if until is not None and (~mask).any():
            rows.append({"indicator": s.indicator, "period": "forecast", **fit_stats(s.values[~mask], sim[~mask])})
    runs = prob.runs + sum(r.get("runs", 0) for r in ok)
    return Calibration(prob.space.labels, x, np.asarray(low), np.asarray(high), np.asarray(se), prob.space.bounds,
                       pd.DataFrame(rows), fitted, prob.space.as_settings(x, overrides), best["cost"], results,
                       runs, _time.perf_counter() - t0, until, notes, list(factors), dict(overrides or {}))


# ---------------------------------------------------------------------------- outputs
def scenario_text(cal: Calibration, name: str, model_file: str, data_file: str, base: str | None = None,
                  extra: Mapping | None = None) -> str:
    """The calibrated scenario as TOML text (docs/model-format.md's scenario format)."""
    import tomli_w

    est = "; ".join(cal.lines())
    doc = (f"Calibrated by `lxsd calibrate {model_file} --data {data_file}`"
           + (f" --until {cal.until:g}" if cal.until is not None else "")
           + f" on {_time.strftime('%Y-%m-%d')}: {est}. Fit: "
           + "; ".join(f"{r.indicator} MAPE {r.mape:.3g}% R2 {r.r2:.3g}" for r in cal.stats.itertuples()
                       if r.period == "fit"))
    meta = {"name": name, "label_zh": f"校准情景（{name}）", "label_en": f"Calibrated ({name})", "doc": doc}
    if base:
        meta["base"] = base
    settings = dict(extra or {})
    settings.update(cal.settings)
    head = "# Written by `lxsd calibrate`; the estimates and their 95% intervals:\n" \
        + "".join(f"#   {line}\n" for line in cal.lines())
    return head + tomli_w.dumps({"scenario": meta, "set": settings})


def write_scenario(cal: Calibration, path: str | Path, name: str, model_file: str, data_file: str,
                   base: str | None = None, extra: Mapping | None = None) -> Path:
    """The calibrated scenario file (:func:`scenario_text`), written atomically."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EngineError(f"{path}: folder {parent} does not exist")
    text = scenario_text(cal, name, model_file, data_file, base, extra)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def plot_fit(cal: Calibration, model, path: str | Path) -> Path:
    """Actual (points) against simulated (line, whole run) per series; PNG/SVG/PDF or HTML."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EngineError(f"{path}: folder {parent} does not exist")
    prob = Fit(model, cal.factors, [s for s, _ in cal.fitted], cal.overrides, cal.until)
    params = prob.space.to_params(cal.estimates[None, :], cal.overrides)
    params.update(cal.overrides)
    res = model.run(params=params, variables=prob.variables, n=1)
    cols = output_columns(res, prob.variables)
    curves = [(s, s.expr.evaluate(lambda c: cols[c][0])) for s, _ in cal.fitted]
    suffix = path.suffix.lower()
    if suffix == ".html":
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=len(curves), cols=1, subplot_titles=[s.indicator for s, _ in curves])
        for i, (s, y) in enumerate(curves, start=1):
            fig.add_trace(go.Scatter(x=res.times, y=np.broadcast_to(y, res.times.shape),
                                     name=f"{s.indicator} simulated"),
                          row=i, col=1)
            fig.add_trace(go.Scatter(x=s.years, y=s.values, mode="markers", name=f"{s.indicator} actual"),
                          row=i, col=1)
        fig.update_layout(height=260 * len(curves))
        fig.write_html(str(path))
        return path
    plt = pyplot(path)
    fig, axes = plt.subplots(len(curves), 1, figsize=(7, 2.6 * len(curves)), squeeze=False)
    for ax, (s, y) in zip(axes[:, 0], curves, strict=True):
        ax.plot(res.times, np.broadcast_to(y, res.times.shape), label="simulated")
        ax.plot(s.years, s.values, "o", label="actual")
        if cal.until is not None:
            ax.axvline(cal.until, color="grey", ls="--", lw=0.8)
        ax.set_title(f"{s.indicator} ({s.unit})" if s.unit else s.indicator, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

