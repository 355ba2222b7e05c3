"""The C backend's batch kernel: the scalar kernel's statements over blocks of LW = 8 runs side by side.

Each value of the model is a GCC vector of 8 doubles (one lane a run), so every + - * / and comparison of the
generated equations is one SIMD instruction (AVX-512 where the CPU has it: built with ``-march=native``), and
pow, exp and log call glibc's vector functions (libmvec) on AVX-512 machines. The statements are the ones
``ScalarCode`` writes for the scalar kernel (``c_code.CCode`` prints the same), printed by a vector printer;
the step loop is ``lx_one``'s, per block: Euler/RK2/RK4, clipping, saving, the non-finite flag (a block stops
at its first non-finite lane: the batch then re-runs on numpy anyway). The last block is padded with copies
of the batch's last run, whose lanes are not saved. Only where ``cc -march=native`` targets AVX-512 (elsewhere the
8-lane vectors are emulated, slower to compile and no faster), and not for DELAY FIXED or RANDOM functions.

Same numbers: + - * / round as the scalar kernel's (no FMA: ``-ffp-contract=off``; no fast-math); pow, exp and
log from libmvec differ from glibc's scalar functions by a few ulp (as numpy's own SIMD functions do), so the
batch kernel equals numpy to 1.7e-15 relative on 2 000 Linxiang runs (the scalar kernel: 1.9e-15), not bit for bit
(tests/test_backend_c_block.py: 1e-10). Used from ``BLOCK_MIN_RUNS`` (16) runs on (one run stays on the scalar
kernel, the closest to numpy); built on the first such batch, into its own library (cached as the scalar one, the
key adding the CPU's model and flags, since ``-march=native`` code runs only on a CPU like the one that built it).
"""
from __future__ import annotations

import ast
import ctypes
import hashlib
import os
import subprocess
from pathlib import Path

from engine.compile.c_code import _CALLS, _num, _Printer, assignments
from engine.compile.scalar_code import NotSupported, ScalarCode
from engine.resolve import graph

BLOCK_H = Path(__file__).with_name("c_block.h")
LW = 8
# batches from this size on use the block kernel. Linxiang, CPU per batch (load 5): 8 runs 1.3 ms against 2.7 ms on
# the scalar kernel, 16 runs 1.7 against 5.0, 64 runs 5.7 against 15.2. Its compile (2-3 s for Linxiang, once per
# model and machine: disk cache) is then paid by batches only, never by one run or a handful of scenarios.
BLOCK_MIN_RUNS = int(os.environ.get("LXSD_C_BLOCK_MIN_RUNS", "16"))
# -O3: 66 against 76 µs a Linxiang run at -O2 (compiling 2.6 s against 2.1 s); -O1 108 µs (measured 30 Nov, load 4.6)
FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno",
         "-fno-strict-aliasing", "-DLX_LIBMVEC")
_TIME = {"t": "tv", "dt": "dtv", "t0": "t0v", "t1": "t1v", "saveper": "spv"}


class _VPrinter(_Printer):
    """The scalar printer's C, on vectors: numbers broadcast, helpers lane-wise or libmvec (c_block.h)."""

    def name(self, n: str) -> str:
        if n in self.locals:
            return n
        if n in _TIME:
            return _TIME[n]
        raise NotSupported(f"the block kernel cannot print the name {n!r}")

    def expr(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return f"VB({_num(float(node.value))})"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np" \
                and node.attr in ("nan", "inf"):
            return f"VB({'NAN' if node.attr == 'nan' else 'INFINITY'})"
        return super().expr(node)

    @staticmethod
    def raw(node: ast.expr) -> str:
        """A number argument that stays a scalar (table offsets and sizes, series element and hold)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return _num(float(node.value))
        raise NotSupported("the block kernel expects a number here")

    def call(self, fn: str, args: list[ast.expr]) -> str:
        if fn not in _CALLS:
            raise NotSupported(f"the block kernel has no helper {fn}")
        spec = _CALLS[fn]
        if spec is not None:
            c_fn, n = spec
            if len(args) != n:
                raise NotSupported(f"{fn} with {len(args)} arguments")
            if c_fn == "lx_where":
                return f"lxv_where({', '.join(self.expr(a) for a in args)})"
            if c_fn == "lx_b2f":
                return f"lxv_b2f({self.expr(args[0])})"
            return f"lxv_{c_fn}({', '.join(self.expr(a) for a in args)})"
        if fn in ("_and", "_or") and len(args) == 2:
            return f"({self.expr(args[0])} {'&' if fn == '_and' else '|'} {self.expr(args[1])})"
        if fn == "_not" and len(args) == 1:
            return f"(~{self.expr(args[0])})"
        if fn == "_lookup" and len(args) == 5 and ast.unparse(args[1]) == "TAB":
            return f"lxv_lookup({self.expr(args[0])}, TAB, {', '.join(self.raw(a) for a in args[2:])})"
        if fn == "_series" and len(args) == 6:
            times, values = ast.unparse(args[1]), ast.unparse(args[2])
            i = times[1:-1]
            if not (times == f"D{i}t" and values == f"D{i}v" and i.isdigit()):
                raise NotSupported("a data series the block kernel cannot name")
            return (f"lxv_series({self.expr(args[0])}, DT[{i}], NT[{i}], DV[{i}], NE[{i}], NB[{i}], "
                    f"{self.raw(args[3])}, r0, n, {self.raw(args[5])})")
        raise NotSupported(f"{fn} with {len(args)} arguments")


def _statements(lines: list[str], printer: _VPrinter, out: list[str]) -> None:
    out += assignments(lines, printer, "vd", "the block kernel")


class BlockCode:
    """The C source of one model's block kernel ``lx_kernel_block`` (the arguments of ``lx_kernel``)."""

    def __init__(self, sc: ScalarCode, runtime_source: str) -> None:
        self.sc = sc
        self.source = self._source(runtime_source)

    def _source(self, runtime_source: str) -> str:
        sc = self.sc
        code = sc.code
        lay = code.layout
        rows, s0, n_in = lay.rows, sc.stock0, sc.stock0 + lay.rows
        rate_deps: set[str] = set()
        for s in lay.stocks:
            for p in sc.rvars[s.name].pieces:
                rate_deps |= graph.node_deps(p.ast, sc.rvars)
        base = graph.closure({d for d in rate_deps if d in code.dyn_graph}, code.dyn_graph)
        printer = _VPrinter(set())
        body: list[str] = []
        for slot in range(n_in):
            printer.locals.add(f"v{slot}")
            body.append(f"    const vd v{slot} = V[{slot}];")
        for name in sc.order:
            if name in base:
                _statements(sc._var(name), printer, body)
        row = 0
        for s in lay.stocks:
            v = sc.rvars[s.name]
            _statements(sc._elements(v, v.pieces[:1], lambda e, s=s: f"_d{s.start + e}"), printer, body)
            for e in range(s.rows):
                body.append(f"    dS[{row}] = _d{s.start + e};")
                row += 1
        extra: list[str] = []
        for name in sc.order:
            if name not in base:
                _statements(sc._var(name), printer, extra)
        for slot in range(n_in, sc.n_slots):
            extra.append(f"    V[{slot}] = v{slot};")
        clip = "\n".join(f"            for (int64_t i = {a}; i < {b}; i++) "
                         "Sn[i] = lxv_where(Sn[i] < 0.0, VB(0.0), Sn[i]);" for a, b in lay.non_negative)
        R = max(rows, 1)
        W = sc.n_slots + 6 * R
        data = ("const double *const *DT, const int64_t *NT, const double *const *DV, const int64_t *NE, "
                "const int64_t *NB")
        return f"""/* Generated by engine.compile.block_code from engine.compile.scalar_code's statements. */
{runtime_source}
{BLOCK_H.read_text(encoding="utf-8")}
#define LX_DATA {data}
#define LX_DARGS DT, NT, DV, NE, NB

static void lx_evalv(double t, double dt, double t0, double t1, double saveper, vd *restrict V, vd *restrict dS,
                     int full, int64_t r0, int64_t n, const double *restrict TAB, LX_DATA) {{
    const vd tv = VB(t), dtv = VB(dt), t0v = VB(t0), t1v = VB(t1), spv = VB(saveper);
    (void)tv; (void)dtv; (void)t0v; (void)t1v; (void)spv; (void)r0; (void)n; (void)TAB;
    (void)DT; (void)NT; (void)DV; (void)NE; (void)NB; (void)dS;
{chr(10).join(body)}
    if (full) {{
    {(chr(10) + '    ').join(extra)}
    }}
}}

/* the runs r0 .. r0 + LW - 1 (lanes past n repeat run n - 1 and are not saved); W: {W} vectors */
static void lx_block(int64_t r0, int64_t n, vd *W, const double *S0, const double *PF, const int64_t *OFF,
                     const int64_t *VR, const double *TAB, const int64_t *OUTS, int64_t n_outs, double *out,
                     unsigned char *bad, double t0, double dt, double t1, double saveper, int64_t n_steps,
                     int64_t save_every, int64_t method, LX_DATA) {{
    vd *V = W, *S = W + {sc.n_slots}, *Sn = S + {R}, *k1 = Sn + {R}, *k2 = k1 + {R}, *k3 = k2 + {R}, *k4 = k3 + {R};
    int64_t rl[LW];
    int lanes = 0;
    for (int l = 0; l < LW; l++) {{ rl[l] = r0 + l < n ? r0 + l : n - 1; lanes += r0 + l < n; }}
    memset(V, 0, sizeof(vd) * {sc.n_slots});
    memset(k1, 0, sizeof(vd) * {4 * R});
    for (int64_t i = 0; i < {sc.n_static}; i++)
        for (int l = 0; l < LW; l++) V[i][l] = PF[OFF[i] + rl[l] * VR[i]];
    for (int64_t i = 0; i < {rows}; i++)
        for (int l = 0; l < LW; l++) S[i][l] = S0[i * n + rl[l]];
    int64_t j = 0;
    int failed = 0;
    for (int64_t k = 0; k < n_steps + 1; k++) {{
        double t = t0 + (double)k * dt;
        for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i];
        int save = k % save_every == 0;
        lx_evalv(t, dt, t0, t1, saveper, V, k1, save, r0, n, TAB, LX_DARGS);
        if (save) {{
            for (int64_t c = 0; c < n_outs; c++) {{
                vd x = V[OUTS[c]];
                for (int l = 0; l < lanes; l++) {{
                    out[(j * n_outs + c) * n + r0 + l] = x[l];
                    if (!isfinite(x[l])) {{ bad[r0 + l] = 1; failed = 1; }}
                }}
            }}
            j += 1;
        }}
        if (k >= n_steps || failed) break;
        if (method == 0) {{
            for (int64_t i = 0; i < {rows}; i++) Sn[i] = S[i] + dt * k1[i];
        }} else if (method == 1) {{
            for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i] + dt * k1[i];
            lx_evalv(t + dt, dt, t0, t1, saveper, V, k2, 0, r0, n, TAB, LX_DARGS);
            for (int64_t i = 0; i < {rows}; i++) Sn[i] = S[i] + (0.5 * dt) * (k1[i] + k2[i]);
        }} else {{
            double h = 0.5 * dt;
            for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i] + h * k1[i];
            lx_evalv(t + h, dt, t0, t1, saveper, V, k2, 0, r0, n, TAB, LX_DARGS);
            for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i] + h * k2[i];
            lx_evalv(t + h, dt, t0, t1, saveper, V, k3, 0, r0, n, TAB, LX_DARGS);
            for (int64_t i = 0; i < {rows}; i++) V[{s0} + i] = S[i] + dt * k3[i];
            lx_evalv(t + dt, dt, t0, t1, saveper, V, k4, 0, r0, n, TAB, LX_DARGS);
            for (int64_t i = 0; i < {rows}; i++) Sn[i] = S[i] + (dt / 6.0) * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i]);
        }}
{clip}
        for (int64_t i = 0; i < {rows}; i++) {{
            for (int l = 0; l < lanes; l++) if (!isfinite(Sn[i][l])) {{ bad[r0 + l] = 1; failed = 1; }}
            S[i] = Sn[i];
        }}
        if (failed) break;
    }}
}}

/* every block of runs; threads > 1: an OpenMP loop (when built with -fopenmp). Returns 0. */
int lx_kernel_block(int64_t n, int64_t threads, const double *S0, const double *PF, const int64_t *OFF,
                    const int64_t *VR, const double *TAB, const int64_t *OUTS, int64_t n_outs, double *out,
                    unsigned char *bad, double t0, double dt, double t1, double saveper, int64_t n_steps,
                    int64_t save_every, int64_t method, LX_DATA) {{
    (void)threads;
    int64_t blocks = (n + LW - 1) / LW;
#pragma omp parallel num_threads((int)threads) if (threads > 1)
    {{
        vd *W = (vd *)aligned_alloc(64, sizeof(vd) * {W});
#pragma omp for schedule(dynamic, 2)
        for (int64_t b = 0; b < blocks; b++) {{
            if (W == NULL) {{ bad[b * LW] = 1; continue; }}   /* no memory: the caller re-runs the batch on numpy */
            lx_block(b * LW, n, W, S0, PF, OFF, VR, TAB, OUTS, n_outs, out, bad, t0, dt, t1, saveper, n_steps,
                     save_every, method, LX_DARGS);
        }}
        free(W);
    }}
    return 0;
}}
"""


def cpu_key() -> str:
    """The CPU's model name and flags (``-march=native`` code runs on such a CPU only): part of the cache key."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown cpu"
    keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(keep)


_avx512: dict[str, bool] = {}


def native_avx512(cc: str) -> bool:
    """Whether ``cc -march=native`` targets AVX-512 (asked once per compiler). Without it the 8-lane vectors are
    emulated: measured on this machine with the x86-64 baseline, Linxiang's block kernel compiled in 41 s and ran
    at 235 µs a run, no faster than the scalar kernel."""
    if cc not in _avx512:
        try:
            done = subprocess.run([cc, "-march=native", "-dM", "-E", "-x", "c", os.devnull], capture_output=True,
                                  text=True, timeout=60, check=False)
            _avx512[cc] = done.returncode == 0 and "__AVX512F__" in done.stdout
        except (OSError, subprocess.SubprocessError):
            _avx512[cc] = False
    return _avx512[cc]


def build_block_kernel(sc: ScalarCode, runtime_source: str):
    """The block kernel's function (ctypes, the argument types of lx_kernel), compiled or from the disk cache;
    raises NotSupported where it cannot be generated or compiled (the caller keeps the scalar kernel)."""
    from engine.compile import c_backend

    info = c_backend.compiler()
    if info is None:
        raise NotSupported("no C compiler found")
    cc, line, omp = info
    lay = sc.code.layout
    if lay.delay_fixed or "_streams" in sc.code.globals:   # state the block kernel does not carry: scalar kernel
        raise NotSupported("DELAY FIXED and RANDOM functions run on the scalar kernel")
    if not native_avx512(cc):
        raise NotSupported("the compiler's native target has no AVX-512 (the block kernel would not be faster)")
    n_tables = len(sc.tables)
    src = BlockCode(sc, runtime_source).source.encode("utf-8")
    if len(sc.tables) != n_tables:   # the statements are the scalar kernel's: they name no table it lacks
        raise NotSupported("the block kernel's statements added a lookup table")
    flags = list(FLAGS) + (["-fopenmp"] if omp else [])
    h = hashlib.sha256(src)
    for part in (line, " ".join(flags), cpu_key()):
        h.update(part.encode())
    file = c_backend.cache_dir() / f"lxsd_block_{h.hexdigest()[:32]}.so"
    if not file.is_file():
        try:
            file = c_backend._build(cc, [*flags, "-Wl,--no-as-needed", "-lmvec"], src, file)
        except NotSupported:
            # no libmvec (not glibc, not x86-64): the lane-by-lane pow/exp/log (scalar numbers, still SIMD + - * /)
            flags = [f for f in flags if f != "-DLX_LIBMVEC"]
            file = c_backend._build(cc, flags, src, file)
    lib = ctypes.CDLL(str(file))
    fn = lib.lx_kernel_block
    fn.restype = ctypes.c_int
    P, L, D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    fn.argtypes = [L, L, P, P, P, P, P, P, L, P, P, D, D, D, D, L, L, L, P, P, P, P, P]
    return fn


def block_kernel(prog):
    """The block kernel of a CProgram, built once; None where it cannot be (the scalar kernel runs the batch)."""
    fn = getattr(prog, "_block_fn", None)
    if fn is None and not getattr(prog, "_block_broken", None):
        from engine.compile.c_code import RUNTIME_H

        try:
            fn = prog._block_fn = build_block_kernel(prog.scalar(), RUNTIME_H.read_text(encoding="utf-8"))
        except (NotSupported, OSError) as exc:
            prog._block_broken = str(exc) or type(exc).__name__
    return fn
