"""The plan's targets scored against model results (``lxsd scorecard``).

``scorecard(results_df, targets_path)`` reads the targets file (``model/targets.toml``, its
schema is described at the top of that file), evaluates each indicator's expression on the
results of every scenario in 2025, 2030 and 2035, judges met/missed in the target year and
returns one row per indicator per scenario.

Expressions are parsed by the engine's expression parser (``engine.parse.expr``) and
evaluated by walking the tree over a whitelisted subset: numbers, result columns
(``name`` or ``name[element]``), ``+ - * / ^``, unary ``-``/``+`` and the functions
MIN, MAX, ABS, SQRT, EXP, LN. Nothing is passed to ``eval``.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from engine.errors import ModelError, Problem
from engine.parse.expr import BinOp, Call, Num, Ref, Unary, parse_expression

COLUMNS = ["scenario", "id", "name_zh", "name_en", "kind", "unit", "value_2020", "target_2025",
           "value_2025", "value_2030", "value_2035", "met", "margin"]

_FUNCS = {
    "MIN": lambda *a: np.minimum.reduce(np.broadcast_arrays(*a)),
    "MAX": lambda *a: np.maximum.reduce(np.broadcast_arrays(*a)),
    "ABS": lambda x: np.abs(x),
    "SQRT": lambda x: np.sqrt(x),
    "EXP": lambda x: np.exp(x),
    "LN": lambda x: np.log(x),
}
_MEASURES = {"level", "reduction_pct", "cagr_pct", "change"}
_DIRECTIONS = {"min", "max", "reduction"}
_KINDS = {"binding", "expected"}


class ScorecardError(ModelError):
    """A problem in the targets file or an expression it contains."""


def _problem(file: str, key: str | None, msg: str, hint: str | None = None) -> ScorecardError:
    return ScorecardError(Problem(file, key, msg, hint))


# ------------------------------------------------------------------ targets file
def load_targets(path: str | Path) -> list[dict]:
    """Read and check the targets file; returns the list of indicator tables."""
    file = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _problem(file, None, "targets file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise _problem(file, None, f"TOML syntax error: {exc}") from None
    items = data.get("indicator")
    if not isinstance(items, list) or not items:
        raise _problem(file, None, "no [[indicator]] tables", "see the schema at the top of model/targets.toml")
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, ind in enumerate(items):
        key = str(ind.get("id", f"indicator #{i + 1}"))
        if "id" not in ind:
            problems.append(Problem(file, key, "missing id"))
        elif key in seen:
            problems.append(Problem(file, key, "duplicate id"))
        seen.add(key)
        if ind.get("kind") not in _KINDS:
            problems.append(Problem(file, key, f"kind must be one of {sorted(_KINDS)}, not {ind.get('kind')!r}"))
        if ind.get("direction") not in _DIRECTIONS:
            problems.append(Problem(file, key, f"direction must be one of {sorted(_DIRECTIONS)}"))
        if ind.get("modelled", True):
            if "expression" not in ind:
                problems.append(Problem(file, key, "modelled indicator without expression",
                                        "give expression, or modelled = false with reason"))
            else:
                try:
                    _check_tree(parse_expression(str(ind["expression"])))
                except Exception as exc:  # syntax or disallowed construct
                    problems.append(Problem(file, key, f"expression: {exc}"))
            measure = _measure(ind)
            if measure not in _MEASURES:
                problems.append(Problem(file, key, f"measure must be one of {sorted(_MEASURES)}"))
            elif measure != "level" and "compare_to_year" not in ind:
                problems.append(Problem(file, key, f"measure {measure!r} needs compare_to_year"))
        elif "reason" not in ind:
            problems.append(Problem(file, key, "modelled = false needs a reason"))
    if problems:
        raise ScorecardError(problems)
    return items


def _measure(ind: Mapping) -> str:
    default = "reduction_pct" if ind.get("direction") == "reduction" else "level"
    return str(ind.get("measure", default))


# ------------------------------------------------------------------ expressions
def _check_tree(node) -> None:
    """Reject anything outside the whitelisted subset."""
    if isinstance(node, Num):
        return
    if isinstance(node, Ref):
        if node.subs is not None and (len(node.subs) != 1 or node.subs[0].endswith("!")):
            raise ValueError(f"{node.name}[{','.join(node.subs)}]: give exactly one element")
        return
    if isinstance(node, BinOp):
        if node.op not in ("+", "-", "*", "/", "^"):
            raise ValueError(f"operator {node.op!r} is not allowed in a target expression")
        _check_tree(node.left)
        _check_tree(node.right)
        return
    if isinstance(node, Unary):
        if node.op not in ("-", "+"):
            raise ValueError(f"operator {node.op!r} is not allowed in a target expression")
        _check_tree(node.operand)
        return
    if isinstance(node, Call):
        if node.func.upper() not in _FUNCS or node.subs is not None:
            raise ValueError(f"function {node.func!r} is not allowed; use {', '.join(sorted(_FUNCS))}")
        for a in node.args:
            _check_tree(a)
        return
    raise ValueError(f"{type(node).__name__} is not allowed in a target expression")


def _column(node: Ref) -> str:
    return node.name if node.subs is None else f"{node.name}[{node.subs[0]}]"


def evaluate(expression: str, frame: pd.DataFrame) -> pd.Series:
    """Evaluate an expression over the columns of ``frame``, row by row."""
    tree = parse_expression(expression)
    _check_tree(tree)

    def ev(node):
        if isinstance(node, Num):
            return float(node.value)
        if isinstance(node, Ref):
            col = _column(node)
            if col not in frame.columns:
                raise KeyError(col)
            return frame[col].to_numpy(dtype=float)
        if isinstance(node, Unary):
            v = ev(node.operand)
            return -v if node.op == "-" else v
        if isinstance(node, BinOp):
            a, b = ev(node.left), ev(node.right)
            with np.errstate(divide="ignore", invalid="ignore"):
                if node.op == "+":
                    return a + b
                if node.op == "-":
                    return a - b
                if node.op == "*":
                    return a * b
                if node.op == "/":
                    return np.divide(a, b)
                return np.power(a, b)
        if isinstance(node, Call):
            with np.errstate(divide="ignore", invalid="ignore"):
                return _FUNCS[node.func.upper()](*[ev(a) for a in node.args])
        raise ValueError(f"cannot evaluate {node!r}")

    out = ev(tree)
    return pd.Series(np.broadcast_to(out, (len(frame),)).astype(float), index=frame.index)


def _at(series: pd.Series, year: float) -> float:
    """The value at a year (exact time, else linear interpolation; NaN outside the run)."""
    t = np.asarray(series.index, dtype=float)
    v = series.to_numpy(dtype=float)
    if len(t) == 0 or year < t.min() - 1e-9 or year > t.max() + 1e-9:
        return math.nan
    hit = np.isclose(t, year)
    if hit.any():
        return float(v[hit][0])
    return float(np.interp(year, t, v))


def measure_value(ind: Mapping, series: pd.Series, year: float) -> float:
    """The indicator in ``year`` given its expression's series over time."""
    measure = _measure(ind)
    now = _at(series, year)
    if measure == "level":
        return now
    base_year = float(ind["compare_to_year"])
    base = _at(series, base_year)
    if measure == "change":
        return now - base
    if not base or math.isnan(base) or math.isnan(now):
        return math.nan
    if measure == "reduction_pct":
        return 100.0 * (1.0 - now / base)
    span = year - base_year  # cagr_pct
    if span <= 0 or now / base <= 0:
        return math.nan
    return 100.0 * ((now / base) ** (1.0 / span) - 1.0)


def _judge(ind: Mapping, value: float) -> tuple[bool | None, float]:
    target = ind.get("target_2025")
    if target is None or value is None or math.isnan(value):
        return None, math.nan
    margin = (float(target) - value) if ind["direction"] == "max" else (value - float(target))
    return bool(margin >= -1e-9), margin


# ------------------------------------------------------------------ the table
def scorecard(results_df: pd.DataFrame, targets_path: str | Path,
              years: tuple[int, int, int] = (2025, 2030, 2035)) -> pd.DataFrame:
    """One row per indicator per scenario.

    results_df: the engine's results (``Results.to_dataframe()``): MultiIndex (scenario, time),
        columns such as ``gdp_real`` and ``value_added[primary]``.
    Columns of the answer: scenario, id, name_zh, name_en, kind, unit, value_2020, target_2025,
    value_2025, value_2030, value_2035 (the measure in ``years``), met (True/False in the target
    year; None when not modelled or not computable), margin (value - target for "min" and
    "reduction", target - value for "max"; positive = met with room to spare).
    """
    file = str(targets_path)
    targets = load_targets(targets_path)
    if not isinstance(results_df.index, pd.MultiIndex) or results_df.index.nlevels != 2:
        raise _problem("results", None, "results must have a (scenario, time) MultiIndex",
                       "use Results.to_dataframe()")
    y1, y2, y3 = years
    rows = []
    for scen in results_df.index.get_level_values(0).unique():
        frame = results_df.xs(scen, level=0)
        frame = frame.set_axis(np.asarray(frame.index, dtype=float), axis=0)
        for ind in targets:
            row = {"scenario": scen, "id": ind["id"], "name_zh": ind.get("name_zh", ""),
                   "name_en": ind.get("name_en", ""), "kind": ind["kind"], "unit": ind.get("unit", ""),
                   "value_2020": ind.get("value_2020", math.nan), "target_2025": ind.get("target_2025", math.nan),
                   "value_2025": math.nan, "value_2030": math.nan, "value_2035": math.nan,
                   "met": None, "margin": math.nan}
            if ind.get("modelled", True):
                try:
                    series = evaluate(str(ind["expression"]), frame)
                except KeyError as exc:
                    raise _problem(file, ind["id"], f"the results have no column {exc.args[0]!r}",
                                   "run the model saving every variable the targets use") from None
                vals = [measure_value(ind, series, y) for y in (y1, y2, y3)]
                row["value_2025"], row["value_2030"], row["value_2035"] = vals
                target_year = float(ind.get("target_year", 2025))
                at_target = vals[0] if target_year == y1 else measure_value(ind, series, target_year)
                row["met"], row["margin"] = _judge(ind, at_target)
            rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["met"] = out["met"].astype(object)
    return out


def variables_needed(targets_path: str | Path) -> list[str]:
    """Model variable names the targets' expressions use (to save only those)."""
    from engine.parse.expr import parse_expression as _p

    names: set[str] = set()

    def walk(node):
        if isinstance(node, Ref):
            names.add(node.name)
        elif isinstance(node, BinOp):
            walk(node.left)
            walk(node.right)
        elif isinstance(node, Unary):
            walk(node.operand)
        elif isinstance(node, Call):
            for a in node.args:
                walk(a)

    for ind in load_targets(targets_path):
        if ind.get("modelled", True):
            walk(_p(str(ind["expression"])))
    return sorted(names)
