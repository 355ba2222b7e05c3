"""The converter's data sources: GET XLS/DIRECT CONSTANTS, LOOKUPS and DATA, DATA variables read from the
data files given at import, and the rule that a model reads files only inside its own folder
(``ALLOW_DATA_OUTSIDE_ENV`` lifts it). A mixin of ``pysd_import.Converter``: it uses the converter's
ranges (``_sub_elements``, ``_combos``), values (``_fill_values``, ``_value_table``) and equations."""
from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path

import numpy as np

from .convert_common import (
    ALLOW_DATA_OUTSIDE_ENV,
    NA_VALUE,
    Unsupported,
    _is_number,
    _num,
    _OneComponent,
    _order,
    fmt_number,
    pd_to_numeric,
)
from .vensim_names import display_name, name_key
from .vensim_reader import _error


class DataSources:
    """External data for one model's conversion (mixed into the Converter)."""

    path: Path   # the model file (set by the Converter)

    def _ext_constant(self, el, ident, dims, entry):
        from pysd.translators.structures import abstract_expressions as ae
        val = self._constant_value(el, ident)
        arr = self._fill_values(el, dims, val)
        entry["value"] = self._value_table(dims, arr)
        entry["source"] = "; ".join(sorted({f"{c.ast.file} {c.ast.tab} {c.ast.cell}" for c in el.components
                                            if isinstance(c.ast, ae.GetConstantsStructure)}))
        self.out["constants"][ident] = _order(entry)

    def _ext_lookup(self, el, ident, c):
        from pysd.py_backend.external import ExtLookup
        a = c.ast
        coords = {self.range_name.get(name_key(s), s): [self._orig_elem(e) for e in self._sub_elements(s)]
                  for s in c.subscripts[0]}
        self._confine(a.file, el.name)
        self._need_file(a.file, el, "GET LOOKUPS")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ext = ExtLookup(a.file, a.tab, a.x_row_or_col, a.cell, coords, self.path.parent,
                                coords, "_" + ident)
                ext.initialize()
                data = ext.data
        except Exception as exc:  # noqa: BLE001
            raise _error(self.path, f"cannot read GET ... LOOKUPS from '{a.file}': " + " ".join(str(exc).split()),
                         variable=el.name) from None
        xs = [float(v) for v in data.coords["lookup_dim"].values]
        vals = np.asarray(data.values, dtype=float)
        if not c.subscripts[0]:
            return self._clean_series(xs, vals.reshape(-1), el.name) + ({"extrapolation": "clamp"},)
        out = {}
        lists = [self._sub_elements(s) for s in c.subscripts[0]]
        vals = vals.reshape([len(xs)] + [len(x) for x in lists])
        for combo in self._combos(c):
            pos = tuple(lists[i].index(combo[i]) for i in range(len(combo)))
            out[combo] = self._clean_series(xs, vals[(slice(None),) + pos], el.name) + ({"extrapolation": "clamp"},)
        return out

    @staticmethod
    def _clean_series(xs, ys, var):
        pts = [(x, y) for x, y in zip(xs, ys, strict=False) if not (math.isnan(x) or math.isnan(y))]
        if not pts:
            raise Unsupported("GET ... LOOKUPS", "the table is empty")
        return [_num(p[0]) for p in pts], [_num(p[1]) for p in pts]

    def _data(self, el, ident, dims, entry, ns):  # noqa: C901 - moved as it was from pysd_import.py
        """DATA variables: GET DATA series, values from data files given at import
        (`data_files`, as PySD's), and elements defined by constants or equations."""
        from pysd.translators.structures import abstract_expressions as ae
        comps = el.components
        interp = {"interpolate": "linear", None: "linear", "hold_backward": "step",
                  "look_forward": "look_forward",
                  "raw": "raw"}
        series = {}       # combo -> (time, values, interpolation)
        fixed = {}        # combo -> equation text (numbers, constants, expressions)
        for c in comps:
            a = c.ast
            kw = getattr(c, "keyword", None)
            if isinstance(a, ae.GetDataStructure):
                mode = interp.get(kw)
                if mode is None:
                    raise Unsupported(f"DATA keyword :{kw}:", "")
                series.update(self._get_data_series(el, ident, c, mode))
            elif isinstance(a, ae.DataStructure):
                found = self._data_file_series(el, c, interp.get(kw, "linear"))
                if found is None:
                    raise Unsupported("a DATA variable (:=) without a GET DATA source",
                                      "its values come from an external .vdf/.tab file given at "
                                      "run time (give it as a data file)")
                series.update(found)
            elif isinstance(a, ae.GetConstantsStructure) or _is_number(a) or isinstance(a, np.ndarray):
                arr = self._fill_values(_OneComponent(el, c), dims, self._constant_value(el, ident))
                arr = np.where(np.isnan(arr), NA_VALUE, arr)
                index = [{e: i for i, e in enumerate(self.ranges[d])} for d in dims]
                for combo in self._combos(c):
                    v = arr[tuple(index[i][combo[i]] for i in range(len(combo)))] if dims else arr
                    fixed[combo] = fmt_number(float(v))
            else:
                eq = self._equations(_OneComponent(el, c), dims, ns, lambda x: x.ast, ident)
                if "equation" in eq:
                    for combo in self._combos(c):
                        fixed[combo] = eq["equation"]
                else:
                    for k, v in eq["equations"].items():
                        if k == "default":
                            continue
                        fixed[tuple(self._elem_key(x) for x in k.split(","))] = v
        if not dims and () in series and not fixed:
            xs, ys, mode = series[()]
            entry.update({"time": xs, "values": ys, "interpolation": mode})
            self.out["data"][ident] = _order(entry)
            return
        if not dims:
            if () in series:
                raise Unsupported("a DATA variable defined twice")
            entry["equation"] = fixed[()]
            self.out["auxiliaries"][ident] = _order(entry)
            return
        # one data series per element, and an auxiliary gathering them
        eqs = {}
        for combo, (xs, ys, mode) in series.items():
            name = self.names.new(ident + "__" + "__".join(self.elements[e] for e in combo))
            e2 = {k: v for k, v in entry.items() if k != "dims"}
            e2["label_en"] = f"{display_name(el.name)}[{','.join(self._orig_elem(e) for e in combo)}]"
            e2.update({"time": xs, "values": ys, "interpolation": mode})
            self.out["data"][name] = _order(e2)
            eqs[",".join(self.elements[e] for e in combo)] = name
        for combo, text in fixed.items():
            eqs[",".join(self.elements[e] for e in combo)] = text
        if len(eqs) < math.prod(len(self.ranges[d]) for d in dims):
            eqs["default"] = "0"   # Vensim leaves undefined elements at 0
        entry["equations"] = eqs
        self.out["auxiliaries"][ident] = _order(entry)

    def _constant_value(self, el, ident):
        from pysd.py_backend.external import ExtConstant
        from pysd.translators.structures import abstract_expressions as ae

        def val(c):
            a = c.ast
            if not isinstance(a, ae.GetConstantsStructure):
                return a
            coords = {self.range_name.get(name_key(s), s): [self._orig_elem(e) for e in self._sub_elements(s)]
                      for s in c.subscripts[0]}
            self._confine(a.file, el.name)
            self._need_file(a.file, el, "GET CONSTANTS")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ext = ExtConstant(a.file, a.tab, a.cell, coords, self.path.parent,
                                      coords, "_" + ident)
                    ext.initialize()
                    data = ext.data
            except Exception as exc:  # noqa: BLE001
                raise _error(self.path, f"cannot read GET ... CONSTANTS from '{a.file}': " + " ".join(str(exc).split()),
                             variable=el.name) from None
            return np.asarray(getattr(data, "values", data), dtype=float)
        return val

    def _confine(self, file: object, variable: str) -> None:
        """GET DIRECT/GET XLS read a data file as Vensim does, but only inside the model's folder: an
        untrusted .mdl could otherwise read any CSV/XLSX the user can (issue 15). ``--allow-data-outside``
        (the environment variable LXSD_ALLOW_DATA_OUTSIDE=1) lifts the confinement."""
        if os.environ.get(ALLOW_DATA_OUTSIDE_ENV) == "1":
            return
        folder = self.path.parent.resolve()
        text = str(file).strip().strip("'\"")
        try:
            target = (folder / text).resolve()
            inside = target.is_relative_to(folder)
        except (OSError, ValueError, RuntimeError):
            inside = False
        if not inside:
            raise _error(self.path, f"reads the data file {text!r}, which is outside the model's folder {folder}",
                         variable=variable,
                         hint="copy the file next to the model, or give --allow-data-outside if you trust the model")

    def _need_file(self, file, el, what: str) -> None:
        """A clear error naming the variable and the file when a GET ... file is missing."""
        f = str(file).strip().strip("'\"")
        if f.startswith("?") or not f:
            return   # Vensim's indirect file names (?name): PySD resolves or reports them
        path = (self.path.parent / f)
        if not path.exists():
            raise _error(self.path, f"{what} reads '{f}', which is not in {self.path.parent}",
                         variable=el.name, hint="put the data file next to the model (it is not shipped with it)")

    def _get_data_series(self, el, ident, c, mode):
        from pysd.py_backend.external import ExtData
        a = c.ast
        kw = getattr(c, "keyword", None)
        coords = {self.range_name.get(name_key(s), s): [self._orig_elem(e) for e in self._sub_elements(s)]
                  for s in c.subscripts[0]}
        self._confine(a.file, el.name)
        self._need_file(a.file, el, "GET DATA")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ext = ExtData(a.file, a.tab, a.time_row_or_col, a.cell, kw, coords,
                              self.path.parent, coords, "_" + ident)
                ext.initialize()
                data = ext.data
        except Exception as exc:  # noqa: BLE001
            raise _error(self.path, f"cannot read GET ... DATA from '{a.file}': " + " ".join(str(exc).split()),
                         variable=el.name) from None
        ts = [float(v) for v in data.coords["time"].values]
        vals = np.asarray(data.values, dtype=float)
        lists = [self._sub_elements(s) for s in c.subscripts[0]]
        vals = vals.reshape([len(ts)] + [len(x) for x in lists])
        out = {}
        for combo in self._combos(c):
            pos = tuple(lists[i].index(combo[i]) for i in range(len(combo)))
            out[combo] = self._series(ts, vals[(slice(None),) + pos], el.name, mode)
        return out

    def _series(self, ts, vals, name, mode):
        xs, ys = self._clean_series(ts, vals, name)
        if mode == "look_forward":
            # value of the next point: a step series whose steps start just after the previous
            eps = 1e-9 * max(1.0, max(abs(x) for x in xs))
            xs = [xs[0]] + [x + eps for x in xs[:-1]]
            return [_num(x) for x in xs], ys, "step"
        if mode == "raw":
            # defined only at the data's times, :NA: between them (as Vensim and PySD)
            if len(xs) < 2:
                return xs, ys, "step"
            gap = min(b - a for a, b in zip(xs, xs[1:], strict=False))
            eps = min(1e-6 * max(1.0, max(abs(x) for x in xs)), gap / 4)
            rx, ry = [], []
            for i, (x, y) in enumerate(zip(xs, ys, strict=False)):
                rx.append(_num(x - eps) if i else x)
                ry.append(y)
                if i < len(xs) - 1:
                    rx.append(_num(x + eps))
                    ry.append(NA_VALUE)
            return rx, ry, "step"
        return xs, ys, mode

    def _data_file_series(self, el, c, mode):
        """Series of a DATA variable without source, from the data files (.tab/.csv with a
        Time column and one column per variable or element, as Vensim exports them)."""
        if not self.data_files:
            return None
        from pysd.py_backend.utils import detect_encoding, load_outputs
        if not hasattr(self, "_data_frames"):
            self._data_frames = []
            for f in self.data_files:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    df = load_outputs(f, encoding=detect_encoding(f))
                cols = {}
                for col in df.columns:
                    m = re.fullmatch(r"(.*?)\s*\[(.*)\]\s*", str(col), flags=re.S)
                    name, elems = (m.group(1), [x.strip() for x in m.group(2).split(",")]) if m \
                        else (str(col), [])
                    cols[(name_key(name), tuple(name_key(e) for e in elems))] = col
                self._data_frames.append((df, cols))
        out = {}
        for combo in self._combos(c):
            for df, cols in self._data_frames:
                col = cols.get((name_key(el.name), tuple(combo)))
                if col is not None:
                    ts = [float(t) for t in df.index]
                    vals = np.asarray(pd_to_numeric(df[col]), dtype=float)
                    out[combo] = self._series(ts, vals, el.name, mode)
                    break
            else:
                raise _error(self.path, f"no column for {display_name(el.name)}"
                             f"[{','.join(self._orig_elem(e) for e in combo)}] in the data files",
                             variable=el.name)
        return out
