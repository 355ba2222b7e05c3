/* Scalar helpers of the C backend (engine/compile/c_backend.py pastes this file into each generated
 * kernel, so its bytes are part of the cache key). Each is the C twin of a helper in
 * engine/compile/numba_runtime.py, operation for operation: lx_interp is numpy.interp step for step
 * (its slope form, exact hits, the NaN fallbacks), the event functions use the same tolerance. Built
 * without fast-math or FMA contraction, so + - * / give numpy's bits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LX_SMALL 1e-6   /* as engine.compile.runtime */

static inline double lx_b2f(int c) { return c ? 1.0 : 0.0; }
static inline double lx_where(int c, double a, double b) { return c ? a : b; }
/* numpy.minimum / numpy.maximum of two floats: a NaN in either gives NaN */
static inline double lx_fmin(double a, double b) { return (a <= b || a != a) ? a : b; }
static inline double lx_fmax(double a, double b) { return (a >= b || a != a) ? a : b; }
static inline double lx_sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : (x == 0 ? 0.0 : x)); }

/* numpy.interp(x, xs, ys) with xs = tab[off:off+n], ys = tab[off+n:off+2n] */
static double lx_interp(double x, const double *tab, int64_t off, int64_t n) {
    int64_t ys0 = off + n;
    if (x != x) return x;
    if (n == 1) return tab[ys0];
    if (x < tab[off]) return tab[ys0];
    if (x > tab[off + n - 1]) return tab[ys0 + n - 1];
    if (x == tab[off + n - 1]) return tab[ys0 + n - 1];
    int64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (tab[off + mid] <= x) lo = mid; else hi = mid;
    }
    int64_t j = lo;
    double xj = tab[off + j], xj1 = tab[off + j + 1];
    double fj = tab[ys0 + j], fj1 = tab[ys0 + j + 1];
    if (x == xj) return fj;
    double slope = (fj1 - fj) / (xj1 - xj);
    double res = slope * (x - xj) + fj;
    if (res != res) {
        res = slope * (x - xj1) + fj1;
        if (res != res && fj == fj1) res = fj;
    }
    return res;
}

/* a table: hold the ends, or with linear (1.0) extend the end slopes */
static double lx_lookup(double x, const double *tab, double foff, double fn, double linear) {
    int64_t off = (int64_t)foff, n = (int64_t)fn;
    double y = lx_interp(x, tab, off, n);
    if (linear != 0.0 && n > 1) {
        int64_t ys0 = off + n;
        double x0 = tab[off], x1 = tab[off + 1], xl = tab[off + n - 1], xm = tab[off + n - 2];
        if (x < x0) {
            double lo = x1 != x0 ? (tab[ys0 + 1] - tab[ys0]) / (x1 - x0) : 0.0;
            y = tab[ys0] + (x - x0) * lo;
        }
        if (x > xl) {
            double hi = xl != xm ? (tab[ys0 + n - 1] - tab[ys0 + n - 2]) / (xl - xm) : 0.0;
            y = tab[ys0 + n - 1] + (x - xl) * hi;
        }
    }
    return y;
}

/* a time-series input: element e of run r; values are (n times, ne elements, nb = 1 or runs) */
static double lx_series(double t, const double *times, int64_t n, const double *values, int64_t ne, int64_t nb,
                        double fe, int64_t r, double hold) {
    int64_t e = (int64_t)fe;
    int64_t b = nb > 1 ? r : 0;
#define LX_VAL(k) values[((k) * ne + e) * nb + b]
    if (t <= times[0]) return LX_VAL(0);
    if (t >= times[n - 1]) return LX_VAL(n - 1);
    int64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (times[mid] <= t) lo = mid; else hi = mid;
    }
    int64_t k = lo;
    if (hold != 0.0 || times[k] == t) return LX_VAL(k);
    double w = (t - times[k]) / (times[k + 1] - times[k]);
    return LX_VAL(k) * (1.0 - w) + LX_VAL(k + 1) * w;
#undef LX_VAL
}

static inline double lx_xidz(double a, double b, double x) { return b == 0 ? x : a / b; }
static inline double lx_zidz(double a, double b) { return b == 0 ? 0.0 : a / b; }
static inline double lx_quantum(double x, double q) { return q <= 0 ? x : q * trunc(x / q); }
static inline double lx_step(double t, double height, double start, double dt) {
    return t + 0.5 * dt > start ? height : 0.0;
}
static inline double lx_ramp(double t, double slope, double start) {
    return t + LX_SMALL > start ? slope * (t - start) : 0.0;
}
static inline double lx_ramp_end(double t, double slope, double start, double end) {
    return t + LX_SMALL > start ? slope * (lx_fmin(end, t) - start) : 0.0;
}
static inline double lx_pulse(double t, double dt, double start) {
    return (t + LX_SMALL >= start && t < start + dt) ? 1.0 : 0.0;
}
static inline double lx_pulse_width(double t, double dt, double start, double width) {
    double w = width > 0 ? width : dt;
    return (t + LX_SMALL >= start && t < start + w) ? 1.0 : 0.0;
}
/* numpy.mod (Python's %: the result takes the divisor's sign) */
static inline double lx_mod(double a, double b) {
    double m = fmod(a, b);
    if (m != 0.0) {
        if ((b < 0) != (m < 0)) m += b;
    } else {
        m = copysign(0.0, b);
    }
    return m;
}
static inline double lx_pulse_train(double t, double dt, double start, double width, double interval, double end) {
    double w = width > 0 ? width : dt;
    double since = t - start;
    double phase = interval > 0 ? lx_mod(since + LX_SMALL, interval) : since + LX_SMALL;
    return (since + LX_SMALL >= 0 && t - LX_SMALL <= end && phase < w) ? 1.0 : 0.0;
}
static inline double lx_log(double x, double base) { return log(x) / log(base); }
/* Eight powers at once (engine.compile.pow_groups: a subscripted variable's elements): glibc's AVX-512 vector pow
 * (libmvec, max error 4 ulp by glibc's tests, as the block kernel's) where the library was linked with libmvec
 * (LX_MVEC) and the CPU has AVX-512F, the C library's pow lane by lane elsewhere (the numbers of single calls).
 * ~60 ns against ~140 ns for seven pow calls (measured 30 Nov, docs/architecture.md). */
#if defined(LX_MVEC) && defined(__x86_64__) && defined(__GNUC__)
/* a GCC vector type rather than immintrin.h, whose parsing alone took about a second of every compile */
#pragma GCC push_options
#pragma GCC target("avx512f")
typedef double lx_v8 __attribute__((vector_size(64)));
lx_v8 _ZGVeN8vv_pow(lx_v8, lx_v8);
static void lx_vpow8_mvec(const double *b, const double *e, double *o) {
    lx_v8 vb, ve, vo;
    memcpy(&vb, b, sizeof vb);
    memcpy(&ve, e, sizeof ve);
    vo = _ZGVeN8vv_pow(vb, ve);
    memcpy(o, &vo, sizeof vo);
}
#pragma GCC pop_options
#endif
static inline void lx_vpow8(const double *b, const double *e, double *o) {
#if defined(LX_MVEC) && defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) { lx_vpow8_mvec(b, e, o); return; }
#endif
    for (int i = 0; i < 8; i++) o[i] = pow(b[i], e[i]);
}
