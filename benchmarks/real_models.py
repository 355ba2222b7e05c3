"""Survey of the published models in ../shared/real-models: does each import and run here?

Usage: python benchmarks/real_models.py [--pysd] [NAME-SUBSTRING ...]
Prints one line per model: status, time, and the first line of the error.  Each model runs in a
subprocess with a time limit so one hang does not stop the survey.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("REAL_MODELS", Path(__file__).resolve().parents[2] / "shared" / "real-models"))
if not ROOT.exists():
    ROOT = Path("/work/shared/real-models")

MODELS = [
    "WRLD3-03/wrld3-03.mdl",
    "beer-game/RealBeer4-Sterman13.mdl",
    "industrial-dynamics/IDch15/IDch15d.mdl",
    "covid19-us-homer/homer v8/Covid19US v8.mdl",
    "FREE/FREE6/FREE6-original/free 6.mdl",
    "scientific-revolution/scirev7.mdl",
    "scientific-revolution/scirev8.mdl",
    "theil-statistics/Theil_2011.mdl",
    "thyroid-dynamics/thyroid-2008-d.mdl",
    "wonderland/Wonderland3.mdl",
    "pink-noise/PinkNoise2010.mdl",
    "c-learn/C-LEARN v77 for Vensim.mdl",
    "c-learn/C-LEARN v77 for Vensim.xmile",
    "earth4all/mov220501-18 E4A-global jr TLTL.mdl",
    "earth4all/mov220501-18 E4A-global jr GL.mdl",
    "pysd-cookbook/Aging_Chain.mdl",
    "pysd-cookbook/Capability Trap.mdl",
    "pysd-cookbook/Goldstone_Tilly_2001.mdl",
    "pysd-cookbook/SIR.mdl",
    "pysd-cookbook/Sales_Agent_Market_Building_Dynamics.mdl",
    "xmile/Dice.xmile",
    "xmile/community corona 8.xmile",
]

OURS = """
import sys, time
from engine import load_model
p = sys.argv[1]
t0 = time.perf_counter()
m = load_model(p)
t1 = time.perf_counter()
r = m.run()
t2 = time.perf_counter()
print(f"OK import {t1-t0:.2f}s run {t2-t1:.3f}s vars {len(m.model.variables)}")
"""

PYSD = """
import sys, time, warnings
warnings.simplefilter("ignore")
import pysd
p = sys.argv[1]
t0 = time.perf_counter()
m = pysd.read_vensim(p) if p.lower().endswith('.mdl') else pysd.read_xmile(p)
t1 = time.perf_counter()
r = m.run()
t2 = time.perf_counter()
print(f"OK import {t1-t0:.2f}s run {t2-t1:.3f}s")
"""


def survey(code: str, names: list[str], timeout: int = 300) -> int:
    ok = 0
    for rel in MODELS:
        if names and not any(n.lower() in rel.lower() for n in names):
            continue
        t0 = time.perf_counter()
        try:
            p = subprocess.run([sys.executable, "-c", code, str(ROOT / rel)], capture_output=True, text=True,
                               check=False, timeout=timeout)
            out = (p.stdout.strip().splitlines() or [""])[-1] if p.returncode == 0 else ""
            err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
            status = out if p.returncode == 0 else "FAIL " + (err[-1] if err else f"exit {p.returncode}")[:300]
        except subprocess.TimeoutExpired:
            status = f"FAIL timeout {timeout}s"
        ok += status.startswith("OK")
        print(f"{rel:55s} {time.perf_counter()-t0:6.1f}s {status}", flush=True)
    return ok


def _main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--compare":
        compare(Path(args[1]), args[2:])
        return
    use_pysd = "--pysd" in args
    args = [a for a in args if a != "--pysd"]
    n = survey(PYSD if use_pysd else OURS, args)
    print(f"{n} ran")


# ---------------------------------------------------------------------------------------------
# comparison with PySD: python benchmarks/real_models.py --compare OUTDIR [NAME ...]

OURS_CSV = """
import sys, time
from engine import load_model
from engine.cli import original_column
p, out = sys.argv[1], sys.argv[2]
m = load_model(p)
m.run()                                   # warm-up (first run builds the step function)
t0 = time.perf_counter()
r = m.run()
t = time.perf_counter() - t0
df = r.to_dataframe().droplevel(0)
df = df.rename(columns=lambda c: original_column(m.model, c))
df.to_csv(out)
print(f"TIME {t:.4f}")
"""

PYSD_CSV = """
import sys, time, warnings
warnings.simplefilter("ignore")
import pysd
p, out = sys.argv[1], sys.argv[2]
m = pysd.read_vensim(p) if p.lower().endswith('.mdl') else pysd.read_xmile(p)
t0 = time.perf_counter()
df = m.run()
t = time.perf_counter() - t0
df.to_csv(out)
print(f"TIME {t:.4f}")
"""


def _key(s: str) -> str:
    return " ".join(str(s).lower().replace("_", " ").replace('"', "").split())


def compare_frames(ours, ref, rtol: float = 0.05, atol: float = 1e-5):
    """(columns compared, columns within the PySD rule |a-b| <= atol + rtol|a|, max relative difference
    over points where the reference is not near zero)."""
    import numpy as np
    mine = {_key(c): c for c in ours.columns}
    times = [t for t in ref.index if t in set(ours.index)]
    n = ok = 0
    worst = 0.0
    for c in ref.columns:
        k = _key(c)
        if k not in mine or k in ("time", "final time", "initial time", "time step", "saveper"):
            continue
        a = ours.loc[times, mine[k]].to_numpy(float)
        b = ref.loc[times, c].to_numpy(float)
        if a.shape != b.shape:
            continue
        n += 1
        good = (np.abs(a - b) <= atol + rtol * np.abs(a)) | (np.isnan(a) & np.isnan(b))
        ok += bool(good.all())
        scale = np.nanmax(np.abs(b)) if np.isfinite(b).any() else 0.0
        sel = np.abs(b) > 1e-6 * scale
        if sel.any():
            with np.errstate(all="ignore"):
                rel = np.abs(a[sel] - b[sel]) / np.abs(b[sel])
            if np.isfinite(rel).any():
                worst = max(worst, float(np.nanmax(rel)))
    return n, ok, worst


def compare(outdir: Path, names: list[str], timeout: int = 900) -> None:
    import pandas as pd
    outdir.mkdir(parents=True, exist_ok=True)
    for rel in MODELS:
        if names and not any(n.lower() in rel.lower() for n in names):
            continue
        stem = Path(rel).stem.replace(" ", "_")
        res = {}
        for who, code in (("ours", OURS_CSV), ("pysd", PYSD_CSV)):
            out = outdir / f"{stem}.{who}.csv"
            try:
                p = subprocess.run([sys.executable, "-c", code, str(ROOT / rel), str(out)], capture_output=True,
                                   text=True, check=False, timeout=timeout)
                line = [x for x in p.stdout.splitlines() if x.startswith("TIME ")]
                err = [x for x in p.stderr.strip().splitlines() if x.strip()]
                res[who] = float(line[0].split()[1]) if line else ("fails: " + (err[-1] if err else "?"))[:160]
            except subprocess.TimeoutExpired:
                res[who] = f"fails: over {timeout} s"
        cmp = ""
        if isinstance(res["ours"], float) and isinstance(res["pysd"], float):
            a = pd.read_csv(outdir / f"{stem}.ours.csv", index_col=0)
            b = pd.read_csv(outdir / f"{stem}.pysd.csv", index_col=0)
            n, ok, worst = compare_frames(a, b)
            cmp = f"{ok}/{n} columns within rtol 0.05; max rel diff {worst:.3g}"
        print(f"{rel} | ours {res['ours']} | pysd {res['pysd']} | {cmp}", flush=True)


if __name__ == "__main__":
    _main()
