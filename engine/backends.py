"""Which backend runs a model: ``numpy`` (the reference), ``jax`` (compiled with XLA) or ``numba`` (a scalar
kernel compiled by numba, engine.compile.numba_backend).

The default is numpy (``LXSD_BACKEND`` or ``backend=`` choose jax or numba). numba (measured 30 Nov, docs/
benchmarks.md): 100x numpy for one Linxiang run and 0.5-0.65 s to start from its disk cache, but 76-93 s to compile
Linxiang cold and no faster than numpy for batches of 10 000 or more, so it is not the default either (the issue's
bar: a cold compile of about 10 s). JAX, decided at integration (issue 12):
the compiled backend is 50-250x faster for one run once compiled, but compiling the Linxiang model takes
36-57 s cold and 4 s cached, and batches of 10 000 or more are no faster than numpy; as the default it would make
every first run, the app's first page and every CLI call on a new model slower. It becomes the default when its
compile time and batch speed meet the issue's targets. A run the compiled backend does not cover runs on numpy; when
the compiled backend was asked for by name (``backend="jax"``, ``lxsd run --backend numba``,
``LXSD_BACKEND=jax``) one line on stderr says why, once per model and reason; under the
default it falls back silently (``lxsd describe`` names the default).
"""
from __future__ import annotations

import importlib.util
import os
import sys

from engine.errors import EngineError

BACKENDS = ("numpy", "jax", "numba", "c")
_said: set[tuple[str, str]] = set()


def jax_installed() -> bool:
    return importlib.util.find_spec("jax") is not None


def numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def c_compiler_found() -> bool:
    """Whether a C compiler ($CC or cc) is on the PATH (the C backend's only requirement)."""
    import shutil

    return shutil.which(os.environ.get("CC", "cc") or "cc") is not None


def default_backend() -> str:
    """``$LXSD_BACKEND`` if set, else numpy (see the module's docstring for why not jax or numba)."""
    env = os.environ.get("LXSD_BACKEND")
    if env:
        return check_backend(env)
    return "numpy"


def explicit(name: str | None) -> bool:
    """Whether the backend was chosen by the user (by name or LXSD_BACKEND), not by default."""
    return name is not None or bool(os.environ.get("LXSD_BACKEND"))


def check_backend(name: str | None) -> str:
    """A backend name checked (None: the default)."""
    if name is None:
        return default_backend()
    name = str(name).strip().lower()
    if name not in BACKENDS:
        raise EngineError(f"unknown backend {name!r}; one of {', '.join(BACKENDS)}")
    return name


def fallback(model_file: str, reason: str) -> None:
    """Say once, in one line on stderr, that this model runs on numpy and why."""
    key = (model_file, reason)
    if key in _said:
        return
    _said.add(key)
    print(f"lxsd: {model_file}: running on the numpy backend: {reason}", file=sys.stderr)


def describe(backend: str) -> str:
    """One line for ``lxsd describe``: the backend and its version."""
    if backend == "jax":
        from engine.compile.jax_backend import version

        return f"jax (compiled with XLA; {version()})"
    if backend == "numba":
        from engine.compile.numba_backend import version

        return f"numba (a scalar kernel compiled with LLVM; {version()})"
    if backend == "c":
        from engine.compile.c_backend import version

        return f"c (the scalar kernel as C, compiled by the system compiler; {version()})"
    import numpy as np

    return f"numpy {np.__version__} (reference)"
