"""What a page open costs the browser: bare Streamlit pages against the app's first screen.

    python benchmarks/bench_frontend.py [--repeat 3] [--cases text,plotly,vega,svg,app]

Each case is a page served by `streamlit run` on a free localhost port and opened ``--repeat``
times in a fresh headless Chromium context (Debian's /usr/bin/chromium via Playwright):

* ``text``: nothing but a title and a line of text;
* ``plotly``: one ``st.plotly_chart`` (two lines of 31 points);
* ``vega``: one Vega-Lite chart (``st.vega_lite_chart``, same data; built into Streamlit's bundle);
* ``svg``: one chart drawn on the server by ``lxapp.svgchart`` (the lever screen's): an SVG image in markdown;
* ``app``: the app's lever screen (``app.py?page=levers&lang=zh``), as a visitor opens it.

Measured: wall-clock time from navigation to the first chart drawn (for ``text``, the text
shown), and the CPU time Chromium's processes spent meanwhile (what the browser itself costs,
whatever else the machine does). The server is warmed by one page open first. Prints a
markdown table for docs/benchmarks-app.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_app import CHROMIUM, ROOT, descendants_cpu, free_port  # noqa: E402

PAGES = {
    "text": """import streamlit as st
st.title("Bare page")
st.write("nothing but text")
""",
    "plotly": """import streamlit as st
st.title("Bare page")
x = list(range(2020, 2051))
st.plotly_chart({"data": [{"type": "scatter", "x": x, "y": [1.05 ** (i - 2020) for i in x], "mode": "lines"},
                          {"type": "scatter", "x": x, "y": [1.04 ** (i - 2020) for i in x], "mode": "lines",
                           "line": {"dash": "dash"}}], "layout": {"height": 300}})
""",
    "vega": """import pandas as pd
import streamlit as st
st.title("Bare page")
x = list(range(2020, 2051))
rows = [{"year": i, "v": 1.05 ** (i - 2020), "s": "a"} for i in x] + [{"year": i, "v": 1.04 ** (i - 2020), "s": "b"}
                                                                   for i in x]
st.vega_lite_chart(pd.DataFrame(rows), {"mark": "line", "encoding": {"x": {"field": "year", "type": "quantitative"},
                   "y": {"field": "v", "type": "quantitative"}, "color": {"field": "s"}}, "height": 300})
""",
    "svg": """import streamlit as st
from lxapp.svgchart import markdown_image, svg_line
st.title("Bare page")
x = list(range(2020, 2051))
st.markdown(markdown_image(svg_line({"data": [
    {"x": x, "y": [1.05 ** (i - 2020) for i in x], "mode": "lines", "name": "a", "line": {"width": 3}},
    {"x": x, "y": [1.04 ** (i - 2020) for i in x], "mode": "lines", "name": "b", "line": {"dash": "dash"}}],
    "layout": {"title": {"text": "Bare chart"}}}), "Bare chart"))
""",
    "sliders": """import streamlit as st
st.title("Bare page")
st.write("nothing but text")
for i in range(14):
    st.slider(f"lever {i}", 0.0, 1.0, 0.5, 0.01, key=f"s{i}")
""",
    "metrics": """import streamlit as st
st.title("Bare page")
st.write("nothing but text")
for c, i in zip(st.columns(4) * 2, range(8)):
    c.metric(f"indicator {i}", f"{i * 1.5:.1f}", "+0.1")
""",
    "sidebar": """import streamlit as st
st.title("Bare page")
st.write("nothing but text")
sb = st.sidebar
sb.toggle("English")
sb.radio("page", [f"page {i}" for i in range(8)])
sb.selectbox("base", ["a", "b", "c"])
sb.multiselect("compare", ["a", "b", "c", "d"], ["a", "b", "c"])
sb.selectbox("reference", ["a", "b", "c"])
sb.toggle("uncertainty")
sb.multiselect("more", ["x", "y"])
sb.button("copy link")
sb.code("http://127.0.0.1:8501/?page=levers")
""",
}

# the first chart drawn (plotly: its data traces laid out; Vega: the marks rendered), or the text
READY = {
    "text": "() => [...document.querySelectorAll('[data-testid=\"stMarkdown\"]')]"
            ".some(e => e.textContent.includes('nothing but text'))",
    "plotly": "() => { const g = document.querySelector('.js-plotly-plot');"
              " return !!(g && g._fullData && g.querySelector('.scatterlayer .trace')); }",
    "vega": "() => drawn(document.querySelector('[data-testid=\"stVegaLiteChart\"]'))",
}
# a chart drawn on the server (lxapp/svgchart.py) counts once its image is decoded and laid out
READY["svg"] = ("() => [...document.querySelectorAll('[data-testid=\"stMarkdown\"] img[src^=\"data:image/svg+xml\"]')]"
                ".some(i => i.complete && i.naturalWidth > 0)")
READY["sliders"] = "() => document.querySelectorAll('[data-testid=\"stSlider\"]').length === 14"
READY["metrics"] = "() => document.querySelectorAll('[data-testid=\"stMetric\"]').length === 8"
READY["sidebar"] = "() => !!document.querySelector('[data-testid=\"stSidebar\"] [data-testid=\"stCode\"]')"
READY["app"] = ("() => { if (svgDrawn()) return true;"
                " const g = document.querySelector('.js-plotly-plot, [data-testid=\"stVegaLiteChart\"]');"
                " if (!g) return false; if (g.classList.contains('js-plotly-plot'))"
                " return !!(g._fullData && g.querySelector('.scatterlayer .trace'));"
                " return drawn(g); }")
# a Vega-Lite chart counts once its marks are drawn (Streamlit's Vega draws SVG: a line's path, a
# point's symbol), not when its empty frame is there
DRAWN = ("const svgDrawn = " + READY["svg"] + ";"
         "const drawn = (g) => !!g && [...g.querySelectorAll('.mark-line path, .mark-symbol path')]"
         ".some(p => (p.getAttribute('d') || '').length > 10);")


def serve(script: Path, port: int, db: str, own_session: bool = True) -> subprocess.Popen:
    """``streamlit run script`` on localhost:port, once it answers its health check (90 s at most);
    ``own_session``: in its own session (setsid), as a server runs (bench_app.start_server says why)."""
    env = dict(os.environ, LXSD_DB=db, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=own_session)
    import urllib.request
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"{script}: the server did not start within 90 s")


def measure(browser, url: str, ready: str, repeat: int) -> tuple[list[float], list[float], list[float]]:
    """(ms to ready, ms of Chromium CPU to ready, ms of its CPU to ready + 2 s: the whole page
    drawn) per fresh context; one untimed open first (the server warms)."""
    walls, cpus, totals = [], [], []
    for k in range(repeat + 1):
        ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
        page = ctx.new_page()
        c0 = descendants_cpu(os.getpid())
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_function(f"(() => {{ {DRAWN} return ({ready})(); }})()", timeout=120_000, polling=20)
        wall = (time.perf_counter() - t0) * 1000
        cpu = (descendants_cpu(os.getpid()) - c0) * 1000
        page.wait_for_timeout(2000)
        total = (descendants_cpu(os.getpid()) - c0) * 1000
        ctx.close()
        if k:
            walls.append(wall)
            cpus.append(cpu)
            totals.append(total)
    return walls, cpus, totals


NAMES = {"text": "bare Streamlit page, text only", "plotly": "bare page, one st.plotly_chart",
         "vega": "bare page, one Vega-Lite chart (st.vega_lite_chart)",
         "svg": "bare page, one chart drawn on the server (lxapp.svgchart: an SVG image in st.markdown)",
         "sliders": "bare page, text and 14 sliders", "metrics": "bare page, text and 8 st.metric",
         "sidebar": "bare page, text and a sidebar like the app's (9 widgets)"}


def run_cases(cases: list[str], repeat: int, query: str = "page=levers&lang=zh") -> list[str]:
    """Measure ``cases`` (names of PAGES, or ``app``); returns the markdown lines of the table."""
    from playwright.sync_api import sync_playwright
    load0 = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        for case in cases:
            if case == "app":
                script, q = ROOT / "app.py", "?" + query
            else:
                script, q = Path(tmp) / f"{case}.py", ""
                script.write_text(PAGES[case])
            port = free_port()
            proc = serve(script, port, str(Path(tmp) / "lib.sqlite"))
            try:
                walls, cpus, totals = measure(b, f"http://127.0.0.1:{port}/{q}", READY[case], repeat)
            finally:
                proc.terminate()
                proc.wait(10)
            rows.append((case, statistics.median(walls), max(walls), statistics.median(cpus),
                         statistics.median(totals), len(walls)))
            print(f"{case}: {walls} ms, cpu {cpus}, {totals}", file=sys.stderr)
        b.close()
    load1 = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    out = [f"Page open in headless Chromium (a fresh browser context each time, the server warm) — "
           f"`python benchmarks/bench_frontend.py --repeat {repeat} --cases {','.join(cases)}`; "
           f"load average {load0} at the start, {load1} at the end", "",
           "| page | ready (first chart drawn), median ms | max ms | Chromium CPU to ready, ms "
           "| … to ready + 2 s, ms | n |", "|---|---:|---:|---:|---:|---:|"]
    names = NAMES | {"app": f"the app's first screen ({query})"}
    for case, med, mx, cpu, total, n in rows:
        out.append(f"| {names[case]} | {med:.0f} | {mx:.0f} | {cpu:.0f} | {total:.0f} | {n} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default="text,plotly,vega,svg,app")
    ap.add_argument("--query", default="page=levers&lang=zh", help="the app's URL query (case app)")
    a = ap.parse_args()
    print("\n".join(run_cases(a.cases.split(","), a.repeat, a.query)))

if __name__ == "__main__":
    main()
