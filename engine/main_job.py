"""What `make run` starts: the Streamlit app on localhost when it is there, else a
summary run of the bundled Linxiang model printed to the terminal."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


DEFAULT_PORT = 8501


def port_from_env() -> int:
    """The app's one fixed port: $LXSD_PORT (or $PORT), default 8501; ValueError when it is not a port."""
    raw = os.environ.get("LXSD_PORT") or os.environ.get("PORT") or str(DEFAULT_PORT)
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"LXSD_PORT={raw!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"LXSD_PORT={port} is not a port number (1-65535)")
    return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``port``: links handed out name the port, so the app never
    moves to another one."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def summary() -> int:
    from engine import load_model
    from engine.errors import EngineError
    from engine.scenarios import load_scenario

    path = ROOT / "model" / "linxiang.toml"
    if not path.exists():
        path = ROOT / "tests" / "models" / "decay.toml"
    try:
        model = load_model(path)
        scen_dir = ROOT / "scenarios"
        runs = {}
        for f in sorted(scen_dir.glob("*.toml")) if path.stem == "linxiang" else []:
            sc = load_scenario(f, model)
            runs[sc.name] = sc.overrides
        res = model.run(scenarios=runs or {"base": {}})
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    df = res.to_dataframe()
    cols = [c for c in ("gdp_real", "gdp_nominal", "urbanization_rate", "co2_emissions", "budget_revenue")
            if c in df.columns] or list(df.columns[:5])
    years = [t for t in (2020, 2025, 2030, 2035) if t in set(res.times)] or [res.times[-1]]
    print(f"{path.name}: {len(res.scenarios)} scenario(s)")
    print(df.loc[(slice(None), years), cols].round(3).to_string())
    return 0


def main() -> int:
    app = ROOT / "app.py"
    if app.exists() and app.stat().st_size > 0 and os.environ.get("LXSD_NO_APP") != "1":
        try:
            port = port_from_env()
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not port_is_free(port):
            print(f"error: port {port} is busy (another copy of the app, or another program, is using it). "
                  f"Links to this app name port {port}, so it does not move to another one: stop the other "
                  f"program, or start on another port with `make run PORT=8502` (then hand out links with it).",
                  file=sys.stderr)
            return 2
        print(f"Linxiang SD app: http://localhost:{port}  (Ctrl+C to stop)", flush=True)
        cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false"]
        try:
            return subprocess.call(cmd, cwd=ROOT)
        except KeyboardInterrupt:
            return 0
    return summary()


if __name__ == "__main__":
    sys.exit(main())
