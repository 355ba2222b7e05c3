"""The compiled backend: a model's generated step function and the integration loop, run by JAX/XLA.

Built from the same resolved model and the same generated source as the numpy backend
(``ModelCode.dynamic_source(functional=True)``), with ``np`` and ``_rt`` bound to their JAX
versions (engine.compile.jax_runtime); the loop is engine.integrate.jax_loop. The initial values
are still computed by the numpy ``init`` (once a run, a few hundred array operations).

DELAY FIXED is a ring buffer a variable in the loop's state (engine.integrate.jax_loop), sized from
the longest lag of the batch (rounded up to a power of two, so batches with other delay times share a
program; :func:`_rings`). What it does not cover runs on numpy, with one line saying why
(:meth:`JaxProgram.unsupported`): time settings that are equations, the adaptive method, builtins
without a JAX version, and a RANDOM function whose arguments change during the run (the others read
tables of the numpy code's own draws: engine.compile.jax_random). A batch in which a run fails is re-run on
numpy, so that errors and per-run status are the numpy backend's.

Compilation is cached on disk in ``$LXSD_CACHE_DIR/jax`` (default ``~/.cache/linxiang-sd/jax``):
the XLA executable (``jax.experimental.serialize_executable``) under a key made of the model's
content (the generated step's source and every constant array it reads), the clock, the method,
the argument shapes and the jax/jaxlib versions. A second process neither traces the Python
step nor runs XLA's compiler: it loads the executable. (The file is a pickle written by this
engine into the user's own cache folder; a file that does not load is ignored and rebuilt.)
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
import re
import types
from pathlib import Path

import numpy as np

from engine import disk_cache
from engine.compile import jax_runtime, runtime
from engine.compile.jax_random import JaxDraws
from engine.compile.jax_runtime import Unsupported
from engine.compile.model_code import ModelCode

NAME = "jax"
CHUNK = 8192   # runs per compiled call on a CPU; smaller batches are padded to a power of two
# On a GPU one call of 131 072 runs costs about what 8 192 do (measured on an H200: Linxiang 100 000 runs
# 0.67 s in one chunk against 1.2 s in thirteen; benchmarks/bench_gpu.py), and its memory is the GPU's.
GPU_CHUNK = 1 << 17
SAVE_ALL = 1024   # batches up to this size compile one program saving every variable


def version() -> str:
    """The backend's version, part of the compilation cache key (JAX adds its own): with the platform the
    programs run on, since an executable compiled for the CPU cannot run on a GPU."""
    import jax
    import jaxlib

    return (f"jax-{jax.__version__}-jaxlib-{jaxlib.__version__}-{jax.default_backend()}-"
            f"{os.environ.get('XLA_FLAGS', '')}")


def cache_dir() -> Path:
    return disk_cache.cache_dir("jax")


def _chunk() -> int:
    """Runs per compiled call: larger on a GPU, where a call's fixed cost (launching each step's kernels)
    is what a chunk pays for."""
    import jax

    return GPU_CHUNK if jax.default_backend() in ("gpu", "cuda", "rocm") else CHUNK


class JaxProgram:
    """One model on the compiled backend: step functions per output set, loops per clock."""

    def __init__(self, code: ModelCode) -> None:
        self.code = code
        self._globals: dict | None = None
        self._steps: dict[tuple, types.FunctionType] = {}
        self._loops: dict[tuple, object] = {}
        self.broken: str | None = None   # why tracing failed once: not tried again
        self.cache_note: str | None = None   # why the last compiled program could not be cached
        self._draws: JaxDraws | None = None

    # ---------------------------------------------------------------- what is covered
    def unsupported(self, method: str, dynamic_clock: bool) -> str | None:
        """Why this run cannot be compiled, in words; None when it can."""
        if self.broken:
            return self.broken
        if dynamic_clock:
            return "time settings that are equations (a dynamic clock) are not compiled"
        if method == "adaptive":
            return "the adaptive method is not compiled"
        reason = self._unknown_helpers()
        if reason is None:
            try:
                self.draws()
            except Unsupported as exc:
                reason = self.broken = str(exc)
        return reason

    def draws(self) -> JaxDraws | None:
        """The RANDOM call sites' tables (None when the model draws nothing); Unsupported when one cannot be
        tabulated."""
        if self._draws is None and "_streams" in self.code.globals:
            self._draws = JaxDraws(self.code)
        return self._draws

    @functools.cached_property
    def _helpers_reason(self) -> str | None:
        src = "\n".join(self.code.sources.values()) + self.code.dynamic_source(
            tuple(n for n in self.code.rvars if self.code.phase.get(n) == "dynamic"), functional=True)
        missing = sorted({h for h in re.findall(r"_rt\.(\w+)", src) if h not in vars(jax_runtime)})
        if missing:
            return f"no compiled version of {', '.join(missing)}"
        return None

    def _unknown_helpers(self) -> str | None:
        try:
            return self._helpers_reason
        except Exception as exc:  # noqa: BLE001 - any surprise means: not compiled
            return f"{type(exc).__name__}: {exc}"

    # ---------------------------------------------------------------- building
    def _jax_globals(self) -> dict:
        if self._globals is None:
            g = dict(self.code.globals)
            g["np"] = jax_runtime.NP
            g["_rt"] = jax_runtime
            for key, value in list(g.items()):
                if isinstance(value, functools.partial) and value.func is runtime.lookup:
                    g[key] = functools.partial(jax_runtime.lookup, *value.args, **value.keywords)
            self._globals = g
        return self._globals

    def step(self, outputs: tuple[str, ...]) -> types.FunctionType:
        if outputs not in self._steps:
            src = self.code.dynamic_source(outputs, functional=True, fname="_dynj")
            draws = self.draws()
            if draws is not None:
                src = draws.rewrite(src)
            code = compile(src, f"<linxiang-sd-jax:{self.code.model.name}:_dynj>", "exec")
            fn_code = next(c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == "_dynj")
            self._steps[outputs] = types.FunctionType(fn_code, self._jax_globals(), "_dynj")
        return self._steps[outputs]

    def loop(self, clock, solver, outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]], S0, P,
             B0: tuple = (), LAGS: tuple = (), RT: tuple = ()):
        """The compiled loop for this clock, method, output set and argument shapes (the DELAY FIXED rings' among
        them): from memory, from the disk cache (the serialized XLA executable), or traced, compiled and stored now."""
        from jax.experimental import serialize_executable

        shapes = (S0.shape, tuple((p.shape, p.dtype.char) for p in P), tuple(b.shape for b in B0),
                  tuple((g.shape, g.dtype.char) for g in LAGS), tuple(r.shape for r in RT))
        key = (outputs, solver.name, clock.t0, clock.t1, clock.dt, clock.saveper, shapes)
        if key in self._loops:
            return self._loops[key]
        digest = hashlib.sha256(repr((key, version(), self.fingerprint(outputs))).encode()).hexdigest()[:32]
        file = cache_dir() / f"{self.code.model.name[:40]}-{digest}.xla"
        compiled = None
        if file.is_file():
            try:
                blob, in_tree, out_tree = pickle.loads(file.read_bytes())
                compiled = serialize_executable.deserialize_and_load(blob, in_tree, out_tree)
            except Exception:  # noqa: BLE001 - a damaged or foreign cache file: compile again
                compiled = None
        if compiled is None:
            from engine.integrate.jax_loop import make_loop

            fn = make_loop(self.step(outputs), self.step(()), solver, clock, self.code.layout.non_negative,
                           [sizes[o] for o in outputs])
            compiled = fn.lower(S0, P, B0, LAGS, RT).compile()
            try:
                blob, in_tree, out_tree = serialize_executable.serialize(compiled)
                disk_cache.write_atomic(file, pickle.dumps((bytes(blob), in_tree, out_tree)))
            except (TypeError, ValueError, RuntimeError, pickle.PicklingError) as exc:
                self.cache_note = f"the compiled program was not cached: {type(exc).__name__}: {exc}"
        self._loops[key] = compiled
        return compiled

    def fingerprint(self, outputs: tuple[str, ...]) -> str:
        """The model's content as the compiled program sees it: the step's source and every constant
        it reads (tables, index arrays, lookups)."""
        h = hashlib.sha256(self.code.dynamic_source(outputs, functional=True).encode())
        h.update(self.code.dynamic_source((), functional=True).encode())
        for name in sorted(self.code.globals):
            # _streams is run-time state (the seed, the first run), not content: the draws come in as tables (and
            # its repr, an address, would make every process's key new)
            if not name.startswith("__") and name != "_streams":
                _feed(h, name, self.code.globals[name])
        return h.hexdigest()

    # ---------------------------------------------------------------- running
    def run(self, P0: list, n: int, clock, solver, outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]],
            every: tuple[str, ...] | None = None, every_sizes: dict[str, tuple[int, ...]] | None = None
            ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """Saved values of a batch, as the numpy loop returns them; None when a run failed (the caller
        re-runs the batch on numpy for the exact error and status). Raises jax_runtime.Unsupported
        (or another exception from tracing) when the step cannot be compiled.

        Batches of more than CHUNK runs are split into equal chunks; a chunk is padded (repeating its
        last run) to a power of two up to 1 024 runs, then to a multiple of 1 024, so that a model
        compiles a handful of programs, not one per batch size. Batches of up to SAVE_ALL runs save
        ``every`` variable (sizes ``every_sizes``) and hand back those asked for, so that small runs
        with different variable lists (the app, the CLI) share one compiled program."""
        from engine.integrate.driver import _take_runs

        cap = _chunk()
        draws = self.draws()
        if draws is not None:   # the draws' tables of a chunk within random_table.CHUNK_BYTES
            cap = min(cap, draws.chunk_runs(int(clock.n_steps)))
        k = -(-n // cap)                # chunks of equal size, each padded to the same bucket
        size = -(-n // k)
        padded = _bucket(size)
        asked = outputs
        if every is not None and every_sizes is not None and padded <= SAVE_ALL and set(outputs) <= set(every):
            outputs, sizes = every, every_sizes
        parts = []
        for lo in range(0, n, size):
            m = min(size, n - lo)
            P = P0 if m == n else _take_runs(P0, slice(lo, lo + m), n)
            if padded != m:
                P = _pad_runs(P, m, padded)
            got = self._run_padded(P, padded, clock, solver, outputs, sizes, lo)
            if got is None:
                return None
            part = {o: np.array(got[o][..., :m] if padded != m else got[o]) for o in asked}
            if not all(np.isfinite(v.sum()) for v in part.values()):
                return None   # a saved value is not finite: the numpy loop names it
            parts.append(part)
        store = parts[0] if len(parts) == 1 else {o: np.concatenate([p[o] for p in parts], axis=-1) for o in asked}
        return clock.save_times(), store

    def _run_padded(self, P0, n, clock, solver, outputs, sizes, r0: int = 0) -> dict | None:
        """Saved values (JAX arrays, padded batch) of one chunk (its first run: run r0 of the batch); None when a
        run's state failed."""
        t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper
        with np.errstate(all="ignore"):
            S0, P, D0, DT = self.code.init_fn(t0, dt, t0, t1, sp, tuple(P0), n)
        if not np.isfinite(S0).all() or self._negative_start(S0):
            return None
        rings = _rings(self.code, D0, DT, clock, n)
        if rings is None:
            return None
        B0, LAGS = rings
        P = tuple(p if isinstance(p, np.ndarray) else np.asarray(p, dtype=float) for p in P)
        draws = self.draws()
        RT = () if draws is None else draws.tables(P, int(clock.n_steps), r0, n)
        loop = self.loop(clock, solver, outputs, sizes, S0, P, B0, LAGS, RT)
        outs, bad = loop(S0, P, B0, LAGS, RT)
        if bool(np.asarray(bad).any()):
            return None
        return dict(zip(outputs, outs, strict=True))

    def _negative_start(self, S0: np.ndarray) -> bool:
        return any((S0[a:b] < 0).any() for a, b in self.code.layout.non_negative)


def _rings(code: ModelCode, D0: tuple, DT: tuple, clock, n: int) -> tuple[tuple, tuple] | None:
    """The DELAY FIXED ring buffers of a batch, filled with their initial values ((L, *dims, n) each), and the
    lags in steps ((*dims, n) integers): engine.integrate.driver._Pipelines' lags (whole steps, half rounded up,
    1 .. n_steps + 1). L is the longest lag rounded up to a power of two (at most n_steps + 1): the slot a step
    reads is the one written lag steps before whatever L is, and batches whose delay times differ a little share
    one compiled program. None where the numpy loop stops (a delay time that is not finite, a buffer over its
    limit): the caller re-runs the batch on numpy, which says why."""
    from engine.integrate.driver import MAX_PIPELINE_VALUES

    horizon = max(int(clock.n_steps), 1)
    bufs, lags = [], []
    for d, d0, T in zip(code.layout.delay_fixed, D0, DT, strict=True):
        shape = tuple(code.rvars[d].sizes) + (n,)
        T = np.asarray(T, dtype=float)
        if not np.all(np.isfinite(T)):
            return None
        lag = np.clip(np.floor(T / clock.dt + 0.5 + 1e-9), 1, horizon + 1).astype(np.int64)
        longest = int(np.max(lag))
        if longest * int(np.prod(np.broadcast_shapes(np.shape(d0)[:-1] + (n,), np.shape(lag)))) > MAX_PIPELINE_VALUES:
            return None
        length = min(1 << (longest - 1).bit_length(), horizon + 1)
        bufs.append(np.ascontiguousarray(np.broadcast_to(np.asarray(d0, dtype=float), (length, *shape))))
        lags.append(np.ascontiguousarray(np.broadcast_to(lag, shape)))
    return tuple(bufs), tuple(lags)


def _bucket(m: int) -> int:
    """The padded batch size: the next power of two up to 1 024, then the next multiple of 1 024."""
    if m <= 1024:
        return 1 << (m - 1).bit_length()
    return -(-m // 1024) * 1024


def _pad_runs(P0: list, m: int, padded: int) -> list:
    """P0 of m runs extended to ``padded`` runs by repeating the last (a valid run, so no failure)."""
    def pad(a):
        if isinstance(a, np.ndarray) and a.ndim and a.shape[-1] == m and m > 1:
            extra = np.repeat(a[..., -1:], padded - m, axis=-1)
            return np.concatenate([a, extra], axis=-1)
        return a
    return [(p[0], pad(p[1])) if isinstance(p, tuple) else pad(p) for p in P0]


def _feed(h, name: str, value) -> None:
    """Add a global of the generated code to a hash (arrays by their bytes)."""
    h.update(name.encode())
    if isinstance(value, np.ndarray):
        h.update(f"{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, functools.partial):
        h.update(getattr(value.func, "__name__", "").encode())
        for k in sorted(value.keywords):
            _feed(h, k, value.keywords[k])
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _feed(h, str(i), v)
    elif isinstance(value, (types.ModuleType, types.FunctionType)):
        h.update(getattr(value, "__name__", "").encode())
    else:
        h.update(repr(value).encode())
