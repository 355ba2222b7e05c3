"""`make run`: one fixed port, a clear message when it is busy (issue 13, item 3)."""
from __future__ import annotations

import os
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
