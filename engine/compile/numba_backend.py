"""The numba backend: the model as one scalar kernel (engine.compile.scalar_code) compiled by numba.

The kernel loops over runs (numba ``prange`` for larger batches) and steps; the initial values are
still the numpy ``init`` (once a batch, vectorised over runs). DELAY FIXED is compiled as the C
backend compiles it (a ring buffer per element and run, ScalarProgram._pipelines), and the RANDOM
functions read tables of the numpy code's own draws (engine.compile.random_table, made a chunk of
runs at a time), so both give numpy's numbers. What the generator does not cover (vector functions,
time settings that are equations, the adaptive method, a RANDOM function whose arguments change
during the run, ...) runs on numpy, with one line saying why (:meth:`NumbaProgram.unsupported`). A batch
in which a run fails (a non-finite saved value or state, a non-negative stock starting below zero)
is re-run on numpy by the caller, so errors, messages and per-run status are the numpy backend's.

Disk cache: numba's ``cache=True`` needs a real source file, so the generated module is written to
``$LXSD_CACHE_DIR/numba`` (default ``~/.cache/linxiang-sd/numba``) as ``lxsd_<hash>.py``, the hash
being of the generated source, numba's version, the helpers' source and Python's version; numba
keeps the compiled machine code next to it (``__pycache__``). The source depends on the model's
structure only (constants and tables are arguments), so changing a constant does not recompile.
Before the file is imported its bytes are compared with the freshly generated source (generation
takes a fraction of a second); a file that differs (edited, damaged) is rewritten, atomically, so
a tampered cache file is never run, and the module is compiled from those checked bytes (no .pyc is read).
numba's own cache files (machine code, pickled) in that folder are trusted as the JAX backend trusts its
serialized executables: they are the user's own cache folder.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

from engine import disk_cache
from engine.compile import numba_runtime
from engine.compile.model_code import ModelCode
from engine.compile.scalar_code import NotSupported
from engine.compile.scalar_program import METHODS, ScalarProgram

NAME = "numba"
# Batches from this size on use the kernel with prange over runs (numba's threads, one per core). Measured on
# the shared 2-core machine under a load of 6 (docs/benchmarks.md): 20 000 runs of the reference model took
# 0.69 s in parallel against 0.43 s serially, so the threads only pay on large batches of an idle machine.
PARALLEL_MIN_RUNS = int(os.environ.get("LXSD_NUMBA_PARALLEL_MIN_RUNS", "10000"))
# numba refuses tuples of this length or more ("Tuple ... length must be smaller than 1000": their LLVM IR grows too
# large), and the kernel hands values between _base, _extra and _one as tuples
TUPLE_LIMIT = 1000


def version() -> str:
    """The backend's version, part of the cache key."""
    import numba

    return f"numba-{numba.__version__}"


def cache_dir() -> Path:
    return disk_cache.cache_dir("numba")


class NumbaProgram(ScalarProgram):
    """One model on the numba backend: its generated module, compiled on the first run."""

    def __init__(self, code: ModelCode) -> None:
        super().__init__(code)
        self._module: types.ModuleType | None = None
        self.cache_file: Path | None = None

    # ---------------------------------------------------------------- what is covered
    def unsupported(self, method: str, dynamic_clock: bool) -> str | None:
        """Why this run cannot be compiled, in words; None when it can."""
        reason = self._reason(method, dynamic_clock)
        if reason is not None:
            return reason
        try:
            _ = self.scalar().source   # generated here: what it cannot express is said now (tables filled)
            self.random_table()        # after the source: it numbers the RANDOM call sites
        except NotSupported as exc:
            self.broken = str(exc)
            return self.broken
        widest = self._widest_tuple()
        if widest >= TUPLE_LIMIT:   # said now, not after a minute of compiling that fails (scirev7, scirev8)
            self.broken = (f"{widest - 1} values in one of the kernel's tuples, over numba's limit of "
                           f"{TUPLE_LIMIT - 1} (--backend c has none)")
        return self.broken

    def _widest_tuple(self) -> int:
        """The longest tuple the kernel hands between its functions: the net flows, the values the flows need,
        the other dynamic values (each with its closing 0.0)."""
        sc = self.scalar()
        return max(self.code.layout.rows, sc.n_base_end - sc.n_in, sc.n_slots - sc.n_base_end) + 1

    # ---------------------------------------------------------------- building
    def module(self) -> types.ModuleType:
        """The generated module, written to the cache folder (or checked there) and imported."""
        if self._module is not None:
            return self._module
        src = self.scalar().source
        data = src.encode("utf-8")
        h = hashlib.sha256(data)
        h.update(version().encode())
        h.update(Path(numba_runtime.__file__).read_bytes())
        h.update(sys.version.encode())
        digest = h.hexdigest()[:32]
        folder = cache_dir()
        file = folder / f"lxsd_{digest}.py"
        try:
            same = file.is_file() and file.read_bytes() == data
        except OSError:
            same = False
        if not same and not disk_cache.write_atomic(file, data):
            # no writable cache: a private temporary folder (compiled each process)
            folder = Path(tempfile.mkdtemp(prefix="lxsd-numba-"))
            file = folder / f"lxsd_{digest}.py"
            disk_cache.write_atomic(file, data)
        name = f"_lxsd_numba_{digest}"
        known = sys.modules.get(name)
        if known is not None and getattr(known, "__file__", None) == str(file):
            # the same structure, already imported from checked bytes in this process (its name is the hash
            # of the source): another model object with other constants shares its compiled kernels
            self.cache_file, self._module = file, known
            return known
        spec = importlib.util.spec_from_file_location(name, file, loader=_CheckedLoader(name, str(file), data))
        if spec is None or spec.loader is None:
            raise NotSupported(f"cannot import the generated kernel {file}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod   # numba's cache finds the module's functions by the module's name
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        self.cache_file = file
        self._module = mod
        return mod

    # ---------------------------------------------------------------- running
    def run(self, P0: list, n: int, clock, solver, outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]]
            ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """Saved values of a batch as the numpy loop returns them ({name: (T, *dims, n)}); None when a run
        failed (the caller re-runs the batch on numpy, for the exact error and per-run status)."""
        mod = self.module()   # before the batch: generating the source fills the lookup tables the batch packs
        b = self._batch(P0, n, clock, outputs)
        if b is None:
            return None
        pipes = self._pipelines(b, clock, n)
        if pipes is None:
            return None
        D0, LAG, ROFF, ring = pipes
        data = [a for pair in b.data for a in pair]
        bad = np.zeros(n, dtype=np.bool_)
        kernel = mod.kernel_par if n >= PARALLEL_MIN_RUNS else mod.kernel
        head = (b.S0, b.PF, b.OFF, b.VR, b.tables, b.outs, b.out, bad, float(clock.t0), float(clock.dt),
                float(clock.t1), float(clock.saveper), int(clock.n_steps), int(clock.save_every), METHODS[solver.name])
        table = self.random_table()
        step = n if table is None else table.chunk_runs(int(clock.n_steps))
        for r0 in range(0, n, step):   # the RANDOM draws' tables are made (and the runs run) a chunk at a time
            r1 = min(n, r0 + step)
            RND = _NO_DRAWS if table is None else table.draws(b.P, n, r0, r1, int(clock.n_steps))
            with np.errstate(all="ignore"):
                kernel(*head, r0, r1, RND, D0, LAG, ROFF, ring, *data)
            if bad[r0:r1].any():
                return None
        return self._saved(b, clock, outputs, sizes)


# a model without RANDOM functions: one placeholder draws table (runs x steps x columns) the kernel never reads
_NO_DRAWS = np.zeros((1, 1, 1))


class _CheckedLoader(importlib.machinery.SourceFileLoader):
    """Imports the generated module from the bytes just checked, never from a .pyc in __pycache__ (which
    could differ from the checked source); the file path is still the module's, as numba's cache needs."""

    def __init__(self, fullname: str, path: str, data: bytes) -> None:
        super().__init__(fullname, path)
        self._checked = data

    def get_code(self, fullname: str) -> types.CodeType:
        return compile(self._checked, self.path, "exec", dont_inherit=True)
