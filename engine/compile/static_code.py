"""The C backend's init: the static values (equations of constants, INITIAL values) and the initial stocks of
every run computed in C, from the same resolved model and the same scalar statements as the kernel.

Until this module, every C run first called the numpy ``init`` (ModelCode.init_fn: one numpy call per
equation, ~0.1-0.2 ms for Linxiang, more than half of one run's cost) and packed every static value
(``pack_statics``). Here ``ScalarCode._elements`` writes the init equations (each variable's initial pieces
where it has them, its equations otherwise, data series read at t0; in ModelCode's init order, so the
numbers are numpy init's operation for operation), ``c_code._Printer`` prints them as C, and ``lx_init``
evaluates them run by run: it reads the constants (the only inputs; their packing is kept while a run
passes the model's own values), writes the computed static values into the kernel's packed statics and
the initial state, and flags a run whose state starts non-finite or with a non-negative stock below zero
(the batch is then re-run on numpy, as before, for numpy's error).

What it cannot print (element-by-element loops in the init phase, a name it does not know) raises
:class:`NotSupported`; the C backend then keeps numpy's ``init`` for that model (the kernel itself is
unaffected).
"""
from __future__ import annotations

import ctypes
import operator

import numpy as np

from engine.compile.c_call import address, data_args
from engine.compile.c_code import _Printer, assignments
from engine.compile.scalar_code import NotSupported, ScalarCode
from engine.resolve import graph


class StaticCode:
    """``lx_init``'s C source for one model, and the slots it reads (constants) and writes (computed statics)."""

    def __init__(self, sc: ScalarCode) -> None:
        code = sc.code
        lay = code.layout
        self.sc = sc
        if "_streams" in code.globals or lay.delay_fixed:
            raise NotSupported("RANDOM functions and DELAY FIXED are initialised by numpy")
        # per static name in layout order: a constant (an input) or computed here
        self.params = [n for n in lay.static_names if code.phase[n] == "param"]
        self.computed = [n for n in lay.static_names if code.phase[n] != "param"]
        self.param_slots = [sc.slot[n] + e for n in self.params for e in range(sc.rvars[n].size)]
        self.comp_slots = [sc.slot[n] + e for n in self.computed for e in range(sc.rvars[n].size)]
        # where each param sits among the inputs (P0 is in layout.param_names order, data inputs included)
        at = {n: i for i, n in enumerate(lay.param_names)}
        self.param_at = [at[n] for n in self.params]
        self.param_sizes = [sc.rvars[n].size for n in self.params]
        self.source = self._source()

    def _lines(self) -> list[str]:
        """The init phase's statements (generated Python text, one assignment each), in numpy init's order."""
        sc, code = self.sc, self.sc.code
        lay = code.layout
        needed = {s.name for s in lay.stocks} | {n for n in sc.rvars if code.phase[n] == "static"}
        closure = graph.closure(needed, code.init_graph)
        lines: list[str] = []
        for item in code.ordered(code.init_graph, "init"):
            if not isinstance(item, str):
                if item.name in closure:
                    raise NotSupported("initial values computed element by element are initialised by numpy")
                continue
            if item not in closure or code.phase[item] == "param":
                continue
            v = sc.rvars[item]
            if code.phase[item] == "data":
                lines += sc._var(item)       # the series at t (= t0 here)
                continue
            if item not in sc.slot:
                raise NotSupported(f"{item} has no slot")
            base = sc.slot[item]
            pieces = v.init_pieces if v.init_pieces is not None else v.pieces
            lines += sc._elements(v, pieces, lambda e, base=base: f"v{base + e}")
        return lines

    def _source(self) -> str:
        sc, lay = self.sc, self.sc.code.layout
        printer = _Printer(set())
        body: list[str] = []
        for k, slot in enumerate(self.param_slots):
            printer.locals.add(f"v{slot}")
            body.append(f"    const double v{slot} = PI[OFFI[{k}] + r * VRI[{k}]];")
        body += assignments(self._lines(), printer, "double", "the C init")
        for j, slot in enumerate(self.comp_slots):
            body.append(f"    PF[{j} * n + r] = v{slot};")
        nonneg = {row for a, b in lay.non_negative for row in range(a, b)}
        for i in range(lay.rows):
            name = f"v{sc.stock0 + i}"
            if name not in printer.locals:
                raise NotSupported("a stock without an initial value in the init")
            cond = f"!isfinite({name})" + (f" || {name} < 0.0" if i in nonneg else "")
            body.append(f"    S0[{i} * n + r] = {name}; if ({cond}) bad[r] = 1;")
        return f"""
/* Generated by engine.compile.static_code: the static values and initial stocks of run r. Optimised at -O1: it
 * runs once a run (2-3 µs for Linxiang at any level), and -O2 made Linxiang's cold compile 45 % longer. */
__attribute__((optimize("O1")))
static void lx_init_one(int64_t r, int64_t n, const double *restrict PI, const int64_t *restrict OFFI,
                        const int64_t *restrict VRI, const double *restrict TAB, double t0, double dt, double t1,
                        double saveper, LX_DATA, double *restrict PF, double *restrict S0, unsigned char *bad) {{
    const double t = t0;
    (void)t; (void)dt; (void)t1; (void)saveper; (void)TAB; (void)DT; (void)NT; (void)DV; (void)NE; (void)NB;
    (void)PI; (void)OFFI; (void)VRI; (void)PF; (void)S0;
{chr(10).join(body)}
}}

/* every run (an OpenMP loop with threads > 1). Returns the number of runs that cannot start. */
int lx_init(int64_t n, int64_t threads, const double *PI, const int64_t *OFFI, const int64_t *VRI,
            const double *TAB, double t0, double dt, double t1, double saveper, LX_DATA,
            double *PF, double *S0, unsigned char *bad) {{
    (void)threads;
    int64_t failed = 0;
#pragma omp parallel for num_threads((int)threads) if (threads > 1) schedule(static) reduction(+:failed)
    for (int64_t r = 0; r < n; r++) {{
        lx_init_one(r, n, PI, OFFI, VRI, TAB, t0, dt, t1, saveper, LX_DARGS, PF, S0, bad);
        failed += bad[r] != 0;
    }}
    return failed > 0;
}}
{_run_source()}"""


# lx_run's argument block: one 8-byte word each, in this order (engine.compile.c_call.Words packs it). Kinds:
# i an int64, d a double, or the C type of a pointer.
RUN_WORDS: tuple[tuple[str, str], ...] = (
    ("n", "i"), ("threads", "i"), ("PI", "const double *"), ("OFFI", "const int64_t *"),
    ("VRI", "const int64_t *"), ("TAB", "const double *"), ("t0", "d"), ("dt", "d"), ("t1", "d"), ("saveper", "d"),
    ("DT", "const double *const *"), ("NT", "const int64_t *"), ("DV", "const double *const *"),
    ("NE", "const int64_t *"), ("NB", "const int64_t *"), ("PFC", "double *"), ("S0", "double *"),
    ("bad", "unsigned char *"), ("PF", "const double *"), ("OFF", "const int64_t *"), ("VR", "const int64_t *"),
    ("OUTS", "const int64_t *"), ("n_outs", "i"), ("out", "double *"), ("n_steps", "i"), ("save_every", "i"),
    ("method", "i"))


def _run_source() -> str:
    """``lx_run``: one batch of a plain model (no DELAY FIXED, no RANDOM) in one call, init then kernel, its
    arguments read from one block of words that the caller keeps between runs (engine.compile.c_call.Words):
    one ctypes call of one argument instead of two of 18 and 30 (docs/architecture.md, "One run's overhead,
    third pass")."""
    decl = []
    for k, (name, kind) in enumerate(RUN_WORDS):
        if kind == "i":
            decl.append(f"    const int64_t {name} = A[{k}].i;")
        elif kind == "d":
            decl.append(f"    const double {name} = A[{k}].d;")
        else:
            decl.append(f"    {kind}{name} = ({kind})A[{k}].p;")
    return f"""
typedef union {{ int64_t i; double d; void *p; }} lx_word;
static double lx_no_draws[1];
static int64_t lx_no_lags[1] = {{1}};

/* init, then the kernel over runs 0 .. n-1 (no draws, no rings). Returns 0, 1 when a run cannot start, 2 when
   a run failed (the caller re-runs the batch on numpy for its error). */
int lx_run(const lx_word *A) {{
{chr(10).join(decl)}
    memset(bad, 0, (size_t)n);
    if (lx_init(n, threads, PI, OFFI, VRI, TAB, t0, dt, t1, saveper, LX_DARGS, PFC, S0, bad)) return 1;
    lx_kernel(n, threads, S0, PF, OFF, VR, TAB, OUTS, n_outs, out, bad, t0, dt, t1, saveper, n_steps, save_every,
              method, 0, n, lx_no_draws, lx_no_draws, lx_no_lags, lx_no_lags, 0, LX_DARGS);
    for (int64_t r = 0; r < n; r++) if (bad[r]) return 2;
    return 0;
}}
"""


class StaticInit:
    """Runs ``lx_init`` for a batch: the constants packed (kept while the run passes the model's own
    values), the computed statics and the initial state written by C."""

    ARGTYPES = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double,
                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def __init__(self, st: StaticCode, fn) -> None:
        self.st = st
        self.fn = fn
        fn.restype = ctypes.c_int
        fn.argtypes = self.ARGTYPES
        sc = st.sc
        self.n_static = sc.n_static
        self.rows = sc.code.layout.rows
        self.n_comp = len(st.comp_slots)
        slots = np.asarray(st.param_slots, dtype=np.int64)
        self._param_slots = slots
        self._comp_slots = np.asarray(st.comp_slots, dtype=np.int64)
        # the constants among the inputs, as a tuple (itemgetter of one index gives the item itself)
        at = list(st.param_at)
        self._gather = (operator.itemgetter(*at) if len(at) > 1 else (lambda P0: (P0[at[0]],)))
        self._packed: tuple | None = None     # (inputs, PI, OFFI, VRI) of the last call
        self._kernel_idx: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}   # key -> OFF, VR, OFFI

    def _pack(self, P0: list, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The constants as PI with per element its offset and whether it varies by run."""
        st = self.st
        given = self._gather(P0) if st.param_at else ()
        cached = self._packed
        if cached is not None and cached[0] == n and all(map(operator.is_, cached[1], given)):
            return cached[2]
        parts: list[np.ndarray] = []
        offs: list[np.ndarray] = []
        vrs: list[np.ndarray] = []
        pos = 0
        for name, value, e in zip(st.params, given, st.param_sizes, strict=True):
            a = np.asarray(value, dtype=float)
            if a.size == e:     # one value per element, shared by the runs
                parts.append(a.reshape(e))
                offs.append(np.arange(pos, pos + e, dtype=np.int64))
                vrs.append(np.zeros(e, dtype=np.int64))
                pos += e
                continue
            rv = st.sc.rvars[name]
            b = a.shape[-1] if a.ndim == len(rv.sizes) + 1 else 1
            if b not in (1, n):
                raise NotSupported(f"{name}: {b} values for a batch of {n} runs")
            a = np.broadcast_to(a if a.ndim == len(rv.sizes) + 1 else a[..., None], tuple(rv.sizes) + (b,))
            parts.append(a.reshape(e * b))
            offs.append(pos + np.arange(e, dtype=np.int64) * b)
            vrs.append(np.full(e, 1 if b > 1 else 0, dtype=np.int64))
            pos += e * b
        PI = np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(1), dtype=float)
        OFFI = np.ascontiguousarray(np.concatenate(offs) if offs else np.zeros(1, dtype=np.int64))
        VRI = np.ascontiguousarray(np.concatenate(vrs) if vrs else np.zeros(1, dtype=np.int64))
        packed = (PI, OFFI, VRI)
        self._packed = (n, given, packed)   # holds the inputs, so that no other object takes their ids
        return packed

    def start(self, P0: list, n: int, clock, data: list, tables: np.ndarray, threads: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(S0, PF, OFF, VR) as ScalarProgram._start gives them; None when a run cannot start."""
        PI, OFFI, VRI = self._pack(P0, n)
        npi = PI.shape[0]
        # the kernel's statics: the constants as packed, then the computed ones (n_comp, n)
        PF = np.empty(npi + max(self.n_comp, 1) * n)
        PF[:npi] = PI
        S0 = np.empty((self.rows, n)) if self.rows else np.zeros((0, n))
        bad = np.zeros(n, dtype=np.uint8)
        dargs, _keep = data_args(data)
        if self.fn(n, threads, address(PI), address(OFFI), address(VRI), address(tables),
                   clock.t0, clock.dt, clock.t1, clock.saveper, *dargs,
                   PF.ctypes.data + npi * 8, S0.ctypes.data, bad.ctypes.data):
            return None   # a run starts non-finite or below zero: numpy re-runs the batch and says which
        OFF, VR = self._kernel_index(OFFI, VRI, npi, n)
        return S0, PF, OFF, VR

    def _kernel_index(self, OFFI: np.ndarray, VRI: np.ndarray, npi: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per static slot, its offset in PF and whether it varies by run (kept per packing and batch size)."""
        key = (id(OFFI), npi, n)
        got = self._kernel_idx.get(key)
        if got is not None and got[2] is OFFI:
            return got[0], got[1]
        OFF = np.zeros(max(self.n_static, 1), dtype=np.int64)
        VR = np.zeros(max(self.n_static, 1), dtype=np.int64)
        if self._param_slots.size:
            OFF[self._param_slots] = OFFI[:self._param_slots.size]
            VR[self._param_slots] = VRI[:self._param_slots.size]
        if self._comp_slots.size:
            OFF[self._comp_slots] = npi + np.arange(self._comp_slots.size, dtype=np.int64) * n
            VR[self._comp_slots] = 1
        self._kernel_idx = {key: (OFF, VR, OFFI)}
        return OFF, VR
