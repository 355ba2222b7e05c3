"""End-to-end: `streamlit run app.py` on a free port, driven by Playwright in Debian's chromium.

The page loads, a lever moves, a chart changes, the language switches; screenshots go to
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
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
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


CHART_DATA = """() => {
  const g = document.querySelector('.js-plotly-plot');
  const data = g && (g._fullData || g.data);
  if (!data) return null;
  const tr = data.find(d => d.mode === 'lines' && d.y && d.y.length);
  return tr ? Array.from(tr.y).map(Number) : null;
}"""


def test_app_in_chromium(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100}, locale="zh-CN")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/?page=compare&lang=zh", wait_until="domcontentloaded")
        # the page loads: Chinese title and plotly charts
        page.get_by_text("临湘市“十四五”规划情景实验室").wait_for(timeout=90_000)
        page.wait_for_selector(".js-plotly-plot", timeout=90_000)
        page.wait_for_function(f"({CHART_DATA})() !== null", timeout=60_000)
        before = page.evaluate(CHART_DATA)
        page.screenshot(path=str(ARTIFACTS / "app_zh_before.png"), full_page=False)
        assert not page.locator('[data-testid="stException"]').count()

        # a lever moves: the integration-pace slider to its maximum
        slider = page.locator('[data-testid="stSlider"]').filter(has_text="融岳").locator('input[type="range"]').first
        slider.focus()
        slider.press("End")
        # the chart changes
        page.wait_for_function(f"(b) => {{ const c = ({CHART_DATA})(); "
                               "return c && c.length === b.length && c.some((v, i) => Math.abs(v - b[i]) > 1e-6); }",
                               arg=before, timeout=60_000)
        after = page.evaluate(CHART_DATA)
        assert after != before
        assert "rongyue_pace" in page.url                     # the URL holds the lever
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "app_zh_lever.png"), full_page=False)

        # the language switches
        page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
        page.get_by_text("Linxiang 14th Five-Year Plan scenario lab").wait_for(timeout=60_000)
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Current settings").first.wait_for(timeout=30_000)   # scenario chips too
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.wait_for_timeout(1500)
        assert "lang=en" in page.url
        page.screenshot(path=str(ARTIFACTS / "app_en.png"), full_page=False)

        # the overview in Chinese again, reopened from its link
        page.goto(server + "/?page=overview&lang=zh", wait_until="domcontentloaded")
        page.get_by_text("主要指标").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "app_zh_overview.png"), full_page=False)
        assert not page.locator('[data-testid="stException"]').count()
        browser.close()
    assert not [e for e in errors if "plotly" in e.lower()], errors
