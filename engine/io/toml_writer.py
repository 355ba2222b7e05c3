"""A model dict (the shape of our TOML format) written as TOML text.  Split out of
engine/io/pysd_import.py."""
from __future__ import annotations

import math
import re


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def _toml_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if ("." in r or "e" in r or "n" in r) else r + ".0"
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(d: dict, header: str = "") -> str:
    """Write a model dict in our TOML layout (sections in the documented order)."""
    lines = []
    if header:
        lines += ["# " + h for h in header.splitlines()] + [""]
    for section in ("model", "time", "dimensions", "subranges", "mappings", "units"):
        block = d.get(section)
        if not block:
            continue
        lines.append(f"[{section}]")
        for k, v in block.items():
            if section == "model" and isinstance(v, dict):
                continue
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        lines.append("")
        if section == "model":
            for k, v in block.items():
                if isinstance(v, dict) and v:
                    lines.append(f"[model.{_toml_key(k)}]")
                    lines += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in v.items()]
                    lines.append("")
    for section in ("constants", "stocks", "flows", "auxiliaries", "lookups", "data"):
        for name, spec in (d.get(section) or {}).items():
            lines.append(f"[{section}.{_toml_key(name)}]")
            for k, v in spec.items():
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
            lines.append("")
    return "\n".join(lines)
