"""Monte Carlo ensembles: constants drawn from distributions, run as one vectorised batch per shard.

* :class:`ParamSpace`: the sampled factors (a scalar constant, or one element of a
  subscripted one), each with a distribution: uniform over the constant's ``range`` by
  default, overridable in a distributions file (TOML, see ``docs/analysis.md``).
* :func:`draw`: an (N, k) sample matrix for a design (``random``, ``lhs``, ``sobol``),
  from an explicit seed: the same seed gives the same numbers.
* :func:`run_ensemble`: every scenario x every sample, in shards of ``chunk`` samples,
  in-process or over Dask (:mod:`engine.analysis.distributed`); percentiles per variable
  and year, the probability of meeting each scorecard target, and (optionally) every
  sample's path written to Parquet partitioned by scenario (``OUT/scenario=NAME/part-*.parquet``)
  or to CSV, shard by shard, so a 100 000-sample ensemble never sits in memory whole.
* Targets and expressions (:class:`Expr`, :func:`load_targets`) live in
  :mod:`engine.analysis.targets` and are re-exported here.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time as _time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from engine import progress as _progress
from engine.analysis.distributed import Executor, Loads, ModelRef, remember, shards
from engine.analysis.targets import Expr, Target, check_columns, load_targets  # noqa: F401 - re-exported
from engine.parse.toml_file import read_toml
from engine.errors import EngineError, ModelError, Problem

DESIGNS = ("random", "lhs", "sobol")
DIST_KINDS = ("uniform", "triangular", "normal", "lognormal", "fixed")
PERCENTILES = (5, 25, 50, 75, 95)
HEADLINE = ("gdp_real", "gdp_nominal", "value_added", "industry_share", "population_resident", "population_urban",
            "urbanization_rate", "energy_consumption", "energy_intensity", "co2_emissions", "co2_intensity",
            "budget_revenue", "government_debt", "forest_cover")
DEFAULT_CHUNK = 10_000



# ---------------------------------------------------------------------------- parameters
@dataclass
class Factor:
    """One sampled quantity: a scalar constant, or one element of a subscripted one."""

    name: str
    index: tuple[int, ...] | None
    label: str
    low: float
    high: float
    dist: dict = field(default_factory=lambda: {"kind": "uniform"})

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms in [0, 1) to the distribution (truncated to [low, high])."""
        from scipy import stats

        kind = self.dist.get("kind", "uniform")
        lo, hi = self.dist.get("low", self.low), self.dist.get("high", self.high)
        if kind == "uniform":
            return lo + u * (hi - lo)
        if kind == "fixed":
            return np.full_like(u, float(self.dist["value"]))
        if kind == "triangular":
            mode = float(self.dist.get("mode", (lo + hi) / 2))
            c = 0.0 if hi == lo else (mode - lo) / (hi - lo)
            return stats.triang.ppf(u, c, loc=lo, scale=hi - lo)
        if kind == "normal":
            mu, sd = float(self.dist["mean"]), float(self.dist["sd"])
            a, b = stats.norm.cdf([(lo - mu) / sd, (hi - mu) / sd])
            return np.clip(mu + sd * stats.norm.ppf(a + u * (b - a)), lo, hi)
        # lognormal: log(x) ~ N(mu, sigma), truncated to the range
        mu, sigma = float(self.dist["mu"]), float(self.dist["sigma"])
        lo_, hi_ = (math.log(lo) if lo > 0 else -np.inf), math.log(hi)
        a, b = stats.norm.cdf([(lo_ - mu) / sigma, (hi_ - mu) / sigma])
        return np.clip(np.exp(mu + sigma * stats.norm.ppf(a + u * (b - a))), lo, hi)


class ParamSpace:
    """The factors of an analysis and how a sample matrix becomes ``run(params=...)``."""

    def __init__(self, model, factors: list[Factor], explicit: set[str] | None = None,
                 note: str = "") -> None:
        if not factors:
            raise EngineError("no parameters to sample: give --params, or give constants a range")
        self.model = model
        self.factors = factors
        # constants named on purpose (--params, [sample] include, a fit or a search): sampled even
        # where a scenario sets them; the others (the default selection) are held at the scenario's value
        self.explicit = {f.name for f in factors} if explicit is None else set(explicit)
        self.note = note  # how the factors were chosen (for the summary line)
        self.excluded: list[str] = []  # default constants left out because the scenario sets them

    def held(self, overrides: Mapping | None) -> list[str]:
        """Labels of the factors a scenario holds: set by ``overrides`` and not named explicitly."""
        return [f.label for f in self.factors if f.name in (overrides or {}) and f.name not in self.explicit]

    def overriding(self, overrides: Mapping | None) -> list[str]:
        """Labels of the factors named explicitly that ``overrides`` sets: sampled anyway."""
        return [f.label for f in self.factors if f.name in (overrides or {}) and f.name in self.explicit]

    def summary(self, first: int = 6) -> str:
        """"N constants: a, b, c, ..." (the factors, counted by constant)."""
        names = list(dict.fromkeys(f.name for f in self.factors))
        shown = ", ".join(names[:first]) + (f", ... (+{len(names) - first})" if len(names) > first else "")
        elems = len(self.factors)
        return (f"{len(names)} constant(s)" + (f" ({elems} factors)" if elems != len(names) else "")
                + (f" {self.note}" if self.note else "") + f": {shown}")

    @property
    def labels(self) -> list[str]:
        return [f.label for f in self.factors]

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([f.low for f in self.factors]), np.array([f.high for f in self.factors]))

    def defaults(self, overrides: Mapping | None = None) -> np.ndarray:
        """Each factor's value in the model (or in ``overrides``, a scenario's settings)."""
        out = []
        for f in self.factors:
            v = (overrides or {}).get(f.name)
            if v is None:
                arr = self.model._defaults[f.name][..., 0]
            else:
                arr = self.model._value_array(f.name, v, None)[..., 0]
            out.append(float(arr[f.index] if f.index is not None else arr))
        return np.array(out)

    def to_params(self, X: np.ndarray, overrides: Mapping | None = None) -> dict[str, np.ndarray]:
        """(n, k) values -> params for ``CompiledModel.run``; unsampled elements keep their values
        (the scenario's, where ``overrides`` sets them). A factor the scenario holds (see
        :meth:`held`) is left out, so the scenario's value applies; every other sampled value
        wins over ``overrides`` (see :func:`run_batch`)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        n = X.shape[0]
        params: dict[str, np.ndarray] = {}
        held = {f.name for f in self.factors if f.name in (overrides or {}) and f.name not in self.explicit}
        for j, f in enumerate(self.factors):
            if f.name in held:
                continue
            index = f.index
            if index is None:
                params[f.name] = X[:, j].copy()
                continue
            if f.name not in params:
                v = (overrides or {}).get(f.name)
                base = self.model._defaults[f.name][..., 0] if v is None else \
                    self.model._value_array(f.name, v, None)[..., 0]
                params[f.name] = np.broadcast_to(base, (n, *base.shape)).copy()
            where: tuple[slice | int, ...] = (slice(None), *index)
            params[f.name][where] = X[:, j]
        return params

    def as_settings(self, x: np.ndarray, overrides: Mapping | None = None) -> dict[str, object]:
        """One sample as scenario-file settings: numbers, or {element = number} tables."""
        lo, hi = self.bounds
        params = self.to_params(np.clip(np.asarray(x, dtype=float), lo, hi)[None, :], overrides)
        out: dict[str, object] = {}
        for name, arr in params.items():
            val = arr[0]
            if np.ndim(val) == 0:
                out[name] = float(val)
            else:
                out[name] = _nested(self.model, name, val)
        return out


def _nested(model, name, arr):
    dims = model.rvars[name].dims

    def rec(level, a):
        els = model.model.dim_elements(dims[level])
        if level == len(dims) - 1:
            return {e: float(a[i]) for i, e in enumerate(els)}
        return {e: rec(level + 1, a[i]) for i, e in enumerate(els)}
    return rec(0, arr)


def parse_param_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [p.strip() for p in re.split(r",(?![^\[]*\])", text) if p.strip()]
    if not names:
        raise EngineError("--params is empty: give constant names separated by commas")
    return names


DEFAULT_ROLES = ("uncertain",)


def build_space(model, names: list[str] | None = None, dist_file: str | Path | None = None,
                exclude: set[str] | None = None) -> ParamSpace:
    """Factors for ``names`` (``name`` or ``name[element]``), with distributions from
    ``dist_file`` (TOML, optional).

    ``names`` (like the distributions file's ``[sample] include``) is an explicit request:
    any constant with a range (or low/high in the distributions file) may be named, whatever
    its role, and it is sampled even where a scenario sets it. Without ``names`` the default
    is every constant of role ``uncertain`` with a range (``CompiledModel.role``: levers,
    extreme-condition ``test`` switches and ``fixed`` constants are not sampled unless named),
    plus the constants the distributions file describes, less ``exclude`` (e.g. the constants
    a scenario sets) and the file's ``[sample] exclude``.
    """
    dists, include, exclude_file = _read_distributions(dist_file) if dist_file else ({}, None, None)
    consts = model.constants
    role = getattr(model, "role", None)
    if names is not None:
        explicit = {n.partition("[")[0].strip() for n in names}
        drop: set[str] = set()
        note = "named in --params"
    elif include:
        names = [str(n) for n in include]
        explicit = {n.partition("[")[0].strip() for n in names}
        drop = set(exclude_file or ())
        note = f"named in {dist_file} [sample] include"
    else:
        names = [n for n, v in consts.items() if v.range is not None
                 and (role is None or role(n) in DEFAULT_ROLES)]
        names += [n for n in dists if n.split("[")[0] in consts and n not in names]
        explicit = set()
        drop = set(exclude_file or ()) | set(exclude or ())
        note = "of role uncertain" + (f" or described in {dist_file}" if dists else "")
    factors: list[Factor] = []
    problems: list[Problem] = []
    excluded = []
    for item in names:
        base = item.partition("[")[0].strip()
        if base in drop or item in drop:
            if not explicit and (base in (exclude or ()) or item in (exclude or ())):
                excluded.append(item)
            continue
        factors += _factors_of(model, item, dists, problems)
    if problems:
        raise ModelError(problems)
    first: dict[str, Factor] = {}
    for f in factors:
        first.setdefault(f.label, f)   # a factor named twice is sampled once
    uniq = list(first.values())
    if not uniq and not explicit:
        raise EngineError("no parameters to sample: no constant of role uncertain with a range"
                          + (" that the scenario does not set" if exclude else "")
                          + "; name constants with --params")
    space = ParamSpace(model, uniq, explicit, note)
    space.excluded = excluded
    return space


_DIST_NEEDS = {"uniform": (), "fixed": ("value",), "triangular": ("mode",), "normal": ("mean", "sd"),
               "lognormal": ("mu", "sigma")}


def _read_distributions(dist_file: str | Path) -> tuple[dict[str, dict], list | None, list | None]:
    """A distributions file: ({name: spec with its kind}, [sample] include, [sample] exclude); ModelError
    listing every problem."""
    dist_file = Path(dist_file)
    data = read_toml(dist_file, "distributions file")
    problems = [Problem(str(dist_file), key, "unknown section", "[distributions.NAME] and [sample]")
                for key in data if key not in ("distributions", "sample")]
    sample = data.get("sample", {})
    dists: dict[str, dict] = {}
    for name, spec in (data.get("distributions") or {}).items():
        problem = _distribution_problem(str(dist_file), f"distributions.{name}", spec)
        if problem is not None:
            problems.append(problem)
        else:
            dists[name] = dict(spec, kind=spec.get("kind", "uniform"))
    if problems:
        raise ModelError(problems)
    return dists, sample.get("include"), sample.get("exclude")


def _distribution_problem(file: str, where: str, spec: object) -> Problem | None:
    """What is wrong with one [distributions.NAME] table, or None."""
    if not isinstance(spec, dict):
        return Problem(file, where, "must be a table")
    kind = spec.get("kind", "uniform")
    need = _DIST_NEEDS.get(kind)
    if need is None:
        return Problem(file, f"{where}.kind", f"unknown distribution {kind!r}", ", ".join(DIST_KINDS))
    missing = [k for k in need if k not in spec]
    bad = [k for k, v in spec.items() if k != "kind" and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    if missing or bad:
        return Problem(file, where, (f"missing {', '.join(missing)}" if missing else "")
                       + (f" non-numeric {', '.join(bad)}" if bad else ""),
                       f"{kind} needs {', '.join(need) or 'nothing'} (numbers)")
    if kind == "normal" and spec["sd"] <= 0 or kind == "lognormal" and spec["sigma"] <= 0:
        return Problem(file, where, "the spread must be positive")
    return None


def _factors_of(model, item: str, dists: dict[str, dict], problems: list[Problem]) -> list[Factor]:
    """The factors one name (``name`` or ``name[element]``) stands for; problems are appended to ``problems``."""
    base, _, sel = item.partition("[")
    base = base.strip()
    consts = model.constants
    var = consts.get(base)
    if var is None:
        import difflib
        close = difflib.get_close_matches(base, list(consts), n=3)
        problems.append(Problem(model.model.file, item, "not a constant of the model",
                                f"did you mean {', '.join(close)}?" if close else "see `lxsd describe MODEL`"))
        return []
    spec = dists.get(item) or dists.get(base) or {"kind": "uniform"}
    rng = var.range
    if rng is None and not ("low" in spec and "high" in spec):
        problems.append(Problem(model.model.file, item, "has no range, so it cannot be sampled or fitted",
                                "give the constant `range = [lo, hi]` in the model, or low/high in the "
                                "distributions file"))
        return []
    lo, hi = (float(spec.get("low", rng[0] if rng else 0)), float(spec.get("high", rng[1] if rng else 0)))
    if not lo <= hi:
        problems.append(Problem(model.model.file, item, f"range [{lo:g}, {hi:g}] is empty"))
        return []
    rv = model.rvars[base]
    if not rv.dims:
        if sel:
            problems.append(Problem(model.model.file, item, "has no dimensions; drop the [element]"))
            return []
        return [Factor(base, None, base, lo, hi, spec)]
    elems = model.elements(base)
    picks = elems
    if sel:
        want = tuple(p.strip() for p in sel.rstrip("]").split(","))
        if want not in elems:
            problems.append(Problem(model.model.file, item, "unknown element",
                                    f"elements: {', '.join(','.join(e) for e in elems)}"))
            return []
        picks = [want]
    out = []
    for e in picks:
        idx = tuple(model.model.dim_elements(d).index(x) for d, x in zip(rv.dims, e, strict=True))
        label = f"{base}[{','.join(e)}]"
        out.append(Factor(base, idx, label, lo, hi, dists.get(label) or spec))
    return out


def uniforms(n: int, k: int, seed: int, design: str = "random") -> np.ndarray:
    """An (n, k) matrix in [0, 1) from an explicit seed."""
    if n < 1:
        raise EngineError(f"the number of samples must be at least 1, got {n}")
    if design not in DESIGNS:
        raise EngineError(f"unknown design {design!r}; one of {', '.join(DESIGNS)}")
    if design == "random":
        return np.random.default_rng(seed).random((n, k))
    from scipy.stats import qmc

    if design == "lhs":
        return qmc.LatinHypercube(d=k, seed=np.random.default_rng(seed)).random(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balance properties need n = 2^m; any n is still fine
        return qmc.Sobol(d=k, scramble=True, seed=np.random.default_rng(seed)).random(n)


def draw(space: ParamSpace, n: int, seed: int, design: str = "random") -> np.ndarray:
    """The (n, k) sample matrix in the factors' units."""
    U = uniforms(n, len(space.factors), seed, design)
    return np.column_stack([f.ppf(U[:, j]) for j, f in enumerate(space.factors)])


# ---------------------------------------------------------------------------- running
def annual_saveper(model) -> float:
    """Save once a time unit where dt allows it (smaller batches, same yearly values)."""
    ts = model.time
    if ts.saveper < 1 and abs(1 / ts.dt - round(1 / ts.dt)) < 1e-9:
        return 1.0
    return ts.saveper


def output_columns(res, names: list[str]) -> dict[str, np.ndarray]:
    """Results -> {column: (N, T)} with subscripted variables flattened as ``name[e1,e2]``."""
    out = {}
    for name in names:
        arr = res[name]
        elems = res._elements[name]
        if elems == [()]:
            out[name] = arr
        else:
            flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
            for i, e in enumerate(elems):
                out[f"{name}[{','.join(e)}]"] = flat[:, :, i]
    return out


def run_batch(model, params: Mapping[str, np.ndarray], overrides: Mapping | None, n: int, variables: list[str],
              **kw) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Run n samples (``params``: arrays of n values; ``overrides``: one value for all, the
    scenario's settings; a constant in both takes the sampled values).

    One batch call with ``throw=False``: a run that fails (a non-finite value, a guard, a
    stock below zero) stops alone (``Results.status``) and the others are unchanged. A failed
    run's outputs are NaN for the whole run, so statistics leave it out; returns
    (times, {column: (n, T)}, failed mask).
    """
    res = model.run(params={**dict(overrides or {}), **params}, variables=variables, n=n, throw=False, **kw)
    failed = ~np.asarray(res.ok, bool)
    cols = output_columns(res, variables)
    if failed.any():
        cols = {c: np.where(failed[:, None], np.nan, a) for c, a in cols.items()}
    return res.times, cols, failed


def run_shard(ref: Loads, payload: dict) -> dict:
    """Run one shard of samples (on a worker or in-process); returns times, columns, failed."""
    model = ref.load()
    times, cols, failed = run_batch(model, payload["params"], payload.get("overrides"), payload["n"],
                                    payload["variables"], saveper=payload.get("saveper"),
                                    first_run=payload.get("first_run", 0))
    return {"times": times, "columns": cols, "failed": failed}


def default_variables(model, targets: list[Target] | None = None) -> list[str]:
    names = [n for n in HEADLINE if n in model.rvars and n in model.visible]
    for t in targets or []:
        names += [v for v in t.expr.variables if v not in names]
    return names or [n for n, v in model.model.variables.items() if v.kind == "stock"][:20]


@dataclass
class EnsembleResult:
    """Percentiles, target probabilities, and what was written."""

    percentiles: pd.DataFrame   # scenario, column, time, mean, p5 ... p95
    probabilities: pd.DataFrame  # scenario, id, name, kind, target, p_met, median margin
    samples: np.ndarray
    labels: list[str]
    written: list[str]
    complete: bool = True
    seconds: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)  # scenario -> runs with non-finite values
    held: dict[str, list[str]] = field(default_factory=dict)  # scenario -> factors it sets (not sampled there)


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class _Writer:
    """Writes shards as they arrive: Parquet parts partitioned by scenario, or one CSV."""

    def __init__(self, out: str | Path | None) -> None:
        self.out = Path(out) if out else None
        self.written: list[str] = []
        self._csv_tmp: str | None = None   # the CSV being written, renamed to out at the end
        self._csv_header = True
        if self.out is None:
            return
        suffix = self.out.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise EngineError(f"{self.out}: --out must end in .csv or .parquet")
        parent = self.out.parent if str(self.out.parent) else Path(".")
        if not parent.is_dir():
            raise EngineError(f"{self.out}: folder {parent} does not exist")
        if suffix == ".parquet":
            if self.out.exists() and not self.out.is_dir():
                self.out.unlink()
            self.out.mkdir(exist_ok=True)
        else:
            fd, self._csv_tmp = tempfile.mkstemp(prefix=f".{self.out.name}.", dir=parent)
            os.close(fd)

    def clear(self, scenario: str) -> None:
        if self.out is not None and self.out.suffix.lower() == ".parquet":
            d = self.out / f"scenario={scenario}"
            if d.exists():
                shutil.rmtree(d)
            d.mkdir()

    def write(self, scenario: str, part: int, start: int, times: np.ndarray, cols: dict[str, np.ndarray]) -> None:
        if self.out is None:
            return
        n, t = next(iter(cols.values())).shape
        df = pd.DataFrame({"sample": np.repeat(np.arange(start, start + n), t), "time": np.tile(times, n)})
        for c, a in cols.items():
            df[c] = a.reshape(-1)
        if self.out.suffix.lower() == ".parquet":
            path = self.out / f"scenario={scenario}" / f"part-{part:05d}.parquet"
            _atomic_parquet(df, path)
            self.written.append(str(path))
        else:
            df.insert(0, "scenario", scenario)
            df.to_csv(self._csv_tmp, mode="a", header=self._csv_header, index=False)
            self._csv_header = False

    def finish(self, complete: bool, manifest: dict) -> None:
        if self.out is None:
            return
        if self.out.suffix.lower() == ".parquet":
            (self.out / "_lxsd_ensemble.json").write_text(json.dumps(dict(manifest, complete=complete), indent=1,
                                                                     ensure_ascii=False), encoding="utf-8")
            return
        tmp = self._csv_tmp
        if tmp is None:
            return
        if self._csv_header:  # nothing written
            os.unlink(tmp)
            return
        dest = self.out if complete else self.out.with_name(self.out.stem + ".partial" + self.out.suffix)
        os.replace(tmp, dest)
        self.written.append(str(dest))


def draw_joint(space: ParamSpace, n: int, seed: int, design: str = "random", posterior=None) -> np.ndarray:
    """n samples (rows) of ``space``: the factors a posterior holds drawn jointly from its draws (seeded),
    the others from their distributions (``posterior``: engine.analysis.posterior.PosteriorDraws or None)."""
    X = draw(space, n, seed, design)
    if posterior is not None:
        P = posterior.sample(n, seed)
        for j, lab in enumerate(space.labels):
            if lab in posterior.labels:
                X[:, j] = P[:, posterior.labels.index(lab)]
    return X


@dataclass
class _Shards:
    """Runs an ensemble's shards for one scenario at a time, writes them, counts them and says so."""

    executor: Executor
    ref: ModelRef
    pieces: list[tuple[int, int]]
    X: np.ndarray
    space: ParamSpace
    variables: list[str]
    saveper: float | None
    writer: _Writer
    shown: set[str]
    say: Callable[[str], None] | None
    total: int            # shards of the scenarios (not the base of differences)
    parts: int            # runs over all shards (the scenarios, and the base): parts of the progress
    done: int = 0
    part: int = 0

    def run(self, scen: str | None, overrides: Mapping | None, base_cols: dict[str, np.ndarray] | None = None
            ) -> tuple[np.ndarray | None, dict[str, np.ndarray], np.ndarray]:
        """(times, {column: (n, T)}, failed (n,)) of every sample under ``overrides``; written and counted
        under ``scen`` (None: the base of differences, kept in memory only). With ``base_cols``, each
        column is the difference from the same sample's base value (common random numbers)."""
        n = len(self.X)
        # first_run: sample a's RANDOM streams are the same whatever the sharding
        payloads = [{"params": self.space.to_params(self.X[a:b], overrides), "overrides": dict(overrides or {}),
                     "variables": self.variables, "saveper": self.saveper, "n": b - a, "first_run": a}
                    for a, b in self.pieces]
        cols: dict[str, np.ndarray] = {}
        times = None
        failed = np.zeros(n, bool)
        with _progress.part(self.part, self.parts):
            for i, r in self.executor.imap(run_shard, self.ref, payloads):
                a, b = self.pieces[i]
                times = r["times"]
                failed[a:b] = r["failed"]
                if base_cols is not None:
                    r["columns"] = {c: arr - base_cols[c][a:b] for c, arr in r["columns"].items()}
                    failed[a:b] |= ~np.isfinite(base_cols[next(iter(base_cols))][a:b, -1])
                for c, arr in r["columns"].items():
                    cols.setdefault(c, np.empty((n, arr.shape[1])))[a:b] = arr
                if scen is not None:
                    self._written(scen, i, a, times, r["columns"])
        self.part += 1
        return times, cols, failed

    def _written(self, scen: str, i: int, a: int, times: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        self.writer.write(scen, i, a, times, {c: v for c, v in columns.items() if c.split("[")[0] in self.shown})
        self.done += 1
        if self.say:
            self.say(f"{scen}: shard {i + 1}/{len(self.pieces)} done ({self.done}/{self.total})")


def run_ensemble(model, ref: ModelRef, scenarios: Mapping[str, Mapping], space: ParamSpace, n: int, seed: int,
                 design: str = "random", variables: list[str] | None = None,
                 targets: list[Target] | None = None, out: str | Path | None = None,
                 chunk: int = DEFAULT_CHUNK, executor: Executor | None = None,
                 percentiles: tuple[int, ...] = PERCENTILES, keep: bool = True,
                 progress: Callable[[str], None] | None = None, posterior=None,
                 base: tuple[str, Mapping] | None = None) -> EnsembleResult:
    """Run ``n`` samples of ``space`` under each scenario; see the module doc.

    All samples are drawn here, up front, and cut into shards of ``chunk``; each shard is
    one ``CompiledModel.run``. On an error, the shards already written stay on disk and
    the error says how many; ``keep=False`` keeps nothing in memory but what the
    percentiles and target probabilities need.

    ``posterior`` (:class:`engine.analysis.posterior.PosteriorDraws`): the factors it holds
    are drawn jointly from its draws (seeded), the others from their distributions.
    ``base`` = (name, overrides): every scenario is reported as its difference from this
    scenario, sample by sample with the same constants (common random numbers); the
    statistics, the written paths and no target probabilities are of the differences.
    """
    t0 = _time.perf_counter()
    if n < 1:
        raise EngineError(f"--samples must be at least 1, got {n}")
    executor = executor or Executor()
    remember(ref, model)
    X = draw_joint(space, n, seed, design, posterior)
    variables = list(variables or default_variables(model, targets))
    unknown = [v for v in variables if v not in model.visible]
    if unknown:
        raise EngineError(f"{model.model.file}: cannot save {', '.join(unknown)}: not a variable of the model")
    shown = set(variables)  # reported and written; the targets' variables are run too, for the probabilities
    for t in targets or []:
        variables += [v for v in t.expr.variables if v not in variables]
    saveper = annual_saveper(model)
    pieces = shards(n, chunk)
    writer = _Writer(out)
    manifest = {"seed": seed, "design": design, "samples": n, "chunk": chunk, "factors": space.labels,
                "scenarios": list(scenarios), "variables": [v for v in variables if v in shown],
                "draws": f"posterior {posterior.path}" if posterior is not None else "prior"}
    runner = _Shards(executor, ref, pieces, X, space, variables, saveper, writer, shown, progress,
                     len(pieces) * len(scenarios), len(scenarios) + (base is not None))
    base_cols: dict[str, np.ndarray] | None = None
    if base is not None:
        manifest["difference_from"] = base[0]
        targets = None
        _, cols, failed = runner.run(None, base[1])
        base_cols = {c: np.where(failed[:, None], np.nan, arr) for c, arr in cols.items()}
        if progress:
            progress(f"{base[0]} (the base of the differences): {len(pieces)} shard(s) done")
    rows, prows = [], []
    failures: dict[str, int] = {}
    held: dict[str, list[str]] = {}
    try:
        for scen, overrides in scenarios.items():
            if base is not None:
                scen = f"{scen}-minus-{base[0]}"
            writer.clear(scen)
            fixed = space.held(overrides)
            if fixed:
                held[scen] = fixed
                if progress:
                    progress(f"{scen}: fixed by the scenario, not sampled: {', '.join(fixed)}")
            times, cols, failed = runner.run(scen, overrides, base_cols)
            nf = int(failed.sum())
            failures[scen] = nf
            if nf and progress is not None:
                progress(f"{scen}: {nf} of {n} runs gave non-finite values; left out of the statistics")
            rows.append(_percentiles(scen, times, {c: v for c, v in cols.items() if c.split("[")[0] in shown},
                                     percentiles))
            if targets:
                prows.append(_probabilities(scen, times, cols, targets))
            del cols
    except EngineError as exc:
        writer.finish(False, dict(manifest, shards_done=runner.done, shards_total=runner.total,
                                  failed_runs=failures))
        kept = f"; {len(writer.written)} shard file(s) already written are kept under {writer.out}" \
            if writer.written else ""
        raise EngineError(f"ensemble stopped after {runner.done} of {runner.total} shards: {exc}{kept}") from None
    except KeyboardInterrupt:
        writer.finish(False, dict(manifest, shards_done=runner.done, shards_total=runner.total))
        raise
    done, total = runner.done, runner.total
    writer.finish(True, dict(manifest, shards_done=done, shards_total=total, failed_runs=failures))
    pct = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    prob = pd.concat(prows, ignore_index=True) if prows else pd.DataFrame(
        columns=["scenario", "id", "name_zh", "kind", "target", "p_met", "median_margin"])
    return EnsembleResult(pct, prob, X if keep else np.empty((0, X.shape[1])), space.labels, writer.written,
                          True, _time.perf_counter() - t0, failures, held)


def _percentiles(scen, times, cols, percentiles) -> pd.DataFrame:
    frames = []
    q = np.array(percentiles, dtype=float)
    for c, arr in cols.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            p = np.nanpercentile(arr, q, axis=0)  # (P, T); failed runs (NaN) left out
            mean = np.nanmean(arr, axis=0)
        d = {"scenario": scen, "variable": c, "time": times, "mean": mean}
        for j, pc in enumerate(percentiles):
            d[f"p{pc:g}"] = p[j]
        frames.append(pd.DataFrame(d))
    return pd.concat(frames, ignore_index=True)


def _at_factory(times, cols):
    def at(col, year):
        idx = np.flatnonzero(np.isclose(times, year))
        if not len(idx):
            raise EngineError(f"year {year:g} is not among the saved times {times[0]:g}-{times[-1]:g}")
        return cols[col][:, idx[0]]
    return at


def _probabilities(scen, times, cols, targets) -> pd.DataFrame:
    at = _at_factory(times, cols)
    out = []
    for t in targets:
        try:
            m = t.margin(t.value(at))
        except EngineError:
            continue
        ok = np.isfinite(m)
        out.append({"scenario": scen, "id": t.id, "name_zh": t.name_zh, "kind": t.kind, "target": t.target,
                    "p_met": float(np.mean(m[ok] >= 0)) if ok.any() else float("nan"),
                    "median_margin": float(np.median(m[ok])) if ok.any() else float("nan")})
    return pd.DataFrame(out)


def open_ensemble(path: str | Path):
    """The Parquet output of an ensemble as a lazy pyarrow Dataset (partitioned by scenario)."""
    import pyarrow.dataset as ds

    path = Path(path)
    if not path.is_dir():
        raise EngineError(f"{path}: not an ensemble folder (written by `lxsd ensemble --out X.parquet`)")
    return ds.dataset(str(path), format="parquet", partitioning="hive",
                      exclude_invalid_files=True)


def read_ensemble(path: str | Path, scenario: str | None = None, columns: list[str] | None = None,
                  time: float | None = None) -> pd.DataFrame:
    """Read only the rows and columns asked for (one scenario, some columns, one year)."""
    import pyarrow.dataset as ds

    dset = open_ensemble(path)
    flt = None
    if scenario is not None:
        flt = ds.field("scenario") == scenario
    if time is not None:
        f2 = ds.field("time") == float(time)
        flt = f2 if flt is None else flt & f2
    cols = None if columns is None else ["scenario", "sample", "time"] + [c for c in columns
                                                                          if c not in ("scenario", "sample", "time")]
    return dset.to_table(columns=cols, filter=flt).to_pandas()
