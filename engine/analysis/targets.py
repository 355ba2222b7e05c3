"""Targets and analysis expressions: one module for the CLI, the analyses and the app.

* :class:`Expr`: an expression over a model's outputs (names, ``name[element]``, numbers,
  ``+ - * / ^``, parentheses, MIN MAX ABS SQRT EXP LN), parsed to a Python AST, checked
  against a whitelist and evaluated by walking the tree over arrays of N runs: no text
  reaches ``eval``.
* :func:`read_target_tables`: the targets file (``model/targets.toml``, its schema at the
  top of that file) read and checked; :func:`load_targets`: its modelled targets as
  :class:`Target` objects (the measure in a year, the margin, met or not), for one run or N.
* :func:`scorecard`: the table of ``lxsd scorecard`` and the app (each indicator in 2025,
  2030 and 2035 per scenario, met or missed, the margin).
"""
from __future__ import annotations

import ast
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.errors import EngineError, ModelError, Problem

COLUMNS = ["scenario", "id", "name_zh", "name_en", "kind", "unit", "value_2020", "target_2025",
           "value_2025", "value_2030", "value_2035", "met", "margin"]
MEASURES = ("level", "reduction_pct", "cagr_pct", "change")
DIRECTIONS = ("min", "max", "reduction")
KINDS = ("binding", "expected")


_FUNCS: dict[str, Callable] = {"MIN": np.minimum, "MAX": np.maximum, "ABS": np.abs, "SQRT": np.sqrt,
                               "EXP": np.exp, "LN": np.log}
_REF = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\[\s*([^\]]+?)\s*\]")


class Expr:
    """An expression over a model's outputs (names, ``name[element]``, numbers, + - * / ^,
    parentheses, MIN MAX ABS SQRT EXP LN), evaluated on arrays of N runs.

    >>> e = Expr("value_added[primary] / gdp_real * 100")
    >>> e.columns
    ['value_added[primary]', 'gdp_real']
    >>> float(e.evaluate({"value_added[primary]": 2.0, "gdp_real": 8.0}.__getitem__))
    25.0
    """

    def __init__(self, text: str, where: str = "expression") -> None:
        self.text = str(text)
        self.where = where
        refs: dict[str, str] = {}

        def sub(m: re.Match) -> str:
            col = f"{m.group(1)}[{','.join(p.strip() for p in m.group(2).split(','))}]"
            key = f"__c{len(refs)}"
            refs[key] = col
            return key

        src = _REF.sub(sub, self.text).replace("^", "**")
        try:
            tree = ast.parse(src, mode="eval")
        except SyntaxError as exc:
            raise EngineError(f"{where}: cannot parse {self.text!r}: {exc.msg}") from None
        self._tree = tree
        self._refs = refs
        found: list[tuple[int, str]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                if node.id not in _FUNCS:
                    found.append((node.col_offset, refs.get(node.id, node.id)))
            elif isinstance(node, ast.Call):
                if not (isinstance(node.func, ast.Name) and node.func.id.upper() in _FUNCS) or node.keywords:
                    raise EngineError(f"{where}: {self.text!r}: only MIN MAX ABS SQRT EXP LN may be called")
            elif not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Load, ast.Add,
                                       ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)):
                raise EngineError(f"{where}: {self.text!r}: {node.__class__.__name__} is not allowed")
        cols = list(dict.fromkeys(c for _, c in sorted(found)))  # in the order they are written
        self.columns = [c for c in cols if c.upper() not in _FUNCS]  # call names are Name nodes too
        self.variables = sorted({c.split("[")[0] for c in self.columns})

    def evaluate(self, get: Callable[[str], np.ndarray]):
        def ev(node):
            if isinstance(node, ast.Expression):
                return ev(node.body)
            if isinstance(node, ast.Constant):
                if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                    raise EngineError(f"{self.where}: {self.text!r}: {node.value!r} is not a number")
                return float(node.value)
            if isinstance(node, ast.Name):
                return get(self._refs.get(node.id, node.id))
            if isinstance(node, ast.UnaryOp):
                v = ev(node.operand)
                return -v if isinstance(node.op, ast.USub) else v
            if isinstance(node, ast.BinOp):
                a, b = ev(node.left), ev(node.right)
                op = node.op
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    if isinstance(op, ast.Add):
                        return a + b
                    if isinstance(op, ast.Sub):
                        return a - b
                    if isinstance(op, ast.Mult):
                        return a * b
                    if isinstance(op, ast.Div):
                        return np.divide(a, b)
                    return np.power(a, b)
            if isinstance(node, ast.Call):
                args = [ev(a) for a in node.args]
                fn = _FUNCS[node.func.id.upper()]
                with np.errstate(divide="ignore", invalid="ignore"):
                    if fn in (np.minimum, np.maximum):
                        out = args[0]
                        for a in args[1:]:
                            out = fn(out, a)
                        return out
                    return fn(*args)
            raise EngineError(f"{self.where}: {self.text!r}: cannot evaluate")  # pragma: no cover

        return ev(self._tree)


def check_columns(model, expr: Expr) -> list[str]:
    """Names in ``expr`` that are not saved outputs of ``model`` (empty when all are)."""
    bad = []
    for col in expr.columns:
        name = col.split("[")[0]
        rv = model.rvars.get(name)
        if rv is None or rv.kind == "lookup" or rv.internal:
            bad.append(col)
            continue
        if "[" in col:
            elems = tuple(col[len(name) + 1:-1].split(","))
            if elems not in model.elements(name):
                bad.append(col)
        elif rv.dims:
            bad.append(col)
    return bad


# ---------------------------------------------------------------------------- targets
class ScorecardError(ModelError):
    """A problem in the targets file or an expression it contains."""


def _measure(row: Mapping) -> str:
    """The row's measure; a "reduction" target without one is a reduction in % (reduction_pct)."""
    return str(row.get("measure", "reduction_pct" if row.get("direction") == "reduction" else "level"))


@dataclass
class Target:
    """One modelled indicator of the targets file."""

    id: str
    name_zh: str
    name_en: str
    kind: str
    direction: str
    target: float                 # nan when the row has no numeric target
    expr: Expr
    measure: str = "level"
    compare_to_year: float | None = None
    target_year: float = 2025
    unit: str = ""
    row: dict = field(default_factory=dict)   # the file's table, for its other fields (value_2020, ...)

    @property
    def binding(self) -> bool:
        return self.kind == "binding"

    def years(self) -> list[float]:
        return [self.target_year] + ([self.compare_to_year] if self.compare_to_year is not None else [])

    def value(self, at: Callable[[str, float], np.ndarray], year: float | None = None):
        """The measure in ``year`` (default target_year); ``at(column, year)`` gives N values."""
        y = self.target_year if year is None else year
        cur = self.expr.evaluate(lambda c: at(c, y))
        if self.measure == "level":
            return cur
        since = self.compare_to_year
        if since is None:   # read_target_tables refuses this; a Target built by hand may not have it
            raise EngineError(f"{self.id}: measure {self.measure!r} needs compare_to_year")
        base = self.expr.evaluate(lambda c: at(c, since))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.measure == "change":
                return cur - base
            ratio = np.divide(cur, np.where(base == 0, np.nan, base))
            if self.measure == "reduction_pct":
                return 100.0 * (1.0 - ratio)
            span = y - since  # cagr_pct
            if span <= 0:
                return np.full(np.shape(ratio), np.nan) if np.ndim(ratio) else math.nan
            return 100.0 * (np.power(np.where(ratio > 0, ratio, np.nan), 1.0 / span) - 1.0)

    def margin(self, value):
        """Positive = met with room to spare (value - target, or target - value for "max")."""
        return self.target - value if self.direction == "max" else value - self.target


def read_target_tables(path: str | Path) -> list[dict]:
    """Read and check the targets file; the list of its [[indicator]] tables.

    Every problem is reported at once (ScorecardError naming the file and the indicator):
    a missing or duplicate id, an unknown kind, direction or measure, a modelled indicator
    without an expression or with one outside the whitelist, a change measure without
    compare_to_year, ``modelled = false`` without a reason.
    """
    file = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScorecardError(Problem(file, None, "targets file not found")) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScorecardError(Problem(file, None, f"TOML syntax error: {exc}")) from None
    items = data.get("indicator")
    if not isinstance(items, list) or not items:
        raise ScorecardError(Problem(file, None, "no [[indicator]] tables",
                                     "see the schema at the top of model/targets.toml"))
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, ind in enumerate(items):
        key = str(ind.get("id", f"indicator #{i + 1}"))
        if "id" not in ind:
            problems.append(Problem(file, key, "missing id"))
        elif key in seen:
            problems.append(Problem(file, key, "duplicate id"))
        seen.add(key)
        if ind.get("kind") not in KINDS:
            problems.append(Problem(file, key, f"kind must be one of {list(KINDS)}, not {ind.get('kind')!r}"))
        if ind.get("direction") not in DIRECTIONS:
            problems.append(Problem(file, key, f"direction must be one of {list(DIRECTIONS)}"))
        if ind.get("modelled", True):
            problems += _modelled_problems(file, key, ind)
        elif "reason" not in ind:
            problems.append(Problem(file, key, "modelled = false needs a reason"))
    if problems:
        raise ScorecardError(problems)
    return items


def _modelled_problems(file: str, key: str, ind: Mapping) -> list[Problem]:
    """What is wrong with a modelled indicator's expression and measure."""
    problems = []
    if "expression" not in ind:
        problems.append(Problem(file, key, "modelled indicator without expression",
                                "give expression, or modelled = false with reason"))
    else:
        try:
            Expr(str(ind["expression"]), f"{file}: {key}.expression")
        except EngineError as exc:
            problems.append(Problem(file, key, f"expression: {exc}"))
    measure = _measure(ind)
    if measure not in MEASURES:
        problems.append(Problem(file, key, f"measure must be one of {list(MEASURES)}"))
    elif measure != "level" and "compare_to_year" not in ind:
        problems.append(Problem(file, key, f"measure {measure!r} needs compare_to_year"))
    return problems


def target_of(row: Mapping, file: str = "targets") -> Target:
    """One checked table of :func:`read_target_tables` as a :class:`Target`."""
    rid = str(row["id"])
    target = row.get("target_2025")
    return Target(rid, str(row.get("name_zh", "")), str(row.get("name_en", "")), str(row.get("kind", "expected")),
                  str(row.get("direction", "min")), math.nan if target is None else float(target),
                  Expr(str(row["expression"]), f"{file}: {rid}.expression"), _measure(row),
                  None if row.get("compare_to_year") is None else float(row["compare_to_year"]),
                  float(row.get("target_year", 2025)), str(row.get("unit", "")), dict(row))


def load_targets(path: str | Path, model=None, binding_only: bool = False) -> tuple[list[Target], list[str]]:
    """The modelled targets with a numeric target (only binding ones with ``binding_only``), and
    notes on the rows left out and why; with ``model``, rows using outputs it lacks are left out."""
    targets, notes = [], []
    for row in read_target_tables(path):
        rid = str(row["id"])
        if row.get("modelled", True) is False:
            notes.append(f"{rid}: not modelled" + (f" ({row['reason']})" if row.get("reason") else ""))
            continue
        if binding_only and row.get("kind") != "binding":
            continue
        if row.get("target_2025") is None:
            notes.append(f"{rid}: no numeric target")
            continue
        t = target_of(row, str(path))
        if model is not None:
            bad = check_columns(model, t.expr)
            if bad:
                notes.append(f"{rid}: skipped, the model has no output {', '.join(bad)}")
                continue
        targets.append(t)
    return targets, notes


def variables_needed(targets_path: str | Path) -> list[str]:
    """Model variable names the targets' expressions use (to save only those)."""
    names: set[str] = set()
    for row in read_target_tables(targets_path):
        if row.get("modelled", True):
            names.update(Expr(str(row["expression"])).variables)
    return sorted(names)


# ---------------------------------------------------------------------------- the scorecard
def _frame_at(frame: pd.DataFrame) -> Callable[[str, float], np.ndarray]:
    """at(column, year) over one scenario's results: the exact time, else linear; NaN outside the run."""
    t = np.asarray(frame.index, dtype=float)

    def at(col: str, year: float) -> np.ndarray:
        if col not in frame.columns:
            raise KeyError(col)
        v = frame[col].to_numpy(dtype=float)
        if len(t) == 0 or year < t.min() - 1e-9 or year > t.max() + 1e-9:
            return np.array([math.nan])
        hit = np.flatnonzero(np.isclose(t, year))
        return np.array([v[hit[0]] if len(hit) else np.interp(year, t, v)])
    return at


def evaluate(expression: str, frame: pd.DataFrame) -> pd.Series:
    """Evaluate an expression over the columns of ``frame``, row by row (an error for a column it lacks)."""
    expr = Expr(expression)

    def get(col):
        if col not in frame.columns:
            raise KeyError(col)
        return frame[col].to_numpy(dtype=float)

    out = expr.evaluate(get)
    return pd.Series(np.broadcast_to(out, (len(frame),)).astype(float), index=frame.index)


def measure_value(ind: Mapping, series: pd.Series, year: float) -> float:
    """The indicator ``ind`` (a targets-file table) in ``year``, given its expression's series over time."""
    frame = pd.DataFrame({"__v": series.to_numpy(dtype=float)}, index=np.asarray(series.index, dtype=float))
    t = target_of(dict(ind, expression="__v", id=ind.get("id", "?")))
    return float(np.asarray(t.value(_frame_at(frame), year)).reshape(-1)[0])


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
    rows_in = read_target_tables(targets_path)
    if not isinstance(results_df.index, pd.MultiIndex) or results_df.index.nlevels != 2:
        raise ScorecardError(Problem("results", None, "results must have a (scenario, time) MultiIndex",
                                     "use Results.to_dataframe()"))
    rows = []
    for scen in results_df.index.get_level_values(0).unique():
        frame = results_df.xs(scen, level=0)
        frame = frame.set_axis(np.asarray(frame.index, dtype=float), axis=0)
        at = _frame_at(frame)
        for ind in rows_in:
            row = {"scenario": scen, "id": ind["id"], "name_zh": ind.get("name_zh", ""),
                   "name_en": ind.get("name_en", ""), "kind": ind["kind"], "unit": ind.get("unit", ""),
                   "value_2020": ind.get("value_2020", math.nan), "target_2025": ind.get("target_2025", math.nan),
                   "value_2025": math.nan, "value_2030": math.nan, "value_2035": math.nan,
                   "met": None, "margin": math.nan}
            if ind.get("modelled", True):
                t = target_of(ind, file)
                try:
                    vals = [float(np.asarray(t.value(at, y)).reshape(-1)[0]) for y in years]
                    now = vals[0] if t.target_year == years[0] else float(np.asarray(t.value(at)).reshape(-1)[0])
                except KeyError as exc:
                    raise ScorecardError(Problem(file, ind["id"], f"the results have no column {exc.args[0]!r}",
                                                 "run the model saving every variable the targets use")) from None
                row["value_2025"], row["value_2030"], row["value_2035"] = vals
                if not math.isnan(t.target) and not math.isnan(now):
                    m = float(t.margin(now))
                    row["met"], row["margin"] = bool(m >= -1e-9), m
            rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["met"] = out["met"].astype(object)
    return out
