"""The integration loop of engine.integrate.driver, as one XLA program (JAX: jit + lax.scan).

The same Solver objects (their ``step`` is plain arithmetic, so it traces unchanged) and the
same fixed Clock (t = t0 + k*dt, saving every ``save_every`` steps) drive it: an outer
``lax.scan`` over save points, each evaluating the saved variables and taking the steps up to
the next save with ``lax.fori_loop``. Non-negative stocks are clipped as in the numpy loop.
The step function is traced twice (saving and not), which keeps XLA's compile time down.

DELAY FIXED (the numpy loop's ``_Pipelines``) is a ring buffer per delayed variable carried in the
scan's state: ``(L, *dims, n)`` values, L at least the longest lag (a shape, fixed when the program is
compiled), each element's output at step k being the slot written at step k - lag (its initial value
before), each step's inputs taken from the step's first evaluation and written to slot k mod L once
the step is done, as the numpy loop pushes them.

Failures are only detected here (a per-run flag when the state stops being finite); the caller
re-runs such a batch on the numpy loop, which names the variable, time and run exactly as
before, so both backends give the same errors and the same per-run status.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from engine.integrate.driver import Clock


def make_loop(dyn_save, dyn_rates, solver, clock: Clock, non_negative: list[tuple[int, int]],
              sizes: list[tuple[int, ...]]):
    """A jitted ``loop(S0, P, B0, LAGS, RT) -> (saved values: tuple of (T, *dims, n), failed: (n,) bool)``; B0
    holds each DELAY FIXED variable's ring buffer filled with its initial value, ``(L, *dims, n)``, LAGS its lags
    in steps, ``(*dims, n)`` integers, and RT the RANDOM draws' tables (engine.compile.jax_random), which the step
    reads from its D after the delays' outputs (each an empty tuple when the model has none)."""
    t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper
    n_steps, se = clock.n_steps, clock.save_every
    n_saves = len(range(0, n_steps + 1, se))

    def loop(S0, P, B0, LAGS, RT):
        n = S0.shape[-1]

        def delayed(B, k):
            """The DELAY FIXED outputs at step k: each element's slot written lag steps ago."""
            out = []
            for buf, lag in zip(B, LAGS, strict=True):
                length = buf.shape[0]
                idx = (k - lag + length) % length
                out.append(jnp.take_along_axis(buf, idx[None, ...], axis=0)[0])
            return tuple(out) + tuple(RT)

        def plain(k, carry):
            S, bad, B = carry
            t = t0 + k * dt
            D = delayed(B, k)

            def f(tt, state):
                return dyn_rates(tt, dt, t0, t1, sp, state, P, D, False)[0]

            k1, X, _ = dyn_rates(t, dt, t0, t1, sp, S, P, D, False)
            S_new = solver.step(f, t, S, dt, k1)
            for a, b in non_negative:
                S_new = S_new.at[a:b].set(jnp.maximum(S_new[a:b], 0.0))
            B = tuple(buf.at[k % buf.shape[0]].set(jnp.broadcast_to(jnp.asarray(x, dtype=float), buf.shape[1:]))
                      for buf, x in zip(B, X, strict=True))
            return S_new, bad | ~jnp.isfinite(S_new).all(axis=0), B

        def block(carry, j):
            # save at step k = j*se, then take the steps up to the next save (the last block: to the end)
            S, bad, B = carry
            k = j * se
            _, _, outs = dyn_save(t0 + k * dt, dt, t0, t1, sp, S, P, delayed(B, k), True)
            outs = tuple(jnp.broadcast_to(jnp.asarray(o, dtype=float), sz + (n,))
                         for o, sz in zip(outs, sizes, strict=True))
            hi = jnp.where(j == n_saves - 1, n_steps, k + se)
            return lax.fori_loop(k, hi, plain, (S, bad, B)), outs

        bad0 = jnp.zeros((n,), dtype=bool)
        (_, bad, _), outs = lax.scan(block, (S0, bad0, tuple(B0)), jnp.arange(n_saves))
        return outs, bad

    return jax.jit(loop)
