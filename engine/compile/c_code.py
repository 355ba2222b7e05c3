"""The C backend's source: the numba backend's scalar kernel (engine.compile.scalar_code) printed as C.

The statements come from :class:`ScalarCode` (``_var`` and ``_elements``: one ``name = expression``
per element, in dependency order, the expression being Python text that the generator wrote from the
resolved model's AST). Each statement is parsed with :mod:`ast` and printed as C from a small set of
nodes (names, numbers, + - * /, unary minus, comparisons, calls of the known helpers); anything else
raises :class:`NotSupported`, and the model runs on numpy. The C therefore holds only slot numbers,
numbers (``%.17g``-exact ``repr``, ``INFINITY``/``NAN``) and helper names: no text of the model.

The step loop (``lx_one``) is ``_one`` of the numba kernel written in C, operation for operation:
t = t0 + k*dt, Euler / RK2 / RK4 by number, clipping of non-negative stocks, saving every
``save_every`` steps the slots asked for, a per-run flag on a non-finite saved value or state.
``lx_kernel`` loops over the runs (an OpenMP loop when built with ``-fopenmp`` and asked for threads).
"""
from __future__ import annotations

import ast
import math
import os
from pathlib import Path

from engine.compile.pow_groups import LANES, group_powers
from engine.compile.scalar_code import NotSupported, ScalarCode

RUNTIME_H = Path(__file__).with_name("c_runtime.h")

# helper name in the generated Python -> (C function, number of arguments); None: printed specially
_CALLS: dict[str, tuple[str, int] | None] = {
    "np.abs": ("fabs", 1), "np.exp": ("exp", 1), "np.log": ("log", 1), "np.sqrt": ("sqrt", 1),
    "np.trunc": ("trunc", 1), "np.sin": ("sin", 1), "np.cos": ("cos", 1), "np.tan": ("tan", 1),
    "np.arcsin": ("asin", 1), "np.arccos": ("acos", 1), "np.arctan": ("atan", 1), "np.sign": ("lx_sign", 1),
    "np.log10": ("log10", 1), "np.power": ("pow", 2), "np.fmod": ("fmod", 2),
    "_fmin": ("lx_fmin", 2), "_fmax": ("lx_fmax", 2), "_where": ("lx_where", 3), "_b2f": ("lx_b2f", 1),
    "_xidz": ("lx_xidz", 3), "_zidz": ("lx_zidz", 2), "_quantum": ("lx_quantum", 2), "_step": ("lx_step", 4),
    "_ramp": ("lx_ramp", 3), "_ramp_end": ("lx_ramp_end", 4), "_pulse": ("lx_pulse", 3),
    "_pulse_width": ("lx_pulse_width", 4), "_pulse_train": ("lx_pulse_train", 6), "_log": ("lx_log", 2),
    "_and": None, "_or": None, "_not": None, "_lookup": None, "_series": None, "_rnd": None,
}
# A subscripted variable's powers eight at a time in the kernel (engine.compile.pow_groups; docs/architecture.md,
# "One run's overhead, third pass"); LXSD_C_VPOW=0: one C library pow each, as before
VPOW = os.environ.get("LXSD_C_VPOW", "1") != "0"
_BIN = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_SCALARS = {"t", "dt", "t0", "t1", "saveper", "r"}


def _num(value: float) -> str:
    if value != value:
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    text = repr(float(value))       # shortest text that reads back to the same double, valid C
    return f"({text})" if text.startswith("-") else text


class _Printer:
    """C text of one generated Python expression, over the allowed nodes only."""

    def __init__(self, locals_: set[str]) -> None:
        self.locals = locals_

    def name(self, n: str) -> str:
        if n in self.locals or n in _SCALARS:
            return n
        raise NotSupported(f"the C backend cannot print the name {n!r}")

    def expr(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return _num(float(node.value))
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np":
            if node.attr == "nan":
                return "NAN"
            if node.attr == "inf":
                return "INFINITY"
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            return f"({self.expr(node.left)} {_BIN[type(node.op)]} {self.expr(node.right)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return f"(-{self.expr(node.operand)})"
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
            return f"({self.expr(node.left)} {_CMP[type(node.ops[0])]} {self.expr(node.comparators[0])})"
        if isinstance(node, ast.Call) and not node.keywords:
            return self.call(ast.unparse(node.func), node.args)
        raise NotSupported(f"the C backend cannot print {type(node).__name__}")

    def call(self, fn: str, args: list[ast.expr]) -> str:
        if fn not in _CALLS:
            raise NotSupported(f"the C backend has no helper {fn}")
        spec = _CALLS[fn]
        if spec is not None:
            c_fn, n = spec
            if len(args) != n:
                raise NotSupported(f"{fn} with {len(args)} arguments")
            return f"{c_fn}({', '.join(self.expr(a) for a in args)})"
        if fn in ("_and", "_or") and len(args) == 2:
            return f"({self.expr(args[0])} {'&&' if fn == '_and' else '||'} {self.expr(args[1])})"
        if fn == "_not" and len(args) == 1:
            return f"(!{self.expr(args[0])})"
        if fn == "_lookup" and len(args) == 5 and ast.unparse(args[1]) == "TAB":
            return f"lx_lookup({self.expr(args[0])}, TAB, {', '.join(self.expr(a) for a in args[2:])})"
        if fn == "_rnd" and len(args) == 2:   # a RANDOM draw: this run's table at the step holding t
            return f"lx_rnd(RND, K, {self.expr(args[0])}, t0, dt, {int(float(ast.literal_eval(args[1])))})"
        if fn == "_series" and len(args) == 6:
            times, values = ast.unparse(args[1]), ast.unparse(args[2])
            i = times[1:-1]
            if not (times == f"D{i}t" and values == f"D{i}v" and i.isdigit()):
                raise NotSupported("a data series the C backend cannot name")
            rest = ", ".join(self.expr(a) for a in (args[3], args[4], args[5]))
            return f"lx_series({self.expr(args[0])}, DT[{i}], NT[{i}], DV[{i}], NE[{i}], NB[{i}], {rest})"
        raise NotSupported(f"{fn} with {len(args)} arguments")


def assignments(lines: list[str], printer: _Printer, ctype: str, what: str) -> list[str]:
    """C declarations ``const <ctype> name = expression;`` for generated statements ``name = expression``, one
    each (the scalar generator's form), printed by ``printer``; NotSupported, naming ``what`` (the kernel being
    printed), for anything else or a local assigned twice."""
    out: list[str] = []
    for line in lines:
        tree = ast.parse(line, mode="exec")
        st = tree.body[0] if len(tree.body) == 1 else None
        if not (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)):
            raise NotSupported(f"{what} expects one assignment to one name per statement")
        target = st.targets[0].id
        value = printer.expr(st.value)
        if target in printer.locals:
            raise NotSupported(f"the generated local {target} is assigned twice in {what}")
        printer.locals.add(target)
        out.append(f"    const {ctype} {target} = {value};")
    return out


class CCode:
    """The C source of one model's kernel (from the numba backend's generator) and its slot layout."""

    def __init__(self, sc: ScalarCode) -> None:
        self.sc = sc
        self.groups = 0   # vector power lines (engine.compile.pow_groups) printed
        self.source = self._source()

    def _var(self, name: str) -> list[str]:
        """A dynamic variable's statements, its elements' powers grouped eight at a time where they can be."""
        lines = self.sc._var(name)
        if VPOW:
            lines, k = group_powers(lines, self.groups)
            self.groups += k
        return lines

    def _vector_power(self, target: str, args: list[ast.expr], printer: _Printer, out: list[str]) -> None:
        """``_pgv<g> = _vpow(bases.., exponents..)``: one lx_vpow8 call, its lanes bound to ``_pg<g>_<lane>``."""
        m = len(args) // 2
        if not target.startswith("_pgv") or len(args) != 2 * m or not 0 < m <= LANES:
            raise NotSupported("a vector power line the C backend cannot print")
        g = target[4:]
        pad = ["1.0"] * (LANES - m)
        bases = [printer.expr(a) for a in args[:m]] + pad
        exps = [printer.expr(a) for a in args[m:]] + pad
        out.append(f"    double {target}[{LANES}];")
        out.append(f"    lx_vpow8((const double[{LANES}]){{{', '.join(bases)}}}, "
                   f"(const double[{LANES}]){{{', '.join(exps)}}}, {target});")
        for lane in range(m):
            name = f"_pg{g}_{lane}"
            if name in printer.locals:
                raise NotSupported(f"the generated local {name} is assigned twice")
            printer.locals.add(name)
            out.append(f"    const double {name} = {target}[{lane}];")

    def _statements(self, lines: list[str], printer: _Printer, out: list[str]) -> None:
        for line in lines:
            try:
                tree = ast.parse(line, mode="exec")
            except SyntaxError as exc:
                raise NotSupported(f"the C backend cannot parse a generated statement ({exc.msg})") from None
            if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign):
                raise NotSupported("the C backend expects one assignment per generated statement")
            st = tree.body[0]
            if len(st.targets) != 1 or not isinstance(st.targets[0], ast.Name):
                raise NotSupported("the C backend expects an assignment to one name")
            target = st.targets[0].id
            v = st.value
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "_vpow" and not v.keywords:
                self._vector_power(target, v.args, printer, out)
                continue
            value = printer.expr(st.value)
            if target in printer.locals:
                raise NotSupported(f"the generated local {target} is assigned twice")
            printer.locals.add(target)
            out.append(f"    const double {target} = {value};")

    def _source(self) -> str:
        sc = self.sc
        code = sc.code
        lay = code.layout
        rows, s0, n_in = lay.rows, sc.stock0, sc.n_in
        base = set(sc.base)
        printer = _Printer(set())
        body: list[str] = []
        for slot in range(n_in):
            printer.locals.add(f"v{slot}")
            body.append(f"    const double v{slot} = V[{slot}];")
        for name in sc.order:
            if name in base:
                self._statements(self._var(name), printer, body)
        row = 0
        for s in lay.stocks:
            v = sc.rvars[s.name]
            self._statements(sc._elements(v, v.pieces[:1], lambda e, s=s: f"_d{s.start + e}"), printer, body)
            for e in range(s.rows):
                body.append(f"    dS[{row}] = _d{s.start + e};")
                row += 1
        # the DELAY FIXED inputs of this step (only the step's first evaluation passes X)
        if sc.delay_in:
            body.append("    if (X != NULL) {")
            body += [f"        X[{i}] = v{slot};" for i, slot in enumerate(sc.delay_in)]
            body.append("    }")
        extra: list[str] = []
        for name in sc.order:
            if name not in base:
                self._statements(self._var(name), printer, extra)
        for slot in range(n_in, sc.n_slots):
            extra.append(f"    V[{slot}] = v{slot};")
        # the only model-dependent parts below are integers (sizes, slots, rows)
        clip = "\n".join(f"            for (int64_t i = {a}; i < {b}; i++) if (Sn[i] < 0.0) Sn[i] = 0.0;"
                         for a, b in lay.non_negative)
        R = max(rows, 1)
        header = RUNTIME_H.read_text(encoding="utf-8")
        data = ("const double *const *DT, const int64_t *NT, const double *const *DV, const int64_t *NE, "
                "const int64_t *NB")
        C = max(sc.n_random, 1)
        ND = sc.n_delay
        NX = max(ND, 1)
        WS = sc.n_slots + 6 * R + 2 * NX
        return f"""/* Generated by engine.compile.c_code from engine.compile.scalar_code's statements. */
{header}
#define LX_DATA {data}
#define LX_DARGS DT, NT, DV, NE, NB
#define LX_NRND {C}   /* columns of a run's RANDOM draws table (engine.compile.random_table) */

/* a RANDOM draw: the table's row of the step holding t (the step numbered as random_streams.uniforms does) */
static inline double lx_rnd(const double *RND, int64_t K, double t, double t0, double dt, int64_t col) {{
    double s = floor((t - t0) / dt + 1e-6);
    if (!(s >= 0.0 && s < (double)K)) return NAN;
    return RND[(int64_t)s * LX_NRND + col];
}}

static void lx_eval(double t, double dt, double t0, double t1, double saveper, double *restrict V,
                    double *restrict dS, int full, int64_t r, const double *restrict TAB, const double *restrict RND,
                    int64_t K, double *restrict X, LX_DATA) {{
    (void)t; (void)dt; (void)t0; (void)t1; (void)saveper; (void)r; (void)TAB; (void)RND; (void)K; (void)X;
    (void)DT; (void)NT; (void)DV; (void)NE; (void)NB; (void)dS;
{chr(10).join(body)}
    if (full) {{
    {(chr(10) + '    ').join(extra)}
    }}
}}

/* one run (the numba kernel's _one, with the DELAY FIXED ring buffers of engine.integrate.driver._Pipelines:
   element e's output at step k is its input at step k - LAG[e], its initial value before). W is this
   thread's work space of {WS} doubles, RB its ring space (sum of ROFF's lengths); RND this run's table. */
static void lx_one(int64_t r, int64_t n, double *W, const double *S0, const double *PF, const int64_t *OFF,
                   const int64_t *VR,
                   const double *TAB, const int64_t *OUTS, int64_t n_outs, double *out, unsigned char *bad,
                   double t0, double dt, double t1, double saveper, int64_t n_steps, int64_t save_every, int64_t method,
                   const double *RND, const double *D0, const int64_t *LAG, const int64_t *ROFF, double *RB,
                   LX_DATA) {{
    double *V = W, *S = W + {sc.n_slots}, *Sn = S + {R}, *k1 = Sn + {R}, *k2 = k1 + {R}, *k3 = k2 + {R}, *k4 = k3 + {R};
    double *X = k4 + {R};
    const int64_t K = n_steps + 1;
    (void)X; (void)D0; (void)LAG; (void)ROFF; (void)RB;
    memset(V, 0, sizeof(double) * {sc.n_slots});
    memset(k1, 0, sizeof(double) * {4 * R});
    for (int64_t i = 0; i < {sc.n_static}; i++) V[i] = PF[OFF[i] + r * VR[i]];
    for (int64_t i = 0; i < {rows}; i++) S[i] = S0[i * n + r];
    for (int64_t e = 0; e < {ND}; e++) {{
        const int64_t lag = LAG[e * n + r];
        const double d0 = D0[e * n + r];
        for (int64_t q = 0; q < lag; q++) RB[ROFF[e] + q] = d0;
    }}
    int64_t j = 0;
    for (int64_t k = 0; k < n_steps + 1; k++) {{
        double t = t0 + (double)k * dt;
        for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i];
        for (int64_t e = 0; e < {ND}; e++) V[{sc.delay0} + e] = RB[ROFF[e] + k % LAG[e * n + r]];
        int save = k % save_every == 0;
        lx_eval(t, dt, t0, t1, saveper, V, k1, save, r, TAB, RND, K, X, LX_DARGS);
        if (save) {{
            for (int64_t c = 0; c < n_outs; c++) {{
                double x = V[OUTS[c]];
                out[(j * n_outs + c) * n + r] = x;
                if (!isfinite(x)) bad[r] = 1;
            }}
            j += 1;
        }}
        if (k >= n_steps || bad[r]) break;
        if (method == 0) {{
            for (int64_t i = 0; i < {rows}; i++) Sn[i] = S[i] + dt * k1[i];
        }} else if (method == 1) {{
            for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i] + dt * k1[i];
            lx_eval(t + dt, dt, t0, t1, saveper, V, k2, 0, r, TAB, RND, K, NULL, LX_DARGS);
            for (int64_t i = 0; i < {rows}; i++) Sn[i] = S[i] + (0.5 * dt) * (k1[i] + k2[i]);
        }} else {{
            double h = 0.5 * dt;
            for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i] + h * k1[i];
            lx_eval(t + h, dt, t0, t1, saveper, V, k2, 0, r, TAB, RND, K, NULL, LX_DARGS);
            for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i] + h * k2[i];
            lx_eval(t + h, dt, t0, t1, saveper, V, k3, 0, r, TAB, RND, K, NULL, LX_DARGS);
            for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i] + dt * k3[i];
            lx_eval(t + dt, dt, t0, t1, saveper, V, k4, 0, r, TAB, RND, K, NULL, LX_DARGS);
            for (int64_t i = 0; i < {rows}; i++) Sn[i] = S[i] + (dt / 6.0) * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i]);
        }}
{clip}
        for (int64_t i = 0; i < {rows}; i++) {{
            if (!isfinite(Sn[i])) bad[r] = 1;
            S[i] = Sn[i];
        }}
        for (int64_t e = 0; e < {ND}; e++) RB[ROFF[e] + k % LAG[e * n + r]] = X[e];
        if (bad[r]) break;
    }}
}}

/* runs r_lo .. r_hi-1 of a batch of n; threads > 1: an OpenMP loop (when built with -fopenmp). RND: the
   draws tables of these runs, (r_hi - r_lo) x (n_steps + 1) x LX_NRND; RING: the ring space a run needs.
   Returns 0. */
int lx_kernel(int64_t n, int64_t threads, const double *S0, const double *PF, const int64_t *OFF, const int64_t *VR,
              const double *TAB, const int64_t *OUTS, int64_t n_outs, double *out, unsigned char *bad,
              double t0, double dt, double t1, double saveper, int64_t n_steps, int64_t save_every, int64_t method,
              int64_t r_lo, int64_t r_hi, const double *RND, const double *D0, const int64_t *LAG,
              const int64_t *ROFF, int64_t RING, LX_DATA) {{
    (void)threads;
#pragma omp parallel num_threads((int)threads) if (threads > 1)
    {{
        double *W = (double *)malloc(sizeof(double) * {WS});
        double *RB = (double *)malloc(sizeof(double) * (size_t)(RING > 0 ? RING : 1));
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = r_lo; r < r_hi; r++) {{
            if (W == NULL || RB == NULL) {{ bad[r] = 1; continue; }}   /* no memory: the caller re-runs on numpy */
            lx_one(r, n, W, S0, PF, OFF, VR, TAB, OUTS, n_outs, out, bad, t0, dt, t1, saveper, n_steps,
                   save_every, method, RND + (r - r_lo) * (n_steps + 1) * LX_NRND, D0, LAG, ROFF, RB, LX_DARGS);
        }}
        free(W);
        free(RB);
    }}
    return 0;
}}

int lx_n_slots(void) {{ return {sc.n_slots}; }}
"""
