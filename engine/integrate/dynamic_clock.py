"""The driver's loop for models whose time settings are equations.

Vensim lets FINAL TIME, TIME STEP, SAVEPER (and INITIAL TIME) be equations that change
during the run: a run that stops when a condition is met, a finer step once something
starts to move fast. ``[time]`` holds such a field as an equation and the parser turns
it into an auxiliary (``FINAL_TIME``, ``TIME_STEP``, ``SAVEPER``, ``INITIAL_TIME``),
evaluated every step in the model's build-time order like any other.

The rules (those of Vensim and PySD, checked against the SDXorg test-models
``control_vars`` and ``dynamic_final_time``):

- INITIAL TIME is read once, at the start (an equation of Time is solved for the time at
  which it gives itself, from 0); later values are reported, not used.
- A run goes on while ``Time + TIME STEP * 1e-5 < FINAL TIME``, FINAL TIME read at the
  current time. FINAL TIME may differ between the runs of a batch: a run that has ended
  keeps its state and its saved values are NaN from then on, while the others go on.
- TIME STEP and SAVEPER are read every step and must be equal across the runs still going
  (one clock drives one array operation per equation); where they differ, an error says
  so and the runs must be made in separate batches. The time stays exact: within a
  stretch of constant step, ``t = t_s + (k - k_s) * dt``, restarting the count where the
  step changes; STEP and PULSE see the new step from that time on.
- Numbers given to ``run`` cannot replace a setting that is an equation (the equations
  that use TIME STEP or FINAL TIME would still see the equation's value): change the
  equation, or the constants it reads.
- A value is saved when ``Time - INITIAL TIME`` is a multiple of the current SAVEPER
  (to 1e-5 of a step).

Fixed-step methods only: the adaptive solver chooses its own steps.
"""
from __future__ import annotations

import math

import numpy as np

from engine.compile.model_code import ModelCode
from engine.errors import SimulationError
from engine.integrate.solvers import FIXED_STEP

RPREC = 1e-5          # of a step: tolerance for reaching FINAL TIME and for save times (PySD's)
MAX_STEPS = 1_000_000  # a FINAL TIME that keeps moving away would otherwise never end
_LABEL = {"start": "INITIAL TIME", "stop": "FINAL TIME", "dt": "TIME STEP", "saveper": "SAVEPER"}


def _uniform(code: ModelCode, field: str, value, t: float | None, positive: bool = True,
             alive: np.ndarray | None = None) -> float:
    """One number for the whole batch (the runs still going), or a SimulationError naming the setting.
    ``t``: the time, for messages (None: at the start)."""
    v = np.asarray(value, dtype=float)
    label = _LABEL[field]
    when = "at the start" if t is None else f"at time {t:g}"
    if v.size == 1:   # the usual case, kept cheap: it runs every step
        x = float(v.reshape(-1)[0])
    else:
        v = v.reshape(-1)
        if alive is not None and v.size == alive.size:
            v = v[alive]
        if not np.all(np.isfinite(v)):
            raise SimulationError(f"{code.model.file}: {label} is not a finite number {when}")
        if np.any(v != v[0]):
            raise SimulationError(
                f"{code.model.file}: {label} differs between the runs of the batch {when} "
                f"({v.min():g} to {v.max():g}); one clock drives a batch, so run groups with the same "
                f"{label} separately")
        x = float(v[0])
    if not math.isfinite(x):
        raise SimulationError(f"{code.model.file}: {label} is not a finite number {when}")
    if positive and x <= 0:
        raise SimulationError(f"{code.model.file}: {label} must be positive; it is {x:g} {when}")
    return x


class _Controls:
    """Reads the dynamic time settings out of one evaluation of the step function."""

    def __init__(self, code: ModelCode, fixed: dict[str, float]) -> None:
        self.code = code
        self.fields = {f: v for f, v in code.model.time.dynamic.items() if f not in fixed}
        self.fixed = fixed          # settings given as numbers (or overridden for this run)
        self.slots = {f: i - len(self.fields) for i, f in enumerate(self.fields)}  # from the end of outputs

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.fields.values())

    def read(self, outs: tuple, t: float, alive: np.ndarray) -> tuple[float, float, np.ndarray | float, float]:
        """(dt, saveper, final time: a number or one per run, the latest final time) at time t."""
        slots = self.slots
        dt = _uniform(self.code, "dt", outs[slots["dt"]], t, alive=alive) if "dt" in slots else self.fixed["dt"]
        sp = (_uniform(self.code, "saveper", outs[slots["saveper"]], t, alive=alive) if "saveper" in slots
              else self.fixed["saveper"])
        if "stop" not in slots:
            t1 = self.fixed["stop"]
            return dt, sp, t1, t1
        t1 = np.asarray(outs[slots["stop"]], dtype=float)
        if t1.size == 1:
            t1 = float(t1.reshape(-1)[0])
            if not math.isfinite(t1):
                raise SimulationError(f"{self.code.model.file}: FINAL TIME is not a finite number at time {t:g}")
            return dt, sp, t1, t1
        t1 = t1.reshape(-1)
        if not np.all(np.isfinite(t1[alive] if t1.size == alive.size else t1)):
            raise SimulationError(f"{self.code.model.file}: FINAL TIME is not a finite number at time {t:g}")
        return dt, sp, t1, float(np.max(t1))


def _start_outputs(D0: tuple) -> tuple:
    # DELAY FIXED pipelines hold their initial value at the start
    return tuple(D0)


def start_values(code: ModelCode, P0: list, n: int, fixed: dict[str, float]) -> dict[str, float]:
    """Every time setting's value at the start of a run, model time units.

    ``fixed`` holds the settings given as numbers; the others are evaluated. FINAL TIME
    may differ per run; its largest value is returned.
    """
    ctl = _Controls(code, fixed)
    dyn = code.dynamic(ctl.names)
    g = fixed.get("start", 0.0)
    guess = {"dt": fixed.get("dt", 1.0), "stop": fixed.get("stop", g + 1.0), "saveper": fixed.get("saveper", 1.0)}
    start_dynamic = "start" in ctl.fields
    for _ in range(50):
        with np.errstate(all="ignore"):
            S, P, D0, _DT = code.init_fn(g, guess["dt"], g, guess["stop"], guess["saveper"], tuple(P0), n)
            outs = dyn(g, guess["dt"], g, guess["stop"], guess["saveper"], S, P, _start_outputs(D0), True)[2]
        got = dict(zip(ctl.fields, outs))
        new = {"dt": guess["dt"], "stop": guess["stop"], "saveper": guess["saveper"]}
        if "dt" in got:
            new["dt"] = _uniform(code, "dt", got["dt"], None)
        if "saveper" in got:
            new["saveper"] = _uniform(code, "saveper", got["saveper"], None)
        if "stop" in got:
            stop = np.asarray(got["stop"], dtype=float)
            if not np.all(np.isfinite(stop)):
                raise SimulationError(f"{code.model.file}: FINAL TIME is not a finite number at the start")
            new["stop"] = float(np.max(stop))
        start = _uniform(code, "start", got["start"], None, positive=False) if start_dynamic else g
        if not math.isfinite(new["dt"] + new["saveper"] + start):
            raise SimulationError(f"{code.model.file}: the time settings are not finite numbers at the start")
        settled = new == guess and math.isclose(start, g, rel_tol=1e-12, abs_tol=1e-12)
        guess, g = new, start
        if settled:
            return {"start": g, **guess}
    raise SimulationError(
        f"{code.model.file}: the time settings do not settle at the start (INITIAL TIME depends on Time, or "
        f"the settings on each other, without a fixed point); give INITIAL TIME a number")


def check_fixed(code: ModelCode, fixed: dict[str, float]) -> None:
    """The settings given as numbers (in [time] or to ``run``), checked as the fixed clock checks them."""
    file = code.model.file
    for f, v in fixed.items():
        if not math.isfinite(v):
            raise SimulationError(f"{file}: {_LABEL[f]} must be a finite number, got {v}")
    for f in ("dt", "saveper"):
        if f in fixed and fixed[f] <= 0:
            raise SimulationError(f"{file}: {_LABEL[f]} must be positive, got {fixed[f]:g}")
    if "start" in fixed and "stop" in fixed and fixed["stop"] < fixed["start"]:
        raise SimulationError(f"{file}: FINAL TIME ({fixed['stop']:g}) is before INITIAL TIME ({fixed['start']:g})")
    if "dt" in fixed and "saveper" in fixed:
        ratio = fixed["saveper"] / fixed["dt"]
        if abs(ratio - round(ratio)) > 1e-6 or ratio < 1 - 1e-9:
            raise SimulationError(f"{file}: SAVEPER ({fixed['saveper']:g}) must be a multiple of TIME STEP "
                                  f"({fixed['dt']:g})")


def simulate_dynamic(code: ModelCode, P0: list, n: int, fixed: dict[str, float], method: str,
                     outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]]
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run a batch whose clock is read from the model every step; as ``driver.simulate``."""
    from engine.integrate.driver import Clock, _check_outputs, _Pipelines, _raise_non_finite

    if method not in FIXED_STEP:
        raise SimulationError(f"{code.model.file}: the time settings are equations, which needs a fixed-step "
                              f"method (euler, rk2 or rk4), not {method}")
    check_fixed(code, fixed)
    ctl = _Controls(code, fixed)
    first = start_values(code, P0, n, fixed)
    if code.layout.delay_fixed and "dt" in ctl.fields:
        users = sorted({code.rvars[d].host or d for d in code.layout.delay_fixed})
        raise SimulationError(f"{code.model.file}: {', '.join(users)}: DELAY FIXED (also inside SAMPLE IF TRUE, and "
                              f"DELAY N with a changing delay) needs a constant TIME STEP; this model's TIME STEP "
                              f"is an equation")
    t0, dt, sp = first["start"], first["dt"], first["saveper"]
    if first["stop"] < t0:
        raise SimulationError(f"{code.model.file}: FINAL TIME ({first['stop']:g}) is before INITIAL TIME ({t0:g}) "
                              f"at the start")
    stop_dynamic = "stop" in ctl.fields
    # every step evaluates the flows and the time settings only; the saved variables only when saving
    dyn_clock = code.dynamic(ctl.names)
    dyn_save = code.dynamic(tuple(outputs) + ctl.names)
    dyn_rates = code.dynamic(())
    with np.errstate(all="ignore"):
        S, P, D0, DT = code.init_fn(t0, dt, t0, first["stop"], sp, tuple(P0), n)
    pipes = None
    if code.layout.delay_fixed:
        # with FINAL TIME an equation the run's length is unknown: delays are not capped at it
        horizon = MAX_STEPS if stop_dynamic else round((first["stop"] - t0) / dt) + 1
        pipes = _Pipelines(D0, DT, dt, n, max(horizon, 1),
                           [code.rvars[d].host or d for d in code.layout.delay_fixed])
    D = pipes.outputs() if pipes else _start_outputs(D0)
    solver = FIXED_STEP[method]()
    nonneg = code.layout.non_negative
    alive = np.ones(n, dtype=bool)
    all_alive = True
    times: list[float] = []
    rows: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
    ended_at_save: list[np.ndarray | None] = []
    t_s, k_s, k = t0, 0, 0
    t = t0
    t1_max = first["stop"]

    def f(tt: float, state: np.ndarray) -> np.ndarray:
        return dyn_rates(tt, dt, t0, t1_max, sp, state, P, D, False)[0]

    with np.errstate(all="ignore"):
        while True:
            k1, X, c_outs = dyn_clock(t, dt, t0, t1_max, sp, S, P, D, True)
            dt_now, sp, t1_now, t1_max = ctl.read(c_outs, t, alive)
            if dt_now != dt:
                if pipes:
                    raise SimulationError(f"{code.model.file}: DELAY FIXED needs a constant TIME STEP")
                # the new step starts here: STEP and PULSE read it at this time already (as PySD)
                t_s, k_s, dt = t, k, dt_now
                k1, X, c_outs = dyn_clock(t, dt, t0, t1_max, sp, S, P, D, True)
            since = t - t0
            prec = dt * RPREC
            if since % sp < prec or -since % sp < prec:
                k1, X, outs = dyn_save(t, dt, t0, t1_max, sp, S, P, D, True)
                times.append(t)
                ended_at_save.append(None if all_alive else ~alive)
                for o, v in zip(outputs, outs):
                    rows[o].append(np.array(np.broadcast_to(v, (*sizes[o], n))))
            if isinstance(t1_now, float):
                if not t + prec < t1_now:
                    break           # every run ends together
            else:
                alive = alive & (t + prec < t1_now)
                all_alive = bool(alive.all())
                if not alive.any():
                    break
            if stop_dynamic and k >= MAX_STEPS:
                raise SimulationError(
                    f"{code.model.file}: the run has not reached FINAL TIME after {MAX_STEPS} steps (time {t:g}); "
                    f"check the equation of FINAL TIME")
            S_new = solver.step(f, t, S, dt, k1)
            for a, b in nonneg:
                np.maximum(S_new[a:b], 0.0, out=S_new[a:b])
            if not all_alive:
                S_new[:, ~alive] = S[:, ~alive]   # an ended run keeps its last state
            if not math.isfinite(float(S_new.sum())) and not np.isfinite(S_new).all():
                _raise_non_finite(code, S, P, D, Clock(t0, t1_max, dt, sp), t, S_new,
                                  runs=None if all_alive else alive)
            if pipes:
                pipes.push(X)
                D = pipes.outputs()
            S = S_new
            k += 1
            t = t_s + (k - k_s) * dt
    times_arr = np.asarray(times)
    store = {o: np.stack(rows[o]) if rows[o] else np.empty((0, *sizes[o], n)) for o in outputs}
    if ended_at_save:
        no_run_ended = np.zeros(n, dtype=bool)
        ended = np.stack([no_run_ended if e is None else e for e in ended_at_save])  # (T, n): ended before
        checked = {o: np.where(ended.reshape((len(times),) + (1,) * len(sizes[o]) + (n,)), 0.0, a)
                   for o, a in store.items()}
        _check_outputs(code, checked, times_arr)
        if ended.any():
            for o, a in store.items():
                mask = ended.reshape((len(times),) + (1,) * len(sizes[o]) + (n,))
                a[np.broadcast_to(mask, a.shape)] = np.nan
    return times_arr, store
