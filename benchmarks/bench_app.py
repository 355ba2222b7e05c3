"""Server time of the app after a lever moves: re-run + figure building, medians.

    python benchmarks/bench_app.py [--repeat 15] [--no-apptest]

Measures, with the configured model (model/linxiang.toml; the demo model if it cannot load):
  1. 5 scenarios: the lever's scenario re-run (uncached) + 4 cached scenarios (unpickled, as
     st.cache_data returns them) + the Compare page's figures (4 line charts, the structure
     panel, the LMDI waterfall) serialised to JSON as Streamlit sends them;
  2. the same with the 500-sample ensemble of the lever's settings (uncached) and fan charts;
  3. the whole Streamlit script re-run after a slider move (streamlit.testing AppTest), which
     adds Streamlit's own work (widgets, protobuf) to the above.
Prints a markdown table; targets: 1. <= 300 ms, 2. <= 1500 ms.
"""
from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lxapp import charts, core, lmdi  # noqa: E402

SCENARIOS = ["plan", "actual_trend", "ethylene_delay_2y", "rongyue_fast"]
CHARTS = ["gdp_real", "urbanization_rate", "co2_emissions", "energy_intensity"]


def figures(bundle, df, labels, bands=None):
    figs = [charts.line_figure(bundle, df, c, "zh", labels, bands=bands, actuals=bundle.actuals,
                               targets=core.target_markers(bundle)) for c in CHARTS if c in df.columns]
    figs.append(charts.structure_figure(bundle, df, "zh", labels))
    if lmdi.available(df):
        eff = lmdi.decompose_frame(df, "plan" if "plan" in labels else list(labels)[1], "current")
        figs.append(charts.lmdi_figure(eff.iloc[-1].to_dict(), "zh", "LMDI"))
    return [f.to_json() for f in figs if f is not None]   # what st.plotly_chart sends


def rerun(bundle, cache, lever, value, with_ensemble):
    base = dict(bundle.scenarios[SCENARIOS[1]].overrides) if SCENARIOS[1] in bundle.scenarios else {}
    cur = core.current_overrides(bundle, base, {lever: value})
    runs = {"current": core.run_one(bundle, cur)}
    for s in SCENARIOS:
        runs[s] = pickle.loads(cache[s])
    df = core.add_aggregates(bundle, core.combine(runs))
    bands = None
    if with_ensemble:
        b, _ = core.ensemble(bundle, cur, [v for v in core.HEADLINE if v in bundle.model.visible], n=500)
        bands = {"current": b}
    labels = {s: core.scenario_label(bundle, s, "zh") for s in runs}
    figures(bundle, df, labels, bands)


def median_ms(fn, repeat):
    out = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out), min(out), max(out)


def apptest_ms(repeat, unc):
    from streamlit.testing.v1 import AppTest
    os.environ.setdefault("LXSD_DB", str(Path("/tmp") / "lxsd_bench.sqlite"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["page"] = "compare"
    at.query_params["sc"] = ",".join(["current"] + SCENARIOS)
    at.query_params["ref"] = "plan"
    if unc:
        at.query_params["unc"] = "1"
    at.run()
    slider = "lv_rongyue_pace"
    lo = float(at.sidebar.slider(key=slider).min)
    times = []
    for i in range(repeat):
        at.sidebar.slider(key=slider).set_value(round(lo + 0.05 * (i + 1), 2))
        t0 = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t0) * 1000)
        assert not at.exception, [e.value for e in at.exception]
    return statistics.median(times), min(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--no-apptest", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    bundle = core.load_bundle()
    compile_ms = (time.perf_counter() - t0) * 1000
    global SCENARIOS
    SCENARIOS = [s for s in SCENARIOS if s in bundle.scenarios] or [core.DEFAULT]
    while len(SCENARIOS) < 4:
        SCENARIOS.append(list(bundle.scenarios)[len(SCENARIOS) % len(bundle.scenarios)])
    cache = {s: pickle.dumps(core.run_one(bundle, dict(bundle.scenarios[s].overrides))) for s in SCENARIOS}
    lever = next(lv for lv in core.levers(bundle) if lv.kind == "value")
    vals = [lever.low + (lever.high - lever.low) * (i + 1) / (a.repeat + 3) for i in range(a.repeat + 3)]
    rerun(bundle, cache, lever.name, vals[-1], True)          # warm-up (imports, code paths)
    rows = [("model load + compile (once, cached)", compile_ms, compile_ms, compile_ms, "")]
    m = median_ms(lambda i: rerun(bundle, cache, lever.name, vals[i], False), a.repeat)
    rows.append(("lever moved: 5 scenarios re-run + figures", *m, "≤ 300"))
    m = median_ms(lambda i: rerun(bundle, cache, lever.name, vals[i], True), max(5, a.repeat // 2))
    rows.append(("lever moved: 5 scenarios + 500-sample ensemble + fan charts", *m, "≤ 1500"))
    one = median_ms(lambda i: core.run_one(bundle, {lever.name: vals[i]}), a.repeat)
    rows.append(("  of which: one scenario run", *one, ""))
    if not a.no_apptest:
        rows.append(("whole script re-run (AppTest), Compare page, 5 scenarios", *apptest_ms(max(5, a.repeat // 2), False), ""))
        rows.append(("whole script re-run (AppTest), Compare page, + ensemble", *apptest_ms(5, True), ""))
    print(f"\nApp benchmark — model: {bundle.path}{' (DEMO: ' + bundle.load_error[:80] + ')' if bundle.load_error else ''}; "
          f"lever: {lever.name}; python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print("| measurement | median ms | min ms | max ms | target ms |")
    print("|---|---:|---:|---:|---:|")
    for name, med, lo, hi, target in rows:
        print(f"| {name} | {med:.0f} | {lo:.0f} | {hi:.0f} | {target} |")


if __name__ == "__main__":
    main()
