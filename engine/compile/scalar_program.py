"""What the two scalar-kernel backends (numba, C) share around their kernels: which runs they cover, the
batch's inputs packed as the kernel reads them (statics, data series, the slots to save) and the saved
values handed back in the numpy loop's shapes. Each backend adds how its kernel is built and called."""
from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.compile.model_code import ModelCode
from engine.compile.random_table import RandomTable
from engine.compile.scalar_code import NotSupported, ScalarCode, pack_statics
from engine.integrate.driver import MAX_PIPELINE_VALUES
from engine.results import SavedArrays

METHODS = {"euler": 0, "rk2": 1, "rk4": 2}   # the kernels' method numbers (engine.integrate.solvers' names)


@dataclass
class Batch:
    """One batch's arrays as a kernel reads them (every array C-contiguous float64, indices int64)."""

    S0: np.ndarray                          # (rows, n) initial state
    PF: np.ndarray                          # statics, flat (pack_statics)
    OFF: np.ndarray
    VR: np.ndarray
    data: list[tuple[np.ndarray, np.ndarray]]   # per data input: times (T,), values (T, elements, 1 or n)
    outs: np.ndarray                        # the slots to save, in order
    out: np.ndarray                         # (n_saves, len(outs), n), filled by the kernel
    tables: np.ndarray                      # every lookup table's xs and ys, flat
    P: tuple = ()                           # the init's static values (for the C backend's RANDOM draws)
    D0: tuple = ()                          # DELAY FIXED: initial outputs and delay times (init's D0, DT)
    DT: tuple = ()


# what a batch starts from: S0, PF, OFF, VR (pack_statics), and init's P, D0, DT (empty where unused)
Start = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple, tuple, tuple]


class ScalarProgram:
    """One model on a scalar-kernel backend; subclasses build and call the kernel."""

    def __init__(self, code: ModelCode) -> None:
        self.code = code
        self.broken: str | None = None   # why generation or compilation failed once: not tried again
        self._scalar: ScalarCode | None = None
        self._slots: dict[tuple[str, ...], np.ndarray] = {}
        self._nonneg: np.ndarray | None = None
        self._tab: np.ndarray | None = None
        self._data_cache: tuple | None = None
        self._data_at: list[int] | None = None
        self._plans: dict[tuple[str, ...], dict[str, tuple[int, int, tuple[int, ...]]]] = {}
        self._times: tuple | None = None
        self._table: RandomTable | None = None

    def _reason(self, method: str, dynamic_clock: bool) -> str | None:
        """What neither scalar kernel covers, in words; None when this run may be compiled."""
        if self.broken:
            return self.broken
        if dynamic_clock:
            return "time settings that are equations (a dynamic clock) are not compiled"
        if method not in METHODS:
            return f"the {method} method is not compiled"
        return None

    def scalar(self) -> ScalarCode:
        if self._scalar is None:
            self._scalar = ScalarCode(self.code)
        return self._scalar

    def random_table(self) -> RandomTable | None:
        """The builder of the RANDOM draws' tables (None when the model draws nothing); read after the kernel's
        statements are generated (they number the call sites)."""
        sc = self.scalar()
        if not sc.random_sites:
            return None
        if self._table is None:
            self._table = RandomTable(sc)
        return self._table

    def _pipelines(self, b: Batch, clock, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
        """DELAY FIXED as a kernel reads it: each element's initial output and lag in steps per run (elements x
        runs), the offset of its ring in a run's ring space, and that space's length; placeholders (one element,
        lag 1, no ring) without DELAY FIXED. The lag is engine.integrate.driver._Pipelines' (whole steps, half
        rounded up, 1 .. n_steps + 1). None where the numpy loop would stop (a delay time that is not finite, a
        buffer over its limit): the caller re-runs the batch on numpy, which says why. The C and the numba kernels
        read the same arrays."""
        lay = self.code.layout
        if not lay.delay_fixed:
            return _NO_RINGS
        d0s, lags = [], []
        horizon = max(int(clock.n_steps), 1)
        for d, d0, T in zip(lay.delay_fixed, b.D0, b.DT, strict=True):
            sizes = tuple(self.code.rvars[d].sizes)
            e = self.code.rvars[d].size
            T = np.asarray(T, dtype=float)
            if not np.all(np.isfinite(T)):
                return None
            lag = np.clip(np.floor(T / clock.dt + 0.5 + 1e-9), 1, horizon + 1).astype(np.int64)
            shape = np.broadcast_shapes(np.shape(d0)[:-1] + (n,), np.shape(lag))
            if int(np.max(lag)) * int(np.prod(shape)) > MAX_PIPELINE_VALUES:
                return None
            d0s.append(np.broadcast_to(np.asarray(d0, dtype=float), sizes + (n,)).reshape(e, n))
            lags.append(np.broadcast_to(lag, sizes + (n,)).reshape(e, n))
        D0 = np.ascontiguousarray(np.concatenate(d0s), dtype=float)
        LAG = np.ascontiguousarray(np.concatenate(lags), dtype=np.int64)
        longest = LAG.max(axis=1)
        ROFF = np.ascontiguousarray(np.concatenate([[0], np.cumsum(longest)[:-1]]), dtype=np.int64)
        return D0, LAG, ROFF, int(longest.sum())

    def _nonneg_rows(self) -> np.ndarray:
        """The rows of the packed state that hold non-negative stocks (a bool mask, built once)."""
        if self._nonneg is None:
            mask = np.zeros(self.code.layout.rows, dtype=bool)
            for a, b in self.code.layout.non_negative:
                mask[a:b] = True
            self._nonneg = mask
        return self._nonneg

    def _outputs(self, outputs: tuple[str, ...]) -> np.ndarray:
        """The slots of the variables to save, in order (built once per output list)."""
        idx = self._slots.get(outputs)
        if idx is None:
            sc = self.scalar()
            slots: list[int] = []
            for o in outputs:
                base = sc.slot[o]
                slots += range(base, base + self.code.rvars[o].size)
            idx = self._slots[outputs] = np.asarray(slots, dtype=np.int64)
        return idx

    def _batch(self, P0: list, n: int, clock, outputs: tuple[str, ...]) -> Batch | None:
        """The batch's arrays; None when a run cannot start (a non-finite initial state, a non-negative stock
        below zero): the caller re-runs the batch on numpy, which reports it."""
        data = self._data(P0, n)
        start = self._start(P0, n, clock, data)
        if start is None:
            return None
        S0, PF, OFF, VR, P, D0, DT = start
        outs = self._outputs(outputs)
        n_saves = len(range(0, clock.n_steps + 1, clock.save_every))
        return Batch(S0, PF, OFF, VR, data, outs, np.empty((n_saves, len(outs), n)), self._tables(), P, D0, DT)

    def _tables(self) -> np.ndarray:
        """Every lookup table's xs and ys, flat (packed once; read after every generator has added its tables)."""
        if self._tab is None:
            sc = self.scalar()
            self._tab = np.ascontiguousarray(sc.tables if sc.tables else [0.0], dtype=float)
        return self._tab

    def _start(self, P0: list, n: int, clock, data: list) -> Start | None:
        """(S0, PF, OFF, VR, P, D0, DT): the initial state (rows, n) and the static values packed (pack_statics),
        from numpy's ``init``, with the init's static values and DELAY FIXED initial outputs and delay times;
        None when a run cannot start. The C backend overrides this with its compiled init
        (engine.compile.static_code) for models without DELAY FIXED or RANDOM functions."""
        sc = self.scalar()
        lay = self.code.layout
        t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper
        with np.errstate(all="ignore"):
            S0, P, D0, DT = self.code.init_fn(t0, dt, t0, t1, sp, tuple(P0), n)
        S0 = np.ascontiguousarray(S0, dtype=float).reshape(lay.rows, n) if lay.rows else np.zeros((0, n))
        if not np.isfinite(S0).all() or (S0[self._nonneg_rows()] < 0).any():
            return None
        return (S0, *pack_statics(sc, P[:len(lay.static_names)], n), P, D0, DT)

    def _data(self, P0: list, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per data input, (times (T,), values (T, elements, 1 or n)) as the kernels read them. The inputs
        come from P0 (init hands them on unchanged); the packing is kept while P0 holds the same objects (the
        model's own series, run after run)."""
        lay = self.code.layout
        if not lay.data_names:
            return []
        if self._data_at is None:
            at = {name: i for i, name in enumerate(lay.param_names)}
            self._data_at = [at[name] for name in lay.data_names]
        given = [P0[i] for i in self._data_at]
        cached = self._data_cache
        if cached is not None and cached[0] == n and all(map(operator.is_, cached[1], given)):
            return cached[2]
        data = []
        for name, (times, values) in zip(lay.data_names, given, strict=True):
            times = np.ascontiguousarray(times, dtype=float)
            values = np.asarray(values, dtype=float)
            values = np.ascontiguousarray(values.reshape(values.shape[0], self.code.rvars[name].size, -1))
            if values.shape[2] not in (1, n):
                raise NotSupported(f"{name}: a data series with {values.shape[2]} columns for {n} runs")
            data.append((times, values))
        self._data_cache = (n, given, data)   # holds the inputs, so that no other object takes their ids
        return data

    def _saved(self, batch: Batch, clock, outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The kernel's output as the numpy loop hands it back: {name: (T, *dims, n)} (the arrays made now; the
        C backend hands on :meth:`_store`'s views, made when read)."""
        times, store = self._store(batch.out, clock, outputs, sizes)
        return times, dict(store)

    def _store(self, out: np.ndarray, clock, outputs: tuple[str, ...], sizes: dict[str, tuple[int, ...]]
               ) -> tuple[np.ndarray, Mapping[str, np.ndarray]]:
        """The saved times and {name: (T, *dims, n)} views of ``out`` (n_saves, columns, n), made when read."""
        columns = self._plans.get(outputs)
        if columns is None:   # per variable: its columns of out and its shape (built once per output list)
            columns, c = {}, 0
            for o in outputs:
                e = self.code.rvars[o].size
                columns[o] = (c, c + e, tuple(sizes[o]))
                c += e
            self._plans[outputs] = columns
        key = (clock.t0, clock.dt, clock.t1, clock.saveper)
        if self._times is None or self._times[0] != key:
            self._times = (key, clock.save_times())
        return self._times[1].copy(), SavedArrays(out, columns)   # a copy: the caller's Results own their times


# without DELAY FIXED: placeholders for the rings' arguments (elements x runs, as a kernel types them), never read
_NO_RINGS: tuple[np.ndarray, np.ndarray, np.ndarray, int] = (
    np.zeros((1, 1)), np.ones((1, 1), dtype=np.int64), np.zeros(1, dtype=np.int64), 0)
