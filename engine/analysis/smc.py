"""Sequential Monte Carlo with adaptive tempering, every particle of a step in ONE batch call.

The posterior p(z | data) ∝ L(z)^β N(z; 0, I) is reached from the prior (β = 0) through
tempered stages, as in PyMC's ``sample_smc`` (Ching & Chen's TMCMC, Minson et al. 2013):

1. the next β is the largest that keeps the effective sample size of the incremental
   weights L^(β' - β) at half the particles (bisection on β');
2. the particles are resampled (systematic) by those weights;
3. each is moved by Metropolis steps at β', by turns an independence proposal (a normal
   fitted to the particles, PyMC's IMH kernel) and a random walk with the particles'
   covariance scaled by an acceptance-tuned factor (2.38/√k to start), until the particles'
   positions have decorrelated from where the stage started (mean correlation < 0.1, as
   PyMC's correlation threshold) or ``max_steps``.

z is the prior's standard-normal coordinate (x = F⁻¹(Φ(z))): the prior is N(0, I),
smooth and unbounded, whatever the constants' distributions. ``replicas`` independent
runs (each its own particles, temperatures and proposals) are advanced together, so one
batch call scores all of them; comparing them gives R-hat (ArviZ, replicas as chains).

Written here rather than taken from a library: ``particles`` pins numpy < 2, ``pocomc``
needs PyTorch, and PyMC's SMC needs the model as a PyTensor graph; this is ~100 lines of
numpy over the engine's vectorised runs (see docs/architecture.md for the measurements).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SMCResult:
    """Particles (replicas, n, k) at β = 1, their log-likelihoods and how the run went."""

    z: np.ndarray
    loglik: np.ndarray
    betas: list[list[float]]
    acceptance: list[float] = field(default_factory=list)
    evaluations: int = 0
    log_evidence: np.ndarray | None = None


def _next_beta(ll: np.ndarray, beta: float, target: float) -> float:
    """Largest β' in (β, 1] whose incremental weights keep ESS / n >= target (bisection)."""
    def ess(b: float) -> float:
        w = (b - beta) * ll
        w = np.exp(w - w.max())
        return float(w.sum() ** 2 / (w ** 2).sum() / len(w))

    if ess(1.0) >= target:
        return 1.0
    lo, hi = beta, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if ess(mid) >= target:
            lo = mid
        else:
            hi = mid
    return max(lo, beta + 1e-12)


def _systematic(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(w)
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    return np.searchsorted(c, (rng.random() + np.arange(n)) / n)


def _logq(x: np.ndarray, mean: np.ndarray, inv: np.ndarray, logdet: np.ndarray) -> np.ndarray:
    """Log density (up to a constant) of each replica's fitted normal at its particles x (R, n, k)."""
    y = np.einsum("rij,rnj->rni", inv, x - mean[:, None, :])
    return -0.5 * np.sum(y * y, axis=2) - logdet[:, None]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The largest (over replicas) mean over coordinates of the correlation of particles' start and
    current positions: 0 when the moves have forgotten where they started."""
    am = a - a.mean(axis=1, keepdims=True)
    bm = b - b.mean(axis=1, keepdims=True)
    num = np.sum(am * bm, axis=1)
    den = np.sqrt(np.sum(am * am, axis=1) * np.sum(bm * bm, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(den > 0, num / den, 0.0)
    return float(np.max(np.mean(c, axis=1)))


def tempered_smc(loglik: Callable[[np.ndarray], np.ndarray], k: int, n: int, replicas: int = 4, seed: int = 0,
                 ess_target: float = 0.5, max_steps: int = 60, min_steps: int = 2, corr_target: float = 0.1,
                 progress: Callable[[float, str], None] | None = None) -> SMCResult:
    """Sample from L(z) N(z; 0, I) with ``replicas`` x ``n`` particles in k dimensions.

    ``loglik``: (B, k) -> (B,) log-likelihoods (-inf for a failed run), called with all the
    replicas' particles at once. ``progress(beta, text)`` is told each stage (the lowest β).
    """
    rng = np.random.default_rng(seed)
    R = replicas
    z = rng.standard_normal((R, n, k))
    ll = loglik(z.reshape(-1, k)).reshape(R, n)
    evals = 1
    beta = np.zeros(R)
    betas = [[0.0] for _ in range(R)]
    scale = np.full(R, 2.38 / math.sqrt(k))
    logz = np.zeros(R)
    accs: list[float] = []
    stage = 0
    while True:
        stage += 1
        new_beta = beta.copy()
        for r in range(R):
            if beta[r] < 1.0:
                fin = np.where(np.isfinite(ll[r]), ll[r], -1e300)
                new_beta[r] = _next_beta(fin, beta[r], ess_target)
        # reweight, keep the evidence, resample; a replica at β = 1 already is only moved again
        cov = np.empty((R, k, k))
        mean = np.empty((R, k))
        for r in range(R):
            d = new_beta[r] - beta[r]
            if d > 0:
                w = np.where(np.isfinite(ll[r]), d * ll[r], -np.inf)
                m = w.max()
                wn = np.exp(w - m)
                logz[r] += m + math.log(wn.mean())
                idx = rng.permutation(_systematic(wn, rng))  # shuffled: copies are not neighbours
                z[r], ll[r] = z[r][idx], ll[r][idx]
            mean[r] = z[r].mean(axis=0)
            cov[r] = np.cov(z[r].T).reshape(k, k) + 1e-9 * np.eye(k)
        beta = new_beta
        for r in range(R):
            betas[r].append(float(beta[r]))
        chol = np.linalg.cholesky(cov)
        # the independence proposal: a normal fitted to the particles (PyMC's IMH kernel), with its density
        inv = np.linalg.inv(chol)
        logdet = np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)

        # Metropolis moves at the new temperature: independence and random-walk proposals by turns,
        # until the particles have decorrelated from where they started (or max_steps)
        start = z.copy()
        steps, done = 0, 0
        while steps < max_steps:
            eps = rng.standard_normal((R, n, k))
            imh = steps % 2 == 0
            if imh:
                prop = mean[:, None, :] + np.einsum("rij,rnj->rni", chol, eps)
            else:
                prop = z + scale[:, None, None] * np.einsum("rij,rnj->rni", chol, eps)
            llp = loglik(prop.reshape(-1, k)).reshape(R, n)
            evals += 1
            with np.errstate(invalid="ignore"):
                log_a = beta[:, None] * (np.where(np.isfinite(llp), llp, -np.inf) - np.where(np.isfinite(ll), ll, 0)) \
                    - 0.5 * (np.sum(prop ** 2, axis=2) - np.sum(z ** 2, axis=2))
                if imh:
                    log_a += _logq(z, mean, inv, logdet) - _logq(prop, mean, inv, logdet)
            ok = np.log(rng.random((R, n))) < np.nan_to_num(log_a, nan=-np.inf)
            z[ok], ll[ok] = prop[ok], llp[ok]
            acc = ok.mean(axis=1)
            if not imh:
                scale *= np.exp(acc - 0.234)  # towards the random-walk optimum's acceptance
            steps += 1
            done += int(ok.sum())
            if steps >= min_steps and _correlation(start, z) < corr_target:
                break
        accs.append(done / (steps * R * n))
        if progress is not None:
            progress(float(beta.min()), f"stage {stage}: beta {beta.min():.3g}, {steps} moves, "
                                        f"acceptance {accs[-1]:.2f}")
        if (beta >= 1.0).all():
            break
    return SMCResult(z, ll, betas, accs, evals, logz)
