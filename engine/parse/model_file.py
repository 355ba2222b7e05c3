"""Read a model file (TOML, or a dict of the same shape) into :class:`engine.ir.Model`.

Only structure is checked here (known sections and fields, right types, names
defined once); names, dimensions, units and loops are checked by ``engine.resolve``.
Every problem names the file, the variable and the field.
"""
from __future__ import annotations

import math
import re
from itertools import pairwise
import tomllib
from pathlib import Path
from typing import TypeGuard

from engine.errors import ExpressionSyntaxError, ModelError, Problem
from engine.ir import Model, TimeSettings, Variable
from engine.parse.expr import parse_expression
from engine.parse.presentation import check_names, parse_presentation

# \Z, not $: "$" also matches before a trailing newline, which would let "k\n" pass as a name
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_NAME = 255
# Generated names must never meet a user's name (issue 15): the resolver names its internal variables
# "_<tag>_<host>_<n>" and the compiler keeps a data input D's series in "D__t"/"D__v". So a name may
# not start with "_" and a letter or "_" (an imported name may start "_<digit>"), may not be D__t or
# D__v for a data input D, and may not be a time name or "scenario" (the results' columns).
_INTERNAL_PREFIX = re.compile(r"^_[A-Za-z_]")
RESERVED_NAMES = {"time", "time_step", "initial_time", "final_time", "saveper", "scenario"}
SECTIONS = {
    "constants": "constant",
    "stocks": "stock",
    "flows": "flow",
    "auxiliaries": "auxiliary",
    "lookups": "lookup",
    "data": "data",
}
COMMON = {"dims", "unit", "label_zh", "label_en", "doc", "source", "range"}
FIELDS = {
    "constant": COMMON | {"value", "role"},
    "stock": COMMON | {"initial", "inflows", "outflows", "non_negative"},
    "flow": COMMON | {"equation", "equations"},
    "auxiliary": COMMON | {"equation", "equations"},
    "lookup": COMMON | {"x", "y", "extrapolation"},
    "data": COMMON | {"time", "values", "interpolation"},
}
TOP = {"model", "time", "dimensions", "subranges", "mappings", "element_labels", "units",
       "presentation"} | set(SECTIONS)
METHODS = ("euler", "rk2", "rk4", "adaptive")
ROLES = ("lever", "uncertain", "test", "fixed")


def load_model_file(path: str | Path) -> Model:
    """Read a ``.toml`` model file; raises ModelError naming the file on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(Problem(str(path), None, f"cannot read the file: {exc.strerror or exc}")) from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # a leading BOM (Windows editors) is accepted
    except UnicodeDecodeError:
        raise ModelError(Problem(str(path), None, "not a UTF-8 text file")) from None
    except tomllib.TOMLDecodeError as exc:
        hint = "a name defined twice in the same section" if "overwrite" in str(exc).lower() else None
        raise ModelError(Problem(str(path), None, f"TOML syntax error: {exc}", hint)) from None
    return model_from_dict(data, str(path))


def _num(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return _num(value) and math.isfinite(value)  # type: ignore[arg-type]


def _table(data: dict, section: str, bad) -> dict:
    """A top-level section that must be a table ({} when absent or, after an error, malformed)."""
    block = data.get(section)
    if block is None:
        return {}
    if not isinstance(block, dict):
        bad(f"[{section}]", f"must be a table, not {type(block).__name__}")
        return {}
    return block


def _reserved(name: str, data: dict) -> str | None:
    """Why ``name`` cannot be a variable's name (it could meet a generated name), or None."""
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; names have at most {MAX_NAME}"
    if name.lower() in RESERVED_NAMES:
        return "is a reserved name (time settings and the results' 'time' and 'scenario' columns use it)"
    if _INTERNAL_PREFIX.match(name):
        return "starts with '_' and a letter: such names are reserved for the engine's internal variables"
    if name[-3:] in ("__t", "__v") and isinstance(data.get("data"), dict) and name[:-3] in data["data"]:
        return f"is reserved for the series of data input {name[:-3]!r}"
    return None


def model_from_dict(data: dict, source: str) -> Model:
    """Build a Model from a dict shaped like the TOML file (see docs/model-format.md)."""
    problems: list[Problem] = []

    def bad(var: str | None, msg: str, hint: str | None = None) -> None:
        problems.append(Problem(source, var, msg, hint))

    if not isinstance(data, dict):
        raise ModelError(Problem(source, None, "a model must be a table of sections"))
    for key in data:
        if key not in TOP:
            bad(None, f"unknown section [{key}]", f"sections are {', '.join(sorted(TOP))}")
    meta = _meta(data, bad)
    time, dynamic_vars = _time_settings(data.get("time"), bad)
    dims = _dimensions(data, bad)
    subranges = _subranges(data, dims, bad)
    element_names = {e for els in dims.values() for e in els}
    element_labels = _element_labels(data, dims, subranges, element_names, bad)
    mappings = _mappings(data, dims, bad)
    variables = _variables(data, dims, subranges, element_names, bad)
    units = data.get("units") or {}
    if not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values()):
        bad("[units]", "must map unit names to unit text")
        units = {}
    for var in dynamic_vars:
        if var.name in variables:
            bad(var.name, "is a time setting's name; [time] gives it an equation, so no variable may use it")
        var.unit = var.unit or time.unit
        variables[var.name] = var

    presentation, pproblems = parse_presentation(data.get("presentation"), source)
    problems += pproblems + check_names(presentation, variables, source)

    if problems:
        raise ModelError(problems)
    return Model(
        name=str(meta.get("name") or Path(source).stem),
        file=source,
        time=time,
        dimensions=dims,
        subranges=subranges,
        mappings={k: tuple(sorted(v)) for k, v in mappings.items()},
        element_labels=element_labels,
        variables=variables,
        unit_aliases=dict(units),
        label_zh=meta.get("label_zh"),
        label_en=meta.get("label_en"),
        doc=meta.get("doc"),
        original_names=dict(meta.get("names") or {}),
        original_element_names=dict(meta.get("element_names") or {}),
        presentation=presentation,
    )


def _meta(data: dict, bad) -> dict:
    """[model]: checked, with malformed entries dropped (after a problem is noted)."""
    meta = data.get("model", {}) or {}
    if not isinstance(meta, dict):
        bad("[model]", f"must be a table (name = ..., label_zh = ...), not {type(meta).__name__}")
        meta = {}
    for key in ("names", "element_names"):
        table = meta.get(key)
        if table is not None and not (isinstance(table, dict) and all(isinstance(v, str) for v in table.values())):
            bad(f"model.{key}", "must be a table of identifier = \"original name\"")
            meta = {k: v for k, v in meta.items() if k != key}
    for key in ("name", "label_zh", "label_en", "doc"):
        if key in meta and not isinstance(meta[key], str):
            bad(f"model.{key}", "must be text")
            meta = {k: v for k, v in meta.items() if k != key}
    return meta


def _dimensions(data: dict, bad) -> dict[str, tuple[str, ...]]:
    dims: dict[str, tuple[str, ...]] = {}
    for name, elems in _table(data, "dimensions", bad).items():
        if not IDENT.match(name):
            bad(f"dimensions.{name}", "is not a valid name")
        if not isinstance(elems, list) or not elems or not all(isinstance(e, str) and IDENT.match(e) for e in elems):
            bad(f"dimensions.{name}", "must be a non-empty list of element names")
            continue
        if len(set(elems)) != len(elems):
            bad(f"dimensions.{name}", "lists an element twice")
        dims[name] = tuple(elems)
    return dims


def _subranges(data: dict, dims: dict[str, tuple[str, ...]], bad) -> dict[str, tuple[str, tuple[str, ...]]]:
    subranges: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, spec in _table(data, "subranges", bad).items():
        if not isinstance(spec, dict) or "of" not in spec or "elements" not in spec:
            bad(f"subranges.{name}", "must be {of = \"dimension\", elements = [...]}")
            continue
        parent = spec["of"]
        if not isinstance(parent, str):
            bad(f"subranges.{name}", f"'of' must be the name of one dimension (text), not {type(parent).__name__}",
                'e.g. of = "sector"')
            continue
        if parent not in dims:
            bad(f"subranges.{name}", f"'of' names unknown dimension {parent!r}", f"one of {', '.join(dims)}")
            continue
        elems = spec["elements"]
        if not isinstance(elems, list) or not all(isinstance(e, str) for e in elems):
            bad(f"subranges.{name}", "'elements' must be a list of element names (text)")
            continue
        known = set(dims[parent])   # a set: a tuple's `in` made a large subrange cost n^2
        unknown = [e for e in elems if e not in known]
        if unknown:
            bad(f"subranges.{name}", f"elements {unknown} are not in dimension {parent!r}")
            continue
        if name in dims:
            bad(f"subranges.{name}", "is also a dimension name")
        subranges[name] = (parent, tuple(elems))
    return subranges


def _element_labels(data: dict, dims: dict, subranges: dict, element_names: set[str],
                    bad) -> dict[str, dict[str, str]]:
    element_labels: dict[str, dict[str, str]] = {}
    for name, spec in _table(data, "element_labels", bad).items():
        if name not in element_names and name not in dims and name not in subranges:
            bad(f"element_labels.{name}", "is not an element, dimension or subrange")
        elif not (isinstance(spec, dict) and set(spec) <= {"zh", "en"}
                  and all(isinstance(v, str) for v in spec.values())):
            bad(f"element_labels.{name}", 'must be {zh = "...", en = "..."}')
        else:
            element_labels[name] = dict(spec)
    return element_labels


def _mappings(data: dict, dims: dict[str, tuple[str, ...]], bad) -> dict[str, set[str]]:
    mappings: dict[str, set[str]] = {}
    for name, targets in _table(data, "mappings", bad).items():
        targets = [targets] if isinstance(targets, str) else targets
        if name not in dims or not isinstance(targets, list) or not all(isinstance(o, str) for o in targets):
            bad(f"mappings.{name}", "must map a dimension to a list of dimensions",
                'e.g. company = ["scompany"]')
            continue
        for other in targets:
            if other not in dims:
                bad(f"mappings.{name}", f"{other!r} is not a dimension")
            elif len(dims[other]) != len(dims[name]):
                bad(f"mappings.{name}", f"{name!r} has {len(dims[name])} elements and {other!r} "
                                        f"{len(dims[other])}: a positional mapping needs equal lengths")
            else:
                mappings.setdefault(name, set()).add(other)
                mappings.setdefault(other, set()).add(name)
    return mappings


def _variables(data: dict, dims: dict, subranges: dict, element_names: set[str], bad) -> dict[str, Variable]:
    variables: dict[str, Variable] = {}
    for section, kind in SECTIONS.items():
        block = data.get(section) or {}
        if not isinstance(block, dict):
            bad(f"[{section}]", "must be a table of variables")
            continue
        for name, spec in block.items():
            label = f"{section}.{name}"
            if not IDENT.match(name):
                bad(f"{section}.{name!r}", "is not a valid name",
                    "use letters, digits and _ (not starting with a digit)")
                continue
            reserved = _reserved(name, data)
            if reserved:
                bad(label, reserved, "rename it")
                continue
            if name in variables:
                bad(name, f"is defined twice (as {variables[name].kind} and as {kind})", "keep one definition")
                continue
            if name in dims or name in subranges or name in element_names:
                bad(name, "is also a dimension, subrange or element name")
                continue
            if not isinstance(spec, dict):
                bad(label, "must be a table of fields")
                continue
            var = _variable(name, kind, spec, label, bad)
            if var is not None:
                variables[name] = var
    return variables


# a time setting given as an equation (Vensim's FINAL TIME = IF THEN ELSE(...)) becomes an
# auxiliary of this name, evaluated every step like any other; the driver reads it (see
# engine.integrate.dynamic_clock)
CONTROL_VARIABLES = {"start": "INITIAL_TIME", "stop": "FINAL_TIME", "dt": "TIME_STEP", "saveper": "SAVEPER"}


def _time_settings(time_raw: object, bad) -> tuple[TimeSettings, list[Variable]]:
    """[time] as TimeSettings; fields given as equation text also come back as auxiliaries."""
    time = TimeSettings(start=0.0, stop=1.0, dt=1.0, saveper=1.0)
    if not isinstance(time_raw, dict):
        bad("[time]", "missing [time] section with start, stop and dt")
        return time, []
    for f in time_raw:
        if f not in ("start", "stop", "dt", "saveper", "unit", "method"):
            bad(f"time.{f}", "unknown field", "fields are start, stop, dt, saveper, unit, method")
    values: dict[str, float] = {}
    dynamic: dict[str, str] = {}
    extra: list[Variable] = []
    for f in ("start", "stop", "dt", "saveper"):
        v = time_raw.get(f)
        if v is None and f == "saveper":
            if "dt" not in dynamic:
                continue
            v = "TIME_STEP"   # SAVEPER defaults to TIME STEP, which here changes during the run
        if _num(v) and not _finite(v):
            bad(f"time.{f}", f"must be a finite number, not {v}", "e.g. stop = 2035")
            continue
        if _num(v):
            values[f] = float(v)
        elif isinstance(v, str) and v.strip():
            try:
                parse_expression(v)
            except ExpressionSyntaxError as exc:
                bad(f"time.{f}", f"cannot parse the equation: {exc}")
                continue
            name = CONTROL_VARIABLES[f]
            dynamic[f] = name
            extra.append(Variable(name=name, kind="auxiliary", equations={"": v.strip()},
                                  doc=f"[time] {f}, an equation evaluated every step"))
            values[f] = math.nan   # known once the model is compiled: its value at the start
        else:
            bad(f"time.{f}", "must be a number or an equation (text)", "e.g. dt = 0.25")
    if any(f not in values for f in ("start", "stop", "dt")):
        return time, []
    method = str(time_raw.get("method", "euler")).lower()
    if method not in METHODS:
        bad("time.method", f"unknown method {method!r}", f"one of {', '.join(METHODS)}")
    dt = values["dt"]
    saveper = values.get("saveper", dt)
    time = TimeSettings(values["start"], values["stop"], dt, saveper,
                        str(time_raw.get("unit", "year")), method, dynamic)
    if not dynamic:   # (equations are checked when the run starts)
        _check_fixed_time(time, bad)
    return time, extra


def _check_fixed_time(time: TimeSettings, bad) -> None:
    if time.saveper <= 0:
        bad("time.saveper", "must be a positive number")
    elif time.dt <= 0:
        bad("time.dt", "must be positive")
    elif time.stop < time.start:
        bad("time.stop", "is before time.start")
    elif not math.isfinite(time.saveper / time.dt) or not math.isfinite((time.stop - time.start) / time.dt):
        bad("time.dt", f"{time.dt:g} is too small for the run's length and saveper (the number of steps overflows)")
    elif not math.isclose(time.saveper / time.dt, round(time.saveper / time.dt), rel_tol=1e-9, abs_tol=1e-9):
        bad("time.saveper", f"must be a multiple of dt ({time.dt})")


def _variable(name: str, kind: str, spec: dict, label: str, bad) -> Variable | None:
    ok = True
    for f in spec:
        if f not in FIELDS[kind]:
            bad(name, f"unknown field {f!r} for a {kind}", f"fields are {', '.join(sorted(FIELDS[kind]))}")
            ok = False
    dims = spec.get("dims", [])
    if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
        bad(name, "'dims' must be a list of dimension names")
        ok = False
        dims = []
    var = Variable(name=name, kind=kind, dims=tuple(dims))
    for f in ("unit", "label_zh", "label_en", "doc", "source"):
        if f in spec:
            if not isinstance(spec[f], str):
                bad(name, f"'{f}' must be text")
                ok = False
            else:
                setattr(var, f, spec[f])
    if "range" in spec:
        r = spec["range"]
        if not (isinstance(r, list) and len(r) == 2 and all(_num(x) and x == x for x in r) and r[0] <= r[1]):
            bad(name, "'range' must be [low, high] with low <= high")
            ok = False
        else:
            var.range = (float(r[0]), float(r[1]))
    fill = {"constant": _constant_fields, "stock": _stock_fields, "flow": _equations_fields,
            "auxiliary": _equations_fields, "lookup": _lookup_fields, "data": _data_fields}[kind]
    filled = fill(var, spec, bad)
    if filled is None:
        return None
    return var if ok and filled else None


def _constant_fields(var: Variable, spec: dict, bad) -> bool | None:
    """Fill a constant fields: True if fine, False after a problem, None to drop it."""
    ok = True
    if "value" not in spec:
        bad(var.name, "a constant needs 'value'")
        return None
    var.value = spec["value"]
    if not _valid_value(var.value):
        bad(var.name, "'value' must be a finite number, or a table/list of finite numbers over the dims")
        ok = False
    if "role" in spec:
        if spec["role"] not in ROLES:
            bad(var.name, f"unknown role {spec['role']!r}", f"one of {', '.join(ROLES)}")
            ok = False
        else:
            var.role = spec["role"]
    return ok


def _stock_fields(var: Variable, spec: dict, bad) -> bool | None:
    """Fill a stock fields: True if fine, False after a problem, None to drop it."""
    ok = True
    init = spec.get("initial")
    if _num(init) and not _finite(init):
        bad(var.name, f"'initial' must be a finite number or an equation, not {init}")
        return None
    if _num(init):
        init = repr(float(init))
    if not isinstance(init, str):
        bad(var.name, "a stock needs 'initial' (a number or an equation)")
        return None
    var.initial = init
    for f in ("inflows", "outflows"):
        flows = spec.get(f, [])
        if isinstance(flows, str):
            flows = [flows]
        if not isinstance(flows, list) or not all(isinstance(x, str) for x in flows):
            bad(var.name, f"'{f}' must be a list of flow names")
            ok = False
        else:
            setattr(var, f, tuple(flows))
    nn = spec.get("non_negative", False)
    if not isinstance(nn, bool):
        bad(var.name, "'non_negative' must be true or false")
        ok = False
    var.non_negative = bool(nn)
    return ok


def _equations_fields(var: Variable, spec: dict, bad) -> bool | None:
    """Fill a flow's or auxiliary's fields: True if fine, False after a problem, None to drop it."""
    ok = True
    eq, eqs = spec.get("equation"), spec.get("equations")
    if _num(eq):
        eq = repr(float(eq))
    if eq is not None and eqs is not None:
        bad(var.name, "give 'equation' or 'equations', not both")
        return None
    if isinstance(eq, str):
        var.equations = {"": eq}
    elif isinstance(eqs, dict) and eqs and all(isinstance(v, (str, int, float)) for v in eqs.values()):
        var.equations = {k: (v if isinstance(v, str) else repr(float(v))) for k, v in eqs.items()}
    else:
        bad(var.name, "needs 'equation' (text) or 'equations' (a table selector = text)")
        return None
    return ok


def _lookup_fields(var: Variable, spec: dict, bad) -> bool | None:
    """Fill a lookup fields: True if fine, False after a problem, None to drop it."""
    ok = True
    xs, ys = spec.get("x"), spec.get("y")
    tables = _lookup_tables(xs, ys)
    if tables is None:
        bad(var.name, "a lookup needs 'x' and 'y': lists of numbers of the same length, or (for a "
                  "subscripted lookup) lists of such lists, one per element")
        return None
    if any(any(b < a for a, b in pairwise(tx)) for tx, _ in tables):
        bad(var.name, "lookup 'x' values must be increasing")
        ok = False
    assert isinstance(xs, list) and isinstance(ys, list)   # _lookup_tables checked them
    if isinstance(xs[0], list) or isinstance(ys[0], list):
        var.xs = tuple(tuple(map(float, tx)) for tx, _ in tables)
        var.ys = tuple(tuple(map(float, ty)) for _, ty in tables)
    else:
        var.xs, var.ys = tuple(map(float, xs)), tuple(map(float, ys))
    var.extrapolation = str(spec.get("extrapolation", "clamp"))
    if var.extrapolation not in ("clamp", "linear"):
        bad(var.name, f"unknown extrapolation {var.extrapolation!r}", "clamp or linear")
        ok = False
    return ok


def _data_fields(var: Variable, spec: dict, bad) -> bool | None:
    """Fill a data fields: True if fine, False after a problem, None to drop it."""
    ok = True
    ts, vs = spec.get("time"), spec.get("values")
    if not (isinstance(ts, list) and isinstance(vs, list) and len(ts) == len(vs) >= 1 and all(_num(t) for t in ts)):
        bad(var.name, "a data series needs 'time' and 'values', lists of the same length")
        return None
    if any(b <= a for a, b in pairwise(ts)):
        bad(var.name, "data 'time' values must be strictly increasing")
        ok = False
    if not all(_finite(t) for t in ts):
        bad(var.name, "data 'time' values must be finite numbers")
        return None
    shape = _rectangular(vs)
    if shape is None:
        bad(var.name, "data 'values' must be finite numbers (or, for subscripted data, equal-length lists of "
                  "finite numbers), one entry per time")
        return None
    var.times, var.values = tuple(map(float, ts)), tuple(vs)
    var.interpolation = str(spec.get("interpolation", "linear"))
    if var.interpolation not in ("linear", "step"):
        bad(var.name, f"unknown interpolation {var.interpolation!r}", "linear or step")
        ok = False
    return ok


def _lookup_tables(xs, ys):
    """[(x list, y list)] per element (one entry for a plain lookup), or None if malformed."""
    if not (isinstance(xs, list) and isinstance(ys, list) and xs and ys):
        return None
    nested_x, nested_y = isinstance(xs[0], list), isinstance(ys[0], list)
    if not nested_x and not nested_y:
        rows = [(xs, ys)]
    elif nested_y and not nested_x:
        rows = [(xs, y) for y in ys]
    elif nested_x and nested_y and len(xs) == len(ys):
        rows = list(zip(xs, ys, strict=True))
    else:
        return None
    for tx, ty in rows:
        if not (isinstance(tx, list) and isinstance(ty, list) and len(tx) == len(ty) >= 1
                and all(_finite(v) for v in tx + ty)):
            return None
    return rows


def _rectangular(v: object) -> tuple[int, ...] | None:
    """The shape of nested lists of finite numbers, or None if a leaf is not one or the lists are ragged."""
    if _finite(v):
        return ()
    if not isinstance(v, list) or not v:
        return None
    shapes = {_rectangular(x) for x in v}
    if len(shapes) != 1 or None in shapes:
        return None
    return (len(v), *shapes.pop())  # type: ignore[misc]


def _valid_value(v: object) -> bool:
    if _num(v):
        return _finite(v)
    if isinstance(v, dict):
        return bool(v) and all(_valid_value(x) for x in v.values())
    if isinstance(v, list):
        return bool(v) and all(_valid_value(x) for x in v)
    return False
