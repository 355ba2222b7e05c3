"""`make run`: one fixed port, a clear message when it is busy (issue 13, item 3)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(env_extra: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ) | env_extra
    env.pop("PORT", None)
    return subprocess.run([sys.executable, "-m", "engine.main_job"], cwd=ROOT, env=env | env_extra,
                          capture_output=True, text=True, timeout=60)


def test_busy_port_is_an_error_not_another_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = _run({"LXSD_PORT": str(port)})
    assert out.returncode == 2
    assert f"port {port} is busy" in out.stderr and "make run PORT=" in out.stderr
    assert "Traceback" not in out.stderr and "http://localhost" not in out.stdout


def test_bad_port_setting():
    out = _run({"LXSD_PORT": "eighty"})
    assert out.returncode == 2 and "LXSD_PORT='eighty' is not a port number" in out.stderr
    out = _run({"LXSD_PORT": "70000"})
    assert out.returncode == 2 and "not a port number" in out.stderr


def test_make_run_launcher_keeps_the_port_rules():
    """`make run` starts lxapp.serve (main_job's server, warmed up): the same one fixed port and
    message, and no warm-up visit to the program that holds the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = dict(os.environ, LXSD_PORT=str(port))
        env.pop("PORT", None)
        out = subprocess.run([sys.executable, "-m", "lxapp.serve"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 2 and f"port {port} is busy" in out.stderr
    assert "warmed up" not in out.stdout and "Traceback" not in out.stderr


def test_make_run_warms_the_app_up_before_the_first_visitor(tmp_path):
    """Started as `make run` starts it, the server runs the lever screen once by itself (the
    model compiled, the charts prepared) and says so; then a visitor's page open is a warm one."""
    import time

    from lxapp import warmup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LXSD_PORT=str(port), LXSD_MODEL=str(ROOT / "lxapp" / "demo" / "demo_model.toml"),
               LXSD_DB=str(tmp_path / "lib.sqlite"), LXSD_APP_WORKERS="0")
    env.pop("PORT", None)
    log = tmp_path / "out.txt"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "lxapp.serve"], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 150
            while time.time() < deadline and "warmed up" not in log.read_text():
                assert proc.poll() is None, log.read_text()[-2000:]
                time.sleep(0.5)
            text = log.read_text()
            assert "warmed up in" in text and "warm-up skipped" not in text, text[-2000:]
            assert warmup.warm(port, ("page=levers&lang=zh",)) < 60      # the server still answers a visitor
        finally:                # the launcher and its `streamlit run`: their own process group
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
