"""Bayesian calibration: the posterior of chosen constants given published data (``lxsd posterior``).

* Prior: each factor's distribution (uniform over its ``range`` by default, or the
  distributions file's). The sampler works in the unit cube u = F(x), where F is the
  prior's CDF: there the prior is uniform, so the posterior density is the likelihood
  alone, every coordinate has the same scale, and any prior kind costs nothing extra.
* Likelihood: :class:`engine.analysis.likelihood.Likelihood` (log-normal levels, normal
  growth rates; a failed run gets likelihood zero).
* Sampler: emcee's affine-invariant ensemble sampler with ``vectorize=True``: all walkers
  of a step are ONE batch call of the engine (optionally cut in shards over Dask).
  ``moves="de"`` uses differential-evolution moves instead of the stretch move
  (docs/architecture.md compares them).
* Output: ArviZ InferenceData (posterior in the constants' units, posterior predictive of
  the data rows, observed data, sample stats), written as NetCDF; R-hat and ESS from ArviZ.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time as _time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.analysis.distributed import Executor, ModelRef, remember, shards
from engine.analysis.calibration import pyplot
from engine.analysis.ensemble import Factor, ParamSpace, build_space
from engine.analysis.likelihood import Likelihood
from engine.errors import EngineError

FORMAT = "lxsd-posterior-1"
MOVES = ("stretch", "de")


# ---------------------------------------------------------------------------- evaluation
def _loglik_shard(ref: ModelRef, payload: dict) -> dict:
    """Simulate one shard of parameter vectors and score them (in-process or on a worker)."""
    model = ref.load()
    like: Likelihood = payload["like"]
    sims, failed = like.simulate(model, payload["X"])
    return {"ll": like.loglik(sims, failed), "sims": sims if payload.get("keep") else None, "failed": failed}


class Evaluator:
    """Unit-cube points -> log posterior, one batch (or one set of shards) per call."""

    def __init__(self, model, ref: ModelRef, like: Likelihood, executor: Executor | None = None,
                 chunk: int | None = None) -> None:
        self.model, self.ref, self.like = model, ref, like
        self.executor = executor or Executor()
        self.chunk = chunk
        self.runs = 0
        self.calls = 0
        self.failed = 0
        remember(ref, model)

    def x_of(self, U: np.ndarray) -> np.ndarray:
        """Unit-cube points (B, k) -> the constants' values through each prior's quantile function."""
        U = np.atleast_2d(U)
        return np.column_stack([f.ppf(np.clip(U[:, j], 0.0, 1.0)) for j, f in enumerate(self.like.space.factors)])

    def run(self, X: np.ndarray, keep: bool = False) -> dict:
        """Simulate and score (B, k) parameter vectors; shards over the executor when ``chunk`` is set."""
        n = X.shape[0]
        size = self.chunk if self.chunk and self.executor.kind != "in-process" else n
        pieces = shards(n, max(1, size))
        payloads = [{"like": self.like, "X": X[a:b], "keep": keep} for a, b in pieces]
        ll = np.empty(n)
        failed = np.zeros(n, bool)
        sims: list = [None] * len(pieces)   # each shard's simulated observations, when ``keep``
        for i, r in self.executor.imap(_loglik_shard, self.ref, payloads):
            a, b = pieces[i]
            ll[a:b], failed[a:b] = r["ll"], r["failed"]
            if keep:
                sims[i] = r["sims"]
        self.runs += n
        self.calls += 1
        self.failed += int(failed.sum())
        out: dict[str, object] = {"ll": ll, "failed": failed}
        if keep:
            out["sims"] = [np.concatenate([s[j] for s in sims], axis=0) for j in range(len(self.like.observations))]
        return out

    def __call__(self, U: np.ndarray) -> np.ndarray:
        """emcee's vectorised log-probability: -inf outside the cube."""
        U = np.atleast_2d(U)
        lp = np.full(U.shape[0], -np.inf)
        inside = np.all((U >= 0.0) & (U <= 1.0), axis=1)
        if inside.any():
            lp[inside] = self.run(self.x_of(U[inside]))["ll"]
        return lp


# ---------------------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar on stderr (rewritten in place on a terminal; otherwise a line every
    10 % or 10 s)."""

    def __init__(self, total: int, label: str = "", stream=None, width: int = 30) -> None:
        self.total, self.label, self.width = max(1, total), label, width
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = self.printed = _time.perf_counter()
        self.last = -1

    def update(self, done: int, extra: str = "") -> None:
        frac = done / self.total
        tenth = int(frac * 10)
        now = _time.perf_counter()
        if not self.tty and tenth == self.last and done != self.total and now - self.printed < 10:
            return
        self.last, self.printed = tenth, now
        bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
        el = _time.perf_counter() - self.t0
        eta = el / frac * (1 - frac) if frac > 0 else float("nan")
        line = f"{self.label} [{bar}] {done}/{self.total} {el:.0f} s elapsed, ~{eta:.0f} s left {extra}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and done == self.total:
            self.stream.write("\n")
        self.stream.flush()


# ---------------------------------------------------------------------------- sampling
@dataclass
class Posterior:
    """The result of :func:`sample_posterior`."""

    idata: Any                    # arviz.InferenceData
    labels: list[str]
    summary: pd.DataFrame         # label, median, q05, q95, r_hat, ess_bulk, ess_tail, low, high
    seconds: float
    runs: int
    acceptance: float
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """``name = median [q05, q95]  R-hat r  ESS e`` per constant."""
        out = []
        for r in self.summary.itertuples():
            out.append(f"{r.label} = {r.median:.6g} [{r.q05:.6g}, {r.q95:.6g}]  R-hat {r.r_hat:.3f}  "
                       f"ESS {r.ess_bulk:.0f}")
        return out


def default_walkers(k: int) -> int:
    """Walkers for k parameters: at least 2k + 2 (emcee's requirement is > 2k... for mixing), even, >= 32."""
    w = max(32, 2 * k + 2)
    return w + (w % 2)


def initial_points(ev: Evaluator, walkers: int, seed: int, pool: int = 8) -> np.ndarray:
    """Start walkers at the best ``walkers`` of ``pool * walkers`` prior draws (one batch run).

    Starting inside the posterior's bulk shortens the burn-in; the draws are from the prior,
    so the starting cloud is broad, and the burn-in discards it anyway.
    """
    k = len(ev.like.space.factors)
    rng = np.random.default_rng(seed)
    U = rng.random((pool * walkers, k))
    lp = ev(U)
    ok = np.isfinite(lp)
    if ok.sum() < walkers:
        raise EngineError(f"only {int(ok.sum())} of {len(lp)} prior draws give a finite likelihood (the model "
                          f"fails or the data are impossible for most parameter sets); {walkers} are needed to "
                          f"start the walkers: narrow the ranges or check the data map")
    best = np.argsort(-np.where(ok, lp, -np.inf), kind="stable")[:walkers]
    return U[best]


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.2x announces its 1.0 refactor on import
        import arviz
    return arviz


SAMPLERS = ("smc", "emcee")


def sample_posterior(model, ref: ModelRef, like: Likelihood, *, samples: int = 2000, sampler: str = "smc",
                     replicas: int = 4, steps: int = 1000, burn: int | None = None, walkers: int | None = None,
                     seed: int = 0, moves: str = "stretch", executor: Executor | None = None,
                     chunk: int | None = None, progress: Progress | bool | None = None,
                     meta: dict | None = None) -> Posterior:
    """Sample the posterior of ``like.space``'s factors given ``like``'s observations.

    ``sampler="smc"`` (default): tempered sequential Monte Carlo (:mod:`engine.analysis.smc`)
    with ``samples`` particles in ``replicas`` independent runs (the chains of the diagnostics).
    ``sampler="emcee"``: ``steps`` per walker, the first ``burn`` (default half) discarded, the
    rest thinned to about ``samples`` draws. The same seed gives the same draws.
    """
    t0 = _time.perf_counter()
    if samples < 1:
        raise EngineError(f"--samples must be at least 1, got {samples}")
    if sampler not in SAMPLERS:
        raise EngineError(f"unknown --sampler {sampler!r}; one of {', '.join(SAMPLERS)}")
    space = like.space
    k = len(space.factors)
    ev = Evaluator(model, ref, like, executor, chunk)
    if sampler == "smc":
        X, lp, info, stats, full = _run_smc(ev, k, samples, replicas, seed, progress)
    else:
        X, lp, info, stats, full = _run_emcee(ev, k, samples, steps, burn, walkers, seed, moves, progress)
    # the posterior predictive of every data row: one batch over the kept draws
    flat = X.transpose(1, 0, 2).reshape(-1, k)                    # chain-major, as ArviZ stores it
    pred = ev.run(flat, keep=True)
    rng = np.random.default_rng(seed + 1)
    noisy = like.noisy(pred["sims"], rng)
    notes = []
    if pred["failed"].any():
        notes.append(f"{int(pred['failed'].sum())} of {len(flat)} posterior draws failed when re-run")
    idata = _inference_data(space, like, X, lp, pred["sims"], noisy, stats,
                            dict(meta or {}, seed=seed, sampler=sampler, **info))
    summary = summarise(idata, space.labels, full)
    idata.posterior.attrs["lxsd_summary"] = summary.to_json(orient="records")
    if (summary["r_hat"] > 1.05).any():
        bad = summary.loc[summary["r_hat"] > 1.05, "label"].tolist()
        more = "--samples" if sampler == "smc" else "--steps"
        notes.append(f"R-hat above 1.05 for {len(bad)} constant(s) ({', '.join(bad[:5])}"
                     f"{', ...' if len(bad) > 5 else ''}): run more {more}")
    return Posterior(idata, space.labels, summary, _time.perf_counter() - t0, ev.runs,
                     float(info.get("acceptance", float("nan"))), notes)


def _run_smc(ev: Evaluator, k: int, samples: int, replicas: int, seed: int, progress):
    """Tempered SMC in the prior's normal coordinates; (draws, chains, k) values, lp and stats."""
    from scipy.special import ndtr

    from engine.analysis.smc import tempered_smc

    if replicas < 2:
        raise EngineError(f"--replicas must be at least 2 (R-hat compares them), got {replicas}")
    n = max(2 * k + 2, math.ceil(samples / replicas))
    bar = progress if isinstance(progress, Progress) else (Progress(1000, "tempering") if progress else None)

    def tell(beta, text):
        if bar is not None:
            bar.update(round(beta * bar.total), text)

    res = tempered_smc(lambda Z: ev(ndtr(Z)), k, n, replicas, seed, progress=tell)
    U = ndtr(res.z)                                               # (R, n, k)
    X = ev.x_of(U.reshape(-1, k)).reshape(replicas, n, k).transpose(1, 0, 2)
    lp = res.loglik.T                                             # (draws, chains)
    stages = [len(b) - 1 for b in res.betas]
    info = {"replicas": replicas, "particles": n, "stages": stages, "evaluations": res.evaluations,
            "acceptance": float(np.mean(res.acceptance)) if res.acceptance else float("nan"),
            "log_evidence": [float(v) for v in (res.log_evidence if res.log_evidence is not None else ())]}
    stats = {"lp": lp.T.copy()}
    return X, lp, info, stats, X


def _run_emcee(ev: Evaluator, k: int, samples: int, steps: int, burn: int | None, walkers: int | None, seed: int,
               moves: str, progress):
    import emcee

    walkers = walkers or default_walkers(k)
    if walkers < 2 * k or walkers % 2:
        raise EngineError(f"--walkers must be even and at least twice the number of parameters ({2 * k}), "
                          f"got {walkers}")
    if steps < 2:
        raise EngineError(f"--steps must be at least 2, got {steps}")
    burn = steps // 2 if burn is None else burn
    if not 0 <= burn < steps:
        raise EngineError(f"--burn must be in [0, {steps}), got {burn}")
    if moves not in MOVES:
        raise EngineError(f"unknown --moves {moves!r}; one of {', '.join(MOVES)}")
    p0 = initial_points(ev, walkers, seed)
    mv = None if moves == "stretch" else [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]
    sampler = emcee.EnsembleSampler(walkers, k, ev, vectorize=True, moves=mv)
    sampler.random_state = np.random.RandomState(seed).get_state()
    bar = progress if isinstance(progress, Progress) else (Progress(steps, "sampling") if progress else None)
    for i, _ in enumerate(sampler.sample(p0, iterations=steps), start=1):
        if bar is not None:
            bar.update(i, f"acceptance {np.mean(sampler.acceptance_fraction):.2f}")
    kept = steps - burn
    thin = max(1, (kept * walkers) // samples)
    chain_u = sampler.get_chain(discard=burn, thin=thin)          # (draws, walkers, k)
    lp = sampler.get_log_prob(discard=burn, thin=thin)            # (draws, walkers)
    draws = chain_u.shape[0]
    X = ev.x_of(chain_u.reshape(-1, k)).reshape(draws, walkers, k)
    # diagnostics on every kept step (not only the thinned draws that are saved)
    full = ev.x_of(sampler.get_chain(discard=burn).reshape(-1, k)).reshape(kept, walkers, k)
    acc = sampler.acceptance_fraction
    info = {"walkers": walkers, "steps": steps, "burn": burn, "thin": thin, "moves": moves,
            "acceptance": float(np.mean(acc))}
    stats = {"lp": lp.T.copy(), "acceptance_rate": np.broadcast_to(acc[:, None], (walkers, draws)).copy()}
    return X, lp, info, stats, full


def _split_label(label: str) -> tuple[str, str | None]:
    base, _, rest = label.partition("[")
    return base, (rest[:-1] if rest else None)


def _inference_data(space: ParamSpace, like: Likelihood, X, lp, sims, noisy, stats: dict, meta: dict):
    """Build the InferenceData: subscripted constants become one variable with an element axis."""
    az = _arviz()

    draws, walkers, _ = X.shape
    post: dict[str, np.ndarray] = {}
    coords: dict[str, list] = {}   # element names (str) and row labels
    dims: dict[str, list[str]] = {}
    groups: dict[str, list[int]] = {}
    for j, lab in enumerate(space.labels):
        groups.setdefault(_split_label(lab)[0], []).append(j)
    for base, idx in groups.items():
        arr = X[:, :, idx].transpose(1, 0, 2)                      # (chain, draw, elements)
        el = [_split_label(space.labels[j])[1] for j in idx]
        if el == [None]:
            post[base] = arr[:, :, 0]
        else:
            post[base] = arr
            coords[f"{base}_element"] = el
            dims[base] = [f"{base}_element"]
    rows = like.row_labels()
    coords["row"] = rows
    obs = np.concatenate([o.values for o in like.observations])
    pp = np.concatenate([s for s in noisy], axis=1).reshape(walkers, draws, -1)
    sim = np.concatenate([s for s in sims], axis=1).reshape(walkers, draws, -1)
    fit = np.concatenate(like.fit_mask)
    attrs = {"lxsd_format": FORMAT,
             "lxsd_factors": json.dumps([{"label": f.label, "name": f.name, "low": f.low, "high": f.high,
                                          "dist": f.dist} for f in space.factors]),
             "lxsd_rows": json.dumps([{"label": lab, "indicator": o.indicator, "measure": o.measure,
                                       "start": float(o.start[i]), "end": float(o.end[i]), "sigma": o.sigma,
                                       "unit": o.unit} for o in like.observations for i, lab in
                                      enumerate(o.label(i) for i in range(len(o.end)))]),
             "lxsd_meta": json.dumps(meta, default=str)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "more chains than draws": walkers are the chains
        idata = az.from_dict(
        posterior=post,
        posterior_predictive={"observation": pp, "simulated": sim},
        observed_data={"observation": obs, "fit_row": fit.astype(np.int8)},
        sample_stats=stats,
        coords=coords,
        dims={**dims, "observation": ["row"], "simulated": ["row"], "fit_row": ["row"]},
        )
    idata.posterior.attrs.update(attrs)
    return idata


def summarise(idata, labels: list[str] | None = None, full: np.ndarray | None = None) -> pd.DataFrame:
    """Per constant: median, 5 % and 95 % quantiles, R-hat, bulk and tail ESS (ArviZ).

    ``full``: (steps, walkers, k) unthinned draws to compute them from (default: the saved draws).
    """
    az = _arviz()
    post = idata.posterior
    factors = json.loads(post.attrs["lxsd_factors"])
    if full is None:
        full = np.stack([_factor_chains(idata, f["label"]).T for f in factors], axis=-1)  # (draw, chain, k)
    arr = np.asarray(full).transpose(1, 0, 2)                     # (chain, draw, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "more chains than draws" and nan diagnostics of constant draws
        rhat = [float(az.rhat(arr[:, :, j])) for j in range(arr.shape[2])]
        ess_b = [float(az.ess(arr[:, :, j], method="bulk")) for j in range(arr.shape[2])]
        ess_t = [float(az.ess(arr[:, :, j], method="tail")) for j in range(arr.shape[2])]
    rows = []
    for j, f in enumerate(factors):
        vals = arr[:, :, j].reshape(-1)
        rows.append({"label": f["label"], "median": float(np.median(vals)), "q05": float(np.quantile(vals, 0.05)),
                     "q95": float(np.quantile(vals, 0.95)), "r_hat": rhat[j], "ess_bulk": ess_b[j],
                     "ess_tail": ess_t[j], "low": f["low"], "high": f["high"]})
    return pd.DataFrame(rows)


def _factor_chains(idata, label: str) -> np.ndarray:
    """(chain, draw) values of one constant (or one element)."""
    base, el = _split_label(label)
    da = idata.posterior[base]
    return np.asarray((da.sel({f"{base}_element": el}) if el is not None else da).values)


# ---------------------------------------------------------------------------- files
def write_posterior(post: Posterior, path: str | Path) -> Path:
    """Write the InferenceData as NetCDF, atomically (temp file + os.replace)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EngineError(f"{path}: folder {parent} does not exist")
    if path.suffix.lower() != ".nc":
        raise EngineError(f"{path}: the posterior is written as NetCDF: give a file ending in .nc")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nc", dir=parent)
    os.close(fd)
    try:
        post.idata.to_netcdf(tmp, engine="h5netcdf")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make a shipped file private
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


@dataclass
class PosteriorDraws:
    """A posterior read back from NetCDF: the joint draws of its constants."""

    path: str
    labels: list[str]
    factors: list[dict]
    values: np.ndarray            # (draws, k), chains stacked
    meta: dict
    posterior: object             # the xarray Dataset of the posterior group

    @property
    def idata(self):
        """The whole file as ArviZ InferenceData (imports ArviZ: only when asked)."""
        return _arviz().from_netcdf(self.path, engine="h5netcdf")

    def sample(self, n: int, seed: int) -> np.ndarray:
        """n joint draws (rows of ``values``, with replacement when n exceeds the draws), seeded."""
        rng = np.random.default_rng(seed)
        m = self.values.shape[0]
        idx = rng.permutation(m)[:n] if n <= m else rng.integers(0, m, n)
        return self.values[idx]


def read_posterior(path: str | Path) -> PosteriorDraws:
    """Read a posterior written by :func:`write_posterior` (its posterior group, with xarray: ArviZ
    is not imported, so an ensemble starts fast); errors name the file."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: posterior file not found (write one with `lxsd posterior ... --out {path}`)")
    try:
        with xr.open_dataset(str(path), group="posterior", engine="h5netcdf") as ds:
            post = ds.load()
    except Exception as exc:  # noqa: BLE001 - h5py/xarray raise many kinds
        raise EngineError(f"{path}: cannot read the posterior: {exc.__class__.__name__}: {exc}") from None
    if post.attrs.get("lxsd_format") != FORMAT:
        raise EngineError(f"{path}: not a posterior written by `lxsd posterior` (no {FORMAT} posterior group)")
    factors = json.loads(post.attrs["lxsd_factors"])
    cols = []
    for f in factors:
        base, el = _split_label(f["label"])
        da = post[base]
        if el is not None:
            da = da.sel({f"{base}_element": el})
        cols.append(np.asarray(da.transpose("chain", "draw").values, dtype=float).reshape(-1))
    values = np.column_stack(cols) if cols else np.empty((0, 0))
    return PosteriorDraws(str(path), [f["label"] for f in factors], factors, values,
                          json.loads(post.attrs.get("lxsd_meta", "{}")), post)


def posterior_space(model, draws: PosteriorDraws) -> ParamSpace:
    """The ParamSpace of a posterior's constants in ``model`` (an error names any it lacks)."""
    space = build_space(model, list(draws.labels))
    if space.labels != draws.labels:
        raise EngineError(f"{draws.path}: its constants {', '.join(draws.labels[:5])} do not match the model's "
                          f"({', '.join(space.labels[:5])}): regenerate the posterior for this model")
    return space


def default_posterior(model_file: str | Path) -> Path | None:
    """The posterior shipped beside a model: ``MODEL_posterior.nc``, if it exists."""
    p = Path(model_file)
    cand = p.with_name(f"{p.stem}_posterior.nc")
    return cand if cand.is_file() else None


def target_probabilities(model, ref: ModelRef, runs: dict, targets: list, n: int = 1000, seed: int = 0,
                         posterior: str | Path | None = None, prior: bool = False,
                         model_file: str | Path | None = None) -> tuple[pd.DataFrame, str]:
    """P(target met) per scenario and target, and where it comes from (for the CLI and the app).

    Draws from ``posterior``, else from the posterior shipped beside ``model_file`` (unless
    ``prior``), else from the priors (the constants of role uncertain the scenarios do not set).
    Returns (DataFrame scenario, id, name_zh, kind, target, p_met, median_margin; a label:
    ``posterior NAME.nc`` or ``prior``).
    """
    from engine.analysis.ensemble import build_space, run_ensemble

    path = posterior or (None if prior else default_posterior(model_file or ref.path))
    common = set.intersection(*[set(o or {}) for o in runs.values()]) if runs else set()
    post = None
    if path is not None:
        post = read_posterior(path)
        pspace = posterior_space(model, post)
        try:
            rest = [lab for lab in build_space(model, exclude=common).labels if lab not in post.labels]
        except EngineError:
            rest = []
        space = build_space(model, list(post.labels) + rest)
        space.explicit = {f.name for f in pspace.factors}
    else:
        space = build_space(model, exclude=common)
    res = run_ensemble(model, ref, runs, space, n, seed, targets=targets, keep=False, posterior=post)
    return res.probabilities, (f"posterior {Path(path).name}" if path is not None else "prior")


def default_params(model) -> list[str]:
    """The constants a posterior conditions by default: role uncertain or calibrated, with a range."""
    role = model.role
    return [n for n, v in model.constants.items() if v.range is not None and role(n) in ("uncertain", "calibrated")]


# ---------------------------------------------------------------------------- plot
def plot_posterior(post: Posterior, like: Likelihood, path: str | Path, top: int = 8) -> Path:
    """For the ``top`` constants the data narrowed most (smallest 90 % interval against the prior
    range): traces (emcee: per walker; SMC: each replica's marginal, which should agree) and
    marginals over the prior range; pairs of the first 4; the posterior predictive (5-95 % and
    median, as a ratio to the observed value) of every data row. ``.png``/``.svg``/``.pdf`` or ``.html``."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EngineError(f"{path}: folder {parent} does not exist")
    idata = post.idata
    order = np.argsort(interval_width_ratio(post.summary).fillna(1.0).to_numpy(), kind="stable")
    labels = [post.labels[j] for j in order[:top]]
    factors = {f["label"]: f for f in json.loads(idata.posterior.attrs["lxsd_factors"])}
    smc = json.loads(idata.posterior.attrs.get("lxsd_meta", "{}")).get("sampler") == "smc"

    def chains(label):
        base, el = _split_label(label)
        da = idata.posterior[base]
        return np.asarray((da.sel({f"{base}_element": el}) if el else da).values)  # (chain, draw)

    pp = np.asarray(idata.posterior_predictive["observation"].values).reshape(-1, len(like.row_labels()))
    obs = np.asarray(idata.observed_data["observation"].values)
    rows = like.row_labels()
    q = np.nanquantile(pp, [0.05, 0.5, 0.95], axis=0)
    if path.suffix.lower() == ".html":
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        n = len(labels)
        fig = make_subplots(rows=n + 1, cols=2, subplot_titles=[t for lab in labels for t in (f"{lab} trace",
                                                                                              f"{lab} posterior")]
                            + ["posterior predictive / observed", ""])
        for i, lab in enumerate(labels, start=1):
            c = chains(lab)
            for w in range(min(c.shape[0], 8)):
                fig.add_trace(go.Scatter(y=c[w], mode="lines", line={"width": 0.6}, showlegend=False), row=i, col=1)
            fig.add_trace(go.Histogram(x=c.reshape(-1), nbinsx=40, showlegend=False), row=i, col=2)
        ratio = q / obs
        fig.add_trace(go.Scatter(x=rows, y=ratio[1], mode="markers", name="median / observed",
                                 error_y={"type": "data", "symmetric": False, "array": ratio[2] - ratio[1],
                                          "arrayminus": ratio[1] - ratio[0]}), row=n + 1, col=1)
        fig.update_layout(height=230 * (n + 1))
        fig.write_html(str(path))
        return path
    plt = pyplot(path)
    npair = min(4, len(labels))
    nrow = len(labels) + 1 + npair
    fig = plt.figure(figsize=(10, 2.2 * nrow))
    gs = fig.add_gridspec(nrow, max(2, npair))
    for i, lab in enumerate(labels):
        c = chains(lab)
        ax = fig.add_subplot(gs[i, :max(2, npair) - 1])
        if smc:  # particles have no order: compare the replicas' marginals instead of a trace
            for rep in c:
                ax.hist(rep, bins=30, histtype="step", density=True)
            ax.set_title("replicas", fontsize=6, loc="left")
        else:
            ax.plot(c.T, lw=0.3, alpha=0.5)
        ax.set_ylabel(lab, fontsize=7)
        ax.tick_params(labelsize=6)
        ax2 = fig.add_subplot(gs[i, max(2, npair) - 1])
        ax2.hist(c.reshape(-1), bins=40, range=(factors[lab]["low"], factors[lab]["high"]))
        ax2.tick_params(labelsize=6)
    ax = fig.add_subplot(gs[len(labels), :])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = q / obs
    xs = np.arange(len(rows))
    ax.errorbar(xs, ratio[1], yerr=[ratio[1] - ratio[0], ratio[2] - ratio[1]], fmt="o", ms=3, label="predictive 5-95 %")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(xs, rows, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("predicted / observed", fontsize=7)
    ax.legend(fontsize=6)
    for a in range(npair):  # pairs of the first constants
        for b in range(npair):
            axp = fig.add_subplot(gs[len(labels) + 1 + a, b])
            xa, xb = chains(labels[b]).reshape(-1), chains(labels[a]).reshape(-1)
            if a == b:
                axp.hist(xa, bins=30)
            else:
                axp.plot(xa, xb, ",", alpha=0.3)
            axp.tick_params(labelsize=5)
            if b == 0:
                axp.set_ylabel(labels[a], fontsize=6)
            if a == npair - 1:
                axp.set_xlabel(labels[b], fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def factors_of(draws: PosteriorDraws) -> list[Factor]:
    """The posterior's factors as :class:`Factor` (prior ranges from the file)."""
    return [Factor(f["name"], None, f["label"], f["low"], f["high"], f.get("dist") or {"kind": "uniform"})
            for f in draws.factors]


def interval_width_ratio(summary: pd.DataFrame) -> pd.Series:
    """(q95 - q05) / (prior high - low) per constant: < 1 means the data narrowed it."""
    w = (summary["high"] - summary["low"]).replace(0, math.nan)
    return (summary["q95"] - summary["q05"]) / w
