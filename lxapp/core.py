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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lxapp import ROOT

if TYPE_CHECKING:
    from engine.simulation import CompiledModel

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_MODEL = DEMO_DIR / "demo_model.toml"
CURRENT = "current"          # the scenario made of the base scenario and the lever settings
DEFAULT = "default"          # the model's own defaults, no overrides

# Headline variables, lever groups and the actuals mapping come from the model file's
# [presentation] table (engine/parse/presentation.py), else from the file $LXSD_PRESENTATION names,
# else from model/linxiang.toml's (for a model without one, the demo model among them); see presentation().
PRESENTATION_FILE = ROOT / "model" / "linxiang.toml"
MAX_CHARTS = 12             # charts drawn at once (a workshop's laptops and the shared server)


def env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else default


# ------------------------------------------------------------------ the model bundle
@dataclass
class Bundle:
    """The compiled model with its scenarios, targets and actuals."""

    model: CompiledModel
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
    presentation: dict = field(default_factory=dict)      # the [presentation] table, names checked
    presentation_notes: list[str] = field(default_factory=list)   # names the model lacks (dropped)

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
    b.presentation, b.presentation_notes = presentation(model.model)
    b.actuals = load_actuals(b)
    return b


def presentation(model) -> tuple[dict, list[str]]:
    """The model's [presentation] table, else the one in $LXSD_PRESENTATION or model/linxiang.toml,
    less names the model lacks (each named in the notes): what the app shows first."""
    from engine.parse.presentation import check_names, parse_presentation

    if model.presentation:
        return dict(model.presentation), []
    path = env_path("LXSD_PRESENTATION", PRESENTATION_FILE)
    if not path.exists():
        return {}, []
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8")).get("presentation")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path.name}: {exc}"]
    pres, problems = parse_presentation(raw, path.name)
    notes = [str(p) for p in problems]
    unknown = check_names(pres, model.variables, path.name)
    notes += [str(p) for p in unknown]
    known = lambda c: c.split("[", 1)[0] in model.variables  # noqa: E731
    for key in ("headline", "cards", "charts"):
        if key in pres:
            pres[key] = [c for c in pres[key] if known(c)]
    for g in pres.get("lever_groups", []):
        g["levers"] = [n for n in g["levers"] if getattr(model.variables.get(n), "kind", "") == "constant"]
    pres["actuals"] = {k: v for k, v in pres.get("actuals", {}).items() if known(v["column"])}
    return pres, notes


def headline(bundle: Bundle) -> list[str]:
    """The headline variables the model saves, in the presentation's order."""
    vis = bundle.model.visible
    return [h for h in bundle.presentation.get("headline", []) if h in vis]


def lever_groups(bundle: Bundle) -> list[dict]:
    return bundle.presentation.get("lever_groups", [])


def main_levers(bundle: Bundle) -> list[str]:
    return [n for g in lever_groups(bundle) for n in g["levers"]]


# ------------------------------------------------------------------ labels
def var_label(bundle: Bundle, name: str, lang: str) -> str:
    """Label of a variable or column ``name[element]`` in the language, from the model."""
    base, elem = split_column(name)
    var = bundle.variables.get(base)
    if var is None:
        return name
    text = (var.label_zh if lang == "zh" else var.label_en) or var.label_en or var.label_zh or base
    if is_fraction(bundle, base):   # shown as a percentage: a "(0-1)" in the label would mislead
        text = re.sub(r"\s*[(（]0\s*[-–~]\s*1[)）]", "", text)
    if not elem:
        return text
    model = bundle.model.model
    labels = [model.element_label(e.strip(), lang) if hasattr(model, "element_label") else e.strip()
              for e in elem.split(",")]
    return f"{text}[{', '.join(labels)}]"


UNIT_NAMES = {  # how the model's units read to people: (zh, en); a flow per year reads as its yearly amount
    "1e8 yuan/year": ("亿元", "CNY 100m"), "1e8 yuan": ("亿元", "CNY 100m"),
    "1e4 person": ("万人", "10k persons"), "1e4 tce/year": ("万吨标准煤", "10k tce"),
    "1e4 tCO2/year": ("万吨CO₂", "10k t CO₂"), "1e4 tce/(1e8 yuan)": ("吨标准煤/万元", "tce per CNY 10k"),
    "1e4 tCO2/(1e8 yuan)": ("吨CO₂/万元", "t CO₂ per CNY 10k"), "ha": ("公顷", "ha"),
    "dmnl": ("比值", "ratio"), "1": ("比值", "ratio"), "yuan/person/year": ("元/人", "CNY per person"),
    "1/year": ("每年", "per year"), "year": ("年", "years"), "mu": ("亩", "mu"), "ug/m3": ("微克/立方米", "µg/m³"),
    # the units of model/targets.toml
    "%/year": ("%/年", "%/year"), "patents/10k persons": ("件/万人", "patents per 10k persons"),
    "per 10 000 (‱)": ("‱", "per 10 000 (‱)"), "per 1000 elderly": ("每千名老人", "per 1000 elderly"),
    "per 1000 persons": ("每千人", "per 1000 persons"), "person": ("人", "persons"), "ratio": ("比值", "ratio"),
    "yuan": ("元", "CNY"),
}
# token by token, for units the table does not name (longest first)
UNIT_TOKENS_ZH = [("1e8 yuan", "亿元"), ("1e4 tCO2", "万吨CO₂"), ("1e4 tce", "万吨标准煤"),
                  ("1e4 person", "万人"), ("1e4 USD", "万美元"), ("1e4 yuan", "万元"), ("1e4 t", "万吨"),
                  ("tCO2", "吨CO₂"), ("tce", "吨标准煤"), ("yuan", "元"), ("person", "人"), ("year", "年"),
                  ("ha", "公顷"), ("mu", "亩"), ("ug/m3", "微克/立方米"), ("dmnl", "比值"), ("t", "吨")]
UNIT_TOKENS_EN = [("1e8 yuan", "CNY 100m"), ("1e4 yuan", "CNY 10k"), ("1e4 USD", "USD 10k"), ("1e4", "10k"),
                  ("dmnl", "ratio")]


def var_unit(bundle: Bundle, name: str) -> str:
    var = bundle.variables.get(split_column(name)[0])
    return (var.unit or "") if var is not None else ""


def unit_label(bundle: Bundle, name: str, lang: str) -> str:
    """The unit as people read it (亿元 rather than 1e8 yuan/year, Chinese in the Chinese
    interface); % for fractions shown as percentages."""
    if is_fraction(bundle, name):
        return "%"
    return translate_unit(var_unit(bundle, name), lang)


def translate_unit(unit: str, lang: str) -> str:
    """A model unit in the reader's words: the table's phrase, else token by token."""
    pair = UNIT_NAMES.get(unit.strip())
    if pair:
        return pair[0] if lang == "zh" else pair[1]
    out = re.sub(r"\((\d{4}) prices\)", r"(\1年价)", unit) if lang == "zh" else unit
    for a, b in (UNIT_TOKENS_ZH if lang == "zh" else UNIT_TOKENS_EN):
        out = re.sub(rf"(?<![A-Za-z]){re.escape(a)}(?![A-Za-z0-9])", b, out)
    return out


def is_fraction(bundle: Bundle, col: str) -> bool:
    """A dimensionless rate, share or cover (0-1), shown to people as a percentage; a ratio
    (urban-rural income 1.74) stays a ratio."""
    name = split_column(col)[0]
    unit = (var_unit(bundle, col) or "").strip()
    return unit in ("", "dmnl", "1") and any(w in name for w in ("rate", "share", "cover")) \
        and "ratio" not in name


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
    group: str = ""
    anchor: float | None = None   # a value the steps run through (the base's calibrated value), else None


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
    main = set(main_levers(bundle))
    return [n for n, v in bundle.model.constants.items()
            if v.range and n not in main and role(bundle, n) in ("lever", "uncertain")]


def levers(bundle: Bundle, extra: list[str] | None = None, base: str | None = None) -> list[Lever]:
    """The presentation's levers the model has (with a range), then any ``extra`` ranged
    constants; a constant the model marks as an extreme-condition ``test`` switch is never a slider.

    Every lever is a slider, and a slider nobody touched shows the base scenario's value exactly
    (issue 13 item 1). Its step is the coarsest one on which the model's value and every
    scenario's value lie (0.1204 gets steps of 0.0001), so the grid is the same whatever the base.
    Where that would need more than 20 000 steps (a value calibrated to six digits, 0.388274 in
    0.1-0.5), the slider takes the range's nice step (0.005) on a grid through the ``base``
    scenario's value (``Lever.anchor``): 0.388274 ± k·0.005, its ends the grid's points inside the
    range. ``base`` None: the model's own value. Computed once per bundle, ``extra`` and ``base``.
    """
    cache = bundle.__dict__.setdefault("_levers", {})
    key = (tuple(extra or ()), base)
    if key not in cache:
        cache[key] = _levers(bundle, list(extra or ()), base)
    return cache[key]


def _levers(bundle: Bundle, extra: list[str], base: str | None) -> list[Lever]:
    out = []
    groups = [(n, g["name"]) for g in lever_groups(bundle) for n in g["levers"]]
    seen = {n for n, _ in groups}
    wanted = groups + [(n, "more") for n in extra if n not in seen]
    for name, group in dict(wanted).items():
        var = bundle.variables.get(name)
        if var is None or var.kind != "constant" or not var.range:
            continue
        if role(bundle, name) == "test":
            continue
        lo, hi = float(var.range[0]), float(var.range[1])
        if var.dims:
            vals = _flat_values(var.value)
            cap = min((hi / v for v in vals if v > 0), default=2.0)
            out.append(Lever(name, "multiplier", 0.0, round(min(cap, 3.0), 2), 1.0, 0.05, group))
            continue
        values = [float(var.value)] + [float(sc.overrides[name]) for sc in bundle.scenarios.values()
                                       if isinstance(sc.overrides.get(name), (int, float))]
        if lo > 1900 and hi < 2200 and float(lo).is_integer() and all(float(v).is_integer() for v in values):
            out.append(Lever(name, "year", lo, hi, float(var.value), 1.0, group))
            continue
        step = precision_step([lo, hi] + values, hi - lo)
        if (hi - lo) / step <= 20000:
            out.append(Lever(name, "value", lo, hi, float(var.value), step, group))
            continue
        out.append(anchored(Lever(name, "value", lo, hi, float(var.value), _nice_step(hi - lo), group),
                            _base_value(bundle, base, name, float(var.value))))
    return out


def _base_value(bundle: Bundle, base: str | None, name: str, default: float) -> float:
    sc = bundle.scenarios.get(base) if base else None
    v = sc.overrides.get(name) if sc is not None else None
    return float(v) if isinstance(v, (int, float)) else default


def anchored(lv: Lever, anchor: float) -> Lever:
    """``lv`` with its steps on a grid through ``anchor`` (``lv.step`` apart), its ends the grid's
    first and last points inside the range: a slider that shows ``anchor`` exactly."""
    k_lo = math.floor((anchor - lv.low) / lv.step + 1e-9)
    k_hi = math.floor((lv.high - anchor) / lv.step + 1e-9)
    return Lever(lv.name, lv.kind, round(anchor - k_lo * lv.step, 10), round(anchor + k_hi * lv.step, 10),
                 lv.default, lv.step, lv.group, anchor=anchor)


def decimals(lv: Lever) -> int:
    """Decimals a slider shows: enough for its step and for its anchor (0.388274: six)."""
    digits = max(0, -math.floor(math.log10(lv.step) + 1e-9))
    if lv.anchor is not None:
        digits = max(digits, max(0, -math.floor(math.log10(precision_step([lv.anchor], 1.0)) + 1e-9)))
    return digits


def precision_step(values: list[float], span: float) -> float:
    """The coarsest step (the span's nice step, else a power of ten) on which every value lies."""
    def on_grid(step: float) -> bool:
        return all(abs(round(v / step) * step - v) <= 1e-9 * max(1.0, abs(v)) for v in values)

    nice = _nice_step(span)
    if on_grid(nice):
        return nice
    for k in range(-6, 11):
        step = float(f"1e{-k}")
        if step <= nice and on_grid(step):
            return step
    return 1e-10


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


def fit(lv: Lever, val: float) -> float:
    """A value as the lever shows it: within the range, on the step (whole years for a year)."""
    v = min(max(float(val), lv.low), lv.high)
    if lv.kind == "year":
        return float(round(v))
    steps = round((v - lv.low) / lv.step)
    return float(round(lv.low + steps * lv.step, 10))


def check_lever_value(lv: Lever, val: object) -> str | None:
    """Why ``val`` cannot be this lever's value (not a number, NaN, infinite, out of range), or None."""
    try:
        x = float(val)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{lv.name}: {val!r} is not a number"
    if not math.isfinite(x):
        return f"{lv.name}: {val!r} is not a finite number"
    if not lv.low - 1e-9 <= x <= lv.high + 1e-9:
        return f"{lv.name}: {x:g} is outside its range {lv.low:g} – {lv.high:g}"
    return None


def current_overrides(bundle: Bundle, base: dict, moved: dict[str, float]) -> dict:
    """The base scenario's overrides with the levers the user moved on top (each within its
    range). Levers nobody moved are not in ``moved`` and leave the base's values untouched."""
    out = dict(base)
    var = bundle.variables
    for name, val in moved.items():
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
    first = headline(bundle)
    internal = {n for n, rv in bundle.model.rvars.items() if rv.internal}
    rest = sorted(n for n in vis if n not in first and n not in internal
                  and bundle.variables[n].kind != "constant")
    return first + rest


# ------------------------------------------------------------------ ensemble (engine.analysis.ensemble)
PERCENTILES = (5, 25, 50, 75, 95)


def ensemble(bundle: Bundle, overrides: dict, variables: list[str], n: int = 500, seed: int = 0,
             targets: list | None = None):
    """The engine's ensemble around a scenario: the constants of role ``uncertain`` that the
    scenario does not set, drawn from their distributions (``engine.analysis.ensemble``).

    Returns (bands, prob, kind): bands[column] = array (5, T) of the percentiles 5/25/50/75/95;
    prob = the engine's probability of meeting each target (id, p_met, median_margin); kind =
    "posterior" when the model ships one (``MODEL_posterior.nc``: its constants drawn jointly from
    it, the others from their priors), else "prior".
    """
    from engine.analysis import ensemble as ens
    from engine.analysis.posterior import default_posterior, read_posterior

    exclude = set(overrides) | set(main_levers(bundle))
    space = ens.build_space(bundle.model, exclude=exclude)
    X = ens.draw(space, n, seed)
    kind = "prior"
    path = default_posterior(bundle.path) if bundle.path else None
    if path is not None:   # the posterior shipped beside the model: its constants drawn jointly from it
        post = read_posterior(path)
        labels = [lab for lab in post.labels if lab.split("[", 1)[0] not in exclude]
        rest = [lab for lab in space.labels if lab not in post.labels]
        space = ens.build_space(bundle.model, labels + rest)
        X = ens.draw_joint(space, n, seed, posterior=post)
        kind = "posterior"
    params = space.to_params(X, overrides)
    times, cols, _failed = ens.run_batch(bundle.model, params, overrides, n, variables)
    if times is None:
        raise RuntimeError("every run of the ensemble gave non-finite values")
    pct = ens._percentiles("current", times, cols, PERCENTILES)
    bands = {c: g[[f"p{p}" for p in PERCENTILES]].to_numpy().T for c, g in pct.groupby("variable", sort=False)}
    prob = ens._probabilities("current", times, cols, targets) if targets else pd.DataFrame()
    prob = prob.reindex(columns=["id", "p_met", "median_margin"])
    return bands, prob, kind


# ------------------------------------------------------------------ actuals and targets
ACTUAL_COLUMNS = ["scope", "indicator", "unit", "year", "value", "source"]


def load_actuals(bundle: Bundle, path: Path | None = None) -> pd.DataFrame:
    """Published actuals mapped onto model columns (the presentation's actuals mapping):
    columns indicator, column, year, value (model unit), source, kind."""
    path = path or env_path("LXSD_ACTUALS", ROOT / "data" / "linxiang_statistics.csv")
    rows = []
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            rows = actual_rows(bundle, csv.DictReader(fh))
    for t in bundle.targets:   # the plan's 2020 baseline is an actual too
        col, factor = simple_expression(t.get("expression", ""))
        if col and t.get("value_2020") is not None and t.get("measure", "level") == "level":
            rows.append({"indicator": t.get("id"), "column": col, "year": 2020.0,
                         "value": float(t["value_2020"]) / factor, "source": "plan 专栏1", "kind": "plan 2020"})
    return pd.DataFrame(rows, columns=["indicator", "column", "year", "value", "source", "kind"])


def actual_rows(bundle: Bundle, records) -> list[dict]:
    """Rows of data/'s long format (scope, indicator, unit, year, value, source) that the
    presentation maps onto a model column; others are skipped."""
    amap = bundle.presentation.get("actuals", {})
    rows = []
    for r in records:
        if r.get("scope") not in ("linxiang", None, "") or r.get("indicator") not in amap:
            continue
        try:
            year, value = float(r["year"]), float(r["value"])
        except (TypeError, ValueError, KeyError):
            continue
        if not (math.isfinite(year) and math.isfinite(value)):
            continue
        spec = amap[r["indicator"]]
        rows.append({"indicator": r["indicator"], "column": spec["column"], "year": year,
                     "value": value * spec["factor"], "source": r.get("source", "") or "", "kind": "actual"})
    return rows


def simple_expression(expr: str) -> tuple[str | None, float]:
    """'name', 'name[el]' or 'name * k' -> (column, k); anything else -> (None, 1)."""
    m = re.fullmatch(r"\s*(\w+(?:\[\w+\])?)\s*(?:\*\s*([0-9.eE+-]+))?\s*", expr or "")
    if not m:
        return None, 1.0
    return m.group(1), float(m.group(2)) if m.group(2) else 1.0


def target_markers(bundle: Bundle) -> pd.DataFrame:
    """Plan targets that a chart can show as markers: column, year, value (model unit);
    computed once per bundle (the targets do not change while it lives)."""
    cached = bundle.__dict__.get("_markers")
    if cached is None:
        cached = bundle.__dict__["_markers"] = _target_markers(bundle)
    return cached


def _target_markers(bundle: Bundle) -> pd.DataFrame:
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


def plan_paths(bundle: Bundle, df: pd.DataFrame) -> dict[str, dict]:
    """The plan as a path on each chart it concerns: column -> {x, y, name_zh, name_en, kind}.

    A growth target (measure cagr_pct, e.g. GDP 10.4 %/yr) or a reduction target (reduction_pct,
    e.g. energy intensity −13.5 % by 2025) on a plain column becomes the level path from the
    2020 value of ``df`` (one scenario, index time; 2020 is history, the same in every
    scenario): x(t) = x2020·(1+g)^(t−2020), or x2020·(1−r)^((t−2020)/(Y−2020)). A level
    target (urbanization 65 % in 2025) is the straight line from the plan's 2020 value.
    """
    out: dict[str, dict] = {}
    times = df.index.to_numpy(dtype=float)
    for t in bundle.targets:
        col, factor = simple_expression(t.get("expression", ""))
        target = t.get("target_2025")
        if not col or target is None:
            continue
        measure = t.get("measure") or ("reduction_pct" if t.get("direction") == "reduction" else "level")
        y0 = float(t.get("compare_to_year", 2020))
        y1 = float(t.get("target_year", 2025))
        years = np.arange(y0, y1 + 0.5)
        if measure in ("cagr_pct", "reduction_pct"):
            if col not in df.columns or not times[0] <= y0 <= times[-1]:
                continue
            x0 = float(np.interp(y0, times, df[col].to_numpy()))
            if measure == "cagr_pct":
                y = x0 * (1 + float(target) / 100) ** (years - y0)
            else:
                y = x0 * (1 - float(target) / 100) ** ((years - y0) / (y1 - y0))
        elif measure == "level" and t.get("value_2020") is not None:
            v0, v1 = float(t["value_2020"]) / factor, float(target) / factor
            y = v0 + (v1 - v0) * (years - y0) / (y1 - y0)
        else:
            continue
        out.setdefault(col, {"x": years, "y": y, "name_zh": t.get("name_zh", ""), "name_en": t.get("name_en", ""),
                             "kind": t.get("kind", ""), "target": float(target), "measure": measure})
    return out


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


# ------------------------------------------------------------------ calibration fit (engine.analysis.calibration)
def fit_table(bundle: Bundle, df: pd.DataFrame, actuals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Actuals against one scenario's run (index time): one row per actual."""
    from engine.analysis.calibration import values_at

    acts = bundle.actuals if actuals is None else actuals
    acts = acts if acts is not None else pd.DataFrame(columns=["column"])
    times = df.index.to_numpy(dtype=float)
    rows = []
    for r in acts.itertuples():
        if r.column not in df.columns or not (times[0] <= r.year <= times[-1]):
            continue
        model = float(values_at(times, df[r.column].to_numpy()[None, :], np.array([r.year]))[0, 0])
        rows.append({"indicator": r.indicator, "column": r.column, "year": int(r.year), "kind": r.kind,
                     "actual": r.value, "model": model,
                     "error_pct": 100 * (model - r.value) / r.value if r.value else np.nan})
    return pd.DataFrame(rows, columns=["indicator", "column", "year", "kind", "actual", "model", "error_pct"])


def fit_statistics(table: pd.DataFrame) -> dict[str, float]:
    """The engine's fit statistics (``engine.analysis.calibration.fit_stats``: MAPE %, RMSE,
    R², Theil's U_M/U_S/U_C) of model against actual over the table's rows, by ratio to the
    actual so that indicators in different units can be pooled (a perfect fit is 1 everywhere)."""
    from engine.analysis.calibration import fit_stats

    ok = table.dropna(subset=["actual", "model"])
    ok = ok[ok["actual"] != 0]
    if ok.empty:
        return {}
    stats = fit_stats(np.ones(len(ok)), ok["model"].to_numpy(float) / ok["actual"].to_numpy(float))
    err = ok["error_pct"].to_numpy(float)
    stats["bias_pct"] = float(np.mean(err))
    stats["max_abs_pct"] = float(np.max(np.abs(err)))
    stats["within_3pct"] = float(np.mean(np.abs(err) <= 3))
    return stats
