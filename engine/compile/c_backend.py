"""The C backend: the numba backend's scalar kernel printed as C (engine.compile.c_code), compiled by the
system C compiler into a shared library and called through ctypes (numpy arrays passed as pointers).

The same generator as numba, so the same coverage and the same numbers (tested against numpy to 1e-10
relative), but gcc compiles the Linxiang model in seconds where numba's type inference takes over a
minute. Built with ``-O2 -fPIC -shared -ffp-contract=off -fno-fast-math -fno-math-errno``: no FMA contraction and
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
from pathlib import Path

import numpy as np

from engine.compile.c_code import CCode
from engine.compile.model_code import ModelCode
from engine.compile.scalar_code import NotSupported, ScalarCode, pack_statics

NAME = "c"
# -fno-math-errno: sqrt and friends inlined (errno is never read; values unchanged): 241 against 287 µs a Linxiang
# run, measured; -O3 compiled slower and ran no faster, -O1 ran 35 % slower.
FLAGS = ("-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno", "-fno-strict-aliasing")
# Threads from this batch size on (OpenMP, one per core). Small batches are not worth the thread start-up,
# and on the shared 2-core machine threads only pay on an idle machine (docs/architecture.md).
PARALLEL_MIN_RUNS = int(os.environ.get("LXSD_C_PARALLEL_MIN_RUNS", "10000"))
_METHODS = {"euler": 0, "rk2": 1, "rk4": 2}
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


def version() -> str:
    """The C compiler's version line (and whether OpenMP works), for ``lxsd describe``."""
    info = compiler()
    return f"{info[1]}{' with OpenMP' if info[2] else ''}" if info else "no C compiler found"


def cache_dir() -> Path:
    return Path(os.environ.get("LXSD_CACHE_DIR", Path.home() / ".cache" / "linxiang-sd")) / "c"


class CProgram:
    """One model on the C backend: its generated C, compiled on the first run."""

    def __init__(self, code: ModelCode) -> None:
        self.code = code
        self.broken: str | None = None   # why generation or compilation failed once: not tried again
        self._scalar: ScalarCode | None = None
        self._c: CCode | None = None
        self._fn = None
        self.threads_ok = False
        self.cache_file: Path | None = None
        self._slots: dict[tuple[str, ...], np.ndarray] = {}
        self._nonneg: np.ndarray | None = None

    def unsupported(self, method: str, dynamic_clock: bool) -> str | None:
        """Why this run cannot be compiled, in words; None when it can."""
        if self.broken:
            return self.broken
        if dynamic_clock:
            return "time settings that are equations (a dynamic clock) are not compiled"
        if method not in _METHODS:
            return f"the {method} method is not compiled"
        if "_streams" in self.code.globals:
            return "RANDOM functions are not compiled"
        if compiler() is None:
            self.broken = f"no C compiler found ({os.environ.get('CC') or 'cc'}; set CC)"
            return self.broken
        try:
            self.ccode()
        except NotSupported as exc:
            self.broken = str(exc)
        return self.broken

    def scalar(self) -> ScalarCode:
        if self._scalar is None:
            self._scalar = ScalarCode(self.code)
        return self._scalar

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
        flags = list(FLAGS) + (["-fopenmp"] if omp else [])
        src = self.ccode().source.encode("utf-8")
        h = hashlib.sha256(src)
        h.update(line.encode())
        h.update(" ".join(flags).encode())
        digest = h.hexdigest()[:32]
        file = cache_dir() / f"lxsd_{digest}.so"
        if not file.is_file():
            file = _build(cc, flags, src, file)
        lib = ctypes.CDLL(str(file))
        fn = lib.lx_kernel
        fn.restype = ctypes.c_int
        P, L, D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double   # int64_t in the C: numpy's int64
        fn.argtypes = [L, L, P, P, P, P, P, P, L, P, P, D, D, D, D, L, L, L, P, P, P, P, P]
        self.cache_file, self.threads_ok, self._fn = file, omp, fn
        return fn

    # ---------------------------------------------------------------- running
    def _nonneg_rows(self) -> np.ndarray:
        mask = self._nonneg
        if mask is None:
            mask = np.zeros(self.code.layout.rows, dtype=bool)
            for a, b in self.code.layout.non_negative:
                mask[a:b] = True
            self._nonneg = mask
        return mask

    def _tables(self, sc: ScalarCode) -> np.ndarray:
        """Every lookup table's xs and ys, flat (built once: they are the model's)."""
        if getattr(self, "_tab", None) is None:
            self._tab = np.ascontiguousarray(sc.tables if sc.tables else [0.0], dtype=float)
        return self._tab

    def run(self, P0: list, n: int, clock, solver, outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]]
            ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """Saved values of a batch as the numpy loop returns them ({name: (T, *dims, n)}); None when a run
        failed (the caller re-runs the batch on numpy, for the exact error and per-run status)."""
        sc = self.scalar()
        fn = self.library()
        lay = self.code.layout
        t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper
        with np.errstate(all="ignore"):
            S0, P, _D0, _DT = self.code.init_fn(t0, dt, t0, t1, sp, tuple(P0), n)
        S0 = np.ascontiguousarray(S0, dtype=float).reshape(lay.rows, n) if lay.rows else np.zeros((0, n))
        if not np.isfinite(S0).all() or (S0[self._nonneg_rows()] < 0).any():
            return None
        PF, OFF, VR = pack_statics(sc, P[:len(lay.static_names)], n)
        times_l, values_l, nt, ne, nb = [], [], [], [], []
        rest = P[len(lay.static_names):]
        for i, name in enumerate(lay.data_names):
            times = np.ascontiguousarray(rest[2 * i], dtype=float)
            values = np.asarray(rest[2 * i + 1], dtype=float)
            e = self.code.rvars[name].size
            values = np.ascontiguousarray(values.reshape(values.shape[0], e, -1))
            if values.shape[2] not in (1, n):
                raise NotSupported(f"{name}: a data series with {values.shape[2]} columns for {n} runs")
            times_l.append(times)
            values_l.append(values)
            nt.append(times.shape[0])
            ne.append(e)
            nb.append(values.shape[2])
        k = max(len(times_l), 1)
        DT = (ctypes.c_void_p * k)(*[a.ctypes.data for a in times_l])
        DV = (ctypes.c_void_p * k)(*[a.ctypes.data for a in values_l])
        NT, NE, NB = (np.asarray(x or [0], dtype=np.int64) for x in (nt, ne, nb))
        outs_idx = self._slots.get(outputs)
        if outs_idx is None:
            slots: list[int] = []
            for o in outputs:
                base = sc.slot[o]
                slots += range(base, base + self.code.rvars[o].size)
            outs_idx = self._slots[outputs] = np.asarray(slots, dtype=np.int64)
        n_steps, se = clock.n_steps, clock.save_every
        n_saves = len(range(0, n_steps + 1, se))
        out = np.empty((n_saves, len(outs_idx), n))
        bad = np.zeros(n, dtype=np.uint8)
        tab = self._tables(sc)
        threads = (os.cpu_count() or 1) if (self.threads_ok and n >= PARALLEL_MIN_RUNS) else 1
        ptr = _ptr
        fn(n, threads, ptr(S0), ptr(PF), ptr(OFF), ptr(VR), ptr(tab), ptr(outs_idx), len(outs_idx), ptr(out),
           ptr(bad), float(t0), float(dt), float(t1), float(sp), int(n_steps), int(se), _METHODS[solver.name],
           ctypes.cast(DT, ctypes.c_void_p), ptr(NT), ctypes.cast(DV, ctypes.c_void_p), ptr(NE), ptr(NB))
        if bad.any():
            return None
        store: dict[str, np.ndarray] = {}
        c = 0
        for o in outputs:
            e = self.code.rvars[o].size
            store[o] = out[:, c:c + e, :].reshape((n_saves,) + tuple(sizes[o]) + (n,))
            c += e
        return clock.save_times(), store


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


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
