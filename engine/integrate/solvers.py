"""Integration methods: Solver objects the one loop (engine.integrate.driver) takes.

Fixed-step methods have a ``step``; the adaptive one (``adaptive = True``) integrates the
whole span itself with scipy's RK45 (for checking the fixed-step ones) and is handed the
batch by the driver.

``f(t, S)`` returns the net flows dS/dt for the packed state S of shape (rows, batch).
``k1`` is f at (t, S), already evaluated by the driver (which also saves outputs
from that evaluation), so Euler costs one evaluation a step and RK4 four.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

Rates = Callable[[float, np.ndarray], np.ndarray]


class Solver(Protocol):
    name: str
    order: int

    def step(self, f: Rates, t: float, S: np.ndarray, dt: float, k1: np.ndarray) -> np.ndarray:
        """State at t + dt (same units as S)."""


class Euler:
    """Forward Euler, Vensim's default: S + dt * f(t, S)."""

    name = "euler"
    order = 1

    def step(self, f: Rates, t: float, S: np.ndarray, dt: float, k1: np.ndarray) -> np.ndarray:
        return S + dt * k1


class RK2:
    """Heun's method (explicit trapezoid), second order."""

    name = "rk2"
    order = 2

    def step(self, f: Rates, t: float, S: np.ndarray, dt: float, k1: np.ndarray) -> np.ndarray:
        k2 = f(t + dt, S + dt * k1)
        return S + (0.5 * dt) * (k1 + k2)


class RK4:
    """The classic fourth-order Runge-Kutta method (as Vensim's RK4 Fixed)."""

    name = "rk4"
    order = 4

    def step(self, f: Rates, t: float, S: np.ndarray, dt: float, k1: np.ndarray) -> np.ndarray:
        h = 0.5 * dt
        k2 = f(t + h, S + h * k1)
        k3 = f(t + h, S + h * k2)
        k4 = f(t + dt, S + dt * k3)
        return S + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)


class Adaptive:
    """scipy's RK45 (Dormand-Prince) with rtol 1e-8, atol 1e-10, evaluated at the save times."""

    name = "adaptive"
    order = 5
    adaptive = True
    MAX_EVALUATIONS = 200_000   # right-hand-side evaluations: past this the model is stiff or blowing up

    def solve(self, code, P0: list, n: int, clock, outputs: tuple[str, ...], sizes: dict, throw: bool,
              labels: list[str]):
        """Integrate the batch over the clock's span; returns (times, store, failures) as the driver."""
        from scipy.integrate import solve_ivp  # imported here: scipy takes most of a cold start

        from engine.errors import SimulationError
        from engine.integrate.driver import _blank_failed, _check_outputs, _Status
        from engine.results import RunStatus

        if getattr(clock, "reads", ()):
            raise SimulationError(f"{code.model.file}: the time settings are equations, which needs a fixed-step "
                                  f"method (euler, rk2 or rk4), not adaptive")
        if code.layout.delay_fixed:
            raise SimulationError("DELAY FIXED has no meaning for the adaptive method; use euler, rk2 or rk4")
        status = _Status(code, n, throw, labels)
        t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper
        with np.errstate(all="ignore"):
            S0, P, _D0, _DT = code.init_fn(t0, dt, t0, t1, sp, tuple(P0), n)
        times = clock.save_times()
        store = {o: np.empty((len(times), *sizes[o], n)) for o in outputs}
        dyn = code.dynamic(outputs)
        rows = S0.shape[0]
        nonneg = code.layout.non_negative
        calls = [0]
        from engine import limits, progress

        report = progress.hook(lambda: limits.progress_work(clock.n_steps, n, code.rvars))
        span = (t1 - t0) or 1.0

        def fun(t, y):
            calls[0] += 1
            if report is not None:
                report((t - t0) / span)
            if calls[0] > self.MAX_EVALUATIONS or not np.all(np.isfinite(y)):
                raise _GaveUp(t)
            state = y.reshape(rows, n)
            d = dyn(t, dt, t0, t1, sp, state, P, (), False)[0]
            for a, b in nonneg:  # an empty non-negative stock cannot be drained further
                d[a:b] = np.where((state[a:b] <= 0) & (d[a:b] < 0), 0.0, d[a:b])
            return d.ravel()

        try:
            with np.errstate(all="ignore"):
                sol = solve_ivp(fun, (t0, t1), S0.ravel(), method="RK45", t_eval=times, rtol=1e-8, atol=1e-10)
            if not sol.success:
                raise SimulationError(f"the adaptive solver failed: {sol.message}")
        except _GaveUp as stop:
            why = (f"(the state is not finite, or the model needs more than {self.MAX_EVALUATIONS} evaluations: "
                   f"stiff or growing without bound); use euler or rk4")
            if throw:
                raise SimulationError(
                    f"{code.model.file}: the adaptive solver gave up at time {stop.t:g} {why}") from None
            cause = f"the adaptive solver gave up {why}"
            # one solver drives the whole batch: every run stops where it gave up
            for run in range(n):
                status.fail(run, "the state", cause, stop.t, RunStatus.GUARD)
            store = {o: np.full((len(times), *sizes[o], n), np.nan) for o in outputs}
            return times, store, list(status.failures.values())
        with np.errstate(all="ignore"):
            for j, t in enumerate(times):
                state = sol.y[:, j].reshape(rows, n)
                for a, b in nonneg:  # the solver may overshoot zero by its tolerance
                    np.maximum(state[a:b], 0.0, out=state[a:b])
                outs = dyn(t, dt, t0, t1, sp, state, P, (), True)[2]
                for o, v in zip(outputs, outs, strict=True):
                    store[o][j] = v
        _check_outputs(code, store, times, status)
        _blank_failed(store, times, status, None)
        return times, store, list(status.failures.values())


class _GaveUp(Exception):
    def __init__(self, t: float) -> None:
        super().__init__(t)
        self.t = t


FIXED_STEP: dict[str, type] = {"euler": Euler, "rk2": RK2, "rk4": RK4}
SOLVERS: dict[str, type] = {**FIXED_STEP, "adaptive": Adaptive}
METHODS = ("euler", "rk2", "rk4", "adaptive")


def solver_for(method: str):
    """The Solver object for a method name (euler, rk2, rk4, adaptive)."""
    return SOLVERS[method]()
