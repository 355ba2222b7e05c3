"""Warm the app up as its server starts, so that the first visitor does not wait for the compile.

Streamlit runs the app's script only for a browser session: nothing (the model's compile, the
worker pool of ``lxapp/runpool.py``, the lever screen's chart templates) happens before the
first visitor, who then waited ~3 s on this machine. :func:`warm` opens the pages a visitor
opens first over Streamlit's own websocket protocol (what a browser sends), as one visitor
would, and returns when the server has run them. ``python -m lxapp.serve`` (``make run``)
calls it once the server answers. It uses tornado's websocket client (Streamlit's own server
library, always installed with it).
"""
from __future__ import annotations

import asyncio
import time
import urllib.request

PAGES = ("page=levers&lang=zh", "page=levers&lang=en")


def wait_healthy(port: int, host: str = "127.0.0.1", timeout: float = 120.0) -> bool:
    """Whether the server on ``port`` answered its health check within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return True
        except OSError:
            time.sleep(0.3)
    return False


async def _visit(port: int, query: str, host: str, timeout: float) -> None:
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from tornado.websocket import websocket_connect

    ws = await asyncio.wait_for(websocket_connect(f"ws://{host}:{port}/_stcore/stream", subprotocols=["streamlit"]),
                                timeout)
    try:
        bm = BackMsg()
        bm.rerun_script.query_string = query
        bm.rerun_script.widget_states.SetInParent()
        await ws.write_message(bm.SerializeToString(), binary=True)
        while True:
            raw = await asyncio.wait_for(ws.read_message(), timeout)
            if raw is None:                      # the server closed the connection
                return
            fm = ForwardMsg()
            fm.ParseFromString(raw)
            if fm.WhichOneof("type") == "script_finished":
                return
    finally:
        ws.close()


def warm(port: int, pages: tuple[str, ...] = PAGES, host: str = "127.0.0.1", timeout: float = 300.0) -> float:
    """Open ``pages`` (URL query strings) once each, one after the other, on the app at ``port``;
    returns the seconds it took. Raises OSError / TimeoutError when the server does not answer."""
    t0 = time.perf_counter()
    for q in pages:
        asyncio.run(_visit(port, q, host, timeout))
    return time.perf_counter() - t0
