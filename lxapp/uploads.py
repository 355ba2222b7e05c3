"""Uploads, checked before anything is parsed in earnest: size and key/row counts are capped
(issue 15, item 8: a 4 MB file of 300 000 keys must not block the app), and every problem is
one line naming the file and the row or key."""
from __future__ import annotations

import csv
import io
import math
import tomllib

import pandas as pd

MAX_BYTES = 1_000_000          # an upload (scenario file or actuals); the server refuses > 2 MB before this
MAX_KEYS = 2_000               # keys in a scenario file (the Linxiang model has ~400 constants)
MAX_ROWS = 20_000              # rows of an actuals file


class UploadError(ValueError):
    """An upload that cannot be used; the message names the file and what is wrong."""


def check_size(name: str, data: bytes) -> None:
    if len(data) > MAX_BYTES:
        raise UploadError(f"{name}: {len(data):,} bytes; the limit is {MAX_BYTES:,}")


def count_keys(obj, limit: int = MAX_KEYS) -> int:
    """Keys and list items in a parsed TOML document, stopping once past ``limit``."""
    n, stack = 0, [obj]
    while stack and n <= limit:
        x = stack.pop()
        if isinstance(x, dict):
            n += len(x)
            stack.extend(x.values())
        elif isinstance(x, list):
            n += len(x)
            stack.extend(x)
    return n


def read_scenario_toml(name: str, data: bytes) -> dict:
    """A scenario file's TOML, size- and key-capped; UploadError otherwise."""
    check_size(name, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"{name}: not UTF-8 text") from None
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UploadError(f"{name}: TOML syntax error: {exc}") from None
    n = count_keys(parsed)
    if n > MAX_KEYS:
        raise UploadError(f"{name}: more than {MAX_KEYS:,} keys; a scenario sets at most the model's constants")
    return parsed


def check_base(name: str, parsed: dict, scenarios: list[str]) -> None:
    """An uploaded scenario's ``base`` must name one of the app's scenarios: never a path, so an
    upload cannot make the server read (or reveal the existence of) any other file."""
    meta = parsed.get("scenario")
    base = meta.get("base") if isinstance(meta, dict) else None
    if base is None:
        return
    if not isinstance(base, str) or base not in scenarios or base in ("", "default"):
        known = ", ".join(s for s in scenarios if s != "default")
        raise UploadError(f"{name}: scenario.base must name one of the app's scenarios ({known})")


def read_actuals(bundle, name: str, data: bytes) -> pd.DataFrame:
    """Actuals in data/'s long format (scope, indicator, unit, year, value, source), CSV or XLSX:
    checked row by row (a number in year and value, finite), then mapped onto model columns by
    the presentation's actuals mapping. Returns the mapped rows (as ``core.load_actuals``)."""
    from lxapp import core

    check_size(name, data)
    if name.lower().endswith(".xlsx"):
        try:
            frame = pd.read_excel(io.BytesIO(data), dtype=str, nrows=MAX_ROWS + 1, engine="openpyxl")
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a bad file
            raise UploadError(f"{name}: not a readable Excel file ({type(exc).__name__})") from None
        records = frame.fillna("").to_dict("records")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UploadError(f"{name}: not UTF-8 text") from None
        reader = csv.DictReader(io.StringIO(text))
        records = []
        for r in reader:
            records.append(r)
            if len(records) > MAX_ROWS:
                break
    if len(records) > MAX_ROWS:
        raise UploadError(f"{name}: more than {MAX_ROWS:,} rows")
    if not records:
        raise UploadError(f"{name}: no rows")
    missing = [c for c in ("indicator", "year", "value") if c not in records[0]]
    if missing:
        raise UploadError(f"{name}: missing column(s) {', '.join(missing)}; expected {', '.join(core.ACTUAL_COLUMNS)}")
    for i, r in enumerate(records, start=2):
        for field in ("year", "value"):
            try:
                x = float(str(r.get(field, "")).strip())
            except ValueError:
                raise UploadError(f"{name}: row {i}, {field} {str(r.get(field))[:40]!r} is not a number") from None
            if not math.isfinite(x):
                raise UploadError(f"{name}: row {i}, {field} is not a finite number")
    rows = core.actual_rows(bundle, ({k: str(v) for k, v in r.items()} for r in records))
    if not rows:
        known = ", ".join(sorted(bundle.presentation.get("actuals", {}))) or "none"
        raise UploadError(f"{name}: no row names an indicator the model is mapped to (known: {known})")
    return pd.DataFrame(rows, columns=["indicator", "column", "year", "value", "source", "kind"])
