"""Observations and their likelihood, for ``lxsd posterior`` and ``lxsd backtest``.

* :func:`load_observations` reads the long CSV of published numbers (``indicator, unit,
  year, value, source [, scope]``) through a data map (TOML, see ``docs/analysis.md``)
  that says, per indicator, the model expression that measures it, whether a row is a
  level or an average annual growth rate, and the size of its observation error::

      scope = "linxiang"        # rows of this scope (else --scope)
      ignore = ["births"]       # indicators skipped
      sigma = 0.02              # default error of a level: sd of ln(observed / simulated)
      growth_sigma = 1.0        # default error of a growth rate, in percentage points
      [map]
      gdp = "gdp_nominal"
      urbanization_rate = { expression = "urbanization_rate * 100", sigma = 0.01 }
      gdp_growth_real = { expression = "gdp_real", measure = "growth", sigma = 0.5 }

  A row whose year is a period (``2021-2025``) is an average annual growth rate over the
  period, in % a year: 100 ((x_end / x_start)^(1 / years) - 1) of the mapped expression; a
  single-year row of a ``measure = "growth"`` indicator is the growth over that year.
* :class:`Likelihood`: a batch of parameter vectors -> one batch run -> the log-likelihood
  of every run. Levels are log-normal (scale-free: a 2 % miss costs the same for GDP and
  for population); growth rates are normal in percentage points. A run that fails gets
  likelihood zero (log-likelihood -inf).
"""
from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.analysis.ensemble import ParamSpace, annual_saveper, run_batch
from engine.analysis.calibration import select_scope
from engine.analysis.targets import Expr, check_columns
from engine.errors import EngineError, ModelError, Problem
from engine.parse.toml_file import read_toml

DEFAULT_SIGMA = 0.02        # level rows: sd of ln(observed/simulated), about a 2 % relative error
DEFAULT_GROWTH_SIGMA = 1.0  # growth rows: sd in percentage points
MEASURES = ("level", "growth")
_PERIOD = re.compile(r"^\s*(\d{4}(?:\.\d+)?)\s*[-–~]\s*(\d{4}(?:\.\d+)?)\s*$")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class Observation:
    """One indicator's rows: levels at ``end`` or growth rates over [start, end]."""

    indicator: str
    expr: Expr
    measure: str              # level | growth
    start: np.ndarray         # period starts (years); equal to ``end`` for levels
    end: np.ndarray           # years
    values: np.ndarray        # levels in the data's unit, or growth in % a year
    sigma: float              # ln-units for levels, percentage points for growth
    unit: str = ""
    rows: list[int] = field(default_factory=list)

    def label(self, i: int) -> str:
        """``gdp@2023`` or ``fai_growth@2021-2025`` for the i-th row."""
        if self.measure == "growth":
            return f"{self.indicator}@{self.start[i]:g}-{self.end[i]:g}"
        return f"{self.indicator}@{self.end[i]:g}"


@dataclass
class DataMap:
    """A data map file: indicator -> expression, measure, sigma; ignored indicators; scope."""

    entries: dict[str, dict]
    ignore: set[str]
    scope: str | None = None
    sigma: float = DEFAULT_SIGMA
    growth_sigma: float = DEFAULT_GROWTH_SIGMA
    file: str = ""


def _positive(value, where: str, file: str, problems: list[Problem]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        problems.append(Problem(file, where, f"must be a positive number, got {value!r}"))
        return None
    return float(value)


def read_data_map(path: str | Path | None) -> DataMap:
    """Read and check a data map (see the module doc); an absent path gives the defaults."""
    if not path:
        return DataMap({}, set())
    path = Path(path)
    file = str(path)
    data = read_toml(path, "data map")
    problems: list[Problem] = []
    for key in data:
        if key not in ("map", "ignore", "scope", "sigma", "growth_sigma"):
            problems.append(Problem(file, key, "unknown key", "scope, ignore, sigma, growth_sigma and a [map] table"))
    dm = DataMap({}, set(), file=file)
    if "sigma" in data:
        dm.sigma = _positive(data["sigma"], "sigma", file, problems) or DEFAULT_SIGMA
    if "growth_sigma" in data:
        dm.growth_sigma = _positive(data["growth_sigma"], "growth_sigma", file, problems) or DEFAULT_GROWTH_SIGMA
    if "scope" in data:
        if not isinstance(data["scope"], str):
            problems.append(Problem(file, "scope", "must be text, e.g. scope = \"linxiang\""))
        else:
            dm.scope = data["scope"]
    ignore = data.get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(i, str) for i in ignore):
        problems.append(Problem(file, "ignore", "must be a list of indicator names"))
    else:
        dm.ignore = set(ignore)
    for ind, spec in (data.get("map") or {}).items():
        entry = _map_entry(file, f"map.{ind}", spec, problems)
        if entry is not None:
            dm.entries[ind] = entry
    if problems:
        raise ModelError(problems)
    return dm


def _map_entry(file: str, where: str, spec: object, problems: list[Problem]) -> dict | None:
    """One [map] entry of a data map, checked: {"expression", "measure"[, "sigma"]}, or None (a problem
    appended to ``problems``)."""
    if isinstance(spec, str):
        spec = {"expression": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("expression"), str):
        problems.append(Problem(file, where, "must be an expression (text) or a table with expression = \"...\"",
                                'e.g. gdp = "gdp_nominal"'))
        return None
    bad = [k for k in spec if k not in ("expression", "measure", "sigma", "unit", "note")]
    if bad:
        problems.append(Problem(file, where, f"unknown field(s) {', '.join(bad)}",
                                "expression, measure, sigma, unit, note"))
        return None
    measure = spec.get("measure", "level")
    if measure not in MEASURES:
        problems.append(Problem(file, f"{where}.measure", f"unknown measure {measure!r}", "level or growth"))
        return None
    entry = {"expression": spec["expression"], "measure": measure}
    if "sigma" in spec:
        s = _positive(spec["sigma"], f"{where}.sigma", file, problems)
        if s is None:
            return None
        entry["sigma"] = s
    return entry


def _year(text: str) -> tuple[float, float] | None:
    """'2023' -> (2023, 2023); '2021-2025' -> (2021, 2025); else None."""
    m = _PERIOD.match(text)
    if m:
        return float(m.group(1)), float(m.group(2))
    try:
        y = float(text)
    except ValueError:
        return None
    return (y, y) if math.isfinite(y) else None


def load_observations(path: str | Path, model, data_map: DataMap | None = None, scope: str | None = None,
                      indicators: list[str] | None = None,
                      notes: list[str] | None = None) -> list[Observation]:
    """The data rows the model can be compared with, one :class:`Observation` per indicator.

    Errors (one problem each, naming the file and CSV row): missing columns, an empty or
    non-numeric year or value, an unknown indicator (neither an output, mapped nor ignored),
    a duplicate indicator and year, a period row of a level indicator, a level that is not
    positive (levels are log-normal). Rows outside the model's time are left out with a
    note appended to ``notes``.
    """
    file = str(path)
    dm = data_map or DataMap({}, set())
    notes = notes if notes is not None else []
    df = _read_data_csv(Path(path))
    scope = scope or dm.scope
    df = select_scope(df, file, scope, "choose one with --scope or scope = \"...\" in the data map", strict=False)
    if indicators is not None:
        absent = [i for i in indicators if i not in set(df["indicator"])]
        if absent:
            raise ModelError(Problem(file, None, f"no rows for indicator(s) {', '.join(absent)}"))
        df = df[df["indicator"].isin(indicators)]
    df = df[~df["indicator"].isin(dm.ignore)]
    problems: list[Problem] = []
    exprs = _indicator_expressions(df, model, dm, file, problems)
    ts = model.time
    rows: dict[str, list[tuple[float, float, float, int]]] = {}
    units: dict[str, str] = {}
    seen: dict[tuple, int] = {}
    outside = []
    for r in df.to_dict("records"):
        ind, row = r["indicator"], r["_row"]
        if ind not in exprs:
            continue
        point = _data_point(r, exprs[ind][1], file, problems)
        if point is None:
            continue
        a, b, value = point
        if not (ts.start - 1e-9 <= a and b <= ts.stop + 1e-9):
            outside.append(f"{ind} {r['year'].strip()}")
            continue
        key = (ind, a, b)
        if key in seen:
            problems.append(Problem(file, f"row {row}", f"duplicate row: {ind} {r['year'].strip()} is also on row "
                                    f"{seen[key]}"))
            continue
        seen[key] = row
        rows.setdefault(ind, []).append((b, a, value, row))
        units.setdefault(ind, r.get("unit", ""))
    if problems:
        raise ModelError(problems)
    if outside:
        notes.append(f"left out, outside the model's time {ts.start:g}-{ts.stop:g}: {', '.join(outside)}")
    if not rows:
        raise ModelError(Problem(file, None, "no usable rows: nothing to compare the model with"))
    out = []
    for ind, pts in rows.items():
        pts.sort()
        expr, entry = exprs[ind]
        sigma = entry.get("sigma", dm.growth_sigma if entry["measure"] == "growth" else dm.sigma)
        out.append(Observation(ind, expr, entry["measure"], np.array([p[1] for p in pts]),
                               np.array([p[0] for p in pts]), np.array([p[2] for p in pts]), float(sigma),
                               units.get(ind, ""), [p[3] for p in pts]))
    return out


def _read_data_csv(path: Path) -> pd.DataFrame:
    """The data CSV as text columns (indicator, year, value checked present), with ``_row``: its line."""
    file = str(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(Problem(file, None, "data file not found")) from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ModelError(Problem(file, None, f"cannot read the CSV: {exc}")) from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in ("indicator", "year", "value") if c not in df.columns]
    if missing:
        raise ModelError(Problem(file, None, f"missing column(s) {', '.join(missing)}",
                                 "the long format: indicator, unit, year, value, source"))
    df["_row"] = np.arange(len(df)) + 2
    return df


def _indicator_expressions(df: pd.DataFrame, model, dm: DataMap, file: str,
                           problems: list[Problem]) -> dict[str, tuple[Expr, dict]]:
    """Indicator -> (its expression of the model's outputs, its data-map entry); problems appended."""
    exprs: dict[str, tuple[Expr, dict]] = {}
    unknown = []
    for ind in dict.fromkeys(df["indicator"]):
        if not ind.strip():
            problems.append(Problem(file, "indicator", "empty indicator name"))
            continue
        entry = dm.entries.get(ind, {"expression": ind, "measure": "level"})
        try:
            expr = Expr(entry["expression"], f"{dm.file or file}: {ind}")
        except EngineError as exc:
            problems.append(Problem(dm.file or file, ind, str(exc)))
            continue
        bad = check_columns(model, expr)
        if bad:
            if ind in dm.entries:
                problems.append(Problem(dm.file, f"map.{ind}", f"{', '.join(bad)} is not an output of the model"))
            else:
                unknown.append(ind)
            continue
        exprs[ind] = (expr, entry)
    if unknown:
        problems.append(Problem(file, "indicator", f"unknown indicator(s) {', '.join(unknown)}: not an output of the "
                                "model and not in the data map", "map them ([map] NAME = \"expression\") or ignore "
                                "them (ignore = [...]) in the data map (--map)"))
    return exprs


def _data_point(r: dict, entry: dict, file: str, problems: list[Problem]) -> tuple[float, float, float] | None:
    """(start, end, value) of one data row (a level: start = end), or None with a problem appended."""
    ind, row = r["indicator"], r["_row"]
    ytxt, vtxt = r["year"].strip(), r["value"].strip()
    span = _year(ytxt)
    if span is None:
        problems.append(Problem(file, f"row {row}", f"{ind}: year {ytxt!r} is neither a year nor a period",
                                "e.g. 2023, or 2021-2025 for an average annual growth rate"))
        return None
    a, b = span
    if a != b and entry["measure"] != "growth":
        problems.append(Problem(file, f"row {row}", f"{ind}: a period {ytxt} is an average growth rate, but the "
                                "data map measures this indicator as a level",
                                f"give [map.{ind}] measure = \"growth\""))
        return None
    if a > b:
        problems.append(Problem(file, f"row {row}", f"{ind}: period {ytxt} ends before it starts"))
        return None
    if entry["measure"] == "growth" and a == b:
        a = b - 1.0  # a one-year growth rate: over the year before
    try:
        value = float(vtxt.replace(",", ""))
        if not math.isfinite(value):
            raise ValueError
    except ValueError:
        problems.append(Problem(file, f"row {row}", f"{ind} {ytxt}: value {vtxt!r} is not a number"))
        return None
    if entry["measure"] == "level" and value <= 0:
        problems.append(Problem(file, f"row {row}", f"{ind} {ytxt}: level {value:g} is not positive; levels have "
                                "a log-normal error", "map it with measure = \"growth\" if it is a rate"))
        return None
    return a, b, value


def values_at(times: np.ndarray, arr: np.ndarray, years: np.ndarray) -> np.ndarray:
    """(B, T) -> (B, len(years)), linear in time between saved points."""
    if len(times) == 1:
        return arr[:, np.zeros(len(years), dtype=int)]
    idx = np.clip(np.searchsorted(times, years, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[idx], times[idx + 1]
    w = np.clip((years - t0) / (t1 - t0), 0.0, 1.0)
    return arr[:, idx] * (1 - w) + arr[:, idx + 1] * w


def measured(obs: Observation, at) -> np.ndarray:
    """The model's counterpart of ``obs`` (B, rows): ``at(column, years)`` gives (B, len(years))."""
    end = obs.expr.evaluate(lambda c: at(c, obs.end))
    if obs.measure == "level":
        return end
    start = obs.expr.evaluate(lambda c: at(c, obs.start))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.divide(end, start)
        return 100.0 * (np.power(np.where(ratio > 0, ratio, np.nan), 1.0 / (obs.end - obs.start)) - 1.0)


class Likelihood:
    """Parameter vectors (in the factors' units) -> simulated observations -> log-likelihood.

    ``until``: only rows ending at or before it count (the fit rows of a backtest); the
    simulation still reaches ``stop`` (default: the last row's year) so later rows can be
    predicted.
    """

    def __init__(self, model, space: ParamSpace, observations: list[Observation],
                 overrides: Mapping | None = None, until: float | None = None, stop: float | None = None) -> None:
        self.space = space
        self.observations = observations
        self.overrides = dict(overrides or {})
        self.until = until
        self.variables = sorted({v for o in observations for v in o.expr.variables})
        ts = model.time
        last = max(float(o.end.max()) for o in observations) if stop is None else stop
        steps = math.ceil((last - ts.start) / ts.dt - 1e-9)
        self.stop = min(ts.stop, ts.start + steps * ts.dt)
        sp = annual_saveper(model)
        span = self.stop - ts.start
        self.saveper = sp if abs(span / sp - round(span / sp)) < 1e-9 else ts.dt
        self.fit_mask = [np.ones(len(o.end), bool) if until is None else o.end <= until + 1e-9
                         for o in observations]
        self.n_fit = int(sum(m.sum() for m in self.fit_mask))
        if self.n_fit == 0:
            raise EngineError("no data rows" + (f" at or before --until {until:g}" if until is not None else "")
                              + ": nothing to condition on")

    def __getstate__(self) -> dict:
        # sent to Dask workers without the compiled model (generated code does not pickle);
        # simulate() binds the worker's own copy
        state = self.__dict__.copy()
        space = copy.copy(self.space)
        space.model = None
        state["space"] = space
        return state

    def simulate(self, model, X: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(B, k) parameter vectors -> (per observation (B, rows) simulated values, failed mask (B,))."""
        if self.space.model is None:
            self.space.model = model
        X = np.atleast_2d(np.asarray(X, dtype=float))
        n = X.shape[0]
        params = self.space.to_params(X, self.overrides)
        times, cols, failed = run_batch(model, params, self.overrides, n, self.variables,
                                        stop=self.stop, saveper=self.saveper)
        out = [np.broadcast_to(measured(o, lambda c, yrs: values_at(times, cols[c], yrs)), (n, len(o.end)))
               for o in self.observations]
        return out, np.asarray(failed, bool)

    def loglik(self, sims: list[np.ndarray], failed: np.ndarray, fit: bool = True) -> np.ndarray:
        """(B,) log-likelihood over the fit rows (``fit=False``: over the rows after ``until``)."""
        n = len(failed)
        ll = np.zeros(n)
        for o, sim, m in zip(self.observations, sims, self.fit_mask, strict=True):
            sel = m if fit else ~m
            if not sel.any():
                continue
            y, s = o.values[sel], sim[:, sel]
            with np.errstate(divide="ignore", invalid="ignore"):
                if o.measure == "level":
                    z = (np.log(y) - np.log(np.where(s > 0, s, np.nan))) / o.sigma
                    const = -np.log(o.sigma * y) - _HALF_LOG_2PI  # the log-normal density of y
                else:
                    z = (y - s) / o.sigma
                    const = -math.log(o.sigma) - _HALF_LOG_2PI + np.zeros_like(y)
            ll += np.sum(-0.5 * z * z + const, axis=1)
        ll[~np.isfinite(ll) | failed] = -np.inf  # a failed or non-positive run: likelihood zero
        return ll

    def noisy(self, sims: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        """Draws of the observations themselves: the simulated values with the observation error."""
        out = []
        for o, s in zip(self.observations, sims, strict=True):
            e = rng.standard_normal(s.shape) * o.sigma
            with np.errstate(invalid="ignore", over="ignore"):
                out.append(s * np.exp(e) if o.measure == "level" else s + e)
        return out

    def row_labels(self) -> list[str]:
        return [o.label(i) for o in self.observations for i in range(len(o.end))]
