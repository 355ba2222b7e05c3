"""``lxsd posterior`` and ``lxsd backtest`` (registered by engine.analysis.cli_commands.register)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from engine.analysis.cli_commands import _executor, _guard, _load, _param_names, _say, _scenario, _write_csv
from engine.errors import EngineError


def find_data_map(model_file: str, data_file: str) -> Path | None:
    """``MODEL_data_map.toml`` beside the model, else a mapping file beside the data (calibrate's rule)."""
    from engine.analysis.calibration import find_mapping

    p = Path(model_file)
    cand = p.with_name(f"{p.stem}_data_map.toml")
    if cand.is_file():
        return cand
    return find_mapping(data_file, model_file) if Path(data_file).is_file() else None


def _setup(args, until: float | None, stop: float | None = None):
    """Model, scenario, factors, observations and likelihood from the common arguments."""
    from engine.analysis.ensemble import build_space
    from engine.analysis.likelihood import Likelihood, load_observations, read_data_map
    from engine.analysis.posterior import default_params

    model, ref = _load(args)
    sc, overrides = _scenario(model, args.scenario)
    names = _param_names(model, args.params)
    if names is None and not args.dist:
        names = default_params(model)
        if not names:
            raise EngineError(f"{args.model}: no constant of role uncertain or calibrated has a range; name the "
                              f"constants with --params")
        how = "the constants of role uncertain or calibrated"
    else:
        how = "named in --params" if names is not None else f"from {args.dist}"
    space = build_space(model, names, args.dist)
    mapping = args.map
    if mapping is None:
        mapping = find_data_map(args.model, args.data)
        if mapping is not None:
            _say(f"note: using the data map {mapping} (give --map to choose another)")
    notes: list[str] = []
    obs = load_observations(args.data, model, read_data_map(mapping), scope=args.scope,
                            indicators=[i.strip() for i in args.indicators.split(",") if i.strip()]
                            if args.indicators else None, notes=notes)
    for n in notes:
        _say(f"note: {n}")
    like = Likelihood(model, space, obs, overrides, until=until, stop=stop)
    set_by = [f.label for f in space.factors if f.name in overrides]
    rows = sum(len(o.end) for o in obs)
    _say(f"{len(space.factors)} parameter(s) ({how}; prior: their ranges"
         + (f" and {args.dist}" if args.dist else "") + f"), {like.n_fit} of {rows} data row(s) conditioned on"
         + (f" (through {until:g})" if until is not None else ""))
    if set_by:
        _say(f"note: {sc.name} sets {', '.join(set_by[:6])}{', ...' if len(set_by) > 6 else ''}: sampled from "
             f"the prior and conditioned on the data instead (the scenario sets everything else)")
    return model, ref, sc, like, str(mapping) if mapping else None


def _sample(args, model, ref, like, meta):
    from engine.analysis.posterior import Progress, sample_posterior

    chunk = args.chunk
    if args.workers and chunk == 10_000:  # the default: one shard per worker for each step's batch
        chunk = max(1, -(-args.samples // args.workers))
    with _executor(args) as ex:
        bar = None if args.quiet else (Progress(1000, "tempering") if args.sampler == "smc"
                                       else Progress(args.steps, "sampling"))
        return sample_posterior(model, ref, like, samples=args.samples, sampler=args.sampler,
                                replicas=args.replicas, steps=args.steps, burn=args.burn, walkers=args.walkers,
                                seed=args.seed, moves=args.moves, executor=ex,
                                chunk=chunk if ex.kind != "in-process" else None, progress=bar, meta=meta)


def _print_posterior(post) -> None:
    for line in post.lines():
        print(line)
    for n in post.notes:
        _say(f"note: {n}")
    _say(f"{post.runs} runs in {post.seconds:.1f} s (acceptance {post.acceptance:.2f})")


@_guard
def cmd_posterior(args: argparse.Namespace) -> int:
    from engine.analysis.posterior import plot_posterior, write_posterior

    if not args.out.lower().endswith(".nc"):
        raise EngineError(f"--out {args.out}: the posterior is written as NetCDF: give a file ending in .nc")
    model, ref, _sc, like, mapping = _setup(args, args.until)
    meta = {"command": "lxsd " + " ".join(sys.argv[1:]), "model": args.model, "scenario": args.scenario,
            "data": args.data, "map": mapping, "until": args.until}
    post = _sample(args, model, ref, like, meta)
    _print_posterior(post)
    write_posterior(post, args.out)
    _say(f"wrote {args.out}")
    if args.plot:
        plot_posterior(post, like, args.plot)
        _say(f"wrote {args.plot}")
    return 0


@_guard
def cmd_backtest(args: argparse.Namespace) -> int:
    from engine.analysis.backtest import backtest_table
    from engine.analysis.posterior import plot_posterior, write_posterior

    model, ref, _sc, like, mapping = _setup(args, args.until)
    if like.n_fit == sum(len(o.end) for o in like.observations):
        raise EngineError(f"no data rows after --until {args.until:g}: nothing to forecast")
    meta = {"command": "lxsd " + " ".join(sys.argv[1:]), "model": args.model, "scenario": args.scenario,
            "data": args.data, "map": mapping, "until": args.until, "backtest": True}
    post = _sample(args, model, ref, like, meta)
    _print_posterior(post)
    table = backtest_table(post.idata)
    print()
    draws = len(post.idata.posterior.draw) * len(post.idata.posterior.chain)
    print(f"forecast of the rows after {args.until:g} (posterior predictive, {draws} draws):")
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(table.rename(columns={"mape": "MAPE%", "theil_u": "Theil_U1", "coverage_50": "cover50",
                                    "coverage_90": "cover90"}).to_string(index=False))
    if args.out:
        _write_csv(table, args.out)
        _say(f"wrote {args.out}")
    if args.posterior_out:
        write_posterior(post, args.posterior_out)
        _say(f"wrote {args.posterior_out}")
    if args.plot:
        plot_posterior(post, like, args.plot)
        _say(f"wrote {args.plot}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    from engine.analysis.cli_commands import _dist_args

    p.add_argument("model")
    p.add_argument("scenario", nargs="?",
                   help="scenario file applied before sampling (e.g. scenarios/actual_trend.toml)")
    p.add_argument("--data", required=True, help="long CSV: indicator, unit, year, value, source [, scope]; a year "
                   "may be a period (2021-2025) for an average annual growth rate")
    p.add_argument("--params", help="constants to condition, comma-separated (default: every constant of role "
                   "uncertain or calibrated with a range, so the list follows the model)")
    p.add_argument("--map", help="data map (TOML): [map] indicator = expression or {expression, measure, sigma}; "
                   "ignore; scope; sigma; growth_sigma (default: MODEL_data_map.toml beside the model)")
    p.add_argument("--dist", help="distributions file: the priors (default: uniform over each range)")
    p.add_argument("--scope", help="rows of this scope only (default: the data map's scope)")
    p.add_argument("--indicators", help="only these indicators, comma-separated")
    p.add_argument("--samples", type=int, default=2000, metavar="N", help="posterior draws kept (default 2000; "
                   "with smc, the particles of all replicas)")
    p.add_argument("--sampler", choices=["smc", "emcee"], default="smc",
                   help="tempered sequential Monte Carlo (default) or emcee's ensemble sampler (docs/architecture.md)")
    p.add_argument("--replicas", type=int, default=4, metavar="R",
                   help="smc: independent runs, the chains of R-hat (default 4)")
    p.add_argument("--steps", type=int, default=2000, metavar="S", help="emcee: steps per walker (default 2000)")
    p.add_argument("--burn", type=int, metavar="B", help="emcee: steps discarded first (default: half of --steps)")
    p.add_argument("--walkers", type=int, metavar="W", help="emcee: walkers (default max(32, 2k+2) for k parameters)")
    p.add_argument("--moves", choices=["stretch", "de"], default="stretch",
                   help="emcee: the affine-invariant stretch move (default) or differential evolution")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="FILE.png|.html", help="traces, pairs and the posterior predictive")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _dist_args(p)


def register(sub) -> None:
    p = sub.add_parser("posterior", help="Bayesian calibration: the posterior of constants given data (emcee)")
    _common(p)
    p.add_argument("--until", type=float, metavar="YEAR", help="condition on the rows through YEAR only")
    p.add_argument("--out", required=True, metavar="FILE.nc", help="the posterior (ArviZ InferenceData, NetCDF)")
    p.set_defaults(func=cmd_posterior, own_progress=True)   # its bar counts tempering stages, not steps

    b = sub.add_parser("backtest", help="fit the posterior through a year, forecast after it: MAPE, Theil's U, "
                       "coverage")
    _common(b)
    b.add_argument("--until", type=float, required=True, metavar="YEAR", help="fit on the rows through YEAR")
    b.add_argument("--out", metavar="FILE.csv", help="the table as CSV")
    b.add_argument("--posterior-out", metavar="FILE.nc", help="also write the fitted posterior")
    b.set_defaults(func=cmd_backtest)
