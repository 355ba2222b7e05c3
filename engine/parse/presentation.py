"""The optional ``[presentation]`` table of a model file: what an app shows first.

It holds no equations, only names of the model's own variables, so a front end (the Streamlit
app, a report) needs no hard-coded lists::

    [presentation]
    headline = ["gdp_real", "urbanization_rate"]        # headline variables, display order
    cards = ["gdp_real", "co2_emissions"]               # the "what does this lever do" Δ cards
    card_years = [2025, 2030]
    charts = ["gdp_real", "co2_emissions"]              # charts shown first
    lever_groups = [{name = "projects", label_zh = "重大项目", label_en = "Projects",
                     levers = ["ethylene_start_year"]}]

    [presentation.actuals]          # data/ long format: indicator -> model column x factor
    gdp = {column = "gdp_nominal", factor = 1.0}

Only shapes are checked here; :func:`check_names` checks the names against the model.
"""
from __future__ import annotations

import math
import re

from engine.errors import Problem

COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[A-Za-z_][A-Za-z0-9_]*(,[A-Za-z_][A-Za-z0-9_]*)*\])?$")
LISTS = ("headline", "cards", "charts")
FIELDS = set(LISTS) | {"card_years", "lever_groups", "actuals"}


def parse_presentation(raw: object, source: str) -> tuple[dict, list[Problem]]:
    """Check the table's shape; returns (presentation, problems). Keys absent stay absent."""
    problems: list[Problem] = []

    def bad(key: str, msg: str, hint: str | None = None) -> None:
        problems.append(Problem(source, f"presentation.{key}" if key else "[presentation]", msg, hint))

    if raw is None:
        return {}, problems
    if not isinstance(raw, dict):
        bad("", "must be a table", "see docs/model-format.md, [presentation]")
        return {}, problems
    out: dict = {}
    for key in raw:
        if key not in FIELDS:
            bad(str(key), "is not a presentation field", f"fields are {', '.join(sorted(FIELDS))}")
    for key in LISTS:
        if key in raw:
            val = raw[key]
            if not isinstance(val, list) or not all(isinstance(v, str) and COLUMN.match(v) for v in val):
                bad(key, "must be a list of variable names (name or name[element])")
            else:
                out[key] = list(val)
    if "card_years" in raw:
        yrs = raw["card_years"]
        if not isinstance(yrs, list) or not all(isinstance(y, int) and not isinstance(y, bool) for y in yrs):
            bad("card_years", "must be a list of whole years", "e.g. [2025, 2030]")
        else:
            out["card_years"] = list(yrs)
    if "lever_groups" in raw:
        out["lever_groups"] = _lever_groups(raw["lever_groups"], bad)
    if "actuals" in raw:
        out["actuals"] = _actuals(raw["actuals"], bad)
    return out, problems


def _lever_groups(groups: object, bad) -> list[dict]:
    if not isinstance(groups, list):
        bad("lever_groups", "must be a list of {name, label_zh, label_en, levers}")
        return []
    out = []
    for i, g in enumerate(groups):
        where = f"lever_groups[{i}]"
        if not isinstance(g, dict) or not isinstance(g.get("levers"), list) \
                or not all(isinstance(v, str) for v in g["levers"]):
            bad(where, "must be {name = \"...\", label_zh = \"...\", label_en = \"...\", levers = [...]}")
            continue
        extra = set(g) - {"name", "label_zh", "label_en", "levers"}
        if extra:
            bad(where, f"unknown field(s) {sorted(extra)}")
            continue
        if not all(isinstance(g.get(k, ""), str) for k in ("name", "label_zh", "label_en")):
            bad(where, "name and labels must be text")
            continue
        out.append({"name": g.get("name") or f"group{i + 1}", "label_zh": g.get("label_zh", ""),
                    "label_en": g.get("label_en", ""), "levers": list(g["levers"])})
    return out


def _actuals(acts: object, bad) -> dict:
    if not isinstance(acts, dict):
        bad("actuals", "must map data indicators to {column = \"...\", factor = number}")
        return {}
    out = {}
    for ind, spec in acts.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("column"), str) \
                or not COLUMN.match(spec["column"]) or set(spec) - {"column", "factor"}:
            bad(f"actuals.{ind}", "must be {column = \"name or name[element]\", factor = number}")
            continue
        factor = spec.get("factor", 1.0)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) \
                or factor == 0:
            bad(f"actuals.{ind}", "factor must be a finite non-zero number (data unit -> model unit)")
            continue
        out[str(ind)] = {"column": spec["column"], "factor": float(factor)}
    return out


def check_names(presentation: dict, variables: dict, source: str) -> list[Problem]:
    """Names in the table that the model lacks (an element is not checked: columns are formed at run time)."""
    problems = []

    def known(col: str) -> bool:
        return col.split("[", 1)[0] in variables

    for key in LISTS:
        for col in presentation.get(key, []):
            if not known(col):
                problems.append(Problem(source, f"presentation.{key}", f"{col!r} is not a variable of the model"))
    for i, g in enumerate(presentation.get("lever_groups", [])):
        for name in g["levers"]:
            var = variables.get(name)
            if var is None or var.kind != "constant":
                problems.append(Problem(source, f"presentation.lever_groups[{i}]",
                                        f"{name!r} is not a constant of the model"))
    for ind, spec in presentation.get("actuals", {}).items():
        if not known(spec["column"]):
            problems.append(Problem(source, f"presentation.actuals.{ind}",
                                    f"{spec['column']!r} is not a variable of the model"))
    return problems
