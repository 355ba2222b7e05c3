"""Run an SDXorg test-models tree against its canonical outputs.

For every ``.mdl`` / ``.xmile`` file in a folder that holds ``output.csv`` or
``output.tab`` (Vensim's or Stella's canonical output), the model is imported through
:mod:`engine.io.pysd_import`, run on our engine (Euler, one scenario) and compared:
every column of the canonical output must be in our result, and each value must satisfy
``|ours - canon| <= 1e-5 + 0.05 * |ours|`` (PySD's own rule: ``assert_frames_close`` with
``rtol=0.05``), NaN matching NaN.

Columns are matched by the *original* Vensim/XMILE names (case, spaces and underscores
ignored), through the name maps that the importer keeps in ``d["model"]["names"]`` and
``d["model"]["element_names"]``.
"""
from __future__ import annotations

import math
import re
import signal
import threading
import time as _time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.parse.model_file import CONTROL_VARIABLES

from .pysd_import import display_name, import_model, name_key

RTOL = 0.05
NA_BELOW = -1e37   # :NA: (-1e38 in PySD and in imported models) matches a blank canonical cell
ATOL = 1e-5
MODEL_SUFFIXES = (".mdl", ".xmile", ".stmx")
CONTROL_COLUMNS = {
    "initial_time": "start", "final_time": "stop", "time_step": "dt", "saveper": "saveper",
}


@dataclass
class Row:
    model: str       # path relative to the suite root
    status: str      # pass | fail | error
    reason: str      # empty when passed
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def suite_root(root: str | Path) -> Path:
    """Accept the repository root (with tests/) or the tests/ folder itself."""
    root = Path(root)
    if (root / "tests").is_dir() and not any(root.glob("*/output.*")):
        return root / "tests"
    return root


def canonical_file(model: Path) -> Path | None:
    for name in ("output.csv", "output.tab"):
        f = model.parent / name
        if f.is_file():
            return f
    return None


def find_models(root: str | Path) -> list[Path]:
    """Every .mdl/.xmile under root whose folder has a canonical output, sorted."""
    root = suite_root(root)
    found = [p for p in root.rglob("*") if p.suffix.lower() in MODEL_SUFFIXES and p.is_file()]
    return sorted(p for p in found if canonical_file(p) is not None)


def load_canonical(path: Path) -> pd.DataFrame:
    """Canonical output as a DataFrame indexed by time, one column per variable."""
    from pysd.py_backend.utils import detect_encoding, load_outputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = load_outputs(path, encoding=detect_encoding(path))
    df = df.apply(pd.to_numeric, errors="coerce")
    # Vensim writes constants only in the first row
    if len(df) > 1:
        nan_cols = df.iloc[1:].isna().all().values
        if nan_cols.any():
            df.loc[:, nan_cols] = df.loc[:, nan_cols].iloc[0].values
    return df


def _split_column(col: str) -> tuple[str, list[str]]:
    col = str(col).strip()
    m = re.fullmatch(r"(.*?)\s*\[(.*)\]\s*", col, flags=re.S)
    if not m:
        return col, []
    return m.group(1), [e.strip() for e in _split_elems(m.group(2))]


def _split_elems(text: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _key(name: str) -> str:
    return name_key(display_name(name)).replace("\\n", "_")


class ColumnMatcher:
    """Maps canonical column names (original names) onto our result's columns."""

    def __init__(self, d: dict) -> None:
        names = (d.get("model") or {}).get("names") or {}
        elems = (d.get("model") or {}).get("element_names") or {}
        self.var: dict[str, str] = {}
        for ident, orig in names.items():
            self.var.setdefault(_key(orig), ident)
            self.var.setdefault(_key(ident), ident)
        self.elem: dict[str, str] = {}
        for ident, orig in elems.items():
            self.elem.setdefault(_key(orig), ident)
            self.elem.setdefault(_key(ident), ident)

    def column(self, canonical: str) -> tuple[str | None, str]:
        name, el = _split_column(canonical)
        k = _key(name)
        k = re.sub(r"_+", "_", k)
        ident = self.var.get(k) or self.var.get(re.sub(r"_+", "_", k))
        if ident is None:
            return None, k
        if not el:
            return ident, k
        eids = []
        for e in el:
            eid = self.elem.get(_key(e))
            if eid is None:
                return None, k
            eids.append(eid)
        return f"{ident}[{','.join(eids)}]", k


# ----------------------------------------------------------------------------------------
# running a model on our engine


def compile_imported(d: dict, source: str):
    """Compile an imported model dict with the core (units unchecked, as Vensim ran it)."""
    from engine import compile_model
    from engine.parse.model_file import model_from_dict
    return compile_model(model_from_dict(d, source), check_units=False)


def run_imported(d: dict, source: str) -> pd.DataFrame:
    """Run an imported model dict once (Euler); DataFrame indexed by time."""
    model = compile_imported(d, source)
    res = model.run()
    df = res.to_dataframe()
    if isinstance(df.index, pd.MultiIndex):
        first = df.index.get_level_values(0)[0]
        df = df.xs(first, level=0)
    df.columns = [re.sub(r"\s+", "", str(c)) for c in df.columns]
    return df


@contextmanager
def _time_limit(seconds: float):
    if (not seconds or threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "SIGALRM")):
        yield
        return

    def handler(signum, frame):
        raise TimeoutError(f"took longer than {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _short(msg: str, n: int = 300) -> str:
    msg = re.sub(r"\s+", " ", str(msg)).strip()
    msg = msg.replace("|", "/")
    return msg if len(msg) <= n else msg[: n - 3] + "..."


def _time_tolerance(tt: float) -> float:
    """How far a canonical time may be from ours: Vensim prints times with 6 significant digits
    (10.03125 as 10.0312), so half a unit of the 6th digit, and at least 1e-9 relative."""
    tiny = 1e-9 * max(1.0, abs(tt))
    if tt == 0 or not np.isfinite(tt):
        return tiny
    return max(tiny, 0.5001 * 10.0 ** (np.floor(np.log10(abs(tt))) - 5))


def _indices(times: np.ndarray, ct: np.ndarray) -> list[int]:
    """Row of each canonical time in ours (-1 where absent): the nearest of our times within the
    canonical file's printed precision (see _time_tolerance)."""
    idx = []
    for tt in ct:
        j = int(np.searchsorted(times, tt))
        best = [k for k in (j - 1, j) if 0 <= k < len(times)]
        k = min(best, key=lambda k: abs(times[k] - tt)) if best else -1
        idx.append(k if k >= 0 and abs(times[k] - tt) <= _time_tolerance(tt) else -1)
    return idx


def _at_times(ours: pd.DataFrame, ident: str, times: np.ndarray, ct: np.ndarray) -> np.ndarray | None:
    idx = _indices(times, ct)
    if any(j < 0 for j in idx):
        return None
    return ours[ident].to_numpy(dtype=float)[idx]


def _absent_time(times: np.ndarray, ct: np.ndarray) -> str:
    absent = [tt for tt, j in zip(ct, _indices(times, ct), strict=True) if j < 0]
    return f"time {absent[0]:g} of the canonical output is not in our output"


def compare(ours: pd.DataFrame, canon: pd.DataFrame, d: dict) -> str:
    """'' when every canonical column is present and close; else the reason."""
    matcher = ColumnMatcher(d)
    t = d.get("time", {})
    times = np.asarray(ours.index, dtype=float)
    missing, bad = [], []
    ident: str | None
    first_bad_time = math.inf
    for col in canon.columns:
        name, k = _split_column(col)
        expected = canon[col].to_numpy(dtype=float)
        ct = np.asarray(canon.index, dtype=float)
        k_control = CONTROL_COLUMNS.get(re.sub(r"_+", "_", _key(name)))
        if k_control and isinstance(t.get(k_control), str):
            # an equation in [time]: the engine saves it as a variable, compared as any other
            ident = CONTROL_VARIABLES[k_control]
            if ident not in ours.columns:
                missing.append(str(col))
                continue
            actual = _at_times(ours, ident, times, ct)
            if actual is None:
                return _absent_time(times, ct)
        elif k_control:
            if k_control == "saveper":
                actual_full = np.full(len(ct), float(t.get("saveper", t.get("dt", np.nan))))
            else:
                actual_full = np.full(len(ct), float(t.get(k_control, np.nan)))
            actual = actual_full
        else:
            ident, _ = matcher.column(col)
            if ident is None or ident not in ours.columns:
                missing.append(str(col))
                continue
            actual = _at_times(ours, ident, times, ct)
            if actual is None:
                return _absent_time(times, ct)
        # Vensim writes :NA: as a blank cell; the importer gives it PySD's value -1e38
        na = np.isnan(expected) & (np.isnan(actual) | (actual <= NA_BELOW))
        ok = (np.abs(expected - actual) <= ATOL + RTOL * np.abs(actual)) | na
        if not ok.all():
            i = int(np.argmin(ok))
            bad.append((str(col), float(ct[i]), float(expected[i]), float(actual[i])))
            first_bad_time = min(first_bad_time, float(ct[i]))
    parts = []
    if missing:
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        parts.append("missing columns: " + ", ".join(missing[:5]) + more)
    if bad:
        bad.sort(key=lambda b: b[1])
        c, tt, e, a = bad[0]
        more = f"; {len(bad)} columns differ" if len(bad) > 1 else ""
        parts.append(f"{c} at t={tt:g}: expected {e:.6g}, got {a:.6g}{more}")
    return "; ".join(parts)


def run_one(model: Path, root: Path | None = None, timeout: float = 120.0) -> Row:
    rel = str(model.relative_to(root)) if root else str(model)
    start = _time.perf_counter()
    try:
        with _time_limit(timeout), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            # DATA variables without a source read the folder's data file (as PySD's tests)
            data_files = [f for f in (model.parent / "data.tab", model.parent / "data.csv")
                          if f.is_file()]
            d = import_model(model, data_files=data_files)
            ours = run_imported(d, str(model))
            canon_file = canonical_file(model)
            if canon_file is None:
                raise FileNotFoundError(f"{model.parent}: no output.csv or output.tab beside the model")
            canon = load_canonical(canon_file)
            reason = compare(ours, canon, d)
            # the folder's output.* is Vensim's (for the .mdl, which may hold variables or
            # functions the XMILE translation lost): an XMILE or Stella model may instead match
            # Stella's own output of it (output_stella.csv, or one named for Stella's version)
            stellas = sorted(model.parent.glob("output_stella*.csv")) if model.suffix.lower() in (
                ".xmile", ".stmx") else []
            for stella in stellas if reason else []:
                df = pd.read_csv(stella, index_col=0).apply(pd.to_numeric, errors="coerce")
                df.index = df.index.astype(float)
                if not compare(ours, df[~np.isnan(df.index)], d):
                    reason = ""
                    break
        status = "pass" if not reason else "fail"
    except TimeoutError as exc:
        status, reason = "error", f"timeout: {exc}"
    except RecursionError:
        status, reason = "error", "recursion too deep"
    except Exception as exc:  # noqa: BLE001 - every failure becomes a row
        status, reason = "error", _short(f"{type(exc).__name__}: {exc}")
    return Row(rel, status, _short(reason, 400), _time.perf_counter() - start)


def run_conformance(root: str | Path, timeout: float = 120.0, progress=None) -> list[Row]:
    """One row per model file with a canonical output under root."""
    root = suite_root(root)
    rows = []
    for model in find_models(root):
        row = run_one(model, root, timeout)
        rows.append(row)
        if progress:
            progress(row)
    return rows


def summary_line(rows: list[Row]) -> str:
    passed = sum(r.passed for r in rows)
    return f"{passed} passed, {len(rows) - passed} failed"


def report_markdown(rows: list[Row], root: str | Path | None = None) -> str:
    lines = ["# Conformance with SDXorg test-models", ""]
    if root:
        lines += [f"Suite: `{root}`; rule: every canonical column present, "
                  f"|ours - canon| <= {ATOL:g} + {RTOL:g}·|ours|.", ""]
    lines += ["| model | status | reason | time (s) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.status} | {r.reason} | {r.seconds:.2f} |")
    lines += ["", summary_line(rows), ""]
    return "\n".join(lines)
