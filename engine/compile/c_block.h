/* Block helpers of the C backend's batch kernel (engine/compile/block_code.py): LW runs side by side in GCC
 * vector types, so that + - * / and comparisons are SIMD instructions (AVX-512: 8 doubles), and pow, exp, log
 * are glibc's vector functions (libmvec) where the CPU has AVX-512. Every other helper runs c_runtime.h's scalar
 * helper lane by lane, so its numbers are the scalar kernel's. Pasted into each generated block kernel (its
 * bytes are part of the cache key). */
#define LW 8
typedef double vd __attribute__((vector_size(8 * LW)));
typedef int64_t vm __attribute__((vector_size(8 * LW)));

static inline vd VB(double x) { vd v = {0}; return v + x; }
static inline vd lxv_where(vm c, vd a, vd b) { return (vd)((c & (vm)a) | (~c & (vm)b)); }
static inline vd lxv_b2f(vm c) { return __builtin_convertvector(-c, vd); }

#define LXV1(name, f) static inline vd name(vd a) { vd o; for (int l = 0; l < LW; l++) o[l] = f(a[l]); return o; }
#define LXV2(name, f) static inline vd name(vd a, vd b) { \
    vd o; for (int l = 0; l < LW; l++) o[l] = f(a[l], b[l]); return o; }
#define LXV3(name, f) static inline vd name(vd a, vd b, vd c) { \
    vd o; for (int l = 0; l < LW; l++) o[l] = f(a[l], b[l], c[l]); return o; }
#define LXV4(name, f) static inline vd name(vd a, vd b, vd c, vd d) { \
    vd o; for (int l = 0; l < LW; l++) o[l] = f(a[l], b[l], c[l], d[l]); return o; }
#define LXV6(name, f) static inline vd name(vd a, vd b, vd c, vd d, vd e, vd g) { \
    vd o; for (int l = 0; l < LW; l++) o[l] = f(a[l], b[l], c[l], d[l], e[l], g[l]); return o; }

#if defined(__AVX512F__) && defined(LX_LIBMVEC)
/* glibc's libmvec (x86-64, AVX-512 variants): max error 4 ulp by glibc's tests, as numpy's own SIMD functions */
vd _ZGVeN8vv_pow(vd, vd);
vd _ZGVeN8v_exp(vd);
vd _ZGVeN8v_log(vd);
static inline vd lxv_pow(vd a, vd b) { return _ZGVeN8vv_pow(a, b); }
static inline vd lxv_exp(vd a) { return _ZGVeN8v_exp(a); }
static inline vd lxv_log(vd a) { return _ZGVeN8v_log(a); }
#else
LXV2(lxv_pow, pow)
LXV1(lxv_exp, exp)
LXV1(lxv_log, log)
#endif
LXV1(lxv_fabs, fabs)
LXV1(lxv_sqrt, sqrt)
LXV1(lxv_trunc, trunc)
LXV1(lxv_sin, sin)
LXV1(lxv_cos, cos)
LXV1(lxv_tan, tan)
LXV1(lxv_asin, asin)
LXV1(lxv_acos, acos)
LXV1(lxv_atan, atan)
LXV1(lxv_lx_sign, lx_sign)
LXV1(lxv_log10, log10)
LXV2(lxv_fmod, fmod)
LXV2(lxv_lx_fmin, lx_fmin)
LXV2(lxv_lx_fmax, lx_fmax)
LXV3(lxv_lx_xidz, lx_xidz)
LXV2(lxv_lx_zidz, lx_zidz)
LXV2(lxv_lx_quantum, lx_quantum)
LXV4(lxv_lx_step, lx_step)
LXV3(lxv_lx_ramp, lx_ramp)
LXV4(lxv_lx_ramp_end, lx_ramp_end)
LXV3(lxv_lx_pulse, lx_pulse)
LXV4(lxv_lx_pulse_width, lx_pulse_width)
LXV6(lxv_lx_pulse_train, lx_pulse_train)
LXV2(lxv_lx_log, lx_log)

static inline vd lxv_lookup(vd x, const double *tab, double off, double n, double linear) {
    vd o; for (int l = 0; l < LW; l++) o[l] = lx_lookup(x[l], tab, off, n, linear); return o;
}
/* lane l is run r0 + l (padding lanes past the batch read the last run) */
static inline vd lxv_series(vd t, const double *times, int64_t nt, const double *values, int64_t ne, int64_t nb,
                            double fe, int64_t r0, int64_t n, double hold) {
    vd o;
    if (nb == 1) return VB(lx_series(t[0], times, nt, values, ne, nb, fe, 0, hold));   /* t is every lane's */
    for (int l = 0; l < LW; l++) o[l] = lx_series(t[l], times, nt, values, ne, nb, fe, r0 + l < n ? r0 + l : n - 1, hold);
    return o;
}
