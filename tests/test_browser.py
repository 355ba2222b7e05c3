"""End-to-end: `streamlit run app.py` on a free port, driven by Playwright in Debian's chromium.

The lever screen loads, a lever moves and its chart changes, the language switches and keeps
the page, a shared link restores every chart in a fresh browser context, a link with a NaN
lever shows a message (no traceback), there is no Deploy button; screenshots go to
tests/artifacts/. Skipped (with the reason) only when chromium or playwright is absent.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("LXSD_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright for Python is not installed (pip install playwright)")
    port = _free_port()
    env = dict(os.environ, LXSD_DB=str(tmp_path_factory.mktemp("db") / "workshop.sqlite"),
               PYTHONPATH=str(ROOT))
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")  # noqa: SIM115 - open while the server runs
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    else:
        proc.terminate()
        pytest.fail("streamlit did not start within 60 s")
    if proc.poll() is not None:
        log.seek(0)
        pytest.fail(f"streamlit exited: {log.read()[-2000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# the lever screen's first chart as drawn: its SVG image's source (drawn on the server), once the
# image is decoded and shows the current settings' line (null before)
LEVER_CHART = """() => {
  const g = document.querySelector('[data-testid="stMarkdown"] img[src^="data:image/svg+xml;base64,"]');
  if (!g || !g.complete || !g.naturalWidth) return null;
  const src = g.getAttribute('src');
  return atob(src.split(',')[1]).includes('lx-current') ? src : null;
}"""
CHART_DATA = """() => {
  const g = document.querySelector('.js-plotly-plot');
  const data = g && (g._fullData || g.data);
  if (!data) return null;
  const tr = data.find(d => d.mode === 'lines' && d.line && d.line.dash !== 'dash' && d.y && d.y.length);
  return tr ? Array.from(tr.y).map(Number) : null;
}"""
CHART_TITLES = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
  g => (g.layout && g.layout.title && (g.layout.title.text || g.layout.title)) || '')"""


def _launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def _settle(page, n: int | None = None, timeout: int = 90_000) -> None:
    """Wait until the app has stopped running and (optionally) n charts are drawn."""
    page.wait_for_selector('.js-plotly-plot, [data-testid="stMarkdown"] img[src^="data:image/svg+xml"]',
                           timeout=timeout)
    if n is not None:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length === {n}", timeout=timeout)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    page.wait_for_timeout(800)


def test_lever_screen_and_language(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1100}, locale="zh-CN")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/?page=levers&lang=zh", wait_until="domcontentloaded")
        page.get_by_text("临湘市“十四五”规划情景实验室").wait_for(timeout=90_000)
        page.wait_for_function(f"({LEVER_CHART})() !== null", timeout=120_000)
        page.wait_for_function("document.querySelectorAll('img[src^=\"data:image/svg+xml\"]').length === 4",
                               timeout=60_000)
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
        page.wait_for_timeout(800)
        before = page.evaluate(LEVER_CHART)
        page.screenshot(path=str(ARTIFACTS / "app_zh_levers.png"), full_page=False)
        assert not page.locator('[data-testid="stException"]').count()
        # no Deploy button, no developer menu (toolbarMode = minimal)
        assert page.locator('[data-testid="stAppDeployButton"]').count() == 0
        assert page.get_by_text("Deploy", exact=True).count() == 0

        # a lever moves: the integration-pace slider to its maximum; its chart changes
        slider = page.locator('[data-testid="stSlider"]').filter(has_text="融岳").locator('input[type="range"]').first
        slider.focus()
        slider.press("End")
        page.wait_for_function(f"(b) => {{ const c = ({LEVER_CHART})(); return c && c !== b; }}",
                               arg=before, timeout=120_000)
        assert page.evaluate(LEVER_CHART) != before
        page.wait_for_function("location.href.includes('rongyue_pace')", timeout=90_000)   # the URL holds it
        # the "levers moved" line shows this move, not the one before (it reruns with the fragment)
        moved = page.locator('[data-testid="stMain"]').get_by_text("已调整的杠杆", exact=False)
        moved.first.wait_for(timeout=60_000)
        page.wait_for_function("(() => { const e = Array.from(document.querySelectorAll('[data-testid=stMain] "
                               "[data-testid=stCaptionContainer]')).find(x => x.innerText.includes('已调整的杠杆'));"
                               " return e && e.innerText.includes('融岳发展推进速度 = 2.5'); })()", timeout=60_000)
        slider.focus()
        slider.press("ArrowLeft")                               # one step down: the line follows at once
        page.wait_for_function("(() => { const e = Array.from(document.querySelectorAll('[data-testid=stMain] "
                               "[data-testid=stCaptionContainer]')).find(x => x.innerText.includes('已调整的杠杆'));"
                               " return e && /融岳发展推进速度 = 2\\.4/.test(e.innerText); })()", timeout=60_000)
        assert "已调整的杠杆" not in page.locator('[data-testid="stSidebar"]').inner_text()   # not twice, not stale
        # a calibrated lever is a slider showing its six digits, untouched
        inv = page.locator('[data-testid="stSlider"]').filter(has_text="2021年起私人投资率")
        assert inv.count() == 1 and "0.388274" in inv.inner_text()
        assert page.locator('[data-testid="stNumberInput"]').count() == 0
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "app_zh_lever_moved.png"), full_page=False)

        # the language switch keeps the page, every time
        toggle = page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True)
        for i in range(3):
            toggle.click()
            page.get_by_text("Linxiang 14th Five-Year Plan scenario lab").wait_for(timeout=120_000)
            page.get_by_role("heading", name="Levers").wait_for(timeout=120_000)
            page.wait_for_function("location.href.includes('lang=en') && location.href.includes('page=levers')",
                                   timeout=90_000)
            if i == 0:
                page.wait_for_function(f"({LEVER_CHART})() !== null", timeout=120_000)
                page.wait_for_timeout(800)
                page.screenshot(path=str(ARTIFACTS / "app_en_levers.png"), full_page=False)
            toggle.click()
            page.get_by_text("临湘市“十四五”规划情景实验室").wait_for(timeout=120_000)
            page.get_by_role("heading", name="政策杠杆").wait_for(timeout=120_000)
            page.wait_for_function("location.href.includes('lang=zh') && location.href.includes('page=levers')",
                                   timeout=90_000)
        assert "rongyue_pace" in page.url                      # the moved lever survived the switches
        assert not page.locator('[data-testid="stException"]').count()
        browser.close()
    assert not [e for e in errors if "plotly" in e.lower()], errors


def test_shared_link_restores_every_chart(server):
    from playwright.sync_api import sync_playwright

    link = (server + "/?page=compare&lang=en&sc=current,plan,rongyue_fast&ref=plan&lv=rongyue_pace:2"
            "&ch=gdp_real;co2_emissions;urbanization_rate;energy_intensity;budget_revenue")
    with sync_playwright() as p:
        browser = _launch(p)
        a = browser.new_context(viewport={"width": 1500, "height": 1100})
        page = a.new_page()
        page.goto(link, wait_until="domcontentloaded")
        _settle(page, 5 + 2)                                   # five charts, structure, LMDI
        page.get_by_text("All seven sectors").click()          # change the grouping: into the URL too
        page.wait_for_function("location.href.includes('grp=7')", timeout=90_000)
        _settle(page, 7)
        titles = page.evaluate(CHART_TITLES)
        shared = page.url
        a.close()
        b = browser.new_context(viewport={"width": 1500, "height": 1100})   # a fresh browser: no cookies, no state
        page = b.new_page()
        page.goto(shared, wait_until="domcontentloaded")
        _settle(page, 7)
        assert page.evaluate(CHART_TITLES) == titles
        assert page.locator('[data-testid="stRadio"] input[type="radio"]').nth(-1).is_checked() or \
            page.get_by_role("radio", name="All seven sectors").is_checked()
        assert "rongyue_pace" in page.url and "grp=7" in page.url
        page.screenshot(path=str(ARTIFACTS / "app_shared_link.png"), full_page=False)
        browser.close()


def test_nan_link_is_a_message(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server + "/?page=levers&lang=en&lv=ethylene_scale:nan", wait_until="domcontentloaded")
        page.get_by_text("not a finite number").wait_for(timeout=90_000)
        _settle(page)
        body = page.inner_text("body")
        assert "Traceback" not in body and "/work/" not in body and ".py" not in body
        assert not page.locator('[data-testid="stException"]').count()
        page.screenshot(path=str(ARTIFACTS / "app_nan_link.png"), full_page=False)
        browser.close()
