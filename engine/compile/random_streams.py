"""Vensim's RANDOM functions as counter-based streams: reproducible, and one run's draws
independent of the batch it is in.

A draw is a pure function of (the run's seed, the call site, the seed argument of the call,
the run's index in the batch, the time step, the element): a 64-bit hash (SplitMix64's
finaliser) of those numbers gives a uniform u in (0, 1), and the distribution's inverse CDF
turns it into the value.  So run i of a batch of 1 000 draws exactly what run i of a batch of
10 draws (or a run alone, i = 0) draws; a variable evaluated only on saving steps draws what
it would draw every step; RK2/RK4 stages inside one step see the same value (Vensim draws once
per TIME STEP).

Definitions (Vensim's reference manual): each distribution is drawn for its standard form,
shifted by h and stretched by r (value = h + r*z), and truncated to [m, x] (the draw is taken
from the truncated distribution, as redrawing until it falls inside would, not clipped).

====================  =====================================================================
RANDOM 0 1()           uniform on [0, 1)
RANDOM UNIFORM(m,x,s)  uniform on [m, x)
RANDOM NORMAL(m,x,h,r,s)       normal, mean h, standard deviation r, truncated to [m, x]
RANDOM EXPONENTIAL(m,x,h,r,s)  h + r*Exp(1), truncated
RANDOM GAMMA(m,x,k,h,r,s)      h + r*Gamma(k), truncated
RANDOM WEIBULL(m,x,k,h,r,s)    h + r*Weibull(k), truncated
RANDOM BETA(m,x,a,b,h,r,s)     h + r*Beta(a, b), truncated
RANDOM POISSON(m,x,mu,h,r,s)   h + r*Poisson(mu), truncated
RANDOM TRIANGULAR(m,x,a,c,b,s) triangular from a to b with peak c, truncated
====================  =====================================================================

The numbers differ from Vensim's (its generator is its own); the distributions are the same.
"""
from __future__ import annotations

import hashlib

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)

# function -> number of arguments (the seed argument last, where there is one)
ARITY: dict[str, int] = {
    "RANDOM_0_1": 0,
    "RANDOM_UNIFORM": 3,
    "RANDOM_NORMAL": 5,
    "RANDOM_EXPONENTIAL": 5,
    "RANDOM_GAMMA": 6,
    "RANDOM_WEIBULL": 6,
    "RANDOM_BETA": 7,
    "RANDOM_POISSON": 6,
    "RANDOM_TRIANGULAR": 6,
}


class Streams:
    """The seed of the runs a compiled model makes (set by ``CompiledModel.run(seed=...)``)
    and the index of the batch's first run (for batches split into chunks)."""

    def __init__(self) -> None:
        self.seed = 0
        self.first_run = 0


def site_key(text: str) -> int:
    """A stable 63-bit number naming a call site (not Python's salted hash())."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def uniforms(streams: Streams, site: int, seed_arg, t: float, t0: float, dt: float,
             sizes: tuple[int, ...], index: tuple, n: int) -> np.ndarray:
    """Uniforms in (0, 1) of shape (*region, n): one per element of the variable's full shape
    ``sizes`` (``index`` picks the region of the piece), per run, for the step holding t."""
    step = int(np.floor((t - t0) / dt + 1e-6)) if dt > 0 else 0
    s = float(np.ravel(np.asarray(seed_arg, dtype=float))[0]) if seed_arg is not None else 0.0
    with np.errstate(over="ignore"):
        base = _mix(np.array([site ^ (int(streams.seed) & 0xFFFFFFFF) << 32], dtype=np.uint64)
                    + np.array([np.float64(s).view(np.uint64)], dtype=np.uint64) * _GOLD)
        base = _mix(base + np.uint64(step & 0xFFFFFFFFFFFFFFFF) * _GOLD)
        n_el = int(np.prod(sizes)) if sizes else 1
        elem = np.arange(n_el, dtype=np.uint64).reshape(sizes + (1,)) if sizes else np.zeros(1, np.uint64)
        runs = np.arange(streams.first_run, streams.first_run + n, dtype=np.uint64)
        x = _mix(_mix(base + elem * _GOLD) + runs * _M2)
    u = ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53
    if sizes and index:
        u = u[index]
    return u


def uniform_table(streams: Streams, site: int, seed_arg, n_steps: int, sizes: tuple[int, ...], index: tuple,
                  r0: int, n: int) -> np.ndarray:
    """What :func:`uniforms` gives at steps 0 .. n_steps-1, for runs r0 .. r0+n-1 of the batch, stacked:
    shape (n_steps, *region, n), the same bits (the same operations, broadcast over the steps). For the C
    backend's draws table (engine.compile.random_table)."""
    s = float(np.ravel(np.asarray(seed_arg, dtype=float))[0]) if seed_arg is not None else 0.0
    with np.errstate(over="ignore"):
        base = _mix(np.array([site ^ (int(streams.seed) & 0xFFFFFFFF) << 32], dtype=np.uint64)
                    + np.array([np.float64(s).view(np.uint64)], dtype=np.uint64) * _GOLD)
        steps = np.arange(n_steps, dtype=np.uint64)
        base = _mix(base + steps * _GOLD)                       # (K,)
        n_el = int(np.prod(sizes)) if sizes else 1
        elem = np.arange(n_el, dtype=np.uint64).reshape(sizes + (1,)) if sizes else np.zeros(1, np.uint64)
        runs = np.arange(streams.first_run + r0, streams.first_run + r0 + n, dtype=np.uint64)
        b = base.reshape((n_steps,) + (1,) * (len(sizes) + 1))
        x = _mix(_mix(b + elem[None] * _GOLD) + runs * _M2)
    u = ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53
    if sizes and index:
        u = u[(slice(None),) + tuple(index)]
    return u


def _truncated(u, dist, lo_z, hi_z):
    """Inverse CDF of ``dist`` restricted to [lo_z, hi_z] (standard units)."""
    flo = dist.cdf(lo_z)
    fhi = dist.cdf(hi_z)
    return dist.ppf(flo + u * (fhi - flo))


def _shifted(u, m, x, h, r, dist):
    r = np.where(r == 0, 1e-300, r)
    lo, hi = (m - h) / r, (x - h) / r
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    z = _truncated(u, dist, lo, hi)
    return np.clip(h + r * z, np.minimum(m, x), np.maximum(m, x))


def draw(func: str, u: np.ndarray, *args) -> np.ndarray:
    """The value of ``func`` for uniforms u, given its arguments (seed argument removed)."""
    # scipy is imported on the first draw, so that models without RANDOM never pay for it: scipy.special takes
    # 0.3 s, scipy.stats (the other distributions) 1-3 s on this machine
    a = [np.asarray(v, dtype=float) for v in args]
    with np.errstate(all="ignore"):
        if func == "RANDOM_0_1":
            return u
        if func == "RANDOM_UNIFORM":
            m, x = a
            return m + u * (x - m)
        if func == "RANDOM_NORMAL":
            from scipy import special

            m, x, h, r = a
            lo, hi = special.ndtr((m - h) / np.where(r == 0, 1e-300, r)), \
                special.ndtr((x - h) / np.where(r == 0, 1e-300, r))
            z = special.ndtri(np.clip(lo + u * (hi - lo), 1e-300, 1 - 1e-16))
            return np.clip(h + r * z, m, x)
        from scipy import stats

        if func == "RANDOM_EXPONENTIAL":
            m, x, h, r = a
            return _shifted(u, m, x, h, r, stats.expon)
        if func == "RANDOM_GAMMA":
            m, x, k, h, r = a
            return _shifted(u, m, x, h, r, stats.gamma(k))
        if func == "RANDOM_WEIBULL":
            m, x, k, h, r = a
            return _shifted(u, m, x, h, r, stats.weibull_min(k))
        if func == "RANDOM_BETA":
            m, x, al, be, h, r = a
            return _shifted(u, m, x, h, r, stats.beta(al, be))
        if func == "RANDOM_POISSON":
            m, x, mu, h, r = a
            return _shifted(u, m, x, h, r, stats.poisson(mu))
        if func == "RANDOM_TRIANGULAR":
            m, x, lo_, peak, hi_ = a
            width = np.where(hi_ - lo_ == 0, 1e-300, hi_ - lo_)
            dist = stats.triang((peak - lo_) / width, loc=lo_, scale=width)
            return _truncated(u, dist, np.maximum(m, lo_), np.minimum(x, hi_))
    raise ValueError(f"unknown random function {func}")


def vector_elm_map(x: np.ndarray, offset) -> np.ndarray:
    """Vensim's VECTOR ELM MAP: x (*keep, n, batch) read at positions offset (*keep, batch), 0-based,
    rounded; NaN outside 0..n-1.  (Kept here with the other additions of issue 14 to the compiler.)"""
    x = np.asarray(x, dtype=float)
    off = np.asarray(offset, dtype=float)
    n = x.shape[-2]
    idx = np.rint(off)
    bad = ~((idx >= 0) & (idx < n))
    i = np.where(bad, 0, idx).astype(np.intp)[..., None, :]
    shape = np.broadcast_shapes(x.shape[:-2] + (1,) + x.shape[-1:], i.shape)
    out = np.take_along_axis(np.broadcast_to(x, shape[:-2] + (n,) + shape[-1:]),
                             np.broadcast_to(i, shape), axis=-2)[..., 0, :]
    return np.where(np.broadcast_to(bad, out.shape), np.nan, out)
