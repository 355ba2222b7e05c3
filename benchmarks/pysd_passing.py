"""Which SDXorg test-models PySD itself passes (offline, once): writes tests/data/pysd_passing.txt.

    .venv/bin/python benchmarks/pysd_passing.py ../shared/sd-test-models/tests

A model passes when PySD loads and runs it (Euler, data files of the folder given as
PySD's tests do) and every canonical column it outputs is within PySD's own rule
(rtol 0.05, atol 1e-5) of output.csv/output.tab (for XMILE, or of output_stella.csv).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.io.conformance import (ATOL, RTOL, _key, _split_column, _time_limit,  # noqa: E402
                                   find_models, load_canonical, suite_root)


def pysd_result(model: Path):
    import pysd
    data = [str(f) for f in (model.parent / "data.tab", model.parent / "data.csv") if f.is_file()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {"data_files": data} if data else {}
        m = pysd.read_vensim(str(model), **kw) if model.suffix.lower() == ".mdl" \
            else pysd.read_xmile(str(model), **kw)
        return m.run()


def pysd_compare(res, canon) -> str:
    cols = {_key(c).replace(" ", "_"): c for c in res.columns}
    times = np.asarray(res.index, dtype=float)
    for col in canon.columns:
        name, el = _split_column(col)
        k = _key(str(col)).replace(" ", "_")
        ours = cols.get(k)
        if ours is None:
            return f"missing column {col}"
        ct = np.asarray(canon.index, dtype=float)
        idx = np.searchsorted(times, ct - 1e-9)
        if (idx >= len(times)).any() or not np.allclose(times[np.minimum(idx, len(times) - 1)], ct):
            return "times differ"
        a = res[ours].to_numpy(dtype=float)[idx]
        e = canon[col].to_numpy(dtype=float)
        ok = (np.abs(e - a) <= ATOL + RTOL * np.abs(a)) | (np.isnan(e) & np.isnan(a))
        if not ok.all():
            return f"{col} differs"
    return ""


def pysd_passes(model: Path, timeout: float = 120) -> tuple[bool, str]:
    try:
        with _time_limit(timeout), np.errstate(all="ignore"):
            res = pysd_result(model)
            why = pysd_compare(res, load_canonical(_canonical(model)))
            stella = model.parent / "output_stella.csv"
            if why and model.suffix.lower() == ".xmile" and stella.is_file():
                import pandas as pd
                df = pd.read_csv(stella, index_col=0).apply(pd.to_numeric, errors="coerce")
                df.index = df.index.astype(float)
                if not pysd_compare(res, df):
                    why = ""
        return not why, why
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {str(exc)[:120]}"


def _canonical(model):
    from engine.io.conformance import canonical_file
    return canonical_file(model)


def main(argv=None):
    argv = argv if argv is not None else sys.argv[1:]
    root = suite_root(argv[0] if argv else ROOT.parent / "shared" / "sd-test-models")
    out = ROOT / "tests" / "data" / "pysd_passing.txt"
    passing = []
    for model in find_models(root):
        rel = str(model.relative_to(root))
        ok, why = pysd_passes(model)
        print(f"{rel:60s} {'pass' if ok else 'FAIL ' + why}", flush=True)
        if ok:
            passing.append(rel)
    out.write_text("# SDXorg test-models that PySD passes (benchmarks/pysd_passing.py)\n"
                   + "\n".join(passing) + "\n", encoding="utf-8")
    print(f"{len(passing)} passing; written to {out}")


if __name__ == "__main__":
    main()
