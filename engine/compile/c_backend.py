"""The C backend: the numba backend's scalar kernel printed as C (engine.compile.c_code), compiled by the
system C compiler into a shared library and called through ctypes (numpy arrays passed as pointers).

The same generator as numba, so numba's coverage and the same numbers (tested against numpy to 1e-10
relative), but gcc compiles the Linxiang model in seconds where numba's type inference takes over a
minute. Beyond numba, it compiles DELAY FIXED (ring buffers a run, :meth:`CProgram._pipelines`) and the
RANDOM functions (the numpy code's own draws, tabulated per run and step: engine.compile.random_table),
so Earth4All runs here.
Built with ``-O2 -fPIC -shared -ffp-contract=off -fno-fast-math -fno-math-errno``: no FMA contraction and
no reassociation, so + - * / round as numpy's do (library functions such as exp and pow may differ from
numpy's in the last bit: 1e-15 relative measured on Linxiang, 0 on World3). ``-fopenmp`` is added when
the compiler accepts it; the run loop then uses threads from ``PARALLEL_MIN_RUNS`` runs on.

Compiler: ``$CC`` or ``cc``. None found, or a compile error: the model runs on numpy (one line says why).
Disk cache: ``$LXSD_CACHE_DIR/c/<hash>.so`` (default ``~/.cache/linxiang-sd/c``), the hash covering the
generated source (which includes c_runtime.h), the compiler's version line and the flags; written through
a temporary file and a rename. The source holds slot numbers, numbers and helper names only, so a changed
constant or table does not recompile. A library in the user's own cache folder is trusted, as numba's and
JAX's cached machine code are.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from engine import disk_cache
from engine.compile.block_code import BLOCK_MIN_RUNS, block_kernel
from engine.compile.c_call import Words, address, data_args
from engine.compile.c_code import VPOW, CCode
from engine.compile.model_code import ModelCode
from engine.compile.scalar_code import NotSupported
from engine.compile.scalar_program import _NO_RINGS, METHODS, ScalarProgram
from engine.compile.static_code import RUN_WORDS, StaticCode, StaticInit

NAME = "c"
# -fno-math-errno: sqrt and friends inlined (errno is never read; values unchanged): 241 against 287 µs a Linxiang
# run, measured; -O3 compiled slower and ran no faster, -O1 ran 35 % slower.
FLAGS = ("-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno", "-fno-strict-aliasing")
# Threads from this batch size on (OpenMP, one per core). Small batches are not worth the thread start-up,
# and on the shared 2-core machine threads only pay on an idle machine (docs/architecture.md).
PARALLEL_MIN_RUNS = int(os.environ.get("LXSD_C_PARALLEL_MIN_RUNS", "10000"))
_compiler_info: tuple[str, str, bool] | None = None   # (path, version line, accepts -fopenmp)


def compiler() -> tuple[str, str, bool] | None:
    """(path, version line, OpenMP works) of the C compiler ($CC or cc), None when there is none."""
    global _compiler_info
    if _compiler_info is not None:
        return _compiler_info if _compiler_info[0] else None
    cc = shutil.which(os.environ.get("CC", "cc") or "cc")
    if cc is None:
        _compiler_info = ("", "", False)
        return None
    try:
        ver = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30, check=False)
        line = (ver.stdout or ver.stderr).strip().splitlines()[0] if (ver.stdout or ver.stderr).strip() else cc
    except (OSError, subprocess.SubprocessError):
        _compiler_info = ("", "", False)
        return None
    omp = False
    if os.environ.get("LXSD_C_OPENMP", "1") != "0":
        with tempfile.TemporaryDirectory(prefix="lxsd-c-") as tmp:
            src = Path(tmp) / "omp.c"
            src.write_text("#include <omp.h>\nint f(void) { return omp_get_max_threads(); }\n", encoding="utf-8")
            try:
                done = subprocess.run([cc, *FLAGS, "-fopenmp", "-o", str(Path(tmp) / "omp.so"), str(src)],
                                      capture_output=True, timeout=60, check=False)
                omp = done.returncode == 0
            except (OSError, subprocess.SubprocessError):
                omp = False
    _compiler_info = (cc, line, omp)
    return _compiler_info


# glibc's vector functions for the kernel's grouped powers (engine.compile.pow_groups, c_runtime.h's lx_vpow8). A
# library that does not link with them (no libmvec: not glibc, not x86-64) is built again without, under the same
# name (as the block kernel's): no test compile in every process.
MVEC_FLAGS = ("-DLX_MVEC", "-Wl,--no-as-needed", "-lmvec")


def version() -> str:
    """The C compiler's version line (and whether OpenMP works), for ``lxsd describe``."""
    info = compiler()
    return f"{info[1]}{' with OpenMP' if info[2] else ''}" if info else "no C compiler found"


def cache_dir() -> Path:
    return disk_cache.cache_dir("c")


class CProgram(ScalarProgram):
    """One model on the C backend: its generated C, compiled on the first run."""

    def __init__(self, code: ModelCode) -> None:
        super().__init__(code)
        self._c: CCode | None = None
        self._fn = None
        self.threads_ok = False
        self.cache_file: Path | None = None
        self._static: StaticCode | None = None   # the init in C (engine.compile.static_code); None: numpy's init
        self._init: StaticInit | None = None
        self._run_fn = None                      # lx_run (one call: init and kernel), where the init is compiled
        self._kept: _KeptRun | None = None       # lx_run's argument block for the last small batch

    def unsupported(self, method: str, dynamic_clock: bool) -> str | None:
        """Why this run cannot be compiled, in words; None when it can."""
        reason = self._reason(method, dynamic_clock)
        if reason is not None:
            return reason
        if compiler() is None:
            self.broken = f"no C compiler found ({os.environ.get('CC') or 'cc'}; set CC)"
            return self.broken
        try:
            self.ccode()
            self.random_table()
        except NotSupported as exc:
            self.broken = str(exc)
        return self.broken

    def ccode(self) -> CCode:
        if self._c is None:
            self._c = CCode(self.scalar())
        return self._c

    # ---------------------------------------------------------------- building
    def library(self):
        """The kernel's function from the cached (or newly built) shared library."""
        if self._fn is not None:
            return self._fn
        info = compiler()
        if info is None:
            raise NotSupported("no C compiler found")
        cc, line, omp = info
        mvec = VPOW and self.ccode().groups > 0   # grouped powers call libmvec (built without where it does not link)
        flags = list(FLAGS) + (["-fopenmp"] if omp else []) + (list(MVEC_FLAGS) if mvec else [])
        src = (self.ccode().source + self._static_source()).encode("utf-8")
        h = hashlib.sha256(src)
        h.update(line.encode())
        h.update(" ".join(flags).encode())
        digest = h.hexdigest()[:32]
        file = cache_dir() / f"lxsd_{digest}.so"
        if not file.is_file():
            try:
                file = _build(cc, flags, src, file)
            except NotSupported:
                if not mvec:
                    raise
                file = _build(cc, [f for f in flags if f not in MVEC_FLAGS], src, file)
        lib = ctypes.CDLL(str(file))
        fn = lib.lx_kernel
        fn.restype = ctypes.c_int
        P, L, D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double   # int64_t in the C: numpy's int64
        fn.argtypes = [L, L, P, P, P, P, P, P, L, P, P, D, D, D, D, L, L, L, L, L, P, P, P, P, L, P, P, P, P, P]
        self.cache_file, self.threads_ok, self._fn = file, omp, fn
        self._init = StaticInit(self._static, lib.lx_init) if self._static is not None else None
        if self._static is not None:
            run_fn = lib.lx_run
            run_fn.restype = ctypes.c_int
            run_fn.argtypes = [ctypes.c_void_p]
            self._run_fn = run_fn
        return fn

    def _static_source(self) -> str:
        """The C of the init (static values, initial stocks), or "" where numpy's init stays (said in docs)."""
        try:
            self._static = StaticCode(self.scalar())
        except (NotSupported, KeyError, IndexError):   # numpy's init stays; the kernel is unaffected
            self._static = None
            return ""
        return self._static.source

    def _start(self, P0, n, clock, data):
        """The initial state and statics from the compiled init (numpy's where there is none)."""
        if self._init is None or not self.plain():
            return super()._start(P0, n, clock, data)
        threads = (os.cpu_count() or 1) if (self.threads_ok and n >= PARALLEL_MIN_RUNS) else 1
        got = self._init.start(P0, n, clock, data, self._tables(), threads)
        return None if got is None else (*got, (), (), ())

    # ---------------------------------------------------------------- running
    def run(self, P0: list, n: int, clock, solver, outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]]
            ) -> tuple[np.ndarray, Mapping[str, np.ndarray]] | None:
        """Saved values of a batch as the numpy loop returns them ({name: (T, *dims, n)}); None when a run
        failed (the caller re-runs the batch on numpy, for the exact error and per-run status)."""
        fn = self.library()
        if n < BLOCK_MIN_RUNS and self._run_fn is not None and self.plain():
            return self._run_small(P0, n, clock, solver, outputs, sizes)
        block = None
        if n >= BLOCK_MIN_RUNS and self.plain():   # a batch: runs side by side in SIMD lanes (block_code)
            block = block_kernel(self)
        b = self._batch(P0, n, clock, outputs)
        if b is None:
            return None
        dargs, _keep = data_args(b.data)
        bad = np.zeros(n, dtype=np.uint8)
        threads = (os.cpu_count() or 1) if (self.threads_ok and n >= PARALLEL_MIN_RUNS) else 1
        keep = address   # arrays kept across runs: their addresses taken once (engine.compile.c_call)
        head = (n, threads, b.S0.ctypes.data, b.PF.ctypes.data, keep(b.OFF), keep(b.VR), keep(b.tables),
                keep(b.outs), len(b.outs), b.out.ctypes.data, bad.ctypes.data, clock.t0, clock.dt, clock.t1,
                clock.saveper, clock.n_steps, clock.save_every, METHODS[solver.name])
        if block is not None:   # no DELAY FIXED, no RANDOM: the block kernel takes the plain arguments
            block(*head, *dargs)
            return None if np.count_nonzero(bad) else self._store(b.out, clock, outputs, sizes)
        pipes = self._pipelines(b, clock, n)
        if pipes is None:
            return None
        D0, LAG, ROFF, ring = pipes
        table = self.random_table()
        step = n if table is None else table.chunk_runs(int(clock.n_steps))
        no_draws = _NO_RINGS[0]   # a placeholder the kernel never reads
        for r0 in range(0, n, step):   # the RANDOM draws' tables are made (and the runs run) a chunk at a time
            r1 = min(n, r0 + step)
            RND = no_draws if table is None else table.draws(b.P, n, r0, r1, int(clock.n_steps))
            fn(*head, r0, r1, RND.ctypes.data, D0.ctypes.data, LAG.ctypes.data, ROFF.ctypes.data, ring, *dargs)
            if bad[r0:r1].any():
                return None
        return self._store(b.out, clock, outputs, sizes)

    def _run_small(self, P0: list, n: int, clock, solver, outputs: tuple[str, ...],
                   sizes: dict[str, tuple[int, ...]]) -> tuple[np.ndarray, Mapping[str, np.ndarray]] | None:
        """A batch of a plain model too small for the block kernel (one run, a few scenarios): init and kernel
        in one ``lx_run`` call, whose argument block and arrays are kept while the packed inputs, the batch
        size, the clock, the method and the outputs stay the same (the app's and the CLI's runs of the same
        settings). The saved values are copied out of the kept output array (the Results own theirs)."""
        assert self._init is not None and self._run_fn is not None
        data = self._data(P0, n)
        packed = self._init._pack(P0, n)
        threads = (os.cpu_count() or 1) if (self.threads_ok and n >= PARALLEL_MIN_RUNS) else 1
        key = (n, threads, clock.t0, clock.dt, clock.t1, clock.saveper, solver.name, outputs)
        kept = self._kept
        if kept is None or kept.packed is not packed or kept.key != key or (
                kept.data is not data and (data or kept.data)):   # (a model without series: a new [] each run)
            kept = self._kept = self._prepare(packed, data, key, n, threads, clock, solver, outputs)
        if not kept.lock.acquire(blocking=False):   # another thread runs the same settings: arrays of its own
            kept = self._prepare(packed, data, key, n, threads, clock, solver, outputs)
            kept.lock.acquire()
        try:
            if self._run_fn(kept.words.address):
                return None   # a run could not start or failed: numpy re-runs the batch, for its error
            out = kept.out.copy()
        finally:
            kept.lock.release()
        return self._store(out, clock, outputs, sizes)

    def _prepare(self, packed, data, key, n: int, threads: int, clock, solver, outputs) -> _KeptRun:
        """lx_run's arguments (engine.compile.static_code.RUN_WORDS) and the arrays behind them."""
        assert self._init is not None
        PI, OFFI, VRI = packed
        npi = PI.shape[0]
        init = self._init
        PF = np.empty(npi + max(init.n_comp, 1) * n)
        PF[:npi] = PI
        OFF, VR = init._kernel_index(OFFI, VRI, npi, n)
        outs = self._outputs(outputs)
        n_saves = len(range(0, clock.n_steps + 1, clock.save_every))
        out = np.empty((n_saves, len(outs), n))
        S0 = np.empty((init.rows, n)) if init.rows else np.zeros((1, n))
        dargs, dkeep = data_args(data)
        values = {"n": n, "threads": threads, "PI": PI, "OFFI": OFFI, "VRI": VRI, "TAB": self._tables(),
                  "t0": clock.t0, "dt": clock.dt, "t1": clock.t1, "saveper": clock.saveper,
                  **dict(zip(("DT", "NT", "DV", "NE", "NB"), dargs, strict=True)),
                  "PFC": PF.ctypes.data + npi * 8, "S0": S0, "bad": np.zeros(n, dtype=np.uint8), "PF": PF,
                  "OFF": OFF, "VR": VR, "OUTS": outs, "n_outs": len(outs), "out": out, "n_steps": clock.n_steps,
                  "save_every": clock.save_every, "method": METHODS[solver.name]}
        return _KeptRun(Words(RUN_WORDS, values), packed, data, key, out, (PF, dkeep))

    def plain(self) -> bool:
        """No DELAY FIXED and no RANDOM function: the compiled init and the block kernel apply (they hold no
        delay rings and no draws)."""
        return not self.code.layout.delay_fixed and not self.scalar().random_sites


class _KeptRun:
    """One small batch's lx_run call, kept: its argument block, what it was built from (the packed constants
    and the data series, held so that no other object takes their ids; the key of sizes, clock, method and
    outputs) and the arrays it writes (used by one thread at a time: ``lock``)."""

    def __init__(self, words: Words, packed: tuple, data: list, key: tuple, out: np.ndarray, keep: tuple) -> None:
        self.words = words
        self.packed = packed
        self.data = data
        self.key = key
        self.out = out
        self.keep = keep
        self.lock = threading.Lock()


def _build(cc: str, flags: list[str], src: bytes, target: Path) -> Path:
    """Compile src into target (atomically: a temporary file, then a rename). Without a writable cache
    folder, the library goes to a private temporary folder (compiled each process)."""
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmpdir = tempfile.mkdtemp(prefix=".build-", dir=folder)
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="lxsd-c-"))
        target = folder / target.name
        tmpdir = tempfile.mkdtemp(prefix=".build-", dir=folder)
    try:
        c_file = Path(tmpdir) / "kernel.c"
        so_file = Path(tmpdir) / "kernel.so"
        c_file.write_bytes(src)
        try:
            done = subprocess.run([cc, *flags, "-o", str(so_file), str(c_file), "-lm"], capture_output=True,
                                  text=True, timeout=600, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise NotSupported(f"the C compiler failed to start ({type(exc).__name__}: {exc})") from None
        if done.returncode != 0:
            first = next((ln for ln in done.stderr.splitlines() if "error" in ln), done.stderr.strip()[:200])
            raise NotSupported(f"the C compiler failed ({first.strip()[:200]})")
        os.replace(so_file, target)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return target
