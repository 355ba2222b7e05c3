"""Small numpy helpers the generated step function calls (the names it may use).

Every value is an array of shape (*dims, batch) (batch last, so values without
dimensions broadcast against subscripted ones), or a Python float for time.
"""
from __future__ import annotations

import numpy as np

# Tolerance for comparing the clock with event times: t = t0 + k*dt carries rounding.
_EPS = 1e-9


def fit(x, sizes: tuple[int, ...]) -> np.ndarray:
    """Broadcast ``x`` to shape (*sizes, batch), batch being x's last axis or 1."""
    x = np.asarray(x, dtype=float)
    b = x.shape[-1] if x.ndim == len(sizes) + 1 else 1
    return np.broadcast_to(x, (*sizes, b))


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
    """a / b, or x where b is 0 (Vensim XIDZ)."""
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, x, np.divide(a, np.where(b == 0, 1.0, b)))


def zidz(a, b):
    """a / b, or 0 where b is 0 (Vensim ZIDZ)."""
    return xidz(a, b, 0.0)


def quantum(x, q):
    """x rounded down (toward zero) to a multiple of q; x itself where q <= 0."""
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(q <= 0, x, q * np.trunc(np.divide(x, np.where(q <= 0, 1.0, q))))


def step(t: float, height, start):
    """height from ``start`` on, 0 before (Vensim STEP)."""
    return np.where(t + _EPS >= start, height, 0.0)


def ramp(t: float, slope, start, end=None):
    """Rises at ``slope`` per time unit from ``start`` to ``end`` (Vensim RAMP)."""
    if end is None:
        return np.where(t > start, slope * (t - np.asarray(start)), 0.0)
    return slope * np.clip(t - np.asarray(start, dtype=float), 0.0, np.maximum(np.asarray(end) - start, 0.0))


def pulse(t: float, dt: float, start, width=None):
    """1 from ``start`` for ``width`` (at least one step), else 0 (Vensim PULSE)."""
    w = dt if width is None else np.maximum(width, dt)
    return ((t + _EPS >= start) & (t + _EPS < np.asarray(start) + w)) * 1.0


def pulse_train(t: float, dt: float, start, width, interval, end):
    """Repeated pulses every ``interval`` from ``start`` until ``end`` (Vensim PULSE TRAIN)."""
    w = np.maximum(width, dt)
    since = t + _EPS - np.asarray(start, dtype=float)
    interval = np.asarray(interval, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        phase = np.where(interval > 0, np.mod(since, np.where(interval > 0, interval, 1.0)), since)
    return ((since >= 0) & (t - _EPS <= end) & (phase < w)) * 1.0


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
