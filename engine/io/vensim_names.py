"""Vensim/XMILE names -> our identifiers (lower case, other characters to ``_``), and the lookup key
PySD uses (case and space/underscore blind).  Split out of engine/io/pysd_import.py."""
from __future__ import annotations

import re
import unicodedata

CONTROL_NAMES = {
    "initial_time": "INITIAL_TIME",
    "final_time": "FINAL_TIME",
    "time_step": "TIME_STEP",
    "saveper": "SAVEPER",
}

# Identifiers we never hand out to a variable: keywords and builtin names of our language.
RESERVED = {
    "and", "or", "not", "time", "time_step", "initial_time", "final_time", "saveper",
    "default", "if_then_else", "min", "max", "abs", "exp", "ln", "log", "sqrt", "power",
    "integer", "modulo", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "xidz", "zidz",
    "quantum", "step", "ramp", "pulse", "pulse_train", "initial", "smooth", "smoothi",
    "smooth3", "smooth3i", "smoothn", "delay1", "delay1i", "delay3", "delay3i", "delayn",
    "delay_fixed", "trend", "forecast", "with_lookup", "sum", "prod", "vmin", "vmax",
    "true", "false", "inf", "nan", "e", "pi", "scenario",
}


def name_key(name: str) -> str:
    """PySD-compatible lookup key of a Vensim/XMILE name (case and space/underscore blind)."""
    return re.sub(r"[\s_]+", "_", str(name).strip().lower())


def display_name(name: str) -> str:
    """The name as Vensim shows it in its output: quotes stripped, escapes undone."""
    s = str(name).strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        s = s[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return s


def to_identifier(name: str) -> str:
    """`Capital Primary` -> `capital_primary`; accents dropped; other letters as uXXXX."""
    s = display_name(name).replace("\\n", " ")
    out = []
    for ch in s:
        if ch.isascii():
            out.append(ch.lower() if ch.isalnum() else "_")
            continue
        base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        if base and base.isalnum():
            out.append(base.lower())
        elif ch.isalnum():
            out.append(f"_u{ord(ch):04x}_")
        else:
            out.append("_")
    ident = re.sub(r"_+", "_", "".join(out)).strip("_")
    if not ident:
        ident = "v"
    if ident[0].isdigit():
        ident = "_" + ident
    return ident


class _Names:
    """Allocates unique identifiers."""

    def __init__(self, reserved=()):
        self.used: set[str] = set(reserved)

    def new(self, name: str, suffix: str = "_v") -> str:
        base = to_identifier(name)
        ident = base
        if ident in self.used:
            ident = base + suffix if base in RESERVED else base
        n = 1
        while ident in self.used:
            n += 1
            ident = f"{base}_{n}"
        self.used.add(ident)
        return ident
