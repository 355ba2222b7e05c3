"""Which backend runs a model: ``numpy`` (the reference), ``jax`` (compiled with XLA), ``numba`` (a scalar
kernel compiled by numba, engine.compile.numba_backend) or ``c`` (the same scalar kernel printed as C and
compiled by the system C compiler, engine.compile.c_backend).

The default is ``c`` when a C compiler (``$CC`` or ``cc``) is on the PATH, numpy otherwise; ``LXSD_BACKEND`` or
``backend=`` choose another. Why c (measured 30 Nov, docs/architecture.md "The C backend"): it compiles the
Linxiang model cold in 1-2 s and starts from its disk cache in a fraction of a second, its numbers equal numpy's
to 1e-12 relative (tested on every scenario, the suite and World3), and a run it does not cover (DELAY FIXED,
RANDOM functions, the adaptive method, ...) or one that fails runs on numpy, silently under the default, so the
default changes speed, never results or errors. numba (15-36 s to compile Linxiang cold, with its tuple layout)
and JAX (36-57 s) are not defaults: every first run of a changed model would be that much slower. A run the
compiled backend does not cover runs on numpy; when the compiled backend was asked for by name
(``backend="jax"``, ``lxsd run --backend c``, ``LXSD_BACKEND=numba``) one line on stderr says why, once per model
and reason; under the default it falls back silently (``lxsd describe`` names the default).
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
    """``$LXSD_BACKEND`` if set, else c with a C compiler, numpy without (see the module's docstring)."""
    env = os.environ.get("LXSD_BACKEND")
    if env:
        return check_backend(env)
    return "c" if c_compiler_found() else "numpy"


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

        return f"c (the scalar kernel as C, compiled by {version()})"
    import numpy as np

    return f"numpy {np.__version__} (reference)"
