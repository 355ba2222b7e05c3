"""Scenario files: a name in Chinese and English, a base, and overrides of constants/inputs.

A scenario may name a ``base`` (another file stem in the same folder); the base's
settings apply first. Every key is checked against the model: an unknown variable,
a value outside the constant's range or a wrong type is an error naming the file
and the key, with the allowed values.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ModelError, Problem
from engine.parse.toml_file import read_toml

_FIELDS = {"scenario", "set", "series"}
_META = {"name", "label_zh", "label_en", "doc", "base", "author"}


@dataclass
class Scenario:
    """A named set of overrides, with its base chain already applied."""

    name: str
    file: str
    label_zh: str = ""
    label_en: str = ""
    doc: str = ""
    base: str | None = None
    author: str | None = None
    overrides: dict[str, object] = field(default_factory=dict)

    def label(self, lang: str = "zh") -> str:
        return (self.label_zh if lang == "zh" else self.label_en) or self.name


def _bad(file: str, key: str | None, msg: str, hint: str | None = None) -> ModelError:
    return ModelError(Problem(file, key, msg, hint))


def load_scenario(path: str | Path, model, _seen: tuple[str, ...] = ()) -> Scenario:
    """Read and check a scenario file against a compiled model (engine.simulation.CompiledModel)."""
    path = Path(path)
    data = read_toml(path, "scenario file")
    return scenario_from_dict(data, model, str(path), path.parent, _seen)


def scenario_from_dict(data: dict, model, file: str, folder: Path | None = None,
                       _seen: tuple[str, ...] = ()) -> Scenario:
    """Check a scenario given as a dict (the TOML's shape); ``folder`` finds its base."""
    problems: list[Problem] = []
    for key in data:
        if key not in _FIELDS:
            problems.append(Problem(file, key, "unknown section", "sections are [scenario], [set], [series]"))
    meta = data.get("scenario", {})
    if not isinstance(meta, dict):
        raise _bad(file, "scenario", "must be a table")
    for key in meta:
        if key not in _META:
            problems.append(Problem(file, f"scenario.{key}", "unknown field", f"fields are {', '.join(sorted(_META))}"))
    name = str(meta.get("name") or Path(file).stem)
    sc = Scenario(name=name, file=file, label_zh=str(meta.get("label_zh", "")),
                  label_en=str(meta.get("label_en", "")), doc=str(meta.get("doc", "")),
                  base=meta.get("base"), author=meta.get("author"))
    if sc.base:
        if folder is None:
            problems.append(Problem(file, "scenario.base", "a base scenario needs the scenario's folder"))
        elif sc.base in _seen or sc.base == Path(file).stem:
            chain = _seen + (Path(file).stem, sc.base)
            problems.append(Problem(file, "scenario.base", f"bases form a loop: {' -> '.join(chain)}"))
        else:
            base_path = folder / f"{sc.base}.toml"
            if not base_path.exists():
                options = sorted(p.stem for p in folder.glob("*.toml"))
                problems.append(Problem(file, "scenario.base", f"base scenario {sc.base!r} not found in {folder}",
                                        f"one of {', '.join(options)}"))
            else:
                base = load_scenario(base_path, model, _seen + (Path(file).stem,))
                sc.overrides.update(base.overrides)
    variables = model.model.variables
    for key, value in (data.get("set") or {}).items():
        var = variables.get(key)
        if var is None or var.kind != "constant":
            pool = [n for n, v in variables.items() if v.kind == "constant"]
            close = difflib.get_close_matches(key, pool, n=3)
            what = "unknown variable" if var is None else f"is a {var.kind}, only constants can be set"
            problems.append(Problem(file, f"set.{key}", what, f"did you mean {', '.join(close)}?" if close else
                                    "list the constants with `lxsd describe MODEL`"))
            continue
        err = _check_value(var, value, model)
        if err:
            problems.append(Problem(file, f"set.{key}", err[0], err[1]))
            continue
        sc.overrides[key] = value
    for key, spec in (data.get("series") or {}).items():
        var = variables.get(key)
        if var is None or var.kind != "data":
            pool = [n for n, v in variables.items() if v.kind == "data"]
            problems.append(Problem(file, f"series.{key}", "not a data input of the model",
                                    f"data inputs: {', '.join(pool) or 'none'}"))
            continue
        if not (isinstance(spec, dict) and set(spec) == {"time", "values"}):
            problems.append(Problem(file, f"series.{key}", "must be {time = [...], values = [...]}"))
            continue
        sc.overrides[key] = {"time": spec["time"], "values": spec["values"]}
    if problems:
        raise ModelError(problems)
    return sc


def _check_value(var, value, model) -> tuple[str, str | None] | None:
    """None if value suits the constant; else (problem, allowed values)."""
    allowed = f"a number in [{var.range[0]:g}, {var.range[1]:g}]" if var.range else "a number"
    if var.dims:
        elems = model.model.dim_elements(var.dims[0])
        if isinstance(value, dict):
            unknown = [k for k in value if k not in elems]
            if unknown:
                return f"unknown element(s) {unknown}", f"elements: {', '.join(elems)}"
            missing = [e for e in elems if e not in value]
            if missing:
                return f"missing element(s) {missing}", f"give every element of {var.dims[0]!r} or one number"
            for k, v in value.items():
                err = _check_scalar(var, v, allowed)
                if err:
                    return f"element {k}: {err[0]}", err[1]
            return None
    return _check_scalar(var, value, allowed)


def _check_scalar(var, value, allowed) -> tuple[str, str | None] | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"value {value!r} is a {type(value).__name__}, not a number", allowed
    if var.range and not (var.range[0] <= value <= var.range[1]):
        return f"value {value:g} is outside the range [{var.range[0]:g}, {var.range[1]:g}]", allowed
    return None
