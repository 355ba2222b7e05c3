"""Read a model file (TOML, or a dict of the same shape) into :class:`engine.ir.Model`.

Only structure is checked here (known sections and fields, right types, names
defined once); names, dimensions, units and loops are checked by ``engine.resolve``.
Every problem names the file, the variable and the field.
"""
from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

from engine.errors import ExpressionSyntaxError, ModelError, Problem
from engine.ir import Model, TimeSettings, Variable
from engine.parse.expr import parse_expression
from engine.parse.presentation import check_names, parse_presentation

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError(Problem(str(path), None, "not a UTF-8 text file")) from None
    except tomllib.TOMLDecodeError as exc:
        hint = "a name defined twice in the same section" if "overwrite" in str(exc).lower() else None
        raise ModelError(Problem(str(path), None, f"TOML syntax error: {exc}", hint)) from None
    return model_from_dict(data, str(path))


def _num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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

    meta = data.get("model", {}) or {}
    time, dynamic_vars = _time_settings(data.get("time"), bad)
    dims: dict[str, tuple[str, ...]] = {}
    for name, elems in (data.get("dimensions") or {}).items():
        if not IDENT.match(name):
            bad(f"dimensions.{name}", "is not a valid name")
        if not isinstance(elems, list) or not elems or not all(isinstance(e, str) and IDENT.match(e) for e in elems):
            bad(f"dimensions.{name}", "must be a non-empty list of element names")
            continue
        if len(set(elems)) != len(elems):
            bad(f"dimensions.{name}", "lists an element twice")
        dims[name] = tuple(elems)
    subranges: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, spec in (data.get("subranges") or {}).items():
        if not isinstance(spec, dict) or "of" not in spec or "elements" not in spec:
            bad(f"subranges.{name}", "must be {of = \"dimension\", elements = [...]}")
            continue
        parent = spec["of"]
        if parent not in dims:
            bad(f"subranges.{name}", f"'of' names unknown dimension {parent!r}", f"one of {', '.join(dims)}")
            continue
        elems = spec["elements"]
        unknown = [e for e in elems if e not in dims[parent]] if isinstance(elems, list) else ["?"]
        if unknown:
            bad(f"subranges.{name}", f"elements {unknown} are not in dimension {parent!r}")
            continue
        if name in dims:
            bad(f"subranges.{name}", "is also a dimension name")
        subranges[name] = (parent, tuple(elems))
    element_names = {e for els in dims.values() for e in els}
    element_labels: dict[str, dict[str, str]] = {}
    for name, spec in (data.get("element_labels") or {}).items():
        if name not in element_names and name not in dims and name not in subranges:
            bad(f"element_labels.{name}", "is not an element, dimension or subrange")
        elif not (isinstance(spec, dict) and set(spec) <= {"zh", "en"} and all(isinstance(v, str) for v in spec.values())):
            bad(f"element_labels.{name}", 'must be {zh = "...", en = "..."}')
        else:
            element_labels[name] = dict(spec)
    mappings: dict[str, set[str]] = {}
    for name, targets in (data.get("mappings") or {}).items():
        targets = [targets] if isinstance(targets, str) else targets
        if name not in dims or not isinstance(targets, list):
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

    variables: dict[str, Variable] = {}
    for section, kind in SECTIONS.items():
        block = data.get(section) or {}
        if not isinstance(block, dict):
            bad(f"[{section}]", "must be a table of variables")
            continue
        for name, spec in block.items():
            label = f"{section}.{name}"
            if not IDENT.match(name):
                bad(label, "is not a valid name", "use letters, digits and _ (not starting with a digit)")
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
    if dynamic:
        return time, extra   # the numbers are checked when the run starts
    if saveper <= 0:
        bad("time.saveper", "must be a positive number")
    elif dt <= 0:
        bad("time.dt", "must be positive")
    elif time.stop < time.start:
        bad("time.stop", "is before time.start")
    elif not math.isclose(saveper / dt, round(saveper / dt), rel_tol=1e-9, abs_tol=1e-9):
        bad("time.saveper", f"must be a multiple of dt ({dt})")
    return time, extra


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
        if not (isinstance(r, list) and len(r) == 2 and all(_num(x) for x in r) and r[0] <= r[1]):
            bad(name, "'range' must be [low, high] with low <= high")
            ok = False
        else:
            var.range = (float(r[0]), float(r[1]))

    if kind == "constant":
        if "value" not in spec:
            bad(name, "a constant needs 'value'")
            return None
        var.value = spec["value"]
        if not _valid_value(var.value):
            bad(name, "'value' must be a number, or a table/list of numbers over the dims")
            ok = False
        if "role" in spec:
            if spec["role"] not in ROLES:
                bad(name, f"unknown role {spec['role']!r}", f"one of {', '.join(ROLES)}")
                ok = False
            else:
                var.role = spec["role"]
    elif kind == "stock":
        init = spec.get("initial")
        if _num(init):
            init = repr(float(init))
        if not isinstance(init, str):
            bad(name, "a stock needs 'initial' (a number or an equation)")
            return None
        var.initial = init
        for f in ("inflows", "outflows"):
            flows = spec.get(f, [])
            if isinstance(flows, str):
                flows = [flows]
            if not isinstance(flows, list) or not all(isinstance(x, str) for x in flows):
                bad(name, f"'{f}' must be a list of flow names")
                ok = False
            else:
                setattr(var, f, tuple(flows))
        nn = spec.get("non_negative", False)
        if not isinstance(nn, bool):
            bad(name, "'non_negative' must be true or false")
            ok = False
        var.non_negative = bool(nn)
    elif kind in ("flow", "auxiliary"):
        eq, eqs = spec.get("equation"), spec.get("equations")
        if _num(eq):
            eq = repr(float(eq))
        if eq is not None and eqs is not None:
            bad(name, "give 'equation' or 'equations', not both")
            return None
        if isinstance(eq, str):
            var.equations = {"": eq}
        elif isinstance(eqs, dict) and eqs and all(isinstance(v, (str, int, float)) for v in eqs.values()):
            var.equations = {k: (v if isinstance(v, str) else repr(float(v))) for k, v in eqs.items()}
        else:
            bad(name, "needs 'equation' (text) or 'equations' (a table selector = text)")
            return None
    elif kind == "lookup":
        xs, ys = spec.get("x"), spec.get("y")
        tables = _lookup_tables(xs, ys)
        if tables is None:
            bad(name, "a lookup needs 'x' and 'y': lists of numbers of the same length, or (for a "
                      "subscripted lookup) lists of such lists, one per element")
            return None
        if any(any(b < a for a, b in zip(tx, tx[1:])) for tx, _ in tables):
            bad(name, "lookup 'x' values must be increasing")
            ok = False
        if isinstance(xs[0], list) or isinstance(ys[0], list):
            var.xs = tuple(tuple(map(float, tx)) for tx, _ in tables)
            var.ys = tuple(tuple(map(float, ty)) for _, ty in tables)
        else:
            var.xs, var.ys = tuple(map(float, xs)), tuple(map(float, ys))
        var.extrapolation = str(spec.get("extrapolation", "clamp"))
        if var.extrapolation not in ("clamp", "linear"):
            bad(name, f"unknown extrapolation {var.extrapolation!r}", "clamp or linear")
            ok = False
    elif kind == "data":
        ts, vs = spec.get("time"), spec.get("values")
        if not (isinstance(ts, list) and isinstance(vs, list) and len(ts) == len(vs) >= 1 and all(_num(t) for t in ts)):
            bad(name, "a data series needs 'time' and 'values', lists of the same length")
            return None
        if any(b <= a for a, b in zip(ts, ts[1:])):
            bad(name, "data 'time' values must be strictly increasing")
            ok = False
        var.times, var.values = tuple(map(float, ts)), tuple(vs)
        var.interpolation = str(spec.get("interpolation", "linear"))
        if var.interpolation not in ("linear", "step"):
            bad(name, f"unknown interpolation {var.interpolation!r}", "linear or step")
            ok = False
    return var if ok else None


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
        rows = list(zip(xs, ys))
    else:
        return None
    for tx, ty in rows:
        if not (isinstance(tx, list) and isinstance(ty, list) and len(tx) == len(ty) >= 1
                and all(_num(v) for v in tx + ty)):
            return None
    return rows


def _valid_value(v: object) -> bool:
    if _num(v):
        return True
    if isinstance(v, dict):
        return bool(v) and all(_valid_value(x) for x in v.values())
    if isinstance(v, list):
        return bool(v) and all(_valid_value(x) for x in v)
    return False
