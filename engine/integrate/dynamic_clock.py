"""The Clock for models whose time settings are equations (the loop is engine.integrate.driver's).

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
        t1s = np.asarray(outs[slots["stop"]], dtype=float)
        if t1s.size == 1:
            t1 = float(t1s.reshape(-1)[0])
            if not math.isfinite(t1):
                raise SimulationError(f"{self.code.model.file}: FINAL TIME is not a finite number at time {t:g}")
            return dt, sp, t1, t1
        t1v = t1s.reshape(-1)
        if not np.all(np.isfinite(t1v[alive] if t1v.size == alive.size else t1v)):
            raise SimulationError(f"{self.code.model.file}: FINAL TIME is not a finite number at time {t:g}")
        return dt, sp, t1v, float(np.max(t1v))


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
        got = dict(zip(ctl.fields, outs, strict=True))
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


class DynamicClock:
    """The Clock for models whose time settings are equations (the loop is engine.integrate.driver's).

    ``fixed``: the settings given as numbers, model time units. Reads TIME STEP, SAVEPER and FINAL
    TIME every step from the variables in ``reads``; within a stretch of constant step the time is
    ``t_s + (k - k_s) * dt``, restarting where the step changes.
    """

    def __init__(self, code: ModelCode, fixed: dict[str, float]) -> None:
        check_fixed(code, fixed)
        self.code = code
        self.fixed = fixed
        self.ctl = _Controls(code, fixed)
        self.reads = self.ctl.names
        self.stop_dynamic = "stop" in self.ctl.fields

    def begin(self, code: ModelCode, P0: list, n: int) -> tuple[float, float, float, float]:
        first = start_values(code, P0, n, self.fixed)
        if code.layout.delay_fixed and "dt" in self.ctl.fields:
            users = sorted({code.rvars[d].host or d for d in code.layout.delay_fixed})
            raise SimulationError(f"{code.model.file}: {', '.join(users)}: DELAY FIXED (also inside SAMPLE IF TRUE, "
                                  f"and DELAY N with a changing delay) needs a constant TIME STEP; this model's TIME "
                                  f"STEP is an equation")
        self.t0, self.dt, self.sp, self.t1_max = first["start"], first["dt"], first["saveper"], first["stop"]
        if self.t1_max < self.t0:
            raise SimulationError(f"{code.model.file}: FINAL TIME ({self.t1_max:g}) is before INITIAL TIME "
                                  f"({self.t0:g}) at the start")
        self.first_stop = self.t1_max
        self.t1_now: np.ndarray | float = self.t1_max
        self.t_s, self.k_s = self.t0, 0
        return self.t0, self.dt, self.t1_max, self.sp

    def n_saves(self) -> None:
        return None   # unknown until the run ends

    def horizon(self) -> int:
        # with FINAL TIME an equation the run's length is unknown: delays are not capped at it
        return MAX_STEPS if self.stop_dynamic else round((self.first_stop - self.t0) / self.dt) + 1

    def settings(self) -> tuple[float, float, float, float]:
        return self.dt, self.t0, self.t1_max, self.sp

    def read(self, outs: tuple, k: int, t: float, alive: np.ndarray) -> bool:
        """Take the settings evaluated at time t; True when the step has changed (it starts here)."""
        dt_now, self.sp, self.t1_now, self.t1_max = self.ctl.read(outs, t, alive)
        if dt_now == self.dt:
            return False
        self.t_s, self.k_s, self.dt = t, k, dt_now
        return True

    def saves(self, k: int, t: float) -> bool:
        since, prec = t - self.t0, self.dt * RPREC
        return since % self.sp < prec or -since % self.sp < prec

    def ended(self, k: int, t: float) -> np.ndarray | bool:
        prec = self.dt * RPREC
        done: np.ndarray | bool
        if isinstance(self.t1_now, float):
            if not t + prec < self.t1_now:
                return True             # every run ends together
            done = False
        else:
            done = ~(t + prec < self.t1_now)
        if self.stop_dynamic and k >= MAX_STEPS:
            raise SimulationError(
                f"{self.code.model.file}: the run has not reached FINAL TIME after {MAX_STEPS} steps (time {t:g}); "
                f"check the equation of FINAL TIME")
        return done

    def time(self, k: int) -> float:
        return self.t_s + (k - self.k_s) * self.dt
