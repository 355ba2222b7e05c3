"""The JAX versions of the helpers the generated step function calls (``_rt``), and the ``np`` it sees.

The compiled (JAX) backend runs the very source the numpy backend runs, generated in its
functional form (``ModelCode.dynamic_source(functional=True)``), with ``np`` bound to
:data:`NP` (``jax.numpy``) and ``_rt`` to this module. Each helper follows its numpy twin in
``engine.compile.runtime`` operation for operation, so that the two backends agree to rounding.

A helper or numpy function without a JAX version here raises :class:`Unsupported` while the
step is traced; the caller then runs the model on numpy and says why in one line. New
builtins added to ``runtime`` therefore fall back until they are added here.
"""
from __future__ import annotations

import os

# XLA's CPU compiler contracts a + b*c into a fused multiply-add, which rounds once where numpy rounds
# twice: 1-ulp differences that a discontinuity (INTEGER, a comparison) turns into whole units. Capping
# the instruction set at AVX (no FMA) makes the arithmetic numpy's, operation for operation. It must be
# set before JAX starts its CPU backend; set XLA_FLAGS yourself (any xla_cpu_max_isa) to choose otherwise.
if "xla_cpu_max_isa" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=AVX").strip()

import jax  # after XLA_FLAGS
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)   # float64 throughout, as the numpy backend

_SMALL = 1e-6   # as engine.compile.runtime


class Unsupported(Exception):
    """A construct the compiled backend does not have (the run falls back to numpy)."""


class _NumpyShim:
    """``np`` for the generated code: jax.numpy, refusing what it lacks."""

    nan = np.nan
    inf = np.inf
    intp = np.intp

    def __getattr__(self, name: str):
        fn = getattr(jnp, name, None)
        if fn is None:
            raise Unsupported(f"numpy.{name} has no compiled version")
        return fn


NP = _NumpyShim()


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    # a helper of engine.compile.runtime without a version here (vector functions, allocation, ...)
    raise Unsupported(f"the builtin behind _rt.{name} has no compiled version")


def _batch(x, nd: int) -> int:
    return x.shape[-1] if getattr(x, "ndim", 0) == nd + 1 else 1


def fit(x, sizes: tuple[int, ...]):
    """x as an array (*sizes, batch), batch being x's last axis or 1 (runtime.fit)."""
    if not hasattr(x, "ndim"):
        return jnp.full(sizes + (1,), x, dtype=float)
    return jnp.broadcast_to(jnp.asarray(x, dtype=float), sizes + (_batch(x, len(sizes)),))


def rows(x, n_rows: int, n: int):
    """A stock's net flow as rows of the packed state (n_rows, n)."""
    return jnp.broadcast_to(jnp.reshape(jnp.asarray(x, dtype=float), (n_rows, -1)), (n_rows, n))


def assemble(sizes: tuple[int, ...], parts: list):
    """A subscripted value from pieces [(index, value), ...], later ones win (runtime.assemble)."""
    b = 1
    vals = []
    for idx, v in parts:
        v = jnp.asarray(v, dtype=float)
        if v.ndim == len(sizes) + 1:
            b = max(b, v.shape[-1])
        vals.append((idx, v))
    out = jnp.zeros((*sizes, b))
    for idx, v in vals:
        out = out.at[idx].set(jnp.broadcast_to(v, out[idx].shape) if v.ndim else v)
    return out


def xidz(a, b, x):
    zero = b == 0
    return jnp.where(zero, x, a / jnp.where(zero, 1.0, b))


def zidz(a, b):
    zero = b == 0
    return jnp.where(zero, 0.0, a / jnp.where(zero, 1.0, b))


def quantum(x, q):
    q = jnp.asarray(q, dtype=float)
    return jnp.where(q <= 0, x, q * jnp.trunc(jnp.divide(x, jnp.where(q <= 0, 1.0, q))))


def step(t, height, start, dt):
    return jnp.where(t + 0.5 * dt > start, height, 0.0)


def ramp(t, slope, start, end=None):
    final = t if end is None else jnp.minimum(end, t)
    return jnp.where(t + _SMALL > start, slope * (final - jnp.asarray(start, dtype=float)), 0.0)


def pulse(t, dt, start, width=None):
    w = dt if width is None else jnp.where(jnp.asarray(width) > 0, width, dt)
    return ((t + _SMALL >= start) & (t < jnp.asarray(start) + w)) * 1.0


def pulse_train(t, dt, start, width, interval, end):
    w = jnp.where(jnp.asarray(width) > 0, width, dt)
    since = t - jnp.asarray(start, dtype=float)
    interval = jnp.asarray(interval, dtype=float)
    phase = jnp.where(interval > 0, jnp.mod(since + _SMALL, jnp.where(interval > 0, interval, 1.0)), since + _SMALL)
    return ((since + _SMALL >= 0) & (t - _SMALL <= end) & (phase < w)) * 1.0


def _interp(x, xp: np.ndarray, fp: np.ndarray):
    """numpy.interp, step for step (its slope form and exact hits), for tables known at compile time."""
    x = jnp.asarray(x, dtype=float)
    xp = np.asarray(xp, dtype=float)
    fp = np.asarray(fp, dtype=float)
    if len(xp) == 1:
        return jnp.full(x.shape, fp[0])
    with np.errstate(all="ignore"):
        slopes = (fp[1:] - fp[:-1]) / (xp[1:] - xp[:-1])
    j = jnp.clip(jnp.searchsorted(xp, x, side="right", method="compare_all") - 1, 0, len(xp) - 2)
    jxp, jfp, jsl = jnp.asarray(xp), jnp.asarray(fp), jnp.asarray(slopes)
    xj, fj, xj1, fj1, sj = jxp[j], jfp[j], jxp[j + 1], jfp[j + 1], jsl[j]
    res = sj * (x - xj) + fj
    res = jnp.where(jnp.isnan(res), sj * (x - xj1) + fj1, res)
    res = jnp.where(jnp.isnan(res) & (fj == fj1), fj, res)
    res = jnp.where(x == xj, fj, res)
    res = jnp.where(x >= xp[-1], fp[-1], res)
    return jnp.where(x < xp[0], fp[0], res)


def lookup(x, xs, ys, linear: bool = False):
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    y = _interp(x, xs, ys)
    if linear and len(xs) > 1:
        x = jnp.asarray(x, dtype=float)
        lo_slope = (ys[1] - ys[0]) / (xs[1] - xs[0]) if xs[1] != xs[0] else 0.0
        hi_slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) if xs[-1] != xs[-2] else 0.0
        y = jnp.where(x < xs[0], ys[0] + (x - xs[0]) * lo_slope, y)
        y = jnp.where(x > xs[-1], ys[-1] + (x - xs[-1]) * hi_slope, y)
    return y


def lookup_multi(x, idx, xs_list, ys_list, linear: bool = False):
    x = jnp.asarray(x, dtype=float)
    shape = jnp.broadcast_shapes(x.shape, np.shape(idx))
    x, idx = jnp.broadcast_to(x, shape), jnp.broadcast_to(jnp.asarray(idx), shape)
    out = jnp.zeros(shape)
    for e in range(len(xs_list)):
        out = jnp.where(idx == e, lookup(x, xs_list[e], ys_list[e], linear), out)
    return out


def series(t, times, values, hold: bool):
    """A time-series input at (traced) time t; values (T, *dims, batch); ends held (runtime.series)."""
    n = times.shape[0]
    k = jnp.clip(jnp.searchsorted(times, t, side="right", method="compare_all") - 1, 0, n - 1)
    k1 = jnp.minimum(k + 1, n - 1)
    vk = values[k]
    if not hold:
        span = times[k1] - times[k]
        w = (t - times[k]) / jnp.where(span == 0, 1.0, span)
        mid = vk * (1.0 - w) + values[k1] * w
        vk = jnp.where(times[k] == t, vk, mid)
    vk = jnp.where(t >= times[-1], values[-1], vk)
    return jnp.where(t <= times[0], values[0], vk)


def log(x, base=None):
    if base is None:
        return jnp.log10(x)
    return jnp.log(x) / jnp.log(base)


def rnd_row(table, t, t0, dt):
    """A RANDOM draw (engine.compile.jax_random): its table's row for the step holding t, numbered as
    random_streams.uniforms numbers steps (NaN outside the table, as the C kernel's lx_rnd)."""
    s = jnp.floor((t - t0) / dt + 1e-6)
    k = table.shape[0]
    row = jnp.clip(s, 0, k - 1).astype(jnp.int32)
    return jnp.where((s >= 0) & (s < k), table[row], jnp.nan)
