"""Issue 3 §4: PySD against our engine on the SDXorg test-models we pass.

    .venv/bin/python benchmarks/bench_conformance.py [SUITE] [--budget SECONDS] [--no-write]

For each suite model that our engine passes (conformance), the model is imported and
compiled once (not timed), then timed:

* one run: median of 3 runs (ours: ``CompiledModel.run()``; PySD: ``Model.run()`` on the
  model PySD translated, translation and loading not timed);
* a batch of 1 000 runs with one constant varied (+-10 % around its value): ours in one
  vectorised call (``run(params={c: array of 1000})``); PySD runs one model at a time, so
  10 runs with ``run(params=...)`` are timed and scaled by 100 (marked in the table).
  Models without a scalar constant vary nothing (``n=1000`` copies; PySD 10 plain runs).

PySD writes its translation (.py) next to each model, so the suite is copied into a
temporary folder first.  Writes docs/benchmarks-conformance.md and prints the table,
with the medians of the ratios PySD/ours.  ``--budget`` (default 2 400 s, enough for every model) stops adding
models when spent; the table says how many were timed.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.io.conformance import compile_imported, run_one, suite_root, find_models  # noqa: E402
from engine.io.pysd_import import import_model  # noqa: E402

N_BATCH = 1000
N_PYSD = 10


def _median_time(fn, reps=3):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _constant(d):
    """(identifier, original name, value) of a scalar constant to vary, or None."""
    names = (d.get("model") or {}).get("names") or {}
    for ident, spec in (d.get("constants") or {}).items():
        v = spec.get("value")
        if not spec.get("dims") and isinstance(v, (int, float)) and v != 0:
            return ident, names.get(ident, ident), float(v)
    return None


def bench_model(model: Path, data_files):
    d = import_model(model, data_files=data_files)
    ours = compile_imported(d, str(model))
    ours.run()                       # warm-up
    one_ours = _median_time(ours.run)
    c = _constant(d)
    values = None
    if c is not None:
        values = c[2] * np.linspace(0.9, 1.1, N_BATCH)
        try:
            ours.run(params={c[0]: values})
        except Exception:  # noqa: BLE001 - e.g. an integer order: vary nothing
            c, values = None, None
    if c is not None:
        batch_ours = _median_time(lambda: ours.run(params={c[0]: values}), reps=1)
    else:
        batch_ours = _median_time(lambda: ours.run(n=N_BATCH), reps=1)

    import pysd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {"data_files": [str(f) for f in data_files]} if data_files else {}
        m = pysd.read_vensim(str(model), **kw) if model.suffix.lower() == ".mdl" \
            else pysd.read_xmile(str(model), **kw)
        m.run()
        one_pysd = _median_time(m.run)
        pname = m.namespace.get(c[1]) if c is not None else None
        t = time.perf_counter()
        for i in range(N_PYSD):
            if pname:
                m.run(params={pname: float(values[i * (N_BATCH // N_PYSD)])})
            else:
                m.run()
        batch_pysd = (time.perf_counter() - t) * (N_BATCH / N_PYSD)
    return one_ours, one_pysd, batch_ours, batch_pysd, (c[1] if c and pname else "")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", nargs="?", default=str(ROOT.parent / "shared" / "sd-test-models"))
    ap.add_argument("--budget", type=float, default=2400.0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    src = suite_root(args.suite)
    tmp = Path(tempfile.mkdtemp(prefix="lxsd-bench-"))
    root = tmp / "tests"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("*.py", "*.png", "*.vdf*", "*.vdfx"))
    rows, skipped = [], 0
    try:
        models = find_models(root)
        for model in models:
            if time.perf_counter() - start > args.budget:
                skipped += 1
                continue
            rel = str(model.relative_to(root))
            if not run_one(model, root, timeout=60).passed:
                continue
            data = [f for f in (model.parent / "data.tab", model.parent / "data.csv") if f.is_file()]
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    r = bench_model(model, data)
            except Exception as exc:  # noqa: BLE001 - PySD cannot run it: not in the table
                print(f"{rel}: skipped ({type(exc).__name__}: {str(exc)[:80]})", file=sys.stderr)
                continue
            rows.append((rel,) + r)
            print(f"{rel:60s} one {r[1] / r[0]:7.1f}x  batch {r[3] / r[2]:8.1f}x", file=sys.stderr,
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(rows, skipped, time.perf_counter() - start)
    print(text)
    if not args.no_write:
        (ROOT / "docs" / "benchmarks-conformance.md").write_text(text, encoding="utf-8")
        update_summary(ROOT / "docs" / "benchmarks.md", rows, skipped, time.perf_counter() - start)


def update_summary(doc: Path, rows, skipped, elapsed) -> None:
    """The medians in docs/benchmarks.md (issue 3 §4 asks for them there), between markers."""
    start, end = "<!-- conformance:start -->", "<!-- conformance:end -->"
    one = [r[2] / r[1] for r in rows]
    batch = [r[4] / r[3] for r in rows]
    body = [start, "## PySD against our engine on the SDXorg test-models (issue 3 §4)", "",
            f"`benchmarks/bench_conformance.py`: {len(rows)} models (every model we pass that PySD also runs"
            + (f"; {skipped} not timed, the time budget spent" if skipped else "") + f"), {elapsed:.0f} s. "
            "Full table: [benchmarks-conformance.md](benchmarks-conformance.md).", ""]
    if rows:
        body += ["| | ours (median) | PySD (median) | ratio PySD/ours (median over models) |",
                 "|---|---:|---:|---:|",
                 f"| one run | {_ms(statistics.median(r[1] for r in rows))} ms | "
                 f"{_ms(statistics.median(r[2] for r in rows))} ms | {statistics.median(one):.1f}× |",
                 f"| 1 000 runs, a constant varied | {_ms(statistics.median(r[3] for r in rows))} ms | "
                 f"{_ms(statistics.median(r[4] for r in rows))} ms (10 runs × 100) | {statistics.median(batch):.0f}× |"]
    body.append(end)
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = text[:text.index(start)] + "\n".join(body) + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(doc)


def _ms(s):
    return f"{s * 1000:.1f}"


def report(rows, skipped, elapsed):
    import platform
    one = [r[2] / r[1] for r in rows]
    batch = [r[4] / r[3] for r in rows]
    lines = ["# PySD against our engine on the SDXorg test-models", "",
             "`benchmarks/bench_conformance.py` (issue 3 §4). Every suite model that our engine "
             "passes and PySD runs; times in milliseconds, run only (import, translation and "
             "compilation not timed). One run: median of 3. Batch: 1 000 runs with one scalar "
             "constant varied ±10 % (column *varied*); ours is one vectorised call, **PySD's is "
             f"{N_PYSD} runs timed and scaled by {N_BATCH // N_PYSD}** (PySD runs one scenario at a "
             "time). Ratio = PySD / ours (above 1: we are faster).", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}; "
             f"{len(rows)} models timed in {elapsed:.0f} s"
             + (f"; {skipped} models not timed (time budget spent)" if skipped else "") + ".", "",
             f"**Median ratio PySD/ours: one run {statistics.median(one):.1f}x, batch of 1 000 "
             f"{statistics.median(batch):.1f}x** (over {len(rows)} models)." if rows else "No rows.",
             "",
             "| model | varied | ours 1 run | PySD 1 run | ratio | ours 1 000 | PySD 1 000 (×100) | ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for rel, o1, p1, ob, pb, var in rows:
        lines.append(f"| {rel} | {var or '—'} | {_ms(o1)} | {_ms(p1)} | {p1 / o1:.1f} | "
                     f"{_ms(ob)} | {_ms(pb)} | {pb / ob:.1f} |")
    if rows:
        lines += ["", f"Medians: ours 1 run {_ms(statistics.median(r[1] for r in rows))} ms, "
                  f"PySD 1 run {_ms(statistics.median(r[2] for r in rows))} ms; ours 1 000 runs "
                  f"{_ms(statistics.median(r[3] for r in rows))} ms, PySD 1 000 runs "
                  f"{_ms(statistics.median(r[4] for r in rows))} ms (scaled)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
