"""Benchmarks of issue 2, section 8 (`make bench`; not part of `make test`).

    .venv/bin/python benchmarks/run_benchmarks.py [--quick] [--no-write] [--out FILE]

In one run, each case in its own subprocess (so that peak memory is the
case's own, and one crash cannot take the others down):

a. our engine on benchmarks/regional_economy.toml (and on the .mdl itself,
   through ``engine.load_model``, when the .mdl import works): compile time,
   and wall time and peak memory for N = 1, 1 000, 10 000, 100 000 scenarios,
   ``savings_rate`` varied across the batch, 10 variables saved;
b. the hand-written numpy floor (benchmarks/numpy_floor.py), same N;
c. PySD on the same .mdl: translate + load, 1 run, and 100 runs in a loop
   with ``savings rate`` varied (``model.run(params=...)``);
d. ratios: ours / floor per N; per-scenario throughput ours vs PySD at
   N = 1 000;
e. the Linxiang model (model/linxiang.toml), same N series, if it loads.

Times are medians of several repetitions after one warm-up run. Peak memory is
the subprocess's peak resident set size (VmHWM: the whole process,
interpreter and imports included) and, separately, the peak of memory
allocated during one run (``tracemalloc``, which sees numpy's buffers).

Writes docs/benchmarks.md and prints it. A part that fails is recorded in the
table as failed, with its error, and the rest still runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REF_TOML = HERE / "regional_economy.toml"
REF_MDL = (ROOT / ".." / "shared" / "bench" / "regional_economy.mdl").resolve()
LINXIANG = ROOT / "model" / "linxiang.toml"
DOC = ROOT / "docs" / "benchmarks.md"

NS = (1, 1000, 10000, 100000)
REPS = {1: 30, 1000: 10, 10000: 7, 100000: 3}
QUICK_REPS = {1: 5, 1000: 3, 10000: 2, 100000: 1}
VARIED = "savings_rate"
VARIED_RANGE = (0.2, 0.4)
PYSD_LOOP = 100
FLOOR_BLOCK = 4096  # the blocked floor variant, for N >= 10 000 (information only)
CASE_TIMEOUT_S = 900

# Targets of issue 2 ("Targets, measured by `make bench`").
T_N1_RUN_S = 0.005
T_COMPILE_S = 0.5
T_N10K_S = 0.2
T_N10K_FLOOR_RATIO = 2.0
T_N100K_S = 2.0
T_N100K_MEM_MB = 1024.0
T_THROUGHPUT_RATIO = 10000.0

sys.path.insert(0, str(HERE))


# --------------------------------------------------------------------------
# Worker side: one case per process, result as JSON on the last stdout line.
# --------------------------------------------------------------------------

def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """Current resident set size (MiB)."""
    v = _status_mb("VmRSS")
    return float("nan") if v is None else v


def _maxrss_mb() -> float:
    """Peak resident set size of this process (MiB).

    VmHWM (Linux) rather than getrusage's ru_maxrss: ru_maxrss survives
    execve, so a child would report the driver's own peak if that was higher.
    """
    v = _status_mb("VmHWM")
    if v is not None:
        return v
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def _timed_runs(fn, reps: int, keep: list | None = None) -> dict:
    """One warm-up call, then ``reps`` timed calls; peak memory of one call.

    ``keep``: a list to receive the result of the last (traced) call."""
    import gc
    import tracemalloc

    t0 = time.perf_counter()
    res = fn()
    first = time.perf_counter() - t0
    del res
    gc.collect()
    base = _rss_mb()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
        del res
    gc.collect()
    maxrss = _maxrss_mb()
    tracemalloc.start()
    res = fn()
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    if keep is not None:
        keep.append(res)
    del res
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "reps": reps,
        "first_s": first,
        "rss_before_mb": base,
        "maxrss_mb": maxrss,
        "traced_peak_mb": traced_peak,
    }


def _varied(n: int, lo: float, hi: float):
    import numpy as np

    if n == 1:
        return np.array([(lo + hi) / 2])
    return np.linspace(lo, hi, n)


def _linxiang_plan(path: Path) -> dict:
    """Which constant to vary and which 10 variables to save, from the TOML."""
    import tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    plan: dict = {"varied": None, "lo": None, "hi": None, "variables": []}
    for name, spec in (data.get("constants") or {}).items():
        val = spec.get("value")
        if spec.get("dims") or isinstance(val, bool) or not isinstance(val, (int, float)):
            continue
        rng = spec.get("range")
        if isinstance(rng, list) and len(rng) == 2 and rng[0] < rng[1]:
            lo, hi = float(rng[0]), float(rng[1])
        elif val != 0:
            lo, hi = 0.9 * val, 1.1 * val
        else:
            continue
        plan.update(varied=name, lo=lo, hi=hi)
        break
    names = list(data.get("stocks") or {}) + list(data.get("auxiliaries") or {})
    plan["variables"] = names[:10]
    plan["time"] = data.get("time") or {}
    plan["n_variables"] = sum(len(data.get(sec) or {}) for sec in
                              ("constants", "stocks", "flows", "auxiliaries", "lookups", "data"))
    plan["dimensions"] = {k: len(v) for k, v in (data.get("dimensions") or {}).items()}
    return plan


def worker_compile(spec: dict) -> dict:
    """Cold compile (first load_model in a fresh process, numpy already imported,
    but whatever else load_model imports lazily included) and warm compile
    (a second load_model of the same file, the expression-parse cache cleared)."""
    t0 = time.perf_counter()
    import engine  # noqa: F401
    from engine import load_model

    t1 = time.perf_counter()
    import numpy  # noqa: F401

    t2 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(spec["path"], backend=spec.get("backend", "numpy"))
        t3 = time.perf_counter()
        try:  # do not let the parser's cache make the second load look faster
            from engine.parse import expr as _expr

            _expr._parse_cached.cache_clear()
        except Exception:  # noqa: BLE001
            pass
        t4 = time.perf_counter()
        load_model(spec["path"], backend=spec.get("backend", "numpy"))
        t5 = time.perf_counter()
    return {"import_s": t1 - t0, "import_numpy_s": t2 - t1, "compile_s": t3 - t2, "warm_s": t5 - t4}


def worker_engine(spec: dict) -> dict:
    import numpy as np
    from engine import load_model

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # these series are the numpy backend's (the reference); benchmarks/bench_backend.py times the compiled one
        model = load_model(spec["path"], backend=spec.get("backend", "numpy"))
    compile_s = time.perf_counter() - t0
    n = spec["n"]
    params = {}
    if spec.get("varied"):
        params[spec["varied"]] = _varied(n, spec["lo"], spec["hi"])
    variables = spec["variables"]

    def fn():
        return model.run(params=params, variables=variables, method="euler")

    kept: list = []
    out = _timed_runs(fn, spec["reps"], kept)
    out["compile_s"] = compile_s
    res = kept[0]
    shape = tuple(np.asarray(res[variables[0]]).shape)
    out["shape"] = list(shape)
    if spec.get("compare_floor"):
        from numpy_floor import run_floor

        floor = run_floor(n, params)
        worst = 0.0
        for v in variables:
            a = np.asarray(res[v], dtype=float)
            b = floor[v]
            scale = np.maximum(np.abs(a), np.abs(b))
            d = np.abs(a - b)
            r = np.where(scale > 1e-12, d / np.where(scale > 1e-12, scale, 1.0), d)
            worst = max(worst, float(np.max(r)))
        out["max_rel_diff_vs_floor"] = worst
    return out


def worker_floor(spec: dict) -> dict:
    from numpy_floor import SAVED, run_floor

    n = spec["n"]
    params = {VARIED: _varied(n, *VARIED_RANGE)}
    block = spec.get("block")
    return _timed_runs(lambda: run_floor(n, params, SAVED, block=block), spec["reps"])


def worker_pysd(spec: dict) -> dict:
    import numpy as np
    import pysd

    from numpy_floor import SAVED, VENSIM_NAMES, run_floor

    cols = [VENSIM_NAMES[v] for v in SAVED]
    out: dict = {"pysd_version": pysd.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        mdl = Path(tmp) / REF_MDL.name
        shutil.copy(REF_MDL, mdl)  # PySD writes the translated .py next to the .mdl
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            model = pysd.read_vensim(str(mdl))
            out["load_s"] = time.perf_counter() - t0
            df = model.run(return_columns=cols)  # warm-up, default constants
            floor = run_floor(1)
            worst = 0.0
            for v in SAVED:
                a = df[VENSIM_NAMES[v]].to_numpy()
                b = floor[v][0]
                worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))
            out["floor_max_rel_diff"] = worst
            single = []
            for _ in range(spec["reps"]):
                t0 = time.perf_counter()
                model.run(return_columns=cols)
                single.append(time.perf_counter() - t0)
            out["run1_median_s"] = statistics.median(single)
            out["run1_reps"] = len(single)
            values = np.linspace(*VARIED_RANGE, spec["loop"])
            t0 = time.perf_counter()
            for v in values:
                model.run(params={"savings rate": float(v)}, return_columns=cols)
            out["loop_s"] = time.perf_counter() - t0
            out["loop_runs"] = int(spec["loop"])
    out["maxrss_mb"] = _maxrss_mb()
    return out


WORKERS = {"compile": worker_compile, "engine": worker_engine,
           "floor": worker_floor, "pysd": worker_pysd}


def worker_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    sys.path.insert(0, str(ROOT))
    try:
        result = {"ok": True, **WORKERS[spec["kind"]](spec)}
    except BaseException as exc:  # noqa: BLE001 - everything is reported, not raised
        tb = traceback.format_exc(limit=4)
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip(),
                  "error_type": type(exc).__name__, "traceback": tb}
    print("@@RESULT@@" + json.dumps(result))
    return 0


# --------------------------------------------------------------------------
# Driver side.
# --------------------------------------------------------------------------

def run_case(spec: dict, timeout: float = CASE_TIMEOUT_S) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    label = " ".join(f"{k}={v}" for k, v in spec.items() if k in ("kind", "label", "n"))
    print(f"  running {label} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=str(ROOT), env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@RESULT@@"):
            res = json.loads(line[len("@@RESULT@@"):])
            res["process_wall_s"] = wall
            if not res["ok"]:
                print(f"    failed: {res['error']}", file=sys.stderr)
            return res
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"ok": False, "error": f"worker exited {proc.returncode}: " + " | ".join(tail)}


def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cores": os.cpu_count()}
    try:
        info["load_start"] = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        info["load_start"] = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    for mod in ("numpy", "pandas", "pysd", "scipy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            info[mod] = "not installed"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10)
        info["commit"] = commit.stdout.strip() or "no commit yet"
        dirty = subprocess.run(["git", "status", "--porcelain", "engine"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
        if dirty.stdout.strip():
            info["commit"] += " (engine/ has uncommitted changes)"
    except Exception:  # noqa: BLE001
        info["commit"] = "unknown"
    return info


def ms(x: float | None) -> str:
    if x is None:
        return "–"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{1e3 * x:.3g} ms" if x >= 1e-3 else f"{1e3 * x:.3f} ms"


def mb(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.0f} MiB" if x >= 10 else f"{x:.2g} MiB"


def cell(res: dict | None, key: str, fmt) -> str:
    if res is None:
        return "not run"
    if not res.get("ok"):
        return "failed"
    v = res.get(key)
    return fmt(v) if v is not None else "–"


def ratio(a: dict | None, b: dict | None) -> float | None:
    if a and b and a.get("ok") and b.get("ok") and b["median_s"] > 0:
        return a["median_s"] / b["median_s"]
    return None


def series(kind_spec: dict, reps: dict, ns=NS, compare_at: int | None = None) -> dict:
    out = {}
    for n in ns:
        spec = dict(kind_spec, n=n, reps=reps[n])
        if compare_at == n:
            spec["compare_floor"] = True
        out[n] = run_case(spec)
    return out


def _mdl_runs(ref_spec: dict, reps: dict) -> tuple[dict, str | None, dict | None]:
    """Our engine on the reference .mdl itself: its series, why it was skipped (or None), its compilation."""
    mdl_ours: dict = {}
    mdl_note = None
    mdl_compile = None
    if not REF_MDL.exists():
        mdl_note = f"{REF_MDL} not found: .mdl runs skipped."
    else:
        mdl_compile = run_case({"kind": "compile", "path": str(REF_MDL)})
        if not mdl_compile.get("ok"):
            et = mdl_compile.get("error_type", "")
            why = ("the engine does not import .mdl yet" if et in ("NotImplementedError", "ModelError")
                   else "loading the .mdl failed")
            mdl_note = f"{why}: {mdl_compile['error'][:300]}; .mdl series skipped."
        else:
            mdl_spec = dict(ref_spec, path=str(REF_MDL), label="ours-mdl")
            mdl_ours = series(mdl_spec, reps, compare_at=1000)
    return mdl_ours, mdl_note, mdl_compile


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions and PySD runs (a smoke test, not for the record)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    ap.add_argument("--out", default=str(DOC), help="markdown file to write (docs/benchmarks.md)")
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)

    reps = QUICK_REPS if args.quick else REPS
    loop = 10 if args.quick else PYSD_LOOP
    started = _dt.datetime.now().astimezone()
    t_start = time.perf_counter()
    info = machine_info()
    notes: list[str] = []
    saved = None
    try:
        from numpy_floor import SAVED

        saved = list(SAVED)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"benchmarks/numpy_floor.py does not import: {exc}")
        saved = []

    print("Reference model", file=sys.stderr)
    ref_spec = {"kind": "engine", "path": str(REF_TOML), "varied": VARIED,
                "lo": VARIED_RANGE[0], "hi": VARIED_RANGE[1], "variables": saved,
                "label": "ours-toml"}
    compile_runs = [run_case({"kind": "compile", "path": str(REF_TOML)})
                    for _ in range(3 if args.quick else 5)]
    ours, floor, floor_blocked = {}, {}, {}
    for n in NS:  # interleave ours and the floor so that drift hits both
        spec = dict(ref_spec, n=n, reps=reps[n])
        if n == 1000:
            spec["compare_floor"] = True
        ours[n] = run_case(spec)
        floor[n] = run_case({"kind": "floor", "n": n, "reps": reps[n], "label": "floor"})
        if n > FLOOR_BLOCK:
            floor_blocked[n] = run_case({"kind": "floor", "n": n, "reps": reps[n], "block": FLOOR_BLOCK,
                                         "label": f"floor-blocked-{FLOOR_BLOCK}"})

    # Our engine on the .mdl itself.
    mdl_ours, mdl_note, mdl_compile = _mdl_runs(ref_spec, reps)

    print("PySD", file=sys.stderr)
    if REF_MDL.exists():
        pysd_res = run_case({"kind": "pysd", "reps": 3 if args.quick else 5, "loop": loop})
    else:
        pysd_res = {"ok": False, "error": f"{REF_MDL} not found"}

    # Linxiang model.
    lx: dict = {}
    lx_note = None
    lx_plan = None
    lx_compile = None
    if not LINXIANG.exists():
        lx_note = "model/linxiang.toml does not exist yet: skipped."
    else:
        try:
            lx_plan = _linxiang_plan(LINXIANG)
        except Exception as exc:  # noqa: BLE001
            lx_note = f"model/linxiang.toml could not be read: {exc}"
        if lx_plan is not None:
            print("Linxiang model", file=sys.stderr)
            lx_compile = run_case({"kind": "compile", "path": str(LINXIANG)})
            if not lx_compile.get("ok"):
                lx_note = f"model/linxiang.toml does not load: {lx_compile['error'][:300]}"
            else:
                lx = series({"kind": "engine", "path": str(LINXIANG), "varied": lx_plan["varied"],
                             "lo": lx_plan["lo"], "hi": lx_plan["hi"],
                             "variables": lx_plan["variables"], "label": "linxiang"}, reps)

    text = render(info, started, time.perf_counter() - t_start, args, saved, compile_runs,
                  ours, floor, floor_blocked, mdl_compile, mdl_ours, mdl_note, pysd_res,
                  lx_plan, lx_compile, lx, lx_note, notes)
    print(text)
    if not args.no_write:
        out = Path(args.out)
        # keep the section benchmarks/bench_conformance.py maintains (issue 3 §4)
        old = out.read_text(encoding="utf-8") if out.exists() else ""
        start, end = "<!-- conformance:start -->", "<!-- conformance:end -->"
        if start in old and end in old:
            text = text.rstrip("\n") + "\n\n" + old[old.index(start):old.index(end) + len(end)] + "\n"
        out.write_text(text, encoding="utf-8")
        print(f"written to {args.out}", file=sys.stderr)
    # the compiled backend's section (issue 12), in its own subprocesses
    import bench_backend

    for backend in ("c", "jax", "numba"):   # c: the default where a C compiler is found
        bench_backend.main((["--quick"] if args.quick else []) + (["--no-write"] if args.no_write else [])
                           + ["--out", args.out, "--backend", backend])
    return 0


def _series_table(lines: list[str], res: dict, floor: dict | None = None) -> None:
    head = "| N | median wall time | min–max | first run | per scenario | peak RSS (process) | allocated in one run |"
    sep = "|---:|---:|---:|---:|---:|---:|---:|"
    if floor is not None:
        head += " floor median | floor peak RSS | floor allocated | ours / floor |"
        sep += "---:|---:|---:|---:|"
    lines += [head, sep]
    for n in NS:
        r = res.get(n)
        if r is None:
            continue
        if r.get("ok"):
            row = (f"| {n:,} | {ms(r['median_s'])} | {ms(r['min_s'])}–{ms(r['max_s'])} "
                   f"| {ms(r['first_s'])} | {ms(r['median_s'] / n)} | {mb(r['maxrss_mb'])} "
                   f"| {mb(r['traced_peak_mb'])} |")
        else:
            row = f"| {n:,} | failed: {r.get('error', '?')[:120]} | | | | | |"
        if floor is not None:
            f = floor.get(n)
            rt = ratio(r, f)
            row += (f" {cell(f, 'median_s', ms)} | {cell(f, 'maxrss_mb', mb)} "
                    f"| {cell(f, 'traced_peak_mb', mb)} | {'–' if rt is None else f'{rt:.2f}'} |")
        lines.append(row)


def _header(L: list[str], info: dict, started, elapsed: float, args) -> None:
    """The report's title, how it was made, and the machine and load it ran at."""
    L.append("# Benchmarks")
    L.append("")
    L.append("Generated by `make bench` (`.venv/bin/python benchmarks/run_benchmarks.py"
             + (" --quick" if args.quick else "") + "`); do not edit by hand, rerun it. "
             "What is measured and how: see the notes at the end.")
    L.append("")
    try:
        load_end = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        load_end = "?"
    L.append(f"- Date: {started:%Y-%m-%d %H:%M %Z} (the whole run took {elapsed:.0f} s); 1-minute load "
             f"average {info.get('load_start', '?')} at the start, {load_end} at the end "
             f"(other work on the {info.get('cores', '?')} cores slows every case)")
    L.append(f"- Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores, "
             f"{info.get('memory', '?')} memory; {info.get('platform', '?')}")
    L.append(f"- Python {info['python']}, numpy {info['numpy']}, pandas {info['pandas']}, "
             f"scipy {info['scipy']}, PySD {info['pysd']}; engine at commit {info.get('commit')}")
    if args.quick:
        L.append("- **--quick run**: few repetitions and only 10 PySD loop runs; not for the record.")
    L.append("")



def _same_results(L: list[str], o1k, mdl_ours, pysd_res: dict) -> None:
    """Largest differences between our engine, the numpy floor and PySD."""
    # ---- correctness
    L.append("## Same results")
    L.append("")
    d_of = o1k["max_rel_diff_vs_floor"] if o1k and o1k.get("ok") else None
    L.append("- ours (.toml) vs numpy floor, N = 1 000, 10 saved variables, all 61 saved times: "
             + (f"largest relative difference {d_of:.1e}" if d_of is not None
                else "not measured (engine run failed)"))
    mdl1k = mdl_ours.get(1000) if mdl_ours else None
    if mdl1k and mdl1k.get("ok") and "max_rel_diff_vs_floor" in mdl1k:
        L.append(f"- ours (.mdl import) vs numpy floor, N = 1 000: largest relative difference "
                 f"{mdl1k['max_rel_diff_vs_floor']:.1e}")
    if pysd_res.get("ok"):
        L.append(f"- numpy floor vs PySD, default constants: largest relative difference "
                 f"{pysd_res['floor_max_rel_diff']:.1e}")
    L.append("")



def _okv(r: dict | None, key: str):
    """A case's figure, None where the case failed."""
    return r[key] if r and r.get("ok") else None


def _verdict(ok: bool | None) -> str:
    return "n/a (failed)" if ok is None else ("**pass**" if ok else "**FAIL**")


def _linxiang_section(L: list[str], lx_plan: dict, lx: dict, lx_compile: dict) -> None:
    """The Linxiang model's series and the reference model's targets applied to it."""
    t = lx_plan.get("time", {})
    dims = ", ".join(f"{k} ({v})" for k, v in lx_plan.get("dimensions", {}).items()) or "none"
    shape = next((r.get("shape") for r in lx.values() if r.get("ok") and r.get("shape")), None)
    L.append(f"{lx_plan.get('n_variables', '?')} declared variables, dimensions: {dims}; "
             f"{t.get('start')}–{t.get('stop')} at dt {t.get('dt')}, saveper {t.get('saveper', t.get('dt'))}. "
             f"`{lx_plan['varied']}` varied over [{lx_plan['lo']:g}, {lx_plan['hi']:g}] across the batch; "
             f"saved: {', '.join(f'`{v}`' for v in lx_plan['variables'])}"
             + (f" (first of them returned with shape {tuple(shape)})" if shape else "")
             + f". Compilation: cold {ms(lx_compile['compile_s'])}, warm {ms(lx_compile.get('warm_s'))}.")
    L.append("")
    lrows = []
    l1, l10k, l100k = (lx.get(n) for n in (1, 10000, 100000))
    lrows.append(("N = 1: run after compilation", f"≤ {ms(T_N1_RUN_S)}", _okv(l1, "median_s"), T_N1_RUN_S, ms))
    lrows.append(("Compilation, warm", f"≤ {T_COMPILE_S} s", lx_compile.get("warm_s"), T_COMPILE_S, ms))
    lrows.append(("Compilation, cold", f"≤ {T_COMPILE_S} s", lx_compile.get("compile_s"), T_COMPILE_S, ms))
    lrows.append(("N = 10 000: wall time", f"≤ {T_N10K_S} s", _okv(l10k, "median_s"), T_N10K_S, ms))
    lrows.append(("N = 100 000: wall time", f"≤ {T_N100K_S:g} s", _okv(l100k, "median_s"), T_N100K_S, ms))
    lrows.append(("N = 100 000: peak memory (whole process RSS)", "≤ 1 GB (1024 MiB)",
                  _okv(l100k, "maxrss_mb"), T_N100K_MEM_MB, mb))
    L.append("The reference model's targets applied to the Linxiang model (for information; issue 2 sets "
             "them for the reference model):")
    L.append("")
    L.append("| target | required | measured | result |")
    L.append("|---|---:|---:|---|")
    for name, req, val, lim, fmt in lrows:
        L.append(f"| {name} | {req} | {fmt(val)} | {_verdict(None if val is None else val <= lim)} |")
    L.append("")
    _series_table(L, lx)


def render(info, started, elapsed, args, saved, compile_runs, ours, floor, floor_blocked, mdl_compile,
           mdl_ours, mdl_note, pysd_res, lx_plan, lx_compile, lx, lx_note, notes) -> str:
    L: list[str] = []
    _header(L, info, started, elapsed, args)
    # ---- results summary first: targets
    comp_ok = [c for c in compile_runs if c.get("ok")]
    compile_s = statistics.median(c["compile_s"] for c in comp_ok) if comp_ok else None
    warm_s = statistics.median(c["warm_s"] for c in comp_ok) if comp_ok else None
    import_s = statistics.median(c["import_s"] for c in comp_ok) if comp_ok else None
    import_np_s = statistics.median(c["import_numpy_s"] for c in comp_ok) if comp_ok else None
    o1, o10k, o100k, o1k = (ours.get(n) for n in (1, 10000, 100000, 1000))
    r10k = ratio(o10k, floor.get(10000))
    pysd_per_run = (pysd_res["loop_s"] / pysd_res["loop_runs"]) if pysd_res.get("ok") else None
    ours_thr = (1000 / o1k["median_s"]) if o1k and o1k.get("ok") else None
    pysd_thr = (1 / pysd_per_run) if pysd_per_run else None
    thr_ratio = ours_thr / pysd_thr if ours_thr and pysd_thr else None

    verdict, okv = _verdict, _okv

    rows = [
        ("N = 1: run after compilation", f"≤ {ms(T_N1_RUN_S)}", ms(okv(o1, "median_s")),
         None if okv(o1, "median_s") is None else o1["median_s"] <= T_N1_RUN_S),
        ("Compilation, warm (load_model of the .toml, again in the same process)", f"≤ {T_COMPILE_S} s",
         ms(warm_s), None if warm_s is None else warm_s <= T_COMPILE_S),
        ("Compilation, cold (first load_model in a fresh process, with the imports it triggers)",
         f"≤ {T_COMPILE_S} s", ms(compile_s), None if compile_s is None else compile_s <= T_COMPILE_S),
        ("N = 10 000: wall time", f"≤ {T_N10K_S} s", ms(okv(o10k, "median_s")),
         None if okv(o10k, "median_s") is None else o10k["median_s"] <= T_N10K_S),
        ("N = 10 000: ours / numpy floor, same run", f"≤ {T_N10K_FLOOR_RATIO:g}×",
         "–" if r10k is None else f"{r10k:.2f}×", None if r10k is None else r10k <= T_N10K_FLOOR_RATIO),
        ("N = 100 000: wall time", f"≤ {T_N100K_S:g} s", ms(okv(o100k, "median_s")),
         None if okv(o100k, "median_s") is None else o100k["median_s"] <= T_N100K_S),
        ("N = 100 000: peak memory (whole process RSS), 10 variables saved", "≤ 1 GB (1024 MiB)",
         mb(okv(o100k, "maxrss_mb")),
         None if okv(o100k, "maxrss_mb") is None else o100k["maxrss_mb"] <= T_N100K_MEM_MB),
        ("N = 1 000: per-scenario throughput, ours / PySD", f"≥ {T_THROUGHPUT_RATIO:,.0f}×",
         "–" if thr_ratio is None else f"{thr_ratio:,.0f}×",
         None if thr_ratio is None else thr_ratio >= T_THROUGHPUT_RATIO),
    ]
    L.append("## Targets (issue 2), reference model through benchmarks/regional_economy.toml")
    L.append("")
    L.append("| target | required | measured | result |")
    L.append("|---|---:|---:|---|")
    for name, req, meas, ok in rows:
        L.append(f"| {name} | {req} | {meas} | {verdict(ok)} |")
    L.append("")

    _same_results(L, o1k, mdl_ours, pysd_res)

    # ---- reference model series
    L.append("## Reference model: our engine and the numpy floor")
    L.append("")
    L.append(f"`regional_economy` (87 variables, 10 stocks + 2 internal ones for SMOOTH and DELAY1; "
             f"2020–2035 at dt 0.25: 60 Euler steps, 61 saved times), `{VARIED}` varied over "
             f"[{VARIED_RANGE[0]}, {VARIED_RANGE[1]}] across the batch, 10 variables saved "
             f"({', '.join(f'`{s}`' for s in saved)}).")
    L.append("")
    if comp_ok:
        L.append(f"Compilation of benchmarks/regional_economy.toml, median of {len(comp_ok)} fresh processes: "
                 f"cold (first `load_model`, including the modules it imports on first use) **{ms(compile_s)}**, "
                 f"warm (a second `load_model` in the same process) **{ms(warm_s)}**; before them, "
                 f"`import engine` took {ms(import_s)} and `import numpy` {ms(import_np_s)}. The dynamic "
                 f"function for a set of saved variables is generated on the first run with that set: "
                 f"see 'first run' below.")
    else:
        err = compile_runs[0].get("error", "?") if compile_runs else "?"
        L.append(f"Compilation failed: {err[:300]}")
    L.append("")
    L.append("Our engine on benchmarks/regional_economy.toml, with the floor in the same run:")
    L.append("")
    _series_table(L, ours, floor)
    L.append("")
    L.append("Our engine on the .mdl itself (`engine.load_model(\"../shared/bench/regional_economy.mdl\")`):")
    L.append("")
    if mdl_note:
        L.append(f"Skipped: {mdl_note}")
    else:
        if mdl_compile and mdl_compile.get("ok"):
            L.append(f"Import + compilation of the .mdl (through PySD's translator): cold "
                     f"{ms(mdl_compile['compile_s'])}, warm {ms(mdl_compile.get('warm_s'))}.")
            L.append("")
        _series_table(L, mdl_ours, floor)
    L.append("")

    # ---- PySD
    L.append("## PySD on the same .mdl")
    L.append("")
    if pysd_res.get("ok"):
        L.append("| measure | value |")
        L.append("|---|---:|")
        L.append(f"| PySD {pysd_res['pysd_version']}: translate + load (`pysd.read_vensim`) "
                 f"| {ms(pysd_res['load_s'])} |")
        L.append(f"| 1 run, 10 columns returned (median of {pysd_res['run1_reps']}) "
                 f"| {ms(pysd_res['run1_median_s'])} |")
        L.append(f"| {pysd_res['loop_runs']} runs in a loop, `savings rate` varied | {ms(pysd_res['loop_s'])} |")
        L.append(f"| per run in the loop | {ms(pysd_per_run)} |")
        L.append(f"| peak RSS (process) | {mb(pysd_res['maxrss_mb'])} |")
    else:
        L.append(f"PySD failed: {pysd_res.get('error', '?')[:300]}")
    L.append("")
    L.append("Ratios:")
    L.append("")
    L.append("| comparison | value |")
    L.append("|---|---:|")
    for n in NS:
        rt = ratio(ours.get(n), floor.get(n))
        L.append(f"| ours / floor wall time, N = {n:,} | {'–' if rt is None else f'{rt:.2f}'} |")
    for n, fb in floor_blocked.items():
        rt = ratio(ours.get(n), fb)
        L.append(f"| ours / floor integrated in blocks of {FLOOR_BLOCK:,} scenarios "
                 f"({cell(fb, 'median_s', ms)}), N = {n:,} | {'–' if rt is None else f'{rt:.2f}'} |")
    if ours_thr:
        L.append(f"| ours, N = 1 000: scenarios per second | {ours_thr:,.0f} |")
    if pysd_thr:
        L.append(f"| PySD, {pysd_res['loop_runs']}-run loop: runs per second | {pysd_thr:,.2f} |")
    L.append(f"| per-scenario throughput ours (N = 1 000) / PySD | "
             f"{'–' if thr_ratio is None else f'{thr_ratio:,.0f}×'} |")
    if pysd_res.get("ok") and o1 and o1.get("ok"):
        L.append(f"| one run: PySD / ours (N = 1) | {pysd_res['run1_median_s'] / o1['median_s']:,.0f}× |")
    f1k = floor.get(1000)
    if pysd_thr and f1k and f1k.get("ok"):
        L.append(f"| per-scenario throughput floor (N = 1 000) / PySD | "
                 f"{(1000 / f1k['median_s']) / pysd_thr:,.0f}× |")
    L.append("")

    # ---- Linxiang
    L.append("## The Linxiang model (model/linxiang.toml)")
    L.append("")
    if lx_note:
        L.append(lx_note)
    else:
        _linxiang_section(L, lx_plan, lx, lx_compile)
    L.append("")

    if notes:
        L.append("## Problems")
        L.append("")
        L.extend(f"- {x}" for x in notes)
        L.append("")

    L.append("## How it is measured")
    L.append("")
    L.append("- Every case (one engine run series for one N, one floor series, PySD, one compilation) runs "
             "in its own Python subprocess, so that its peak memory is its own and a crash is recorded "
             "instead of stopping the benchmark.")
    L.append("- Wall time: `time.perf_counter` around `model.run(params=..., variables=[10 names], "
             "method=\"euler\")` (ours) or `run_floor(n, params)` (floor); one warm-up run, then the median "
             f"of {REPS[1]} (N = 1), {REPS[1000]} (1 000), {REPS[10000]} (10 000) and {REPS[100000]} "
             "(100 000) runs. Results are arrays of shape (N, 61) per saved variable for the reference "
             "model; building a DataFrame is not included.")
    L.append("- Peak RSS: the subprocess's high-water resident set size (`VmHWM` in /proc/self/status) "
             "after its runs: the whole "
             "process, interpreter, numpy import and the compiled model included (a Python "
             "process with numpy imported is already ~30–40 MiB). 'Allocated in one run': "
             "`tracemalloc` peak during one extra run (numpy reports its buffers to tracemalloc), i.e. "
             "what the run itself needs, the 10 saved (N, 61) float64 arrays included "
             "(10 × 61 × 8 B = 4.9 kB a scenario, 488 MB at N = 100 000).")
    L.append("- Compilation: `engine.load_model(path)` (parse, resolve, check units and loops, compile) "
             "timed in a fresh process after `import engine` and `import numpy` (cold: includes modules "
             "the engine imports on first use, e.g. scipy), then once more in the same process with the "
             "expression-parse cache cleared (warm); medians over several processes.")
    L.append("- PySD: the .mdl is copied to a temporary folder (PySD writes its translation next to it); "
             "`read_vensim`, one warm-up run, single runs, then a loop of runs with "
             "`model.run(params={\"savings rate\": v}, return_columns=[the 10 variables])`. "
             "Per-scenario throughput compares our N = 1 000 batch (scenarios / median wall time) with "
             "PySD's loop (runs / loop time).")
    L.append("- The numpy floor (benchmarks/numpy_floor.py) is the reference model written out by hand in "
             "numpy, one array operation per equation over all N scenarios; benchmarks/check_floor.py "
             "checks it against PySD (largest relative difference ~1e-16).")
    L.append(f"- 'Floor integrated in blocks': the same floor run over blocks of {FLOOR_BLOCK:,} scenarios "
             "(`run_floor(..., block=...)`), so that its temporaries stay in cache; shown for information, "
             "the targets use the plain floor (all N at once), as issue 2 defines it.")
    L.append("- The machine is shared and noisy; compare ratios from the same run rather than absolute "
             "times across runs.")
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
