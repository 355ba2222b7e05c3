"""Policy search: lever settings within their ranges that meet every binding target and
maximise or minimise an objective.

1. A global stage: a scrambled Sobol' sample of the lever space (``n_global`` points from
   ``seed``, plus the base scenario's settings) runs as batches, sharded over the executor.
2. From the best feasible point (or, if none is feasible, the least infeasible one) a local
   stage refines with SLSQP; the finite-difference gradients of the objective and of every
   target's margin come from one batch run of k+1 runs.
3. When no point meets every binding target, the least total shortfall is sought instead
   (least squares on the shortfalls), and the report says by how much each target is missed.

The objective is ``EXPR@YEAR`` (an expression over the model's outputs in a year, e.g.
``gdp_real@2025``) or ``change``: the size of the change from the base scenario,
sum(((x - x_base) / (high - low))^2) over the levers (minimise it: "the least we must change").
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine.analysis.calibration import values_at
from engine.analysis.distributed import Executor, ModelRef, remember, shards
from engine.analysis.ensemble import (DEFAULT_CHUNK, Expr, ParamSpace, Target, annual_saveper, check_columns,
                                      run_shard, uniforms)
from engine.errors import EngineError

ACTIVE_TOL = 1e-3  # a normalised margin below this counts as binding (the constraint is active)


@dataclass
class Objective:
    text: str
    expr: Expr | None
    year: float | None
    sense: str  # "max" | "min"

    @property
    def is_change(self) -> bool:
        return self.expr is None


def parse_objective(text: str, model, sense: str) -> Objective:
    if sense not in ("max", "min"):
        raise EngineError(f"objective sense must be max or min, not {sense!r}")
    if text.strip().lower() == "change":
        return Objective("change", None, None, sense)
    expr_text, sep, year = text.rpartition("@")
    if not sep:
        raise EngineError(f"--objective {text!r}: expected EXPRESSION@YEAR (e.g. gdp_real@2025) or change")
    try:
        y = float(year)
    except ValueError:
        raise EngineError(f"--objective {text!r}: {year!r} is not a year") from None
    ts = model.time
    if not ts.start <= y <= ts.stop:
        raise EngineError(f"--objective {text!r}: {y:g} is outside the model's time {ts.start:g}-{ts.stop:g}")
    expr = Expr(expr_text, f"--objective {text}")
    bad = check_columns(model, expr)
    if bad:
        raise EngineError(f"--objective {text!r}: {', '.join(bad)} is not an output of {model.model.file}")
    return Objective(text, expr, y, sense)


@dataclass
class PolicyResult:
    feasible: bool
    levers: pd.DataFrame        # lever, value, base, low, high
    targets: pd.DataFrame       # id, name_zh, value, target, margin, status (binding / slack / missed)
    objective: float
    settings: dict[str, object]
    runs: int
    seconds: float
    notes: list[str] = field(default_factory=list)


class _Search:
    def __init__(self, model, space: ParamSpace, targets: list[Target], objective: Objective,
                 overrides: Mapping | None) -> None:
        self.model, self.space, self.targets, self.obj = model, space, targets, objective
        self.overrides = dict(overrides or {})
        self.variables = sorted({v for t in targets for v in t.expr.variables}
                                | set(objective.expr.variables if objective.expr else ()))
        lo, hi = space.bounds
        self.lo, self.width = lo, np.where(hi > lo, hi - lo, 1.0)
        self.base = np.clip(space.defaults(self.overrides), lo, hi)
        self.scale = np.array([max(abs(t.target), 1e-9) for t in targets])
        self.saveper = annual_saveper(model)
        self.runs = 0
        self._cache: dict[bytes, tuple[float, np.ndarray, np.ndarray]] = {}

    def x_of(self, z):
        return self.lo + np.asarray(z) * self.width

    def payload(self, Z: np.ndarray) -> dict:
        X = self.x_of(np.atleast_2d(Z))
        return {"params": self.space.to_params(X, self.overrides), "overrides": self.overrides,
                "variables": self.variables or [self.model.visible[0]], "saveper": self.saveper, "n": len(X)}

    def measure(self, Z: np.ndarray, r: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Objective (B,), target values (B, m) and normalised margins (B, m) of a shard's output."""
        Z = np.atleast_2d(Z)
        times, cols = r["times"], r["columns"]

        def at(c, y):
            return values_at(times, cols[c], np.array([y]))[:, 0]
        B = len(Z)
        expr = self.obj.expr
        if expr is None:   # the objective is the change from the base (Objective.is_change)
            f = np.sum((Z - (self.base - self.lo) / self.width) ** 2, axis=1)
        else:
            f = np.broadcast_to(expr.evaluate(lambda c: at(c, self.obj.year)), (B,)).astype(float)
        vals = np.empty((B, len(self.targets)))
        for j, t in enumerate(self.targets):
            vals[:, j] = np.broadcast_to(t.value(at), (B,))
        margins = np.array([t.margin(vals[:, j]) for j, t in enumerate(self.targets)]).T.reshape(B, -1) / self.scale
        f = np.where(np.isfinite(f), f, -1e30 if self.obj.sense == "max" else 1e30)
        margins = np.where(np.isfinite(margins), margins, -1e3)
        return f, vals, margins

    def evaluate(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch run, in-process (the local stage)."""
        Z = np.atleast_2d(np.clip(Z, 0.0, 1.0))
        r = run_shard(_LocalRef(self.model), self.payload(Z))
        self.runs += len(Z)
        out = self.measure(Z, r)
        for i, z in enumerate(Z):
            self._cache[z.tobytes()] = (out[0][i], out[1][i], out[2][i])
        return out

    def point(self, z):
        z = np.clip(np.asarray(z, float), 0.0, 1.0)
        key = z.tobytes()
        if key not in self._cache:
            self.evaluate(z[None, :])
        return self._cache[key]

    def grad(self, z, h=1e-5):
        """Forward differences of the objective and margins: ONE batch of k+1 runs."""
        z = np.clip(np.asarray(z, float), 0.0, 1.0)
        k = len(z)
        steps = np.where(z + h <= 1.0, h, -h)
        Z = np.repeat(z[None, :], k + 1, axis=0)
        Z[np.arange(1, k + 1), np.arange(k)] += steps
        f, _, g = self.evaluate(Z)
        return (f[1:] - f[0]) / steps, ((g[1:] - g[0]) / steps[:, None]).T


class _LocalRef:
    """A stand-in for ModelRef when the model is already compiled here."""

    def __init__(self, model):
        self.model = model

    def load(self):
        return self.model


def optimize(model, ref: ModelRef, space: ParamSpace, targets: list[Target], objective: Objective,
             overrides: Mapping | None = None, n_global: int = 256, seed: int = 0,
             executor: Executor | None = None, chunk: int = DEFAULT_CHUNK, maxiter: int = 100) -> PolicyResult:
    """See the module doc."""
    from scipy.optimize import least_squares, minimize

    t0 = _time.perf_counter()
    if n_global < 1:
        raise EngineError(f"--samples must be at least 1, got {n_global}")
    remember(ref, model)
    s = _Search(model, space, targets, objective, overrides)
    notes = []
    if not targets:
        notes.append("no binding targets the model measures: the search is unconstrained")
    k = len(space.factors)
    # global stage, sharded
    Z = np.vstack([(s.base - s.lo) / s.width, uniforms(n_global, k, seed, "sobol")])
    pieces = shards(len(Z), chunk)
    F = np.empty(len(Z))
    G = np.empty((len(Z), len(targets)))
    for i, r in (executor or Executor()).imap(run_shard, ref, [s.payload(Z[a:b]) for a, b in pieces]):
        a, b = pieces[i]
        F[a:b], _, G[a:b] = s.measure(Z[a:b], r)
    s.runs += len(Z)
    sign = -1.0 if objective.sense == "max" else 1.0
    feas = np.all(G >= 0, axis=1) if targets else np.ones(len(Z), bool)
    if feas.any():
        idx = np.flatnonzero(feas)
        z0 = Z[idx[np.argmin(sign * F[idx])]]
    else:
        short = np.sum(np.minimum(G, 0) ** 2, axis=1)
        z0 = Z[np.argmin(short)]
    feasible = bool(feas.any())
    if not feasible:
        # phase 1: the least total shortfall
        def resid(z):
            return np.minimum(s.point(z)[2], 0.0)

        def rjac(z):
            _, gj = s.grad(z)
            g = s.point(z)[2]
            return np.where((g < 0)[:, None], gj, 0.0)
        sol = least_squares(resid, z0, jac=rjac, bounds=(0.0, 1.0), max_nfev=maxiter)
        z0 = np.clip(sol.x, 0.0, 1.0)
        feasible = bool(np.all(s.point(z0)[2] >= -1e-9))
        if not feasible:
            notes.append("no lever setting within the ranges meets every binding target; "
                         "shown: the setting with the least total shortfall")
    if feasible:
        cons = []
        if targets:
            cons = [{"type": "ineq", "fun": lambda z: s.point(z)[2], "jac": lambda z: s.grad(z)[1]}]
        sol = minimize(lambda z: sign * s.point(z)[0], z0, jac=lambda z: sign * s.grad(z)[0], method="SLSQP",
                       bounds=[(0.0, 1.0)] * k, constraints=cons, options={"maxiter": maxiter, "ftol": 1e-9})
        z1 = np.clip(sol.x, 0.0, 1.0)
        f1, _, g1 = s.point(z1)
        f0 = s.point(z0)[0]
        if (not targets or np.all(g1 >= -1e-6)) and sign * f1 <= sign * f0:
            z0 = z1
        elif not sol.success:
            notes.append(f"the local search did not converge ({sol.message}); the best sampled point is shown")
    f, vals, g = s.point(z0)
    x = s.x_of(z0)
    levers = pd.DataFrame({"lever": space.labels, "value": x, "base": s.base, "low": s.lo, "high": s.lo + s.width})
    trows = []
    for j, t in enumerate(targets):
        status = "missed" if g[j] < -1e-6 else ("binding" if g[j] < ACTIVE_TOL else "slack")
        trows.append({"id": t.id, "name_zh": t.name_zh, "name_en": t.name_en, "year": t.target_year,
                      "value": vals[j], "target": t.target, "direction": t.direction,
                      "margin": g[j] * s.scale[j], "status": status})
    return PolicyResult(feasible, levers, pd.DataFrame(trows, columns=["id", "name_zh", "name_en", "year", "value",
                                                                      "target", "direction", "margin", "status"]),
                        float(f), space.as_settings(x, overrides), s.runs, _time.perf_counter() - t0, notes)
