"""Model runs in worker processes, so that many people moving levers use every core.

Streamlit runs each session's script in a thread of one process; a model run is Python code
that holds the interpreter lock, so without workers twenty people moving levers queue on one
core whatever the machine has. Here a run goes to a pool of processes (``$LXSD_APP_WORKERS``,
default: the number of cores, at most 4; 0 runs in the app's process), each holding the model
compiled once, with the engine's default backend (the app names none). Until the workers have
compiled the model (a few seconds after the first visit), and if the pool ever breaks, runs
happen in the app's process: a run is never refused.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pandas as pd

_LOCK = threading.Lock()
_POOLS: dict[str, tuple[ProcessPoolExecutor, list[Future]]] = {}
_MODELS: dict[str, object] = {}       # in a worker: model path -> compiled model


def workers() -> int:
    """How many worker processes ($LXSD_APP_WORKERS; default the cores, at most 4; 0: none)."""
    raw = os.environ.get("LXSD_APP_WORKERS", "").strip()
    if raw:
        try:
            return max(0, min(int(raw), 32))
        except ValueError:
            return 0
    return min(os.cpu_count() or 1, 4) if (os.cpu_count() or 1) > 1 else 0


def _model(path: str):
    m = _MODELS.get(path)
    if m is None:
        from engine import load_model
        m = _MODELS[path] = load_model(path)
    return m


def _warm(path: str) -> None:
    """In a worker, as it starts: compile the model and run it once (imports, caches, a JIT if
    the backend has one); and leave when the app's process is gone (killed, never shut down)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    _model(path).run(variables=[])


def _run(path: str, overrides: dict, variables: list[str] | None) -> pd.DataFrame:
    """In a worker: one run; index = time, columns ``name[element]`` (as ``core.run_one``)."""
    res = _model(path).run(params=overrides or None, variables=variables)
    return res.to_dataframe().droplevel("scenario")


def start(path: str, key: str) -> None:
    """Start the pool for this model version (once; the workers compile it in the background)."""
    n = workers()
    if n == 0:
        return
    with _LOCK:
        if key in _POOLS:
            return
        for old, _ in _POOLS.values():       # a changed model file: the old workers go
            old.shutdown(wait=False, cancel_futures=True)
        _POOLS.clear()
        # spawn, not fork: the app's process has threads; each worker warms up as it starts, and
        # n tasks start all n workers now rather than at the first lever moves
        pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_warm,
                                   initargs=(path,))
        _POOLS[key] = (pool, [pool.submit(bool, True) for _ in range(n)])


def run(bundle, overrides: dict, variables: list[str] | None) -> pd.DataFrame:
    """One run of ``bundle``'s model: in a warm worker when there is one, else here."""
    entry = _POOLS.get(bundle.key)
    if entry is not None and all(f.done() and f.exception() is None for f in entry[1]):
        try:
            return entry[0].submit(_run, bundle.path, overrides, variables).result()
        except BrokenProcessPool:
            with _LOCK:
                _POOLS.pop(bundle.key, None)
    res = bundle.model.run(params=overrides or None, variables=variables)
    return res.to_dataframe().droplevel("scenario")
