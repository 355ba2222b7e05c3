"""Benchmarks of issue 12: a compiled backend (JAX, or numba / C with ``--backend numba|c``) against numpy.

    .venv/bin/python benchmarks/bench_backend.py [--backend jax|numba|c] [--quick] [--cases a,b,...] [--no-write]
                                                 [--skip-numpy] [--out FILE]

Each case runs in its own subprocess (a fresh interpreter: compile times are a new process's,
peak memory the case's own). Cases:

- ``linxiang-1``, ``linxiang-10k``, ``linxiang-100k``: model/linxiang.toml, one run and batches
  with the first constant that has a range varied across it, 10 variables saved; wall time
  after compilation (median of repetitions), peak RSS; both backends.
- ``reference-1``: benchmarks/regional_economy.toml, one run, both backends.
- ``world3-1``, ``earth4all-1``: the published models in ../shared/real-models, one run with
  every variable saved, both backends (skipped when the files are missing).
- ``compile-linxiang``, ``compile-earth4all``: the compiled backend's first run in a fresh
  process with an empty cache folder (cold), then again in another fresh process (cached).

Every case also records the largest relative difference between the backends' saved values, per value
and on each variable's scale (its largest absolute value; the fair bar where a value crosses zero).
Writes the section between ``<!-- backend:start -->`` and ``<!-- backend:end -->`` (jax) or
``<!-- backend-numba:start -->`` and ``<!-- backend-numba:end -->`` (numba) of docs/benchmarks.md
(the rest of the file is kept), and prints it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
SHARED = (ROOT / ".." / "shared").resolve()
MODELS = {
    "linxiang": ROOT / "model" / "linxiang.toml",
    "reference": HERE / "regional_economy.toml",
    "world3": SHARED / "real-models" / "WRLD3-03" / "wrld3-03.mdl",
    "earth4all": SHARED / "real-models" / "earth4all" / "mov220501-18 E4A-global jr TLTL.mdl",
}
# (case, model, N, repetitions) -- the targets of issue 12
RUN_CASES = {
    "linxiang-1": ("linxiang", 1, 30),
    "linxiang-10k": ("linxiang", 10_000, 3),
    "linxiang-100k": ("linxiang", 100_000, 1),
    "reference-1": ("reference", 1, 30),
    "world3-1": ("world3", 1, 10),
    "earth4all-1": ("earth4all", 1, 3),
}
COMPILE_CASES = {"compile-linxiang": "linxiang", "compile-reference": "reference", "compile-world3": "world3",
                 "compile-earth4all": "earth4all"}
TARGETS = {  # seconds (and GB for memory), issue 12
    "linxiang-1": 0.5e-3, "linxiang-10k": 0.5, "linxiang-100k": 5.0, "earth4all-1": 0.3,
    "world3-1": 2e-3, "reference-1": 0.1e-3,
}
TARGET_MEM_GB = {"linxiang-100k": 1.5}
TARGET_COMPILE = {"compile-linxiang": (10.0, 1.0), "compile-earth4all": (60.0, 2.0),
                  "compile-reference": (None, None), "compile-world3": (None, None)}
# SDEverywhere's C build, as measured in issue 12 (not re-measured here; the C toolchain is not part of make bench)
C_QUOTED = {"linxiang-1": 0.238e-3, "reference-1": 15e-6, "world3-1": 0.318e-3, "earth4all-1": 58e-3}
CASE_TIMEOUT_S = 1800


# ------------------------------------------------------------------------------------------ workers
def _peak_rss_gb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _plan(path: Path) -> tuple[str | None, float, float, list[str] | None]:
    """The constant to vary (the first scalar one with a range) and 10 variables to save (TOML models);
    imported models save every variable."""
    if path.suffix != ".toml":
        return None, 0.0, 0.0, None
    import tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    varied, lo, hi = None, 0.0, 0.0
    for name, spec in (data.get("constants") or {}).items():
        rng = spec.get("range")
        if not spec.get("dims") and isinstance(rng, list) and len(rng) == 2 and rng[0] < rng[1]:
            varied, lo, hi = name, float(rng[0]), float(rng[1])
            break
    names = (list(data.get("stocks") or {}) + list(data.get("auxiliaries") or {}))[:10]
    return varied, lo, hi, names


def worker_run(spec: dict) -> dict:
    import numpy as np

    from engine import load_model

    path = MODELS[spec["model"]]
    n, reps = spec["n"], spec["reps"]
    varied, lo, hi, variables = _plan(path)
    params = {varied: np.linspace(lo, hi, n)} if varied and n > 1 else {}
    out: dict = {}
    saved = {}
    compiled = spec.get("backend", "jax")
    for backend in (compiled, "numpy"):
        if backend == "numpy" and spec.get("skip_numpy"):
            continue
        model = load_model(path, backend=backend)
        t0 = time.perf_counter()
        res = model.run(params=params, n=n, variables=variables)
        first = time.perf_counter() - t0
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            res = model.run(params=params, n=n, variables=variables)
            times.append(time.perf_counter() - t0)
        out[backend] = {"first_s": first, "median_s": statistics.median(times), "min_s": min(times),
                        "ran_on": res.backend, "peak_rss_gb": _peak_rss_gb()}
        saved[backend] = {v: res[v] for v in res.variables}
    if len(saved) == 2:
        worst = scaled = 0.0
        for v, a in saved["numpy"].items():
            b = saved[compiled][v]
            scale = np.maximum(np.abs(a), 1e-12)
            with np.errstate(all="ignore"):
                worst = max(worst, float(np.nanmax(np.abs(a - b) / scale)) if a.size else 0.0)
                # on the variable's scale (its largest absolute value): the bar where a value crosses zero
                top = float(np.nanmax(np.abs(a))) if a.size else 0.0
                scaled = max(scaled, float(np.nanmax(np.abs(a - b))) / top if top > 0 else 0.0)
        out["max_rel_diff"] = worst
        out["max_scaled_diff"] = scaled
    return out


def worker_first(spec: dict) -> dict:
    """One fresh process: import, load, first run on the compiled backend (compiles or reads the cache)."""
    t0 = time.perf_counter()
    from engine import load_model

    model = load_model(MODELS[spec["model"]], backend=spec.get("backend", "jax"))
    t1 = time.perf_counter()
    res = model.run()
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "first_run_s": t2 - t1, "ran_on": res.backend}


def _worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    try:
        res = {"ok": True, **(worker_run(spec) if spec["kind"] == "run" else worker_first(spec))}
    except Exception as exc:  # noqa: BLE001 - recorded in the table
        res = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
    print(json.dumps(res))
    return 0


def run_case(spec: dict, env: dict | None = None) -> dict:
    try:
        done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                              text=True, timeout=CASE_TIMEOUT_S, cwd=ROOT, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {CASE_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"ok": False, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------------------ report
def _t(x: float | None) -> str:
    if x is None:
        return "—"
    if x < 1e-3:
        return f"{x * 1e6:.0f} µs"
    if x < 1:
        return f"{x * 1e3:.2f} ms"
    return f"{x:.2f} s"


def render(results: dict, started: str, elapsed: float, quick: bool, backend: str = "jax") -> str:
    intro = (f"Measured {started} by `benchmarks/bench_backend.py{' --quick' if quick else ''}` in {elapsed:.0f} s; "
             f"{os.cpu_count()} CPUs (shared with other work while measured: figures are upper bounds). "
             "Median wall time of repeated runs after the first (compilation) run; C = SDEverywhere's C build "
             "as measured in issue 12 (quoted, not re-measured).")
    tag = "backend" if backend == "jax" else f"backend-{backend}"
    lines = [f"<!-- {tag}:start -->", f"## Compiled backend: {backend} (issue 12)", "", intro, "",
             f"| case | numpy | {backend} | numpy / {backend} | {backend} / C | target | met | max rel. diff "
             f"(per value / on the variable's scale) | "
             f"peak RSS ({backend}) |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for case in RUN_CASES:
        r = results.get(case)
        if r is None:
            continue
        if not r.get("ok"):
            lines.append(f"| {case} | failed: {r.get('error', '')} | | | | | | | |")
            continue
        j, n = r.get(backend, {}), r.get("numpy", {})
        jt, nt = j.get("median_s"), n.get("median_s")
        target = TARGETS.get(case)
        met = jt is not None and target is not None and jt <= target and j.get("ran_on") == backend
        if case in TARGET_MEM_GB:
            met = met and j.get("peak_rss_gb", 99) <= TARGET_MEM_GB[case]
        c = C_QUOTED.get(case)
        note = "" if j.get("ran_on") == backend else " (ran on numpy)"
        lines.append(f"| {case} | {_t(nt)} | {_t(jt)}{note} | {nt / jt:.1f}x | "
                     f"{f'{jt / c:.0f}x' if c and jt else '—'} | ≤ {_t(target)}"
                     f"{f', ≤ {TARGET_MEM_GB[case]} GB' if case in TARGET_MEM_GB else ''} | {'yes' if met else 'no'} | "
                     f"{r.get('max_rel_diff', float('nan')):.1e} / {r.get('max_scaled_diff', float('nan')):.1e} | "
                     f"{j.get('peak_rss_gb', float('nan')):.2f} GB |"
                     if nt and jt else f"| {case} | {_t(nt)} | {_t(jt)}{note} | | | | | | |")
    lines += ["", f"| compilation ({backend}, a fresh process) | cold | cached | target cold / cached | met | "
              "cold: load / first run | cached: load / first run |",
              "|---|---:|---:|---:|---|---:|---:|"]
    for case in COMPILE_CASES:
        r = results.get(case)
        if r is None:
            continue
        if not r.get("ok"):
            lines.append(f"| {case} | failed: {r.get('error', '')} | | | |")
            continue
        cold, cached = r["cold"], r["cached"]
        tc, tw = TARGET_COMPILE[case]
        cs = cold["load_s"] + cold["first_run_s"]
        ws = cached["load_s"] + cached["first_run_s"]
        # the split: loading (reading and resolving the model, numpy's cost too) and the first run (compiling or
        # reading the cache, then running)
        split = (f" {_t(cold['load_s'])} / {_t(cold['first_run_s'])} | {_t(cached['load_s'])} / "
                 f"{_t(cached['first_run_s'])} |")
        ran = "" if cold["ran_on"] == backend else " (ran on numpy)"
        if tc is None:
            lines.append(f"| {case} (load + first run){ran} | {_t(cs)} | {_t(ws)} | — | — |{split}")
            continue
        met = cs <= tc and ws <= tw and cold["ran_on"] == backend
        lines.append(f"| {case} (load + first run){ran} | {_t(cs)} | {_t(ws)} | ≤ {tc:g} s / ≤ {tw:g} s | "
                     f"{'yes' if met else 'no'} |{split}")
    lines += [f"<!-- {tag}:end -->", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test, not for the record)")
    ap.add_argument("--cases", help="comma-separated cases (default: all)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--backend", default="jax", choices=["jax", "numba", "c"], help="the compiled backend to measure")
    ap.add_argument("--skip-numpy", action="store_true", help="time the compiled backend only (no numpy column)")
    ap.add_argument("--out", default=str(DOC))
    args = ap.parse_args(argv)
    if args.worker:
        return _worker(args.worker)
    wanted = args.cases.split(",") if args.cases else list(RUN_CASES) + list(COMPILE_CASES)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    t0 = time.perf_counter()
    results: dict = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "LXSD_CACHE_DIR": cache}
        for case in wanted:
            print(case, file=sys.stderr)
            if case in RUN_CASES:
                model, n, reps = RUN_CASES[case]
                if not MODELS[model].exists():
                    continue
                results[case] = run_case({"kind": "run", "model": model, "n": n, "backend": args.backend,
                                          "skip_numpy": args.skip_numpy,
                                          "reps": max(1, reps // 5) if args.quick else reps}, env)
            elif case in COMPILE_CASES:
                model = COMPILE_CASES[case]
                if not MODELS[model].exists():
                    continue
                with tempfile.TemporaryDirectory() as fresh:
                    env2 = {**os.environ, "LXSD_CACHE_DIR": fresh}
                    cold = run_case({"kind": "first", "model": model, "backend": args.backend}, env2)
                    cached = run_case({"kind": "first", "model": model, "backend": args.backend}, env2)
                ok = cold.get("ok") and cached.get("ok")
                results[case] = {"ok": ok, "cold": cold, "cached": cached,
                                 "error": cold.get("error") or cached.get("error")}
            else:
                print(f"unknown case {case}", file=sys.stderr)
    text = render(results, started, time.perf_counter() - t0, args.quick, args.backend)
    print(text)
    print(json.dumps(results), file=sys.stderr)
    if not args.no_write:
        out = Path(args.out)
        old = out.read_text(encoding="utf-8") if out.exists() else ""
        tag = "backend" if args.backend == "jax" else f"backend-{args.backend}"
        start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
        if start in old and end in old:
            new = old[:old.index(start)] + text.rstrip("\n") + old[old.index(end) + len(end):]
        else:
            new = old.rstrip("\n") + "\n\n" + text
        tmp = out.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
