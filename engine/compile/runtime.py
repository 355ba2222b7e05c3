"""Small numpy helpers the generated step function calls (the names it may use).

Every value is an array of shape (*dims, batch) (batch last, so values without
dimensions broadcast against subscripted ones), or a Python float for time.
"""
from __future__ import annotations

import numpy as np

# What Vensim (and PySD) take as zero when comparing the clock with event times.
_SMALL = 1e-6


def fit(x, sizes: tuple[int, ...]) -> np.ndarray:
    """A fresh array of shape (*sizes, batch) holding x, batch being x's last axis or 1."""
    if not isinstance(x, np.ndarray):
        return np.full(sizes + (1,), x, dtype=float)
    b = x.shape[-1] if x.ndim == len(sizes) + 1 else 1
    out = np.empty(sizes + (b,))
    out[...] = x
    return out


def assemble(sizes: tuple[int, ...], parts: list) -> np.ndarray:
    """Build a subscripted value from pieces: [(index tuple, value), ...], later ones win."""
    b = 1
    vals = []
    for idx, v in parts:
        v = np.asarray(v, dtype=float)
        if v.ndim == len(sizes) + 1:
            b = max(b, v.shape[-1])
        vals.append((idx, v))
    out = np.empty((*sizes, b))
    for idx, v in vals:
        out[idx] = v
    return out


def xidz(a, b, x):
    """a / b, or x where b is 0 (Vensim XIDZ). The driver runs with floating-point warnings off."""
    zero = b == 0
    return np.where(zero, x, a / np.where(zero, 1.0, b))


def zidz(a, b):
    """a / b, or 0 where b is 0 (Vensim ZIDZ)."""
    zero = b == 0
    return np.where(zero, 0.0, a / np.where(zero, 1.0, b))


def quantum(x, q):
    """x rounded down (toward zero) to a multiple of q; x itself where q <= 0."""
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(q <= 0, x, q * np.trunc(np.divide(x, np.where(q <= 0, 1.0, q))))


def step(t: float, height, start, dt: float):
    """height from the step nearest ``start`` on, 0 before (Vensim STEP; as PySD: t + dt/2 > start)."""
    return np.where(t + 0.5 * dt > start, height, 0.0)


def ramp(t: float, slope, start, end=None):
    """Rises at ``slope`` per time unit from ``start`` to ``end`` (Vensim RAMP)."""
    # as PySD (the SDXorg oracle): (t > start) * slope * (MIN(t, end) - start); an end before the
    # start gives slope * (end - start) from the start on
    final = t if end is None else np.minimum(end, t)
    return np.where(t + _SMALL > start, slope * (final - np.asarray(start, dtype=float)), 0.0)


def pulse(t: float, dt: float, start, width=None):
    """1 for start <= t < start + width (a width of 0 is one step), else 0 (Vensim PULSE)."""
    w = dt if width is None else np.where(np.asarray(width) > 0, width, dt)
    return ((t + _SMALL >= start) & (t < np.asarray(start) + w)) * 1.0


def pulse_train(t: float, dt: float, start, width, interval, end):
    """Pulses of ``width`` every ``interval`` from ``start`` through ``end`` (Vensim PULSE TRAIN:
    TIME >= start :AND: TIME <= end :AND: (TIME - start) MODULO interval < width)."""
    w = np.where(np.asarray(width) > 0, width, dt)
    since = t - np.asarray(start, dtype=float)
    interval = np.asarray(interval, dtype=float)
    phase = np.where(interval > 0, np.mod(since + _SMALL, np.where(interval > 0, interval, 1.0)), since + _SMALL)
    return ((since + _SMALL >= 0) & (t - _SMALL <= end) & (phase < w)) * 1.0


def lookup(x, xs: np.ndarray, ys: np.ndarray, linear: bool = False):
    """Piecewise-linear table; beyond the ends: hold (clamp) or extend the end slopes."""
    y = np.interp(x, xs, ys)
    if linear and len(xs) > 1:
        x = np.asarray(x, dtype=float)
        lo_slope = (ys[1] - ys[0]) / (xs[1] - xs[0]) if xs[1] != xs[0] else 0.0
        hi_slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) if xs[-1] != xs[-2] else 0.0
        y = np.where(x < xs[0], ys[0] + (x - xs[0]) * lo_slope, y)
        y = np.where(x > xs[-1], ys[-1] + (x - xs[-1]) * hi_slope, y)
    return y


def series(t: float, times: np.ndarray, values: np.ndarray, hold: bool):
    """A time-series input at time t: values has shape (T, *dims, batch); ends are held."""
    if t <= times[0]:
        return values[0]
    if t >= times[-1]:
        return values[-1]
    k = int(np.searchsorted(times, t, side="right")) - 1
    if hold or times[k] == t:
        return values[k]
    w = (t - times[k]) / (times[k + 1] - times[k])
    return values[k] * (1.0 - w) + values[k + 1] * w


def log(x, base=None):
    """LOG(x) is base 10; LOG(x, base) any base (Vensim)."""
    if base is None:
        return np.log10(x)
    return np.log(x) / np.log(base)


def lookup_multi(x, idx, xs_list: list, ys_list: list, linear: bool = False):
    """Subscripted lookup: element ``idx`` of the table list applied to x (broadcast together)."""
    x, idx = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(idx))
    out = np.empty(x.shape)
    for e in np.unique(idx):
        mask = idx == e
        out[mask] = lookup(x[mask], xs_list[int(e)], ys_list[int(e)], linear)
    return out


def get_time_value(t: float, t0: float, relative_to, offset, measure):
    """Vensim GET TIME VALUE in model time units: 0 = current time, 1 = initial time, plus offset."""
    rel = np.asarray(relative_to)
    if np.any(np.asarray(measure) != 0) or np.any((rel != 0) & (rel != 1)):
        from engine.errors import SimulationError
        raise SimulationError("GET TIME VALUE supports relativeto 0 or 1 and measure 0 (model time) only")
    return np.where(rel == 0, t, t0) + offset


def vector_select(sel, x, axis: tuple, missing, action, error):
    """Vensim VECTOR SELECT over the axes ``axis`` (see PySD's functions.vector_select)."""
    sel, x = np.broadcast_arrays(np.asarray(sel, dtype=float), np.asarray(x, dtype=float))
    chosen = sel != 0
    zeros = ~chosen.any(axis=axis)
    act = int(np.asarray(action).flat[0])
    err = int(np.asarray(error).flat[0])
    if err in (1, 3) and np.any(zeros) or err in (2, 3) and np.any(chosen.sum(axis=axis) > 1):
        from engine.errors import SimulationError
        raise SimulationError("VECTOR SELECT: the selection breaks its error_action rule")
    if act in range(5):
        arr = np.where(chosen, sel * x, np.nan)
    elif act == 5:
        arr = np.where(chosen, x ** sel, np.nan)
    elif act in range(6, 11):
        arr = np.where(chosen, x, np.nan)
    else:
        from engine.errors import SimulationError
        raise SimulationError(f"VECTOR SELECT: numerical_action must be 0 to 10, got {act}")
    with np.errstate(all="ignore"):
        if act in (0, 6):
            out = np.nansum(arr, axis=axis)
        elif act in (1, 5, 7):
            out = np.nanprod(arr, axis=axis)
        elif act in (2, 8):
            out = np.nanmin(np.where(chosen, arr, np.inf), axis=axis)
        elif act in (3, 9):
            out = np.nanmax(np.where(chosen, arr, -np.inf), axis=axis)
        else:
            out = np.nanmean(arr, axis=axis)
    return np.where(zeros, missing, out)


def invert_matrix(m):
    """Inverse over the last two dimension axes of an array (..., d1, d2, batch)."""
    m = np.asarray(m, dtype=float)
    return np.moveaxis(np.linalg.inv(np.moveaxis(m, -1, 0)), 0, -1)


def _vector_axis_last(v, axis: int):
    return np.moveaxis(np.asarray(v, dtype=float), axis, -1)


def vector_sort_order(v, direction, axis: int):
    """Indices (0-based) that sort v along ``axis``: ascending if direction > 0, else descending."""
    a = _vector_axis_last(v, axis)
    order = np.argsort(a, axis=-1, kind="stable")
    if np.asarray(direction).flat[0] <= 0:
        order = np.flip(order, axis=-1)
    return np.moveaxis(order.astype(float), -1, axis)


def vector_rank(v, direction, axis: int):
    """Rank (1-based) of each element along ``axis``."""
    order = _vector_axis_last(vector_sort_order(v, direction, axis), axis).astype(int)
    return np.moveaxis(np.argsort(order, axis=-1).astype(float) + 1.0, -1, axis)


def vector_reorder(v, sv, axis: int):
    """v taken along ``axis`` in the order given by sv (0-based indices)."""
    a, idx = np.broadcast_arrays(np.asarray(v, dtype=float), np.asarray(sv))
    a, idx = _vector_axis_last(a, axis), _vector_axis_last(idx, axis).astype(int)
    return np.moveaxis(np.take_along_axis(a, idx, axis=-1), -1, axis)


def allocate_by_priority(request, priority, width, supply, axis: int):
    """Vensim ALLOCATE BY PRIORITY along ``axis`` (PySD's 1-d algorithm, once per position)."""
    from pysd.py_backend.allocation import _allocate_by_priority_1d

    req, pri, wid, sup = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (request, priority, width,
                                                                                      supply)))
    req, pri = _vector_axis_last(req, axis), _vector_axis_last(pri, axis)
    wid, sup = _vector_axis_last(wid, axis)[..., 0], _vector_axis_last(sup, axis)[..., 0]
    out = np.empty(req.shape)
    for pos in np.ndindex(req.shape[:-1]):
        out[pos] = _allocate_by_priority_1d(req[pos], pri[pos], wid[pos], sup[pos])
    return np.moveaxis(out, -1, axis)


def allocate_available(request, pp, avail, axis: int, pp_axis: int):
    """Vensim ALLOCATE AVAILABLE along ``axis``. All three arrays are laid out on the same axes;
    request and avail have size 1 on ``pp_axis``, where pp holds the priority profile."""
    from pysd.py_backend.allocation import _allocate_available_1d

    req = np.take(np.asarray(request, dtype=float), 0, axis=pp_axis)
    av = np.take(np.asarray(avail, dtype=float), 0, axis=pp_axis)
    pp = np.moveaxis(np.asarray(pp, dtype=float), pp_axis, -1)
    if pp_axis < axis:
        axis -= 1
    shape = np.broadcast_shapes(req.shape, pp.shape[:-1], av.shape)
    req, av = np.broadcast_to(req, shape), np.broadcast_to(av, shape)
    pp = np.broadcast_to(pp, shape + pp.shape[-1:])
    req, av, pp = np.moveaxis(req, axis, -1), np.moveaxis(av, axis, -1)[..., 0], np.moveaxis(pp, axis, -2)
    out = np.empty(req.shape)
    for pos in np.ndindex(req.shape[:-1]):
        out[pos] = _allocate_available_1d(req[pos], pp[pos], av[pos])
    return np.moveaxis(out, -1, axis)
