"""What `make run` starts: the Streamlit app on localhost when it is there, else a
summary run of the bundled Linxiang model printed to the terminal."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port(preferred: int) -> int:
    for port in [preferred] + list(range(preferred + 1, preferred + 50)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    return preferred


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
        port = _free_port(int(os.environ.get("PORT", "8501")))
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
