"""What `make run` starts: engine/main_job.py's app server on its one fixed port, warmed up.

The server itself (the port's checks and messages, `streamlit run app.py`) is
``engine.main_job.main``; here a background thread waits until that server answers and then
opens the first pages once (``lxapp.warmup``), so that the model is compiled, its worker pool
started and the lever screen's charts prepared before the first visitor comes. When the port
is busy or not a port, nothing is warmed (main_job reports the problem): the thread must never
visit another program's server.
"""
from __future__ import annotations

import os
import sys
import threading


def _warm_in_background(port: int) -> None:
    from lxapp import warmup

    def job() -> None:
        if not warmup.wait_healthy(port, timeout=180):
            return
        try:
            secs = warmup.warm(port)
        except (OSError, TimeoutError) as exc:      # the app still works; the first visitor waits instead
            print(f"warm-up skipped: {exc}", file=sys.stderr, flush=True)
            return
        print(f"Linxiang SD app: warmed up in {secs:.1f} s (model compiled, lever screen ready)", flush=True)

    threading.Thread(target=job, name="lxsd-warmup", daemon=True).start()


def main() -> int:
    from engine import main_job

    if os.environ.get("LXSD_NO_APP") != "1" and os.environ.get("LXSD_NO_WARMUP") != "1":
        try:
            port = main_job.port_from_env()
        except ValueError:
            port = None
        if port is not None and main_job.port_is_free(port):
            _warm_in_background(port)
    return main_job.main()


if __name__ == "__main__":
    sys.exit(main())
