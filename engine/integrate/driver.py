"""The one loop that owns time: t = t0 + k*dt, saving every saveper.

It initialises the model, calls the solver's ``step`` for every dt, clips
non-negative stocks, advances DELAY FIXED pipelines, stops with a clear error at
the first non-finite state, and stores only the variables asked for.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.compile.model_code import ModelCode
from engine.errors import SimulationError
from engine.integrate.solvers import FIXED_STEP


@dataclass(frozen=True)
class Clock:
    """Time settings of one run, in the model's time unit."""

    t0: float
    t1: float
    dt: float
    saveper: float

    @property
    def n_steps(self) -> int:
        return int(round((self.t1 - self.t0) / self.dt))

    @property
    def save_every(self) -> int:
        return max(1, int(round(self.saveper / self.dt)))

    def save_times(self) -> np.ndarray:
        k = np.arange(0, self.n_steps + 1, self.save_every)
        return self.t0 + k * self.dt


MAX_PIPELINE_VALUES = 250_000_000   # 2 GiB of float64 for all DELAY FIXED buffers of one variable


class _Pipelines:
    """DELAY FIXED ring buffers: output at t is the input at t - delay (Vensim)."""

    def __init__(self, D0: tuple, DT: tuple, dt: float, n: int, n_steps: int, names: list[str]) -> None:
        self.bufs = []
        self.lags = []
        for d0, T, name in zip(D0, DT, names):
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
        for buf, lag in zip(self.bufs, self.lags):
            length = buf.shape[0]
            if np.all(lag == length):
                out.append(buf[self.k % length])
            else:
                idx = (self.k - lag + length) % length  # slot written `lag` steps ago
                out.append(np.take_along_axis(buf, idx[None, ...], axis=0)[0])
        return tuple(out)

    def push(self, inputs: tuple) -> None:
        for buf, x in zip(self.bufs, inputs):
            length = buf.shape[0]
            buf[(self.k + 0) % length] = np.broadcast_to(x, buf.shape[1:])
        self.k += 1


def simulate(code: ModelCode, P0: list, n: int, clock: Clock, method: str,
             outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run a batch of ``n``; returns (save times, {name: array of shape (T, *dims, n)})."""
    return guarded(code, _simulate, code, P0, n, clock, method, outputs, sizes)


def guarded(code: ModelCode, loop, *args):
    """Call a driver loop; a numpy error inside the generated code becomes a SimulationError naming
    the equation it came from, not a traceback."""
    try:
        return loop(*args)
    except (ValueError, IndexError, TypeError, ZeroDivisionError, OverflowError, FloatingPointError,
            np.linalg.LinAlgError) as exc:
        where = _generated_line(code, exc)
        raise SimulationError(f"{code.model.file}: the run failed{where}: {type(exc).__name__}: {exc}") from None


def _generated_line(code: ModelCode, exc: BaseException) -> str:
    import traceback

    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith("<linxiang-sd:"):
            fn = frame.filename.rsplit(":", 1)[-1].rstrip(">")
            lines = code.sources.get(fn, "").splitlines()
            if frame.lineno and frame.lineno <= len(lines):
                text = lines[frame.lineno - 1].strip()
                target = text.split("=", 1)[0].strip()
                name = target[2:] if target.startswith("v_") else target
                rv = code.rvars.get(name)
                if rv is not None:
                    return f" in the equation of {rv.host or name}"
                return f" at `{text[:120]}`"
    return ""


def _simulate(code: ModelCode, P0: list, n: int, clock: Clock, method: str,
              outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    dyn = code.dynamic(outputs)
    lay = code.layout
    t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper
    with np.errstate(all="ignore"):
        S, P, D0, DT = code.init_fn(t0, dt, t0, t1, sp, tuple(P0), n)
    times = clock.save_times()
    store = {o: np.empty((len(times), *sizes[o], n)) for o in outputs}
    nonneg = lay.non_negative
    pipes = _Pipelines(D0, DT, dt, n, clock.n_steps,
                       [code.rvars[d].host or d for d in lay.delay_fixed]) if lay.delay_fixed else None
    D = pipes.outputs() if pipes else ()

    if method == "adaptive":
        if lay.delay_fixed:
            raise SimulationError("DELAY FIXED has no meaning for the adaptive method; use euler, rk2 or rk4")
        return times, _adaptive(code, dyn, S, P, clock, outputs, store, times)

    solver = FIXED_STEP[method]()

    def f(t: float, state: np.ndarray) -> np.ndarray:
        return dyn(t, dt, t0, t1, sp, state, P, D, False)[0]

    save_every, j, n_steps = clock.save_every, 0, clock.n_steps
    with np.errstate(all="ignore"):
        for k in range(n_steps + 1):
            t = t0 + k * dt
            want = k % save_every == 0
            k1, X, outs = dyn(t, dt, t0, t1, sp, S, P, D, want)
            if want:
                for o, v in zip(outputs, outs):
                    store[o][j] = v
                j += 1
            if k == n_steps:
                break
            S_new = solver.step(f, t, S, dt, k1)
            for a, b in nonneg:
                np.maximum(S_new[a:b], 0.0, out=S_new[a:b])
            if not math.isfinite(float(S_new.sum())) and not np.isfinite(S_new).all():
                _raise_non_finite(code, S, P, D, clock, t, S_new)
            if pipes:
                pipes.push(X)
                D = pipes.outputs()
            S = S_new
    _check_outputs(code, store, times)
    return times, store


def _adaptive(code, dyn, S0, P, clock, outputs, store, times) -> dict[str, np.ndarray]:
    from scipy.integrate import solve_ivp  # imported here: scipy takes most of a cold start

    rows, n = S0.shape
    t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper

    nonneg = code.layout.non_negative

    calls = [0]
    limit = 200_000  # right-hand-side evaluations: past this the model is stiff or blowing up

    def fun(t, y):
        calls[0] += 1
        if calls[0] > limit or not np.all(np.isfinite(y)):
            raise _AdaptiveGaveUp(t)
        state = y.reshape(rows, n)
        d = dyn(t, dt, t0, t1, sp, state, P, (), False)[0]
        for a, b in nonneg:  # an empty non-negative stock cannot be drained further
            d[a:b] = np.where((state[a:b] <= 0) & (d[a:b] < 0), 0.0, d[a:b])
        return d.ravel()

    try:
        with np.errstate(all="ignore"):
            sol = solve_ivp(fun, (t0, t1), S0.ravel(), method="RK45", t_eval=times, rtol=1e-8, atol=1e-10)
    except _AdaptiveGaveUp as stop:
        raise SimulationError(
            f"{code.model.file}: the adaptive solver gave up at time {stop.t:g} (the state is not finite, or the "
            f"model needs more than {limit} evaluations: stiff or growing without bound); use euler or rk4") from None
    if not sol.success:
        raise SimulationError(f"the adaptive solver failed: {sol.message}")
    with np.errstate(all="ignore"):
        for j, t in enumerate(times):
            state = sol.y[:, j].reshape(rows, n)
            for a, b in nonneg:  # the solver may overshoot zero by its tolerance
                np.maximum(state[a:b], 0.0, out=state[a:b])
            outs = dyn(t, dt, t0, t1, sp, state, P, (), True)[2]
            for o, v in zip(outputs, outs):
                store[o][j] = v
    _check_outputs(code, store, times)
    return store


class _AdaptiveGaveUp(Exception):
    def __init__(self, t: float) -> None:
        super().__init__(t)
        self.t = t


def _check_outputs(code: ModelCode, store: dict[str, np.ndarray], times: np.ndarray) -> None:
    """Report the first non-finite value: earliest time, then earliest in evaluation order."""
    bad_at: dict[str, int] = {}
    for name, arr in store.items():
        with np.errstate(all="ignore"):
            total = arr.sum()
        if not np.isfinite(total):
            bad = ~np.isfinite(arr)
            bad_at[name] = int(np.argmax(bad.reshape(len(times), -1).any(axis=1)))
    if not bad_at:
        return
    rank = code.evaluation_rank()
    name = min(bad_at, key=lambda n: (bad_at[n], rank.get(n, -1)))
    j = bad_at[name]
    arr = store[name]
    scen = int(np.argmax((~np.isfinite(arr[j])).reshape(-1, arr.shape[-1]).any(axis=0)))
    raise SimulationError(
        f"{code.model.file}: {_display(code, name)}: value is not finite (NaN or infinite) at time "
        f"{times[j]:g} in scenario #{scen}; check divisions by zero (use ZIDZ/XIDZ), LN/LOG of "
        f"non-positive numbers, or growth that overflows")


def _display(code: ModelCode, name: str) -> str:
    rv = code.rvars.get(name)
    if rv is not None and rv.internal:
        return f"{rv.host} (inside a delay/smooth function)"
    return name


def _raise_non_finite(code, S, P, D, clock, t, S_new, runs: np.ndarray | None = None) -> None:
    """Find the first variable, in evaluation order, that is not finite at time t.

    ``runs``: a mask of the runs to look at (those still going); None for all.
    """
    t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper
    names = tuple(n for n in code.rvars if code.phase.get(n) == "dynamic")
    try:
        outs = code.dynamic(names)(t, dt, t0, t1, sp, S, P, D, True)[2]
    except Exception:  # noqa: BLE001 - diagnostics only; fall back to the stock report
        outs = ()

    def bad_runs(value) -> np.ndarray:
        """Per run (last axis), whether any element is not finite; ignored runs are fine."""
        arr = np.asarray(value, dtype=float)
        flat = arr.reshape(-1, arr.shape[-1]) if arr.ndim else arr.reshape(1, 1)
        bad = (~np.isfinite(flat)).any(axis=0)
        if runs is not None and bad.size == runs.size:
            bad = bad & runs
        elif runs is not None and bad.size == 1 and not runs.any():
            bad = bad & False
        return bad

    order = code.evaluation_rank()
    culprits = sorted((n for n, v in zip(names, outs) if bad_runs(v).any()), key=lambda n: order.get(n, -1))
    if culprits:
        name = culprits[0]
        scen = int(np.argmax(bad_runs(outs[names.index(name)])))
        raise SimulationError(
            f"{code.model.file}: {_display(code, name)}: value is not finite (NaN or infinite) at time {t:g} "
            f"in scenario #{scen}; check divisions by zero (use ZIDZ/XIDZ), LN/LOG of non-positive numbers, "
            f"or growth that overflows")
    for s in code.layout.stocks:
        block = S_new[s.start:s.start + s.rows]
        if bad_runs(block).any():
            scen = int(np.argmax(bad_runs(block)))
            raise SimulationError(
                f"{code.model.file}: {_display(code, s.name)}: stock is not finite at time {t + dt:g} in scenario "
                f"#{scen}; its net flow overflowed (a smaller dt or a bounded flow may help)")
    raise SimulationError(f"{code.model.file}: the state became non-finite at time {t + dt:g}")
