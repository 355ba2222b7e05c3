"""The one integration loop, as diffrax's ``diffeqsolve(terms, solver, ..., stepsize_controller, saveat)``.

``simulate(code, P0, n, clock, solver, ...)`` initialises the model, then repeats: evaluate the
flows (and the saved variables on saving steps), let the Clock read the time settings, save,
stop at the end, take the Solver's step, clip non-negative stocks, check that the state is
finite, and advance the DELAY FIXED pipelines. The Clock (``Clock`` here: time settings are
numbers; ``engine.integrate.dynamic_clock.DynamicClock``: they are equations) owns time; the
Solver (``engine.integrate.solvers``) owns the step. Nothing else differs between them.

Failures: with ``throw`` a non-finite value raises ``SimulationError`` naming the variable, the
time and the run (the CLI's behaviour). Without it a failing run stops (its state is frozen, its
saved values are NaN from the failure time on) and the others go on; the failures come back as
``RunFailure`` records (engine.results).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine import limits, progress
from engine.compile.model_code import ModelCode
from engine.errors import SimulationError
from engine.results import RunFailure, RunStatus

MAX_PIPELINE_VALUES = 250_000_000   # 2 GiB of float64 for all DELAY FIXED buffers of one variable
_ADVICE = "check divisions by zero (use ZIDZ/XIDZ), LN/LOG of non-positive numbers, or growth that overflows"


@dataclass(frozen=True)
class Clock:
    """Time settings that are numbers, model time units: t = t0 + k*dt, saving every saveper."""

    t0: float
    t1: float
    dt: float
    saveper: float

    @property
    def n_steps(self) -> int:
        return round((self.t1 - self.t0) / self.dt)

    @property
    def save_every(self) -> int:
        return max(1, round(self.saveper / self.dt))

    def save_times(self) -> np.ndarray:
        k = np.arange(0, self.n_steps + 1, self.save_every)
        return self.t0 + k * self.dt

    # -- the protocol the loop uses (DynamicClock implements the same) --
    reads: tuple[str, ...] = ()    # variables the clock reads every step (none: its settings are numbers)

    def begin(self, code: ModelCode, P0: list, n: int) -> tuple[float, float, float, float]:
        """(t0, dt, t1, saveper) at the start."""
        return self.t0, self.dt, self.t1, self.saveper

    def n_saves(self) -> int | None:
        return len(range(0, self.n_steps + 1, self.save_every))

    def horizon(self) -> int:
        """Steps a DELAY FIXED buffer may need to cover."""
        return self.n_steps

    def saves(self, k: int, t: float) -> bool:
        return k % self.save_every == 0

    def read(self, outs, k: int, t: float, alive: np.ndarray):
        return None

    def ended(self, k: int, t: float) -> np.ndarray | bool:
        """True when every run has ended, else a per-run mask of the runs that have ended (or False)."""
        return k >= self.n_steps

    def time(self, k: int) -> float:
        return self.t0 + k * self.dt

    def settings(self) -> tuple[float, float, float, float]:
        """(dt, t0, t1, saveper) as the step function sees them now."""
        return self.dt, self.t0, self.t1, self.saveper


class _Pipelines:
    """DELAY FIXED ring buffers: output at t is the input at t - delay (Vensim)."""

    def __init__(self, D0: tuple, DT: tuple, dt: float, n: int, n_steps: int, names: list[str]) -> None:
        self.bufs = []
        self.lags = []
        for d0, T, name in zip(D0, DT, names, strict=True):
            T = np.asarray(T, dtype=float)
            if not np.all(np.isfinite(T)):
                raise SimulationError(f"{name}: the delay time of DELAY FIXED is not a finite number")
            # whole steps, half rounded up (as Vensim: a delay of 2.5 steps holds 3), at least one; a
            # delay longer than the run holds the initial value throughout, so no longer buffer is needed
            steps = np.clip(np.floor(T / dt + 0.5 + 1e-9), 1, n_steps + 1)
            lag = steps.astype(int)
            length = int(np.max(lag))
            shape = np.broadcast_shapes(np.shape(d0)[:-1] + (n,), np.shape(lag))
            if length * math.prod(shape) > MAX_PIPELINE_VALUES:
                raise SimulationError(f"{name}: DELAY FIXED of {length} steps over {math.prod(shape)} values needs "
                                      f"a buffer of {length * math.prod(shape) * 8 / 2**30:.1f} GiB; use a shorter "
                                      f"delay, a larger TIME STEP or a smaller batch")
            buf = np.empty((length,) + shape)
            buf[:] = np.broadcast_to(d0, shape)
            self.bufs.append(buf)
            self.lags.append(np.broadcast_to(lag, shape))
        self.k = 0

    def outputs(self) -> tuple:
        out = []
        for buf, lag in zip(self.bufs, self.lags, strict=True):
            length = buf.shape[0]
            if np.all(lag == length):
                out.append(buf[self.k % length])
            else:
                idx = (self.k - lag + length) % length  # slot written `lag` steps ago
                out.append(np.take_along_axis(buf, idx[None, ...], axis=0)[0])
        return tuple(out)

    def push(self, inputs: tuple) -> None:
        for buf, x in zip(self.bufs, inputs, strict=True):
            length = buf.shape[0]
            buf[self.k % length] = np.broadcast_to(x, buf.shape[1:])
        self.k += 1


class _Store:
    """Saved values: preallocated when the clock knows how many saves there are, else grown."""

    def __init__(self, outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]], n: int,
                 count: int | None) -> None:
        self.outputs, self.sizes, self.n = outputs, sizes, n
        self.times: list[float] = []
        self.fixed = count is not None
        if self.fixed:
            self.arrays = {o: np.empty((count or 0, *sizes[o], n)) for o in outputs}
        else:
            self.rows: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
        self.ended: list[np.ndarray | None] = []   # per save: runs that had ended before it (None: none)

    def add(self, t: float, outs: tuple, ended: np.ndarray | None) -> None:
        j = len(self.times)
        self.times.append(t)
        self.ended.append(ended)
        if self.fixed:
            for o, v in zip(self.outputs, outs, strict=True):
                self.arrays[o][j] = v
        else:
            for o, v in zip(self.outputs, outs, strict=True):
                self.rows[o].append(np.array(np.broadcast_to(v, (*self.sizes[o], self.n))))

    def finish(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        times = np.asarray(self.times, dtype=float)
        if self.fixed:
            m = len(self.times)
            return times, {o: a[:m] for o, a in self.arrays.items()}
        return times, {o: np.stack(r) if r else np.empty((0, *self.sizes[o], self.n)) for o, r in self.rows.items()}


def guarded(code: ModelCode, loop, *args, **kwargs):
    """Call a driver loop; a numpy error inside the generated code becomes a SimulationError naming
    the equation it came from, not a traceback. The error carries ``variable`` (or None) and
    ``partial`` (the time it happened and what had been saved), for per-run status."""
    try:
        return loop(*args, **kwargs)
    except (ValueError, IndexError, TypeError, ZeroDivisionError, OverflowError, FloatingPointError,
            np.linalg.LinAlgError) as exc:
        name = _generated_variable(code, exc)
        where = f" in the equation of {name}" if name else _generated_line(code, exc)
        err = SimulationError(f"{code.model.file}: the run failed{where}: {type(exc).__name__}: {exc}")
        err.variable, err.partial = name, getattr(exc, "partial", None)
        raise err from None
    except SimulationError as exc:
        if exc.variable is None:
            exc.variable = _generated_variable(code, exc)
        raise


def _generated_frame(code: ModelCode, exc: BaseException) -> str | None:
    """The generated source line the exception passed through, innermost first."""
    import traceback

    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith("<linxiang-sd:"):
            fn = frame.filename.rsplit(":", 1)[-1].rstrip(">")
            lines = code.sources.get(fn, "").splitlines()
            if frame.lineno and frame.lineno <= len(lines):
                return lines[frame.lineno - 1].strip()
    return None


def _generated_variable(code: ModelCode, exc: BaseException) -> str | None:
    text = _generated_frame(code, exc)
    if text is None:
        return None
    target = text.split("=", 1)[0].strip()
    name = target.removeprefix("v_")
    rv = code.rvars.get(name)
    return (rv.host or name) if rv is not None else None


def _generated_line(code: ModelCode, exc: BaseException) -> str:
    text = _generated_frame(code, exc)
    return f" at `{text[:120]}`" if text is not None else ""


def simulate(code: ModelCode, P0: list, n: int, clock, solver, outputs: tuple[str, ...],
             sizes: dict[str, tuple[int, ...]], throw: bool = True, labels: list[str] | None = None
             ) -> tuple[np.ndarray, dict[str, np.ndarray], list[RunFailure]]:
    """Run a batch of ``n`` with a Clock and a Solver.

    Returns (save times, {name: array (T, *dims, n)}, failures). ``throw``: raise on the first
    non-finite value (else record it and stop only that run). ``labels``: the runs' names, for
    the failure records.
    """
    labels = labels if labels is not None else [str(i) for i in range(n)]
    if getattr(solver, "adaptive", False):
        return guarded(code, solver.solve, code, P0, n, clock, outputs, sizes, throw, labels)
    try:
        return guarded(code, _loop, code, P0, n, clock, solver, outputs, sizes, throw, labels)
    except SimulationError as exc:
        # a guard stopped the whole batch (an error raised inside the step: a builtin's rule, a numpy
        # error): without throw, find the run(s) by halving; only a fixed clock can be split this way
        if throw or clock.reads:
            raise
        if n == 1:
            return _guard_failure(code, clock, outputs, sizes, labels, exc)
    h = n // 2
    parts = [simulate(code, _take_runs(P0, sl, n), m, clock, solver, outputs, sizes, False, labels[sl])
             for sl, m in ((slice(0, h), h), (slice(h, n), n - h))]
    times = parts[0][0]
    store = {o: np.concatenate([p[1][o] for p in parts], axis=-1) for o in outputs}
    failures = parts[0][2] + [RunFailure(f.run + h, f.label, f.variable, f.time, f.cause, f.status)
                              for f in parts[1][2]]
    return times, store, failures


def _take_runs(P0: list, sl: slice, n: int) -> list:
    """The parameter tuple of runs ``sl`` of a batch of n (a value with a batch axis of 1 is shared)."""
    def take(a):
        return a[..., sl] if isinstance(a, np.ndarray) and a.ndim and a.shape[-1] == n and n > 1 else a
    return [(p[0], take(p[1])) if isinstance(p, tuple) else take(p) for p in P0]


def _guard_failure(code: ModelCode, clock: Clock, outputs, sizes, labels, exc: SimulationError):
    """One run stopped by a guard: what it saved before, NaN after, and its failure record."""
    times = clock.save_times()
    store = {o: np.full((len(times), *sizes[o], 1), np.nan) for o in outputs}
    t = clock.t0
    if exc.partial is not None:
        t, saved = exc.partial
        for o in outputs:
            m = min(len(saved[o]), len(times))
            store[o][:m] = saved[o][:m]
    prefix = f"{code.model.file}: "
    cause = str(exc).removeprefix(prefix)
    failure = RunFailure(0, labels[0], exc.variable or "the run", float(t), cause, RunStatus.GUARD)
    _blank_failed(store, times, _StatusView([failure]), None)  # type: ignore[arg-type]  # the fields it reads
    return times, store, [failure]


class _StatusView:
    def __init__(self, failures: list[RunFailure]) -> None:
        self.failures = {f.run: f for f in failures}


class _Status:
    """Which runs have failed, when and why; raises instead when ``throw``."""

    def __init__(self, code: ModelCode, n: int, throw: bool, labels: list[str]) -> None:
        self.code, self.n, self.throw, self.labels = code, n, throw, labels
        self.failed = np.zeros(n, dtype=bool)
        self.failures: dict[int, RunFailure] = {}

    def fail(self, run: int, variable: str, cause: str, t: float, status: RunStatus) -> None:
        if self.throw:
            raise SimulationError(f"{self.code.model.file}: {variable}: {cause} at time {t:g} in scenario "
                                  f"#{run}{self._label(run)}; {_advice(status)}")
        if run not in self.failures:
            self.failures[run] = RunFailure(run, self.labels[run], variable, float(t), cause, status)
            self.failed[run] = True

    def _label(self, run: int) -> str:
        label = self.labels[run]
        return "" if label == str(run) else f" ({label})"


def _advice(status: RunStatus) -> str:
    if status == RunStatus.STOCK_OVERFLOW:
        return "its net flow overflowed (a smaller dt or a bounded flow may help)"
    if status == RunStatus.NEGATIVE_STOCK:
        return "give it a non-negative initial value, or drop non_negative"
    return _ADVICE


def _loop(code: ModelCode, P0: list, n: int, clock, solver, outputs: tuple[str, ...],
          sizes: dict[str, tuple[int, ...]], throw: bool, labels: list[str]
          ) -> tuple[np.ndarray, dict[str, np.ndarray], list[RunFailure]]:
    lay = code.layout
    status = _Status(code, n, throw, labels)
    t0, dt, t1, sp = clock.begin(code, P0, n)
    with np.errstate(all="ignore"):
        S, P, D0, DT = code.init_fn(t0, dt, t0, t1, sp, tuple(P0), n)
    _check_start(code, S, t0, status)
    pipes = None
    if lay.delay_fixed:
        pipes = _Pipelines(D0, DT, dt, n, max(clock.horizon(), 1),
                           [code.rvars[d].host or d for d in lay.delay_fixed])
    D = pipes.outputs() if pipes else tuple(D0)
    store = _Store(outputs, sizes, n, clock.n_saves())
    reads = clock.reads
    # every step evaluates the flows (and what the clock reads); the saved variables only on saving steps
    dyn_save = code.dynamic(tuple(outputs) + reads)
    dyn_clock = code.dynamic(reads) if reads else None
    dyn_rates = code.dynamic(())
    nonneg = lay.non_negative
    ended = np.zeros(n, dtype=bool)       # runs past their FINAL TIME (dynamic clocks)
    frozen = status.failed | ended
    any_frozen = bool(frozen.any())
    k, t = 0, t0
    # progress (engine.progress): None unless someone listens, so a run without a listener pays one test a step
    report = progress.hook(lambda: limits.progress_work(clock.horizon(), n, code.rvars))

    def f(tt: float, state: np.ndarray) -> np.ndarray:
        return dyn_rates(tt, *settings, state, P, D, False)[0]

    try:
        with np.errstate(all="ignore"):
            while True:
                if dyn_clock is not None:
                    k1, X = _read_clock(code, dyn_clock, clock, k, t, S, P, D, ~frozen, pipes is not None)
                settings = clock.settings()
                if clock.saves(k, t):
                    k1, X, outs = dyn_save(t, *settings, S, P, D, True)
                    store.add(t, outs[:len(outputs)], ended.copy() if ended.any() else None)
                elif dyn_clock is None:
                    k1, X, _ = dyn_save(t, *settings, S, P, D, False)
                done = clock.ended(k, t)
                if done is True:
                    break
                if done is not False:
                    ended = ended | done
                    if ended.all():
                        break
                    frozen = status.failed | ended
                    any_frozen = bool(frozen.any())
                S_new = solver.step(f, t, S, settings[0], k1)
                _settle(S, S_new, nonneg, frozen if any_frozen else None)
                if not math.isfinite(float(S_new.sum())) and not np.isfinite(S_new).all():
                    _non_finite_state(code, S, P, D, settings, t, S_new, ~frozen, status)
                    S_new[:, status.failed] = S[:, status.failed]
                    frozen = status.failed | ended
                    any_frozen = bool(frozen.any())
                if pipes:
                    pipes.push(X)
                    D = pipes.outputs()
                S = S_new
                k += 1
                t = clock.time(k)
                if report is not None:
                    report((t - t0) / ((settings[2] - t0) or 1.0))
    except Exception as exc:
        exc.partial = (t, store.finish()[1])  # type: ignore[attr-defined]  # read by _guard_failure
        raise
    times, arrays = store.finish()
    ended_at = _ended_mask(store, n)
    _check_outputs(code, arrays, times, status, ended_at)
    _blank_failed(arrays, times, status, ended_at)
    return times, arrays, list(status.failures.values())


def _read_clock(code: ModelCode, dyn_clock, clock, k: int, t: float, S: np.ndarray, P, D, live: np.ndarray,
                has_pipes: bool) -> tuple:
    """A dynamic clock reads its time settings at step k; where the step changes, the variables are evaluated
    again at this time (STEP and PULSE read the new step already, as PySD). Returns (flows, DELAY FIXED inputs)."""
    k1, X, c_outs = dyn_clock(t, *clock.settings(), S, P, D, True)
    if clock.read(c_outs, k, t, live):
        if has_pipes:
            raise SimulationError(f"{code.model.file}: DELAY FIXED needs a constant TIME STEP")
        k1, X, c_outs = dyn_clock(t, *clock.settings(), S, P, D, True)
    return k1, X


def _settle(S: np.ndarray, S_new: np.ndarray, nonneg, frozen: np.ndarray | None) -> None:
    """Clip the non-negative stocks' rows at 0 in place; an ended or failed run (``frozen``) keeps its last state."""
    for a, b in nonneg:
        np.maximum(S_new[a:b], 0.0, out=S_new[a:b])
    if frozen is not None:
        S_new[:, frozen] = S[:, frozen]


def _check_start(code: ModelCode, S: np.ndarray, t0: float, status: _Status) -> None:
    """A non-negative stock that starts below zero is a failure of its run (it would be clipped silently)."""
    for s in code.layout.stocks:
        if not code.rvars[s.name].non_negative:
            continue
        block = S[s.start:s.start + s.rows]
        bad = (block < 0).any(axis=0)
        for run in np.flatnonzero(bad):
            status.fail(int(run), _display(code, s.name),
                        f"non-negative stock starts below zero ({float(block[:, run].min()):g})", t0,
                        RunStatus.NEGATIVE_STOCK)


def _ended_mask(store: _Store, n: int) -> np.ndarray | None:
    """(T, n): runs that had ended before each save (dynamic FINAL TIME), or None when none had."""
    if not any(e is not None for e in store.ended):
        return None
    none = np.zeros(n, dtype=bool)
    return np.stack([none if e is None else e for e in store.ended])


def _blank_failed(arrays: dict[str, np.ndarray], times: np.ndarray, status: _Status,
                  ended_at: np.ndarray | None) -> None:
    """NaN where a run had ended (dynamic FINAL TIME) and from each failed run's failure time on."""
    for f in status.failures.values():
        later = times >= f.time - 1e-12 * max(1.0, abs(f.time))
        for a in arrays.values():
            a[later, ..., f.run] = np.nan
    if ended_at is not None:
        for a in arrays.values():
            mask = ended_at.reshape((len(times),) + (1,) * (a.ndim - 2) + (ended_at.shape[1],))
            a[np.broadcast_to(mask, a.shape)] = np.nan


def _check_outputs(code: ModelCode, store: dict[str, np.ndarray], times: np.ndarray, status: _Status,
                   ended_at: np.ndarray | None = None) -> None:
    """Report each run's first non-finite saved value: earliest time, then earliest in evaluation order.
    Values of runs that had ended, or after a run's recorded failure, are not looked at."""
    n = status.n
    valid = np.ones((len(times), n), dtype=bool)
    if ended_at is not None:
        valid &= ~ended_at
    for f in status.failures.values():
        valid[times >= f.time - 1e-12 * max(1.0, abs(f.time)), f.run] = False
    first: dict[str, np.ndarray] = {}   # name -> (n,) first bad save index, or len(times)
    for name, arr in store.items():
        with np.errstate(all="ignore"):
            total = arr.sum()
        if np.isfinite(total):
            continue
        bad = (~np.isfinite(arr)).reshape(len(times), -1, arr.shape[-1]).any(axis=1) & valid  # (T, n)
        if bad.any():
            first[name] = np.where(bad.any(axis=0), np.argmax(bad, axis=0), len(times))
    if not first:
        return
    rank = code.evaluation_rank()
    # throw: the earliest time, then evaluation order, then the first run (as before per-run status)
    order = sorted(((int(j.min()), rank.get(name, -1), name) for name, j in first.items()))
    if status.throw:
        j, _, name = order[0]
        run = int(np.argmax(first[name] == j))
        status.fail(run, _display(code, name), "value is not finite (NaN or infinite)", times[j],
                    RunStatus.NON_FINITE)
    for run in range(n):
        best = min(((int(js[run]), rank.get(name, -1), name) for name, js in first.items() if js[run] < len(times)),
                   default=None)
        if best is not None:
            status.fail(run, _display(code, best[2]), "value is not finite (NaN or infinite)", times[best[0]],
                        RunStatus.NON_FINITE)


def _display(code: ModelCode, name: str) -> str:
    rv = code.rvars.get(name)
    if rv is not None and rv.internal:
        return f"{rv.host} (inside a delay/smooth function)"
    return name


def _non_finite_state(code: ModelCode, S, P, D, settings, t: float, S_new, runs: np.ndarray,
                      status: _Status) -> None:
    """The state became non-finite between t and t + dt in some of ``runs`` (a mask of runs still going):
    blame, per run, the first variable in evaluation order that is not finite at t, else the stock."""
    dt = settings[0]
    names = tuple(n for n in code.rvars if code.phase.get(n) == "dynamic")
    try:
        outs = code.dynamic(names)(t, *settings, S, P, D, True)[2]
    except Exception:  # noqa: BLE001 - diagnostics only; fall back to the stock report
        outs = ()
    n = status.n

    def bad_runs(value) -> np.ndarray:
        """Per run (last axis), whether any element is not finite, among ``runs``."""
        arr = np.asarray(value, dtype=float)
        flat = arr.reshape(-1, arr.shape[-1]) if arr.ndim else arr.reshape(1, 1)
        bad = (~np.isfinite(flat)).any(axis=0)
        return np.broadcast_to(bad, (n,)) & runs

    state_bad = (~np.isfinite(S_new)).any(axis=0) & runs
    order = code.evaluation_rank()
    culprits = sorted((nm for nm, v in zip(names, outs, strict=True) if bad_runs(v).any()),
                      key=lambda nm: order.get(nm, -1))
    blamed = np.zeros(n, dtype=bool)
    for name in culprits:   # the first in evaluation order is the one thrown
        for run in np.flatnonzero(bad_runs(outs[names.index(name)]) & ~blamed):
            status.fail(int(run), _display(code, name), "value is not finite (NaN or infinite)", t,
                        RunStatus.NON_FINITE)
            blamed[run] = True
    for s in code.layout.stocks:
        block = S_new[s.start:s.start + s.rows]
        for run in np.flatnonzero(bad_runs(block) & ~blamed):
            status.fail(int(run), _display(code, s.name), "stock is not finite", t + dt, RunStatus.STOCK_OVERFLOW)
            blamed[run] = True
    for run in np.flatnonzero(state_bad & ~blamed):
        status.fail(int(run), "the state", "value is not finite", t + dt, RunStatus.STOCK_OVERFLOW)
