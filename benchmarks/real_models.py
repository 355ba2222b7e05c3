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
            p = subprocess.run([sys.executable, "-c", code, str(ROOT / rel)], capture_output=True, text=True, check=False,
                               timeout=timeout)
            out = (p.stdout.strip().splitlines() or [""])[-1] if p.returncode == 0 else ""
            err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
            status = out if p.returncode == 0 else "FAIL " + (err[-1] if err else f"exit {p.returncode}")[:300]
        except subprocess.TimeoutExpired:
            status = f"FAIL timeout {timeout}s"
        ok += status.startswith("OK")
        print(f"{rel:55s} {time.perf_counter()-t0:6.1f}s {status}", flush=True)
    return ok


if __name__ == "__main__":
    args = sys.argv[1:]
    use_pysd = "--pysd" in args
    args = [a for a in args if a != "--pysd"]
    n = survey(PYSD if use_pysd else OURS, args)
    print(f"{n} ran")
