"""Scalar helpers the numba kernel calls (engine.compile.scalar_code generates the calls).

Each one is the scalar twin of a helper in ``engine.compile.runtime`` (one element of one run),
written to give numpy's numbers: ``interp`` is ``numpy.interp`` step for step (its slope form,
exact hits and the NaN fallbacks), the event functions use the same tolerances. They are
compiled with ``error_model="numpy"`` (a division by zero gives inf/NaN, as numpy).
"""
from __future__ import annotations

import numpy as np
from numba import njit

_SMALL = 1e-6   # as engine.compile.runtime


@njit(cache=True, error_model="numpy")
def where(c: bool, a: float, b: float) -> float:
    """numpy.where for one element (both values are already evaluated, as numpy does)."""
    return a if c else b


@njit(cache=True, error_model="numpy")
def b2f(c: bool) -> float:
    return 1.0 if c else 0.0


@njit(cache=True, error_model="numpy")
def and_(a: bool, b: bool) -> bool:
    return a and b


@njit(cache=True, error_model="numpy")
def or_(a: bool, b: bool) -> bool:
    return a or b


@njit(cache=True, error_model="numpy")
def not_(a: bool) -> bool:
    return not a


@njit(cache=True, error_model="numpy")
def fmin(a: float, b: float) -> float:
    """numpy.minimum of two floats (a NaN in either gives NaN)."""
    return a if (a <= b or a != a) else b


@njit(cache=True, error_model="numpy")
def fmax(a: float, b: float) -> float:
    """numpy.maximum of two floats (a NaN in either gives NaN)."""
    return a if (a >= b or a != a) else b


@njit(cache=True, error_model="numpy")
def interp(x: float, tab: np.ndarray, off: int, n: int) -> float:
    """numpy.interp(x, xs, ys) with xs = tab[off:off+n], ys = tab[off+n:off+2n]."""
    ys0 = off + n
    if x != x:
        return x
    if n == 1:
        return tab[ys0]
    if x < tab[off]:
        return tab[ys0]
    if x > tab[off + n - 1]:
        return tab[ys0 + n - 1]
    if x == tab[off + n - 1]:
        return tab[ys0 + n - 1]
    # the last j with xs[j] <= x (searchsorted right, minus one)
    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tab[off + mid] <= x:
            lo = mid
        else:
            hi = mid
    j = lo
    xj, xj1 = tab[off + j], tab[off + j + 1]
    fj, fj1 = tab[ys0 + j], tab[ys0 + j + 1]
    if x == xj:
        return fj
    slope = (fj1 - fj) / (xj1 - xj)
    res = slope * (x - xj) + fj
    if res != res:
        res = slope * (x - xj1) + fj1
        if res != res and fj == fj1:
            res = fj
    return res


@njit(cache=True, error_model="numpy")
def lookup(x: float, tab: np.ndarray, foff: float, fn: float, linear: float) -> float:
    """A table (runtime.lookup): hold the ends, or with ``linear`` (1.0) extend the end slopes. The table
    is xs = tab[off:off+n], ys = tab[off+n:off+2n] (offsets passed as floats: see scalar_code)."""
    off, n = int(foff), int(fn)
    y = interp(x, tab, off, n)
    if linear != 0.0 and n > 1:
        ys0 = off + n
        x0, x1, xl, xm = tab[off], tab[off + 1], tab[off + n - 1], tab[off + n - 2]
        if x < x0:
            lo = (tab[ys0 + 1] - tab[ys0]) / (x1 - x0) if x1 != x0 else 0.0
            y = tab[ys0] + (x - x0) * lo
        if x > xl:
            hi = (tab[ys0 + n - 1] - tab[ys0 + n - 2]) / (xl - xm) if xl != xm else 0.0
            y = tab[ys0 + n - 1] + (x - xl) * hi
    return y


@njit(cache=True, error_model="numpy")
def series(t: float, times: np.ndarray, values: np.ndarray, fe: float, r: int, hold: float) -> float:
    """A time-series input (runtime.series): element e of run r (values: (T, elements, 1 or runs));
    hold (1.0) keeps each value until the next time instead of interpolating."""
    e = int(fe)
    b = r if values.shape[2] > 1 else 0   # r is an int64 (the kernels pass np.int64(run))
    n = times.shape[0]
    if t <= times[0]:
        return values[0, e, b]
    if t >= times[n - 1]:
        return values[n - 1, e, b]
    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if times[mid] <= t:
            lo = mid
        else:
            hi = mid
    k = lo
    if hold != 0.0 or times[k] == t:
        return values[k, e, b]
    w = (t - times[k]) / (times[k + 1] - times[k])
    return values[k, e, b] * (1.0 - w) + values[k + 1, e, b] * w


@njit(cache=True, error_model="numpy")
def xidz(a: float, b: float, x: float) -> float:
    return x if b == 0 else a / b


@njit(cache=True, error_model="numpy")
def zidz(a: float, b: float) -> float:
    return 0.0 if b == 0 else a / b


@njit(cache=True, error_model="numpy")
def quantum(x: float, q: float) -> float:
    if q <= 0:
        return x
    return q * np.trunc(x / q)


@njit(cache=True, error_model="numpy")
def step(t: float, height: float, start: float, dt: float) -> float:
    return height if t + 0.5 * dt > start else 0.0


@njit(cache=True, error_model="numpy")
def ramp(t: float, slope: float, start: float) -> float:
    return slope * (t - start) if t + _SMALL > start else 0.0


@njit(cache=True, error_model="numpy")
def ramp_end(t: float, slope: float, start: float, end: float) -> float:
    return slope * (fmin(end, t) - start) if t + _SMALL > start else 0.0


@njit(cache=True, error_model="numpy")
def pulse(t: float, dt: float, start: float) -> float:
    return 1.0 if (t + _SMALL >= start and t < start + dt) else 0.0


@njit(cache=True, error_model="numpy")
def pulse_width(t: float, dt: float, start: float, width: float) -> float:
    w = width if width > 0 else dt
    return 1.0 if (t + _SMALL >= start and t < start + w) else 0.0


@njit(cache=True, error_model="numpy")
def pulse_train(t: float, dt: float, start: float, width: float, interval: float, end: float) -> float:
    w = width if width > 0 else dt
    since = t - start
    phase = np.mod(since + _SMALL, interval) if interval > 0 else since + _SMALL
    return 1.0 if (since + _SMALL >= 0 and t - _SMALL <= end and phase < w) else 0.0


@njit(cache=True, error_model="numpy")
def log(x: float, base: float) -> float:
    return np.log(x) / np.log(base)


@njit(cache=True, error_model="numpy")
def rnd(RND: np.ndarray, t: float, t0: float, dt: float, fcol: float) -> float:
    """A RANDOM draw (engine.compile.random_table): the run's table (steps x columns) at the row of the step
    holding t (numbered as random_streams.uniforms does; the C kernel's lx_rnd), NaN outside the table."""
    s = np.floor((t - t0) / dt + 1e-6)
    if not (s >= 0.0 and s < RND.shape[0]):
        return np.nan
    return RND[int(s), int(fcol)]
