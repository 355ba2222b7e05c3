"""Scenario files: a name in Chinese and English, a base, and overrides of constants/inputs.

A scenario may name a ``base`` (another file stem in the same folder); the base's
settings apply first. A base is confined to the scenario's folder (or a folder in
``allowed``): an absolute path, ``..`` or a link leading out is an error, so a scenario
(an upload, say) cannot read values from, or probe for, other files. Every key is
checked against the model: an unknown variable, a value outside the constant's range
or a wrong type is an error naming the file and the key, with the allowed values.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import math

from engine.errors import ModelError, Problem
from engine.parse.toml_file import read_toml

_FIELDS = {"scenario", "set", "series"}
_META = {"name", "label_zh", "label_en", "doc", "base", "author"}
_MAX_BASE = 255   # characters; file systems refuse longer names


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


def load_scenario(path: str | Path, model, _seen: tuple[str, ...] = (),
                  allowed: tuple[Path, ...] = ()) -> Scenario:
    """Read and check a scenario file against a compiled model (engine.simulation.CompiledModel).

    Its base (if any) must lie in the file's folder or in one of the ``allowed`` folders."""
    path = Path(path)
    data = read_toml(path, "scenario file")
    return scenario_from_dict(data, model, str(path), path.parent, _seen, allowed)


def base_path(base: object, folder: Path, allowed: tuple[Path, ...] = ()) -> tuple[Path | None, str | None]:
    """The file a scenario's ``base`` names, confined to ``folder`` (or ``allowed``): (path, None),
    or (None, why not). ``base`` is a file stem ("plan"); "plan.toml" and "./plan" mean the same."""
    if not isinstance(base, str) or not base.strip():
        return None, f"must be the name of a scenario file (text), not {base!r}"
    if len(base) > _MAX_BASE or "\x00" in base:
        return None, f"is not a file name ({len(base)} characters; at most {_MAX_BASE})"
    name = base if base.endswith(".toml") else base + ".toml"
    roots = [folder, *allowed]
    try:
        target = (folder / name).resolve()
        inside = any(target.is_relative_to(r.resolve()) for r in roots)
    except (OSError, ValueError, RuntimeError) as exc:   # a name too long, a link loop
        return None, f"cannot be read as a file name: {exc}"
    if not inside or Path(base).is_absolute():
        return None, (f"{base!r} is outside the scenario's folder; a base must be a scenario file in the same folder "
                      f"({folder})")
    return target, None


def scenario_from_dict(data: dict, model, file: str, folder: Path | None = None,
                       _seen: tuple[str, ...] = (), allowed: tuple[Path, ...] = ()) -> Scenario:
    """Check a scenario given as a dict (the TOML's shape); ``folder`` finds its base (confined to
    ``folder`` and the ``allowed`` folders; ``_seen`` holds the resolved paths already on the chain)."""
    problems: list[Problem] = []
    meta = _check_sections(data, file, problems)
    name = str(meta.get("name") or Path(file).stem)
    sc = Scenario(name=name, file=file, label_zh=str(meta.get("label_zh", "")),
                  label_en=str(meta.get("label_en", "")), doc=str(meta.get("doc", "")),
                  base=meta.get("base"), author=meta.get("author"))
    if sc.base is not None and sc.base != "":
        problem = _apply_base(sc, model, file, folder, _seen, allowed)
        if problem:
            problems.append(problem)
    _check_set(data.get("set") or {}, model, file, sc, problems)
    _check_series(data.get("series") or {}, model, file, sc, problems)
    if problems:
        raise ModelError(problems)
    return sc


def _check_sections(data: object, file: str, problems: list[Problem]) -> dict:
    """The [scenario] table, after checking the file's sections and their types."""
    if not isinstance(data, dict):
        raise _bad(file, None, "a scenario must be a table of sections", "sections are [scenario], [set], [series]")
    for section in ("set", "series"):
        if section in data and not isinstance(data[section], dict):
            raise _bad(file, f"[{section}]", f"must be a table of NAME = value, not {type(data[section]).__name__}",
                       'e.g. [set] then savings_rate = 0.3' if section == "set"
                       else '[series.NAME] then time = [...], values = [...]')
    for key in data:
        if key not in _FIELDS:
            problems.append(Problem(file, key, "unknown section", "sections are [scenario], [set], [series]"))
    meta = data.get("scenario", {})
    if not isinstance(meta, dict):
        raise _bad(file, "scenario", "must be a table")
    for key in meta:
        if key not in _META:
            problems.append(Problem(file, f"scenario.{key}", "unknown field", f"fields are {', '.join(sorted(_META))}"))
    return meta


def _check_set(table: dict, model, file: str, sc: Scenario, problems: list[Problem]) -> None:
    variables = model.model.variables
    for key, value in table.items():
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


def _check_series(table: dict, model, file: str, sc: Scenario, problems: list[Problem]) -> None:
    variables = model.model.variables
    for key, spec in table.items():
        var = variables.get(key)
        if var is None or var.kind != "data":
            pool = [n for n, v in variables.items() if v.kind == "data"]
            problems.append(Problem(file, f"series.{key}", "not a data input of the model",
                                    f"data inputs: {', '.join(pool) or 'none'}"))
            continue
        if not (isinstance(spec, dict) and set(spec) == {"time", "values"}):
            problems.append(Problem(file, f"series.{key}", "must be {time = [...], values = [...]}"))
            continue
        why = _series_problem(spec["time"], spec["values"])
        if why:
            problems.append(Problem(file, f"series.{key}", why, "time = [2020, 2025], values = [1.0, 2.0]"))
            continue
        sc.overrides[key] = {"time": spec["time"], "values": spec["values"]}


def _series_problem(time: object, values: object) -> str | None:
    """Why a series override cannot be used, or None."""
    import numpy as np

    try:
        t = np.asarray(time, dtype=float)
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return "time and values must be lists of numbers (values: one entry, or one list of numbers, per time)"
    if t.ndim != 1 or len(t) == 0 or v.shape[:1] != t.shape:
        return f"time has {t.size} entries and values {v.shape[0] if v.ndim else 0}: give one value per time"
    if not (np.isfinite(t).all() and np.isfinite(v).all()):
        return "time and values must be finite numbers"
    if np.any(np.diff(t) <= 0):
        return "time must be strictly increasing"
    return None


def _apply_base(sc: Scenario, model, file: str, folder: Path | None, seen: tuple[str, ...],
                allowed: tuple[Path, ...]) -> Problem | None:
    """Load the base chain into ``sc.overrides`` (the base's values first); a Problem if it cannot."""
    if folder is None:
        return Problem(file, "scenario.base", "a base scenario needs the scenario's folder")
    path, why = base_path(sc.base, folder, allowed)
    if path is None:
        return Problem(file, "scenario.base", why or "", "name a scenario file of that folder, without .toml")
    try:
        me = str(Path(file).resolve())
    except (OSError, RuntimeError):
        me = file
    if str(path) in seen or str(path) == me:
        chain = [Path(p).stem for p in (*seen, me, str(path))]
        return Problem(file, "scenario.base", f"bases form a loop: {' -> '.join(chain)}", "remove one base")
    if not path.is_file():
        options = sorted(p.stem for p in folder.glob("*.toml"))
        return Problem(file, "scenario.base", f"base scenario {sc.base!r} not found in {folder}",
                       f"one of {', '.join(options)}" if options else None)
    base = load_scenario(path, model, (*seen, me), allowed)
    sc.overrides.update(base.overrides)
    return None


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
    if not math.isfinite(value):
        return f"value {value} is not a finite number", allowed
    if var.range and not (var.range[0] <= value <= var.range[1]):
        return f"value {value:g} is outside the range [{var.range[0]:g}, {var.range[1]:g}]", allowed
    return None
