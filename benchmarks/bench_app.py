"""The app under load: simulated users moving levers against a real `streamlit run app.py`.

    python benchmarks/bench_app.py [--users 20] [--moves 8] [--seconds 150] [--no-browser]
                                   [--first-visits 3] [--frontend 3]

Starts the app on a free localhost port (its own scenario library in a temporary folder) and
measures, after one warm-up session (the model compiles once per process):

1. one user, Streamlit's websocket protocol (what the browser sends): the lever screen loads
   (time to its first chart), then a slider moves ``--moves`` times: the time from sending the
   new value to the end of the fragment's rerun (every chart sent);
2. ``--users`` users at once, each its own websocket session, each moving a random lever to a
   random value (seeded: 42 + user) ``--moves`` times, waiting ``--think`` seconds (uniform,
   default 2-5 s: a person reads the charts between moves) before each move; the whole load is
   bounded by ``--seconds``;
3. one user in Chromium (Playwright, Debian's /usr/bin/chromium; skipped when absent): lever →
   the chart's line redrawn with new data ("settled"), and the first chart after the page opens;
4. the first visitor of a freshly started server, with and without the start-up warm-up that
   `make run` does (``lxapp/warmup.py``), ``--first-visits`` servers each;
5. what a page open costs Chromium: bare Streamlit pages (text; one plotly chart; one Vega-Lite
   chart) against the app's first screen (``bench_frontend.py``, ``--frontend`` opens each).

Prints a markdown table (median, 95th percentile, max, target) for docs/benchmarks-app.md.
Targets (issue 13): 20 users median ≤ 1 s and p95 ≤ 2 s; one user lever → charts ≤ 300 ms
median; first chart after load ≤ 2 s.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VALUE_LEVERS = ("rongyue_pace", "ethylene_scale", "carbon_policy_strength", "shock_size")
CHROMIUM = os.environ.get("LXSD_CHROMIUM", "/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, db: str, own_session: bool = True) -> subprocess.Popen:
    """The app as `streamlit run app.py`; ``own_session``: in its own session (setsid), as a
    server runs, rather than in the session of this load generator: with Linux's scheduler
    autogroups (kernel.sched_autogroup_enabled) the CPU is shared between sessions first, so in
    the benchmark's session the app would share one session's CPU with the simulated users."""
    from bench_frontend import serve   # benchmarks/ is the script's folder

    return serve(ROOT / "app.py", port, db, own_session)


class Session:
    """One browser tab's websocket session, speaking Streamlit's protobuf messages."""

    def __init__(self, port: int, query: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/_stcore/stream"
        self.query = query
        self.sliders: dict[str, tuple[str, float, float, float]] = {}   # lever -> (id, min, max, step)
        self.fragment = ""
        self.page_hash = ""

    async def __aenter__(self):
        import websockets
        self.ws = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=None)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def _run(self, widget=None, fragment: str = "") -> tuple[float, float | None]:
        """Send a rerun; returns (seconds to the end of the run, seconds to the first chart)."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        bm = BackMsg()
        cs = bm.rerun_script
        cs.query_string = self.query
        cs.page_script_hash = self.page_hash
        cs.widget_states.SetInParent()
        if widget is not None:
            w = cs.widget_states.widgets.add()
            w.id = widget[0]
            w.double_array_value.data.append(widget[1])
        if fragment:
            cs.fragment_id = fragment
        t0 = time.perf_counter()
        await self.ws.send(bm.SerializeToString())
        first = None
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await self.ws.recv())
            kind = fm.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = fm.new_session.page_script_hash or fm.new_session.main_script_hash
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                et = el.WhichOneof("type")
                if first is None and (et == "plotly_chart" or (   # the lever screen's: an SVG image in markdown
                        et == "markdown" and "](data:image/svg+xml;base64," in el.markdown.body)):
                    first = time.perf_counter() - t0
                if et == "slider":
                    name = el.slider.id.rsplit("-", 1)[-1].removeprefix("lv_").rsplit("_", 1)[0]
                    self.sliders[name] = (el.slider.id, el.slider.min, el.slider.max, el.slider.step)
                    self.fragment = fm.delta.fragment_id or self.fragment
            elif kind == "script_finished":
                return time.perf_counter() - t0, first

    async def load(self) -> tuple[float, float | None]:
        return await self._run()

    async def move(self, lever: str, value: float) -> float:
        sid = self.sliders[lever][0]
        return (await self._run((sid, value), self.fragment))[0]


def on_grid(lo: float, hi: float, step: float, rng: random.Random) -> float:
    k = rng.randint(0, int(round((hi - lo) / step)))
    return round(lo + k * step, 10)


THINK = (2.0, 5.0)


async def user(port: int, i: int, moves: int, deadline: float, out: list, loads: list) -> None:
    rng = random.Random(42 + i)
    async with Session(port, "page=levers&lang=" + ("zh" if i % 2 else "en")) as s:
        total, first = await s.load()
        loads.append(first if first is not None else total)
        for _ in range(moves):
            await asyncio.sleep(rng.uniform(*THINK))
            if time.perf_counter() > deadline:
                return
            lever = rng.choice([lv for lv in VALUE_LEVERS if lv in s.sliders])
            _sid, lo, hi, step = s.sliders[lever]
            out.append(await s.move(lever, on_grid(lo, hi, step, rng)))


async def one_user(port: int, moves: int) -> tuple[list[float], float]:
    rng = random.Random(7)
    async with Session(port, "page=levers&lang=zh") as s:
        total, first = await s.load()
        times = []
        for _ in range(moves):
            lever = rng.choice([lv for lv in VALUE_LEVERS if lv in s.sliders])
            _sid, lo, hi, step = s.sliders[lever]
            times.append(await s.move(lever, on_grid(lo, hi, step, rng)))
        return times, first if first is not None else total


async def many_users(port: int, n: int, moves: int, seconds: float) -> tuple[list[float], list[float], float]:
    out: list[float] = []
    loads: list[float] = []
    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(user(port, i, moves, t0 + seconds, out, loads) for i in range(n))),
                           timeout=seconds + 120)
    return out, loads, time.perf_counter() - t0


# the lever screen's first chart, as drawn: its SVG image (drawn on the server, lxapp/svgchart.py;
# its data URI changes when a line does); a plotly chart (drawn with the fan on) gives its current
# line's numbers instead; null before anything is drawn
CHART_DATA = """() => { const v = document.querySelector('[data-testid="stMarkdown"] img[src^="data:image/svg+xml"]');
  if (v && v.complete && v.naturalWidth > 0) return [v.getAttribute('src')];
  const g = document.querySelector('.js-plotly-plot'); const d = g && (g._fullData || g.data);
  if (!d) return null; const t = d.find(x => x.mode === 'lines' && x.line && x.line.dash !== 'dash');
  return t ? Array.from(t.y).map(Number) : null; }"""
CHANGED = f"""(b) => {{ const c = ({CHART_DATA})(); return c && c.length === b.length
  && c.some((v, i) => typeof v === 'string' ? v !== b[i] : Math.abs(v - b[i]) > 1e-9); }}"""


def browser_user(port: int, moves: int) -> tuple[list[float], list[float], list[float]] | None:
    """Chromium: lever → chart redrawn; page open → first chart, in ms (wall clock); and the CPU
    time Chromium's processes spent on each page open, in ms."""
    if not Path(CHROMIUM).exists():
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    url = f"http://127.0.0.1:{port}/?page=levers&lang=zh"
    settle, first, cpu = [], [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        for _ in range(3):
            ctx = b.new_context(viewport={"width": 1500, "height": 1000})
            page = ctx.new_page()
            c0 = descendants_cpu(os.getpid())
            t0 = time.perf_counter()
            page.goto(url, wait_until="commit")
            page.wait_for_function(f"({CHART_DATA})() !== null", timeout=120_000, polling=20)
            first.append((time.perf_counter() - t0) * 1000)
            cpu.append((descendants_cpu(os.getpid()) - c0) * 1000)   # the browser's own work, whatever else runs
            ctx.close()
        ctx = b.new_context(viewport={"width": 1500, "height": 1000})
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_function(f"({CHART_DATA})() !== null", timeout=60_000)
        page.wait_for_timeout(1500)
        slider = page.locator('[data-testid="stSlider"]').filter(has_text="融岳").locator('input[type="range"]').first
        for k in range(moves):
            before = page.evaluate(CHART_DATA)
            slider.focus()
            t0 = time.perf_counter()
            slider.press("ArrowRight" if k % 2 == 0 else "ArrowLeft")
            page.wait_for_function(CHANGED, arg=before, timeout=30_000, polling=10)
            settle.append((time.perf_counter() - t0) * 1000)
            page.wait_for_timeout(300)
        b.close()
    return settle, first, cpu


def first_visits(db_dir: str, repeat: int) -> tuple[list[float], list[float], list[float]]:
    """The first visitor of a freshly started server: page open → first chart (websocket), in s,
    without the warm-up (the visitor pays the compile) and after ``lxapp.warmup.warm`` (what
    `make run` does once the server answers); and the warm-up's own seconds. A new server each time."""
    sys.path.insert(0, str(ROOT))
    from lxapp import warmup
    cold, warmed, warm_secs = [], [], []
    for k in range(repeat):
        for do_warm in (False, True):
            port = free_port()
            proc = start_server(port, str(Path(db_dir) / f"first{k}{do_warm}.sqlite"))
            try:
                if do_warm:
                    warm_secs.append(warmup.warm(port))
                total, first = asyncio.run(one_user(port, 0))
                (warmed if do_warm else cold).append(first if first is not None else total)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return cold, warmed, warm_secs


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parents() -> dict[int, int]:
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return out


def children(pid: int) -> list[int]:
    """The app's model-run workers (lxapp/runpool.py): its children that run multiprocessing's
    spawn_main (not the resource tracker)."""
    out = []
    for k, parent in _parents().items():
        if parent == pid:
            try:
                cmd = Path(f"/proc/{k}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmd:
                out.append(k)
    return out


def descendants_cpu(pid: int) -> float:
    """CPU seconds of every live descendant of ``pid`` (the browser's processes, under Playwright's driver)."""
    parents = _parents()
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        for k, parent in parents.items():
            if parent == p:
                todo.append(k)
                try:
                    total += cpu_seconds(k)
                except OSError:
                    continue
    return total


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds of the app's process and of its workers together."""
    kids = 0.0
    for k in children(pid):
        try:
            kids += cpu_seconds(k)
        except OSError:
            continue
    return cpu_seconds(pid), kids


def wait_for_workers(pid: int, limit: float = 180) -> int:
    """Wait until the app's workers (if any) have compiled the model: their CPU time stops growing."""
    deadline = time.time() + limit
    last = -1.0
    while time.time() < deadline:
        kids = children(pid)
        now = cpu_split(pid)[1]
        if kids and abs(now - last) < 0.05:
            return len(kids)
        last = now
        time.sleep(1.5)
    return len(children(pid))


def stats(xs: list[float], scale: float = 1000.0) -> tuple[float, float, float]:
    ys = sorted(x * scale for x in xs)
    p95 = ys[min(len(ys) - 1, int(round(0.95 * (len(ys) - 1))))]
    return statistics.median(ys), p95, ys[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--moves", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--think", default="2,5", help="seconds between a user's moves: LOW,HIGH (uniform)")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--frontend", type=int, default=3,
                    help="page opens per case for the browser-cost table (bench_frontend.py: bare Streamlit pages "
                         "with text, one plotly chart, one Vega-Lite chart, and the app's first screen; 0: skip)")
    ap.add_argument("--first-visits", type=int, default=3,
                    help="fresh servers for the first visitor's wait, with and without the warm-up (0: skip)")
    ap.add_argument("--same-session", action="store_true",
                    help="run the app in this script's session (shares one autogroup's CPU with the simulated users)")
    ap.add_argument("--workers", default=None,
                    help="the app's model-run worker processes ($LXSD_APP_WORKERS; default: the app's own default)")
    a = ap.parse_args()
    global THINK
    THINK = tuple(float(x) for x in a.think.split(","))
    if a.workers is not None:
        os.environ["LXSD_APP_WORKERS"] = a.workers
    a.workers_expected = os.environ.get("LXSD_APP_WORKERS", "").strip() not in ("0",)
    port = free_port()
    browser_error = ""
    load_start = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        fv = first_visits(tmp, a.first_visits) if a.first_visits else None
        proc = start_server(port, str(Path(tmp) / "bench.sqlite"), own_session=not a.same_session)
        try:
            asyncio.run(one_user(port, 2))                       # warm-up: compile, imports
            n_workers = wait_for_workers(proc.pid, 240 if a.workers_expected else 3)
            asyncio.run(one_user(port, 2))                       # the workers' first runs
            app0, kids0 = cpu_split(proc.pid)
            single, _ = asyncio.run(one_user(port, 15))
            app1, kids1 = cpu_split(proc.pid)
            cpu_app, cpu_kids = (app1 - app0) / 15, (kids1 - kids0) / 15   # the server's own work
            cpu_move = cpu_app + cpu_kids
            firsts = [asyncio.run(one_user(port, 0))[1] for _ in range(5)]
            load, loads, wall = asyncio.run(many_users(port, a.users, a.moves, a.seconds))
            browser = None
            if not a.no_browser:
                try:
                    browser = browser_user(port, 10)
                except Exception as exc:  # noqa: BLE001 - a timeout in the browser is a result to report
                    browser_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    rows = [("one user: lever → fragment rerun done (websocket)", *stats(single), "median ≤ 300", len(single)),
            ("server CPU time per lever move (one user; mean)", cpu_move * 1000, float("nan"), float("nan"), "",
             15),
            ("… of it in the app's process (Streamlit, sliders, cards, charts)", cpu_app * 1000, float("nan"),
             float("nan"), "", 15),
            (f"… of it in its {n_workers} model-run worker processes", cpu_kids * 1000, float("nan"), float("nan"),
             "", 15),
            ("one user: page open → first chart (websocket, warm server)", *stats(firsts), "≤ 2000", len(firsts)),
            (f"{a.users} users at once: lever → rerun done", *stats(load), "median ≤ 1000, p95 ≤ 2000", len(load)),
            (f"{a.users} users at once: page open → first chart", *stats(loads), "", len(loads))]
    if fv:
        rows.append(("first visitor of a fresh server, no warm-up: page open → first chart (websocket)",
                     *stats(fv[0]), "", len(fv[0])))
        rows.append(("first visitor after the start-up warm-up (`make run`): page open → first chart",
                     *stats(fv[1]), "≤ 2000", len(fv[1])))
        rows.append(("… the warm-up itself (lever screen in zh and en), from the server's start",
                     *stats(fv[2]), "", len(fv[2])))
    if browser:
        rows.append(("one user in Chromium: lever → chart redrawn", *stats(browser[0], 1), "median ≤ 300",
                     len(browser[0])))
        rows.append(("one user in Chromium: page open → first chart drawn", *stats(browser[1], 1), "≤ 2000",
                     len(browser[1])))
        rows.append(("… Chromium's CPU time for that page open (all its processes)", *stats(browser[2], 1), "",
                     len(browser[2])))
    if browser_error:
        rows.append((f"one user in Chromium: did not finish ({browser_error})", float("nan"), float("nan"),
                     float("nan"), "", 0))
    try:
        load_avg = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load_avg = "?"
    import datetime as dt
    print("# App benchmark (issue 13): simulated users moving levers\n")
    print(f"Generated by `make bench` (`benchmarks/bench_app.py`), {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. "
          "The app runs as `streamlit run app.py` on localhost; users speak Streamlit's websocket protocol "
          "(what a browser sends: a slider's new value, the lever screen's fragment rerun); one user also in "
          "headless Chromium. Times are wall-clock from the client's side; the machine is shared, so the "
          "load average is printed with the figures.")
    print(f"\nApp under load — `python benchmarks/bench_app.py --users {a.users} --moves {a.moves} "
          f"--think {a.think}{' --same-session' if a.same_session else ''}`; "
          f"{os.cpu_count()} CPUs, load average {load_start} at the start, {load_avg} at the end; "
          f"{len(load)} lever moves by "
          f"{a.users} users in {wall:.0f} s\n")
    print("| measurement | median ms | p95 ms | max ms | target ms | n |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, med, p95, mx, target, n in rows:
        cells = " | ".join("" if x != x else f"{x:.0f}" for x in (med, p95, mx))
        print(f"| {name} | {cells} | {target} | {n} |")
    lines = reading(single, load, wall, cpu_move, cpu_app, browser, load_start, load_avg)
    if fv:
        cold, warmed, took = stats(fv[0])[0], stats(fv[1])[0], stats(fv[2])[0] / 1000
        lines.insert(-1, f"* The first visitor of a fresh server waited a median {cold:.0f} ms for the first chart "
                         "without the warm-up (the model's compile and first runs), "
                         f"{warmed:.0f} ms after the warm-up `make run` does at start (`lxapp/serve.py`), "
                         f"which took {took:.1f} s from the server's start.")
    print("\n" + "\n".join(lines))
    if a.frontend and not a.no_browser and Path(CHROMIUM).exists():
        import bench_frontend
        print("\n## What a page open costs the browser\n")
        print("\n".join(bench_frontend.run_cases(["text", "plotly", "vega", "svg", "app"], a.frontend)))
        print("\nThe app's own wait is the websocket row above (tens of ms): the rest of a page open is "
              "Chromium loading, compiling and laying out Streamlit's frontend. A bare Streamlit page with only "
              "text sets the floor on this machine; a plotly chart adds plotly.js (a 4.7 MB script); a Vega-Lite "
              "chart first loads Vega's part of the frontend; an SVG image drawn on the server (lxapp/svgchart.py) "
              "needs no script at all. Hence the lever screen's charts are such images (docs/app.md, section "
              "Speed).")


def reading(single: list[float], load: list[float], wall: float, cpu_move: float, cpu_app: float,
            browser, load_start: str, load_avg: str) -> list[str]:
    """What the figures say, computed from them (the targets of issue 13), for the generated file."""
    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    cores = os.cpu_count() or 1
    one = stats(single)[0]
    med, p95, _ = stats(load)
    rate = len(load) / wall if wall else 0.0
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    grouped = autogroup.exists() and autogroup.read_text().strip() == "1"
    out = ["## What the figures say (computed by the script)", "",
           f"* One user, lever → rerun done: median {one:.0f} ms (≤ 300): {verdict(one <= 300)}.",
           f"* {len(load)} moves by the simulated users at once: median {med:.0f} ms (≤ 1000): "
           f"{verdict(med <= 1000)}; 95th percentile {p95:.0f} ms (≤ 2000): {verdict(p95 <= 2000)}.",
           f"* The server's CPU time per move is {cpu_move * 1000:.0f} ms ({cpu_app * 1000:.0f} ms of it in the "
           f"app's process, the rest the model run in its workers); at the {rate:.1f} moves a second the users "
           f"made, the app needed about {rate * cpu_move:.2f} CPU-seconds a second of the {cores} cores, "
           f"while the load average was {load_start} at the start and {load_avg} at the end."]
    if grouped:
        out.append("* Linux here shares the CPU between sessions first (`kernel.sched_autogroup_enabled = 1`): "
                   "the app, in its own session, gets about one share among the busy sessions, whatever "
                   "`nice` the other jobs run at; with a load average above the core count the wall-clock "
                   "figures measure the machine's other work as much as the app.")
    if browser:
        first = stats(browser[1], 1)[0]
        out.append(f"* Chromium, page open → first chart: median {first:.0f} ms (≤ 2000): {verdict(first <= 2000)}; "
                   f"the browser spent {stats(browser[2], 1)[0]:.0f} ms of CPU on the page (the server's first run "
                   "of a page is the websocket figure above). Lever → chart redrawn: median "
                   f"{stats(browser[0], 1)[0]:.0f} ms (≤ 300): {verdict(stats(browser[0], 1)[0] <= 300)}.")
    out.append("* Profiles and what was done about them: docs/app.md, section Speed.")
    return out


if __name__ == "__main__":
    main()
