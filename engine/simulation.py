"""A compiled model and its ``run``: batches of scenarios or samples in one call."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import limits
from engine.backends import c_compiler_found, fallback, jax_installed, numba_installed
from engine.compile.model_code import ModelCode
from engine.errors import EngineError, ModelError, Problem, SimulationError
from engine.integrate.driver import Clock, simulate
from engine.integrate.solvers import METHODS, solver_for
from engine.ir import Model, Variable
from engine.resolve.structure import RVar
from engine.results import Results, RunFailure

if TYPE_CHECKING:
    from engine.integrate.dynamic_clock import DynamicClock


def _name_key(name: str) -> str:
    # Vensim's rule: case, and spaces against underscores, do not matter in names
    return re.sub(r"[\s_]+", "_", str(name).strip()).lower()


@contextlib.contextmanager
def _run_labels(labels: list[str]) -> Iterator[None]:
    """The integrator names a failing run by its position ("scenario #3"); say its label instead."""
    try:
        yield
    except SimulationError as exc:
        def label(m: re.Match) -> str:
            i = int(m.group(1))
            return f"run {labels[i]!r} (#{i})" if 0 <= i < len(labels) else m.group(0)   # as RunFailure says it
        text = re.sub(r"scenario #(\d+)", label, str(exc))
        if text == str(exc):
            raise
        raise SimulationError(text) from None


class CompiledModel:
    """A model compiled once, ready to run any batch.

    >>> m = load_model("model/linxiang.toml")                       # doctest: +SKIP
    >>> res = m.run(scenarios={"base": {}, "fast": {"integration_pace": 1.5}})  # doctest: +SKIP
    >>> res.to_dataframe()                                           # doctest: +SKIP
    """

    def __init__(self, model: Model, rvars: dict[str, RVar], code: ModelCode, backend: str = "numpy",
                 say_fallback: bool = True) -> None:
        self.model = model
        self.rvars = rvars
        self.code = code
        self.backend = backend   # "numpy", "jax" or "numba" (engine.backends)
        self._say_fallback = say_fallback   # one line on stderr when a run falls back to numpy
        self._jax = None
        self._numba = None
        self._c = None
        self._meta_cache: dict[str, tuple] | None = None
        self._visible: tuple[str, ...] | None = None
        self._plans: dict[tuple[str, ...], tuple] = {}
        # per call's settings, what a run recomputed each time (runs are hot: docs/architecture.md, "One run's
        # overhead, third pass"): the names asked to save, as identifiers; the checked clocks; the estimates'
        # counts (every run still checks them against the limits and the memory available now)
        self._idents: dict[tuple[str, ...], list[str]] = {}
        self._clocks: dict[tuple, Clock] = {}
        self._clocks_ok: set[Clock] = set()
        self._counts: dict[tuple, tuple[int, int, int, int]] = {}
        if backend == "jax":
            if jax_installed():
                from engine.compile.jax_backend import JaxProgram
                self._jax = JaxProgram(code)
            else:
                if say_fallback:
                    fallback(model.file, "jax is not installed")
                self.backend = "numpy"
        if backend == "numba":
            if numba_installed():
                from engine.compile.numba_backend import NumbaProgram
                self._numba = NumbaProgram(code)
            else:
                if say_fallback:
                    fallback(model.file, "numba is not installed")
                self.backend = "numpy"
        if backend == "c":
            if c_compiler_found():
                from engine.compile.c_backend import CProgram
                self._c = CProgram(code)
            else:
                if say_fallback:
                    fallback(model.file, "no C compiler found (cc; set CC)")
                self.backend = "numpy"
        problems: list[Problem] = []
        self._defaults: dict[str, Any] = {}   # an array (*dims, 1), or a data input's (times, values)
        self._defaults_finite = False   # every default input checked finite once (engine.limits.check_inputs)
        for name in code.layout.param_names:
            var = model.variables[name]
            try:
                if var.kind == "constant":
                    self._defaults[name] = self._value_array(name, var.value, None)
                else:
                    self._defaults[name] = self._series_arrays(name, var.times, var.values)
            except EngineError as exc:
                problems.append(Problem(model.file, name, str(exc)))
        if problems:
            raise ModelError(problems)
        self._default_inputs = [self._defaults[name] for name in code.layout.param_names]
        self._name_index: dict[str, set[str]] = {}
        if model.time.dynamic:
            self.model = dataclasses.replace(model, time=self._time_at_start(model))

    def _time_at_start(self, model: Model):
        """[time] with the numbers of its equations filled in: their values at the start."""
        from engine.integrate.dynamic_clock import start_values

        ts = model.time
        fixed = {f: getattr(ts, f) for f in ("start", "stop", "dt", "saveper") if f not in ts.dynamic}
        P0 = [self._defaults[name] for name in self.code.layout.param_names]
        try:
            first = start_values(self.code, P0, 1, fixed)
        except EngineError as exc:
            raise ModelError(Problem(model.file, "[time]", str(exc))) from None
        changes: dict[str, Any] = {f: first[f] for f in ts.dynamic}
        return dataclasses.replace(ts, **changes)

    # -------------------------------------------------------------- introspection
    @property
    def time(self):
        return self.model.time

    @property
    def constants(self) -> dict[str, Variable]:
        return {n: v for n, v in self.model.variables.items() if v.kind == "constant"}

    def role(self, name: str) -> str:
        """A constant's role: lever, uncertain, test or fixed (see engine.ir.Variable.role)."""
        var = self.model.variables[name]
        if var.role:
            return var.role
        return "uncertain" if var.range else "fixed"

    def constants_with_role(self, *roles: str) -> list[str]:
        """Names of the constants whose role is one of ``roles``."""
        return [n for n in self.constants if self.role(n) in roles]

    @property
    def visible(self) -> list[str]:
        """Variables that can be saved: every declared one except lookups."""
        if self._visible is None:   # built once: every run that saves everything asks
            self._visible = tuple(n for n, v in self.model.variables.items() if v.kind != "lookup")
        return list(self._visible)

    def identifier(self, name: str) -> str:
        """The variable a user's name means: its identifier, or (imported models) the Vensim/XMILE
        name as written there, matched as Vensim does, ignoring case and spaces vs underscores.
        A name that matches nothing comes back unchanged, for the caller's own error."""
        if name in self.model.variables:
            return name
        key = _name_key(name)
        if not self._name_index:
            for ident in self.model.variables:
                self._name_index.setdefault(_name_key(ident), set()).add(ident)
            for ident, original in self.model.original_names.items():
                if ident in self.model.variables:
                    self._name_index.setdefault(_name_key(original), set()).add(ident)
        found = self._name_index.get(key, set())
        if len(found) > 1:
            raise EngineError(f"{self.model.file}: {name!r} could mean {', '.join(sorted(found))}; use one of these")
        return next(iter(found)) if found else name

    def elements(self, name: str) -> list[tuple[str, ...]]:
        """A variable's element tuples in C order ([()] for a variable without dimensions)."""
        name = self.identifier(name)
        if name not in self.rvars:
            raise EngineError(f"{self.model.file}: {name!r} is not a variable of the model")
        dims = self.rvars[name].dims
        return list(itertools.product(*[self.model.dim_elements(d) for d in dims]))

    def value(self, name: str, value: object) -> np.ndarray:
        """A constant's value (a number, a table over its dimensions, or an array) as an array of
        its dimensions' shape, in the constant's unit; raises EngineError naming the constant when
        the value does not fit."""
        name = self.identifier(name)
        self.check_settable(name)
        if self.model.variables[name].kind != "constant":
            raise EngineError(f"{self.model.file}: {name} is a data input; give it a series, not a value")
        return np.array(self._value_array(name, value, None)[..., 0])

    def default(self, name: str):
        """The model file's own value of a constant (an array of its dimensions' shape), or of a data
        input ((times, values) with values of shape (T, *dims))."""
        name = self.identifier(name)
        self.check_settable(name)
        got = self._defaults[name]
        if isinstance(got, tuple):
            return np.array(got[0]), np.array(got[1][..., 0])
        return np.array(got[..., 0])

    def check_settable(self, name: str) -> None:
        """Raise EngineError (with suggestions) unless ``name`` is a constant or data input that a run may set."""
        self._check_settable(name)

    def source(self) -> str:
        """The generated Python source of the step function (for reading, not editing)."""
        self.code.dynamic(tuple(self.visible))
        return "\n".join(self.code.sources.values())

    # -------------------------------------------------------------- values
    def _value_array(self, name: str, value: object, n: int | None) -> np.ndarray:
        """A constant's value as an array (*dims, B), B = n for batch values, else 1."""
        rv = self.rvars[name]
        sizes, dims = rv.sizes, rv.dims
        if isinstance(value, bool) or value is None:
            raise EngineError(f"{name}: value must be a number, not {value!r}")
        if isinstance(value, (int, float)):
            return np.full((*sizes, 1), float(value))
        if isinstance(value, Mapping):
            if not dims:
                raise EngineError(f"{name}: has no dimensions; give a number, not a table")
            elems = self.model.dim_elements(dims[0])
            unknown = [k for k in value if k not in elems]
            missing = [e for e in elems if e not in value]
            if unknown or missing:
                raise EngineError(f"{name}: table keys must be the elements of {dims[0]!r} "
                                  f"({', '.join(elems)}); unknown {unknown}, missing {missing}")
            sub = [self._sub_value(name, dims[1:], value[e], n) for e in elems]
            b = max(s.shape[-1] for s in sub)
            return np.stack([np.broadcast_to(s, s.shape[:-1] + (b,)) for s in sub])
        arr = np.asarray(value, dtype=float) if not isinstance(value, np.ndarray) else value.astype(float)
        if arr.shape == sizes:
            return arr[..., None]
        if n is not None and arr.shape == (n,):
            return np.broadcast_to(arr, (*sizes, n)).copy()
        if n is not None and arr.shape == (n, *sizes):
            return np.moveaxis(arr, 0, -1).copy()
        want = f"a number, shape {sizes}" if sizes else "a number"
        if n is not None:
            want += f", ({n},) or ({n}, *{sizes})" if sizes else f" or ({n},)"
        raise EngineError(f"{name}: value has shape {arr.shape}; expected {want}")

    def _sub_value(self, name: str, dims: tuple[str, ...], value: object, n: int | None) -> np.ndarray:
        sizes = tuple(len(self.model.dim_elements(d)) for d in dims)
        if isinstance(value, Mapping):
            elems = self.model.dim_elements(dims[0]) if dims else ()
            if not dims or set(value) != set(elems):
                raise EngineError(f"{name}: nested table keys must be the elements of "
                                  f"{dims[0] if dims else '(none)'}")
            sub = [self._sub_value(name, dims[1:], value[e], n) for e in elems]
            b = max(s.shape[-1] for s in sub)
            return np.stack([np.broadcast_to(s, s.shape[:-1] + (b,)) for s in sub])
        arr = np.asarray(value, dtype=float)
        if arr.shape == sizes:
            return arr[..., None]
        if n is not None and arr.shape == (n,):
            return np.broadcast_to(arr, (*sizes, n))
        raise EngineError(f"{name}: element value has shape {arr.shape}, expected {sizes or 'a number'}")

    def _series_arrays(self, name: str, times, values) -> tuple[np.ndarray, np.ndarray]:
        sizes = self.rvars[name].sizes
        t = np.asarray(times, dtype=float)
        v = np.asarray(values, dtype=float)
        if t.ndim != 1 or len(t) == 0 or np.any(np.diff(t) <= 0):
            raise EngineError(f"{name}: series times must be strictly increasing")
        if v.shape != (len(t), *sizes):
            raise EngineError(f"{name}: series values have shape {v.shape}, expected {(len(t), *sizes)}")
        return t, v[..., None]

    def _batch_series(self, name: str, per_scenario: list) -> tuple[np.ndarray, np.ndarray]:
        """Series of each scenario on the union of their time points (exact for linear/step)."""
        hold = self.model.variables[name].interpolation == "step"
        grid = np.unique(np.concatenate([t for t, _ in per_scenario]))
        cols = []
        for t, v in per_scenario:
            v = v[..., 0]
            if hold:
                idx = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 1)
                cols.append(v[idx])
            else:
                flat = v.reshape(len(t), -1)
                cols.append(np.stack([np.interp(grid, t, flat[:, i]) for i in range(flat.shape[1])], axis=1)
                            .reshape((len(grid),) + v.shape[1:]))
        return grid, np.stack(cols, axis=-1)

    # -------------------------------------------------------------- run
    def run(self, params: Mapping[str, object] | None = None,
            scenarios: Mapping[str, Mapping[str, object]] | None = None,
            n: int | None = None, method: str | None = None, dt: float | None = None,
            start: float | None = None, stop: float | None = None, saveper: float | None = None,
            variables: list[str] | tuple[str, ...] | None = None,
            names: list[str] | None = None, throw: bool = True, seed: int | None = None,
            first_run: int = 0) -> Results:
        """Integrate a batch and return the saved values.

        params: constant name -> a number (all runs), or an array of N values (one a run),
            or (N, *dims) for subscripted constants; a data input -> {"time": [...], "values": [...]}.
        scenarios: scenario name -> overrides (as ``params``, one value each); N = number of scenarios.
            ``params`` apply on top of every scenario.
        n: batch size when no array fixes it (N copies of the same run).
        method: euler (default), rk2, rk4 or adaptive; dt/start/stop/saveper override [time].
        variables: names to save (default: every variable except lookups).
        throw: raise SimulationError at the first run that fails (a non-finite value, a guard, a
            non-negative stock starting below zero). With throw=False a failing run stops alone:
            its values are NaN from the failure time on, and ``Results.status`` / ``ok`` /
            ``failures`` / ``message(i)`` say which runs failed, where, when and why.
        seed: the seed of the RANDOM functions' streams (default 0); run i of the batch draws the same
            numbers whatever the batch size (engine/compile/random_streams.py).
        first_run: the index of this batch's first run in a larger one cut into shards, so that
            shards draw different numbers (run first_run + i of the whole draws what it would alone).
        """
        if "_streams" in self.code.globals:
            self.code.globals["_streams"].seed = int(seed or 0)
            self.code.globals["_streams"].first_run = int(first_run)
        params = {self.identifier(k): v for k, v in (params or {}).items()}
        if scenarios:
            scenarios = {s: {self.identifier(k): v for k, v in o.items()} for s, o in scenarios.items()}
        if variables is not None:
            variables = self._identifiers(tuple(variables))
        scen_names, overrides = self._batch(params, scenarios, n, names)
        N = len(scen_names)
        P0 = self._inputs(overrides, N)
        ts = self.model.time
        method = (method or ts.method).lower()
        if method not in METHODS:
            raise EngineError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
        given = {"start": start, "stop": stop, "dt": dt, "saveper": saveper}
        dynamic = [f for f in ts.dynamic if given[f] is None]
        outputs = tuple(variables) if variables is not None else tuple(self.visible)
        plan = self._output_plan(outputs)
        sizes = plan[0]
        replaced = [f for f in ts.dynamic if given[f] is not None]
        if replaced:
            from engine.integrate.dynamic_clock import _LABEL
            f = replaced[0]
            raise EngineError(f"{self.model.file}: {_LABEL[f]} is an equation in this model "
                              f"({ts.dynamic[f]} = {self.model.variables[ts.dynamic[f]].equations['']}); a number "
                              f"cannot replace it, since the equations that use {ts.dynamic[f]} would not see it: "
                              f"change the equation or the constants it reads")
        # the model's own values are checked once (they cannot change); what this call gives, every time
        if not (self._defaults_finite and not any(overrides)):   # no override: the defaults, checked once
            check = [(nm, v) for nm, v in zip(self.code.layout.param_names, P0, strict=True)
                     if not (self._defaults_finite and v is self._defaults[nm])]
            limits.check_inputs([nm for nm, _ in check], [v for _, v in check], scen_names, self.model.file)
            if not self._defaults_finite and len(check) == len(P0):
                self._defaults_finite = True   # reached only when every input, the defaults among them, was finite
        solver = solver_for(method)
        clock: Clock | DynamicClock
        if dynamic:
            # some time settings are equations: the clock reads them from the model as it runs
            from engine.integrate.dynamic_clock import DynamicClock
            fixed = {f: float(getattr(ts, f) if v is None else v) for f, v in given.items() if f not in dynamic}
            at_start = {f: fixed.get(f, getattr(ts, f)) for f in ("start", "stop", "dt", "saveper")}
            if all(math.isfinite(v) for v in at_start.values()) and at_start["dt"] > 0 and at_start["saveper"] > 0:
                # (settings that are not usable numbers are reported by the dynamic clock, in its words)
                self._estimate(at_start["start"], at_start["stop"], at_start["dt"], at_start["saveper"], N, sizes)
            clock = DynamicClock(self.code, fixed)
        else:
            clock = self._clock(ts.start if start is None else float(start), ts.stop if stop is None else float(stop),
                                ts.dt if dt is None else float(dt), ts.saveper if saveper is None else float(saveper))
            self._estimate(clock.t0, clock.t1, clock.dt, clock.saveper, N, sizes, outputs)
            self._check_clock(clock, dt is not None and saveper is None)
        compiled = self._run_compiled(P0, N, clock, solver, outputs, sizes, bool(dynamic)) if self._program else None
        if compiled is not None:
            times, store = compiled
            failures: list[RunFailure] = []
        else:
            with _run_labels(scen_names):
                times, store, failures = simulate(self.code, P0, N, clock, solver, outputs, sizes, throw,
                                                  scen_names)
        # copies of the plan's dicts: a caller may change its Results' without touching the next run's
        backend = self.backend if compiled is not None else "numpy"
        res = Results(scen_names, times, store, dict(plan[1]), dict(plan[2]), dims=dict(plan[3]),
                      labels=dict(plan[4]), time_unit=ts.unit, backend=backend)
        res._set_failures(failures)
        return res

    @property
    def _program(self):
        """The compiled backend's program (JaxProgram or NumbaProgram), None on numpy."""
        return self._jax or self._numba or self._c

    def _identifiers(self, names: tuple[str, ...]) -> list[str]:
        """The identifiers of names to save (resolved once per list: the app and the CLI ask for the same)."""
        got = self._idents.get(names)
        if got is None:
            got = [self.identifier(v) for v in names]
            if len(self._idents) >= 64:
                self._idents.clear()
            self._idents[names] = got
        return list(got)

    def _clock(self, t0: float, t1: float, dt: float, saveper: float) -> Clock:
        """The Clock of these settings (a frozen dataclass: one is kept per settings)."""
        key = (t0, t1, dt, saveper)
        got = self._clocks.get(key)
        if got is None:
            got = Clock(t0, t1, dt, saveper)
            if len(self._clocks) >= 64:
                self._clocks.clear()
            self._clocks[key] = got
        return got

    def _output_plan(self, outputs: tuple[str, ...]) -> tuple[dict, dict, dict, dict, dict]:
        """Per variable to save: (sizes, elements, units, dimensions, labels), checked and built once per output
        list (runs are hot; the app and the CLI ask for the same lists again and again)."""
        plan = self._plans.get(outputs)
        if plan is None:
            unknown = [v for v in outputs if v not in self.rvars or self.rvars[v].kind == "lookup"
                       or self.rvars[v].internal]
            if unknown:
                raise EngineError(f"{self.model.file}: cannot save {', '.join(unknown)}: not a variable of the model")
            meta = self._meta()
            plan = ({o: self.rvars[o].sizes for o in outputs}, {o: meta[o][0] for o in outputs},
                    {o: meta[o][1] for o in outputs}, {o: meta[o][2] for o in outputs},
                    {o: meta[o][3] for o in outputs})
            if len(self._plans) >= 64:
                self._plans.clear()
            self._plans[outputs] = plan
        return plan

    def _meta(self) -> dict[str, tuple]:
        """Per visible variable: (elements, unit, dimension names, labels), built once (runs are hot)."""
        if self._meta_cache is None:
            self._meta_cache = {}
            for o in self.visible:
                var = self.model.variables[o]
                labels = {k: getattr(var, k) for k in ("label_en", "label_zh", "doc") if getattr(var, k, None)}
                dims = self.rvars[o].dims
                els = list(itertools.product(*[self.model.dim_elements(d) for d in dims]))
                self._meta_cache[o] = (els, var.unit, dims, labels)
        return self._meta_cache

    def _run_compiled(self, P0, N, clock, solver, outputs, sizes, dynamic: bool):
        """The batch on the compiled backend, or None: not covered (said in one line) or a run failed
        (the numpy loop re-runs it, for its exact errors and per-run status)."""
        if self._numba is not None:
            return self._run_numba(P0, N, clock, solver, outputs, sizes, dynamic)
        if self._c is not None:
            return self._run_scalar(self._c, P0, N, clock, solver, outputs, sizes, dynamic)
        from engine.compile.jax_runtime import Unsupported

        if self._jax is None:
            return None
        reason = self._jax.unsupported(solver.name, dynamic)
        if reason is None:
            try:
                every = tuple(self.visible)
                return self._jax.run(P0, N, clock, solver, outputs, sizes, every,
                                     {o: self.rvars[o].sizes for o in every})
            except Unsupported as exc:
                reason = self._jax.broken = str(exc)
            except Exception as exc:  # noqa: BLE001 - anything tracing cannot do falls back, said once
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = self._jax.broken = f"the step could not be compiled ({type(exc).__name__}: {first[:200]})"
        if self._say_fallback:
            fallback(self.model.file, reason)
        return None

    def _run_numba(self, P0, N, clock, solver, outputs, sizes, dynamic: bool):
        """The batch on the numba backend, or None (as _run_compiled)."""
        return self._run_scalar(self._numba, P0, N, clock, solver, outputs, sizes, dynamic)

    def _run_scalar(self, prog, P0, N, clock, solver, outputs, sizes, dynamic: bool):
        """The batch on a scalar-kernel backend (numba or C), or None (as _run_compiled)."""
        if prog is None:   # that backend was not chosen
            return None
        reason = prog.unsupported(solver.name, dynamic)
        if reason is None:
            try:
                return prog.run(P0, N, clock, solver, outputs, sizes)
            except Exception as exc:  # noqa: BLE001 - anything numba cannot do falls back, said once
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = prog.broken = f"the kernel could not be compiled ({type(exc).__name__}: {first[:200]})"
        if self._say_fallback:
            fallback(self.model.file, reason)
        return None

    def _inputs(self, overrides: list[dict], N: int) -> list:
        """The inputs of a batch of N runs, in layout.param_names order: the model's own value where no run
        overrides it, else (*dims, N) arrays (data inputs: (times, values))."""
        touched = set().union(*overrides)
        if not touched:       # the model's own values (one run of the defaults: the common case, kept hot)
            return list(self._default_inputs)
        P0: list = []
        for name in self.code.layout.param_names:
            if name not in touched:        # most inputs: the model's own value, shared by the runs
                P0.append(self._defaults[name])
                continue
            var = self.model.variables[name]
            vals = [o.get(name) for o in overrides]
            if var.kind == "data":
                per = [self._defaults[name] if v is None else self._series_override(name, v) for v in vals]
                if all(v is None for v in vals):
                    P0.append(self._defaults[name])
                else:
                    P0.append(self._batch_series(name, per))
                continue
            if all(v is None for v in vals):
                P0.append(self._defaults[name])
            elif len(overrides) == 1:
                P0.append(self._value_array(name, vals[0], N))
            else:
                cols = [self._defaults[name] if v is None else self._value_array(name, v, None) for v in vals]
                P0.append(np.concatenate([np.broadcast_to(c, c.shape[:-1] + (1,)) for c in cols], axis=-1))
        return P0

    @functools.cached_property
    def _cells(self) -> int:
        """Values one run holds at a time (every variable's elements but lookups'): the limits' unit of work."""
        return sum(math.prod(rv.sizes) for rv in self.rvars.values() if rv.kind != "lookup")

    def _estimate(self, start: float, stop: float, dt: float, saveper: float, n_runs: int,
                  saved: dict[str, tuple[int, ...]], outputs: tuple[str, ...] | None = None) -> None:
        """Refuse, before allocating anything, a run past the limits of engine.limits (unless forced). The
        counts are kept per settings and output list (``outputs``, when given, names ``saved``'s list); the
        check against the limits and the memory available is made every run."""
        key = ((start, stop, dt, saveper, outputs, limits.is_forced(), limits.MAX_STEPS) if outputs is not None
               else None)
        counts = self._counts.get(key) if key is not None else None
        if counts is None:
            steps = limits.check_clock(start, stop, dt, saveper, self.model.file)
            saved_cells = sum(math.prod(s) for s in saved.values())
            every = max(1, round(saveper / dt)) if saveper >= dt else 1
            counts = (steps, self._cells, saved_cells, steps // every + 1)
            if key is not None:
                if len(self._counts) >= 64:
                    self._counts.clear()
                self._counts[key] = counts
        steps, cells, saved_cells, saved_times = counts
        limits.check_run(steps, n_runs, cells, saved_cells, saved_times, self.model.file)

    def _check_clock(self, c: Clock, dt_only: bool) -> None:
        if c in self._clocks_ok:   # checked before (the settings of a kept Clock cannot change)
            return
        if not (c.dt > 0 and math.isfinite(c.dt)):
            raise EngineError(f"dt must be a positive number, got {c.dt}")
        if c.t1 < c.t0:
            raise EngineError(f"stop ({c.t1}) is before start ({c.t0})")
        steps = (c.t1 - c.t0) / c.dt
        if abs(steps - round(steps)) > 1e-6:
            raise EngineError(f"stop - start ({c.t1 - c.t0}) is not a whole number of steps of dt {c.dt}")
        ratio = c.saveper / c.dt
        if abs(ratio - round(ratio)) > 1e-6 or ratio < 1 - 1e-9:
            raise EngineError(f"saveper ({c.saveper}) must be a multiple of dt ({c.dt})")
        if len(self._clocks_ok) >= 64:
            self._clocks_ok.clear()
        self._clocks_ok.add(c)

    def _series_override(self, name: str, value: object) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(value, Mapping) and set(value) == {"time", "values"}:
            return self._series_arrays(name, value["time"], value["values"])
        if isinstance(value, tuple) and len(value) == 2:
            return self._series_arrays(name, value[0], value[1])
        raise EngineError(f"{name}: a data input takes {{'time': [...], 'values': [...]}}")

    def _batch(self, params, scenarios, n, names) -> tuple[list[str], list[dict]]:
        params = dict(params or {})
        for key in list(params) + [k for s in (scenarios or {}).values() for k in s]:
            self._check_settable(key)
        if scenarios:
            scen_names = list(scenarios)
            overrides = [dict(scenarios[s]) | params for s in scen_names]
            for key, value in params.items():
                if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == len(scen_names) \
                        and self.model.variables[key].kind == "constant":
                    for i, o in enumerate(overrides):
                        o[key] = value[i]
            return scen_names, overrides
        sizes = {len(v) for k, v in params.items() if isinstance(v, (np.ndarray, list))
                 and self.model.variables[k].kind == "constant" and np.ndim(v) >= 1
                 and np.shape(v) != self.rvars[k].sizes} if params else set()
        if len(sizes) > 1:
            raise EngineError(f"batch arrays have different lengths {sorted(sizes)}; give N values for each")
        N = sizes.pop() if sizes else (n or 1)
        if n is not None and n != N:
            raise EngineError(f"n={n} but the arrays in params have {N} values")
        if N < 1:
            raise EngineError("the batch size must be at least 1")
        limits.check_runs(N)   # before a label is made for each run
        labels = list(names) if names is not None else (["0"] if N == 1 else [str(i) for i in range(N)])
        if len(labels) != N:
            raise EngineError(f"{len(labels)} names for {N} runs")
        params = {k: (np.asarray(v, dtype=float) if isinstance(v, list) else v) for k, v in params.items()}
        return labels, [params]

    def _check_settable(self, key: str) -> None:
        var = self.model.variables.get(key)
        if var is None or var.kind not in ("constant", "data"):
            import difflib
            pool = [n for n, v in self.model.variables.items() if v.kind in ("constant", "data")]
            close = difflib.get_close_matches(key, pool, n=3)
            what = "not a variable of the model" if var is None else f"a {var.kind}, not a constant or data input"
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise EngineError(f"{self.model.file}: cannot set {key!r}: {what}{hint}")
