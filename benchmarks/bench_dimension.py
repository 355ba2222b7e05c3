"""Compile time against the size of one dimension (issue 15: it grew with the square of the size).

    .venv/bin/python benchmarks/bench_dimension.py [--sizes 20000,80000,320000] [--out FILE.md]

For each size N, a model with one dimension of N elements (a subrange of half of them, a subscripted
stock, constant, flow with element and subrange equations, SUM/VMAX over the dimension and the subrange,
SMOOTH) is written to a temporary file and, in a subprocess of its own, read (`read_model`), compiled
(`compile_model`) and run once (3 steps); the table gives each phase's wall time and the process's peak
memory. Imports are not counted. Prints a markdown table (and writes it to --out).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def model_text(n: int) -> str:
    """The benchmark model with one dimension of n elements (TOML text)."""
    els = [f"e{i}" for i in range(n)]
    q = ", ".join(f'"{e}"' for e in els)
    half = ", ".join(f'"{e}"' for e in els[: n // 2])
    return "\n".join([
        '[model]', 'name = "bigdim"', '[time]', 'start = 0', 'stop = 2', 'dt = 1',
        '[dimensions]', f'd = [{q}]', '[subranges]', f'h = {{ of = "d", elements = [{half}] }}',
        '[constants.c]', 'dims = ["d"]', 'value = [' + ", ".join(str(i % 7 + 1) for i in range(n)) + ']',
        '[stocks.s]', 'dims = ["d"]', 'initial = "c"', 'inflows = ["g"]',
        '[flows.g]', 'dims = ["d"]', 'equations = { default = "0.1 * s", e0 = "0.2 * s", h = "0.05 * s[h]" }',
        '[auxiliaries.hs]', 'equation = "SUM(s[h!]) + s[e1]"',
        '[auxiliaries.onh]', 'dims = ["h"]', 'equation = "s[h] * 2 + c[h]"',
        '[auxiliaries.sm]', 'dims = ["d"]', 'equation = "SMOOTH(s, 2) + VMAX(c[d!])"', ""])


CHILD = """
import json, resource, sys, time
from engine import compile_model, limits, read_model
import engine.compile.model_code, scipy.stats  # imports before the clock starts
limits.set_force(True)
t0 = time.perf_counter(); m = read_model(sys.argv[1])
t1 = time.perf_counter(); c = compile_model(m)
t2 = time.perf_counter(); c.run()
t3 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "compile": t2 - t1, "run": t3 - t2,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(n: int, folder: Path) -> dict:
    path = folder / f"dim{n}.toml"
    path.write_text(model_text(n), encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,80000,320000")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = ["| elements | read s | compile s | run s | peak MB |", "|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            r = measure(n, Path(tmp))
            rows.append(f"| {n:,} | {r['read']:.2f} | {r['compile']:.2f} | {r['run']:.2f} | {r['peak_mb']:.0f} |")
            print(rows[-1], file=sys.stderr, flush=True)
    text = "\n".join(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
