"""``lxsd calibrate``, ``ensemble``, ``sensitivity``, ``optimize`` and ``scorecard``
(registered by engine/cli.py through :func:`register`).

Every user mistake raises :class:`engine.errors.EngineError` (or ModelError), which the
CLI prints as one message and turns into a non-zero exit; file-system and Dask errors are
converted here, so no traceback reaches the user.
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.analysis.targets import Target


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _guard(fn):
    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except EngineError:
            raise
        except FileNotFoundError as exc:
            raise EngineError(f"{exc.filename}: file not found") from None
        except OSError as exc:
            raise EngineError(f"{exc.filename or ''}: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:
            raise EngineError(f"{exc.__class__.__name__}: {exc}") from None
    return wrapper


def _load(args):
    from engine import load_model
    from engine.analysis.distributed import ModelRef

    check = False if getattr(args, "no_units", False) else None
    if not Path(args.model).exists():
        raise EngineError(f"{args.model}: model file not found")
    model = load_model(args.model, check_units=check)
    return model, ModelRef(str(args.model), check)


def _executor(args):
    from engine.analysis.distributed import get_executor

    if args.workers is not None and args.workers < 1:
        raise EngineError(f"--workers must be at least 1, got {args.workers}")
    ex = get_executor(workers=args.workers, scheduler=args.scheduler, timeout=args.connect_timeout)
    if ex.kind != "in-process":
        _say(f"running on {ex.describe()}")
    return ex


def _scenario(model, path: str | None):
    if not path:
        return None, {}
    from engine.scenarios import load_scenario

    sc = load_scenario(path, model)
    return sc, dict(sc.overrides)


def _param_names(model, text: str | None) -> list[str] | None:
    """--params/--levers/--outputs: identifiers, or an imported model's Vensim names."""
    from engine.analysis.ensemble import parse_param_list
    from engine.cli import _identifiers

    names = parse_param_list(text)
    return None if names is None else _identifiers(model, names)


def _identifiers(model, names: list[str]) -> list[str]:
    from engine.cli import _identifiers as identifiers

    return identifiers(model, names)


def _years(text: str | None, model) -> list[float] | None:
    if not text:
        return None
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            y = float(item)
        except ValueError:
            raise EngineError(f"--years {item!r} is not a number") from None
        if not model.time.start <= y <= model.time.stop:
            raise EngineError(f"--years {y:g} is outside the model's time {model.time.start:g}-{model.time.stop:g}")
        out.append(y)
    return out


def _default_targets(args) -> str | None:
    if getattr(args, "targets", None):
        return args.targets
    guess = Path(args.model).parent / "targets.toml"
    return str(guess) if guess.exists() else None


def _write_csv(df: pd.DataFrame, path: str) -> None:
    from engine.results import write_frame_atomic

    if Path(path).suffix.lower() not in (".csv", ".parquet"):
        raise EngineError(f"{path}: must end in .csv or .parquet")
    write_frame_atomic(df, Path(path))


def _dist_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, metavar="K", help="start a local Dask cluster of K worker processes")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use an existing Dask scheduler")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the scheduler (default 10)")
    p.add_argument("--chunk", type=int, default=10_000, metavar="N", help="samples per shard (default 10000)")
    p.add_argument("--no-units", action="store_true", help="skip the unit check when loading the model")


def _first(labels: list[str], n: int = 6) -> str:
    return ", ".join(labels[:n]) + (f", ... (+{len(labels) - n})" if len(labels) > n else "")


def _say_overriding(space, runs) -> None:
    """Say which explicitly named constants are sampled although a scenario sets them, and
    which default ones are not sampled because it sets them."""
    if space.excluded:
        _say(f"note: not sampled, set by the scenario: {_first(space.excluded)} (name them in --params to "
             f"sample them anyway)")
    for scen, overrides in runs.items():
        over = space.overriding(overrides)
        if over:
            why = ("the posterior holds " + ("it" if len(over) == 1 else "them")) if "posterior" in space.note \
                else f"you named {'it' if len(over) == 1 else 'them'}"
            _say(f"note: {scen} sets {_first(over)}; sampled anyway, because {why}")


# ---------------------------------------------------------------------------- calibrate
@_guard
def cmd_calibrate(args: argparse.Namespace) -> int:
    from engine.analysis.calibration import (
        calibrate,
        find_mapping,
        load_data,
        parse_weights,
        plot_fit,
        scenario_text,
        unmapped_indicators,
        write_scenario,
    )
    from engine.analysis.ensemble import build_space

    model, ref = _load(args)
    sc, overrides = _scenario(model, args.scenario)
    names = _param_names(model, args.params)
    space = build_space(model, names, args.dist)
    mapping = args.map
    if mapping is None and Path(args.data).is_file():
        unknown = unmapped_indicators(args.data, model)
        guess = find_mapping(args.data, args.model) if unknown else None
        if guess is not None:
            mapping = str(guess)
            _say(f"note: {', '.join(unknown[:4])}{', ...' if len(unknown) > 4 else ''} "
                 f"{'is' if len(unknown) == 1 else 'are'} not a model output and no --map was given: "
                 f"using the mapping file {guess} found beside the data")
    series = load_data(args.data, model, mapping=mapping, scope=args.scope,
                       indicators=[i.strip() for i in args.indicators.split(",") if i.strip()]
                       if args.indicators else None, weights=parse_weights(args.weights))
    if args.until is not None and not all(np.any(s.years <= args.until) for s in series):
        _say(f"note: some series have no data through {args.until:g}; they are only scored, not fitted")
    with _executor(args) as ex:
        cal = calibrate(model, ref, space.factors, series, overrides, until=args.until, restarts=args.restarts,
                        seed=args.seed, executor=ex, progress=_say if args.restarts > 1 else None)
    for line in cal.lines():
        print(line)
    print()
    cols = ["indicator", "period", "n", "mape", "rmse", "r2", "u_m", "u_s", "u_c"]
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(cal.stats[cols].rename(columns={"mape": "MAPE%", "rmse": "RMSE", "r2": "R2", "u_m": "U_M",
                                              "u_s": "U_S", "u_c": "U_C"}).to_string(index=False))
    for note in cal.notes:
        _say(f"note: {note}")
    _say(f"{cal.runs} runs in {cal.seconds:.2f} s, cost {cal.cost:.6g}")
    if args.stats:
        _write_csv(cal.stats, args.stats)
        _say(f"wrote {args.stats}")
    out = Path(args.write) if args.write else None
    base, extra = None, {}
    if sc is not None:
        if out is not None and Path(sc.file).resolve().parent == out.resolve().parent:
            base = Path(sc.file).stem
        else:
            consts = model.constants
            extra = {k: v for k, v in overrides.items() if k in consts}
            if len(extra) < len(overrides):
                where = f"{out} is not beside {sc.file}" if out is not None else "the text below has no folder"
                _say(f"note: {where}, so it cannot name {Path(sc.file).stem} as base; its constants are "
                     f"copied, its series are not")
    if out is not None:
        write_scenario(cal, out, args.name, args.model, args.data, base=base, extra=extra)
        _say(f"wrote the calibrated scenario {out}")
    else:
        print()
        print("# ---- calibrated scenario (TOML; save it with --write FILE.toml) ----")
        print(scenario_text(cal, args.name, args.model, args.data, base=base, extra=extra), end="")
    if args.plot:
        plot_fit(cal, model, args.plot)
        _say(f"wrote {args.plot}")
    return 0


# ---------------------------------------------------------------------------- ensemble
@_guard
def cmd_ensemble(args: argparse.Namespace) -> int:
    from engine.analysis.ensemble import run_ensemble
    from engine.analysis.targets import load_targets
    from engine.cli import build_runs

    if args.samples < 1:
        raise EngineError(f"--samples must be at least 1, got {args.samples}")
    if args.chunk < 1:
        raise EngineError(f"--chunk must be at least 1, got {args.chunk}")
    model, ref = _load(args)
    runs = build_runs(model, args.scenario, {}, [])
    base = None
    if args.diff:
        (bname, bover), = build_runs(model, [args.diff], {}, []).items()
        base = (bname, bover)
    sets = [set(o or {}) for o in [*runs.values(), *([base[1]] if base else [])]]
    common = set.intersection(*sets) if sets else set()
    post, space = _draws_space(args, model, common)
    targets: list[Target] = []
    tpath = _default_targets(args)
    if base is not None:
        _say(f"differences from {base[0]} ({args.diff}), sample by sample with the same constants (common random "
             f"numbers); no target probabilities")
    if tpath and not args.no_targets and base is None:
        targets, notes = load_targets(tpath, model)
        if notes and args.verbose:
            for n in notes:
                _say(f"targets: {n}")
    variables = _identifiers(model, [v.strip() for v in args.vars.split(",") if v.strip()]) if args.vars else None
    years = _years(args.years, model)
    _say(f"{args.samples} samples x {len(runs)} scenario(s) ({args.design}, seed {args.seed}); "
         f"sampled {space.summary()}")
    _say_overriding(space, runs)
    with _executor(args) as ex:
        res = run_ensemble(model, ref, runs, space, args.samples, args.seed, args.design, variables, targets,
                           args.out, args.chunk, ex, keep=False, progress=_say if args.verbose else None,
                           posterior=post, base=base)
    for scen, labels in res.held.items():
        _say(f"note: {scen} sets {_first(labels)}: held at its value there, not sampled "
             f"(name them in --params to sample them anyway)")
    for scen, nf in res.failed.items():
        if nf:
            _say(f"note: {scen}: {nf} of {args.samples} runs gave non-finite values (some constants' ranges "
                 f"allow a blow-up); they are left out of the percentiles and probabilities")
    _print_ensemble(res, model, years, post)
    if args.summary:
        _write_csv(res.percentiles, args.summary)
        _say(f"wrote {args.summary}")
        if len(res.probabilities):
            p = Path(args.summary)
            tp = p.with_name(p.stem + "_targets" + p.suffix)
            _write_csv(res.probabilities, str(tp))
            _say(f"wrote {tp}")
    if args.out:
        _say(f"wrote {args.out}" + (" (Parquet, partitioned by scenario)" if args.out.endswith(".parquet") else ""))
    _say(f"{args.samples * len(runs)} runs in {res.seconds:.2f} s")
    return 0


def _print_ensemble(res, model, years: list[float] | None, post) -> None:
    """The percentiles at ``years`` (default: start, stop and 2020/25/30/35 within them) and the target
    probabilities, as tables on stdout."""
    pct = res.percentiles
    if years is None:
        ts = model.time
        years = sorted({ts.start, ts.stop} | {y for y in (2020, 2025, 2030, 2035) if ts.start <= y <= ts.stop})
    show = pct[pct["time"].apply(lambda t: any(math.isclose(t, y) for y in years))]
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.5g}".format):
        print(show.to_string(index=False))
        if len(res.probabilities):
            print()
            print("probability of meeting each target (share of samples, "
                  + (f"posterior {post.path}" if post is not None else "PRIOR: not conditioned on data") + "):")
            print(res.probabilities.to_string(index=False))


def _draws_space(args, model, common: set):
    """The posterior to draw from (--posterior, else the model's shipped one unless --prior) and the space:
    the posterior's constants jointly from it, the others (--params, or the default uncertain constants
    the scenarios do not set) from their priors."""
    from engine.analysis.ensemble import build_space
    from engine.analysis.posterior import default_posterior, posterior_space, read_posterior

    if getattr(args, "posterior", None) and getattr(args, "prior", False):
        raise EngineError("give either --posterior FILE or --prior, not both")
    path = getattr(args, "posterior", None)
    shipped = None
    if path is None and not getattr(args, "prior", False):
        shipped = default_posterior(args.model)
        path = str(shipped) if shipped is not None else None
    names = _param_names(model, args.params)
    if path is None:
        space = build_space(model, names, args.dist, exclude=common)
        _say("draws: PRIOR (each constant from its range or distribution, not conditioned on data)")
        return None, space
    post = read_posterior(path)
    try:
        pspace = posterior_space(model, post)
    except EngineError as exc:
        hint = " (or --prior to sample the ranges)" if shipped is not None else ""
        raise EngineError(f"{exc}{hint}") from None
    try:
        rest = build_space(model, names, args.dist, exclude=common)
    except EngineError:  # every default constant is in the posterior or set by the scenarios
        rest = None
    labels = list(post.labels) + [lab for lab in (rest.labels if rest else []) if lab not in post.labels]
    space = build_space(model, labels, args.dist)
    space.explicit = {f.name for f in pspace.factors} | (rest.explicit if rest else set())
    space.excluded = rest.excluded if rest else []
    space.note = f"{len(post.labels)} from the posterior, the rest from their priors"
    _say(f"draws: POSTERIOR {path}{' (shipped with the model; --prior for the ranges)' if shipped else ''}: "
         f"{len(post.labels)} constant(s) jointly from {post.values.shape[0]} draws; "
         f"{len(labels) - len(post.labels)} other(s) from their priors")
    return post, space


# ---------------------------------------------------------------------------- sensitivity
@_guard
def cmd_sensitivity(args: argparse.Namespace) -> int:
    from engine.analysis.ensemble import build_space
    from engine.analysis.sensitivity import plot_sensitivity, sensitivity

    if args.samples < 1:
        raise EngineError(f"--samples must be at least 1, got {args.samples}")
    model, ref = _load(args)
    sc, overrides = _scenario(model, args.scenario)
    space = build_space(model, _param_names(model, args.params), args.dist, exclude=set(overrides))
    _say(f"sampled {space.summary()}")
    _say_overriding(space, {sc.name if sc is not None else "the scenario": overrides})
    outputs = _param_names(model, args.outputs) or []   # --outputs is required; empty is refused by sensitivity
    years = _years(args.years, model)
    with _executor(args) as ex:
        res = sensitivity(model, ref, space, outputs, years, args.method, args.samples, args.seed, overrides, ex,
                          args.chunk)
    table = res.table
    if args.top:
        table = table[table["rank"] <= args.top]
    with pd.option_context("display.width", 200, "display.max_rows", 1000, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
    for n in res.notes:
        _say(f"note: {n}")
    _say(f"{args.method}: {res.runs} runs in {res.seconds:.2f} s")
    if args.out:
        _write_csv(res.table, args.out)
        _say(f"wrote {args.out}")
    if args.plot:
        plot_sensitivity(res, args.plot)
        _say(f"wrote {args.plot}")
    return 0


# ---------------------------------------------------------------------------- optimize
@_guard
def cmd_optimize(args: argparse.Namespace) -> int:
    from engine.analysis.ensemble import build_space
    from engine.analysis.optimize import optimize, parse_objective
    from engine.analysis.targets import load_targets

    model, ref = _load(args)
    sc, overrides = _scenario(model, args.scenario)
    space = build_space(model, _param_names(model, args.levers))  # named levers win over the scenario's values
    over = space.overriding(overrides)
    if over:
        _say(f"note: {sc.name} sets {_first(over)}; searched over anyway, because you named "
             f"{'it' if len(over) == 1 else 'them'} (the scenario's value is the search's base point; it sets "
             f"the rest)")
    objective = parse_objective(args.objective, model, "min" if args.minimize else "max")
    targets: list[Target] = []
    tpath = _default_targets(args)
    if tpath:
        targets, _ = load_targets(tpath, model, binding_only=not args.all_targets)
    elif not args.all_targets:
        _say("note: no targets file (model/targets.toml or --targets): searching without constraints")
    with _executor(args) as ex:
        res = optimize(model, ref, space, targets, objective, overrides, args.samples, args.seed, ex, args.chunk)
    print(("every binding target is met" if res.feasible else "NO lever setting meets every binding target")
          + f"; objective {objective.text} ({'minimise' if args.minimize else 'maximise'}) = {res.objective:.6g}")
    print()
    with pd.option_context("display.width", 200, "display.float_format", "{:.5g}".format):
        print(res.levers.to_string(index=False))
        if len(res.targets):
            print()
            print(res.targets.to_string(index=False))
            binding = res.targets[res.targets["status"] == "binding"]["id"].tolist()
            missed = res.targets[res.targets["status"] == "missed"]
            if binding:
                print(f"\nbinding (at their limit): {', '.join(binding)}")
            for r in missed.itertuples():
                print(f"missed: {r.id} by {-r.margin:.4g} (value {r.value:.4g}, target {r.target:.4g})")
    for n in res.notes:
        _say(f"note: {n}")
    _say(f"{res.runs} runs in {res.seconds:.2f} s")
    if args.out:
        _write_csv(pd.concat([res.levers.assign(kind="lever"), res.targets.assign(kind="target")],
                             ignore_index=True), args.out)
        _say(f"wrote {args.out}")
    if args.write:
        _write_policy(args, res, sc, objective, model)
    return 0


def _write_policy(args, res, sc, objective, model) -> None:
    import os
    import tempfile

    import tomli_w

    out = Path(args.write)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise EngineError(f"{out}: folder {parent} does not exist")
    meta = {"name": out.stem, "label_zh": f"政策搜索（{out.stem}）", "label_en": f"Policy search ({out.stem})",
            "doc": f"Written by `lxsd optimize {args.model}`: objective {objective.text}, "
                   + ("every binding target met" if res.feasible else "targets missed")}
    settings = dict(res.settings)
    if sc is not None:
        if Path(sc.file).resolve().parent == out.resolve().parent:
            meta["base"] = Path(sc.file).stem
        else:  # no base can be named: copy the scenario's constants (the levers found win)
            consts = model.constants
            extra = {k: v for k, v in sc.overrides.items() if k in consts}
            if len(extra) < len(sc.overrides):
                _say(f"note: {out} is not beside {sc.file}, so it cannot name it as base; its constants are "
                     f"copied, its series are not")
            settings = {**extra, **settings}
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(tomli_w.dumps({"scenario": meta, "set": settings}))
    os.replace(tmp, out)
    _say(f"wrote {out}")


# ---------------------------------------------------------------------------- scorecard
@_guard
def cmd_scorecard(args: argparse.Namespace) -> int:
    from engine.analysis.targets import scorecard
    from engine.cli import build_runs

    model, ref = _load(args)
    tpath = _default_targets(args)
    if not tpath:
        raise EngineError(f"no targets file: give --targets (default {Path(args.model).parent / 'targets.toml'})")
    runs = build_runs(model, args.scenario, {}, [])
    res = model.run(scenarios=runs)
    table = scorecard(res.to_dataframe(), tpath)
    prob = _target_probabilities(args, model, ref, runs, tpath)
    if prob is not None:
        table = table.merge(prob, on=["scenario", "id"], how="left")
    if args.out:
        _write_csv(table, args.out)
        _say(f"wrote {args.out}: {len(table)} rows")
    else:
        with pd.option_context("display.width", 220, "display.max_rows", 2000, "display.max_columns", 30,
                               "display.float_format", "{:.4g}".format):
            print(table.to_string(index=False))
    return 0


def _target_probabilities(args, model, ref, runs, tpath) -> pd.DataFrame | None:
    """P(target met) per scenario and target from an ensemble: posterior draws when there is a posterior
    (--posterior, or the model's shipped one), prior draws with --prior; None when neither."""
    from engine.analysis.posterior import default_posterior, target_probabilities
    from engine.analysis.targets import load_targets

    if args.samples < 1:
        raise EngineError(f"--samples must be at least 1, got {args.samples}")
    if args.posterior and args.prior:
        raise EngineError("give either --posterior FILE or --prior, not both")
    if not (args.posterior or args.prior or default_posterior(args.model)):
        return None
    targets, _ = load_targets(tpath, model)
    prob, label = target_probabilities(model, ref, runs, targets, args.samples, args.seed, args.posterior,
                                       args.prior, args.model)
    _say(f"p_met: share of {args.samples} samples meeting each target ({label}; seed {args.seed})")
    prob = prob[["scenario", "id", "p_met"]].copy()
    prob["p_met_from"] = label
    return prob


# ---------------------------------------------------------------------------- register
def register(sub) -> None:
    c = sub.add_parser("calibrate", help="fit constants to actual data (least squares within their ranges)")
    c.add_argument("model")
    c.add_argument("--data", required=True, help="long CSV: indicator, unit, year, value, source [, scope]")
    c.add_argument("--params", required=True, help="constants to fit, comma-separated (NAME or NAME[element])")
    c.add_argument("--map", help="mapping file (TOML): [map] indicator = \"expression\"; ignore = [...] (default: "
                   "DATA_map.toml or MODEL_map.toml beside the data, if the data has indicators the model "
                   "lacks)")
    c.add_argument("--scope", help="rows of this scope only (when the file has a scope column)")
    c.add_argument("--indicators", help="only these indicators, comma-separated")
    c.add_argument("--weights", help="INDICATOR=W,... (default 1 each)")
    c.add_argument("--until", type=float, metavar="YEAR", help="fit through YEAR; score the forecast after it")
    c.add_argument("--scenario", help="scenario file applied before fitting")
    c.add_argument("--dist", help="distributions file (only low/high are used: narrower fitting ranges)")
    c.add_argument("--restarts", type=int, default=1, help="fits from this many start points (default 1)")
    c.add_argument("--seed", type=int, default=0, help="seed of the restart points")
    c.add_argument("--name", default="calibrated", help="name of the calibrated scenario (default calibrated)")
    c.add_argument("--write", metavar="FILE.toml", help="write the calibrated scenario to FILE.toml (default: "
                   "print it after the estimates; no file is written)")
    c.add_argument("--plot", metavar="FILE.png|.svg|.html", help="actual against simulated")
    c.add_argument("--stats", metavar="FILE.csv", help="per-series fit statistics")
    _dist_args(c)
    c.set_defaults(func=cmd_calibrate)

    e = sub.add_parser("ensemble", help="Monte Carlo: percentiles per variable and year, P(target met)")
    e.add_argument("model")
    e.add_argument("scenario", nargs="*", help="scenario files (default: the model as it is)")
    e.add_argument("--samples", type=int, required=True, metavar="N")
    e.add_argument("--seed", type=int, required=True, metavar="S")
    e.add_argument("--design", choices=["random", "lhs", "sobol"], default="random")
    e.add_argument("--params", help="constants to sample, comma-separated: any constant with a range, sampled even "
                   "where a scenario sets it (default: the constants of role uncertain that the scenario does "
                   "not set)")
    e.add_argument("--dist", help="distributions file (TOML): [distributions.NAME] kind = ...; [sample]")
    e.add_argument("--vars", help="variables to report and save (default: the headline outputs)")
    e.add_argument("--years", help="years shown on screen (default 2020, 2025, 2030, 2035 and the ends)")
    e.add_argument("--targets", help="targets file (default: targets.toml beside the model)")
    e.add_argument("--no-targets", action="store_true", help="skip the target probabilities")
    e.add_argument("--out", help="every sample's path: FILE.parquet (folder, partitioned by scenario) or FILE.csv")
    e.add_argument("--summary", metavar="FILE.csv", help="all percentiles (and FILE_targets.csv)")
    e.add_argument("--verbose", "-v", action="store_true")
    e.add_argument("--posterior", metavar="FILE.nc", help="draw the constants it holds jointly from this posterior "
                   "(`lxsd posterior`); default: MODEL_posterior.nc beside the model, if there is one")
    e.add_argument("--prior", action="store_true", help="draw every constant from its range or distribution (not "
                   "conditioned on data), even where the model ships a posterior")
    e.add_argument("--diff", metavar="BASE_SCENARIO", help="report each scenario minus this one, sample by sample "
                   "with the same constants (common random numbers): the ranges of a project's effect")
    _dist_args(e)
    e.set_defaults(func=cmd_ensemble)

    s = sub.add_parser("sensitivity", help="global sensitivity: Sobol indices or Morris screening (SALib)")
    s.add_argument("model")
    s.add_argument("scenario", nargs="?", help="scenario file (its settings are held fixed)")
    s.add_argument("--outputs", required=True, help="outputs, comma-separated (name, name[element] or expression)")
    s.add_argument("--years", help="years, comma-separated (default: the last)")
    s.add_argument("--method", choices=["sobol", "morris"], default="sobol")
    s.add_argument("--samples", type=int, default=1024, metavar="N",
                   help="Sobol base samples (N(k+2) runs) or Morris trajectories (N(k+1) runs)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--params", help="constants, comma-separated: any constant with a range, sampled even where the "
                   "scenario sets it (default: the constants of role uncertain that the scenario does not set)")
    s.add_argument("--dist", help="distributions file")
    s.add_argument("--top", type=int, help="show the N highest-ranked per output and year")
    s.add_argument("--out", metavar="FILE.csv", help="the full ranked table")
    s.add_argument("--plot", metavar="FILE.png|.svg|.html")
    _dist_args(s)
    s.set_defaults(func=cmd_sensitivity)

    o = sub.add_parser("optimize", help="lever settings that meet every binding target and optimise an objective")
    o.add_argument("model")
    o.add_argument("scenario", nargs="?", help="base scenario (e.g. scenarios/plan.toml)")
    o.add_argument("--levers", required=True, help="constants to search over, comma-separated (they override the "
                   "scenario's values; the scenario sets the rest)")
    o.add_argument("--objective", required=True, help="EXPR@YEAR (e.g. gdp_real@2025) or change")
    g = o.add_mutually_exclusive_group()
    g.add_argument("--maximize", action="store_true", help="(default)")
    g.add_argument("--minimize", action="store_true")
    o.add_argument("--targets", help="targets file (default: targets.toml beside the model)")
    o.add_argument("--all-targets", action="store_true", help="constrain expected (预期性) targets too")
    o.add_argument("--samples", type=int, default=256, help="points of the global stage (default 256)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--out", metavar="FILE.csv")
    o.add_argument("--write", metavar="FILE.toml", help="the result as a scenario file")
    _dist_args(o)
    o.set_defaults(func=cmd_optimize)

    sc = sub.add_parser("scorecard", help="each plan target in 2025/2030/2035 per scenario: met or missed")
    sc.add_argument("model")
    sc.add_argument("scenario", nargs="+", help="scenario files")
    sc.add_argument("--targets", help="targets file (default: targets.toml beside the model)")
    sc.add_argument("--out", metavar="FILE.csv", help="one row per indicator per scenario")
    sc.add_argument("--no-units", action="store_true")
    sc.add_argument("--posterior", metavar="FILE.nc", help="add p_met, the probability of meeting each target, from "
                    "an ensemble drawn from this posterior (default: MODEL_posterior.nc beside the model, if any)")
    sc.add_argument("--prior", action="store_true", help="p_met from the constants' ranges instead (not "
                    "conditioned on data)")
    sc.add_argument("--samples", type=int, default=1000, metavar="N", help="ensemble size for p_met (default 1000)")
    sc.add_argument("--seed", type=int, default=0, help="seed of the p_met ensemble (default 0)")
    sc.set_defaults(func=cmd_scorecard)

    from engine.analysis import posterior_cli

    posterior_cli.register(sub)
