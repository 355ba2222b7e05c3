"""The integration loop of engine.integrate.driver, as one XLA program (JAX: jit + lax.scan).

The same Solver objects (their ``step`` is plain arithmetic, so it traces unchanged) and the
same fixed Clock (t = t0 + k*dt, saving every ``save_every`` steps) drive it: an outer
``lax.scan`` over save points, each evaluating the saved variables and taking the steps up to
the next save with ``lax.fori_loop``. Non-negative stocks are clipped as in the numpy loop.
The step function is traced twice (saving and not), which keeps XLA's compile time down.

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
    """A jitted ``loop(S0, P) -> (saved values: tuple of (T, *dims, n), failed: (n,) bool)``."""
    t0, dt, t1, sp = clock.t0, clock.dt, clock.t1, clock.saveper
    n_steps, se = clock.n_steps, clock.save_every
    n_saves = len(range(0, n_steps + 1, se))

    def loop(S0, P):
        n = S0.shape[-1]

        def f(tt, state):
            return dyn_rates(tt, dt, t0, t1, sp, state, P, (), False)[0]

        def plain(k, carry):
            S, bad = carry
            t = t0 + k * dt
            S_new = solver.step(f, t, S, dt, f(t, S))
            for a, b in non_negative:
                S_new = S_new.at[a:b].set(jnp.maximum(S_new[a:b], 0.0))
            return S_new, bad | ~jnp.isfinite(S_new).all(axis=0)

        def block(carry, j):
            # save at step k = j*se, then take the steps up to the next save (the last block: to the end)
            S, bad = carry
            k = j * se
            _, _, outs = dyn_save(t0 + k * dt, dt, t0, t1, sp, S, P, (), True)
            outs = tuple(jnp.broadcast_to(jnp.asarray(o, dtype=float), sz + (n,))
                         for o, sz in zip(outs, sizes, strict=True))
            hi = jnp.where(j == n_saves - 1, n_steps, k + se)
            return lax.fori_loop(k, hi, plain, (S, bad)), outs

        bad0 = jnp.zeros((n,), dtype=bool)
        (_, bad), outs = lax.scan(block, (S0, bad0), jnp.arange(n_saves))
        return outs, bad

    return jax.jit(loop)
