"""Check the numpy floor against PySD on the reference .mdl.

    .venv/bin/python benchmarks/check_floor.py

Runs PySD on a temporary copy of ../shared/bench/regional_economy.mdl (PySD
writes its translated .py next to the .mdl, and the shared folder is
read-only) for the default constants and for a few changed constants, and
compares the ten saved variables with ``run_floor``. Exit 1 if the largest
relative difference is above 1e-9.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from numpy_floor import SAVED, VENSIM_NAMES, run_floor  # noqa: E402

MDL = (ROOT / ".." / "shared" / "bench" / "regional_economy.mdl").resolve()
TOL = 1e-9

CASES = [
    {},
    {"savings_rate": 0.25},
    {"savings_rate": 0.4, "project_start_year": 2027.3, "construction_delay": 2},
    {"tax_rate": 0.12, "debt_ceiling": 0.45, "gdp_smoothing_time": 1.5},
]


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.maximum(np.abs(a), np.abs(b))
    d = np.abs(a - b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(scale > 1e-12, d / scale, d)
    return float(np.max(r))


def pysd_model(tmp: Path):
    import pysd

    shutil.copy(MDL, tmp / MDL.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pysd.read_vensim(str(tmp / MDL.name))


def main() -> int:
    if not MDL.exists():
        print(f"skip: {MDL} not found")
        return 0
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmpdir:
        model = pysd_model(Path(tmpdir))
        cols = [VENSIM_NAMES[v] for v in SAVED]
        # All cases in one batch for the floor: scenario i = CASES[i].
        names = sorted({k for case in CASES for k in case})
        from numpy_floor import DEFAULTS
        params = {k: np.array([case.get(k, DEFAULTS[k]) for case in CASES])
                  for k in names}
        floor = run_floor(len(CASES), params)
        for i, case in enumerate(CASES):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.reload()  # params given to run() persist in PySD
                df = model.run(params={VENSIM_NAMES.get(k, k): v for k, v in case.items()},
                               return_columns=cols)
            if not np.allclose(df.index.values, floor["time"]):
                print("time axis differs", df.index.values[:3], floor["time"][:3])
                return 1
            for v in SAVED:
                d = rel_diff(df[VENSIM_NAMES[v]].to_numpy(), floor[v][i])
                worst = max(worst, d)
                flag = "" if d < TOL else "   <-- FAIL"
                print(f"case {i} {v:24s} max rel diff {d:.3e}{flag}")
    print(f"worst relative difference floor vs PySD: {worst:.3e} (tolerance {TOL:g})")
    return 0 if worst < TOL else 1


if __name__ == "__main__":
    sys.exit(main())
