"""Model, scenarios, levers, runs and ensembles for the app; no Streamlit here.

Everything the app shows about a variable (label, unit, description, source) comes from the
model file; everything about a scenario from its file. A new variable or scenario needs no
change here.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lxapp import ROOT

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_MODEL = DEMO_DIR / "demo_model.toml"
CURRENT = "current"          # the scenario made of the base scenario and the lever settings
DEFAULT = "default"          # the model's own defaults, no overrides

HEADLINE = ["gdp_real", "gdp_nominal", "value_added", "industry_share", "population_resident",
            "population_urban", "urbanization_rate", "energy_consumption", "energy_intensity",
            "co2_emissions", "co2_intensity", "budget_revenue", "investment_total_nominal",
            "government_debt", "forest_cover"]

# The main levers of issue 6, in display order. A lever shows only if the model has the
# constant with a range; label, unit and description come from the model.
# kind: "year" (whole years), "value" (the constant itself), "multiplier" (x the default,
# for a subscripted constant: every element scaled alike).
LEVERS = [
    ("ethylene_start_year", "year"), ("ethylene_scale", "value"), ("rongyue_pace", "value"),
    ("chemical_exit_start_year", "year"), ("investment_rate_future", "value"),
    ("rd_intensity_2025", "value"), ("efficiency_trend", "multiplier"),
    ("carbon_policy_strength", "value"), ("shock_year", "year"), ("shock_size", "value"),
]


def env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else default


# ------------------------------------------------------------------ the model bundle
@dataclass
class Bundle:
    """The compiled model with its scenarios, targets and actuals."""

    model: object                      # engine.simulation.CompiledModel
    path: str
    key: str                           # identifies model + scenario files, for caches
    is_demo: bool = False
    load_error: str | None = None      # why the configured model could not be used
    scenarios: dict = field(default_factory=dict)        # name -> engine.scenarios.Scenario
    scenario_errors: list[str] = field(default_factory=list)
    scenario_dir: Path | None = None
    targets_path: Path | None = None
    targets: list[dict] = field(default_factory=list)
    actuals: pd.DataFrame | None = None

    @property
    def variables(self):
        return self.model.model.variables

    def years(self) -> np.ndarray:
        t = self.model.time
        return np.arange(t.start, t.stop + 1e-9, t.saveper)


def _file_key(paths: list[Path]) -> str:
    parts = []
    for p in paths:
        try:
            st = p.stat()
            parts.append(f"{p}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append(f"{p}:-")
    return "|".join(parts)


def bundle_key(model_path: Path | None = None) -> str:
    """Changes when the model, its scenarios or targets change on disk (for st.cache_resource)."""
    mp = model_path or env_path("LXSD_MODEL", ROOT / "model" / "linxiang.toml")
    sd = env_path("LXSD_SCENARIOS", ROOT / "scenarios")
    files = [mp, ROOT / "model" / "targets.toml"] + sorted(sd.glob("*.toml")) if sd.exists() else [mp]
    return _file_key(files)


def load_bundle(model_path: str | Path | None = None) -> Bundle:
    """Compile the configured model (env LXSD_MODEL, default model/linxiang.toml).

    If it cannot be loaded, the demo model stands in and ``load_error`` says why, so the app
    keeps running and tells the user.
    """
    from engine import EngineError, load_model
    from engine.scenarios import load_scenario

    mp = Path(model_path) if model_path else env_path("LXSD_MODEL", ROOT / "model" / "linxiang.toml")
    error = None
    model, is_demo = None, False
    try:
        model = load_model(mp)
    except EngineError as exc:
        error = f"{mp}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a half-written model file must not stop the app
        error = f"{mp}: {type(exc).__name__}: {exc}"
    if model is None:
        model, is_demo, mp = load_model(DEMO_MODEL), True, DEMO_MODEL
    if is_demo or mp.resolve() == DEMO_MODEL.resolve():
        sdir = DEMO_DIR / "scenarios"
        targets = None
    else:
        sdir = env_path("LXSD_SCENARIOS", mp.parent.parent / "scenarios")
        targets = env_path("LXSD_TARGETS", mp.parent / "targets.toml")
    b = Bundle(model=model, path=str(mp), key=bundle_key(mp), is_demo=is_demo, load_error=error,
               scenario_dir=sdir)
    from engine.scenarios import Scenario
    b.scenarios[DEFAULT] = Scenario(name=DEFAULT, file="", label_zh="模型默认值", label_en="Model defaults",
                                    doc="The model's own values, no scenario file.")
    if sdir.exists():
        for f in sorted(sdir.glob("*.toml")):
            try:
                sc = load_scenario(f, model)
                b.scenarios[f.stem] = sc
            except EngineError as exc:
                b.scenario_errors.append(str(exc))
            except Exception as exc:  # noqa: BLE001
                b.scenario_errors.append(f"{f}: {exc}")
    if targets is not None and targets.exists():
        b.targets_path = targets
        try:
            b.targets = tomllib.loads(targets.read_text(encoding="utf-8")).get("indicator", [])
        except (OSError, tomllib.TOMLDecodeError) as exc:
            b.scenario_errors.append(f"{targets}: {exc}")
    b.actuals = load_actuals(b)
    return b


# ------------------------------------------------------------------ labels
def var_label(bundle: Bundle, name: str, lang: str) -> str:
    """Label of a variable or column ``name[element]`` in the language, from the model."""
    base, elem = split_column(name)
    var = bundle.variables.get(base)
    if var is None:
        return name
    text = (var.label_zh if lang == "zh" else var.label_en) or var.label_en or var.label_zh or base
    if not elem:
        return text
    model = bundle.model.model
    labels = [model.element_label(e.strip(), lang) if hasattr(model, "element_label") else e.strip()
              for e in elem.split(",")]
    return f"{text}[{', '.join(labels)}]"


UNIT_NAMES = {  # how the model's units read to people: (zh, en)
    "1e8 yuan/year": ("亿元", "CNY 100m"), "1e8 yuan": ("亿元", "CNY 100m"),
    "1e4 person": ("万人", "10k persons"), "1e4 tce/year": ("万吨标准煤", "10k tce"),
    "1e4 tCO2/year": ("万吨CO₂", "10k t CO₂"), "1e4 tce/(1e8 yuan)": ("吨标准煤/万元", "tce per CNY 10k"),
    "1e4 tCO2/(1e8 yuan)": ("吨CO₂/万元", "t CO₂ per CNY 10k"), "ha": ("公顷", "ha"),
}


def var_unit(bundle: Bundle, name: str) -> str:
    var = bundle.variables.get(split_column(name)[0])
    return (var.unit or "") if var is not None else ""


def unit_label(bundle: Bundle, name: str, lang: str) -> str:
    """The unit as people read it (亿元 rather than 1e8 yuan/year); % for fractions."""
    if is_fraction(bundle, name):
        return "%"
    u = var_unit(bundle, name)
    pair = UNIT_NAMES.get(u)
    return (pair[0] if lang == "zh" else pair[1]) if pair else u


def is_fraction(bundle: Bundle, col: str) -> bool:
    """A dimensionless rate, share or cover (0-1), shown to people as a percentage."""
    name = split_column(col)[0]
    unit = (var_unit(bundle, col) or "").strip()
    return unit in ("", "dmnl", "1") and any(w in name for w in ("rate", "share", "cover", "ratio"))


def split_column(col: str) -> tuple[str, str | None]:
    m = re.fullmatch(r"(\w+)\[(.+)\]", col)
    return (m.group(1), m.group(2)) if m else (col, None)


def scenario_label(bundle: Bundle, name: str, lang: str, extra: dict | None = None) -> str:
    if name == CURRENT:
        return "当前设置" if lang == "zh" else "Current settings"
    if extra and name in extra:
        return extra[name].get("label") or name
    sc = bundle.scenarios.get(name)
    return sc.label(lang) if sc is not None else name


# ------------------------------------------------------------------ levers
@dataclass
class Lever:
    name: str
    kind: str          # year | value | multiplier
    low: float
    high: float
    default: float     # the model default (1.0 for a multiplier)
    step: float


def role(bundle: Bundle, name: str) -> str:
    """A constant's role (lever, uncertain, test, fixed; see ``CompiledModel.role``)."""
    fn = getattr(bundle.model, "role", None)
    if fn is not None:
        return fn(name)
    var = bundle.variables[name]
    return getattr(var, "role", None) or ("uncertain" if var.range else "fixed")


def more_constants(bundle: Bundle) -> list[str]:
    """What the "more constants" picker offers: the ranged levers and uncertain constants
    beyond the main levers (never the extreme-condition ``test`` switches or ``fixed`` data)."""
    main = dict(LEVERS)
    return [n for n, v in bundle.model.constants.items()
            if v.range and n not in main and role(bundle, n) in ("lever", "uncertain")]


def levers(bundle: Bundle, extra: list[str] | None = None) -> list[Lever]:
    """The main levers the model has (with a range), then any ``extra`` ranged constants;
    a constant the model marks as an extreme-condition ``test`` switch is never a slider."""
    out = []
    wanted = list(LEVERS) + [(n, None) for n in (extra or []) if n not in dict(LEVERS)]
    for name, kind in wanted:
        var = bundle.variables.get(name)
        if var is None or var.kind != "constant" or not var.range:
            continue
        if role(bundle, name) == "test":
            continue
        lo, hi = float(var.range[0]), float(var.range[1])
        if var.dims:
            vals = _flat_values(var.value)
            cap = min((hi / v for v in vals if v > 0), default=2.0)
            out.append(Lever(name, "multiplier", 0.0, round(min(cap, 3.0), 2), 1.0, 0.05))
            continue
        if kind is None:
            kind = "year" if (lo > 1900 and hi < 2200 and float(lo).is_integer()) else "value"
        step = 1.0 if kind == "year" else _nice_step(hi - lo)
        out.append(Lever(name, kind, lo, hi, float(var.value), step))
    return out


def _flat_values(value) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat_values(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat_values(v)]
    return [float(value)]


def _nice_step(span: float) -> float:
    raw = span / 100
    p = 10 ** math.floor(math.log10(raw)) if raw > 0 else 0.01
    for m in (1, 2, 5, 10):
        if raw <= m * p:
            return m * p
    return 10 * p


def scenario_value(bundle: Bundle, scenario: str, lever: Lever) -> float:
    """The lever's position that reproduces ``scenario``."""
    sc = bundle.scenarios.get(scenario)
    if lever.kind == "multiplier":
        return 1.0
    if sc is not None and lever.name in sc.overrides and isinstance(sc.overrides[lever.name], (int, float)):
        return float(sc.overrides[lever.name])
    return lever.default


def current_overrides(bundle: Bundle, base: dict, lever_values: dict[str, float]) -> dict:
    """The base scenario's overrides with the lever settings on top (all within range)."""
    out = dict(base)
    var = bundle.variables
    for name, val in lever_values.items():
        v = var.get(name)
        if v is None:
            continue
        if v.dims:
            if abs(val - 1.0) < 1e-12:
                continue
            start = out.get(name, v.value)
            out[name] = _scale(start, float(val), v.range)
        else:
            lo, hi = v.range if v.range else (-math.inf, math.inf)
            out[name] = float(min(max(val, lo), hi))
    return out


def _scale(value, mult: float, rng):
    if isinstance(value, dict):
        return {k: _scale(x, mult, rng) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scale(x, mult, rng) for x in value]
    x = float(value) * mult
    if rng:
        x = min(max(x, rng[0]), rng[1])
    return x


def overrides_key(overrides: dict) -> str:
    """A canonical text of an overrides dict (the cache key of a run)."""
    return json.dumps(overrides, sort_keys=True, default=_json_default)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o))


# ------------------------------------------------------------------ runs
def run_one(bundle: Bundle, overrides: dict, variables: list[str] | None = None) -> pd.DataFrame:
    """One scenario's results: index = time, columns = variables (``name[element]``)."""
    res = bundle.model.run(params=overrides or None, variables=variables)
    df = res.to_dataframe()
    return df.droplevel("scenario")


def combine(runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-scenario frames -> one frame with a (scenario, time) MultiIndex."""
    return pd.concat(runs, names=["scenario", "time"])


def chart_variables(bundle: Bundle) -> list[str]:
    """Variables worth offering in charts: every saveable one, headline first."""
    vis = bundle.model.visible
    internal = {n for n, rv in bundle.model.rvars.items() if rv.internal}
    rest = sorted(n for n in vis if n not in HEADLINE and n not in internal
                  and bundle.variables[n].kind != "constant")
    return [h for h in HEADLINE if h in vis] + rest


# ------------------------------------------------------------------ ensemble
def uncertain_constants(bundle: Bundle, fixed: set[str]) -> list[str]:
    """Constants drawn in the ensemble: those of role ``uncertain`` with a range, not set by a
    lever or the scenario. Where a model declares no role (every ranged constant is then
    "uncertain"), years and 0/1 switches are left out as well."""
    out = []
    for name, var in bundle.model.constants.items():
        if not var.range or name in fixed or role(bundle, name) != "uncertain":
            continue
        if not getattr(var, "role", None):
            lo, hi = var.range
            if lo > 1900 or "switch" in name or (lo == 0 and hi == 1
                                                 and float(_flat_values(var.value)[0]) in (0.0, 1.0)):
                continue
        out.append(name)
    return out


def sample_params(bundle: Bundle, overrides: dict, n: int, seed: int = 0, spread: float = 0.25) -> dict:
    """``n`` draws of the uncertain constants: triangular around the scenario's value, reaching
    ``spread`` of the way to each end of the declared range (the full range is the plausible
    span for calibration, far wider than the uncertainty of a projection)."""
    rng = np.random.default_rng(seed)
    params = {}
    fixed = set(overrides) | {lv for lv, _ in LEVERS}
    for name in uncertain_constants(bundle, fixed):
        var = bundle.variables[name]
        lo, hi = var.range
        if var.dims:
            base = np.asarray(bundle.model._value_array(name, var.value, None))[..., 0]
            u = rng.triangular(-1, 0, 1, size=n)
            span = np.where(u[:, None] < 0, base.reshape(-1) - lo, hi - base.reshape(-1))
            draws = base.reshape(-1)[None, :] + spread * u[:, None] * span
            params[name] = np.clip(draws, lo, hi).reshape((n, *base.shape))
        else:
            base = float(var.value)
            a, b = base - spread * (base - lo), base + spread * (hi - base)
            params[name] = rng.triangular(a, base, b, size=n) if b > a else np.full(n, base)
    return params


PERCENTILES = (5, 25, 50, 75, 95)


def ensemble(bundle: Bundle, overrides: dict, variables: list[str], n: int = 500, seed: int = 0):
    """Percentiles (5, 25, 50, 75, 95) over ``n`` runs around the scenario.

    Returns (bands, runs): bands[column] = array (5, T); runs = the Results object (for the
    probability of meeting targets).
    """
    params = sample_params(bundle, overrides, n, seed)
    merged = {}
    for k, v in overrides.items():   # scenario values apply to every run
        merged[k] = v
    merged.update(params)
    res = bundle.model.run(params=merged, n=n, variables=variables)
    bands = {}
    for name in variables:
        arr = res[name]                       # (N, T, *dims)
        q = np.nanpercentile(arr, PERCENTILES, axis=0)   # (5, T, *dims)
        els = bundle.model.elements(name)
        if els == [()]:
            bands[name] = q
        else:
            flat = q.reshape(len(PERCENTILES), q.shape[1], -1)
            for i, e in enumerate(els):
                bands[f"{name}[{','.join(e)}]"] = flat[:, :, i]
    return bands, res


# ------------------------------------------------------------------ actuals and targets
# Rows of data/linxiang_statistics.csv that measure a model output: indicator -> (column or
# [columns summed], factor to the model's unit).
ACTUALS_MAP = {
    "gdp": ("gdp_nominal", 1.0),
    "resident_population": ("population_resident", 1.0),
    "resident_population_census": ("population_resident", 1e-4),
    "resident_urban_population": ("population_urban", 1.0),
    "urbanization_rate": ("urbanization_rate", 0.01),
    "general_budget_revenue": ("budget_revenue", 1.0),
    "share_primary": ("industry_share[primary]", 0.01),
    "share_secondary": ("industry_share[secondary]", 0.01),
    "share_tertiary": ("industry_share[tertiary]", 0.01),
}


def load_actuals(bundle: Bundle) -> pd.DataFrame:
    """Published actuals mapped onto model columns: columns indicator, column, year, value, source."""
    path = env_path("LXSD_ACTUALS", ROOT / "data" / "linxiang_statistics.csv")
    rows = []
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r.get("scope") != "linxiang" or r.get("indicator") not in ACTUALS_MAP:
                    continue
                try:
                    year, value = float(r["year"]), float(r["value"])
                except (TypeError, ValueError):
                    continue
                col, factor = ACTUALS_MAP[r["indicator"]]
                rows.append({"indicator": r["indicator"], "column": col, "year": year,
                             "value": value * factor, "source": r.get("source", ""), "kind": "actual"})
    for t in bundle.targets:   # the plan's 2020 baseline is an actual too
        col, factor = simple_expression(t.get("expression", ""))
        if col and t.get("value_2020") is not None and t.get("measure", "level") == "level":
            rows.append({"indicator": t.get("id"), "column": col, "year": 2020.0,
                         "value": float(t["value_2020"]) / factor, "source": "plan 专栏1", "kind": "plan 2020"})
    return pd.DataFrame(rows, columns=["indicator", "column", "year", "value", "source", "kind"])


def simple_expression(expr: str) -> tuple[str | None, float]:
    """'name', 'name[el]' or 'name * k' -> (column, k); anything else -> (None, 1)."""
    m = re.fullmatch(r"\s*(\w+(?:\[\w+\])?)\s*(?:\*\s*([0-9.eE+-]+))?\s*", expr or "")
    if not m:
        return None, 1.0
    return m.group(1), float(m.group(2)) if m.group(2) else 1.0


def target_markers(bundle: Bundle) -> pd.DataFrame:
    """Plan targets that a chart can show as markers: column, year, value (model unit)."""
    rows = []
    for t in bundle.targets:
        col, factor = simple_expression(t.get("expression", ""))
        if not col or t.get("target_2025") is None or t.get("measure", "level") != "level":
            continue
        rows.append({"column": col, "year": float(t.get("target_year", 2025)),
                     "value": float(t["target_2025"]) / factor, "name_zh": t.get("name_zh", ""),
                     "name_en": t.get("name_en", ""), "direction": t.get("direction", "min"),
                     "kind": t.get("kind", "")})
    return pd.DataFrame(rows, columns=["column", "year", "value", "name_zh", "name_en", "direction", "kind"])


def add_aggregates(bundle: Bundle, df: pd.DataFrame) -> pd.DataFrame:
    """Add ``name[subrange]`` columns (sums over a subrange, e.g. industry_share[secondary])."""
    m = bundle.model.model
    new = {}
    for sub, (parent, elems) in m.subranges.items():
        for name in ("industry_share", "value_added"):
            var = m.variables.get(name)
            if var is None or var.dims != (parent,):
                continue
            cols = [f"{name}[{e}]" for e in elems]
            if all(c in df.columns for c in cols):
                new[f"{name}[{sub}]"] = df[cols].sum(axis=1)
    if new:
        df = pd.concat([df, pd.DataFrame(new, index=df.index)], axis=1)
    return df


# ------------------------------------------------------------------ calibration fit
def fit_table(bundle: Bundle, df: pd.DataFrame) -> pd.DataFrame:
    """Actuals against one scenario's run (index time): one row per actual."""
    rows = []
    for r in (bundle.actuals if bundle.actuals is not None else pd.DataFrame()).itertuples():
        if r.column not in df.columns:
            continue
        times = df.index.to_numpy(dtype=float)
        if not (times[0] <= r.year <= times[-1]):
            continue
        model = float(np.interp(r.year, times, df[r.column].to_numpy()))
        rows.append({"indicator": r.indicator, "column": r.column, "year": int(r.year), "kind": r.kind,
                     "actual": r.value, "model": model,
                     "error_pct": 100 * (model - r.value) / r.value if r.value else np.nan})
    return pd.DataFrame(rows, columns=["indicator", "column", "year", "kind", "actual", "model", "error_pct"])


def fit_statistics(table: pd.DataFrame) -> dict[str, float]:
    """MAPE, mean error (bias), largest error (all in %), and the share within 3%."""
    e = table["error_pct"].dropna()
    if e.empty:
        return {}
    return {"n": int(len(e)), "mape_pct": float(e.abs().mean()), "bias_pct": float(e.mean()),
            "max_abs_pct": float(e.abs().max()), "within_3pct": float((e.abs() <= 3).mean())}
