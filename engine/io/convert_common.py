"""Small pieces the Vensim/XMILE converter's modules share: its exceptions, number formatting and
the order of a variable's fields in the model dict (engine/io/pysd_import.py re-exports them)."""
from __future__ import annotations

import math
import re

import numpy as np

# Set to "1" (the CLI's --allow-data-outside) to let GET DIRECT/GET XLS read files outside the model's folder.
ALLOW_DATA_OUTSIDE_ENV = "LXSD_ALLOW_DATA_OUTSIDE"
NA_VALUE = -1e38          # :NA: as PySD represents it (Vensim writes it as a blank cell)
NA_TEXT = "(-1e38)"


class Unsupported(Exception):
    """A construct we cannot run: carries the function name."""

    def __init__(self, function: str, why: str = ""):
        self.function = function
        self.why = why
        super().__init__(function)


class _NeedExpand(Exception):
    """Raised when an equation must be written element by element."""


def fmt_number(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "1" if x else "0"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return NA_TEXT      # Vensim's :NA: (PySD's value)
    if math.isinf(x):
        return "1e300" if x > 0 else "(-1e300)"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _atom(s: str) -> str:
    """Parenthesise unless already atomic."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\[\]]*\])?", s) or re.fullmatch(r"\d+(\.\d*)?([eE][-+]?\d+)?", s):
        return s
    if s.startswith("(") and _balanced_outer(s):
        return s
    if re.fullmatch(r"[A-Z_0-9]+\(.*\)", s) and _balanced_outer(s[s.index("("):]):
        return s
    return f"({s})"


def _balanced_outer(s: str) -> bool:
    """True if s is '( ... )' with the first paren closing at the very end."""
    if not (s.startswith("(") and s.endswith(")")):
        return False
    depth = 0
    for i, c in enumerate(s):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return False
    return True


class _OneComponent:
    """An element seen through one of its components."""

    def __init__(self, el, comp):
        self.name = el.name
        self.components = [comp]
        self.units, self.limits, self.documentation = el.units, el.limits, el.documentation


def pd_to_numeric(col):
    import pandas as pd
    return pd.to_numeric(col, errors="coerce")


class _NotConstant(Exception):
    pass


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _num(x):
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return int(x)
    return x


_ORDER = ["dims", "value", "range", "initial", "inflows", "outflows", "non_negative",
          "equation", "equations", "x", "y", "extrapolation", "time", "values",
          "interpolation", "unit", "label_zh", "label_en", "doc", "source"]


def _order(entry: dict) -> dict:
    return {k: entry[k] for k in sorted(entry, key=lambda k: _ORDER.index(k) if k in _ORDER else 99)}


class _Ctx:
    """Where an expression is being converted."""

    def __init__(self, var: str, ns: dict, subst: dict | None = None, lhs: list | None = None,
                 prefix: str = ""):
        self.var = var            # original variable name, for messages
        self.ns = ns              # name_key -> identifier (or marker) for references
        self.subst = subst or {}  # range key -> element key (element-wise expansion)
        self.lhs = lhs or []      # range keys on the left-hand side
        self.prefix = prefix      # identifier prefix for helper variables
        self.vector = False       # inside a VECTOR SORT ORDER/RANK/REORDER: dimensions map by position
